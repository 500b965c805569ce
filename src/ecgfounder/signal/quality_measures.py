"""Per-lead measurements of the signal-quality check (:mod:`ecgfounder.signal.quality`): every lead
at once, from a ``(leads, samples)`` float64 array in mV at its own rate.

:func:`measure` returns the indices of every lead (the columns of :data:`~ecgfounder.signal.quality.CHECKS`'
per-lead checks: ``ptp_mv``, ``max_abs_mv``, ``deviation_mv``, ``baseline_mv``, ``gap_s``, ``clipped_fraction``,
``clipped_runs``, ``clipped_longest_s``, ``kSQI``, ``pSQI``, ``basSQI``, ``hf_ratio``, ``powerline_ratio``,
``nonfinite_fraction``) and the residual (the signal less its baseline and mean) the record-level
checks read.  Two forms give the same values to rounding: the compiled kernel
(:mod:`ecgfounder.signal.compiled_quality`, with numba, for records whose samples are all finite)
and the numpy form below (:func:`_residual` then :func:`_measure`: few whole-array calls, NaN
handled), which is also the reference the kernel is tested against.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from .filters import _compiled

__all__ = ["measure", "block_means", "LEAST_RAIL_RUN", "sample_step", "rail_band", "hf_band_hz", "HF_BAND_HZ",
           "MIN_HF_BAND_HZ", "RAIL_BAND_STEPS", "RAIL_SHAPE_RATIO"]


def measure(x: np.ndarray, fs: float, finite: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(indices of every row of ``x`` (float64 ``(leads, n)``, mV, NaN allowed), the residual);
    ``finite``: which rows have only finite samples."""
    comp = _compiled() if finite.all() and 1 < _baseline_plan(fs)[0] <= x.shape[1] else None
    if comp is not None:
        return _compiled_measure(comp, x, fs)
    base, clean = _residual(x, fs, bool(finite.all()))
    return _measure(x, fs, base, clean, finite), clean


#: depth of the band below a rail that tells a rail from a quantised smooth extreme, in
#: (tolerance + quantisation step)s: :func:`rail_band`, :func:`_rails`
RAIL_BAND_STEPS = 8.0
#: a run on a rail counts when its band's run is at most this many times longer (:func:`_rails`)
RAIL_SHAPE_RATIO = 2.0


#: the fewest samples a run on a lead's extreme value needs to count as clipping, at every rate.  A
#: quantised S trough sits on the lead's minimum for 3-4 samples at 500 Hz, beat after beat (read as
#: clipping while runs were judged by their length alone, from 3 samples; then only from 10 ms); the
#: band test of :func:`_rails` tells it from a rail (its band is >= 2.6 x longer), so a rail that cuts
#: the R tops for 6-8 ms on every beat counts again.
LEAST_RAIL_RUN = 3


def block_means(x: np.ndarray, step: int) -> np.ndarray:
    """Means of each row's whole blocks of ``step`` samples (a boxcar decimation in one matrix
    product; a shorter tail is left out; a row shorter than a block gives its mean)."""
    rows, n = x.shape
    full = n // step
    if step == 1 or not full:
        return x if step == 1 else x.mean(axis=1, keepdims=True)
    return (x[:, : full * step].reshape(rows * full, step) @ np.full(step, 1.0 / step)).reshape(rows, full)


@lru_cache(maxsize=16)
def _interp_weights(step: int) -> np.ndarray:
    """(3, step) weights giving a block's samples from the (previous, own, next) block values by
    linear interpolation between block centres (symmetric: they sum to ``step`` x the values)."""
    d = (np.arange(step) - (step - 1) / 2) / step
    return np.stack([np.maximum(-d, 0), 1 - np.abs(d), np.maximum(d, 0)])


