"""Pure signal operations on ``(..., n_samples)`` arrays; every one takes ``fs`` in Hz explicitly.

They act along the last axis, so a whole ``(n_leads, n_samples)`` recording is filtered in one
call (the per-row result is identical to filtering each lead alone).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import ndimage, signal as sps

__all__ = ["notch", "bandpass", "median_baseline", "remove_baseline", "zscore", "resample"]


@lru_cache(maxsize=64)
def _notch_coeffs(f0: float, q: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    return sps.iirnotch(f0, q, fs=fs)


@lru_cache(maxsize=64)
def _band_coeffs(low: float, high: float, order: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    return sps.butter(order, [low, high], btype="bandpass", fs=fs)


def notch(x: np.ndarray, fs: float, f0: float = 50.0, q: float = 30.0) -> np.ndarray:
    """IIR notch at ``f0`` Hz (quality ``q``), zero-phase (``filtfilt``, default padding)."""
    if f0 >= fs / 2:
        raise ValueError(f"notch frequency {f0} Hz is not below the Nyquist frequency {fs / 2} Hz of fs={fs}.")
    b, a = _notch_coeffs(float(f0), float(q), float(fs))
    return sps.filtfilt(b, a, x, axis=-1)


def bandpass(x: np.ndarray, fs: float, low: float = 0.67, high: float = 40.0, order: int = 4) -> np.ndarray:
    """Butterworth band-pass ``low``–``high`` Hz in (b, a) form, zero-phase (``filtfilt``)."""
    if not 0 < low < high < fs / 2:
        raise ValueError(f"band-pass {low}–{high} Hz needs 0 < low < high < fs/2 = {fs / 2} Hz.")
    b, a = _band_coeffs(float(low), float(high), int(order), float(fs))
    return sps.filtfilt(b, a, x, axis=-1)


def median_baseline(x: np.ndarray, fs: float, window_s: float = 0.4) -> np.ndarray:
    """Running median over ``int(window_s * fs) + 1`` samples with zero padding at the edges
    (the semantics of ``scipy.signal.medfilt``), computed along the last axis."""
    k = int(window_s * fs) + 1
    if k % 2 == 0:  # medfilt requires odd windows; int(0.4*fs)+1 is odd for even fs*0.4
        k += 1
    size = (1,) * (np.ndim(x) - 1) + (k,)
    return ndimage.median_filter(x, size=size, mode="constant", cval=0.0)


def remove_baseline(x: np.ndarray, fs: float, window_s: float = 0.4) -> np.ndarray:
    """``x`` minus its running-median baseline (see :func:`median_baseline`)."""
    return x - median_baseline(x, fs, window_s)


def zscore(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """One z-score over the last two axes: ``(x - mean) / (std + eps)``, population std."""
    axes = tuple(range(max(0, np.ndim(x) - 2), np.ndim(x)))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return (x - mean) / (std + eps)


def resample(x: np.ndarray, fs: float, fs_new: float) -> np.ndarray:
    """Polyphase resampling along the last axis from ``fs`` to ``fs_new`` Hz (anti-aliased)."""
    if fs == fs_new:
        return x
    ratio = Fraction(float(fs_new) / float(fs)).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
