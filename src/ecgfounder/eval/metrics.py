"""Classification and regression metrics with bootstrap confidence intervals.

API (used by ``ecgfounder evaluate`` and by fine-tuning):

``binary_metrics(y_true, y_score, threshold=None) -> dict``
    One label: ``n, n_pos, n_neg, prevalence, auroc, auprc`` and, with a threshold,
    ``threshold, tp, fp, fn, tn, sensitivity, specificity, ppv, npv, f1``.  A record is called
    positive when ``score >= threshold``.
``evaluate_multilabel(y_true, y_score, labels=None, thresholds=None, groups=None, n_boot=1000,
seed=0, ci_level=0.95) -> EvaluationResult``
    Per-label table and macro / micro / prevalence-weighted summaries, each metric with a
    percentile bootstrap interval (``<metric>_lo``, ``<metric>_hi``).  ``groups`` (patient id per
    record) switches to a patient-level (cluster) bootstrap.
``multilabel_report(...) -> pandas.DataFrame``
    ``evaluate_multilabel(...).table()``: per-label rows followed by the summary rows
    ``[macro]``, ``[weighted]``, ``[micro]``.
``regression_report(y, yhat, n_boot=1000, seed=0, groups=None) -> pandas.DataFrame``
    MAE, RMSE, R² and mean error (bias) with intervals.

Conventions
-----------
- Arrays: ``y_true (n, L)`` binary (bool or 0/1), ``y_score (n, L)`` probabilities (or any
  monotone score), ``thresholds (L,)`` on the score scale (NaN = no threshold for that label).
- Undefined values are NaN, never 0: AUROC, AUPRC, sensitivity and F1 of a label without
  positives; AUROC, AUPRC and specificity without negatives; PPV without predicted positives;
  NPV without predicted negatives; PPV and NPV whenever a class is absent.  A label without
  positives keeps only its specificity (how often it is called falsely).  The ``defined`` column says whether a label has both
  classes.  Macro and weighted summaries average the labels where the metric is defined and
  report how many were used (``n_labels``) and skipped (``n_skipped``).
- Micro summaries pool the (record, label) pairs of the *defined* labels; weighted summaries
  weight each defined label by its number of positives (scikit-learn's ``average="weighted"``).
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

from .bootstrap import RankMetrics, bootstrap_weights, check_pair, percentile_ci, weighted_confusion

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
]

THRESHOLD_METRICS = ("sensitivity", "specificity", "ppv", "npv", "f1")
CLASSIFICATION_METRICS = ("auroc", "auprc") + THRESHOLD_METRICS
REGRESSION_METRICS = ("mae", "rmse", "r2", "bias")

SUMMARY_ROWS = ("[macro]", "[weighted]", "[micro]")


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
        raise ValueError("no records to evaluate (0 rows).")
    return y, s


def as_threshold_array(thresholds: Any, labels: Sequence[str]) -> np.ndarray:
    """Thresholds as a float array aligned to ``labels``.

    Accepts ``None`` (all NaN), a scalar (same for all), a sequence of ``len(labels)`` values or a
    mapping ``label -> threshold`` (labels missing from the mapping get NaN).
    """
    n = len(labels)
    if thresholds is None:
        return np.full(n, np.nan)
    if isinstance(thresholds, Mapping):
        return np.array([float(thresholds.get(lab, np.nan)) for lab in labels], dtype=np.float64)
    if isinstance(thresholds, pd.Series):
        return thresholds.reindex(list(labels)).to_numpy(dtype=np.float64)
    arr = np.asarray(thresholds, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"thresholds must hold one value per label ({n}); got shape {arr.shape}.")
    return arr


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
        per_label: one row per label (index = label name): counts, ``defined``, ``threshold``,
            each metric with ``_lo``/``_hi`` bounds and ``n_boot_valid``.
        summary: rows ``macro``, ``weighted``, ``micro``; each metric with bounds, and
            ``n_labels`` / ``n_skipped`` (labels used / left out because undefined).
        settings: the evaluation settings (n_boot, seed, ci_level, bootstrap unit, n_records, ...).
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


def _summaries(
    auroc: np.ndarray,
    ap: np.ndarray,
    conf: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n_pos: np.ndarray,
    use: np.ndarray,
    has_thr: np.ndarray,
    micro_rank: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, dict[str, np.ndarray]]:
    """Summary values per resample: ``{kind: {metric: (B,)}}``.

    ``auroc``/``ap`` and the confusion counts are ``(B, L)``; ``n_pos (B, L)``; ``use (L,)``
    labels defined on the full set; ``has_thr (L,)`` labels with a threshold.
    """
    tp, fp, fn, tn = conf
    rates = confusion_rates(tp, fp, fn, tn)
    per = {"auroc": auroc, "auprc": ap, **rates}
    out: dict[str, dict[str, np.ndarray]] = {"macro": {}, "weighted": {}, "micro": {}}
    for m, v in per.items():
        cols = use & has_thr if m in THRESHOLD_METRICS else use
        vv = v[:, cols]
        with np.errstate(invalid="ignore"):
            if vv.shape[1] == 0:
                out["macro"][m] = np.full(v.shape[0], np.nan)
                out["weighted"][m] = np.full(v.shape[0], np.nan)
                continue
            valid = ~np.isnan(vv)
            cnt = valid.sum(axis=1)
            out["macro"][m] = np.where(cnt > 0, np.nansum(vv, axis=1) / np.maximum(cnt, 1), np.nan)
            wts = np.where(valid, n_pos[:, cols], 0.0)
            tot = wts.sum(axis=1)
            out["weighted"][m] = np.where(tot > 0, np.nansum(np.where(valid, vv, 0.0) * wts, axis=1) / np.where(tot > 0, tot, 1), np.nan)
    cols = use & has_thr
    if cols.any():
        micro_rates = confusion_rates(*(x[:, cols].sum(axis=1) for x in (tp, fp, fn, tn)))
    else:
        micro_rates = {m: np.full(tp.shape[0], np.nan) for m in THRESHOLD_METRICS}
    out["micro"].update(micro_rates)
    if micro_rank is not None:
        out["micro"]["auroc"], out["micro"]["auprc"] = micro_rank
    else:
        out["micro"]["auroc"] = out["micro"]["auprc"] = np.full(tp.shape[0], np.nan)
    return out


def evaluate_multilabel(
    y_true: Any,
    y_score: Any,
    labels: Sequence[str] | None = None,
    thresholds: Any = None,
    groups: Sequence | np.ndarray | None = None,
    *,
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
        n_boot: number of bootstrap resamples (0 = point estimates only).
        seed: bootstrap seed (same seed and data → same intervals).
        ci_level: interval coverage (0.95).
        micro: compute the micro AUROC/AUPRC (pools ``n × L`` pairs; costs about as much as all
            labels together).

    Returns:
        :class:`EvaluationResult`.
    """
    y, s = _as_2d(y_true, y_score)
    n, n_labels = y.shape
    if labels is None:
        labels = [f"label_{j}" for j in range(n_labels)]
    labels = [str(x) for x in labels]
    if len(labels) != n_labels:
        raise ValueError(f"{len(labels)} label names given for {n_labels} columns of y_true.")
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"label names must be unique; repeated: {dup[:5]}.")
    thr = as_threshold_array(thresholds, labels)
    has_thr = ~np.isnan(thr)
    pred = s >= np.where(has_thr, thr, np.inf)[None, :]
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0; got {n_boot}.")

    n_pos = y.sum(axis=0).astype(np.int64)
    n_neg = n - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    rank = RankMetrics(y, s)
    # micro pools the defined labels only
    rank_micro = RankMetrics(y[:, defined], s[:, defined], micro=True) if micro and defined.any() else None

    yf = y.astype(np.float64)

    def compute(w: np.ndarray | None):
        au, ap = rank.labels(w)
        conf = weighted_confusion(y, pred, w)
        tp, fp, fn, tn = conf
        for arr in conf:
            arr[:, ~has_thr] = np.nan
        npos = (np.ones((1, n)) if w is None else np.asarray(w, np.float64)) @ yf
        mr = rank_micro.micro(w) if rank_micro is not None else None
        return au, ap, conf, npos, mr

    au0, ap0, conf0, npos0, mr0 = compute(None)
    rates0 = confusion_rates(*conf0)
    point = {"auroc": au0[0], "auprc": ap0[0], **{k: v[0] for k, v in rates0.items()}}
    summ0 = _summaries(au0, ap0, conf0, npos0, defined, has_thr, mr0)

    boot: dict[str, list[np.ndarray]] = {m: [] for m in CLASSIFICATION_METRICS}
    sboot: dict[str, dict[str, list[np.ndarray]]] = {k: {m: [] for m in CLASSIFICATION_METRICS} for k in ("macro", "weighted", "micro")}
    if n_boot > 0:
        for w in bootstrap_weights(n, n_boot, seed=seed, groups=groups):
            au, ap, conf, npos, mr = compute(w)
            rates = confusion_rates(*conf)
            vals = {"auroc": au, "auprc": ap, **rates}
            for m in CLASSIFICATION_METRICS:
                boot[m].append(vals[m])
            sm = _summaries(au, ap, conf, npos, defined, has_thr, mr)
            for k in sboot:
                for m in CLASSIFICATION_METRICS:
                    sboot[k][m].append(sm[k][m])

    cols: dict[str, Any] = {
        "n": np.full(n_labels, n),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "prevalence": n_pos / n,
        "defined": defined,
        "threshold": thr,
    }
    for k, arr in zip(("tp", "fp", "fn", "tn"), conf0):
        cols[k] = arr[0]
    for m in CLASSIFICATION_METRICS:
        cols[m] = point[m]
        if n_boot > 0:
            lo, hi, valid = percentile_ci(np.concatenate(boot[m], axis=0), ci_level)
        else:
            lo = hi = np.full(n_labels, np.nan)
            valid = np.zeros(n_labels, dtype=int)
        cols[f"{m}_lo"] = lo
        cols[f"{m}_hi"] = hi
        if m == "auroc":
            cols["n_boot_valid"] = valid
    per = pd.DataFrame(cols, index=pd.Index(labels, name="label"))

    rows = []
    for k in ("macro", "weighted", "micro"):
        row: dict[str, Any] = {"summary": k}
        for m in CLASSIFICATION_METRICS:
            row[m] = float(summ0[k][m][0])
            if n_boot > 0:
                lo, hi, _ = percentile_ci(np.concatenate(sboot[k][m])[:, None], ci_level)
                row[f"{m}_lo"], row[f"{m}_hi"] = float(lo[0]), float(hi[0])
            else:
                row[f"{m}_lo"] = row[f"{m}_hi"] = np.nan
        used_rank = int(defined.sum())
        used_thr = int((defined & has_thr).sum())
        row["n_labels"] = used_rank
        row["n_skipped"] = int(n_labels - used_rank)
        row["n_labels_thresholded"] = used_thr
        rows.append(row)
    summary = pd.DataFrame(rows).set_index("summary")
    settings = {
        "n_records": n,
        "n_labels": n_labels,
        "n_boot": int(n_boot),
        "seed": seed,
        "ci_level": ci_level,
        "ci_method": "percentile",
        "bootstrap_unit": "patient" if groups is not None else "record",
        "n_groups": int(len(np.unique(np.asarray(groups).astype(str)))) if groups is not None else n,
        "undefined_labels": [lab for lab, d in zip(labels, defined) if not d],
    }
    boot_arr = {m: np.concatenate(boot[m], axis=0) for m in CLASSIFICATION_METRICS} if n_boot > 0 else None
    return EvaluationResult(per_label=per, summary=summary, settings=settings, boot=boot_arr)


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
        DataFrame indexed by group: ``n_labels`` (in the group), ``n_defined`` (with both
        classes), ``n_pos`` (sum), and per metric the macro value over defined labels with
        ``_lo``/``_hi`` from the same resamples as the per-label intervals.
    """
    per = result.per_label
    level = ci_level if ci_level is not None else float(result.settings.get("ci_level", 0.95))
    names = [groups.get(lab, "(ungrouped)") for lab in per.index]
    order = list(dict.fromkeys(names))
    defined = per["defined"].to_numpy(dtype=bool)
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
            if result.boot is not None and use.any() and m in result.boot:
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
    y_true: Any,
    y_score: Any,
    labels: Sequence[str] | None = None,
    thresholds: Any = None,
    groups: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """:func:`evaluate_multilabel` as one table: label rows, then ``[macro]``, ``[weighted]``, ``[micro]``."""
    return evaluate_multilabel(
        y_true, y_score, labels, thresholds, groups, n_boot=n_boot, seed=seed, ci_level=ci_level
    ).table()


def _regression_values(w: np.ndarray, y: np.ndarray, yhat: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted MAE, RMSE, R² and bias for each weight row ``w (B, n)``; ``y``/``yhat (n,)``."""
    e = yhat - y
    sw = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = (w @ np.abs(e)) / sw
        sse = w @ (e * e)
        rmse = np.sqrt(sse / sw)
        ybar = (w @ y) / sw
        sst = w @ (y * y) - sw * ybar * ybar
        sst = np.where(sst > 1e-12 * np.maximum(w @ (y * y), 1e-300), sst, np.nan)
        r2 = 1.0 - sse / sst
        bias = (w @ e) / sw
    return {"mae": mae, "rmse": rmse, "r2": r2, "bias": bias}


