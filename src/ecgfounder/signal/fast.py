"""The published filter chain, computed for all leads (and records) at once.

With numba installed (the ``fast`` extra) the chain runs in the compiled kernels of
:mod:`ecgfounder.signal.compiled` (the leads filtered four at a time in SIMD lanes, the running
median by sorted blocks): ``ecgfounder.preprocess`` of a 12 × 5000 record takes 2.1 CPU-ms on one
core against 12.3 ms for the published per-lead code, 5.0-5.8× over several runs on a shared
machine (``python benchmarks/bench_preprocess.py --seconds 2 --rounds 3``: 468 against 81 records
per CPU-second, max |Δ| 9e-10; 2.7× before these kernels).  Without numba, or for non-finite
input, the scipy form below is used (1.7-2.0×); both give the published result (max |Δ| ~1e-15
before the z-score).

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
    _band_plan, _compiled, _notch_plan, bandpass, filtfilt_ba, median_kernel, notch, remove_baseline, running_median,
    scipy_running_median,
)

__all__ = ["filtfilt_ba", "running_median", "filter_chain", "reference_chain", "median_kernel",
           "compiled_available", "chain_backend"]


def compiled_available() -> bool:
    """Whether the compiled (numba) chain is used (``pip install ecgfounder[fast]``)."""
    return _compiled() is not None


def chain_backend() -> str:
    """One line for ``ecgfounder env``: which implementation runs the published filter chain."""
    if compiled_available():
        import numba

        return f"compiled (numba {numba.__version__}: 4-lane SIMD IIR, sorted-blocks median)"
    return "scipy (install the 'fast' extra, numba, for ~3x faster preprocessing)"


def filter_chain(
    x: np.ndarray,
    fs: float,
    *,
    notch_hz: float = 50.0,
    notch_q: float = 30.0,
    band_hz: tuple[float, float] = (0.67, 40.0),
    band_order: int = 4,
    baseline_window_s: float = 0.4,
    finite: bool | None = None,
) -> np.ndarray:
    """Notch (filtfilt) → band-pass (filtfilt) → minus running-median baseline, for ``(..., n)``
    signals in mV at ``fs`` Hz.  Returns float64 of the same shape (no z-score).

    ``finite``: whether the caller already knows that every sample is finite (``None``: checked
    here); non-finite input takes the scipy form (the compiled kernels need an ordering)."""
    x = np.asarray(x, dtype=np.float64)
    comp = _compiled()
    if comp is not None and x.ndim >= 1 and x.size and (np.isfinite(x).all() if finite is None else finite):
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        plans = []  # (the plans check the notch and the band: one home for those checks)
        for plan in (_notch_plan(float(notch_hz), float(notch_q), float(fs)),
                     _band_plan(float(band_hz[0]), float(band_hz[1]), int(band_order), float(fs))):
            if shape[-1] <= plan[3]:
                return _scipy_chain(x, fs, notch_hz, notch_q, band_hz, band_order, baseline_window_s)
            plans.append(plan)
        y = comp.filtfilt_rows(rows, *plans)
        k = median_kernel(fs, baseline_window_s)
        med = comp.running_median_rows(y, k, subtract=True, out=y)  # (in place: y is ours)
        y = med if med is not None else y - scipy_running_median(y, k)  # (None: the filters overflowed)
        return y.reshape(shape)
    return _scipy_chain(x, fs, notch_hz, notch_q, band_hz, band_order, baseline_window_s)


def _scipy_chain(x, fs, notch_hz, notch_q, band_hz, band_order, baseline_window_s) -> np.ndarray:
    """The chain with scipy alone (no numba, or non-finite input)."""
    y = notch(x, fs, notch_hz, notch_q)
    y = bandpass(y, fs, band_hz[0], band_hz[1], band_order)
    return y - scipy_running_median(y, median_kernel(fs, baseline_window_s))


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
