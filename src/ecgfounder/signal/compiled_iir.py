"""Compiled (numba) zero-phase IIR filtering of many leads at once, used by
:mod:`ecgfounder.signal.compiled`: ``scipy.signal.filtfilt(b, a, row)`` for every row, to the bit.

The rows are filtered in **lockstep groups of four**: a group is laid out time-major ``(n, 4)``
(odd extension of ``3 * max(len(a), len(b))`` samples, as ``filtfilt``), then ``lfilter``'s
direct-form-II-transposed recursion (same operations in the same order as scipy's C loop, initial
state ``lfilter_zi * first sample``) runs forward and backward.  The recursion of one lead is a
chain of dependent multiply-adds, so its speed comes from running independent leads side by side
in SIMD lanes with the filter state in registers.  numba gives that only for code written out per
lane with a fixed filter order, compiled with LLVM's SLP vectoriser (off by default in numba:
switched on while these kernels compile); :func:`_pass2` and :func:`_pass8` are that code
(generated, one statement per lane), for the notch (order 2) and the 4th-order Butterworth
band-pass (order 8) of the published chain.  Filters of lower order run in the next larger kernel
with zero coefficients appended (same result: the extra state stays zero); higher orders run in
:func:`_pass_any` (state in memory, about three times slower).

Measured on one core (Xeon with AVX-512; LLVM picks the vector width of the CPU it runs on), one
pass over 5060 × 4 samples: 0.032 ms (order 8) and 0.016 ms (order 2), against 0.10 and 0.035 ms
with the state in memory and the same written-out code without SLP (/tmp micro-benchmark, best
of 5 × 200 calls, process time).  The notch + band-pass pair of a 12 × 5000 record: 0.42 ms
against 1.0 ms for the previous all-rows kernel and 2.1 ms for scipy's ``lfilter`` on all rows
(``python benchmarks/bench_preprocess.py --parts``).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

__all__ = ["filtfilt_rows"]

_PASS_SIG = "void(float64[::1], float64[::1], float64[::1], float64[:, ::1], float64[:, ::1], int64, boolean)"


def _slp_njit(sig):
    """``njit(sig, cache=True, nogil=True)`` compiled now with LLVM's SLP vectoriser on."""
    def wrap(fn):
        old = getattr(numba.config, "SLP_VECTORIZE", None)  # a numba without the switch: scalar code, same result
        numba.config.SLP_VECTORIZE = 1
        try:
            return njit(sig, cache=True, nogil=True)(fn)
        finally:
            if old is None:
                del numba.config.SLP_VECTORIZE
            else:
                numba.config.SLP_VECTORIZE = old
    return wrap


@_slp_njit(_PASS_SIG)
def _pass2(b, a, zi, src, dst, length, reverse):  # pragma: no cover - compiled
    """One ``lfilter`` pass of an order-2 filter over the four lanes of ``src``."""
    t = length - 1 if reverse else 0
    step = -1 if reverse else 1
    b0, b1, b2 = b[0], b[1], b[2]
    a1, a2 = a[1], a[2]
    z00 = zi[0] * src[t, 0]
    z01 = zi[0] * src[t, 1]
    z02 = zi[0] * src[t, 2]
    z03 = zi[0] * src[t, 3]
    z10 = zi[1] * src[t, 0]
    z11 = zi[1] * src[t, 1]
    z12 = zi[1] * src[t, 2]
    z13 = zi[1] * src[t, 3]
    for _ in range(length):
        x0 = src[t, 0]
        x1 = src[t, 1]
        x2 = src[t, 2]
        x3 = src[t, 3]
        y0 = z00 + b0 * x0
        y1 = z01 + b0 * x1
        y2 = z02 + b0 * x2
        y3 = z03 + b0 * x3
        z00 = z10 + b1 * x0 - a1 * y0
        z01 = z11 + b1 * x1 - a1 * y1
        z02 = z12 + b1 * x2 - a1 * y2
        z03 = z13 + b1 * x3 - a1 * y3
        z10 = b2 * x0 - a2 * y0
        z11 = b2 * x1 - a2 * y1
        z12 = b2 * x2 - a2 * y2
        z13 = b2 * x3 - a2 * y3
        dst[t, 0] = y0
        dst[t, 1] = y1
        dst[t, 2] = y2
        dst[t, 3] = y3
        t += step