def regression_report(
    y: Any,
    yhat: Any,
    n_boot: int = 1000,
    seed: int | None = 0,
    groups: Sequence | np.ndarray | None = None,
    ci_level: float = 0.95,
) -> pd.DataFrame:
    """Regression metrics with bootstrap intervals.

    Args:
        y: ``(n,)`` targets (any unit).
        yhat: ``(n,)`` predictions in the same unit.
        n_boot, seed, groups, ci_level: as in :func:`evaluate_multilabel`.

    Returns:
        DataFrame indexed by metric (``mae``, ``rmse``, ``r2``, ``bias`` = mean of
        ``yhat - y``) with columns ``value``, ``lo``, ``hi``, ``n``.  R² is NaN when ``y`` is
        constant.
    """
    yy = np.asarray(y, dtype=np.float64).ravel()
    pp = np.asarray(yhat, dtype=np.float64).ravel()
    if yy.shape != pp.shape or yy.size == 0:
        raise ValueError(f"y and yhat must be non-empty and of one length; got {yy.shape} and {pp.shape}.")
    if not (np.isfinite(yy).all() and np.isfinite(pp).all()):
        raise ValueError("y and yhat must be finite; drop records with missing targets or failed predictions.")
    point = _regression_values(np.ones((1, yy.size)), yy, pp)
    boot: dict[str, list[np.ndarray]] = {m: [] for m in REGRESSION_METRICS}
    if n_boot > 0:
        for w in bootstrap_weights(yy.size, n_boot, seed=seed, groups=groups):
            vals = _regression_values(w.astype(np.float64), yy, pp)
            for m in REGRESSION_METRICS:
                boot[m].append(vals[m])
    rows = []
    for m in REGRESSION_METRICS:
        if n_boot > 0:
            lo, hi, _ = percentile_ci(np.concatenate(boot[m])[:, None], ci_level)
            lo, hi = float(lo[0]), float(hi[0])
        else:
            lo = hi = np.nan
        rows.append({"metric": m, "value": float(point[m][0]), "lo": lo, "hi": hi, "n": yy.size})
    return pd.DataFrame(rows).set_index("metric")
