"""Compiled (numba) kernel of the signal-quality check's per-lead measurements, used by
:func:`ecgfounder.signal.quality.assess` when numba is installed and every sample is finite.

:func:`quality_rows` computes, for every lead, in a few passes over its samples, what the numpy
form in :mod:`ecgfounder.signal.quality_measures` (:func:`~ecgfounder.signal.quality_measures._residual` and
:func:`~ecgfounder.signal.quality_measures._measure`) computes in some thirty whole-array calls:

* pass 1 over the signal: its extremes, the longest run of repeated samples, and the means of its
  blocks of ``step`` samples (the baseline's ~50-Hz decimation), without data-dependent branches;
* the two-stage running median of the block means (windows of 11 and 31 values at every rate, cut
  at the ends): a sorted window, one deletion and one insertion per step;
* the residual (signal less its linearly interpolated baseline and its mean) and the sums of its
  squares and fourth powers (kurtosis);
* pass 2, one test per sample that few samples pass: the ``m`` smallest and largest residual
  values (kept sorted in two short buffers: the 0.5th and 99.5th percentiles without a sort) and
  the runs on the rails (samples within 0.1 % of the range of either extreme) within the bands
  around them (a run counts when its band's run is at most twice as long: a rail, not a quantised
  smooth extreme; the quantisation step from one more pass): samples, runs and the longest run;
* the Hann-windowed float32 Welch segments of the residual, ready for one FFT call.

:func:`beat_medians` is the reversal check's beat finding after the beat energy: ``find_peaks``'
rules and the median beat of each row (the beats' columns sorted all at once by an odd-even
transposition network), equal to the bit to the numpy form.  The reversal check's median beats
cost 0.25 against 0.41 ms per 10-s record (best of 7 × 200 records; the numpy form's
``find_peaks`` and fancy indexing are mostly call overhead at this size).

Same values as the numpy form to rounding (sums in another order: ~1e-13 relative; the medians and
percentiles are the same selections), hence the same flags: ``tests/signal/test_quality_compiled.py``
holds the two forms together on the real records, corrupted copies, other rates and lengths.

Measured on one core of the shared 2-core VM (Xeon, AVX-512; ±20 % between runs), wall-ms per 10-s
12-lead 500-Hz record: this kernel 0.85 (the medians ~0.38 of it, pass 2 ~0.27); with the FFT and
the indices around it 1.35-1.6, against ~2.9 for the numpy form; ``assess`` as a whole 2.1-2.6
against 3.4-3.7.  Tried and dropped (no faster, or slower, here): a branch-free sorted-window
update (ranks counted, or positions found by binary search), ranks kept in SIMD lanes across leads
(0.62 ms for the medians), the sorted-blocks median of :mod:`ecgfounder.signal.compiled` (0.35-0.41
ms for the two stages, edge padding included), and tail candidates bounded by group extremes then
sorted (1.08 ms for the kernel).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

__all__ = ["quality_rows", "beat_medians", "STATS"]

#: columns of :func:`quality_rows`' per-lead statistics
STATS = ("lo", "hi", "repeat_run", "rail_samples", "rail_runs", "m2", "m4", "baseline_ptp",
         "low_a0", "low_a1", "high_b0", "high_b1", "residual_min", "residual_max", "rail_longest")


_SCRATCH = threading.local()
_SCRATCH_MAX = 4 << 20  # bytes: the largest buffer a thread keeps for its next call (12 leads x ~40 s x 500 Hz)


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An uninitialised array of ``shape``: a view of this thread's buffer ``name`` (grown as
    needed) when it is at most :data:`_SCRATCH_MAX` bytes, else a fresh one."""
    size = int(np.prod(shape))
    if size * np.dtype(dtype).itemsize > _SCRATCH_MAX:
        return np.empty(shape, dtype)
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size].reshape(shape)


@njit(inline="always")
def _insert(win, m, val):  # pragma: no cover - compiled
    """Insert ``val`` into the sorted ``win[:m]``; returns ``m + 1``."""
    i = m
    while i > 0 and win[i - 1] > val:
        win[i] = win[i - 1]
        i -= 1
    win[i] = val
    return m + 1


