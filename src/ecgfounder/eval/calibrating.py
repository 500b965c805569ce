"""The calibration step of an evaluation: which calibration the reported scores go through.

``evaluation_calibration(method, labels=..., y=..., scores=..., records=..., tune=..., test=..., model=...)``
    ``(Calibration or None, settings)``.  A calibration stored with the model's weights
    (:func:`ecgfounder.explain.calibration.calibration_of`) is used as it is; otherwise, when
    ``method`` is ``"temperature"`` or ``"isotonic"``, one is fitted on the **tuning** rows only
    (the reported records are passed to :func:`~ecgfounder.explain.calibration.calibrate`, which
    refuses any overlap); otherwise ``None`` (the report then says "not calibrated").
    With ``save`` the fitted calibration is stored with the model's weights by
    :func:`ecgfounder.save_model`, so ``predict --calibrated`` applies it.

Fitting, applying and ECE live in :mod:`ecgfounder.explain.calibration`; this module only decides
which rows a calibration may see and records where it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import EvaluationError

__all__ = ["evaluation_calibration"]


def evaluation_calibration(
    method: str | None,
    *,
    labels: Sequence[str],
    y: np.ndarray,
    scores: np.ndarray,
    records: Sequence[str],
    tune: np.ndarray,
    test: np.ndarray,
    model: Any = None,
    save: str | os.PathLike | None = None,
    min_per_class: int | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    """The calibration to apply to ``scores`` (columns ``labels``) and its settings entry.

    Args:
        method: ``None`` (use the model's stored calibration, if any), ``"temperature"`` or ``"isotonic"``.
        labels: names of the columns of ``y`` and ``scores``.
        y, scores: ``(n, L)`` 0/1 truths and probabilities of all rows.
        records: ``(n,)`` record ids; ``tune``/``test``: bool masks of the tuning and reported rows.
        model: the evaluated model (its stored calibration; where ``save`` writes).
        min_per_class: positives and negatives a label needs on the tuning rows to be fitted
            (the evaluation's ``min_positives``; default that of :func:`~ecgfounder.explain.calibrate`).
        save: path for the model with the fitted calibration in its metadata.
    """
    from ..explain.calibration import CALIBRATION_METHODS, calibrate, calibration_of

    stored = calibration_of(model) if model is not None else None
    if stored is not None:
        if save:
            raise EvaluationError(f"save_calibrated={str(save)!r}: the model already carries a {stored.method} calibration; "
                                  "evaluate the uncalibrated weights to fit and save a new one.")
        info = {"method": stored.method, "fitted_on": {k: v for k, v in stored.fitted_on.items() if k != "n_pos"},
                "source": "stored with the weights"}
        return stored, {**info, "requested_method_ignored": method} if method else info
    if method is None:
        if save:
            raise EvaluationError(f"save_calibrated={str(save)!r} needs calibrate='temperature' or 'isotonic' to fit one.")
        return None, None
    if method not in CALIBRATION_METHODS:
        raise EvaluationError(f"unknown calibrate={method!r}; choose one of {CALIBRATION_METHODS}.")
    tune, test = np.asarray(tune, dtype=bool), np.asarray(test, dtype=bool)
    if not tune.any():
        raise EvaluationError(f"calibrate={method!r} needs a tuning split to fit on (never the reported records); "
                              "drop thresholds or give a tuning split, or evaluate a model saved with its calibration.")
    records = np.asarray(records, dtype=str)
    table = pd.DataFrame(np.asarray(scores, dtype=np.float64)[tune], columns=list(labels))
    table.insert(0, "record", records[tune])
    task = dict(getattr(model, "task_meta", None) or {}).get("task", "multilabel") if model is not None else "multilabel"
    cal = calibrate(np.asarray(y)[tune].astype(np.float64), table, labels=list(labels), method=method, split="tune",
                    task=task, reported_records=list(records[test]),
                    **({} if min_per_class is None else {"min_per_class": int(min_per_class)}))
    info = {"method": method, "fitted_on": {**{k: v for k, v in cal.fitted_on.items() if k != "n_pos"}, "labels_fitted": _n_fitted(cal)},
            "source": "fitted on the tuning split by this evaluation"}
    if save:
        info["saved_to"] = str(_save(model, cal, save))
    return cal, info


def _n_fitted(cal: Any) -> int:
    if cal.method == "temperature":
        return int(sum(t != 1.0 for t in cal.temperatures))
    return int(sum(bool(x) for x, _ in cal.knots))


def _save(model: Any, cal: Any, path: str | os.PathLike) -> Path:
    """Write ``model`` with ``cal`` in its metadata; the evaluated model itself is left unchanged
    (its metadata is part of the prediction cache's key)."""
    from ..explain.calibration import attach_calibration
    from ..models.loading import save_model

    if model is None:
        raise EvaluationError(f"save_calibrated={str(path)!r}: a label-table evaluation has no model to save; "
                              "the fitted calibration is in the report's calibration.json.")
    before = model.task_meta
    try:
        attach_calibration(model, cal)
        return save_model(model, path)
    finally:
        model.task_meta = before
