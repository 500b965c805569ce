"""Operating thresholds, chosen on one split and applied to another.

API:

``choose_thresholds(y_true, y_score, method="youden", target=0.9) -> ndarray (L,)``
    One threshold per label on the score scale; a record is called positive when
    ``score >= threshold``.  Methods:

    - ``"youden"``: maximise sensitivity + specificity − 1 (Youden's J) over the ROC points;
      ties go to the highest threshold (fewest positive calls).
    - ``"sensitivity"``: the highest threshold whose sensitivity is at least ``target``
      (the most specific operating point meeting the sensitivity target).
    - ``"f1"``: maximise F1 over the precision–recall points.

    Labels without positives or without negatives in the tuning split get NaN (no threshold);
    their thresholded metrics are then reported as undefined.
``save_thresholds(path, labels, thresholds, **info)`` / ``load_thresholds(path, labels)``
    A CSV (``label, threshold, method, target, n_pos, n_neg``) so that thresholds chosen on
    one dataset or run are reused on another (``--thresholds FILE``).

The ROC points (and the counts behind the precision–recall points) come from
:func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from .bootstrap import as_binary, check_mask
from ..errors import ECGFounderError
from .errors import EvaluationError

__all__ = ["THRESHOLD_METHODS", "choose_thresholds", "save_thresholds", "load_thresholds", "as_threshold_array",
           "ThresholdsNotFoundError"]


class ThresholdsNotFoundError(ECGFounderError, FileNotFoundError):
    """A thresholds file that is not there; ``filename`` is its path."""

    def __init__(self, path: Path):
        self.message = (
            f"thresholds file {path} {'is a folder' if path.is_dir() else 'not found'}; give the path of a thresholds "
            "CSV: one written by save_thresholds(), or the thresholds.csv of an evaluation's output folder "
            "(CLI: ecgfounder evaluate ... --out DIR writes DIR/thresholds.csv).")
        super().__init__(errno.EISDIR if path.is_dir() else errno.ENOENT, self.message, str(path))

    def __str__(self) -> str:  # the message alone, not OSError's "[Errno 2] ...: 'path'"
        return self.message

    def __reduce__(self):  # (pickled from a worker: rebuilt from the path)
        return type(self), (Path(self.filename),)

THRESHOLD_METHODS = ("youden", "sensitivity", "f1")


def _finite_top(thr: float, scores: np.ndarray) -> float:
    # roc_curve's first threshold is +inf ("call nothing"); keep files finite and meaningful.
    if np.isinf(thr):
        return float(np.nextafter(np.max(scores), np.inf))
    return float(thr)


def _one(y: np.ndarray, s: np.ndarray, method: str, target: float) -> float:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return np.nan
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    n_neg = y.size - n_pos
    tp = np.rint(tpr * n_pos).astype(np.int64)
    fp = np.rint(fpr * n_neg).astype(np.int64)
    if method == "f1":
        # F1 = 2tp / (tp + fp + P) over the same points as the precision-recall curve, its ties
        # found exactly in integers (2·p·r/(p + r) in floats can make equal F1 differ in the last bit).
        num, den = 2 * tp, tp + fp + n_pos
        b = int(np.argmax(num / den))
        k = int(np.flatnonzero(num * den[b] == num[b] * den)[0])  # thresholds descend: highest among ties
        return _finite_top(thr[k], s)
    if method == "youden":
        # J = tp/P − fp/N compared exactly as tp·N − fp·P in integers: tpr − fpr in floats can
        # make two equal J differ in the last bit and break the tie-break below.
        j = tp * n_neg - fp * n_pos
        k = int(np.argmax(j))  # thresholds descend: first maximum = highest threshold
    else:
        ok = np.flatnonzero(tpr >= target - 1e-12)
        k = int(ok[0])
    return _finite_top(thr[k], s)


def choose_thresholds(
    y_true: Any,
    y_score: Any,
    method: str = "youden",
    target: float = 0.9,
    *,
    evaluable: Any = None,
) -> np.ndarray:
    """Choose one operating threshold per label on a tuning split.

    Args:
        y_true: ``(n, L)`` binary truths of the tuning split (1-D = one label).
        y_score: ``(n, L)`` scores of the same records.
        method: ``"youden"``, ``"sensitivity"`` or ``"f1"`` (see module docstring).
        target: sensitivity to reach for ``method="sensitivity"`` (0 < target ≤ 1).
        evaluable: bool ``(n, L)``: only these entries take part (default all; see
            :mod:`ecgfounder.eval.metrics`).

    Returns:
        ``(L,)`` float thresholds on the score scale, NaN for labels without both classes.
    """
    if method not in THRESHOLD_METHODS:
        raise EvaluationError(f"unknown threshold method {method!r}; choose one of {THRESHOLD_METHODS}.")
    if method == "sensitivity" and not 0 < target <= 1:
        raise EvaluationError(f"target sensitivity must be in (0, 1]; got {target}.")
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y, s = y[:, None], s[:, None]
    if y.shape != s.shape:
        raise EvaluationError(f"y_true and y_score must have one shape; got {y.shape} and {s.shape}.")
    if not np.isfinite(s).all():
        raise EvaluationError("y_score holds non-finite values; remove failed predictions before choosing thresholds.")
    yb = as_binary(y)  # NaN (missing) or other codes raise instead of becoming positives
    mask = check_mask(evaluable, yb.shape)  # a mask of another shape raises instead of being reshaped
    m = np.ones_like(yb) if mask is None else mask | yb
    return np.array([_one(yb[m[:, j], j], s[m[:, j], j], method, target) for j in range(y.shape[1])], dtype=np.float64)


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
        raise EvaluationError(f"thresholds must hold one value per label ({n}); got shape {arr.shape}.")
    return arr


def save_thresholds(
    path: str | os.PathLike,
    labels: Sequence[str],
    thresholds: Sequence[float] | np.ndarray,
    *,
    method: str = "",
    target: float | None = None,
    n_pos: Sequence[int] | None = None,
    n_neg: Sequence[int] | None = None,
    source: str = "",
) -> Path:
    """Write thresholds as CSV (one row per label); NaN is written as an empty field."""
    labels = list(labels)
    thr = np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (len(labels),):
        raise EvaluationError(f"{thr.shape[0] if thr.ndim else 1} thresholds for {len(labels)} labels.")
    df = pd.DataFrame({"label": labels, "threshold": thr})
    df["method"] = method
    df["target"] = target if target is not None else np.nan
    if n_pos is not None:
        df["n_pos"] = list(n_pos)
    if n_neg is not None:
        df["n_neg"] = list(n_neg)
    df["source"] = source
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(p, index=False, float_format="%.17g")
    return p


def load_thresholds(path: str | os.PathLike, labels: Sequence[str] | None = None) -> pd.Series:
    """Read a thresholds CSV (columns ``label``, ``threshold``).

    Args:
        path: file written by :func:`save_thresholds` (or any CSV with those two columns).
        labels: if given, the result is aligned to these labels; labels missing from the file
            raise ``ValueError`` naming them (a silent NaN would hide a mismatch).

    Returns:
        Series ``label -> threshold`` (NaN = no threshold).
    """
    p = Path(path)
    if not p.is_file():
        raise ThresholdsNotFoundError(p)
    try:
        df = pd.read_csv(p, keep_default_na=False, na_values=[""], dtype={"label": str})
    except (ValueError, UnicodeDecodeError) as exc:  # empty, not CSV, not text
        raise EvaluationError(f"{p}: not a readable thresholds CSV ({' '.join(str(exc).split())[:120]}); give a file "
                              "with columns 'label' and 'threshold'.") from None
    missing_cols = {"label", "threshold"} - set(df.columns)
    if missing_cols:
        raise EvaluationError(f"{p}: thresholds file needs columns 'label' and 'threshold'; missing {sorted(missing_cols)} (has {list(df.columns)}).")
    if df["label"].duplicated().any():
        raise EvaluationError(f"{p}: label(s) listed twice: {sorted(df.loc[df['label'].duplicated(), 'label'])[:5]}.")
    values = np.empty(len(df))
    for i, (label, v) in enumerate(zip(df["label"], df["threshold"])):
        try:
            values[i] = float(v)
        except (TypeError, ValueError):
            raise EvaluationError(f"{p}: threshold {v!r} of label {label!r} is not a number; give a number, or leave "
                                  "the cell empty for no threshold.") from None
    ser = pd.Series(values, index=df["label"].astype(str))
    if labels is not None:
        labels = [str(x) for x in labels]
        missing = [lab for lab in labels if lab not in ser.index]
        if missing:
            raise EvaluationError(
                f"{p}: no threshold for {len(missing)} label(s) being evaluated, e.g. {missing[:3]}; "
                "use a thresholds file from a run on the same label set."
            )
        ser = ser.reindex(labels)
    return ser
