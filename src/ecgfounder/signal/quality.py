"""Signal quality: is a recording fit to read, lead by lead, before the model speaks?

:func:`assess` looks at a :class:`~ecgfounder.recording.Recording` in millivolts at its own rate and
returns a :class:`QualityReport`: per-lead indices and flags, record-level flags, and one summary
string (``"good"`` or e.g. ``"flat:V3;reversal:LA-RA"``) for tables.

Every check, its threshold and where it comes from is listed in :data:`CHECKS` (and in
``docs/quality.md``).  Thresholds live in the frozen :class:`QualityThresholds`; the defaults were set
on the 50 CinC 2021 records of ``tests/data/cinc2021`` (real 12-lead ECGs, several with real
power-line noise, baseline wander and dead leads) and on corrupted copies of them (a lead zeroed,
clipped, LA/RA swapped, noise added), as the tests show.

Indices reported per lead (the established signal-quality indices of Li, Clifford et al.):

* ``kSQI`` — kurtosis of the lead (Li, Mark & Clifford 2008; Behar et al. 2013): a clean ECG is
  peaked (kurtosis > 5 is the literature's "clean" rule).  Reported, not flagged: many clean leads
  with broad T waves fall below 5 (measured on the CinC sample).
* ``pSQI`` — power in 5–15 Hz over 5–40 Hz (the QRS band share; 0.5–0.8 typical of clean ECG).
* ``basSQI`` — 1 − power in 0–1 Hz over 0–40 Hz, mean removed (baseline stability).
* ``hf_ratio`` — power above 40 Hz (power-line bands excluded) over 5–40 Hz: muscle / HF noise.
* ``powerline_ratio`` — power within ±1 Hz of 50 or 60 Hz over 5–40 Hz.
* ``ptp_mv`` — robust peak-to-peak (0.5th–99.5th percentile) after baseline removal.
* ``baseline_mv`` — peak-to-peak of the baseline estimate (two-stage 0.2 s / 0.6 s median filter,
  de Chazal et al. 2004), i.e. baseline wander amplitude.
* ``clipped_fraction`` — share of samples sitting on the lead's extreme value in runs of ≥ 3.
* ``gap_s`` — longest run of NaN or exactly constant samples, in seconds.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

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
# per-lead measurements, every lead at once (2-D numpy; no per-lead Python loop on finite leads)


def _block_means(x: np.ndarray, step: int) -> np.ndarray:
    """Means of the consecutive whole blocks of ``step`` samples of each row (a boxcar decimation:
    one matrix product, ~10x cheaper than ``resample_poly``; the tail shorter than a block is left
    out, and a row shorter than a block gives its mean)."""
    rows, n = x.shape
    full = n // step
    if step == 1:
        return x
    if not full:
        return x.mean(axis=1, keepdims=True)
    return (x[:, : full * step].reshape(rows * full, step) @ np.full(step, 1.0 / step)).reshape(rows, full)


@lru_cache(maxsize=16)
def _interp_weights(step: int) -> np.ndarray:
    """(3, step) weights giving the samples of a block from the (previous, own, next) block values
    by linear interpolation between block centres."""
    d = (np.arange(step) - (step - 1) / 2) / step
    return np.stack([np.maximum(-d, 0), 1 - np.abs(d), np.maximum(d, 0)])


def _edge_median(x: np.ndarray, k: int) -> np.ndarray:
    """Running median of each row over ``k`` samples, the ends padded with their edge values."""
    from .filters import running_median

    half = k // 2
    padded = np.pad(x, ((0, 0), (half, half)), mode="edge")
    return running_median(padded, k)[:, half: half + x.shape[1]]


def _residual(x: np.ndarray, fs: float, finite: bool) -> tuple[np.ndarray, np.ndarray]:
    """(baseline at its reduced rate, the signal less its baseline and mean at the input rate).

    The baseline is a two-stage median filter (0.2 s then 0.6 s) run at ~50 Hz on block means, the
    wander living below 1 Hz (cheap on Holter-length records), and brought back to the input rate
    by linear interpolation (a staircase would add a sawtooth at 50 Hz and its harmonics wherever
    the wander is steep, read as mains interference).  Non-finite samples are filled with their
    lead's median (0 for an all-NaN lead) first; finite leads need no offset removal (every step
    is shift-equivariant)."""
    if not finite:
        rows = np.where(np.isfinite(x), x, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: median NaN, filled with 0
            med = np.nanmedian(rows, axis=1, keepdims=True)
        x = np.nan_to_num(rows - np.nan_to_num(med))
    step = max(1, int(fs // 50))
    fs_low = fs / step
    k1 = max(3, int(0.2 * fs_low) | 1)
    k2 = max(3, int(0.6 * fs_low) | 1)
    low = _block_means(x, step)
    base = _edge_median(_edge_median(low, k1), k2)
    rows, n = x.shape
    full = n // step
    if step == 1 or not full:
        clean = x - base
        return base, clean - clean.mean(axis=1, keepdims=True)
    # the residual's mean, from the block means and the interpolation weights (no pass over x):
    # folded into the baseline, so the residual comes out mean-free
    ext = np.pad(base, ((0, 0), (1, 1)), mode="edge")
    w = _interp_weights(step)
    tail = x[:, full * step:]
    up_sum = sum(w[i].sum() * ext[:, i: i + full].sum(axis=1) for i in range(3)) + tail.shape[1] * base[:, -1]
    mean = (step * low.sum(axis=1) + tail.sum(axis=1) - up_sum) / n
    ext += mean[:, None]
    around = np.stack([ext[:, :-2], ext[:, 1:-1], ext[:, 2:]], axis=-1)
    clean = np.empty_like(x)
    np.subtract(x[:, : full * step], (around @ w).reshape(rows, full * step), out=clean[:, : full * step])
    np.subtract(tail, ext[:, -1:], out=clean[:, full * step:])
    return base, clean


@lru_cache(maxsize=16)
def _welch_plan(n: int, fs: float) -> tuple[int, int, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Welch's segments (2 s, half overlap) for ``n`` samples: (length, hop, float32 Hann window,
    (interleaved re/im bin x band) 0/1 matrix, band names).  DC and Nyquist count half, as in the
    one-sided density of :func:`scipy.signal.welch` (only ratios of bands are used)."""
    from scipy.signal import get_window

    nper = int(min(n, max(64, 2 * fs)))
    f = np.fft.rfftfreq(nper, 1.0 / fs)
    nyq = fs / 2
    edges = {"qrs": (5, 15), "ecg": (5, 40), "low": (0, 1), "all": (0, 40)}
    if nyq > 45:
        edges.update(hf=(40, min(nyq, 150.0)), hf_gap=(45, 65))
    edges.update({f"pl{c}": (c - 1, c + 1) for c in (50, 60) if nyq > c + 1})
    band = np.stack([((f >= lo) & (f < hi)).astype(np.float32) for lo, hi in edges.values()], axis=1)
    band[0] *= 0.5
    if nper % 2 == 0:
        band[-1] *= 0.5
    return nper, nper - nper // 2, get_window("hann", nper).astype(np.float32), np.repeat(band, 2, axis=0), tuple(edges)


