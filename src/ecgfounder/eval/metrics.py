"""Classification and regression metrics with bootstrap confidence intervals.

API (used by ``ecgfounder evaluate`` and by fine-tuning):

``binary_metrics(y_true, y_score, threshold=None) -> dict``
    One label: ``n, n_pos, n_neg, prevalence, auroc, auprc`` and, with a threshold,
    ``threshold, tp, fp, fn, tn, sensitivity, specificity, ppv, npv, f1``.  A record is called
    positive when ``score >= threshold``.
``evaluate_multilabel(y_true, y_score, labels=None, thresholds=None, groups=None, *,
evaluable=None, members=None, min_positives=10, n_boot=1000, seed=0, ci_level=0.95) -> EvaluationResult``
    Per-label table and macro / micro / prevalence-weighted summaries, each metric with a
    bootstrap interval (``<metric>_lo``, ``<metric>_hi``).  ``groups`` (patient id per record)
    switches to a patient-level (cluster) bootstrap.
``multilabel_report(...) -> pandas.DataFrame``
    ``evaluate_multilabel(...).table()``: per-label rows followed by the summary rows
    ``[macro]``, ``[weighted]``, ``[micro]``.
``regression_report(y, yhat, n_boot=1000, seed=0, groups=None) -> pandas.DataFrame``
    MAE, RMSE, R² and mean error (bias) with intervals (home: :mod:`.regression`).

Conventions
-----------
- ``evaluable`` (bool ``(n, L)``, default all true): which (record, label) entries count.  A
  record outside a label's mask is neither a positive nor a negative of that label: every count,
  metric, threshold, summary and bootstrap resample of that label leaves it out.
- Minimum positives: a label with fewer than ``min_positives`` evaluable positives (default
  :data:`MIN_POSITIVES` = 10) is reported in its row but left out of the macro, weighted and
  micro summaries, and listed apart (``settings["rare_labels"]``) with its count.
- AUROC intervals: the union of the percentile bootstrap interval and Newcombe's score interval
  (:mod:`.intervals`), which keeps ≥ 90 % coverage of the 95 % interval at 10 positives;
  sensitivity, specificity, PPV, NPV: the union with Wilson's score interval (a bootstrap of 10
  out of 10 is [1, 1]); AUPRC and F1: percentile bootstrap intervals.
- Arrays: ``y_true (n, L)`` binary (bool or 0/1), ``y_score (n, L)`` probabilities (or any
  monotone score), ``thresholds (L,)`` on the score scale (NaN = no threshold for that label).
- Undefined values are NaN, never 0: AUROC, AUPRC, sensitivity and F1 of a label without
  positives; AUROC, AUPRC and specificity without negatives; PPV without predicted positives;
  NPV without predicted negatives; PPV and NPV whenever a class is absent.  A label without
  positives keeps only its specificity (how often it is called falsely).  The ``defined`` column
  says whether a label has both classes.  Macro and weighted summaries average the summarised
  labels (defined, with at least ``min_positives`` positives) and report how many were used
  (``n_labels``), skipped as undefined (``n_skipped``) and set apart as rare (``n_rare``).
- Micro summaries pool the evaluable (record, label) pairs of the summarised labels; weighted
  summaries weight each summarised label by its number of positives (scikit-learn's
  ``average="weighted"``).
- Bootstrap: ``n_boot`` resamples of records (or of patients) drawn once and shared by all
  labels and summaries; percentile intervals; a resample in which a label has no positive is
  left out of that label's interval (``n_boot_valid`` counts the rest).  Point estimates are
  computed on the full set, not as the mean of resamples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .bootstrap import RankMetrics, group_index, bootstrap_weights, check_mask, check_pair, percentile_ci, weighted_confusion
from .errors import EvaluationError
from .intervals import (AUROC_CI_METHOD, PROPORTION_CI_METHOD, PROPORTION_COUNTS, auroc_interval, interval_note,
                        proportion_interval)
from .regression import REGRESSION_METRICS, regression_report
from .thresholds import as_threshold_array

__all__ = [
    "CLASSIFICATION_METRICS",
    "THRESHOLD_METRICS",
    "REGRESSION_METRICS",
    "EvaluationResult",
    "binary_metrics",
    "confusion_rates",
    "evaluate_multilabel",
    "multilabel_report",
    "group_summary",
    "regression_report",
    "as_threshold_array",
    "MIN_POSITIVES",
]

THRESHOLD_METRICS = ("sensitivity", "specificity", "ppv", "npv", "f1")
CLASSIFICATION_METRICS = ("auroc", "auprc") + THRESHOLD_METRICS
MIN_POSITIVES = 10

SUMMARY_ROWS = ("[macro]", "[weighted]", "[micro]")
SUMMARY_KINDS = ("macro", "weighted", "micro")


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def confusion_rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, PPV, NPV and F1 from confusion counts (any equal shapes).

    NaN where undefined: sensitivity and F1 without positives, specificity without negatives,
    PPV without predicted positives, NPV without predicted negatives, and PPV/NPV whenever one
    class is absent (they would be trivially 0 or 1).
    """
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    pos = tp + fn
    neg = tn + fp
    both = (pos > 0) & (neg > 0)
    f1 = np.where(pos > 0, _div(2 * tp, 2 * tp + fp + fn), np.nan)
    return {
        "sensitivity": _div(tp, pos),
        "specificity": _div(tn, neg),
        # with one class absent PPV/NPV are trivially 0 or 1: report them as undefined
        "ppv": np.where(both, _div(tp, tp + fp), np.nan),
        "npv": np.where(both, _div(tn, tn + fn), np.nan),
        "f1": f1,
    }


