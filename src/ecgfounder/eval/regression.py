"""Regression metrics (MAE, RMSE, R², bias) with bootstrap intervals.

``regression_report(y, yhat, n_boot=1000, seed=0, groups=None, ci_level=0.95) -> DataFrame``
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .bootstrap import bootstrap_weights, group_index, percentile_ci
from .errors import EvaluationError

__all__ = ["REGRESSION_METRICS", "regression_report"]

REGRESSION_METRICS = ("mae", "rmse", "r2", "bias")


def _regression_values(w: np.ndarray, y: np.ndarray, yhat: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted MAE, RMSE, R² and bias for each weight row ``w (B, n)``; ``y``/``yhat (n,)``."""
    e = yhat - y
    # R² is shift-invariant: centre y on its median (a value of y, so a constant y becomes exactly 0)
    # before the one-pass sum of squares, which cancels catastrophically when |mean| ≫ spread.
    y = y - np.median(y)
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
        constant; ``lo``/``hi`` are NaN when every record comes from one patient (or there is one
        record): a bootstrap of one unit draws the same set every time.
    """
    yy = np.asarray(y, dtype=np.float64).ravel()
    pp = np.asarray(yhat, dtype=np.float64).ravel()
    if yy.shape != pp.shape or yy.size == 0:
        raise EvaluationError(f"y and yhat must be non-empty and of one length; got {yy.shape} and {pp.shape}.")
    if not (np.isfinite(yy).all() and np.isfinite(pp).all()):
        raise EvaluationError("y and yhat must be finite; drop records with missing targets or failed predictions.")
    if n_boot < 0:
        raise EvaluationError(f"n_boot must be >= 0 (0 = no intervals); got {n_boot}.")
    point = _regression_values(np.ones((1, yy.size)), yy, pp)
    boot: dict[str, list[np.ndarray]] = {m: [] for m in REGRESSION_METRICS}
    n_units = yy.size if groups is None else group_index(groups, yy.size)[1]
    n_boot = n_boot if n_units >= 2 else 0  # one patient: no interval, not a zero-width one
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
