"""Pure signal operations on ``(..., n_samples)`` arrays; every one takes ``fs`` in Hz explicitly.

They act along the last axis, so a whole ``(n_leads, n_samples)`` recording (or a batch of them)
is filtered in one call, and the per-row result equals the per-lead scipy calls of the published
code: :func:`filtfilt_ba` is ``scipy.signal.filtfilt`` (odd padding, ``lfilter_zi`` initial
conditions) with the coefficients and initial state cached, and :func:`running_median` is
``scipy.signal.medfilt`` for every row through one call of scipy's fast 1-D rank filter (rows laid
end to end with ``k // 2`` zeros between them, so no window reaches into the next row).
"""

from __future__ import annotations

import os
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import ndimage, signal as sps

from .errors import SignalError

__all__ = ["notch", "bandpass", "median_baseline", "remove_baseline", "zscore", "resample", "resampled_rate", "resampled_length",
           "filtfilt_ba", "running_median", "scipy_running_median", "median_kernel"]


_COMPILED: list = []  # [module] once imported, [None] when numba is missing


def _compiled():
    """:mod:`ecgfounder.signal.compiled` when numba is installed, else None (scipy is used).

    The kernels compile on first use (~19 s once; cached on disk, ~0.5 s to load in a new
    process); ``ECGFOUNDER_NUMBA=0`` keeps to scipy (same results, ~3x slower chain)."""
    if not _COMPILED:
        compiled = None
        if os.environ.get("ECGFOUNDER_NUMBA", "1") != "0":  # ECGFOUNDER_NUMBA=0: scipy only
            try:
                from . import compiled
            except ImportError:  # numba missing: the scipy path gives the same result
                compiled = None
        _COMPILED.append(compiled)
    return _COMPILED[0]


