"""The end of a run: test metrics, ``test_predictions.csv``, ``test_report.csv`` (the evaluation
module's report with bootstrap CIs, thresholds chosen on validation) and ``metrics.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._fileio import atomic_path, write_json
from .._formats import TARGET_PREFIX
from .config import FinetuneConfig
from .data import TrainData
from .tasks import TaskSpec, quick_metrics

__all__ = ["test_metrics", "write_test_predictions", "test_report", "test_report_settings", "write_summary"]


def test_metrics(data: TrainData, test_scores: np.ndarray) -> dict[str, float]:
    """Point metrics on the test split (``test_*``); for regression also the chance level
    ``test_mae_train_mean`` (always predicting the training mean)."""
    spec, rows = data.spec, data.rows["test"]
    if not len(rows):
        return {}
    m = {k.replace("val_", "test_"): v for k, v in quick_metrics(spec, data.y_raw[rows], test_scores).items()}
    if spec.kind == "regression":
        tr = data.rows["train"]
        y_tr = np.asarray(data.y_raw[tr], float).reshape(len(tr), -1)
        y_te = np.asarray(data.y_raw[rows], float).reshape(len(rows), -1)
        m["test_mae_train_mean"] = float(np.abs(y_te - y_tr.mean(0)).mean())
    return m


def write_test_predictions(data: TrainData, test_scores: np.ndarray, path_column: str, out: Path) -> None:
    """``test_predictions.csv``: record, path, patient, the targets and one score column per output."""
    spec, rows = data.spec, data.rows["test"]
    names = data.df["record"] if "record" in data.df.columns else data.df[path_column]
    pred = pd.DataFrame({"record": names.iloc[rows].to_numpy(), "path": data.df[path_column].iloc[rows].to_numpy(),
                         "patient": data.groups[rows]})
    y = data.y_raw[rows]
    if spec.kind == "multiclass":
        pred["target"] = [spec.labels[int(i)] for i in y]
    else:
        for j, lab in enumerate(spec.labels):
            pred[f"{TARGET_PREFIX}{lab}"] = np.asarray(y, float).reshape(len(rows), -1)[:, j]
    for j, lab in enumerate(spec.labels):
        pred[lab] = test_scores[:, j]
    with atomic_path(out / "test_predictions.csv") as tmp:
        pred.to_csv(tmp, index=False)


def _thresholds(y_val: np.ndarray | None, val_scores: np.ndarray, cfg: FinetuneConfig) -> np.ndarray | None:
    """Decision thresholds chosen on the validation split by the evaluation module (on the
    assessed records of each label)."""
    if y_val is None or len(y_val) == 0:
        return None
    from ..eval.thresholds import choose_thresholds

    seen = ~np.isnan(y_val)
    th = choose_thresholds(np.where(seen, y_val, 0.0), val_scores, method=cfg.eval.threshold_method, evaluable=seen)
    return np.asarray(th, dtype=float).reshape(-1)


def _as_indicators(spec: TaskSpec, y: np.ndarray) -> np.ndarray:
    """``(n, k)`` float targets; NaN where not assessed (binary/multi-label)."""
    if spec.kind == "multiclass":
        return np.eye(spec.n_outputs)[np.asarray(y, int)]
    return np.asarray(y, float).reshape(len(y), -1)


def test_report(data: TrainData, val_scores: np.ndarray, test_scores: np.ndarray, cfg: FinetuneConfig,
                out: Path) -> pd.DataFrame | None:
    """The evaluation module's report on the test split (``eval.*``), written to ``test_report.csv``."""
    from ..eval import metrics as M

    spec, rows = data.spec, data.rows["test"]
    if len(rows) == 0:
        return None
    y = data.y_raw[rows]
    groups = data.groups[rows] if cfg.eval.bootstrap_unit == "patient" else None
    if spec.kind == "regression":
        y2 = np.asarray(y, float).reshape(len(rows), -1)
        parts = []
        for j, lab in enumerate(spec.labels):
            r = M.regression_report(y2[:, j], test_scores[:, j], n_boot=cfg.eval.n_boot, seed=cfg.eval.seed, groups=groups)
            parts.append(r.assign(target=lab).set_index("target", append=True).reorder_levels([1, 0]))
        rep = pd.concat(parts)
    else:
        val = data.rows["val"]
        yv = _as_indicators(spec, data.y_raw[val]) if len(val) else None
        yt = _as_indicators(spec, y)
        seen = ~np.isnan(yt)  # a record that did not assess a label is no negative of it
        rep = M.multilabel_report(np.where(seen, yt, 0.0), test_scores, labels=list(spec.labels),
                                  thresholds=_thresholds(yv, val_scores, cfg), groups=groups,
                                  n_boot=cfg.eval.n_boot, seed=cfg.eval.seed, evaluable=None if seen.all() else seen)
    with atomic_path(out / "test_report.csv") as tmp:
        rep.to_csv(tmp)
    return rep


