"""Calibration: scores that mean what they say, fitted on a validation split and stored with the weights.

* :func:`calibrate` fits one map per label on a **validation** split (a split named ``test``,
  ``reported`` or ``holdout`` is refused, and so is any record listed as reported):
  ``method="temperature"`` (Guo et al. 2017: ``sigmoid(logit(p) / T)`` per label, ``T`` by
  maximum likelihood; multi-class heads: one ``T`` for the softmax) or ``"isotonic"``
  (scikit-learn's :class:`~sklearn.isotonic.IsotonicRegression` per label, stored as its knots).
* :func:`attach_calibration` stores the result in the model's metadata (``task_meta["calibration"]``,
  written into the ``.safetensors`` header by :func:`ecgfounder.save_model`), bound to the labels and
  to :func:`weights_digest` of the weights; :func:`calibration_of` reads it back (refused when the
  labels or weights changed since); :func:`apply_calibration` maps scores (array or prediction
  table) through it.
* :func:`expected_calibration_error`, :func:`reliability_curve`, :func:`calibration_table` and
  :func:`plot_reliability` are what an evaluation reports before and after.

Scores are probabilities as :func:`ecgfounder.predict` returns them; logits are recovered as
``log(p / (1 - p))`` (clipped at 1e-7), so calibration needs no access to the model's head.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .._formats import META_COLUMNS
from ..errors import ECGFounderError
from ..models.description import weights_digest  # (re-exported: the digest a calibration is bound to)

__all__ = [
    "Calibration",
    "CalibrationError",
    "CALIBRATION_METHODS",
    "FIT_SPLITS",
    "MIN_PER_CLASS",
    "calibrate",
    "apply_calibration",
    "attach_calibration",
    "calibration_of",
    "weights_digest",
    "expected_calibration_error",
    "reliability_curve",
    "calibration_table",
    "plot_reliability",
]

CALIBRATION_METHODS = ("temperature", "isotonic")
FIT_SPLITS = ("val", "validation", "calibration", "tune")
REFUSED_SPLITS = ("test", "reported", "report", "holdout")
MIN_PER_CLASS = 10  # positives and negatives a label needs in the fitting split to be calibrated (else left as it is)
META_KEY = "calibration"
_EPS = 1e-7


class CalibrationError(ECGFounderError, ValueError):
    """A calibration that must not or cannot be fitted or applied."""


@dataclass(frozen=True)
class Calibration:
    """Per-label calibration maps (see the module documentation).

    Attributes:
        method: ``"temperature"`` or ``"isotonic"``.
        labels: label names, in the order of the maps.
        task: ``"multilabel"``, ``"binary"`` or ``"multiclass"``.
        temperatures: per label (one value for multi-class); 1.0 = unchanged.
        knots: isotonic only: per label ``(x, y)`` knot tuples (empty = unchanged).
        fitted_on: split name, number of records, positives per label, and ``unfitted``: the
            labels left unchanged (fewer than ``min_per_class`` positives or negatives).
        ece_before, ece_after: expected calibration error on the fitting split, per label.
        weights: :func:`weights_digest` of the model it was attached to (``None`` until attached);
            :func:`calibration_of` refuses it for other weights.
    """

    method: str
    labels: tuple[str, ...]
    task: str = "multilabel"
    temperatures: tuple[float, ...] = ()
    knots: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()
    fitted_on: Mapping[str, Any] = field(default_factory=dict)
    ece_before: tuple[float, ...] = ()
    ece_after: tuple[float, ...] = ()
    weights: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "labels": list(self.labels), "task": self.task,
                "temperatures": list(self.temperatures), "knots": [[list(x), list(y)] for x, y in self.knots],
                "fitted_on": dict(self.fitted_on), "ece_before": list(self.ece_before), "ece_after": list(self.ece_after),
                "weights": self.weights}

    @property
    def unchanged(self) -> frozenset[str]:
        """Labels this calibration leaves as the model scores them (too few positives when it was
        fitted: temperature 1, no isotonic knots); none for a multi-class temperature."""
        if self.task == "multiclass":
            return frozenset()
        same = [not x for x, _ in self.knots] if self.method == "isotonic" else [t == 1.0 for t in self.temperatures]
        return frozenset(lab for lab, s in zip(self.labels, same) if s) | frozenset(self.fitted_on.get("unfitted") or ())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibration":
        return cls(method=str(d["method"]), labels=tuple(d["labels"]), task=str(d.get("task", "multilabel")),
                   temperatures=tuple(float(v) for v in d.get("temperatures") or ()),
                   knots=tuple((tuple(map(float, x)), tuple(map(float, y))) for x, y in d.get("knots") or ()),
                   fitted_on=dict(d.get("fitted_on") or {}), ece_before=tuple(d.get("ece_before") or ()),
                   ece_after=tuple(d.get("ece_after") or ()), weights=d.get("weights"))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def _softmax_t(p: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(p, _EPS, None)) / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_temperature(y: np.ndarray, p: np.ndarray, multiclass: bool = False) -> float:
    from scipy.optimize import minimize_scalar

    if multiclass:
        def nll(log_t: float) -> float:
            q = _softmax_t(p, float(np.exp(log_t)))
            return float(-np.mean(np.log(np.clip(q[np.arange(len(y)), y], _EPS, None))))
    else:
        z = _logit(p)

        def nll(log_t: float) -> float:
            q = np.clip(_sigmoid(z / np.exp(log_t)), _EPS, 1 - _EPS)
            return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


def _fit_isotonic(y: np.ndarray, p: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    return tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))


def _truth_table(y_true: Any, labels: Sequence[str], records: list[str] | None) -> np.ndarray:
    """The truth table's values for ``labels`` (by name), its rows in the order of the scores'
    ``records`` where both tables name them (a table's row order is not trusted)."""
    if "record" in y_true.columns and records is not None:
        ids = y_true["record"].astype(str)
        if ids.duplicated().any():
            raise CalibrationError(f"y_true lists record(s) {sorted(set(ids[ids.duplicated()]))[:3]} twice; give one row per record.")
        missing = sorted(set(records) - set(ids))
        if missing:
            raise CalibrationError(f"{len(missing)} record(s) of the scores have no row in y_true (e.g. {missing[:3]}); "
                                   "give the truth of every scored record.")
        y_true = y_true.set_index(ids).loc[records]
    cols = [c for c in y_true.columns if c not in META_COLUMNS]
    if set(labels) <= set(cols):
        return y_true[list(labels)].to_numpy()
    if len(cols) in (1, len(labels)) and not set(cols) & set(labels):  # unnamed truths: class indices, or one per label
        return y_true[cols].to_numpy()
    raise CalibrationError(f"y_true has no column for label(s) {[lab for lab in labels if lab not in cols][:5]} "
                           f"(its columns: {cols[:5]}); name its columns after the labels.")


def _as_arrays(y_true: Any, scores: Any, labels: Sequence[str] | None):
    import pandas as pd

    records = None
    if isinstance(scores, pd.DataFrame):
        if "record" in scores.columns:
            records = scores["record"].astype(str).tolist()
        if labels is None:
            labels = [c for c in scores.columns if c not in META_COLUMNS]
        missing = [lab for lab in labels if lab not in scores.columns]
        if missing:
            raise CalibrationError(f"scores table has no column for label(s) {missing[:5]}; pass the prediction table of the same model.")
        scores = scores[list(labels)].to_numpy(dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    p = p[:, None] if p.ndim == 1 else p
    if labels is None:
        labels = [f"output_{i}" for i in range(p.shape[1])]
    if p.shape[1] != len(labels):
        raise CalibrationError(f"{p.shape[1]} score columns for {len(labels)} labels; give one label per column.")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise CalibrationError("scores must be finite probabilities in [0, 1]; calibrate the outputs of predict(), not logits.")
    if isinstance(y_true, pd.DataFrame):
        y_true = _truth_table(y_true, [str(x) for x in labels], records)
    try:
        y = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError("y_true must be numbers (0/1 truths, or class indices for a multi-class head); "
                               "drop id columns such as 'record'.") from None
    if len(y) != len(p):
        raise CalibrationError(f"y_true has {len(y)} rows but the scores {len(p)}; give one truth per scored record.")
    return y, p, tuple(str(x) for x in labels), records


def _class_indices(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Multi-class truths as indices: ``(n,)`` or ``(n, 1)`` indices, or ``(n, n_classes)`` one-hot rows."""
    if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        if not (np.isin(y, (0.0, 1.0)).all() and (y.sum(axis=1) == 1).all()):
            raise CalibrationError(f"y_true of shape {y.shape} is read as one-hot rows, but not every row holds exactly one 1; "
                                   "give one-hot rows or (n,) class indices.")
        return y.argmax(axis=1)
    yi = y.reshape(len(y), -1)
    if yi.shape[1] != 1:
        raise CalibrationError(f"y_true has shape {y.shape}; a multi-class head ({n_classes} classes) needs (n,) class "
                               f"indices or (n, {n_classes}) one-hot rows.")
    yi = yi[:, 0]
    bad = (yi != np.round(yi)) | (yi < 0) | (yi >= n_classes)
    if bad.any():
        raise CalibrationError(f"class index {yi[bad][0]:g} is not one of 0-{n_classes - 1} (the head's {n_classes} classes); "
                               "give class indices into the score columns.")
    return yi.astype(int)


def calibrate(
    y_true: Any,
    scores: Any,
    *,
    labels: Sequence[str] | None = None,
    method: str = "temperature",
    split: str = "val",
    task: str | None = None,
    model: Any = None,
    reported_records: Sequence[str] | None = None,
    n_bins: int = 15,
    min_per_class: int = MIN_PER_CLASS,
) -> Calibration:
    """Fit per-label calibration on a validation split; attach it to ``model`` if given.

    Args:
        y_true: ``(n, L)`` 0/1 truths (multi-label/binary) or ``(n,)`` class indices (multi-class);
            or a table: columns matched to the labels by name, rows to the scores' ``record`` column.
        scores: ``(n, L)`` probabilities of the same records, or the table of
            :func:`ecgfounder.predict` (label columns are picked by name).
        labels: label names of the columns (default: the table's label columns or the model's labels).
        method: ``"temperature"`` or ``"isotonic"`` (binary and multi-label heads).
        split: the name of the split the scores come from; one of :data:`FIT_SPLITS`. The split whose
            numbers are reported (``test``) is refused: calibrating on it would leak.
        task: ``multilabel``/``binary``/``multiclass`` (default: the model's, else multilabel).
        model: a :class:`~ecgfounder.Net1D`; the calibration is stored in its metadata.
        reported_records: record ids of the reported split; fitting refuses if ``scores`` (a table
            with a ``record`` column) shares any of them.
        min_per_class: a label (binary/multi-label) is fitted only where the split holds at least
            this many positives and as many negatives (default 10): fitted on one or two positives a
            temperature runs to its bound and an isotonic map sends most scores to 0.  Labels below it
            are left unchanged, named in a warning and in ``fitted_on["unfitted"]``; no label reaching
            it is refused.
    """
    if method not in CALIBRATION_METHODS:
        raise CalibrationError(f"unknown calibration method {method!r}; choose one of {CALIBRATION_METHODS}.")
    s = str(split).strip().lower()
    if s in REFUSED_SPLITS or s not in FIT_SPLITS:
        raise CalibrationError(
            f"split={split!r}: calibration is fitted on a validation split only, never on the split whose results "
            f"are reported; choose one of {FIT_SPLITS} and keep the test split for the reported numbers."
        )
    if model is not None:
        if labels is None:
            labels = tuple(model.labels)
        task = task or dict(model.task_meta or {}).get("task", "multilabel")
    task = task or "multilabel"
    if task == "regression":
        raise CalibrationError("task 'regression': probability calibration applies to classification heads only.")
    y, p, labels, records = _as_arrays(y_true, scores, labels)
    if reported_records is not None and records is not None:
        shared = sorted(set(records) & {str(r) for r in reported_records})
        if shared:
            raise CalibrationError(
                f"{len(shared)} record(s) of the scores belong to the reported split (e.g. {shared[:3]}); "
                "fit calibration on validation records only."
            )
    if len(p) < 10:
        raise CalibrationError(f"{len(p)} records are too few to fit calibration; use a validation split of at least 10 (hundreds preferred).")
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, (int, np.integer)) or min_per_class < 1:
        raise CalibrationError(f"min_per_class={min_per_class!r}: give a positive integer, the positives and negatives a "
                               f"label needs to be fitted (default {MIN_PER_CLASS}).")
    temps: list[float] = []
    unfitted: list[str] = []
    knots: list[tuple[tuple[float, ...], tuple[float, ...]]] = []
    if task == "multiclass":
        if not np.isfinite(y).all():
            raise CalibrationError(f"y_true has {int((~np.isfinite(y)).sum())} missing (NaN) class(es); leave out the "
                                   "records whose class is unknown.")
        if method != "temperature":
            raise CalibrationError("multi-class heads are calibrated with method='temperature' (one temperature for the softmax).")
        yi = _class_indices(y, p.shape[1])
        if len(np.unique(yi)) < 2:
            raise CalibrationError(f"every record of the split is of class {labels[int(yi[0])]!r}: a temperature cannot be "
                                   "fitted on one class; use a validation split holding at least two classes.")
        temps = [_fit_temperature(yi, p, multiclass=True)]
        onehot = np.eye(p.shape[1])[yi]
    else:
        y = y.reshape(len(y), -1)
        if y.shape != p.shape:
            raise CalibrationError(f"y_true has shape {y.shape} but scores {p.shape}; give one 0/1 truth per score.")
        known = ~np.isnan(y)  # NaN: that label not assessed for that record (fitted on the others)
        if not np.isin(y[known], (0.0, 1.0)).all():
            raise CalibrationError(f"y_true must be 0/1 per label (NaN where not assessed); found "
                                   f"{y[known & ~np.isin(y, (0.0, 1.0))][0]:g} (multi-class class indices need "
                                   "task='multiclass').")
        pos, seen = np.nansum(y, axis=0), known.sum(axis=0)
        if not ((pos > 0) & (pos < seen)).any():
            raise CalibrationError(f"no label has both positives and negatives among the {len(y)} records (e.g. "
                                   f"{labels[0]!r}: {int(pos[0])} positive); nothing can be fitted: use a larger "
                                   "validation split.")
        least = np.minimum(pos, seen - pos)  # the rarer class of each label
        fit = least >= min_per_class
        if not fit.any():
            j = int(np.argmax(least))
            raise CalibrationError(f"no label has {min_per_class} positives and {min_per_class} negatives among the {len(y)} "
                                   f"records (the most: {labels[j]!r}, {int(pos[j])} positive(s) of {int(seen[j])}); a map fitted "
                                   "on so few is noise: use a larger validation split, or min_per_class=N (evaluate: --min-positives N) to accept fewer.")
        unfitted = [labels[j] for j in np.flatnonzero(~fit)]
        if unfitted:
            warnings.warn(f"{len(unfitted)} label(s) left uncalibrated, fewer than {min_per_class} positives or negatives "
                          f"in the {len(y)} records (e.g. {unfitted[:3]}); their scores stay as the model gives them "
                          "(a larger validation split fits them; min_per_class=N, evaluate's --min-positives N, accepts fewer).", stacklevel=2)
        for j in range(p.shape[1]):
            yj, pj = y[known[:, j], j], p[known[:, j], j]
            both = bool(fit[j])
            if method == "temperature":
                temps.append(_fit_temperature(yj, pj) if both else 1.0)
            else:
                knots.append(_fit_isotonic(yj, pj) if both else ((), ()))
        onehot = y
    cal = Calibration(method, labels, task, tuple(temps), tuple(knots))
    after = apply_calibration(p, cal)

    known = ~np.isnan(onehot)

    def ece(q: np.ndarray) -> tuple[float, ...]:  # per label, on the records it was assessed for
        return tuple(float(expected_calibration_error(onehot[known[:, j], j], q[known[:, j], j], n_bins)[0])
                     if known[:, j].any() else float("nan") for j in range(q.shape[1]))

    cal = Calibration(
        method, labels, task, tuple(temps), tuple(knots),
        fitted_on={"split": s, "n": int(len(p)), "n_pos": [int(v) for v in np.nansum(onehot, axis=0)],
                   **({} if task == "multiclass" else {"unfitted": unfitted, "min_per_class": int(min_per_class)})},
        ece_before=ece(p), ece_after=ece(after),
    )
    return attach_calibration(model, cal) if model is not None else cal


def apply_calibration(scores: Any, calib: Calibration | Mapping[str, Any]) -> Any:
    """Calibrated probabilities.  ``scores``: an ``(n, L)`` array whose columns are
    ``calib.labels``, or a prediction table (its label columns are replaced; others kept)."""
    import pandas as pd

    cal = calib if isinstance(calib, Calibration) else Calibration.from_dict(calib)
    if isinstance(scores, pd.DataFrame):
        missing = [lab for lab in cal.labels if lab not in scores.columns]
        if missing:
            raise CalibrationError(f"the table has no column for calibrated label(s) {missing[:5]}; was it predicted by another model?")
        out = scores.copy()
        out[list(cal.labels)] = apply_calibration(scores[list(cal.labels)].to_numpy(dtype=np.float64), cal)
        return out
    p = np.asarray(scores, dtype=np.float64)
    one = p.ndim == 1
    p2 = p[None, :] if one else p
    if p2.shape[1] != len(cal.labels):
        raise CalibrationError(f"{p2.shape[1]} score columns but the calibration covers {len(cal.labels)} labels; pass scores of the same head.")
    if cal.task == "multiclass":
        out = _softmax_t(p2, cal.temperatures[0])
    elif cal.method == "temperature":
        out = _sigmoid(_logit(p2) / np.asarray(cal.temperatures)[None, :])
    else:
        out = p2.copy()
        for j, (x, y) in enumerate(cal.knots):
            if x:
                out[:, j] = np.interp(p2[:, j], x, y)
    return out[0] if one else out


def attach_calibration(model: Any, calib: Calibration) -> Calibration:
    """Store ``calib`` in the model's metadata (``task_meta["calibration"]``), which
    :func:`ecgfounder.save_model` writes into the checkpoint, bound to these weights
    (:func:`weights_digest`).  Returns the stored calibration."""
    names = tuple(model.labels or ())
    if tuple(calib.labels) != names:
        raise CalibrationError(f"calibration covers labels {list(calib.labels)[:5]}… but the model's head has "
                               f"{list(names)[:5]}…; fit it on this model's predictions over all its labels.")
    digest = weights_digest(model)
    if calib.weights is not None and calib.weights != digest:
        raise CalibrationError(f"the calibration was fitted for weights {calib.weights[:12]}…, not these ({digest[:12]}…); "
                               "fit one on this model's predictions of a validation split.")
    calib = Calibration.from_dict({**calib.to_dict(), "weights": digest})
    model.task_meta = {**dict(model.task_meta or {}), META_KEY: calib.to_dict()}  # replaces model.description
    return calib


def calibration_of(model: Any) -> Calibration | None:
    """The calibration stored with ``model``'s weights, or ``None``; refused when the weights or
    labels changed since it was attached (further training, other weights loaded)."""
    d = dict(model.task_meta or {}).get(META_KEY)
    if not d:
        return None
    cal = Calibration.from_dict(d)
    if tuple(cal.labels) != tuple(model.labels or ()):
        raise CalibrationError(f"the stored calibration covers labels {list(cal.labels)[:5]}… but the model's head has "
                               f"{list(model.labels or ())[:5]}…; fit a new one with calibrate(..., model=model).")
    now = weights_digest(model) if cal.weights is not None else None
    if now is not None and cal.weights != now:
        raise CalibrationError(f"the stored calibration was fitted for other weights ({cal.weights[:12]}…, these are "
                               f"{now[:12]}…: trained further or replaced since); fit a new one with "
                               "calibrate(..., model=model) on a validation split.")
    return cal


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((p * n_bins).astype(int), n_bins - 1)


def _binned_inputs(y_true: Any, prob: Any, n_bins: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(y, p)`` as float arrays of one shape, checked: probabilities finite and in [0, 1] (NaN
    would otherwise fall into a negative bin), truth 0/1, ``n_bins`` a positive integer."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(prob, dtype=np.float64)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise CalibrationError(f"n_bins must be a positive integer; got {n_bins!r}.")
    if y.shape != p.shape:
        raise CalibrationError(f"y_true has shape {y.shape} but probabilities {p.shape}; give one 0/1 truth per probability.")
    bad = ~(np.isfinite(p) & (p >= 0) & (p <= 1))
    if bad.any():
        raise CalibrationError(f"probabilities must be finite and in [0, 1]; found {float(p[bad].ravel()[0])} "
                               f"({int(bad.sum())} such value(s)); leave out records whose prediction failed.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise CalibrationError(f"y_true must be 0/1; found {float(y[~np.isin(y, (0.0, 1.0))].ravel()[0])} (missing labels must be removed).")
    return y, p


def expected_calibration_error(y_true: Any, prob: Any, n_bins: int = 15) -> np.ndarray:
    """ECE per label: ``sum_b (n_b / n) |mean(y)_b - mean(p)_b|`` over ``n_bins`` equal-width bins
    of the predicted probability (Naeini et al. 2015; scikit-learn offers the curve, not the number)."""
    y, p = _binned_inputs(y_true, prob, n_bins)
    y, p = (y[:, None], p[:, None]) if p.ndim == 1 else (y, p)
    out = np.empty(p.shape[1])
    for j in range(p.shape[1]):
        b = _bins(p[:, j], n_bins)
        n = np.bincount(b, minlength=n_bins)
        gap = np.abs(np.bincount(b, y[:, j], n_bins) - np.bincount(b, p[:, j], n_bins))
        out[j] = gap.sum() / max(n.sum(), 1)
    return out


def reliability_curve(y_true: Any, prob: Any, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean predicted, observed frequency, count)`` per non-empty bin, all labels pooled."""
    y, p = _binned_inputs(np.ravel(y_true), np.ravel(prob), n_bins)
    b = _bins(p, n_bins)
    n = np.bincount(b, minlength=n_bins)
    keep = n > 0
    return (np.bincount(b, p, n_bins)[keep] / n[keep], np.bincount(b, y, n_bins)[keep] / n[keep], n[keep])


def calibration_table(y_true: Any, before: Any, after: Any, labels: Sequence[str], n_bins: int = 15):
    """DataFrame ``label, n, n_pos, ece_before, ece_after`` (evaluation's calibration section)."""
    import pandas as pd

    y = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    return pd.DataFrame({"label": list(labels), "n": len(y), "n_pos": y.sum(axis=0).astype(int),
                         "ece_before": expected_calibration_error(y, before, n_bins),
                         "ece_after": expected_calibration_error(y, after, n_bins)})


def plot_reliability(y_true: Any, before: Any, after: Any = None, *, title: str = "", n_bins: int = 15):
    """Reliability diagram (all given labels pooled): observed frequency against mean predicted
    probability per bin, before (and after) calibration, ECE in the legend, bin counts below.
    Returns a matplotlib ``Figure`` (save with ``fig.savefig(path)``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 5.2), dpi=120)
    ax = fig.add_axes((0.14, 0.36, 0.8, 0.56))
    hx = fig.add_axes((0.14, 0.09, 0.8, 0.17), sharex=ax)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=0.8, label="perfect")
    y = np.asarray(y_true, dtype=np.float64).ravel()
    for name, probs, colour in (("before", before, "#c0392b"), ("after", after, "#2471a3")):
        if probs is None:
            continue
        mp, fr, n = reliability_curve(y, probs, n_bins)
        ece = expected_calibration_error(y, np.asarray(probs, dtype=np.float64).ravel(), n_bins)[0]
        ax.plot(mp, fr, marker="o", markersize=3, color=colour, label=f"{name} (ECE {ece:.3f})")
        hx.hist(np.asarray(probs).ravel(), bins=n_bins, range=(0, 1), histtype="step", color=colour)
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.set_ylabel("observed frequency")
    ax.set_title(title or "Reliability", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    hx.set_xlabel("predicted probability")
    hx.set_ylabel("records", fontsize=8)
    hx.set_yscale("log")
    return fig
