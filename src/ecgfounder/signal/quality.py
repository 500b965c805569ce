"""Signal quality: is a recording fit to read, lead by lead, before the model speaks?

:func:`assess` looks at a :class:`~ecgfounder.recording.Recording` in millivolts at its own rate and
returns a :class:`QualityReport`: per-lead indices and flags, record-level flags, and one summary
string (``"good"`` or e.g. ``"flat:V3;reversal:LA-RA"``) for tables.

Every check, its threshold and where it comes from is listed in :data:`CHECKS` (and in
``docs/quality.md``).  Thresholds live in the frozen :class:`QualityThresholds`; the defaults were set
on the 50 CinC 2021 records of ``tests/data/cinc2021`` (real 12-lead ECGs, several with real
power-line noise, baseline wander and dead leads) and on corrupted copies of them (a lead zeroed,
clipped, LA/RA swapped, noise added), as the tests show.

Indices reported per lead (the signal-quality indices of Li, Clifford et al.): ``kSQI`` (kurtosis;
> 5 is the literature's "clean" rule, reported, not flagged: many clean leads with broad T waves fall
below it), ``pSQI`` (5–15 Hz over 5–40 Hz power), ``basSQI`` (1 − 0–1 Hz over 0–40 Hz power),
``hf_ratio`` (power above 40 Hz, mains bands excluded, over 5–40 Hz), ``powerline_ratio`` (±1 Hz of
50 or 60 Hz over 5–40 Hz), ``ptp_mv`` (0.5th–99.5th percentile range after baseline removal),
``baseline_mv`` (range of the baseline: two-stage 0.2 s / 0.6 s median filter, de Chazal et al.
2004), ``clipped_fraction`` (share of samples on the lead's extreme value in runs of ≥ 3), ``gap_s``
(longest run of NaN or exactly constant samples) and ``nonfinite_fraction``.

Cost (one core of the shared 2-core dev VM, 50 records of ``tests/data/cinc2021``): 2.8–5.1 ms CPU per
10-s 12-lead 500-Hz record, 3.3–4.8x less than the former per-lead scipy code in the same runs (see
``docs/quality.md`` for the command); a 5-min 12-lead record ~90 ms (was ~300).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .filters import _compiled
from .leads import canonical_lead

__all__ = ["QualityThresholds", "LeadQuality", "QualityReport", "assess", "CHECKS", "LEAD_OFF_META_KEYS"]


@dataclass(frozen=True)
class QualityThresholds:
    """Thresholds of the quality checks (millivolts, seconds, power ratios)."""

    flat_ptp_mv: float = 0.05          # lead-off / flat: robust peak-to-peak below 50 µV
    gap_s: float = 1.0                 # missing segment: ≥ 1 s of NaN or exactly constant samples
    clipped_fraction: float = 0.003    # clipping: ≥ 0.3 % of samples on the rail, in ≥ 3 runs
    clipped_runs: int = 3
    hf_ratio: float = 0.8              # HF (> 40 Hz) noise power ≥ 0.8 × the 5–40 Hz ECG power
    powerline_ratio: float = 0.5       # 50/60 Hz power ≥ 0.5 × the 5–40 Hz ECG power
    baseline_mv: float = 3.0           # baseline wander ≥ 3 mV peak-to-peak
    max_ptp_mv: float = 12.0           # implausible amplitude: robust ptp > 12 mV ...
    max_abs_mv: float = 25.0           # ... or any |sample| > 25 mV (no surface ECG reaches that)
    einthoven_fraction: float = 0.10   # II ≠ I + III by more than 10 % of II's range
    polarity_min_mv: float = 0.03      # smallest P/QRS deflection taken as a polarity
    reversal_corr: float = 0.2         # I (or II) vs V6 median-beat correlation below -0.2: reversal
    max_seconds: float = 300.0         # longer records are assessed on their first 5 minutes


#: check name -> (what it means, threshold field, source)
CHECKS: Mapping[str, tuple[str, str, str]] = MappingProxyType({
    "missing": ("non-finite samples (NaN/inf) in the lead", "-", "data integrity"),
    "flat": ("lead flat or disconnected: robust peak-to-peak below the threshold", "flat_ptp_mv",
             "lead-off detection as in Clifford et al. 2012 (flat-line rule)"),
    "gap": ("a run of NaN or exactly constant samples at least this long", "gap_s",
            "missing-segment rule (Clifford et al. 2012, PhysioNet/CinC 2011)"),
    "clipped": ("samples sitting on the lead's extreme value in repeated runs (saturation)", "clipped_fraction",
                "amplifier saturation / clipping rule"),
    "noise": ("high-frequency (muscle) noise: power above 40 Hz relative to the 5-40 Hz band", "hf_ratio",
              "hfSQI-style spectral ratio (Li, Mark & Clifford 2008)"),
    "powerline": ("mains interference at 50 or 60 Hz relative to the 5-40 Hz band", "powerline_ratio",
                  "spectral ratio"),
    "baseline": ("baseline wander amplitude (two-stage median filter)", "baseline_mv",
                 "baseline estimate of de Chazal et al. 2004; basSQI reported beside it"),
    "amplitude": ("implausible amplitude for a surface ECG", "max_ptp_mv",
                  "physiology: surface ECG deflections stay within a few mV"),
    "lead_off": ("the device itself reports the lead (meta 'leads_off') or all leads (meta 'lead_off') as off",
                 "-", "the file's own statement"),
    "einthoven": ("limb leads inconsistent: II differs from I + III", "einthoven_fraction",
                  "Einthoven's law"),
    "reversal": ("limb-lead reversal (LA-RA: lead I P and QRS inverted with aVR upright; RA-LL: lead II "
                 "P and QRS inverted with aVR upright); dextrocardia looks the same", "polarity_min_mv",
                 "Batchvarov, Malik & Camm 2007, 'Incorrect electrode cable connection during ECG "
                 "recording', Europace"),
})

#: ``Recording.meta`` keys a reader sets when the device states that leads were off: ``lead_off``
#: (true) or ``lead_off_statement`` (the device's words) for the recording as a whole, and
#: ``leads_off`` (the names of the leads concerned).
LEAD_OFF_META_KEYS = ("lead_off", "lead_off_statement", "leads_off")

_BEAT_RATE = 250.0  # Hz: R peaks are found on block means at about this rate

_PER_LEAD_ORDER = ("lead_off", "missing", "flat", "gap", "clipped", "amplitude", "noise", "powerline", "baseline")


@dataclass(frozen=True)
class LeadQuality:
    """Quality of one lead: its flags (names from :data:`CHECKS`) and indices."""

    lead: str
    flags: tuple[str, ...]
    indices: Mapping[str, float] = field(default_factory=dict)

    @property
    def good(self) -> bool:
        return not self.flags


@dataclass(frozen=True)
class QualityReport:
    """Quality of a recording.

    Attributes:
        leads: one :class:`LeadQuality` per lead of the recording, in its order.
        record_flags: flags about the recording as a whole, e.g. ``"reversal:LA-RA"``, ``"lead_off"``.
        thresholds: the thresholds used.
    """

    leads: tuple[LeadQuality, ...]
    record_flags: tuple[str, ...] = ()
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)

    @property
    def good(self) -> bool:
        return not self.record_flags and all(lq.good for lq in self.leads)

    def flagged_leads(self) -> tuple[str, ...]:
        return tuple(lq.lead for lq in self.leads if lq.flags)

    @property
    def summary(self) -> str:
        """``"good"``, or the flags as ``flag:LEAD[,LEAD...]`` joined by ``;``, record flags last."""
        if self.good:
            return "good"
        parts = []
        for flag in _PER_LEAD_ORDER:
            leads = [lq.lead for lq in self.leads if flag in lq.flags]
            if leads:
                parts.append(f"{flag}:{','.join(leads)}")
        parts.extend(self.record_flags)
        return ";".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready form (non-finite indices become ``None``)."""
        def clean(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {
            "summary": self.summary,
            "good": self.good,
            "record_flags": list(self.record_flags),
            "leads": [
                {"lead": lq.lead, "flags": list(lq.flags), "indices": {k: clean(v) for k, v in lq.indices.items()}}
                for lq in self.leads
            ],
            "thresholds": asdict(self.thresholds),
        }


# ----------------------------------------------------------------------------------------------
# per-lead measurements: every lead at once, in few numpy calls (each costs microseconds here)


def _block_means(x: np.ndarray, step: int) -> np.ndarray:
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
    """Running median of each row over ``k`` samples, the ends padded with their edge values."""
    from .filters import running_median

    h = k // 2
    padded = np.concatenate((x[:, :1].repeat(h, 1), x, x[:, -1:].repeat(h, 1)), 1)
    return running_median(padded, k)[:, h: h + x.shape[1]]


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
    low = _block_means(x, step)
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


@lru_cache(maxsize=16)
def _welch_plan(n: int, fs: float) -> tuple[int, int, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Welch's 2-s segments, half overlapping: (length, hop, float32 Hann window, (re/im bin x band)
    0/1 matrix, band names); DC and Nyquist count half, as in scipy's one-sided density."""
    from scipy.signal import get_window

    nper = int(min(n, max(64, 2 * fs)))
    f = np.fft.rfftfreq(nper, 1.0 / fs)
    edges = {"qrs": (5, 15), "ecg": (5, 40), "low": (0, 1), "all": (0, 40)}
    if fs / 2 > 45:
        edges.update(hf=(40, min(fs / 2, 150.0)), hf_gap=(45, 65))
    edges.update({f"pl{c}": (c - 1, c + 1) for c in (50, 60) if fs / 2 > c + 1})
    band = np.stack([((f >= lo) & (f < hi)).astype(np.float32) for lo, hi in edges.values()], axis=1)
    band[[0, -1] if nper % 2 == 0 else [0]] *= 0.5
    return nper, nper - nper // 2, get_window("hann", nper).astype(np.float32), np.repeat(band, 2, axis=0), tuple(edges)


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
    (overwritten) and the :func:`_welch_plan` they were cut by."""
    from scipy.fft import rfft

    rows = seg.shape[0]
    band, names = plan[3:]
    spec = rfft(seg, axis=-1, overwrite_x=True).view(np.float32)  # (rows, segments, re/im interleaved)
    p = dict(zip(names, (np.einsum("rsf,rsf->rf", spec, spec) @ band).astype(np.float64).T))
    ecg, pl, nan = p["ecg"] + 1e-20, [p[k] for k in ("pl50", "pl60") if k in p], np.full(rows, np.nan)
    return {"pSQI": p["qrs"] / ecg, "basSQI": 1.0 - p["low"] / (p["all"] + 1e-20),
            "hf_ratio": np.maximum(p["hf"] - p["hf_gap"], 0.0) / ecg if "hf" in p else nan,
            "powerline_ratio": np.maximum.reduce(pl) / ecg if pl else nan}


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, length) of every run of True in a 2-D boolean array whose last column is False."""
    pos = np.flatnonzero(mask)
    starts = np.flatnonzero(np.diff(pos, prepend=-2) != 1)
    return pos[starts] // mask.shape[1], np.diff(starts, append=pos.size)


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
        # three masks (and a guard column), their runs found in one pass: long repeats, rails
        guarded = np.zeros((3, rows, n + 1), dtype=bool)
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
    row, length = _runs(guarded.reshape(3 * rows, n + 1))
    k = np.searchsorted(row, rows)  # runs of long repeats first, then of the rails
    if k:
        first = np.flatnonzero(np.diff(row[:k], prepend=-1))
        longest[row[first]] = np.maximum.reduceat(length[:k], first) + 3
    long = length[k:] >= 3
    rail = row[k:][long] % rows
    return _indices(fs, n, lo, hi, longest, np.bincount(rail, weights=length[k:][long], minlength=rows),
                    np.bincount(rail, minlength=rows), nfin, ksqi, np.ptp(base, axis=1), _percentiles(clean, 0.5),
                    spec, nonfinite)


def _indices(fs: float, n: int, lo: np.ndarray, hi: np.ndarray, repeats: np.ndarray, rail_samples: np.ndarray,
             rail_runs: np.ndarray, nfin: np.ndarray, ksqi: np.ndarray, baseline: np.ndarray,
             percentiles: tuple[np.ndarray, np.ndarray], spec: dict[str, np.ndarray],
             nonfinite: np.ndarray) -> dict[str, np.ndarray]:
    """The indices of every lead from its measurements (arrays over leads): extremes, longest run of
    repeated samples, samples and runs (of >= 3) on the rails, finite samples, kurtosis, baseline
    range, the 0.5th/99.5th percentiles of the residual, the spectral ratios, non-finite share."""
    flat = hi - lo <= 0
    gap = np.where(repeats > 0, repeats + 1, 0)  # k repeats span k + 1 samples
    return {
        "ptp_mv": percentiles[1] - percentiles[0],
        "max_abs_mv": np.maximum(np.abs(lo), np.abs(hi)),
        "baseline_mv": baseline,
        "gap_s": np.minimum(gap, n) / fs,
        "clipped_fraction": np.where(flat, 0.0, rail_samples / nfin),
        "clipped_runs": np.where(flat, 0.0, rail_runs),
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
    clean, seg, st = comp.quality_rows(x, step, k1, k2, (a0, a1, b0, b1), _interp_weights(step), *plan[:3])
    with np.errstate(all="ignore"):
        ksqi = n * st[:, 6] / (st[:, 5] * st[:, 5])
    values = _indices(fs, n, st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4], np.full(rows, float(n)), ksqi,
                      st[:, 7], (_lerp(st[:, 8:10].T, ta), _lerp(st[:, 10:12].T, tb)), _band_ratios(seg, plan),
                      np.zeros(rows))
    return values, clean


def _rails(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray) -> None:
    """Marks each row's samples within 0.1 % of its range of its maximum (``out[0]``) and minimum."""
    tol = 1e-3 * (hi - lo)
    np.greater_equal(x, (hi - tol)[:, None], out=out[0])
    np.less_equal(x, (lo + tol)[:, None], out=out[1])


def _lead_flags(idx: Mapping[str, float], th: QualityThresholds) -> list[str]:
    flags = ["missing"] if idx["nonfinite_fraction"] > 0 else []
    if idx["ptp_mv"] < th.flat_ptp_mv:
        return flags + ["flat"]  # the other checks say nothing about a dead lead
    return flags + [flag for flag, hit in (
        ("gap", idx["gap_s"] >= th.gap_s),
        ("clipped", idx["clipped_fraction"] >= th.clipped_fraction and idx["clipped_runs"] >= th.clipped_runs),
        ("amplitude", idx["ptp_mv"] > th.max_ptp_mv or idx["max_abs_mv"] > th.max_abs_mv),
        ("noise", idx["hf_ratio"] >= th.hf_ratio),
        ("powerline", idx["powerline_ratio"] >= th.powerline_ratio),
        ("baseline", idx["baseline_mv"] >= th.baseline_mv),
    ) if hit]


# ----------------------------------------------------------------------------------------------
# record-level checks


def _beats(rows: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices from the summed band-passed (5-30 Hz) energy of the given leads, found
    at ~250 Hz on block means (the QRS band still fits) and put at the centre of their block."""
    from scipy.signal import find_peaks

    from .filters import bandpass

    if rows.shape[1] < int(2 * fs) or fs < 60:
        return np.zeros(0, dtype=np.int64)
    step = max(1, int(fs // _BEAT_RATE))
    fs_b = fs / step
    energy = np.abs(bandpass(_block_means(rows, step), fs_b, 5.0, min(30.0, fs_b / 2 - 1), 2)).sum(axis=0)
    k = 0.98 * (energy.size - 1)  # np.percentile(energy, 98), linear
    part = np.partition(energy, [int(k), min(int(k) + 1, energy.size - 1)])
    height = 0.4 * (part[int(k)] + (k - int(k)) * (part[min(int(k) + 1, energy.size - 1)] - part[int(k)]))
    peaks = find_peaks(energy, distance=max(1, int(0.3 * fs_b)), height=height)[0] if height > 0 else []
    return np.asarray(peaks, dtype=np.int64) * step + step // 2


def _median_beats(rows: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray | None:
    """Median beat (0.3 s before to 0.1 s after each R peak) of every row, or None (< 3 beats)."""
    pre, post = int(0.30 * fs), int(0.10 * fs)
    ok = peaks[(peaks >= pre) & (peaks + post < rows.shape[1])]
    if ok.size < 3:
        return None
    seg = rows[:, np.arange(-pre, post)[:, None] + ok]  # (rows, samples, beats): sorted in place
    seg.sort(axis=-1)
    return 0.5 * (seg[..., (ok.size - 1) // 2] + seg[..., ok.size // 2])  # = np.median


def _polarity(beat: np.ndarray, fs: float, min_mv: float) -> tuple[int, int]:
    """(QRS polarity, P polarity) of a median beat: +1, -1, or 0 when too small to say."""
    pre = int(0.30 * fs)
    b = beat - float(np.median(beat[: max(1, int(0.04 * fs))]))
    qrs = b[pre - int(0.06 * fs): pre + int(0.06 * fs)]
    pwin = b[pre - int(0.26 * fs): pre - int(0.08 * fs)]
    s, pk = float(qrs.max() + qrs.min()), float(pwin[np.argmax(np.abs(pwin))]) if pwin.size else 0.0
    return tuple(0 if abs(v) < min_mv else (1 if v > 0 else -1) for v in (s, pk))  # type: ignore[return-value]


def _reversal(clean: np.ndarray, names: Sequence[str], fs: float, usable: np.ndarray,
              th: QualityThresholds) -> list[str]:
    """Limb-lead reversal from the median beats (R peaks found on the usable leads among I, II,
    aVR, aVF, V5, V6).  With a lateral precordial lead (V6, else V5) as reference, which limb-cable
    swaps leave alone: lead I and V6 look alike in a correctly wired ECG (median-beat correlation
    ≥ 0.34 in all 48 CinC sample records with usable leads, one suspected real reversal aside) and
    mirror each other when LA and RA are swapped (≤ -0.34 on the same records swapped); likewise II
    against V6 for an RA/LL swap.  Without a precordial reference, the polarity rule of Batchvarov
    et al.: lead I with inverted P and QRS while aVR is upright."""
    idx = {n: i for i, n in enumerate(names)}
    found = [idx[n] for n in ("I", "II", "aVR", "aVF", "V5", "V6") if n in idx and usable[idx[n]]]
    if not {"I", "II"} <= idx.keys() or not found:
        return []
    peaks = _beats(clean[found], fs)
    ref = next((idx[n] for n in ("V6", "V5") if n in idx and usable[idx[n]]), None)
    if ref is not None:
        beat = _median_beats(clean[[idx["I"], idx["II"], ref]], peaks, fs)
        if beat is None:
            return []
        d = beat - beat.mean(axis=1, keepdims=True)
        ss = np.einsum("ij,ij->i", d, d)
        corr = (d[:2] @ d[2]) / np.sqrt(ss[:2] * ss[2]) if ss[2] > 0 else np.zeros(2)
        corr[ss[:2] <= 0] = 0.0  # a flat median beat says nothing
        if corr[0] < -th.reversal_corr:
            return ["reversal:LA-RA"]
        return ["reversal:RA-LL"] if corr[1] < -th.reversal_corr else []
    lead = {n: clean[idx[n]] for n in ("I", "II", "aVR", "aVF") if n in idx}
    lead.setdefault("aVR", -(lead["I"] + lead["II"]) / 2)
    lead.setdefault("aVF", lead["II"] - lead["I"] / 2)
    beats = _median_beats(np.stack([lead[n] for n in ("I", "II", "aVR", "aVF")]), peaks, fs)
    if beats is None:
        return []
    (i_q, i_p), (ii_q, ii_p), (avr_q, _), (avf_q, _) = (_polarity(b, fs, th.polarity_min_mv) for b in beats)
    if i_q < 0 and i_p < 0 and avr_q > 0:
        return ["reversal:LA-RA"]
    return ["reversal:RA-LL"] if ii_q < 0 and ii_p < 0 and avr_q > 0 and avf_q < 0 else []


def _einthoven(x: np.ndarray, names: Sequence[str], usable: np.ndarray, th: QualityThresholds) -> list[str]:
    idx = {n: i for i, n in enumerate(names)}
    if not {"I", "II", "III"} <= idx.keys() or not all(usable[idx[n]] for n in ("I", "II", "III")):
        return []
    i, ii, iii = (x[idx[n]] for n in ("I", "II", "III"))  # usable leads: finite
    rng = float(ii.max() - ii.min())
    return ["einthoven"] if rng > 0 and float(np.abs(ii - (i + iii)).max()) > th.einthoven_fraction * rng else []


def _leads_off(meta: Mapping[str, Any]) -> tuple[bool, set[str]]:
    """(the device says the whole recording is lead-off, the leads it names as off)."""
    named = meta.get("leads_off") or ()
    if isinstance(named, str):
        named = (named,)
    return bool(meta.get("lead_off") or meta.get("lead_off_statement")), {canonical_lead(n) for n in named}


def assess(recording: Any, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Assess the signal quality of ``recording`` (a :class:`~ecgfounder.recording.Recording`:
    ``signal`` in mV, ``fs``, ``leads``) under ``thresholds`` (default :class:`QualityThresholds`).
    Returns a :class:`QualityReport`; ``report.summary`` is ``"good"`` or the flags."""
    th = thresholds or QualityThresholds()
    fs = float(recording.fs)
    # readers give time-major arrays: one copy (of the assessed part only) into lead-major rows
    x = np.ascontiguousarray(np.asarray(recording.signal)[:, : int(th.max_seconds * fs)], dtype=np.float64)
    names = [canonical_lead(n) for n in recording.leads]
    if x.shape[1] == 0:
        return QualityReport(tuple(LeadQuality(n, ("missing",), {}) for n in names), (), th)
    finite = np.isfinite(x.sum(axis=1))  # (an overflowing sum only costs the slower path)
    finite = finite if finite.all() else np.isfinite(x).all(axis=1)
    comp = _compiled() if finite.all() and 1 < _baseline_plan(fs)[0] <= x.shape[1] else None
    if comp is not None:
        values, clean = _compiled_measure(comp, x, fs)
    else:
        base, clean = _residual(x, fs, bool(finite.all()))
        values = _measure(x, fs, base, clean, finite)
    columns = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in values.items()}
    all_off, named_off = _leads_off(getattr(recording, "meta", {}) or {})
    leads = []
    for i, name in enumerate(names):
        idx = {k: col[i] for k, col in columns.items()}
        flags = (["lead_off"] if name in named_off else []) + _lead_flags(idx, th)
        leads.append(LeadQuality(name, tuple(flags), MappingProxyType(idx)))
    usable = np.array([not lq.flags or lq.flags == ("baseline",) for lq in leads])
    record_flags: list[str] = ["lead_off"] if all_off else []
    record_flags += _einthoven(x, names, usable, th)
    record_flags += _reversal(clean, names, fs, usable, th)
    return QualityReport(tuple(leads), tuple(record_flags), th)
