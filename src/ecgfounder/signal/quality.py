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
# per-lead measurements


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean array."""
    if not mask.any():
        return 0
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return int((edges[1::2] - edges[::2]).max())


def _runs_at(mask: np.ndarray, min_len: int) -> tuple[int, int]:
    """(number of runs of True of length ≥ min_len, samples in them)."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    lengths = edges[1::2] - edges[::2]
    long = lengths[lengths >= min_len]
    return int(long.size), int(long.sum())


def _edge_median(x: np.ndarray, k: int) -> np.ndarray:
    """Running median of each row over ``k`` samples, the ends padded with their edge values."""
    from .filters import running_median

    half = k // 2
    padded = np.pad(x, ((0, 0), (half, half)), mode="edge")
    return running_median(padded, k)[:, half: half + x.shape[1]]


def _baseline(x: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """Baseline of each row (two-stage median filter, 0.2 s then 0.6 s) at a reduced rate.

    Returns the baseline at rate ``fs_low`` and that rate: the wander lives below 1 Hz, so the
    filter runs at ~50 Hz, which keeps it cheap on Holter-length records.
    """
    from scipy.signal import resample_poly

    step = max(1, int(fs // 50))
    low = resample_poly(x, 1, step, axis=1) if step > 1 else x
    fs_low = fs / step
    k1 = max(3, int(0.2 * fs_low) | 1)
    k2 = max(3, int(0.6 * fs_low) | 1)
    return _edge_median(_edge_median(low, k1), k2), fs_low


def _spectral(x: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    from scipy.signal import welch

    n = x.shape[1]
    nper = int(min(n, max(64, 2 * fs)))
    # the residual is already baseline-free: no per-segment detrending (a third of the cost)
    f, p = welch(x - x.mean(axis=1, keepdims=True), fs=fs, nperseg=nper, axis=-1, detrend=False)

    def band(lo: float, hi: float) -> np.ndarray:
        m = (f >= lo) & (f < hi)
        return p[:, m].sum(axis=1)

    ecg = band(5, 40) + 1e-20
    out = {
        "pSQI": band(5, 15) / ecg,
        "basSQI": 1.0 - band(0, 1) / (band(0, 40) + 1e-20),
    }
    nyq = fs / 2
    if nyq > 45:
        hf = band(40, min(nyq, 150.0)) - band(45, 65)
        out["hf_ratio"] = np.maximum(hf, 0.0) / ecg
    else:
        out["hf_ratio"] = np.full(x.shape[0], np.nan)
    pl = [band(c - 1, c + 1) for c in (50.0, 60.0) if nyq > c + 1]
    out["powerline_ratio"] = (np.maximum.reduce(pl) / ecg) if pl else np.full(x.shape[0], np.nan)
    return out


def _lead_flags(row: np.ndarray, fs: float, idx: dict[str, float], th: QualityThresholds) -> list[str]:
    flags: list[str] = []
    finite = np.isfinite(row)
    if not finite.all():
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


def _clipping(row: np.ndarray) -> tuple[float, int]:
    lo, hi = float(np.min(row)), float(np.max(row))
    rng = hi - lo
    if rng <= 0:
        return 0.0, 0
    tol = 1e-3 * rng
    runs_hi, n_hi = _runs_at(row >= hi - tol, 3)
    runs_lo, n_lo = _runs_at(row <= lo + tol, 3)
    return (n_hi + n_lo) / row.size, runs_hi + runs_lo


def _residual(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(baseline at its reduced rate, the signal less its baseline at the input rate); NaN -> 0."""
    if np.isfinite(x).all():
        filled = x - np.median(x, axis=1, keepdims=True)
    else:
        rows = np.where(np.isfinite(x), x, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: median NaN, filled with 0
            med = np.nanmedian(rows, axis=1, keepdims=True)
        filled = np.nan_to_num(rows - np.nan_to_num(med))
    base, fs_low = _baseline(filled, fs)
    step = int(round(fs / fs_low))
    up = np.repeat(base, step, axis=1)[:, : x.shape[1]]
    if up.shape[1] < x.shape[1]:
        up = np.pad(up, ((0, 0), (0, x.shape[1] - up.shape[1])), mode="edge")
    return base, filled - up


def _measure(x: np.ndarray, fs: float, base: np.ndarray, clean: np.ndarray) -> list[dict[str, float]]:
    """Indices of every row of ``x`` (mV, NaN allowed), given its baseline and residual."""
    from scipy.stats import kurtosis

    spec = _spectral(clean, fs)
    with np.errstate(all="ignore"):
        ksqi = kurtosis(clean, axis=1, fisher=False)
    lo, hi = np.percentile(clean, [0.5, 99.5], axis=1)
    out = []
    for i, row in enumerate(x):
        finite = np.isfinite(row)
        r = row[finite] if finite.any() else np.zeros(1)
        const = np.concatenate(([False], np.diff(row) == 0)) | ~finite
        gap = _longest_run(const) + (1 if const.any() else 0)
        clip_frac, clip_runs = _clipping(r)
        out.append({
            "ptp_mv": float(hi[i] - lo[i]),
            "max_abs_mv": float(np.max(np.abs(r))),
            "baseline_mv": float(np.ptp(base[i])),
            "gap_s": float(min(gap, row.size) / fs),
            "clipped_fraction": float(clip_frac),
            "clipped_runs": float(clip_runs),
            "kSQI": float(ksqi[i]),
            "pSQI": float(spec["pSQI"][i]),
            "basSQI": float(spec["basSQI"][i]),
            "hf_ratio": float(spec["hf_ratio"][i]),
            "powerline_ratio": float(spec["powerline_ratio"][i]),
            "nonfinite_fraction": float(1.0 - finite.mean()),
        })
    return out


# ----------------------------------------------------------------------------------------------
# record-level checks


def _beats(clean: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices from the summed band-passed energy of all usable leads."""
    from scipy.signal import butter, find_peaks, sosfiltfilt

    if clean.shape[1] < int(2 * fs) or fs < 60:
        return np.zeros(0, dtype=np.int64)
    sos = butter(2, [5.0, min(30.0, fs / 2 - 1)], btype="band", fs=fs, output="sos")
    energy = np.abs(sosfiltfilt(sos, clean, axis=1)).sum(axis=0)
    height = 0.4 * np.percentile(energy, 98)
    if height <= 0:
        return np.zeros(0, dtype=np.int64)
    peaks, _ = find_peaks(energy, distance=max(1, int(0.3 * fs)), height=height)
    return peaks


def _median_beat(row: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray | None:
    pre, post = int(0.30 * fs), int(0.10 * fs)
    ok = peaks[(peaks >= pre) & (peaks + post < row.size)]
    if ok.size < 3:
        return None
    segs = np.stack([row[p - pre:p + post] for p in ok])
    return np.median(segs, axis=0)


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
    limb = _limb(clean, names)
    if not {"I", "II", "aVR"} <= limb.keys():
        return []
    peaks = _beats(clean[usable], fs) if usable.any() else np.zeros(0, dtype=np.int64)
    beat = {n: _median_beat(limb[n], peaks, fs) for n in ("I", "II", "aVR", "aVF")}
    if any(b is None for b in beat.values()):
        return []
    idx = {n: i for i, n in enumerate(names)}
    ref = next((clean[idx[n]] for n in ("V6", "V5") if n in idx and usable[idx[n]]), None)
    if ref is not None:
        rb = _median_beat(ref, peaks, fs)
        if _corr(beat["I"], rb) < -th.reversal_corr:
            return ["reversal:LA-RA"]
        if _corr(beat["II"], rb) < -th.reversal_corr:
            return ["reversal:RA-LL"]
        return []
    pol = {n: _polarity(b, fs, th.polarity_min_mv) for n, b in beat.items()}
    if pol["I"][0] < 0 and pol["I"][1] < 0 and pol["aVR"][0] > 0:
        return ["reversal:LA-RA"]
    if pol["II"][0] < 0 and pol["II"][1] < 0 and pol["aVR"][0] > 0 and pol["aVF"][0] < 0:
        return ["reversal:RA-LL"]
    return []


def _einthoven(x: np.ndarray, names: Sequence[str], usable: np.ndarray, th: QualityThresholds) -> list[str]:
    idx = {n: i for i, n in enumerate(names)}
    if not {"I", "II", "III"} <= idx.keys() or not all(usable[idx[n]] for n in ("I", "II", "III")):
        return []
    i, ii, iii = (x[idx[n]] for n in ("I", "II", "III"))
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
    x = np.asarray(recording.signal, dtype=np.float64)
    n_max = int(th.max_seconds * fs)
    if x.shape[1] > n_max:
        x = x[:, :n_max]
    names = [canonical_lead(n) for n in recording.leads]
    if x.shape[1] == 0:
        leads = tuple(LeadQuality(n, ("missing",), {}) for n in names)
        return QualityReport(leads, (), th)
    base, clean = _residual(x, fs)
    indices = _measure(x, fs, base, clean)
    all_off, named_off = _leads_off(getattr(recording, "meta", {}) or {})
    leads = []
    for name, row, idx in zip(names, x, indices):
        flags = (["lead_off"] if name in named_off else []) + _lead_flags(row, fs, idx, th)
        leads.append(LeadQuality(name, tuple(flags), MappingProxyType(idx)))
    usable = np.array([not lq.flags or lq.flags == ("baseline",) for lq in leads])
    record_flags: list[str] = ["lead_off"] if all_off else []
    record_flags += _einthoven(np.nan_to_num(x), names, usable, th)
    record_flags += _reversal(clean, names, fs, usable, th)
    return QualityReport(tuple(leads), tuple(record_flags), th)
