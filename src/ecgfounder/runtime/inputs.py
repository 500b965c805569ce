"""What a runner is given, checked: windows (and what comes back for them), and int8's
calibration windows, which may come as a function called only when they are needed."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import SetupError
from ..signal.errors import SignalError

__all__ = ["check_windows", "check_finite", "check_calibration", "calibration_source"]


def check_windows(x: Any, leads: int, n_samples: int | None = None) -> np.ndarray:
    """``x`` as contiguous float32 ``(n, leads, n_samples)`` windows, or a :class:`SignalError` naming the
    shape expected (a graph back-end given another shape may fail obscurely or, OpenVINO, answer
    with the outputs of an earlier batch)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.ndim != 3 or a.shape[1] != leads or (n_samples is not None and a.shape[2] != n_samples):
        raise SignalError(f"windows must be float32 (n, {leads}, {n_samples or 'n_samples'}); got shape {a.shape}. "
                          "Make them with ecgfounder.preprocess (the model's preprocessing contract).")
    return a


def check_finite(scores: np.ndarray, feats: np.ndarray, windows: np.ndarray) -> None:
    """Refuse outputs holding NaN or infinity (checked on the outputs, which are small; a NaN or an
    infinity in the windows makes them so): they would reach the user as empty cells."""
    if np.isfinite(scores).all() and np.isfinite(feats).all():
        return
    bad = int(windows.size - np.count_nonzero(np.isfinite(windows)))
    if bad:
        raise SignalError(f"windows hold {bad} NaN or infinite values; the model would answer NaN. Make the windows "
                          "with ecgfounder.preprocess, which replaces NaN by 0.")
    raise SignalError("the model's outputs hold NaN or infinite values for finite windows "
                      f"(|x| up to {float(np.abs(windows).max()):.3g}); are the windows preprocessed (z-scored)?")


def check_calibration(calibration: Any, leads: int) -> np.ndarray | None:
    """``calibration`` as float32 ``(n > 0, leads, n_samples)`` windows (None stays None), else SetupError."""
    if calibration is None:
        return None
    a = np.asarray(calibration, dtype=np.float32)
    if a.ndim != 3 or a.shape[1] != leads or len(a) == 0:
        raise SetupError(f"calibration windows must be (n > 0, {leads}, n_samples); got shape {a.shape}. Make them "
                         "with ecgfounder.preprocess from real records.", "calibration")
    return a


def calibration_source(calibration: Any, leads: int) -> Callable[[], np.ndarray | None]:
    """``calibration`` (windows, None, or a function of no arguments giving either) as a function
    giving them checked: windows are checked now, a function is called once, when they are first
    needed (an int8 path, or ``auto`` measuring), so a run that needs none reads none."""
    if not callable(calibration):
        a = check_calibration(calibration, leads)
        return lambda: a
    memo: list[np.ndarray | None] = []

    def once() -> np.ndarray | None:
        if not memo:
            memo.append(check_calibration(calibration(), leads))
        return memo[0]

    return once