@lru_cache(maxsize=64)
def _notch_plan(f0: float, q: float, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if not (0 < f0 < fs / 2 and 0 < q < np.inf):  # (NaN fails too: NaN coefficients filter to NaN)
        raise SignalError(f"notch at {f0} Hz (f0) with quality factor q={q} at fs={fs} Hz: needs 0 < f0 < fs/2 = "
                          f"{fs / 2} Hz and a finite q > 0; give f0 below fs/2 (or the signal's true fs) and q > 0 "
                          "(the published chain: f0=50 Hz, q=30; in a contract: notch_hz, notch_q).")
    b, a = sps.iirnotch(f0, q, fs=fs)
    return b, a, sps.lfilter_zi(b, a), 3 * max(len(a), len(b))


def _band_diverges(low: float, high: float, order: int, fs: float, b: np.ndarray, a: np.ndarray) -> bool:
    """Whether ``lfilter(b, a)`` (the published chain's (b, a) form) departs from the same
    Butterworth band-pass in second-order sections: its impulse response over ``30 / low`` seconds
    (at most 2^18 samples) differs by more than 1 % of the peak.  High orders, high rates and low
    edges put the poles so close to 1 that the rounded ``a`` has them outside the unit circle:
    order 4 (0.67-40 Hz) at 2000 Hz and above, order 6 at 500 Hz, filter to garbage or inf (over
    1e19 times the peak), while the usable plans stay within 1e-3 of it."""
    n = int(min(2 ** 18, 30 * fs / low))
    impulse = np.zeros(n)
    impulse[0] = 1.0
    ref = sps.sosfilt(sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos"), impulse)
    with np.errstate(all="ignore"):
        err = np.abs(sps.lfilter(b, a, impulse) - ref).max()
    return not err <= 1e-2 * np.abs(ref).max()  # (NaN: diverged)


@lru_cache(maxsize=64)
def _band_plan(low: float, high: float, order: int, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if not (0 < low < high < fs / 2 and order >= 1):
        raise SignalError(f"band-pass low={low} to high={high} Hz of order={order} at fs={fs} Hz needs 0 < low < high "
                          f"< fs/2 = {fs / 2} Hz and order >= 1; give edges within that range and order >= 1 (the "
                          "published chain: 0.67-40 Hz, order 4; in a contract: band_hz, band_order).")
    b, a = sps.butter(order, [low, high], btype="bandpass", fs=fs)
    if _band_diverges(low, high, order, fs, b, a):
        ok = [k for k in range(order - 1, 0, -1)
              if not _band_diverges(low, high, k, fs, *sps.butter(k, [low, high], btype="bandpass", fs=fs))]
        raise SignalError(
            f"band-pass {low}–{high} Hz of order {order} at fs={fs:g} Hz is numerically unstable in the (b, a) "
            "form the published chain filters with (its output diverges); "
            + (f"order {ok[0]} or less works at this rate, " if ok else "no order works at this rate, ")
            + "or use a lower rate (the published chain: order 4 at 500 Hz) or a higher low edge.")
    return b, a, sps.lfilter_zi(b, a), 3 * max(len(a), len(b))


def median_kernel(fs: float, window_s: float = 0.4) -> int:
    """Running-median window in samples: ``int(window_s * fs) + 1``, made odd (201 at 500 Hz)."""
    k = int(window_s * fs) + 1
    return k + 1 if k % 2 == 0 else k


def filtfilt_ba(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None,
                padlen: int | None = None) -> np.ndarray:
    """``scipy.signal.filtfilt(b, a, x, axis=-1)`` (odd padding, default length), for ``(..., n)``.

    ``zi`` (``lfilter_zi(b, a)``) and ``padlen`` may be passed pre-computed.  With numba, finite
    ``x`` and ``a[0] == 1`` it runs in the compiled kernel (:mod:`ecgfounder.signal.compiled_iir`,
    the same result to the bit), else in scipy's ``lfilter``.
    """
    if zi is None:
        zi = sps.lfilter_zi(b, a)
    if padlen is None:
        padlen = 3 * max(len(a), len(b))
    n = x.shape[-1]
    if n <= padlen:
        raise SignalError(
            f"signal of {n} samples is too short for zero-phase filtering (needs more than {padlen}); "
            "give a longer record."
        )
    comp = _compiled()
    if comp is not None and x.size and a[0] == 1.0 and np.isfinite(x).all():  # the same, 4 rows in SIMD lanes
        return comp.filtfilt_rows(x.reshape(-1, n), (b, a, zi, padlen)).reshape(x.shape)
    first, last = x[..., :1], x[..., -1:]
    ext = np.concatenate(
        [2 * first - x[..., padlen:0:-1], x, 2 * last - x[..., -2 : -(padlen + 2) : -1]], axis=-1
    )
    y, _ = sps.lfilter(b, a, ext, axis=-1, zi=zi * ext[..., :1])
    y = y[..., ::-1]
    y, _ = sps.lfilter(b, a, y, axis=-1, zi=zi * y[..., :1])
    return y[..., ::-1][..., padlen : padlen + n]


def running_median(x: np.ndarray, k: int) -> np.ndarray:
    """Running median over ``k`` (odd) samples along the last axis, zero padding at both ends.

    Equals ``scipy.signal.medfilt(row, k)`` for every row of ``x`` (shape ``(..., n)``).  Runs the
    compiled sorted-blocks kernel when numba is installed (1.1 ms against 3.7 ms for scipy's 1-D
    rank filter on 12 × 5000 samples, one core), else :func:`scipy_running_median`.
    """
    if k % 2 == 0 or k < 1:
        raise SignalError(f"running-median window k={k} must be a positive odd number of samples; give an odd k >= 1 "
                          "(median_kernel(fs, window_s) makes one).")
    x = np.asarray(x, dtype=np.float64)
    rows = x.reshape(-1, x.shape[-1])
    if rows.size and k > 1:
        comp = _compiled()
        if comp is not None and np.isfinite(rows).all():
            return comp.running_median_rows(rows, k).reshape(x.shape)
    return scipy_running_median(x, k)


def scipy_running_median(x: np.ndarray, k: int) -> np.ndarray:
    """:func:`running_median` with scipy alone: every row is laid into one 1-D buffer with ``k // 2``
    zeros between rows, so one call of scipy's fast 1-D rank filter gives each row's medfilt."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    n = shape[-1]
    half = k // 2
    rows = x.reshape(-1, n)
    buf = np.zeros((rows.shape[0], n + half), dtype=np.float64)
    buf[:, :n] = rows
    med = ndimage.median_filter(buf.ravel(), size=k, mode="constant", cval=0.0)
    return med.reshape(rows.shape[0], n + half)[:, :n].reshape(shape)


def notch(x: np.ndarray, fs: float, f0: float = 50.0, q: float = 30.0) -> np.ndarray:
    """IIR notch at ``f0`` Hz (quality ``q``), zero-phase (``filtfilt``, default padding)."""
    b, a, zi, pad = _notch_plan(float(f0), float(q), float(fs))
    return filtfilt_ba(b, a, np.asarray(x, dtype=np.float64), zi, pad)


def bandpass(x: np.ndarray, fs: float, low: float = 0.67, high: float = 40.0, order: int = 4) -> np.ndarray:
    """Butterworth band-pass ``low``–``high`` Hz in (b, a) form, zero-phase (``filtfilt``)."""
    b, a, zi, pad = _band_plan(float(low), float(high), int(order), float(fs))
    return filtfilt_ba(b, a, np.asarray(x, dtype=np.float64), zi, pad)


def median_baseline(x: np.ndarray, fs: float, window_s: float = 0.4) -> np.ndarray:
    """Running median over ``int(window_s * fs) + 1`` samples with zero padding at the edges
    (the semantics of ``scipy.signal.medfilt``), computed along the last axis."""
    return running_median(x, median_kernel(fs, window_s))


def remove_baseline(x: np.ndarray, fs: float, window_s: float = 0.4) -> np.ndarray:
    """``x`` minus its running-median baseline (see :func:`median_baseline`)."""
    return x - median_baseline(x, fs, window_s)


def zscore(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """One z-score over the last two axes: ``(x - mean) / (std + eps)``, population std."""
    if np.ndim(x) == 2:  # one window: two passes instead of numpy's four (mean, std = three passes)
        x = np.asarray(x)
        mean = x.mean()
        d = x - mean
        flat = d.ravel()
        d /= np.sqrt(np.dot(flat, flat) / flat.size) + eps
        return d
    axes = tuple(range(max(0, np.ndim(x) - 2), np.ndim(x)))
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return (x - mean) / (std + eps)


def _ratio(fs: float, fs_new: float) -> Fraction:
    """``up / down`` of :func:`resample`: the ratio of the two rates, denominator at most 1000."""
    return Fraction(float(fs_new) / float(fs)).limit_denominator(1000)


def resampled_rate(fs: float, fs_new: float) -> float:
    """The true rate of :func:`resample`'s output, ``fs * up / down``: not always ``fs_new``, as the
    ratio's denominator is at most 1000 (a 499.7-Hz record is resampled by 1001/1000: its samples
    come out at 500.2 Hz, 1.4 s an hour off 500; a 333.33-Hz one by 3/2, 36 ms an hour).  What a time
    read off the output's samples uses."""
    return float(fs_new) if fs == fs_new else float(float(fs) * _ratio(fs, fs_new))


def resampled_length(n: int, fs: float, fs_new: float) -> int:
    """How many samples :func:`resample` gives for ``n`` at ``fs`` (``ceil(n * up / down)``), without
    resampling anything."""
    if fs == fs_new:
        return int(n)
    ratio = _ratio(fs, fs_new)
    return -(-int(n) * ratio.numerator // ratio.denominator)


def resample(x: np.ndarray, fs: float, fs_new: float) -> np.ndarray:
    """Polyphase resampling along the last axis from ``fs`` to ``fs_new`` Hz (anti-aliased).

    Each row's mean is taken out and put back exactly, and the rest is extended past both ends by
    odd reflection (as ``filtfilt`` pads), as far as the anti-aliasing filter reaches: with scipy's
    default zero padding a lead's offset (5 mV on a 250-Hz record) stepped to 0 at both ends, a
    transient the band-pass kept, up to 16 standard deviations in the z-scored window.  Records
    shorter than that reach are extended along the line through their end samples instead.  Rows
    are resampled a few at a time (a long record's working copies stay small)."""
    if fs == fs_new:
        return x
    if not (0 < fs < np.inf and 0 < fs_new < np.inf):  # (NaN fails too)
        raise SignalError(f"resampling from fs={fs} to fs_new={fs_new} Hz needs two finite rates > 0; give the "
                          "signal's true rate.")
    ratio = _ratio(fs, fs_new)
    up, down = ratio.numerator, ratio.denominator
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n == 0:
        return sps.resample_poly(x, up, down, axis=-1)
    rows = x.reshape(-1, n)
    n_out = resampled_length(n, fs, fs_new)
    out = np.empty((rows.shape[0], n_out))
    # reach of resample_poly's filter (10 * max(up, down) taps each side at the up-sampled rate), in
    # input samples, rounded up to whole multiples of ``down`` so the output grid stays aligned
    m = -(-(10 * max(up, down) // up + 2) // down)
    pad = m * down
    step = max(1, (1 << 22) // (n + 2 * pad))  # rows per pass: 32 MiB of extended samples
    for r0 in range(0, rows.shape[0], step):
        part = rows[r0 : r0 + step]
        mean = part.mean(axis=-1, keepdims=True)
        if pad >= n:
            # (one sample has no line: its mean-free rest is 0, which zero padding keeps)
            y = sps.resample_poly(part - mean, up, down, axis=-1, padtype="line" if n > 1 else "constant")
        else:
            ext = np.empty((part.shape[0], n + 2 * pad))
            mid = ext[:, pad : pad + n]
            np.subtract(part, mean, out=mid)
            np.subtract(2 * mid[:, :1], mid[:, pad:0:-1], out=ext[:, :pad])
            np.subtract(2 * mid[:, -1:], mid[:, -2 : -(pad + 2) : -1], out=ext[:, pad + n :])
            y = sps.resample_poly(ext, up, down, axis=-1)[:, m * up : m * up + n_out]
        np.add(y, mean, out=out[r0 : r0 + step])
    return out.reshape(x.shape[:-1] + (n_out,))