def _spectral(c: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    """Band-power ratios of each row of ``c`` (mean removed) from Welch's estimate, computed as
    :func:`scipy.signal.welch` (Hann, 2-s segments, half overlap, no detrending: the residual is
    baseline-free) does, in float32 and one FFT call (equal to ~1e-7 of each ratio)."""
    from scipy.fft import rfft

    rows, n = c.shape
    nper, hop, win, band, names = _welch_plan(n, float(fs))
    nseg = (n - nper) // hop + 1
    seg = np.lib.stride_tricks.sliding_window_view(c.astype(np.float32), nper, axis=1)[:, : nseg * hop: hop]
    spec = rfft(seg * win, axis=-1).view(np.float32)  # (rows, segments, re/im interleaved)
    power = np.einsum("rsf,rsf->rf", spec, spec) @ band
    p = dict(zip(names, power.astype(np.float64).T))
    ecg = p["ecg"] + 1e-20
    nan = np.full(rows, np.nan)
    pl = [p[k] for k in ("pl50", "pl60") if k in p]
    return {
        "pSQI": p["qrs"] / ecg,
        "basSQI": 1.0 - p["low"] / (p["all"] + 1e-20),
        "hf_ratio": np.maximum(p["hf"] - p["hf_gap"], 0.0) / ecg if "hf" in p else nan,
        "powerline_ratio": np.maximum.reduce(pl) / ecg if pl else nan,
    }


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, length) of every run of True in the rows of a 2-D boolean array (sparse: positions)."""
    n = mask.shape[1]
    pos = np.flatnonzero(mask)
    if not pos.size:
        return pos, pos
    new = np.flatnonzero((np.diff(pos) != 1) | (pos[1:] % n == 0)) + 1
    starts = np.concatenate(([0], new))
    return pos[starts] // n, np.diff(np.concatenate((starts, [pos.size])))


def _order_stats(x: np.ndarray, ranks: tuple[int, int], top: bool) -> np.ndarray:
    """``np.sort(x, axis=1)[:, ranks]`` for ranks in one tail of each row, without sorting: the
    tail's samples are found beyond a bound (the m-th largest of m or more group maxima, which m
    samples at least reach), a few dozen per row, and only they are partitioned (4x cheaper than a
    partition of every row, measured)."""
    rows, n = x.shape
    m = n - min(ranks) if top else max(ranks) + 1  # samples from the farthest rank to that end
    groups = max(8 * m, 64)
    if groups * 4 <= n:
        g = x[:, : n // groups * groups].reshape(rows, -1, groups)
        ext = g.max(axis=1) if top else -g.min(axis=1)
        bound = -np.partition(-ext, m - 1, axis=1)[:, m - 1]
        mask = x >= bound[:, None] if top else x <= -bound[:, None]
        count = np.count_nonzero(mask, axis=1)
        if (count >= m).all():  # (not so with NaN)
            vals, out = x[mask], np.empty((rows, 2))
            for i, (a, b) in enumerate(zip(np.cumsum(count) - count, np.cumsum(count))):
                k = [r - (n - count[i]) if top else r for r in ranks]
                out[i] = np.partition(vals[a:b], k)[k]
            return out
    return np.partition(x, ranks, axis=1)[:, list(ranks)]


def _percentiles(x: np.ndarray, q_lo: float, q_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """``np.percentile(x, [q_lo, q_hi], axis=1)`` (linear method) for ``q_lo < 50 < q_hi``."""
    n = x.shape[1]
    out = []
    for q in (q_lo, q_hi):
        p = q / 100 * (n - 1)
        i, t = int(p), p - int(p)
        a, b = _order_stats(x, (i, min(i + 1, n - 1)), q > 50).T
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)  # numpy's _lerp
    return out[0], out[1]


def _clipping(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of samples on the rail in runs of ≥ 3, number of such runs) per row (finite)."""
    rows, n = x.shape
    rng = hi - lo
    samples, runs = np.zeros(rows), np.zeros(rows)
    for mask in (x >= (hi - 1e-3 * rng)[:, None], x <= (lo + 1e-3 * rng)[:, None]):
        row, length = _runs(mask)
        long = length >= 3
        runs += np.bincount(row[long], minlength=rows)
        samples += np.bincount(row[long], weights=length[long], minlength=rows)
    flat = rng <= 0
    return np.where(flat, 0.0, samples / n), np.where(flat, 0.0, runs)