def _as_2d(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(n_records, n_labels)`` bool labels and float scores (see ``bootstrap.check_pair``)."""
    y, s = check_pair(y_true, y_score)
    if y.shape[0] == 0:
        raise EvaluationError("no records to evaluate (0 rows).")
    return y, s


def binary_metrics(y_true: Any, y_score: Any, threshold: float | None = None) -> dict[str, float]:
    """Metrics of one binary label.

    Args:
        y_true: ``(n,)`` 0/1 or bool truths.
        y_score: ``(n,)`` scores (probabilities).
        threshold: call a record positive when ``score >= threshold``; ``None`` or NaN skips the
            thresholded metrics (they are NaN).

    Returns:
        dict with ``n, n_pos, n_neg, prevalence, auroc, auprc, threshold, tp, fp, fn, tn,
        sensitivity, specificity, ppv, npv, f1`` (NaN where undefined, see module docstring).
    """
    y, s = _as_2d(np.ravel(y_true), np.ravel(y_score))
    auroc, ap = RankMetrics(y, s).labels()
    n = y.shape[0]
    n_pos = int(y.sum())
    out: dict[str, float] = {
        "n": n,
        "n_pos": n_pos,
        "n_neg": n - n_pos,
        "prevalence": n_pos / n,
        "auroc": float(auroc[0, 0]),
        "auprc": float(ap[0, 0]),
    }
    thr = np.nan if threshold is None else float(threshold)
    out["threshold"] = thr
    if np.isnan(thr):
        out.update({k: np.nan for k in ("tp", "fp", "fn", "tn") + THRESHOLD_METRICS})
        return out
    pred = s[:, 0] >= thr
    yy = y[:, 0]
    tp = float(np.sum(pred & yy))
    fp = float(np.sum(pred & ~yy))
    fn = float(np.sum(~pred & yy))
    tn = float(np.sum(~pred & ~yy))
    out.update({"tp": tp, "fp": fp, "fn": fn, "tn": tn})
    out.update({k: float(v) for k, v in confusion_rates(tp, fp, fn, tn).items()})
    return out


@dataclass(frozen=True)
class EvaluationResult:
    """Result of :func:`evaluate_multilabel`.

    Attributes:
        per_label: one row per label (index = label name): counts (``n`` evaluable records,
            ``n_excluded``, ``n_pos``, ``n_neg``), ``defined``, ``summarised``, ``threshold``,
            each metric with ``_lo``/``_hi`` bounds, ``n_boot_valid`` and ``members``.
        summary: rows ``macro``, ``weighted``, ``micro``; each metric with bounds, and
            ``n_labels`` / ``n_skipped`` / ``n_rare`` (labels used / undefined / too few positives).
        settings: the evaluation settings (n_boot, seed, ci_level, bootstrap unit, n_records,
            min_positives, rare and undefined labels, ...).
        boot: per-resample values ``metric -> (B, L)`` (NaN where undefined), kept so that
            summaries over any label subset (e.g. a clinical category) get intervals too.
    """

    per_label: pd.DataFrame
    summary: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)
    boot: Mapping[str, np.ndarray] | None = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """Per-label rows followed by ``[macro]``, ``[weighted]``, ``[micro]`` rows."""
        summ = self.summary.copy()
        summ.index = [f"[{i}]" for i in summ.index]
        return pd.concat([self.per_label, summ], axis=0, sort=False)

    def undefined_labels(self) -> list[str]:
        """Labels without positives or without negatives in the evaluated set."""
        return list(self.per_label.index[~self.per_label["defined"].astype(bool)])

    def rare_labels(self) -> dict[str, int]:
        """Defined labels left out of the summaries for having too few positives (``label -> n_pos``)."""
        per = self.per_label
        rare = per["defined"].astype(bool) & ~per["summarised"].astype(bool)
        return {lab: int(k) for lab, k in per.loc[rare, "n_pos"].items()}


@dataclass(frozen=True)
class _Values:
    """Metric inputs under one block of weights: each ``(B, L)`` (micro: ``(B,)`` pairs)."""

    auroc: np.ndarray
    ap: np.ndarray
    conf: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    n_pos: np.ndarray
    micro: tuple[np.ndarray, np.ndarray] | None

    def per_label(self) -> dict[str, np.ndarray]:
        return {"auroc": self.auroc, "auprc": self.ap, **confusion_rates(*self.conf)}


class _Scorer:
    """What stays fixed across resamples (sorted layouts, decisions, mask); called with weights."""

    def __init__(self, y: np.ndarray, s: np.ndarray, mask: np.ndarray | None, thr: np.ndarray, summarised: np.ndarray, micro: bool):
        self.y, self.mask = y, mask
        self.has_thr = ~np.isnan(thr)
        self.pred = s >= np.where(self.has_thr, thr, np.inf)[None, :]
        self.rank = RankMetrics(y, s, evaluable=mask)
        pool = summarised.any() and micro
        sub = None if mask is None else mask[:, summarised]
        self.rank_micro = RankMetrics(y[:, summarised], s[:, summarised], micro=True, evaluable=sub) if pool else None
        self.pos = y.astype(np.float64) * (1.0 if mask is None else mask)

    def __call__(self, w: np.ndarray | None) -> _Values:
        au, ap = self.rank.labels(w)
        conf = weighted_confusion(self.y, self.pred, w, self.mask)
        for arr in conf:
            arr[:, ~self.has_thr] = np.nan
        npos = (np.ones((1, self.y.shape[0])) if w is None else np.asarray(w, np.float64)) @ self.pos
        mr = self.rank_micro.micro(w) if self.rank_micro is not None else None
        return _Values(au, ap, conf, npos, mr)


def _macro_weighted(v: np.ndarray, n_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Macro and positives-weighted means over the columns of ``v (B, k)``, NaN entries skipped."""
    if v.shape[1] == 0:
        return np.full(v.shape[0], np.nan), np.full(v.shape[0], np.nan)
    with np.errstate(invalid="ignore"):
        valid = ~np.isnan(v)
        cnt = valid.sum(axis=1)
        macro = np.where(cnt > 0, np.nansum(v, axis=1) / np.maximum(cnt, 1), np.nan)
        wts = np.where(valid, n_pos, 0.0)
        tot = wts.sum(axis=1)
        weighted = np.where(tot > 0, np.nansum(np.where(valid, v, 0.0) * wts, axis=1) / np.where(tot > 0, tot, 1), np.nan)
    return macro, weighted


def _summaries(vals: _Values, use: np.ndarray, has_thr: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Summary values per resample: ``{kind: {metric: (B,)}}`` over the labels in ``use``."""
    out: dict[str, dict[str, np.ndarray]] = {"macro": {}, "weighted": {}, "micro": {}}
    for m, v in vals.per_label().items():
        cols = use & has_thr if m in THRESHOLD_METRICS else use
        out["macro"][m], out["weighted"][m] = _macro_weighted(v[:, cols], vals.n_pos[:, cols])
    b = vals.auroc.shape[0]
    cols = use & has_thr
    if cols.any():
        out["micro"].update(confusion_rates(*(x[:, cols].sum(axis=1) for x in vals.conf)))
    else:
        out["micro"].update({m: np.full(b, np.nan) for m in THRESHOLD_METRICS})
    nan = np.full(b, np.nan)
    out["micro"]["auroc"], out["micro"]["auprc"] = vals.micro if vals.micro is not None else (nan, nan)
    return out


def _inputs(y_true: Any, y_score: Any, labels: Sequence[str] | None, evaluable: Any):
    y, s = _as_2d(y_true, y_score)
    n_labels = y.shape[1]
    labels = [f"label_{j}" for j in range(n_labels)] if labels is None else [str(x) for x in labels]
    if len(labels) != n_labels:
        raise EvaluationError(f"{len(labels)} label names given for {n_labels} columns of y_true.")
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise EvaluationError(f"label names must be unique; repeated: {dup[:5]}.")
    m = check_mask(evaluable, y.shape)
    if m is not None:
        m = m | y  # a positive always counts
        if m.all():
            m = None
    return y, s, m, labels


def _resample(scorer: _Scorer, n: int, n_boot: int, seed: int | None, groups, use: np.ndarray):
    """Per-label ``metric -> (B, L)`` and summary ``kind -> metric -> (B,)`` over the resamples."""
    boot: dict[str, list[np.ndarray]] = {m: [] for m in CLASSIFICATION_METRICS}
    sboot: dict[str, dict[str, list[np.ndarray]]] = {k: {m: [] for m in CLASSIFICATION_METRICS} for k in SUMMARY_KINDS}
    for w in bootstrap_weights(n, n_boot, seed=seed, groups=groups):
        vals = scorer(w)
        for m, v in vals.per_label().items():
            boot[m].append(v)
        sm = _summaries(vals, use, scorer.has_thr)
        for k in SUMMARY_KINDS:
            for m in CLASSIFICATION_METRICS:
                sboot[k][m].append(sm[k][m])
    cat = {m: np.concatenate(v, axis=0) for m, v in boot.items()}
    scat = {k: {m: np.concatenate(v) for m, v in d.items()} for k, d in sboot.items()}
    return cat, scat


def _bounds(values: np.ndarray | None, shape: int, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if values is None:
        nan = np.full(shape, np.nan)
        return nan, nan.copy(), np.zeros(shape, dtype=int)
    return percentile_ci(values, level)


def _per_label_table(labels, counts, thr, point: _Values, boot, level, members, intervals: bool = True) -> pd.DataFrame:
    n_eval, n_pos, n_neg, defined, summarised, n = counts
    cols: dict[str, Any] = {
        "n": n_eval, "n_excluded": n - n_eval, "n_pos": n_pos, "n_neg": n_neg,
        "prevalence": np.divide(n_pos, n_eval, out=np.full(len(labels), np.nan), where=n_eval > 0),
        "defined": defined, "summarised": summarised, "threshold": thr,
    }
    for k, arr in zip(("tp", "fp", "fn", "tn"), point.conf):
        cols[k] = arr[0]
    pv = point.per_label()
    for m in CLASSIFICATION_METRICS:
        cols[m] = pv[m][0]
        lo, hi, valid = _bounds(None if boot is None else boot[m], len(labels), level)
        if m == "auroc":
            if intervals:
                lo, hi = auroc_interval(pv[m][0], n_pos, n_neg, lo, hi, level)
            cols["n_boot_valid"] = valid
        elif m in PROPORTION_COUNTS:
            k, of = PROPORTION_COUNTS[m]
            lo, hi = proportion_interval(cols[k], sum(cols[c] for c in of), lo, hi, level)
        cols[f"{m}_lo"], cols[f"{m}_hi"] = lo, hi
    cols["members"] = [" + ".join(members.get(lab, (lab,))) if members else lab for lab in labels]
    return pd.DataFrame(cols, index=pd.Index(labels, name="label"))


def _summary_table(point_summ, sboot, level, counts, has_thr) -> pd.DataFrame:
    _, _, _, defined, summarised, _ = counts
    rows = []
    for k in SUMMARY_KINDS:
        row: dict[str, Any] = {"summary": k}
        for m in CLASSIFICATION_METRICS:
            row[m] = float(point_summ[k][m][0])
            lo, hi, _ = _bounds(None if sboot is None else sboot[k][m][:, None], 1, level)
            row[f"{m}_lo"], row[f"{m}_hi"] = float(lo[0]), float(hi[0])
        row["n_labels"] = int(summarised.sum())
        row["n_skipped"] = int((~defined).sum())
        row["n_rare"] = int((defined & ~summarised).sum())
        row["n_labels_thresholded"] = int((summarised & has_thr).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("summary")


def evaluate_multilabel(
    y_true: Any,
    y_score: Any,
    labels: Sequence[str] | None = None,
    thresholds: Any = None,
    groups: Sequence | np.ndarray | None = None,
    *,
    evaluable: Any = None,
    members: Mapping[str, Sequence[str]] | None = None,
    min_positives: int = MIN_POSITIVES,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci_level: float = 0.95,
    micro: bool = True,
) -> EvaluationResult:
    """Per-label and summary metrics with bootstrap intervals.

    Args:
        y_true: ``(n, L)`` binary truths.
        y_score: ``(n, L)`` probabilities.
        labels: ``L`` label names (default ``label_0`` ...).
        thresholds: operating thresholds chosen on *another* split (see
            :mod:`ecgfounder.eval.thresholds`): ``(L,)`` array, mapping or scalar; ``None`` leaves
            the thresholded metrics undefined.
        groups: ``(n,)`` patient ids: resample patients instead of records.
        evaluable: bool ``(n, L)``: entries that count (default all; positives always count).
        members: ``label -> model outputs`` it is scored from (composite targets), for the table.
        min_positives: labels with fewer evaluable positives are left out of the summaries.
        n_boot: number of bootstrap resamples (0 = point estimates only).
        seed: bootstrap seed (same seed and data → same intervals).
        ci_level: interval coverage (0.95).
        micro: compute the micro AUROC/AUPRC (pools the evaluable ``n × L`` pairs).

    Returns:
        :class:`EvaluationResult`.
    """
    y, s, mask, labels = _inputs(y_true, y_score, labels, evaluable)
    if n_boot < 0:
        raise EvaluationError(f"n_boot must be >= 0; got {n_boot}.")
    if not 0 < ci_level < 1:  # also with n_boot=0: the AUROC's score interval uses it
        raise EvaluationError(f"ci_level must be between 0 and 1 (e.g. 0.95 for 95 % intervals); got {ci_level}.")
    if min_positives < 1:
        raise EvaluationError(f"min_positives must be >= 1; got {min_positives}.")
    n = y.shape[0]
    n_groups = n if groups is None else group_index(groups, n)[1]  # checked also without resamples
    intervals = n_groups >= 2  # one patient (or record): nothing to resample, no interval
    thr = as_threshold_array(thresholds, labels)
    n_eval = np.full(len(labels), n) if mask is None else mask.sum(axis=0)
    n_pos = y.sum(axis=0).astype(np.int64)
    n_neg = (n_eval - n_pos).astype(np.int64)
    defined = (n_pos > 0) & (n_neg > 0)
    summarised = defined & (n_pos >= min_positives)
    counts = (n_eval, n_pos, n_neg, defined, summarised, n)
    scorer = _Scorer(y, s, mask, thr, summarised, micro)
    point = scorer(None)
    resample = n_boot > 0 and intervals
    boot, sboot = _resample(scorer, n, n_boot, seed, groups, summarised) if resample else (None, None)
    per = _per_label_table(labels, counts, thr, point, boot, ci_level, members, intervals)
    summary = _summary_table(_summaries(point, summarised, scorer.has_thr), sboot, ci_level, counts, scorer.has_thr)
    if summarised.sum() == 1:  # every summary is that label's value: the same interval as its row (Newcombe, Wilson)
        for m in CLASSIFICATION_METRICS:
            got = summary[m].notna()  # (micro=False leaves the micro AUROC undefined)
            summary.loc[got, [f"{m}_lo", f"{m}_hi"]] = per.loc[labels[int(np.argmax(summarised))], [f"{m}_lo", f"{m}_hi"]].to_numpy(float)
    settings = {
        "n_records": n,
        "n_labels": len(labels),
        "n_boot": int(n_boot),
        "seed": seed,
        "ci_level": ci_level,
        "ci_method": "percentile",
        "auroc_ci_method": AUROC_CI_METHOD,
        "proportion_ci_method": PROPORTION_CI_METHOD,
        "bootstrap_unit": "patient" if groups is not None else "record",
        "n_groups": int(n_groups),
        "interval_note": interval_note("patient" if groups is not None else "record", int(n_groups), int(n_boot)),
        "min_positives": int(min_positives),
        "n_excluded_entries": int(0 if mask is None else (~mask).sum()),
        "undefined_labels": [lab for lab, d in zip(labels, defined) if not d],
        "rare_labels": {lab: int(k) for lab, k, d, u in zip(labels, n_pos, defined, summarised) if d and not u},
    }
    return EvaluationResult(per_label=per, summary=summary, settings=settings, boot=boot)


def group_summary(
    result: EvaluationResult,
    groups: Mapping[str, str],
    metrics: Sequence[str] = ("auroc", "auprc", "sensitivity", "specificity", "f1"),
    ci_level: float | None = None,
) -> pd.DataFrame:
    """Macro averages over label groups (e.g. clinical categories), with bootstrap intervals.

    Args:
        result: from :func:`evaluate_multilabel`.
        groups: ``label -> group name``; labels not listed go to ``"(ungrouped)"``.
        metrics: which metrics to average.
        ci_level: interval level (default: the one of ``result``).

    Returns:
        DataFrame indexed by group: ``n_labels`` (in the group), ``n_defined`` (summarised:
        both classes and enough positives), ``n_pos`` (sum), and per metric the macro value over them with
        ``_lo``/``_hi`` from the same resamples as the per-label intervals.
    """
    per = result.per_label
    level = ci_level if ci_level is not None else float(result.settings.get("ci_level", 0.95))
    names = [groups.get(lab, "(ungrouped)") for lab in per.index]
    order = list(dict.fromkeys(names))
    defined = per["summarised"].to_numpy(dtype=bool) if "summarised" in per else per["defined"].to_numpy(dtype=bool)
    rows = []
    for gname in order:
        cols = np.array([nm == gname for nm in names])
        use = cols & defined
        row: dict[str, Any] = {
            "group": gname,
            "n_labels": int(cols.sum()),
            "n_defined": int(use.sum()),
            "n_pos": int(per["n_pos"].to_numpy()[cols].sum()),
        }
        for m in metrics:
            vals = per[m].to_numpy(dtype=np.float64)[use]
            row[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
            lo = hi = np.nan
            if use.sum() == 1 and f"{m}_lo" in per:  # one label: its own interval, as in its row
                lo, hi = (float(per[f"{m}_{e}"].to_numpy()[use][0]) for e in ("lo", "hi"))
            elif result.boot is not None and use.any() and m in result.boot:
                b = result.boot[m][:, use]
                with np.errstate(invalid="ignore"):
                    cnt = (~np.isnan(b)).sum(axis=1)
                    mac = np.where(cnt > 0, np.nansum(b, axis=1) / np.maximum(cnt, 1), np.nan)
                lo_a, hi_a, _ = percentile_ci(mac[:, None], level)
                lo, hi = float(lo_a[0]), float(hi_a[0])
            row[f"{m}_lo"], row[f"{m}_hi"] = lo, hi
        rows.append(row)
    return pd.DataFrame(rows).set_index("group")


def multilabel_report(
    y_true: Any, y_score: Any, labels: Sequence[str] | None = None, thresholds: Any = None,
    groups: Sequence | np.ndarray | None = None, n_boot: int = 1000, seed: int | None = 0, ci_level: float = 0.95,
    *, evaluable: Any = None, min_positives: int = MIN_POSITIVES,
) -> pd.DataFrame:
    """:func:`evaluate_multilabel` as one table: label rows, then ``[macro]``, ``[weighted]``, ``[micro]``."""
    return evaluate_multilabel(
        y_true, y_score, labels, thresholds, groups, evaluable=evaluable, min_positives=min_positives,
        n_boot=n_boot, seed=seed, ci_level=ci_level,
    ).table()