@_slp_njit(_PASS_SIG)
def _pass8(b, a, zi, src, dst, length, reverse):  # pragma: no cover - compiled
    """One ``lfilter`` pass of an order-8 filter over the four lanes of ``src``."""
    t = length - 1 if reverse else 0
    step = -1 if reverse else 1
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    a1, a2, a3, a4, a5, a6, a7, a8 = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    z00 = zi[0] * src[t, 0]
    z01 = zi[0] * src[t, 1]
    z02 = zi[0] * src[t, 2]
    z03 = zi[0] * src[t, 3]
    z10 = zi[1] * src[t, 0]
    z11 = zi[1] * src[t, 1]
    z12 = zi[1] * src[t, 2]
    z13 = zi[1] * src[t, 3]
    z20 = zi[2] * src[t, 0]
    z21 = zi[2] * src[t, 1]
    z22 = zi[2] * src[t, 2]
    z23 = zi[2] * src[t, 3]
    z30 = zi[3] * src[t, 0]
    z31 = zi[3] * src[t, 1]
    z32 = zi[3] * src[t, 2]
    z33 = zi[3] * src[t, 3]
    z40 = zi[4] * src[t, 0]
    z41 = zi[4] * src[t, 1]
    z42 = zi[4] * src[t, 2]
    z43 = zi[4] * src[t, 3]
    z50 = zi[5] * src[t, 0]
    z51 = zi[5] * src[t, 1]
    z52 = zi[5] * src[t, 2]
    z53 = zi[5] * src[t, 3]
    z60 = zi[6] * src[t, 0]
    z61 = zi[6] * src[t, 1]
    z62 = zi[6] * src[t, 2]
    z63 = zi[6] * src[t, 3]
    z70 = zi[7] * src[t, 0]
    z71 = zi[7] * src[t, 1]
    z72 = zi[7] * src[t, 2]
    z73 = zi[7] * src[t, 3]
    for _ in range(length):
        x0 = src[t, 0]
        x1 = src[t, 1]
        x2 = src[t, 2]
        x3 = src[t, 3]
        y0 = z00 + b0 * x0
        y1 = z01 + b0 * x1
        y2 = z02 + b0 * x2
        y3 = z03 + b0 * x3
        z00 = z10 + b1 * x0 - a1 * y0
        z01 = z11 + b1 * x1 - a1 * y1
        z02 = z12 + b1 * x2 - a1 * y2
        z03 = z13 + b1 * x3 - a1 * y3
        z10 = z20 + b2 * x0 - a2 * y0
        z11 = z21 + b2 * x1 - a2 * y1
        z12 = z22 + b2 * x2 - a2 * y2
        z13 = z23 + b2 * x3 - a2 * y3
        z20 = z30 + b3 * x0 - a3 * y0
        z21 = z31 + b3 * x1 - a3 * y1
        z22 = z32 + b3 * x2 - a3 * y2
        z23 = z33 + b3 * x3 - a3 * y3
        z30 = z40 + b4 * x0 - a4 * y0
        z31 = z41 + b4 * x1 - a4 * y1
        z32 = z42 + b4 * x2 - a4 * y2
        z33 = z43 + b4 * x3 - a4 * y3
        z40 = z50 + b5 * x0 - a5 * y0
        z41 = z51 + b5 * x1 - a5 * y1
        z42 = z52 + b5 * x2 - a5 * y2
        z43 = z53 + b5 * x3 - a5 * y3
        z50 = z60 + b6 * x0 - a6 * y0
        z51 = z61 + b6 * x1 - a6 * y1
        z52 = z62 + b6 * x2 - a6 * y2
        z53 = z63 + b6 * x3 - a6 * y3
        z60 = z70 + b7 * x0 - a7 * y0
        z61 = z71 + b7 * x1 - a7 * y1
        z62 = z72 + b7 * x2 - a7 * y2
        z63 = z73 + b7 * x3 - a7 * y3
        z70 = b8 * x0 - a8 * y0
        z71 = b8 * x1 - a8 * y1
        z72 = b8 * x2 - a8 * y2
        z73 = b8 * x3 - a8 * y3
        dst[t, 0] = y0
        dst[t, 1] = y1
        dst[t, 2] = y2
        dst[t, 3] = y3
        t += step


@_slp_njit(_PASS_SIG)
def _pass_any(b, a, zi, src, dst, length, reverse):  # pragma: no cover - compiled
    """One ``lfilter`` pass of any order over the four lanes of ``src`` (state in memory)."""
    order = len(a) - 1
    z = np.zeros((order + 1, 4))
    t = length - 1 if reverse else 0
    for j in range(order):
        for c in range(4):
            z[j, c] = zi[j] * src[t, c]
    step = -1 if reverse else 1
    for _ in range(length):
        for c in range(4):
            x = src[t, c]
            y = z[0, c] + b[0] * x
            for j in range(order):
                z[j, c] = z[j + 1, c] + b[j + 1] * x - a[j + 1] * y
            dst[t, c] = y
        t += step


@njit(cache=True, nogil=True)
def _load_group(x, r0, ext, pad):  # pragma: no cover - compiled
    """Rows ``r0 .. r0 + 3`` of ``x`` ``(rows, n)`` into ``ext[pad : pad + n]`` time-major (lanes
    past the last row zero), then :func:`_reflect`."""
    rows, n = x.shape
    m = min(4, rows - r0)
    if m == 4:  # the four lanes written out: one vector store per sample
        for t in range(n):
            ext[pad + t, 0] = x[r0, t]
            ext[pad + t, 1] = x[r0 + 1, t]
            ext[pad + t, 2] = x[r0 + 2, t]
            ext[pad + t, 3] = x[r0 + 3, t]
    else:
        for t in range(n):
            for c in range(m):
                ext[pad + t, c] = x[r0 + c, t]
            for c in range(m, 4):
                ext[pad + t, c] = 0.0
    _reflect(ext, pad, n)


