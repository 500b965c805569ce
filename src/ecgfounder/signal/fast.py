"""The published filter chain, computed for all leads (and records) at once.

The published code filters each lead separately (``scipy.signal.filtfilt`` twice, then
``scipy.signal.medfilt``), paying Python and set-up overhead 36 times per 12-lead record and, with
``scipy.ndimage.median_filter`` on a 2-D array, falling off scipy's fast 1-D rank-filter path.
Here the same operations run on the whole ``(..., n_samples)`` array, with the primitives of
:mod:`ecgfounder.signal.filters`:

* zero-phase IIR filtering: exactly the steps of ``scipy.signal.filtfilt(b, a, x)`` with its
  default odd-extension padding (``3 * max(len(a), len(b))`` samples) and ``lfilter_zi`` initial
  conditions, with the coefficients and initial state cached, and one ``lfilter`` call per pass
  over all rows;
* running median with zero padding (``scipy.signal.medfilt`` semantics): every row is laid into
  one 1-D buffer with ``k // 2`` zeros between rows, so a single call of scipy's 1-D rank filter
  (``scipy.ndimage.median_filter`` on a 1-D array, ``mode="constant"``) gives each row's medfilt:
  a window never reaches past the zeros into the next row.

The result equals the per-lead reference (:func:`reference_chain`) to floating-point rounding
(max |Δ| about 1e-15 before the z-score).  All arrays are float64, rates in Hz.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from .filters import (  # noqa: F401 - primitives re-exported for the torch chain and tests
    _band_plan, _notch_plan, bandpass, filtfilt_ba, median_kernel, notch, remove_baseline, running_median,
)

__all__ = ["filtfilt_ba", "running_median", "filter_chain", "reference_chain", "median_kernel"]


def filter_chain(
    x: np.ndarray,
    fs: float,
    *,
    notch_hz: float = 50.0,
    notch_q: float = 30.0,
    band_hz: tuple[float, float] = (0.67, 40.0),
    band_order: int = 4,
    baseline_window_s: float = 0.4,
) -> np.ndarray:
    """Notch (filtfilt) → band-pass (filtfilt) → minus running-median baseline, for ``(..., n)``
    signals in mV at ``fs`` Hz.  Returns float64 of the same shape (no z-score)."""
    y = notch(np.asarray(x, dtype=np.float64), fs, notch_hz, notch_q)
    y = bandpass(y, fs, band_hz[0], band_hz[1], band_order)
    return remove_baseline(y, fs, baseline_window_s)


def reference_chain(
    x: np.ndarray,
    fs: float,
    *,
    notch_hz: float = 50.0,
    notch_q: float = 30.0,
    band_hz: tuple[float, float] = (0.67, 40.0),
    band_order: int = 4,
    baseline_window_s: float = 0.4,
) -> np.ndarray:
    """The straightforward published form, one lead at a time with scipy (for tests and
    benchmarks): ``filtfilt(iirnotch)``, ``filtfilt(butter)``, ``x - medfilt(x, k)``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    bn, an = sps.iirnotch(notch_hz, notch_q, fs=fs)
    bb, ab = sps.butter(band_order, list(band_hz), btype="bandpass", fs=fs)
    k = median_kernel(fs, baseline_window_s)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        lead = sps.filtfilt(bn, an, x[idx])
        lead = sps.filtfilt(bb, ab, lead)
        out[idx] = lead - sps.medfilt(lead, k)
    return out
