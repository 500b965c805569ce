"""Compiled (numba) kernels of the published filter chain, used by :mod:`ecgfounder.signal.fast`.

Every kernel gives the per-lead scipy results of the published code (max |Δ| 0 on the 50 real test
records; ``tests/signal/test_compiled.py`` holds them to scipy on real records and edge cases):

* :func:`filtfilt_rows` — ``scipy.signal.filtfilt(b, a, row)`` for every row, four leads at a time
  in SIMD lanes (:mod:`ecgfounder.signal.compiled_iir`).
* :func:`running_median_rows` — ``scipy.signal.medfilt(row, k)`` (zero padding) by Suomela's
  *sorted blocks* algorithm (J. Suomela, "Median filtering is equivalent to sorting",
  arXiv:1406.1717, 2014): the zero-padded row is cut into blocks of ``k`` samples and each block is
  sorted once; a window is the tail of one block and the head of the next, and the median is found
  from a pointer into each sorted block at the ``k // 2``-th smallest element in the window.
  Blocks are sorted by numpy's SIMD sort (x86-simd-sort, dispatched at run time to what the CPU
  has: AVX-512, AVX2, ...) on packed keys: the value rounded to float32 (monotone) with the
  in-block index in its low mantissa bits; an insertion pass on the exact float64 values then
  repairs the order of the near-ties the rounding merged (about 40 per record).  The elements of a
  block that are in the window are a bitmask over sorted positions (four 64-bit words for
  k = 201), so a step is a bit clear, a bit set and at most one find-next/previous-set-bit
  (``tzcnt``/``lzcnt``): no linked lists to rebuild per block.  ``subtract=True`` returns
  ``x - median`` directly (the chain's baseline removal, one pass less).  Windows longer than
  4096 samples keep too few value bits in the keys and are argsorted instead.
* :func:`quality_rows` — the signal-quality check's per-lead measurements
  (:mod:`ecgfounder.signal.compiled_quality`; same values as its numpy form to rounding).
* :func:`zscore_f32` — the published z-score ``(w - mean) / (std + 1e-8)`` of a window written
  straight into the float32 output: three passes instead of numpy's six (same values to float32
  rounding: max |Δ| 9e-10 against the published code).

Measured on one core (Xeon with AVX-512, shared machine), CPU-ms per 12 × 5000 record, by
``python benchmarks/bench_preprocess.py --parts --rounds 5`` (ranges over runs):

=====================================  ==========  ==========================================
step                                   compiled    before
=====================================  ==========  ==========================================
notch + band-pass ``filtfilt``         0.42        1.0 (all-rows loop); 2.1 scipy ``lfilter``
``x - medfilt(x, 201)``                0.85-0.99   1.65 (linked lists + float64 ``argsort``,
                                                   0.7 of it); 3.8 scipy rank filter
z-score to float32                     0.13        0.16-0.18 numpy
=====================================  ==========  ==========================================

Tried and dropped (slower): two rows interleaved in one median loop (1.5 ms), branch-free pointer
updates (1.55 ms), an all-nearest-smaller-values stack instead of the per-block list deletions.
numba pitfall measured here: re-binding array variables inside a hot loop (swapping the arrays of
blocks A and B) made the median 8 ms; the two blocks live side by side in one array instead.

numba is optional (the ``fast`` extra): without it :mod:`ecgfounder.signal.fast` uses scipy, to
the same result.  Kernels are compiled on first use and cached on disk (``cache=True``: the
first ``assess`` and ``preprocess`` after an install took 18.7 s here, ~0.5 s in a new process
after that).  Inputs must be finite float64 (the callers check; NaN
would break the ordering).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .compiled_iir import filtfilt_rows
from .compiled_quality import beat_medians, quality_rows

__all__ = ["filtfilt_rows", "running_median_rows", "zscore_f32", "quality_rows", "beat_medians"]

# --------------------------------------------------------------------------------------------
# running median: sorted blocks with bitmask windows


# Indices of the hot loops below are made unsigned: numba then skips its negative-index
# wrap-around test on every array access (measured: the running median 20 % faster).
_U = np.uint64
_I = np.int64  # a constant argument passed as _I(0), not 0: numba compiles a callee once per literal value it is given


@intrinsic
def _ctz(typingctx, x):
    """Count of trailing zero bits of a nonzero int64 (``tzcnt``/``bsf``)."""
    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.int64(types.int64), codegen


@intrinsic
def _clz(typingctx, x):
    """Count of leading zero bits of a nonzero int64 (``lzcnt``/``bsr``)."""
    def codegen(context, builder, signature, args):
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 1))
    return types.int64(types.int64), codegen


@njit(inline="always")
def _next_alive(w, o, nw, p, tail):
    """Smallest set bit above ``p`` in the words ``w[o : o + nw]``, else ``tail``."""
    i = p >> 6
    bits = w[_U(o + i)] & (np.int64(-2) << (p & 63))
    while bits == 0:
        i += 1
        if i == nw:
            return tail
        bits = w[_U(o + i)]
    return (i << 6) + _ctz(bits)


@njit(inline="always")
def _prev_alive(w, o, p):
    """Largest set bit below ``p`` in the words from ``w[o]``, else 0 (the head)."""
    i = p >> 6
    bits = w[_U(o + i)] & ((np.int64(1) << (p & 63)) - 1)
    while bits == 0:
        i -= 1
        if i < 0:
            return 0
        bits = w[_U(o + i)]
    return (i << 6) + 63 - _clz(bits)


@njit(cache=True, nogil=True)
def _block_keys(xp, k, bits):
    """(sort keys of the padded rows ``xp`` (flat, blocks of ``k``): each value rounded to float32
    (clipped to its range: rounding is monotone), its in-block index in the low ``bits`` bits;
    whether every value is finite (NaN has no place in the order the median walks: a NaN run
    crashed the process))."""
    m = xp.size
    f = np.empty(m, np.float32)
    finite = True
    for i in range(m):
        finite &= abs(xp[i]) <= 1.7976931348623157e308  # False for NaN and ±inf
        v = min(max(xp[i], -3.0e38), 3.0e38)
        f[i] = np.float32(v)
    u = f.view(np.int32)
    mask = np.int32((1 << bits) - 1)
    j = 0
    for i in range(m):
        u[i] = (u[i] & ~mask) | np.int32(j)
        j += 1
        if j == k:
            j = 0
    return f, finite


@njit(cache=True, nogil=True)
def _prep_block(xp, keys, blk, mask, k, sv, rank, o, tt):
    """Exact sorted values of block ``blk`` in ``sv[o + 1 .. o + k]`` (``sv[o]`` = -inf head,
    ``sv[o + k + 1]`` = +inf tail) and the sorted position ``rank[o + t]`` of each of its samples,
    from its sorted keys.  Whole arrays and offsets, not slices: a slice per block cost a
    reference-count round trip each."""
    base = blk * k
    sv[_U(o)] = -np.inf
    sv[_U(o + k + 1)] = np.inf
    bad = False
    prev = -np.inf
    for r in range(k):
        t = keys[_U(blk), _U(r)] & mask
        tt[_U(r + 1)] = t
        v = xp[_U(base + t)]
        bad |= v < prev
        prev = v
        sv[_U(o + r + 1)] = v
    if bad:  # the keys ordered the values to float32 precision: finish the sort exactly
        for r in range(o + 2, o + k + 1):
            v = sv[_U(r)]
            if v < sv[_U(r - 1)]:
                t = tt[_U(r - o)]
                q = r
                while v < sv[_U(q - 1)]:
                    sv[_U(q)] = sv[_U(q - 1)]
                    tt[_U(q - o)] = tt[_U(q - o - 1)]
                    q -= 1
                sv[_U(q)] = v
                tt[_U(q - o)] = t
    for r in range(1, k + 1):
        rank[_U(o + tt[r])] = r


@njit(cache=True, nogil=True)
def _median_row(xp, keys, mask, k, n, x, out, subtract):
    """Running median of the padded row ``xp`` (its blocks' sorted keys in ``keys``) into ``out``
    (``x - median`` when ``subtract``).

    The window starting at ``i`` is the tail of block A and the head of block B; ``wA``/``wB`` are
    bitmasks of their elements in the window, by sorted position.  ``pA``/``pB`` point at the first
    element of each block that is not among the ``s`` smallest of the window (ties: A before B);
    the median is the smaller of the two once ``s == k // 2``.  Arrays of A and B live side by side
    at offsets (swapping array variables in a numba loop was ten times slower)."""
    h = k // 2
    nb = keys.shape[0]
    K = k + 2
    nw = (K + 63) >> 6
    tail = k + 1
    sv = np.empty(2 * K)
    rk = np.empty(2 * K, np.int32)
    tt = np.empty(K, np.int32)
    w = np.zeros(2 * nw, np.int64)
    _prep_block(xp, keys, _I(0), mask, k, sv, rk, _I(0), tt)
    for r in range(1, k + 1):  # block A starts full
        w[r >> 6] |= np.int64(1) << (r & 63)
    A, B, oA, oB = 0, K, 0, nw
    if nb > 1:
        _prep_block(xp, keys, _I(1), mask, k, sv, rk, _I(K), tt)
    pA = h + 1
    pB = tail
    s = h
    a = 0
    j = 0
    for i in range(n):
        if i:
            xl = rk[_U(A + j)]  # leaves the window
            w[_U(oA + (xl >> 6))] &= ~(np.int64(1) << (xl & 63))
            if xl < pA:
                s -= 1
            elif xl == pA:
                pA = _next_alive(w, oA, nw, pA, tail)
            y = rk[_U(B + j)]  # enters the window
            w[_U(oB + (y >> 6))] |= np.int64(1) << (y & 63)
            va = sv[_U(A + pA)]
            if va <= sv[_U(B + pB)]:
                if sv[_U(B + y)] < va:
                    s += 1
                elif y < pB:
                    pB = y
            elif y < pB:
                s += 1
            if s < h:
                if sv[_U(A + pA)] <= sv[_U(B + pB)]:
                    pA = _next_alive(w, oA, nw, pA, tail)
                else:
                    pB = _next_alive(w, oB, nw, pB, tail)
                s = h
            elif s > h:
                qa = _prev_alive(w, oA, pA)
                qb = _prev_alive(w, oB, pB)
                if sv[_U(A + qa)] > sv[_U(B + qb)]:
                    pA = qa
                else:
                    pB = qb
                s = h
            j += 1
            if j == k:  # block A is empty: B becomes A, the next block becomes B
                A, B, oA, oB = B, A, oB, oA
                pA = pB
                pB = tail
                a += 1
                j = 0
                for q in range(nw):
                    w[_U(oB + q)] = 0
                if a + 1 < nb:
                    _prep_block(xp, keys, _I(a + 1), mask, k, sv, rk, _I(B), tt)
        va = sv[_U(A + pA)]
        vb = sv[_U(B + pB)]
        med = va if va <= vb else vb
        out[i] = x[i] - med if subtract else med


@njit(cache=True, nogil=True)
def _median_rows(xp, keys, mask, k, x, subtract, out):
    rows, n = x.shape
    for r in range(rows):
        _median_row(xp[r], keys[r], mask, k, n, x[r], out[r], subtract)


def running_median_rows(x: np.ndarray, k: int, subtract: bool = False, out: np.ndarray | None = None,
                        ) -> np.ndarray | None:
    """``scipy.signal.medfilt(row, k)`` (zero padding, odd ``k``) of every row of finite float64
    ``x`` ``(rows, n)``; ``row - medfilt(row, k)`` when ``subtract``.  Written into ``out`` when
    given (C-contiguous float64 of ``x``'s shape; ``x`` itself is allowed: each sample is read
    before it is written).  Non-finite ``x`` (a filter overflowing on samples near the float64
    limit, or an unstable one): ``None`` and ``out`` untouched, for the caller to take
    :func:`ecgfounder.signal.filters.scipy_running_median` (garbage in, garbage out, never a crash).

    The padded copy and the sort keys are made for a few rows at a time (2 MiB of samples): for a
    long record they were twice the record's size on top of it (a 1-hour 12-lead record: 330 MiB
    more)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    rows, n = x.shape
    if k == 1 or n == 0 or rows == 0:
        res = np.zeros_like(x) if subtract else x.copy()
        if out is None:
            return res
        out[...] = res
        return out
    # the kernel needs an order (a NaN run segfaulted it): checked before any row is written (a
    # finite sum has finite terms; an overflowing one is checked sample by sample)
    if not np.isfinite(x.sum()) and not np.isfinite(x).all():
        return None
    if out is None:
        out = np.empty_like(x)
    h = k // 2
    bits = (k - 1).bit_length()
    if bits > 12:  # the float32 keys would keep too few value bits: exact argsort instead
        bits = 0
    nb = -(-(n + 2 * h) // k) + 1
    step = max(1, (1 << 18) // (nb * k))  # rows per pass: a whole 12 x 5000 record, one row of a long one
    for r0 in range(0, rows, step):
        m = min(step, rows - r0)
        xp = np.zeros((m, nb * k))
        xp[:, h : h + n] = x[r0 : r0 + m]
        if bits:
            keys, _finite = _block_keys(xp.ravel(), k, bits)
            keys = np.sort(keys.reshape(m * nb, k), axis=-1).view(np.int32).reshape(m, nb, k)
            mask = (1 << bits) - 1
        else:  # int32 positions like the keys' index bits: the same compiled kernel
            keys = np.argsort(xp.reshape(m, nb, k), axis=-1).astype(np.int32)
            mask = -1
        _median_rows(xp, keys, mask, k, x[r0 : r0 + m], subtract, out[r0 : r0 + m])
    return out


# --------------------------------------------------------------------------------------------
# z-score


@njit(cache=True, nogil=True)
def _zscore_into(w, mean, out, eps):
    """``out = (w - mean) / (std + eps)`` with the population std about ``mean`` (four partial
    sums, so the reduction vectorises)."""
    rows, n = w.shape
    s0 = s1 = s2 = s3 = 0.0
    for r in range(rows):
        t = 0
        while t + 4 <= n:
            d0 = w[r, t] - mean
            d1 = w[r, t + 1] - mean
            d2 = w[r, t + 2] - mean
            d3 = w[r, t + 3] - mean
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            t += 4
        while t < n:
            d0 = w[r, t] - mean
            s0 += d0 * d0
            t += 1
    denom = np.sqrt((s0 + s1 + s2 + s3) / (rows * n)) + eps
    for r in range(rows):
        for t in range(n):
            out[r, t] = (w[r, t] - mean) / denom


def zscore_f32(w: np.ndarray, out: np.ndarray | None = None, eps: float = 1e-8) -> np.ndarray:
    """``((w - w.mean()) / (w.std() + eps)).astype(float32)`` for a 2-D float64 window (rounding
    of the sums aside), written into ``out`` (float32, same shape) when given: three passes
    instead of numpy's six."""
    if out is None:
        out = np.empty(w.shape, np.float32)
    if w.size:
        _zscore_into(w, float(w.sum()) / w.size, out, eps)
    return out