def test_report_settings(data: TrainData, cfg: FinetuneConfig) -> dict[str, Any]:
    """How ``test_report.csv``'s intervals and thresholds were made, for ``metrics.json``:
    ``bootstrap_unit``, ``n_boot``, the test split's examples and patients, where the thresholds
    came from and ``notes`` a reader must know (a record-level bootstrap of correlated examples, too
    few patients for an interval)."""
    from ..eval.intervals import interval_note

    rows = data.rows["test"]
    unit, n_boot = cfg.eval.bootstrap_unit, int(cfg.eval.n_boot)
    n_pat = int(len(np.unique(data.groups[rows].astype(str))))
    notes = []
    if unit == "record" and n_pat < len(rows):
        notes.append(f"eval.bootstrap_unit=record resamples the {len(rows)} test examples of {n_pat} patient(s) as if "
                     "independent; examples of one patient (windows of one record) are correlated, so the intervals "
                     "are too narrow. eval.bootstrap_unit=patient resamples whole patients.")
    note = interval_note(unit, n_pat if unit == "patient" else len(rows), n_boot)
    if note and len(rows):
        notes.append(note)
    rare = _rare_labels(data)
    if rare:
        from ..eval.metrics import MIN_POSITIVES

        notes.append(f"test_report.csv's [macro], [weighted] and [micro] rows leave out {len(rare)} of "
                     f"{len(data.spec.labels)} labels with fewer than {MIN_POSITIVES} test positives ({', '.join(rare[:10])}"
                     f"{', ...' if len(rare) > 10 else ''}), reported in their rows only; metrics.json's "
                     "test_auroc is the mean over every label with a defined AUROC, those included.")
    n_val = int(len(data.rows["val"]))
    return {"bootstrap_unit": unit, "n_boot": n_boot, "n_test_examples": int(len(rows)), "n_test_patients": n_pat,
            "thresholds": (f"{cfg.eval.threshold_method}, chosen on the validation split ({n_val} examples)"
                           if n_val and data.spec.kind != "regression" else None),
            "notes": notes}


def _rare_labels(data: TrainData) -> list[str]:
    """The labels of a classification task of several labels that the evaluation module leaves out
    of its summary rows (fewer than ``MIN_POSITIVES`` positives among the test records assessing
    them, yet a defined AUROC, so ``test_auroc`` averages them)."""
    from ..eval.metrics import MIN_POSITIVES

    spec, rows = data.spec, data.rows["test"]
    if spec.kind == "regression" or len(spec.labels) < 2 or not len(rows):
        return []
    y = _as_indicators(spec, data.y_raw[rows])
    pos, seen = np.nansum(y, axis=0), (~np.isnan(y)).sum(0)
    return [lab for lab, p, n in zip(spec.labels, pos, seen) if 0 < p < MIN_POSITIVES and p < n]


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """``metrics.json`` (strict JSON: a metric that could not be computed is ``null``)."""
    write_json(out / "metrics.json", summary, indent=2)