@njit(cache=True, nogil=True)
def _edge_median(v, k, out, win):  # pragma: no cover - compiled
    """``out[i]`` = median of ``v[i - k//2 .. i + k//2]`` (odd ``k``), the window cut at the ends: a
    record ending on a tall R wave had its baseline follow the R when the ends repeated ``v[-1]``;
    ``win`` is scratch of ``k`` values."""
    n = v.shape[0]
    h = k // 2
    for j in range(k):  # the first window, sorted by insertion
        val = v[min(max(j - h, 0), n - 1)]
        i = j
        while i > 0 and win[i - 1] > val:
            win[i] = win[i - 1]
            i -= 1
        win[i] = val
    out[0] = win[h]
    for c in range(1, n):
        old = v[min(max(c - h - 1, 0), n - 1)]  # leaves
        new = v[min(c + h, n - 1)]  # enters
        if old != new:
            i = 0
            while win[i] != old:
                i += 1
            while i + 1 < k and win[i + 1] < new:  # close the gap, moving towards the new value
                win[i] = win[i + 1]
                i += 1
            while i > 0 and win[i - 1] > new:
                win[i] = win[i - 1]
                i -= 1
            win[i] = new
        out[c] = win[h]
    # the ends: the median of the values the window holds (not the edge's repeats), the windows
    # growing from each end inwards, kept sorted in ``win`` by insertion
    m = 0
    for j in range(min(h, n)):
        m = _insert(win, m, v[j])
    for c in range(min(h, n)):  # left: v[:c + h + 1]
        if c + h < n:
            m = _insert(win, m, v[c + h])
        out[c] = 0.5 * (win[(m - 1) // 2] + win[m // 2])
    m = 0
    for j in range(max(0, n - h), n):
        m = _insert(win, m, v[j])
    for c in range(n - 1, max(n - h, h) - 1, -1):  # right: v[c - h:]
        m = _insert(win, m, v[c - h])
        out[c] = 0.5 * (win[(m - 1) // 2] + win[m // 2])


@njit(inline="always")
def _keep_smallest(buf, count, m, c):  # pragma: no cover - compiled
    """Keeps ``buf[:m]`` the ``m`` smallest values seen, ascending; returns the new count."""
    if count < m:
        i = count
        count += 1
    elif c < buf[m - 1]:
        i = m - 1
    else:
        return count
    while i > 0 and buf[i - 1] > c:
        buf[i] = buf[i - 1]
        i -= 1
    buf[i] = c
    return count


@njit(inline="always")
def _closed(band, acc, ratio, n):  # pragma: no cover - compiled
    """Counts the band's run ``band`` (its length, end, the current rail run's length and end, the
    longest rail run of ``least`` samples in it) once it ends into ``acc`` (samples, runs, longest
    run on the rails within the ``n`` samples, not at their ends): its longest rail run counts when
    it is at least 1 / ``ratio`` of the band's run."""
    if band[4] > 0 and ratio * band[4] >= band[0]:
        acc[0] += band[4]
        acc[1] += 1
        if band[1] > band[0] and band[1] < n:
            acc[2] = max(acc[2], band[4])


@njit(inline="always")
def _in_band(t, on_rail, band, acc, least, ratio, n):  # pragma: no cover - compiled
    """Sample ``t`` is in a rail's band (on the rail itself if ``on_rail``): continues the band's run
    ``band`` (updated in place), or starts one once the one before is counted into ``acc``."""
    if t != band[1]:
        _closed(band, acc, ratio, n)
        band[0] = 0
        band[4] = 0
    band[0] += 1
    band[1] = t + 1
    if on_rail:
        if t != band[3]:
            band[2] = 0
        band[2] += 1
        band[3] = t + 1
        if band[2] >= least and band[2] > band[4]:
            band[4] = band[2]


@njit(inline="always")
def _step(row, least):  # pragma: no cover - compiled
    """The smallest difference between neighbouring samples above ``least`` (0 when none)."""
    step = np.inf
    for t in range(1, row.shape[0]):
        d = abs(row[t] - row[t - 1])
        step = d if (d > least) & (d < step) else step
    return step if step < np.inf else 0.0


@njit(cache=True, nogil=True)
def _rows(x, step, k1, k2, m, a0, a1, b0, b1, interp, nper, hop, win, least, band_steps, ratio, clean, seg,
          stats):  # pragma: no cover - compiled
    rows, n = x.shape
    full = n // step
    inv = 1.0 / step
    low = np.empty(full)
    mid = np.empty(full)
    base = np.empty(full)
    scratch = np.empty(max(k1, k2))
    small = np.empty(m)  # the m smallest residual values so far, ascending
    large = np.empty(m)  # the m largest, negated, ascending
    bands = np.empty((2, 5), np.int64)
    acc = np.empty(3, np.int64)  # on the rails: samples, runs, the longest run
    nseg = seg.shape[1]
    for r in range(rows):
        row = x[r]
        out = clean[r]
        # pass 1: extremes, longest run of repeats, block means and the sum of the samples after
        # the last whole block (no data-dependent branches)
        lo = hi = prev = row[0]
        run = -1
        longest = 0
        tail = 0.0
        for b in range(full + 1):
            s = 0.0
            w = inv if b < full else 1.0
            for t in range(b * step, min(b * step + step, n)):
                v = row[t]
                s += v * w
                lo = v if v < lo else lo  # (finite input: no NaN rule needed)
                hi = v if v > hi else hi
                run = run + 1 if v == prev else 0
                longest = max(longest, run)
                prev = v
            if b < full:
                low[b] = s
            else:
                tail = s
        # the baseline: two-stage running median of the block means
        _edge_median(low, k1, mid, scratch)
        _edge_median(mid, k2, base, scratch)
        sl = sb = 0.0
        bmin = bmax = base[0]
        for b in range(full):
            sl += low[b]
            sb += base[b]
            bmin = min(bmin, base[b])
            bmax = max(bmax, base[b])
        mean = (step * (sl - sb) + tail - (n - full * step) * base[full - 1]) / n
        # the residual: the signal less its baseline, interpolated between block centres, and mean
        for b in range(full):
            e0 = base[max(b - 1, 0)] + mean
            e1 = base[b] + mean
            e2 = base[min(b + 1, full - 1)] + mean
            o = b * step
            for j in range(step):
                out[o + j] = row[o + j] - (interp[0, j] * e0 + interp[1, j] * e1 + interp[2, j] * e2)
        last = base[full - 1] + mean
        for t in range(full * step, n):
            out[t] = row[t] - last
        # the residual's moments (four partial sums: no add waits on the one before)
        m2a = m2b = m4a = m4b = 0.0
        t = 0
        while t + 2 <= n:
            ca = out[t] * out[t]
            cb = out[t + 1] * out[t + 1]
            m2a += ca
            m2b += cb
            m4a += ca * ca
            m4b += cb * cb
            t += 2
        if t < n:
            ca = out[t] * out[t]
            m2a += ca
            m4a += ca * ca
        m2, m4 = m2a + m2b, m4a + m4b
        # pass 2: the residual's tails and the signal's runs on its rails, in one test per sample
        # (few samples pass it: the tails' candidates and the samples near either extreme)
        # (the rails: within 0.1 % of the range of either extreme; their bands: quality_measures._rails)
        span = hi - lo
        tol = 1e-3 * span
        depth = min(band_steps * (tol + _step(row, 1e-9 * span)), 0.5 * span)
        top, bottom = hi - tol, lo + tol
        top_band, bottom_band = hi - tol - depth, lo + tol + depth
        below, above = np.inf, -np.inf  # a value below/above these joins the smallest/largest
        ns = nl = 0
        for j in range(2):  # the upper and lower band's current run: length, end, rail run length, end, longest
            bands[j, 0] = bands[j, 2] = bands[j, 4] = 0
            bands[j, 1] = bands[j, 3] = -1
        acc[0] = acc[1] = acc[2] = 0
        for t in range(n):
            c = out[t]
            v = row[t]
            if (c < below) | (c > above) | (v >= top_band) | (v <= bottom_band):
                if c < below:
                    ns = _keep_smallest(small, ns, m, c)
                    if ns == m:
                        below = small[m - 1]
                if c > above:
                    nl = _keep_smallest(large, nl, m, -c)
                    if nl == m:
                        above = -large[m - 1]
                if v >= top_band:
                    _in_band(t, v >= top, bands[0], acc, least, ratio, n)
                if v <= bottom_band:
                    _in_band(t, v <= bottom, bands[1], acc, least, ratio, n)
        _closed(bands[0], acc, ratio, n)
        _closed(bands[1], acc, ratio, n)
        # Welch segments: the Hann-windowed float32 residual
        for s in range(nseg):
            src = out[s * hop: s * hop + nper]
            dst = seg[r, s]
            for t in range(nper):
                dst[t] = np.float32(src[t]) * win[t]
        st = stats[r]
        st[0], st[1], st[2], st[3], st[4], st[14] = lo, hi, longest, acc[0], acc[1], acc[2]
        st[5], st[6], st[7] = m2, m4, bmax - bmin
        if ns < m or nl < m:  # NaN residual (samples near the float64 limit overflow): no percentiles
            st[8] = st[9] = st[10] = st[11] = st[12] = st[13] = np.nan
        else:
            st[8], st[9] = small[a0], small[a1]
            st[10], st[11] = -large[n - 1 - b0], -large[n - 1 - b1]
            st[12], st[13] = small[0], -large[0]


def quality_rows(x: np.ndarray, step: int, k1: int, k2: int, ranks: tuple[int, int, int, int],
                 interp: np.ndarray, nper: int, hop: int, win: np.ndarray, least_run: int = 3,
                 band_steps: float = 8.0, ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-lead measurements of finite float64 ``x`` ``(rows, n)``, ``1 < step <= n``: returns
    ``(residual (rows, n), windowed float32 Welch segments (rows, segments, nper), statistics
    (rows, len(STATS)))``.  ``k1``, ``k2``: the odd median windows over block means; ``ranks``:
    the sorted positions (a0, a1, b0, b1) of the two percentiles; ``interp``: the (3, step)
    interpolation weights; ``win``: the float32 window of ``nper`` samples, segments ``hop`` apart;
    ``least_run``: the fewest samples a run on a rail needs to count; ``band_steps``, ``ratio``: the
    band below a rail and how much longer than the run on the rail its run may be
    (:func:`ecgfounder.signal.quality_measures._rails`).

    The residual and the segments of a 12-lead record up to ~40 s at 500 Hz (4 MiB each) are written
    into buffers this thread keeps for its next call (valid until then): fresh arrays would cost
    their page faults on every call (0.26-0.38 ms per 10-s record against the kernel's ~0.9,
    measured); longer records get fresh arrays (their page faults are a small part of their cost)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    rows, n = x.shape
    a0, a1, b0, b1 = ranks
    m = max(a1 + 1, n - b0)
    clean = _scratch("clean", (rows, n), np.float64)
    seg = _scratch("seg", (rows, (n - nper) // hop + 1, nper), np.float32)
    stats = np.empty((rows, len(STATS)))
    _rows(x, step, k1, k2, m, a0, a1, b0, b1, np.ascontiguousarray(interp, dtype=np.float64), nper, hop,
          np.ascontiguousarray(win, dtype=np.float32), least_run, float(band_steps), float(ratio), clean, seg, stats)
    return clean, seg, stats


# --------------------------------------------------------------------------------------------
# the reversal check's median beats: R peaks (scipy.signal.find_peaks' rules) and medians
#
# Sorting here is written out (a shell sort): numba's np.partition, np.sort and np.argsort cost 2-8 s
# each to compile on first use, more than every other kernel of this module together.


@njit(inline="always")
def _before(e, i, j):  # pragma: no cover - compiled
    """Whether position ``i`` sorts before ``j`` by ``(e[i], i)``: ascending values, ties by position."""
    return e[i] < e[j] or (e[i] == e[j] and i < j)


@njit(cache=True, nogil=True)
def _argsort(e):  # pragma: no cover - compiled
    """Positions of ``e`` in ascending order, ties by position (what a stable argsort gives)."""
    c = e.shape[0]
    order = np.arange(c)
    h = 1
    while h < c // 3:
        h = 3 * h + 1
    while h >= 1:
        for i in range(h, c):
            t = order[i]
            j = i
            while j >= h and _before(e, t, order[j - h]):
                order[j] = order[j - h]
                j -= h
            order[j] = t
        h //= 3
    return order


@njit(cache=True, nogil=True)
def _peaks(energy, height, distance):  # pragma: no cover - compiled
    """``scipy.signal.find_peaks(energy, height=height, distance=distance)[0]``: local maxima (a
    plateau counts once, at its middle, rounded down) at least ``height`` high, then thinned from
    the highest down so that no two are closer than ``distance`` samples (equal heights: the later
    one first, as a stable sort orders them; scipy's sort leaves the order of exact ties open)."""
    n = energy.shape[0]
    found = np.empty(n // 2 + 1, np.int64)
    c = 0
    i = 1
    while i < n - 1:
        if energy[i - 1] < energy[i]:
            ahead = i + 1
            while ahead < n - 1 and energy[ahead] == energy[i]:
                ahead += 1
            if energy[ahead] < energy[i]:
                mid = (i + ahead - 1) // 2
                if energy[mid] >= height:
                    found[c] = mid
                    c += 1
                i = ahead
        i += 1
    found = found[:c]
    keep = np.ones(c, np.bool_)
    heights = np.empty(c)
    for q in range(c):
        heights[q] = energy[found[q]]
    order = _argsort(heights)
    for q in range(c - 1, -1, -1):
        j = order[q]
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and found[j] - found[k] < distance:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < c and found[k] - found[j] < distance:
            keep[k] = False
            k += 1
    return found[keep]


@njit(cache=True, nogil=True)
def _beat_medians(energy, height, rows, step, distance, pre, post, out):  # pragma: no cover - compiled
    peaks = _peaks(energy, height, distance) * step + step // 2
    n = rows.shape[1]
    ok = peaks[(peaks >= pre) & (peaks + post < n)]
    c = ok.shape[0]
    if c < 3:
        return c
    width = pre + post
    seg = np.empty((c, width))
    col = np.empty(c)
    for i in range(rows.shape[0]):
        for j in range(c):  # the beats one under another: a column holds one instant of every beat
            s0 = ok[j] - pre
            for o in range(width):
                seg[j, o] = rows[i, s0 + o]
        if c <= 48:  # odd-even transposition sort of all columns at once (c passes sort c rows)
            for p in range(c):
                for j in range(p & 1, c - 1, 2):
                    for o in range(width):
                        x0 = seg[j, o]
                        x1 = seg[j + 1, o]
                        seg[j, o] = x0 if x0 < x1 else x1
                        seg[j + 1, o] = x1 if x0 < x1 else x0
            for o in range(width):
                out[i, o] = 0.5 * (seg[(c - 1) // 2, o] + seg[c // 2, o])
        else:  # long records: a sort per column
            for o in range(width):
                for j in range(c):
                    col[j] = seg[j, o]
                order = _argsort(col)
                out[i, o] = 0.5 * (col[order[(c - 1) // 2]] + col[order[c // 2]])
    return c


def beat_medians(energy: np.ndarray, height: float, rows: np.ndarray, step: int, distance: int, pre: int,
                 post: int) -> np.ndarray | None:
    """Median beat (``pre`` samples before to ``post`` after each R peak) of every row of ``rows``
    ``(k, n)``, the R peaks found by scipy's ``find_peaks`` rules (at least ``height`` high,
    ``distance`` apart) on ``energy``, the beat energy over blocks of ``step`` samples
    (:func:`ecgfounder.signal.quality._beat_energy`).  ``None`` when fewer than 3 beats fit."""
    out = np.empty((rows.shape[0], pre + post))
    c = _beat_medians(np.ascontiguousarray(energy, dtype=np.float64), float(height),
                      np.ascontiguousarray(rows, dtype=np.float64), int(step), int(distance), int(pre), int(post), out)
    return out if c >= 3 else None