def _edge_median(x: np.ndarray, k: int) -> np.ndarray:
    """Running median of each row over ``k`` samples, the window cut at the ends (the median of the
    values it holds there: repeating an edge value made a record that ends on a tall R wave have
    a baseline that follows the R)."""
    from .filters import running_median

    h, n = k // 2, x.shape[1]
    padded = np.concatenate((x[:, :1].repeat(h, 1), x, x[:, -1:].repeat(h, 1)), 1)
    out = running_median(padded, k)[:, h: h + n]
    for c in range(min(h, n)):
        out[:, c] = np.median(x[:, : min(n, c + h + 1)], axis=1)
    for c in range(max(n - h, h), n):
        out[:, c] = np.median(x[:, c - h:], axis=1)
    return out


def _baseline_plan(fs: float) -> tuple[int, int, int]:
    """(block length giving ~50 block means per second, the two median windows in blocks: 0.2 s
    and 0.6 s, odd)."""
    step = max(1, int(fs // 50))
    k1, k2 = (max(3, int(s * fs / step) | 1) for s in (0.2, 0.6))
    return step, k1, k2


def _residual(x: np.ndarray, fs: float, finite: bool) -> tuple[np.ndarray, np.ndarray]:
    """(baseline at ~50 Hz, the signal less its baseline and mean): a two-stage median filter (0.2 s
    then 0.6 s, de Chazal et al. 2004) on block means, brought back to the input rate by linear
    interpolation (a staircase would add a 50-Hz sawtooth where the wander is steep, read as mains).
    Non-finite samples are first filled with their lead's median (0 for an all-NaN lead)."""
    if not finite:
        rows = np.where(np.isfinite(x), x, np.nan)
        some = ~np.isnan(rows).all(axis=1)  # all-NaN rows keep 0 (no warning: threads prepare records at once)
        med = np.zeros((rows.shape[0], 1))
        med[some] = np.nanmedian(rows[some], axis=1, keepdims=True)
        x = np.nan_to_num(rows - med)
    step, k1, k2 = _baseline_plan(fs)
    low = block_means(x, step)
    base = _edge_median(_edge_median(low, k1), k2)
    rows, n = x.shape
    full = n // step
    if step == 1 or not full:
        clean = x - base
        return base, clean - clean.mean(axis=1, keepdims=True)
    # the residual's mean from the block sums (the interpolation keeps sums): folded into the
    # baseline, so the residual comes out mean-free without another pass
    tail = x[:, full * step:]
    mean = (step * (low.sum(axis=1) - base.sum(axis=1)) + tail.sum(axis=1) - tail.shape[1] * base[:, -1]) / n
    ext = np.concatenate((base[:, :1], base, base[:, -1:]), axis=1) + mean[:, None]
    around = np.stack((ext[:, :-2], ext[:, 1:-1], ext[:, 2:]), axis=-1)
    clean = np.empty_like(x)
    np.subtract(x[:, : full * step], (around @ _interp_weights(step)).reshape(rows, -1), out=clean[:, : full * step])
    np.subtract(tail, ext[:, -1:], out=clean[:, full * step:])
    return base, clean


#: Hz of the high-frequency band (40-150 Hz less 45-65 Hz) at rates of 300 Hz and more
HF_BAND_HZ = 90.0
#: the least width of that band below its Nyquist frequency for a noise ratio to be measured
MIN_HF_BAND_HZ = 15.0


def hf_band_hz(fs: float) -> float:
    """Hz of the high-frequency band (40-150 Hz, 45-65 Hz left out) below ``fs``'s Nyquist frequency."""
    ny = fs / 2
    return max(0.0, min(ny, 150.0) - 40.0) - max(0.0, min(ny, 65.0) - 45.0)


@lru_cache(maxsize=16)
def _welch_plan(n: int, fs: float) -> tuple[int, int, np.ndarray, np.ndarray, tuple[str, ...], float]:
    """Welch's 2-s segments, half overlapping: (length, hop, float32 Hann window, (re/im bin x band)
    0/1 matrix, band names, the factor bringing the high-frequency power to its 90-Hz band (NaN when
    less than :data:`MIN_HF_BAND_HZ` of it lies below Nyquist)); DC and Nyquist count half, as in
    scipy's one-sided density."""
    from scipy.signal import get_window

    nper = int(min(n, max(64, 2 * fs)))
    f = np.fft.rfftfreq(nper, 1.0 / fs)
    edges = {"qrs": (5, 15), "ecg": (5, 40), "low": (0, 1), "all": (0, 40)}
    if fs / 2 > 45:
        edges.update(hf=(40, min(fs / 2, 150.0)), hf_gap=(45, 65))
    edges.update({f"pl{c}": (c - 1, c + 1) for c in (50, 60) if fs / 2 > c + 1})
    band = np.stack([((f >= lo) & (f < hi)).astype(np.float32) for lo, hi in edges.values()], axis=1)
    band[[0, -1] if nper % 2 == 0 else [0]] *= 0.5
    width = hf_band_hz(fs)
    scale = HF_BAND_HZ / width if width >= MIN_HF_BAND_HZ else np.nan
    return (nper, nper - nper // 2, get_window("hann", nper).astype(np.float32), np.repeat(band, 2, axis=0),
            tuple(edges), scale)


def _spectral(c: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Band-power ratios of each row of ``c`` (mean-free) from :func:`scipy.signal.welch`'s estimate
    (2-s Hann segments, half overlap, no detrending), in float32 and one FFT call (equal to ~1e-7)."""
    plan = _welch_plan(c.shape[1], float(fs))
    nper, hop, win = plan[:3]
    nseg = (c.shape[1] - nper) // hop + 1
    seg = np.lib.stride_tricks.sliding_window_view(c, nper, axis=1)[:, : nseg * hop: hop]
    with np.errstate(over="ignore", invalid="ignore"):  # (|x| beyond float32: inf, as the kernel's)
        seg = np.multiply(seg, win, dtype=np.float32)  # windowed float32 segments in one pass
    return _band_ratios(seg, plan)


def _band_ratios(seg: np.ndarray, plan: tuple) -> dict[str, np.ndarray]:
    """The ratios of :func:`_spectral` from the windowed float32 segments ``(rows, segments, nper)``
    (overwritten) and the :func:`_welch_plan` they were cut by.  ``hf_ratio`` is the power above
    40 Hz as it would be over the whole 90-Hz band (below 300 Hz, Nyquist cuts the band: white noise
    of one density read 0.17 of its 500-Hz ratio at 150 Hz and 0.72 at 250 Hz, so a lead of pure noise
    could never reach the threshold under ~176 Hz); NaN (not measured) with under 15 Hz of it."""
    from scipy.fft import rfft

    rows = seg.shape[0]
    band, names, hf_scale = plan[3:]
    spec = rfft(seg, axis=-1, overwrite_x=True).view(np.float32)  # (rows, segments, re/im interleaved)
    p = dict(zip(names, (np.einsum("rsf,rsf->rf", spec, spec) @ band).astype(np.float64).T))
    ecg, pl, nan = p["ecg"] + 1e-20, [p[k] for k in ("pl50", "pl60") if k in p], np.full(rows, np.nan)
    return {"pSQI": p["qrs"] / ecg, "basSQI": 1.0 - p["low"] / (p["all"] + 1e-20),
            "hf_ratio": hf_scale * np.maximum(p["hf"] - p["hf_gap"], 0.0) / ecg if "hf" in p else nan,
            "powerline_ratio": np.maximum.reduce(pl) / ecg if pl else nan}


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, start, length) of every run of True in a 2-D boolean array whose last column is False
    (start: the flat index of its first sample)."""
    pos = np.flatnonzero(mask)
    starts = np.flatnonzero(np.diff(pos, prepend=-2) != 1)
    return pos[starts] // mask.shape[1], pos[starts], np.diff(starts, append=pos.size)


def _percentiles(x: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """``np.percentile(x, [q, 100 - q], axis=1)`` (linear method), ``q`` < 50, for finite ``x``.

    Each tail's m samples are sought beyond a bound that m samples at least reach (the m-th largest
    of 8m strided groups' maxima; the same below) and only those few dozen candidates per row are
    sorted: half the cost of ``np.percentile`` (measured), the same values."""
    rows, n = x.shape
    (a0, a1, ta), (b0, b1, tb) = _ranks(n, q)
    m = max(a1 + 1, n - b0)  # samples from the farthest rank to the end of either tail
    groups = 8 * m
    lo = hi = None
    if groups * 4 <= n:
        g = x[:, : n // groups * groups].reshape(rows, -1, groups)
        bound = np.partition(np.concatenate((g.min(axis=1), g.max(axis=1))), [m - 1, groups - m], axis=1)
        mask = np.empty((2 * rows, n), dtype=bool)
        np.less_equal(x, bound[:rows, m - 1: m], out=mask[:rows])
        np.greater_equal(x, bound[rows:, groups - m: groups - m + 1], out=mask[rows:])
        flat = np.flatnonzero(mask)
        row = flat // n
        count = np.bincount(row, minlength=2 * rows)
        w = int(count.max())
        if (count >= m).all() and w <= 16 * m:  # (not so with NaN; a flat lead: partition instead)
            vals = np.full((2 * rows, w), np.inf)
            vals[rows:] = -np.inf
            vals[row, np.arange(flat.size) - (np.cumsum(count) - count)[row]] = x.ravel()[flat % (rows * n)]
            vals.sort(axis=1)
            lo, hi = vals[:rows, [a0, a1]], vals[rows:, [w - n + b0, w - n + b1]]
    if lo is None:
        part = np.partition(x, sorted({a0, a1, b0, b1}), axis=1)
        lo, hi = part[:, [a0, a1]], part[:, [b0, b1]]
    return _lerp(lo.T, ta), _lerp(hi.T, tb)


def _ranks(n: int, q: float) -> tuple[tuple[int, int, float], tuple[int, int, float]]:
    """numpy's linear-method percentile positions of ``q`` and ``100 - q`` in ``n`` sorted values:
    ((rank, next rank, weight), (rank, next rank, weight))."""
    v = [qq / 100 * (n - 1) for qq in (q, 100 - q)]
    (a0, a1, ta), (b0, b1, tb) = ((int(u), min(int(u) + 1, n - 1), u - int(u)) for u in v)
    return (a0, a1, ta), (b0, b1, tb)


def _lerp(pair: tuple[np.ndarray, np.ndarray] | np.ndarray, t: float) -> np.ndarray:
    """numpy's ``_lerp`` between the values at two neighbouring ranks, weight ``t``."""
    a, b = pair
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def _measure(x: np.ndarray, fs: float, base: np.ndarray, clean: np.ndarray,
             finite: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of every row of ``x`` (mV, NaN allowed), given its baseline and (mean-free) residual."""
    rows, n = x.shape
    spec = _spectral(clean, fs)
    c2 = clean * clean
    m2 = c2.sum(axis=1)
    with np.errstate(all="ignore"):
        ksqi = n * np.einsum("ij,ij->i", c2, c2) / (m2 * m2)  # kurtosis m4 / m2^2 (scipy's, not Fisher's)
        lo, hi = x.min(axis=1), x.max(axis=1)
        # five masks (and a guard column), their runs found in one pass: long repeats, the rails
        # (upper, lower), the bands around them (upper, lower)
        guarded = np.zeros((5, rows, n + 1), dtype=bool)
        masks = guarded[:, :, :n]
        eq = np.zeros((rows, n), dtype=bool)  # sample equal to the previous one (or not finite)
        np.equal(x[:, 1:], x[:, :-1], out=eq[:, 1:])
        _rails(x, lo, hi, masks[1:])
    nonfinite, nfin = np.zeros(rows), np.full(rows, float(n))
    for i in np.flatnonzero(~finite):  # leads with NaN/inf: extremes and rails of their finite samples
        good = np.isfinite(x[i])
        eq[i] |= ~good
        nonfinite[i] = 1.0 - good.mean()
        r = x[i][good] if good.any() else np.zeros(1)
        lo[i], hi[i], nfin[i] = r.min(), r.max(), r.size
        masks[1:, i] = False
        _rails(r[None], lo[i:i + 1], hi[i:i + 1], masks[1:, i:i + 1, : r.size])
    # runs of >= 4 repeats (2% of samples against 20% for runs of any length): their starts in
    # masks[0]; a lead without one has its longest run (0 to 3) from the shorter ones
    eq2 = eq[:, :-1] & eq[:, 1:]
    np.logical_and(eq2[:, :-2], eq2[:, 2:], out=masks[0, :, : max(n - 3, 0)])
    longest = eq.any(axis=1).astype(np.int64) + eq2.any(axis=1) + (eq2[:, :-1] & eq[:, 2:]).any(axis=1)
    row, start, length = _runs(guarded.reshape(5 * rows, n + 1))
    k = np.searchsorted(row, rows)  # runs of long repeats first, then of the rails, then of the bands
    if k:
        first = np.flatnonzero(np.diff(row[:k], prepend=-1))
        longest[row[first]] = np.maximum.reduceat(length[:k], first) + 3
    rail_samples, rail_runs, rail_longest = _rail_counts(row[k:] - rows, start[k:], length[k:], rows, n + 1,
                                                         LEAST_RAIL_RUN)
    return _indices(fs, n, lo, hi, longest, (rail_samples, rail_runs, rail_longest), nfin, ksqi, np.ptp(base, axis=1),
                    _percentiles(clean, 0.5), spec, nonfinite, (clean.min(axis=1), clean.max(axis=1)))


def _rail_counts(row: np.ndarray, start: np.ndarray, length: np.ndarray, rows: int, width: int,
                 least: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(samples, runs, the longest run inside the record) on the rails of every lead from the runs
    (:func:`_runs`) of the masks of :func:`_rails`, ``width`` (samples + the guard column) wide:
    ``row`` counts the two rails' masks first (``0 .. 2 rows``), then their bands' (a band's run
    starts ``2 rows width`` flat samples after its rail's).  A band's run counts as one run on the
    rail, of its longest rail run, when that run has ``least`` samples and is at least
    1 / :data:`RAIL_SHAPE_RATIO` of the band's run (see :func:`_rails`); the longest run is of the
    bands' runs that neither start at the first sample nor end at the last (a run is seen reached
    and left: a record that ends holding its last value is no saturation)."""
    shift = 2 * rows * width
    split = np.searchsorted(row, 2 * rows)
    keep = length[:split] >= least
    within = np.searchsorted(start[split:], start[:split][keep] + shift, side="right") - 1
    best = np.zeros(row.size - split, dtype=np.int64)
    np.maximum.at(best, within, length[:split][keep])
    rail = (best > 0) & (RAIL_SHAPE_RATIO * best >= length[split:])
    lead = row[split:][rail] % rows
    col = start[split:][rail] % width
    inside = (col > 0) & (col + length[split:][rail] < width - 1)
    longest = np.zeros(rows)
    np.maximum.at(longest, lead[inside], best[rail][inside])
    return (np.bincount(lead, weights=best[rail], minlength=rows), np.bincount(lead, minlength=rows).astype(float),
            longest)


def _indices(fs: float, n: int, lo: np.ndarray, hi: np.ndarray, repeats: np.ndarray,
             rails: tuple[np.ndarray, np.ndarray, np.ndarray], nfin: np.ndarray, ksqi: np.ndarray,
             baseline: np.ndarray, percentiles: tuple[np.ndarray, np.ndarray], spec: dict[str, np.ndarray],
             nonfinite: np.ndarray, residual: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """The indices of every lead from its measurements (arrays over leads): extremes, longest run of
    repeated samples, (samples, runs, the longest run) on the rails (runs of :data:`LEAST_RAIL_RUN`
    that pass the band test), finite samples, kurtosis, baseline range, the 0.5th/99.5th percentiles
    of the residual, the spectral ratios, non-finite share, the residual's extremes."""
    rail_samples, rail_runs, rail_longest = rails
    with np.errstate(over="ignore", invalid="ignore"):  # (samples near the float64 limit)
        flat = hi - lo <= 0
        ptp = percentiles[1] - percentiles[0]
        deviation = np.maximum(-residual[0], residual[1])
    gap = np.where(repeats > 0, repeats + 1, 0)  # k repeats span k + 1 samples
    return {
        "ptp_mv": ptp,
        "max_abs_mv": np.maximum(np.abs(lo), np.abs(hi)),
        "deviation_mv": deviation,
        "baseline_mv": baseline,
        "gap_s": np.minimum(gap, n) / fs,
        "clipped_fraction": np.where(flat, 0.0, rail_samples / nfin),
        "clipped_runs": np.where(flat, 0.0, rail_runs),
        "clipped_longest_s": np.where(flat, 0.0, rail_longest) / fs,
        "kSQI": ksqi,
        **spec,
        "nonfinite_fraction": nonfinite,
    }


def _compiled_measure(comp: Any, x: np.ndarray, fs: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(indices, residual) of finite ``x`` by the compiled kernel (same values as :func:`_residual`
    and :func:`_measure` to rounding)."""
    rows, n = x.shape
    step, k1, k2 = _baseline_plan(fs)
    (a0, a1, ta), (b0, b1, tb) = _ranks(n, 0.5)
    plan = _welch_plan(n, fs)
    clean, seg, st = comp.quality_rows(x, step, k1, k2, (a0, a1, b0, b1), _interp_weights(step), *plan[:3],
                                       LEAST_RAIL_RUN, RAIL_BAND_STEPS, RAIL_SHAPE_RATIO)
    with np.errstate(all="ignore"):
        ksqi = n * st[:, 6] / (st[:, 5] * st[:, 5])
    values = _indices(fs, n, st[:, 0], st[:, 1], st[:, 2], (st[:, 3], st[:, 4], st[:, 14]), np.full(rows, float(n)),
                      ksqi, st[:, 7], (_lerp(st[:, 8:10].T, ta), _lerp(st[:, 10:12].T, tb)), _band_ratios(seg, plan),
                      np.zeros(rows), (st[:, 12], st[:, 13]))
    return values, clean


def sample_step(x: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Each row's quantisation step: its smallest difference between neighbouring samples above
    1e-9 of its range ``span`` (float rounding of equal values is no step); 0 where there is none."""
    with np.errstate(invalid="ignore"):
        d = np.abs(np.diff(x, axis=1))
        d[~(d > 1e-9 * span[:, None])] = np.inf
    step = d.min(axis=1) if d.shape[1] else np.full(x.shape[0], np.inf)
    return np.where(np.isfinite(step), step, 0.0)


def rail_band(tol: np.ndarray, step: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Depth of the band below a rail (beyond its tolerance ``tol``) that tells a rail from a
    quantised smooth extreme: :data:`RAIL_BAND_STEPS` x (``tol`` + the quantisation ``step``),
    at most half the lead's range ``span``."""
    return np.minimum(RAIL_BAND_STEPS * (tol + step), 0.5 * span)


def _rails(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray) -> None:
    """Marks each row's samples within 0.1 % of its range of its maximum (``out[0]``) and minimum
    (``out[1]``): the rails; and the samples within :func:`rail_band` more of them (``out[2]``,
    ``out[3]``): the bands.

    A rail cuts the signal: it arrives at the extreme value and leaves it steeply, and the band
    around a run on it is hardly longer than the run.  A smooth extreme, quantised, also rests on
    one sample value for a while (a 1-Hz sine at 20-µV steps: ~45 ms; an S trough: 3-4 samples),
    but it is parabolic there: its band, (K + 1) x deeper, is sqrt(K - 1) or more times longer than
    its run (K = :data:`RAIL_BAND_STEPS` = 8: 2.6 x), while a rail the signal overshoots by more
    than a few steps has a band barely longer than the run: a run counts when it is at least half
    its band's (:data:`RAIL_SHAPE_RATIO`)."""
    span = hi - lo
    tol = 1e-3 * span
    band = rail_band(tol, sample_step(x, span), span)
    np.greater_equal(x, (hi - tol)[:, None], out=out[0])
    np.less_equal(x, (lo + tol)[:, None], out=out[1])
    np.greater_equal(x, (hi - tol - band)[:, None], out=out[2])
    np.less_equal(x, (lo + tol + band)[:, None], out=out[3])
