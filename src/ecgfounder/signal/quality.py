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
``hf_ratio`` (power above 40 Hz, mains bands excluded, over 5–40 Hz; below 300 Hz scaled to the
90-Hz band, not measured under 150 Hz), ``powerline_ratio`` (±1 Hz of 50 or 60 Hz over 5–40 Hz), ``ptp_mv`` (0.5th–99.5th percentile range after baseline removal),
``deviation_mv`` (the largest distance of a sample from the baseline; ``max_abs_mv``: from 0),
``baseline_mv`` (range of the baseline: two-stage 0.2 s / 0.6 s median filter, de Chazal et al.
2004), ``clipped_fraction`` (share of samples on the lead's extreme value in runs of ≥ 3 samples
that make at least half of the run in the band a few quantisation steps below it: a rail, not a
quantised smooth extreme; ``clipped_longest_s``: the longest of those runs not at the record's ends, in s), ``gap_s``
(longest run of NaN or exactly constant samples) and ``nonfinite_fraction``.

Cost (one core of the shared 2-core dev VM, 10-s 12-lead 500-Hz records): with numba, the per-lead
measurements run in one compiled kernel (:mod:`ecgfounder.signal.compiled_quality`, finite records)
and ``assess`` takes 2.1-2.6 ms; the numpy form (no numba, or NaN in the record) 3.4-3.7 ms, the
former per-lead scipy code 12-17 ms (see ``docs/quality.md`` for the commands).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .filters import _compiled
from .leads import canonical_lead
from .preprocess import MAX_ABS_MV
from .quality_measures import block_means, measure

__all__ = ["QualityThresholds", "LeadQuality", "QualityReport", "assess", "CHECKS", "LEAD_OFF_META_KEYS"]


@dataclass(frozen=True)
class QualityThresholds:
    """Thresholds of the quality checks (millivolts, seconds, power ratios)."""

    flat_ptp_mv: float = 0.05          # lead-off / flat: robust peak-to-peak below 50 µV
    gap_s: float = 1.0                 # missing segment: ≥ 1 s of NaN or exactly constant samples
    clipped_fraction: float = 0.003    # clipping: ≥ 0.3 % of samples on the rail, in ≥ 3 runs ...
    clipped_runs: int = 3
    clipped_run_s: float = 0.1         # ... or one run on it of ≥ 100 ms (shorter than a gap, or not constant)
    hf_ratio: float = 0.8              # HF (> 40 Hz) noise power ≥ 0.8 × the 5–40 Hz ECG power
    powerline_ratio: float = 0.5       # 50/60 Hz power ≥ 0.5 × the 5–40 Hz ECG power
    baseline_mv: float = 3.0           # baseline wander ≥ 3 mV peak-to-peak
    max_ptp_mv: float = 12.0           # implausible amplitude: robust ptp > 12 mV ...
    max_abs_mv: float = 25.0           # ... or a sample > 25 mV off its baseline (a DC offset is no sign)
    einthoven_fraction: float = 0.10   # II − (I + III) strays from its mean by > 10 % of II's range
    polarity_min_mv: float = 0.03      # smallest P/QRS deflection taken as a polarity
    reversal_corr: float = 0.2         # I (or II) vs V6 median-beat correlation below -0.2: reversal
    max_seconds: float = 300.0         # longer records are assessed on their first 5 minutes ...
    max_samples: int = 300_000         # ... and on at most 5 minutes at 1 kHz (an 8-kHz 12-lead record: 6.5 s, 0.8 GB)
    min_seconds: float = 2.0           # shorter records are 'short': noise, mains, wander, clipping not judged


#: check name -> (what it means, threshold field, source)
CHECKS: Mapping[str, tuple[str, str, str]] = MappingProxyType({
    "missing": ("non-finite samples (NaN/inf) in the lead", "-", "data integrity"),
    "flat": ("lead flat or disconnected: robust peak-to-peak below the threshold", "flat_ptp_mv",
             "lead-off detection as in Clifford et al. 2012 (flat-line rule)"),
    "gap": ("a run of NaN or exactly constant samples at least this long", "gap_s",
            "missing-segment rule (Clifford et al. 2012, PhysioNet/CinC 2011)"),
    "clipped": ("samples sitting on the lead's extreme value in repeated runs (saturation) that reach and leave it "
                "steeply (a smooth extreme resting on one value of a coarse ADC step is no rail), or in one such run "
                "of at least clipped_run_s (no ECG wave rests on its extreme that long); a run that is also a gap is "
                "the gap", "clipped_fraction", "amplifier saturation / clipping rule"),
    "noise": ("high-frequency (muscle) noise: power above 40 Hz relative to the 5-40 Hz band (below 300 Hz "
              "scaled to the 90-Hz band; not judged under 150 Hz)", "hf_ratio",
              "hfSQI-style spectral ratio (Li, Mark & Clifford 2008)"),
    "powerline": ("mains interference at 50 or 60 Hz relative to the 5-40 Hz band", "powerline_ratio",
                  "spectral ratio"),
    "baseline": ("baseline wander amplitude within the record (two-stage median filter); a record shorter than "
                 "half a wander's period holds part of its swing (0.1 Hz, 5 mV: about 2.3 mV in 3 s)", "baseline_mv",
                 "baseline estimate of de Chazal et al. 2004; basSQI reported beside it"),
    "amplitude": ("implausible amplitude for a surface ECG", "max_ptp_mv",
                  "physiology: surface ECG deflections stay within a few mV"),
    "lead_off": ("the device itself reports the lead (meta 'leads_off') or all leads (meta 'lead_off') as off",
                 "-", "the file's own statement"),
    "einthoven": ("limb leads inconsistent: II differs from I + III (beyond a constant offset)", "einthoven_fraction",
                  "Einthoven's law"),
    "short": ("the recording is shorter than the threshold (a Welch segment, about two beats): noise, mains, "
              "baseline wander and clipping are not judged on it, and the model reads 10 s", "min_seconds",
              "the spectral and median-filter windows of the other checks"),
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
# per-lead flags from the indices (the measurements: ecgfounder.signal.quality_measures)


def _lead_flags(idx: Mapping[str, float], th: QualityThresholds, short: bool) -> list[str]:
    flags = ["missing"] if idx["nonfinite_fraction"] > 0 else []
    # beyond the bound prepare refuses, the residual (taken around a mean such samples dominate) is
    # rounding noise: its ptp and spectra flipped one lead between flat, amplitude and noise in the
    # compiled and numpy forms; only the checks on the samples themselves are made
    absurd = idx["max_abs_mv"] > MAX_ABS_MV
    if idx["ptp_mv"] < th.flat_ptp_mv and not absurd:
        return flags + ["flat"]  # the other checks say nothing about a dead lead
    # a short excerpt (a beat or two) has no spectrum or baseline to judge, nor enough runs on a rail
    return flags + [flag for flag, hit in (
        ("gap", idx["gap_s"] >= th.gap_s),
        ("clipped", not short and _clipped(idx, th)),
        ("amplitude", absurd or idx["ptp_mv"] > th.max_ptp_mv or idx["deviation_mv"] > th.max_abs_mv),
    ) if hit] + [flag for flag, hit in (
        ("noise", idx["hf_ratio"] >= th.hf_ratio),
        ("powerline", idx["powerline_ratio"] >= th.powerline_ratio),
        ("baseline", idx["baseline_mv"] >= th.baseline_mv),
    ) if hit and not absurd and not short]


def _clipped(idx: Mapping[str, float], th: QualityThresholds) -> bool:
    """Runs on the lead's extreme value that pass the band test (reached and left steeply): at least
    ``clipped_fraction`` of the samples in ``clipped_runs`` runs or more, or one run of at least
    ``clipped_run_s``.  A run of ``gap_s`` or more while the lead has a gap is left to the gap: ≥ 1 s
    of exactly constant samples is a gap whatever its value (a dropout filled with 0 on a lead with
    a DC offset is its minimum, reached and left steeply, and looks like a long saturation)."""
    if idx["clipped_fraction"] >= th.clipped_fraction and idx["clipped_runs"] >= th.clipped_runs:
        return True
    longest = idx["clipped_longest_s"]
    return longest >= th.clipped_run_s and not (longest >= th.gap_s and idx["gap_s"] >= th.gap_s)


# ----------------------------------------------------------------------------------------------
# record-level checks


@lru_cache(maxsize=16)
def _beat_setup(fs: float) -> tuple[int, tuple, int, int, int]:
    """How R peaks are sought at ``fs``: (block length giving ~250 Hz block means (the QRS band
    still fits), the 5-30 Hz band-pass plan for them, least distance between peaks in blocks, and the
    median beat's samples before and after its peak: 0.30 s and 0.10 s)."""
    from .filters import _band_plan

    step = max(1, int(fs // _BEAT_RATE))
    fs_b = fs / step
    return step, _band_plan(5.0, min(30.0, fs_b / 2 - 1), 2, fs_b), max(1, int(0.3 * fs_b)), int(0.30 * fs), int(0.10 * fs)


def _beat_energy(rows: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """(the summed magnitude of the band-passed block means of ``rows`` (:func:`_beat_setup`), the
    least height of an R peak on it: 40 % of its 98th percentile)."""
    from .filters import filtfilt_ba

    step, band = _beat_setup(fs)[:2]
    energy = np.abs(filtfilt_ba(band[0], band[1], block_means(rows, step), band[2], band[3])).sum(axis=0)
    k = 0.98 * (energy.size - 1)  # np.percentile(energy, 98), linear
    part = np.partition(energy, [int(k), min(int(k) + 1, energy.size - 1)])
    return energy, 0.4 * (part[int(k)] + (k - int(k)) * (part[min(int(k) + 1, energy.size - 1)] - part[int(k)]))


def _beats(rows: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: ``scipy.signal.find_peaks`` on the beat energy of the given leads
    (:func:`_beat_energy`), put at the centre of their block (the numpy form of the peaks of the
    compiled :func:`~ecgfounder.signal.compiled_quality.beat_medians`)."""
    from scipy.signal import find_peaks

    step, _, distance = _beat_setup(fs)[:3]
    energy, height = _beat_energy(rows, fs)
    peaks = find_peaks(energy, distance=distance, height=height)[0] if height > 0 else []
    return np.asarray(peaks, dtype=np.int64) * step + step // 2


def _median_beats(rows: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray | None:
    """Median beat (0.3 s before to 0.1 s after each R peak) of every row, or None (< 3 beats)."""
    pre, post = _beat_setup(fs)[3:]
    ok = peaks[(peaks >= pre) & (peaks + post < rows.shape[1])]
    if ok.size < 3:
        return None
    seg = rows[:, np.arange(-pre, post)[:, None] + ok]  # (rows, samples, beats): sorted in place
    seg.sort(axis=-1)
    return 0.5 * (seg[..., (ok.size - 1) // 2] + seg[..., ok.size // 2])  # = np.median


def _beat_medians(clean: np.ndarray, finders: Sequence[int], rows: np.ndarray, fs: float) -> np.ndarray | None:
    """Median beat of every row of ``rows`` around the R peaks found on the leads ``finders`` of
    ``clean`` (:func:`_beats`, :func:`_median_beats`); None when the record is too short (< 2 s), its
    rate too low (< 60 Hz) or fewer than 3 beats fit.  With numba the peaks and medians are one
    compiled call (the same values: ``tests/signal/test_quality_compiled.py``)."""
    if clean.shape[1] < int(2 * fs) or fs < 60:
        return None
    comp = _compiled()
    if comp is None:
        return _median_beats(rows, _beats(clean[finders], fs), fs)
    energy, height = _beat_energy(clean[finders], fs)
    step, _, distance, pre, post = _beat_setup(fs)
    return comp.beat_medians(energy, height, rows, step, distance, pre, post) if height > 0 else None


def _polarity(beat: np.ndarray, fs: float, min_mv: float) -> tuple[int, int]:
    """(QRS polarity, P polarity) of a median beat: +1, -1, or 0 when too small to say."""
    pre = _beat_setup(fs)[3]  # the R peak's position in the median beat
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
    ref = next((idx[n] for n in ("V6", "V5") if n in idx and usable[idx[n]]), None)
    if ref is not None:
        beat = _beat_medians(clean, found, clean[[idx["I"], idx["II"], ref]], fs)
        if beat is None:
            return []
        d = beat - beat.mean(axis=1, keepdims=True)
        ss = np.einsum("ij,ij->i", d, d)
        with np.errstate(invalid="ignore", divide="ignore"):  # (a flat lead I or II: 0/0, set to 0 below)
            corr = (d[:2] @ d[2]) / np.sqrt(ss[:2] * ss[2]) if ss[2] > 0 else np.zeros(2)
        corr[ss[:2] <= 0] = 0.0  # a flat median beat says nothing
        if corr[0] < -th.reversal_corr:
            return ["reversal:LA-RA"]
        return ["reversal:RA-LL"] if corr[1] < -th.reversal_corr else []
    lead = {n: clean[idx[n]] for n in ("I", "II", "aVR", "aVF") if n in idx}
    lead.setdefault("aVR", -(lead["I"] + lead["II"]) / 2)
    lead.setdefault("aVF", lead["II"] - lead["I"] / 2)
    beats = _beat_medians(clean, found, np.stack([lead[n] for n in ("I", "II", "aVR", "aVF")]), fs)
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
    # about its mean: a DC offset per channel (DC-coupled amplifiers, an unapplied ADC zero) breaks
    # II = I + III by a constant that no display shows and that says nothing about the wiring
    d = ii - (i + iii)
    return ["einthoven"] if rng > 0 and float(np.abs(d - d.mean()).max()) > th.einthoven_fraction * rng else []


def _leads_off(meta: Mapping[str, Any]) -> tuple[bool, set[str]]:
    """(the device says the whole recording is lead-off, the leads it names as off)."""
    named = meta.get("leads_off") or ()
    if isinstance(named, (str, bytes)) or not hasattr(named, "__iter__"):
        named = (named,)  # one name, or a value no reader writes (a number): never an exception here
    return bool(meta.get("lead_off") or meta.get("lead_off_statement")), {canonical_lead(n) for n in named}


def assess(recording: Any, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Assess the signal quality of ``recording`` (a :class:`~ecgfounder.recording.Recording`:
    ``signal`` in mV, ``fs``, ``leads``) under ``thresholds`` (default :class:`QualityThresholds`).
    Returns a :class:`QualityReport`; ``report.summary`` is ``"good"`` or the flags."""
    th = thresholds or QualityThresholds()
    fs = float(recording.fs)
    # readers give time-major arrays: one copy (of the assessed part only) into lead-major rows
    stop = int(min(th.max_seconds * fs, th.max_samples))
    x = np.ascontiguousarray(np.asarray(recording.signal)[:, :stop], dtype=np.float64)
    names = [canonical_lead(n) for n in recording.leads]
    if x.shape[1] == 0:
        return QualityReport(tuple(LeadQuality(n, ("missing",), {}) for n in names), (), th)
    with np.errstate(over="ignore", invalid="ignore"):  # (an overflowing sum only costs the slower path)
        finite = np.isfinite(x.sum(axis=1))
    finite = finite if finite.all() else np.isfinite(x).all(axis=1)
    values, clean = measure(x, fs, finite)
    columns = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in values.items()}
    all_off, named_off = _leads_off(getattr(recording, "meta", {}) or {})
    short = x.shape[1] < th.min_seconds * fs
    leads = []
    for i, name in enumerate(names):
        idx = {k: col[i] for k, col in columns.items()}
        flags = (["lead_off"] if name in named_off else []) + _lead_flags(idx, th, short)
        leads.append(LeadQuality(name, tuple(flags), MappingProxyType(idx)))
    usable = np.array([not lq.flags or lq.flags == ("baseline",) for lq in leads])
    record_flags: list[str] = (["lead_off"] if all_off else []) + (["short"] if short else [])
    record_flags += _einthoven(x, names, usable, th)
    record_flags += _reversal(clean, names, fs, usable, th)
    return QualityReport(tuple(leads), tuple(record_flags), th)
