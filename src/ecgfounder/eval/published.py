"""The authors' PTB-XL evaluation (``ptbxl_eval.py`` + ``util.eval_with_dynamic_thresh`` of the
published ECGFounder code), reproduced step by step so that its number can be recomputed — and
what it does wrong stated next to it.

Steps, as in the script:

1. preprocessing: one global z-score per record, no filtering (mode ``"zscore"``);
2. every record of the database (all ten folds), 150 binary targets per record; the authors'
   target file (``csv/ptbxl_label.csv``) is unpublished, so this package's mapping supplies
   them, with ambiguous codes as negatives and no composite targets, as a plain 0/1 file would;
3. sigmoid scores; for each label the threshold maximising balanced accuracy **on these same
   records**, searched over ``0.01, 0.02, …, 0.99`` with ``score > t``, the first maximum kept;
4. per label ``roc_auc_score``; a label without both classes gets AUROC **0.0**; the headline is
   the mean over all 150 labels;
5. the per-label table (``res.csv``) recomputes sensitivity, specificity, PPV, NPV and F1 with
   ``score >= t`` on scores rounded to 5 decimals (they pass through ``all_pred.csv``), 0 where
   undefined, and 95 % intervals from **10** bootstrap resamples (seeded here, unseeded there).

``published_ptbxl(y, scores, labels, seed=0) -> (table, summary)``; :data:`PUBLISHED_FLAWS`
lists what the protocol does wrong, for the report.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .bootstrap import RankMetrics, bootstrap_weights

__all__ = ["PUBLISHED_FLAWS", "PUBLISHED_MODE", "balanced_accuracy_thresholds", "published_ptbxl"]

PUBLISHED_MODE = "zscore"
PUBLISHED_GRID = np.linspace(0.01, 0.99, 99)
PUBLISHED_FLAWS = (
    "Thresholds are chosen on the very records being evaluated (max balanced accuracy), so sensitivity, specificity and F1 are optimistic.",
    "All records are evaluated, none held out, and the patients of the evaluated records are not separated from any tuning.",
    "A label without a positive gets AUROC 0 and every one of the 150 labels enters the mean, so the headline depends on how many labels the ground truth covers, not only on the model.",
    "Ambiguous source codes count as negatives for the labels they could mean, and a finding MUSE words two ways is scored twice.",
    "Thresholds are searched with 'score > t' on a 0.01 grid but applied with 'score >= t' on scores rounded to 5 decimals.",
    "Intervals come from 10 bootstrap resamples (unseeded), far too few for 95 % bounds.",
    "Preprocessing is a global z-score only, not the filter chain the weights were trained with (dataset.py).",
    "The authors' ground-truth file is unpublished: this reproduction uses this package's mapping, so it matches the paper's 0.924 in procedure, not in targets.",
)


def balanced_accuracy_thresholds(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per label, the grid threshold ``t`` maximising balanced accuracy of ``s > t`` (first maximum).

    scikit-learn's ``balanced_accuracy_score`` with one class absent averages the recall of the
    present class only; that is reproduced (so a label without positives still gets a threshold).
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    out = np.empty(y.shape[1])
    for j in range(y.shape[1]):
        pred = s[None, :, j] > PUBLISHED_GRID[:, None]  # (99, n)
        pos, neg = y[:, j], ~y[:, j]
        recalls = []
        if pos.any():
            recalls.append((pred & pos).sum(axis=1) / pos.sum())
        if neg.any():
            recalls.append((~pred & neg).sum(axis=1) / neg.sum())
        ba = np.mean(recalls, axis=0)
        out[j] = PUBLISHED_GRID[int(np.argmax(ba))]  # argmax keeps the first maximum, as 'ba > best' does
    return out


def _zero_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def published_ptbxl(y: Any, scores: Any, labels: Sequence[str], *, seed: int | None = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The authors' protocol on ``y (n, 150)`` targets and ``scores (n, 150)`` probabilities.

    Returns:
        ``(table, summary)``: per label the threshold, AUROC (NaN where undefined, as in
        ``res.csv``), its 10-resample interval, and the thresholded metrics; ``summary`` holds
        ``mean_auroc_undefined_as_0`` (the script's headline), ``mean_auroc_defined`` and the counts.
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    thr = balanced_accuracy_thresholds(y, s)
    rank = RankMetrics(y, s)
    auroc = rank.labels()[0][0]
    headline = float(np.mean(np.nan_to_num(auroc, nan=0.0)))
    r = np.round(s, 5)
    pred = r >= thr[None, :]
    tp = (pred & y).sum(axis=0)
    fp = (pred & ~y).sum(axis=0)
    fn = (~pred & y).sum(axis=0)
    tn = (~pred & ~y).sum(axis=0)
    sens, spec, ppv, npv = _zero_div(tp, tp + fn), _zero_div(tn, tn + fp), _zero_div(tp, tp + fp), _zero_div(tn, tn + fn)
    f1 = _zero_div(2 * ppv * sens, ppv + sens)
    boot = np.concatenate([RankMetrics(y, r).labels(w)[0] for w in bootstrap_weights(len(y), 10, seed=seed)])
    with np.errstate(invalid="ignore"):
        lo, hi = np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)
    table = pd.DataFrame({
        "n_pos": y.sum(axis=0), "threshold": thr, "auroc": auroc, "auroc_lo_10boot": lo, "auroc_hi_10boot": hi,
        "sensitivity": sens, "specificity": spec, "ppv": ppv, "npv": npv, "f1": f1,
    }, index=pd.Index(list(labels), name="label"))
    defined = np.isfinite(auroc)
    summary = {
        "mean_auroc_undefined_as_0": headline,
        "mean_auroc_defined": float(np.mean(auroc[defined])) if defined.any() else float("nan"),
        "n_labels": int(len(labels)),
        "n_undefined": int((~defined).sum()),
        "n_records": int(len(y)),
    }
    return table, summary