@njit(cache=True, nogil=True)
def _reflect(ext, pad, n):  # pragma: no cover - compiled
    """``filtfilt``'s odd extension around ``ext[pad : pad + n]``, in place: ``pad`` samples each side."""
    for c in range(4):
        x0 = ext[pad, c]
        xn = ext[pad + n - 1, c]
        for t in range(pad):
            ext[t, c] = 2.0 * x0 - ext[2 * pad - t, c]
            ext[pad + n + t, c] = 2.0 * xn - ext[pad + n - 2 - t, c]


@njit(cache=True, nogil=True)
def _run_pass(kind, b, a, zi, src, dst, reverse):  # pragma: no cover - compiled
    if kind == 2:
        _pass2(b, a, zi, src, dst, len(src), reverse)
    elif kind == 8:
        _pass8(b, a, zi, src, dst, len(src), reverse)
    else:
        _pass_any(b, a, zi, src, dst, len(src), reverse)


@njit(cache=True, nogil=True)
def _filtfilt_pair(x, k1, b1, a1, zi1, pad1, k2, b2, a2, zi2, pad2, two):  # pragma: no cover - compiled
    """filtfilt by the first filter, then (``two``) by the second, of every row of ``x``.  The
    backward pass of the first filter writes straight into the second filter's extension buffer
    when its padding is the larger (the published pair: 9 then 27 samples)."""
    rows, n = x.shape
    out = np.empty((rows, n))
    ext1 = np.empty((n + 2 * pad1, 4))
    tmp1 = np.empty_like(ext1)
    ext2 = np.empty((n + 2 * pad2, 4))
    tmp2 = np.empty_like(ext2)
    chain = two and pad2 >= pad1
    for r0 in range(0, rows, 4):
        _load_group(x, r0, ext1, pad1)
        _run_pass(k1, b1, a1, zi1, ext1, tmp1, np.bool_(False))
        res, off = ext1, pad1
        if chain:  # backward pass into the middle of the next extension, then its ends
            _run_pass(k1, b1, a1, zi1, tmp1, ext2[pad2 - pad1 : pad2 + n + pad1], np.bool_(True))
            _reflect(ext2, pad2, n)
        else:
            _run_pass(k1, b1, a1, zi1, tmp1, ext1, np.bool_(True))
            if two:
                for t in range(n):  # a loop, not a slice assignment: numba compiles the latter's shape-error text (~3 s cold)
                    for c in range(4):
                        ext2[pad2 + t, c] = ext1[pad1 + t, c]
                _reflect(ext2, pad2, n)
        if two:
            _run_pass(k2, b2, a2, zi2, ext2, tmp2, np.bool_(False))
            _run_pass(k2, b2, a2, zi2, tmp2, ext2, np.bool_(True))
            res, off = ext2, pad2
        if rows - r0 >= 4:
            for t in range(n):
                out[r0, t] = res[off + t, 0]
                out[r0 + 1, t] = res[off + t, 1]
                out[r0 + 2, t] = res[off + t, 2]
                out[r0 + 3, t] = res[off + t, 3]
        else:
            for c in range(rows - r0):
                for t in range(n):
                    out[r0 + c, t] = res[off + t, c]
    return out


def _plan_kernel(plan: tuple) -> tuple:
    """``(kind, b, a, zi, padlen)``: the smallest written-out kernel of at least the filter's
    order (2, 8, else 0 = any order), coefficients and state padded with zeros to it (``a[0] == 1``
    as ``lfilter_zi`` needs)."""
    b, a, zi, pad = plan
    order = max(len(a), len(b)) - 1
    size = 2 if order <= 2 else 8 if order <= 8 else order
    bb, aa, zz = np.zeros(size + 1), np.zeros(size + 1), np.zeros(size)
    bb[: len(b)] = b
    aa[: len(a)] = a
    zz[: len(zi)] = zi
    return size if size in (2, 8) else 0, bb, aa, zz, int(pad)


def filtfilt_rows(x: np.ndarray, *plans: tuple) -> np.ndarray:
    """Zero-phase filtering of every row of ``x`` (float64 ``(rows, n)``) by each plan in turn.

    A plan is ``(b, a, zi, padlen)`` with ``a[0] == 1`` (as :func:`scipy.signal.lfilter_zi` needs)
    and ``n > padlen``.
    """
    y = np.ascontiguousarray(x, dtype=np.float64)
    steps = [_plan_kernel(p) for p in plans]
    for i in range(0, len(steps), 2):
        two = i + 1 < len(steps)
        y = _filtfilt_pair(y, *steps[i], *steps[i + 1 if two else i], two)
    return y
