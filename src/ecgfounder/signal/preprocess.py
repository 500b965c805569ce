"""The preprocessing contract of a set of weights, and the function that applies it.

A :class:`PreprocessContract` travels with the weights (it is saved in our checkpoint metadata
and attached to every loaded model), so :func:`ecgfounder.predict` always feeds a model what it was
trained on.  Modes:

``"published"`` (default)
    The chain of the authors' ``dataset.py``: NaN → 0; 50 Hz IIR notch (Q 30) and 4th-order
    Butterworth band-pass 0.67–40 Hz, both zero-phase; running-median baseline (0.4 s) removed;
    one z-score over all leads of each 10-s window.
``"zscore"``
    Only the z-score (the authors' PTB-XL evaluation script).
``"none"``
    Signals passed as they are (mV), still resampled and windowed.

Unlike the published code, records at another rate are resampled with a polyphase filter (not
stretched to 5000 samples; :func:`ecgfounder.signal.filters.resample`), longer records are cut into
sequential 10-s windows (the last one aligned to the end of the record) and shorter ones are
zero-padded after normalisation: filtered and z-scored on their own samples, then zeros (the
normalised window's mean) appended.  The published ``dataset.py`` has no padding (its stretched
copy is discarded, so a short record reaches the model at its own length); the paper describes
zero-padding and a per-segment z-score.  The mains notch is the published 50 Hz: 60-Hz mains is
left to the band-pass (-31 dB through the chain, against -200 dB at 50 Hz), as in the published chain.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import LeadError, RecordReadError
from ..recording import FS_MAX, FS_MIN, Recording
from . import filters
from .errors import SignalError
from .leads import STANDARD_12, canonical_lead, differing_duplicates, select_leads

__all__ = ["PreprocessContract", "Prepared", "MODES", "lead_set", "preprocess", "prepare", "preprocess_recording", "window_starts"]

MODES = ("published", "zscore", "none")

# Largest |sample| accepted (mV; 1 GV): far beyond ADC counts or nV read as mV (the z-score makes the
# scale moot), far below where the filters' and the z-score's sums overflow to inf (~1e150)
MAX_ABS_MV = 1e12

# Shortest record accepted (seconds): the zero-phase filters need a few dozen samples of support.
MIN_DURATION_S = 0.5

# Longest running-median baseline window of a contract (seconds): a median over more than a few beats
# follows no wander, and its window's buffers grow with it (1e9 s asked for 131 TiB).
MAX_BASELINE_WINDOW_S = 2.0


def lead_set(n_leads: int) -> tuple[str, ...]:
    """Default lead order for a model with ``n_leads`` inputs (12 → standard order, 1 → lead I)."""
    if n_leads == 12:
        return STANDARD_12
    if n_leads == 1:
        return ("I",)
    raise LeadError(f"no default lead set for {n_leads} leads (known: 1, 12); give the lead names explicitly, e.g. "
                    "leads=('I', 'II').")


@dataclass(frozen=True)
class PreprocessContract:
    """What input a set of weights needs.

    Attributes:
        fs: sampling rate in Hz the model expects (500).
        n_samples: window length in samples (5000 = 10 s).
        leads: lead names in model-input order.
        mode: one of :data:`MODES`.
        notch_hz, notch_q: notch filter frequency (Hz) and quality factor.
        band_hz: band-pass edges (Hz); band_order: Butterworth order.
        baseline_window_s: running-median window (s).
    """

    fs: float = 500.0
    n_samples: int = 5000
    leads: tuple[str, ...] = STANDARD_12
    mode: str = "published"
    notch_hz: float = 50.0
    notch_q: float = 30.0
    band_hz: tuple[float, float] = (0.67, 40.0)
    band_order: int = 4
    baseline_window_s: float = 0.4

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SignalError(f"unknown preprocessing mode={self.mode!r}; choose one of {', '.join(MODES)}.")
        leads = (self.leads,) if isinstance(self.leads, str) else self.leads  # ('II': one lead, not 'I', 'I')
        object.__setattr__(self, "leads", tuple(canonical_lead(x) for x in leads))
        object.__setattr__(self, "band_hz", tuple(float(v) for v in self.band_hz))
        if len(self.band_hz) != 2:
            raise SignalError(f"contract band_hz={list(self.band_hz)} needs two edges in Hz, (low, high); give e.g. "
                              "band_hz=(0.67, 40.0) (the published chain).")
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "n_samples", int(self.n_samples))
        if self.n_samples <= 0 or not 0 < self.fs < np.inf:
            raise SignalError(f"contract needs a finite fs > 0 and n_samples > 0; got fs={self.fs}, "
                              f"n_samples={self.n_samples} (the published contract: fs=500, n_samples=5000).")
        if not self.leads:
            raise SignalError("contract needs at least one lead; got leads=(); give the model's input leads in order, "
                              "e.g. leads=('I',).")
        if self.mode == "published":  # the filters checked here, not on the first record (a NaN notch or an
            # unstable band-pass filtered every record to NaN or garbage; the plans are cached for the chain)
            if not 0 <= self.baseline_window_s <= MAX_BASELINE_WINDOW_S:
                raise SignalError(f"contract baseline_window_s={self.baseline_window_s} s is outside 0-"
                                  f"{MAX_BASELINE_WINDOW_S:g} s; give one within it (the published chain: 0.4 s).")
            filters._notch_plan(float(self.notch_hz), float(self.notch_q), self.fs)
            filters._band_plan(self.band_hz[0], self.band_hz[1], int(self.band_order), self.fs)

    @property
    def window_s(self) -> float:
        return self.n_samples / self.fs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["leads"] = list(self.leads)
        d["band_hz"] = list(self.band_hz)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PreprocessContract":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise SignalError(f"unknown preprocessing contract keys {sorted(unknown)}; known: {sorted(known)}; "
                              "remove the others.")
        return cls(**d)

    def with_mode(self, mode: str | None) -> "PreprocessContract":
        if mode is None or mode == self.mode:
            return self
        from dataclasses import replace

        return replace(self, mode=mode)


@dataclass(frozen=True)
class Prepared:
    """Result of :func:`prepare`: model-ready windows plus what was noticed on the way."""

    windows: np.ndarray  # (n_windows, n_leads, n_samples) float32
    duration_s: float
    n_nan: int = 0
    flat_leads: tuple[str, ...] = ()
    padded: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    starts_s: tuple[float, ...] = ()  # each window's first second in the recording (its timeline)


@lru_cache(maxsize=1)
def _default_contract() -> PreprocessContract:
    """The published contract, built once (its 12 lead names are canonicalised on construction)."""
    return PreprocessContract()


def window_starts(n: int, length: int) -> list[int]:
    """Start indices of sequential windows of ``length`` covering ``n`` samples; the last window is
    aligned to the end when ``n`` is not a multiple of ``length`` (it then overlaps the previous)."""
    if n <= length:
        return [0]
    starts = list(range(0, n - length + 1, length))
    if starts[-1] + length < n:
        starts.append(n - length)
    return starts


def _filter_chain(x: np.ndarray, c: PreprocessContract, finite: bool | None) -> np.ndarray:
    if c.mode != "published":
        return x
    from .fast import filter_chain  # all leads at once; equals the per-lead scipy chain

    return filter_chain(
        x, c.fs, notch_hz=c.notch_hz, notch_q=c.notch_q, band_hz=c.band_hz,
        band_order=c.band_order, baseline_window_s=c.baseline_window_s, finite=finite,
    )


def _normalise(w: np.ndarray, c: PreprocessContract) -> np.ndarray:
    if c.mode == "none":
        return w
    return filters.zscore(w)


def _normalise_into(w: np.ndarray, c: PreprocessContract, out: np.ndarray) -> None:
    """``out[...] = `` the window ``w`` normalised (float32); the compiled z-score when numba is
    installed (three passes instead of numpy's six, the same values to float32 rounding)."""
    comp = filters._compiled() if c.mode != "none" else None
    if comp is not None and out.flags.c_contiguous:
        comp.zscore_f32(w, out)
    else:
        out[...] = _normalise(w, c)


def prepare(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    contract: PreprocessContract | None = None,
    *,
    mode: str | None = None,
    fill_missing: bool = False,
    lead: str | None = None,
    source: str = "signal",
    warn: bool = True,
) -> Prepared:
    """Turn a recording's samples into model windows following ``contract``.

    Args:
        signal: ``(n_leads, n_samples)`` in mV (a 1-D array is taken as one lead).
        fs: its sampling rate in Hz (required: no rate is assumed).
        leads: names of the rows of ``signal``; matched by name, case-insensitively, aliases
            accepted; missing limb leads are derived from I and II.
        contract: the model's contract (default: the published 12-lead one); ``mode`` overrides
            its mode.
        fill_missing: zero-fill missing precordial leads (with a warning) instead of refusing.
        lead: for a single-lead contract, use this lead of the recording (with a warning if it is
            not the lead the model was trained on).
        source: name used in warnings and errors (usually the file).

    Returns:
        :class:`Prepared` whose ``windows`` is float32 ``(n_windows, len(contract.leads), n_samples)``.
    """
    c = (contract or _default_contract()).with_mode(mode)
    try:
        x = np.asarray(signal, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalError(f"{source}: signal samples are not numbers ({exc}); give the samples in mV as a numeric "
                          "array (n_leads, n_samples).") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise SignalError(f"{source}: signal must be (n_leads, n_samples); got shape {x.shape}; give one row per lead.")
    if isinstance(leads, str):
        leads = [leads]
    if len(leads) != x.shape[0]:
        flip = (f" (the array looks transposed, {x.shape[0]} x {x.shape[1]}: pass signal.T)"
                if x.shape[1] == len(leads) else "")
        raise SignalError(f"{source}: {x.shape[0]} signal rows but {len(leads)} lead names (leads={list(leads)[:13]}); "
                          f"give one name per row{flip}.")
    try:
        fs_ok = fs is not None and FS_MIN <= float(fs) <= FS_MAX  # NaN compares False
    except (TypeError, ValueError):
        fs_ok = False
    if not fs_ok:
        raise RecordReadError(source, f"sampling rate fs={fs!r} Hz is outside the plausible ECG range "
                              f"{FS_MIN:g}-{FS_MAX:g} Hz; pass the record's true rate as fs=... (CLI: --fs)")
    if x.shape[0] * x.shape[1] * (c.fs / float(fs) + 1) > 400_000_000:
        raise RecordReadError(source, f"record of {x.shape[0]} leads x {x.shape[1]} samples at {float(fs):g} Hz is too "
                              "long to prepare at once; read part of it with max_duration=SECONDS "
                              "(CLI: --max-duration S)")
    duration = x.shape[1] / float(fs)
    if duration < MIN_DURATION_S:
        raise RecordReadError(
            source, f"record lasts {duration:.3f} s ({x.shape[1]} samples at {fs:g} Hz); "
            f"at least {MIN_DURATION_S} s is needed; give a longer record."
        )
    if lead is not None and len(c.leads) != 1:  # (it was ignored: every lead is fed)
        raise SignalError(f"{source}: lead={lead!r} picks the lead fed to a single-lead model; this contract takes "
                          f"{len(c.leads)} leads ({', '.join(c.leads)}): leave lead out.")
    if not x.flags.c_contiguous:  # rows are filtered: one copy here, not a strided pass each time
        x = np.ascontiguousarray(x)
    notes: list[str] = []
    twice = differing_duplicates(x, leads)
    if twice:
        notes.append(f"lead(s) {', '.join(twice)} given more than once with different signals; the first of each "
                     "is used")
    x, filled = select_leads(x, leads, c.leads, source=source, fill_missing=fill_missing, substitute=lead,
                             return_filled=True, warn=False)
    present = [i for i in range(x.shape[0]) if i not in filled]
    names = c.leads  # the recording's lead in each row, for the notes and errors below
    if lead is not None:
        names = (canonical_lead(lead),)
        if names != c.leads:
            notes.append(f"feeding lead {names[0]} to a model trained on lead {c.leads[0]}; "
                         "predictions may be less accurate")
    if filled:
        notes.append(f"zero-filled missing lead(s) {', '.join(c.leads[i] for i in filled)}")
    # per-lead extremes: the flat-lead check, and (NaN and inf show in them) the finiteness check
    hi, lo = x.max(axis=1), x.min(axis=1)
    n_nan = 0
    if not (np.isfinite(hi).all() and np.isfinite(lo).all()):
        nan_mask = ~np.isfinite(x)
        n_nan = int(nan_mask.sum())
        x = np.where(nan_mask, 0.0, x)
        notes.append(f"{n_nan} NaN/inf sample(s) replaced by 0")
        hi, lo = x.max(axis=1), x.min(axis=1)
    big = np.maximum(hi, -lo)
    if (big > MAX_ABS_MV).any():
        i = int(np.argmax(big))
        raise RecordReadError(source, f"lead {names[i]} has a sample of {big[i]:.3g} mV, beyond the ±{MAX_ABS_MV:g} mV no "
                              "ECG comes near in any unit mix-up; check the file's gain and units (units=)")
    ptp = hi - lo
    flat = tuple(names[i] for i in np.flatnonzero(ptp < 1e-6) if i not in filled)
    if flat:
        notes.append(f"flat lead(s) {', '.join(flat)}")
    x = filters.resample(x, float(fs), c.fs)
    # finite from here on (NaN replaced above); checked again after resampling (overflow)
    x = _filter_chain(x, c, True if float(fs) == c.fs else None)
    n = x.shape[1]
    padded = n < c.n_samples
    if padded:
        notes.append(f"{duration:.4g} s record zero-padded to {c.window_s:g} s")
    starts = window_starts(n, c.n_samples)
    out = np.zeros((len(starts), len(c.leads), c.n_samples), dtype=np.float32)
    for k, s in enumerate(starts):
        w = x[:, s : s + c.n_samples]
        # zero-filled leads stay exactly zero and do not enter the normalisation statistics
        if filled:
            out[k, present, : w.shape[1]] = _normalise(w[present], c)
        else:  # all leads present: no fancy-index copies, normalised straight into the output
            _normalise_into(w, c, out[k, :, : w.shape[1]])
    if warn and notes:
        warnings.warn(f"{source}: " + "; ".join(notes), stacklevel=2)
    rate = filters.resampled_rate(float(fs), c.fs)
    return Prepared(out, duration, n_nan, flat, padded, tuple(notes), tuple(s / rate for s in starts))


def preprocess(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    contract: PreprocessContract | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Model windows of a recording: float32 ``(n_windows, n_leads, n_samples)``.

    A 10-s record at 500 Hz gives one window, equal to the published pipeline's output.
    See :func:`prepare` for the arguments.
    """
    return prepare(signal, fs, leads, contract, **kwargs).windows


def preprocess_recording(rec: Recording, contract: PreprocessContract | None = None, **kwargs: Any) -> Prepared:
    """:func:`prepare` applied to a :class:`~ecgfounder.Recording`."""
    kwargs.setdefault("source", str(rec.meta.get("source") or rec.id or "recording"))
    return prepare(rec.signal, rec.fs, rec.leads, contract, **kwargs)
