"""The one in-memory form of an ECG that every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

__all__ = ["Recording", "FS_MIN", "FS_MAX"]

# The plausible range of an ECG's sampling rate in Hz, checked by every reader and by preprocessing
# (see ecgfounder.io.limits): the lowest rate in an ECG archive we know is 50 Hz, research
# amplifiers reach 10-16 kHz.  Outside it a file's rate is a corruption, and resampling to the
# model's rate would build absurd arrays (1e-9 Hz -> 10^12 samples).
FS_MIN = 25.0
FS_MAX = 20_000.0


@dataclass(frozen=True)
class Recording:
    """An ECG recording.

    Attributes:
        signal: float array ``(n_leads, n_samples)`` in millivolts: voltage channels only (readers
            name other channels, e.g. ``"ABP (mmHg)"``, in ``meta['other_channels']``).
        fs: sampling rate in Hz.
        leads: lead names, one per row of ``signal``, canonical where known (``I``, ``aVR``, ``V1``).
        meta: free metadata: ``id``, ``patient_id``, ``age``, ``sex``, ``acquired``, ``device``,
            ``source`` (file path), ``statements`` or ``dx`` (labels the file carries), and the
            reading flags of :mod:`ecgfounder.io.policy` (``derived_leads``, ``calibration_trimmed``,
            ``lead_off_statement``, ``non_finite_samples``, ``leads_assumed``, ``compression``, ...).
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sig = np.asarray(self.signal)
        if sig.ndim != 2:
            raise ValueError(
                f"Recording.signal must be 2-D (n_leads, n_samples); got shape {sig.shape}. "
                "Pass a single lead as signal[None, :]."
            )
        if sig.shape[0] == 0:  # (a check of it would find nothing wrong: quality 'good' of no lead at all)
            raise ValueError(f"Recording.signal has no leads (shape {sig.shape}); give at least one lead's samples.")
        if not np.issubdtype(sig.dtype, np.floating):
            sig = sig.astype(np.float64)
        leads = tuple(str(x) for x in self.leads)
        if len(leads) != sig.shape[0]:
            raise ValueError(
                f"Recording has {sig.shape[0]} signal rows but {len(leads)} lead names {leads}; "
                "give one name per row."
            )
        fs = float(self.fs)
        if not np.isfinite(fs) or fs <= 0:
            raise ValueError(f"Recording.fs must be a positive sampling rate in Hz; got {self.fs!r}.")
        object.__setattr__(self, "signal", sig)
        object.__setattr__(self, "leads", leads)
        object.__setattr__(self, "fs", fs)
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __reduce__(self) -> tuple:
        """Pickled with its metadata as a plain dict (a read-only mapping proxy cannot be): recordings
        go to worker processes (``predict(..., workers=2)``) and back."""
        return (type(self), (self.signal, self.fs, self.leads, dict(self.meta)))

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs

    @property
    def id(self) -> str:
        return str(self.meta.get("id", ""))

    @property
    def stored_leads(self) -> tuple[str, ...]:
        """The leads read from the file: without those derived on reading (``meta['derived_leads']``:
        III, aVR, aVL, aVF from I and II)."""
        derived = {str(x) for x in self.meta.get("derived_leads") or ()}
        return tuple(x for x in self.leads if x not in derived) or self.leads

    def lead(self, name: str) -> np.ndarray:
        """The samples of one lead, matched by name (case-insensitive, aliases accepted)."""
        from .signal.leads import canonical_lead

        want = canonical_lead(name)
        for i, ld in enumerate(self.leads):
            if canonical_lead(ld) == want:
                return self.signal[i]
        raise ValueError(f"lead {name!r} is not in this recording; it has {list(self.leads)}.")

    def replace(self, **changes: Any) -> "Recording":
        from dataclasses import replace

        return replace(self, **changes)