def _measure(x: np.ndarray, fs: float, base: np.ndarray, clean: np.ndarray,
             finite: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of every row of ``x`` (mV, NaN allowed), given its baseline and residual."""
    rows, n = x.shape
    spec = _spectral(clean, fs)  # the residual is mean-free
    c2 = clean * clean
    m2 = c2.sum(axis=1)
    with np.errstate(all="ignore"):
        ksqi = n * np.einsum("ij,ij->i", c2, c2) / (m2 * m2)  # kurtosis m4 / m2^2 (scipy's, not Fisher's)
    lo_p, hi_p = _percentiles(clean, 0.5, 99.5)
    const = np.zeros((rows, n), dtype=bool)
    np.equal(x[:, 1:], x[:, :-1], out=const[:, 1:])
    lo, hi, nonfinite = np.zeros(rows), np.zeros(rows), np.zeros(rows)
    clip_frac, clip_runs = np.zeros(rows), np.zeros(rows)
    ok = np.flatnonzero(finite)
    if ok.size:
        xo = x if ok.size == rows else x[ok]
        lo[ok], hi[ok] = xo.min(axis=1), xo.max(axis=1)
        clip_frac[ok], clip_runs[ok] = _clipping(xo, lo[ok], hi[ok])
    for i in np.flatnonzero(~finite):  # leads with NaN/inf: measured on their finite samples
        good = np.isfinite(x[i])
        const[i] |= ~good
        nonfinite[i] = 1.0 - good.mean()
        r = x[i][good][None] if good.any() else np.zeros((1, 1))
        lo[i], hi[i] = r.min(), r.max()
        (clip_frac[i],), (clip_runs[i],) = _clipping(r, lo[i:i + 1], hi[i:i + 1])
    row, length = _runs(const)
    gap = np.zeros(rows)
    if row.size:  # the longest run of each row (runs come row by row); k repeats span k + 1 samples
        first = np.flatnonzero(np.diff(row, prepend=-1))
        gap[row[first]] = np.maximum.reduceat(length, first) + 1
    return {
        "ptp_mv": hi_p - lo_p,
        "max_abs_mv": np.maximum(np.abs(lo), np.abs(hi)),
        "baseline_mv": np.ptp(base, axis=1),
        "gap_s": np.minimum(gap, n) / fs,
        "clipped_fraction": clip_frac,
        "clipped_runs": clip_runs,
        "kSQI": ksqi,
        **spec,
        "nonfinite_fraction": nonfinite,
    }


def _lead_flags(idx: Mapping[str, float], th: QualityThresholds) -> list[str]:
    flags: list[str] = []
    if idx["nonfinite_fraction"] > 0:
        flags.append("missing")
    if idx["ptp_mv"] < th.flat_ptp_mv:
        flags.append("flat")
        return flags  # the other checks say nothing about a dead lead
    if idx["gap_s"] >= th.gap_s:
        flags.append("gap")
    if idx["clipped_fraction"] >= th.clipped_fraction and idx["clipped_runs"] >= th.clipped_runs:
        flags.append("clipped")
    if idx["ptp_mv"] > th.max_ptp_mv or idx["max_abs_mv"] > th.max_abs_mv:
        flags.append("amplitude")
    if idx["hf_ratio"] >= th.hf_ratio:
        flags.append("noise")
    if idx["powerline_ratio"] >= th.powerline_ratio:
        flags.append("powerline")
    if idx["baseline_mv"] >= th.baseline_mv:
        flags.append("baseline")
    return flags


# ----------------------------------------------------------------------------------------------
# record-level checks


def _beats(clean: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices from the summed band-passed (5-30 Hz) energy of the given leads.

    Found at ~BEATRATE Hz (block means), where the QRS band still fits, then put at the centre of
    their block: a fraction of the filtering cost at 500 Hz, ±1 ms of jitter."""
    import os
    from scipy.signal import find_peaks

    from .filters import bandpass

    if clean.shape[1] < int(2 * fs) or fs < 60:
        return np.zeros(0, dtype=np.int64)
    step = max(1, int(fs // float(os.environ.get("BEATRATE", "250"))))
    fs_b = fs / step
    energy = np.abs(bandpass(_block_means(clean, step), fs_b, 5.0, min(30.0, fs_b / 2 - 1), 2)).sum(axis=0)
    height = 0.4 * np.percentile(energy, 98)
    if height <= 0:
        return np.zeros(0, dtype=np.int64)
    peaks, _ = find_peaks(energy, distance=max(1, int(0.3 * fs_b)), height=height)
    return peaks * step + step // 2


def _median_beats(rows: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray | None:
    """Median beat (0.3 s before to 0.1 s after each R peak) of every row, or None (< 3 beats)."""
    pre, post = int(0.30 * fs), int(0.10 * fs)
    ok = peaks[(peaks >= pre) & (peaks + post < rows.shape[1])]
    if ok.size < 3:
        return None
    return np.median(rows[:, ok[:, None] + np.arange(-pre, post)], axis=1)


def _polarity(beat: np.ndarray, fs: float, min_mv: float) -> tuple[int, int]:
    """(QRS polarity, P polarity) of a median beat: +1, -1, or 0 when too small to say."""
    pre = int(0.30 * fs)
    base = float(np.median(beat[: max(1, int(0.04 * fs))]))
    b = beat - base
    qrs = b[pre - int(0.06 * fs): pre + int(0.06 * fs)]
    s = float(qrs.max() + qrs.min())
    q = 0 if abs(s) < min_mv else (1 if s > 0 else -1)
    pwin = b[pre - int(0.26 * fs): pre - int(0.08 * fs)]
    pk = float(pwin[np.argmax(np.abs(pwin))]) if pwin.size else 0.0
    p = 0 if abs(pk) < min_mv else (1 if pk > 0 else -1)
    return q, p


def _limb(x: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The limb leads present, completing aVR/aVF from I and II where missing."""
    idx = {n: i for i, n in enumerate(names)}
    out = {n: x[idx[n]] for n in ("I", "II", "III", "aVR", "aVL", "aVF") if n in idx}
    if "I" in out and "II" in out:
        out.setdefault("aVR", -(out["I"] + out["II"]) / 2)
        out.setdefault("aVF", out["II"] - out["I"] / 2)
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = float(np.std(a)), float(np.std(b))
    if sa <= 0 or sb <= 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def _reversal(clean: np.ndarray, names: Sequence[str], fs: float, usable: np.ndarray,
              th: QualityThresholds) -> list[str]:
    """Limb-lead reversal from the median beats.

    With a lateral precordial lead (V6, else V5) as reference, which limb-cable swaps leave alone:
    lead I and V6 look alike in a correctly wired ECG (median-beat correlation ≥ 0.34 in all 48
    CinC sample records with usable leads, one suspected real reversal aside) and mirror each other
    when LA and RA are swapped (I becomes -I: ≤ -0.34 on the same records swapped); likewise II
    against V6 for an RA/LL swap (II becomes -II).  Without a precordial reference, the polarity
    rule of Batchvarov et al.: lead I with inverted P and QRS while aVR is upright.
    """
    idx = {n: i for i, n in enumerate(names)}
    if not {"I", "II"} <= idx.keys() or not usable.any():  # aVR is derived from I and II if absent
        return []
    peaks = _beats(clean[usable] if not usable.all() else clean, fs)
    ref = next((idx[n] for n in ("V6", "V5") if n in idx and usable[idx[n]]), None)
    if ref is not None:
        beat = _median_beats(clean[[idx["I"], idx["II"], ref]], peaks, fs)
        if beat is None:
            return []
        if _corr(beat[0], beat[2]) < -th.reversal_corr:
            return ["reversal:LA-RA"]
        if _corr(beat[1], beat[2]) < -th.reversal_corr:
            return ["reversal:RA-LL"]
        return []
    limb = _limb(clean, names)
    beats = _median_beats(np.stack([limb[n] for n in ("I", "II", "aVR", "aVF")]), peaks, fs)
    if beats is None:
        return []
    pol = {n: _polarity(b, fs, th.polarity_min_mv) for n, b in zip(("I", "II", "aVR", "aVF"), beats)}
    if pol["I"][0] < 0 and pol["I"][1] < 0 and pol["aVR"][0] > 0:
        return ["reversal:LA-RA"]
    if pol["II"][0] < 0 and pol["II"][1] < 0 and pol["aVR"][0] > 0 and pol["aVF"][0] < 0:
        return ["reversal:RA-LL"]
    return []


def _einthoven(x: np.ndarray, names: Sequence[str], usable: np.ndarray, th: QualityThresholds) -> list[str]:
    idx = {n: i for i, n in enumerate(names)}
    if not {"I", "II", "III"} <= idx.keys() or not all(usable[idx[n]] for n in ("I", "II", "III")):
        return []
    i, ii, iii = np.nan_to_num(x[[idx["I"], idx["II"], idx["III"]]])
    rng = float(np.ptp(ii))
    if rng <= 0:
        return []
    return ["einthoven"] if float(np.max(np.abs(ii - (i + iii)))) > th.einthoven_fraction * rng else []


def _leads_off(meta: Mapping[str, Any]) -> tuple[bool, set[str]]:
    """(the device says the whole recording is lead-off, the leads it names as off)."""
    named = meta.get("leads_off") or ()
    if isinstance(named, str):
        named = (named,)
    return bool(meta.get("lead_off") or meta.get("lead_off_statement")), {canonical_lead(n) for n in named}


def assess(recording: Any, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Assess the signal quality of a recording.

    Args:
        recording: a :class:`~ecgfounder.recording.Recording` (``signal`` in mV, ``fs``, ``leads``).
        thresholds: the thresholds (defaults: :class:`QualityThresholds`).

    Returns:
        A :class:`QualityReport`; ``report.summary`` is ``"good"`` or the flags.
    """
    th = thresholds or QualityThresholds()
    fs = float(recording.fs)
    x = np.ascontiguousarray(recording.signal, dtype=np.float64)  # readers give time-major arrays
    n_max = int(th.max_seconds * fs)
    if x.shape[1] > n_max:
        x = x[:, :n_max]
    names = [canonical_lead(n) for n in recording.leads]
    if x.shape[1] == 0:
        leads = tuple(LeadQuality(n, ("missing",), {}) for n in names)
        return QualityReport(leads, (), th)
    finite = np.isfinite(x.sum(axis=1))  # (an overflowing sum only costs the slower path)
    if not finite.all():
        finite = np.isfinite(x).all(axis=1)
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
