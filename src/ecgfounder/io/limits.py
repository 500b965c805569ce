"""Bounds every reader checks before doing work, in one place.

Each limit is chosen so that a real ECG of any archive we know fits with room to spare, while a
hostile or corrupt file is refused in milliseconds, before anything large is allocated:

* ``FS_MIN``–``FS_MAX`` (25–20,000 Hz): the lowest rate in an ECG archive we know is 50 Hz
  (ambulatory devices; the QRS complex needs ≥ 50 Hz), research amplifiers reach 10–16 kHz
  (pacemaker-spike studies).  Outside the range the file's rate is a corruption, and resampling it
  to the model's 500 Hz would build absurd arrays (1e-9 Hz → 10¹² samples).
* ``MAX_LEADS`` (1024 channels) and ``MAX_VALUES`` (100 M leads × samples, 800 MB as float64): a 12-lead 500-Hz record of 4.6 h or a
  1-lead 1-kHz Holter of 27 h.  Longer records are read with ``max_duration=`` (seconds), which
  reads only the first part (WFDB, EDF, NumPy, HDF5, CSV read no more than that).
* Decompression: a compressed input (gzip/zstd/bzip2/xz/zip, npz members, HDF5 filters) may expand
  to at most ``max(MIN_DECOMPRESSED, MAX_RATIO × compressed size)`` and never beyond
  ``MAX_DECOMPRESSED`` bytes.  ECG samples compress 2–10×; deflate bombs expand 1000×.
* XML: ``MAX_XML_BYTES`` per file, ``MAX_XML_DEPTH`` nesting, ``MAX_XML_ELEMENTS`` elements,
  ``MAX_XML_TEXT`` characters per text or attribute (vendor ECG XML: < 20 MB, depth < 20,
  < 20,000 elements, longest text a lead's samples, < 1 MB).
* HDF5: ``MAX_H5_OBJECTS`` objects visited, ``MAX_H5_DEPTH`` group nesting; external storage,
  virtual datasets and external links are refused (they read other local files).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import RecordReadError
from ..recording import FS_MAX, FS_MIN

__all__ = [
    "FS_MIN", "FS_MAX", "MAX_VALUES", "MAX_LEADS", "MAX_DECOMPRESSED", "MIN_DECOMPRESSED", "MAX_RATIO",
    "MAX_XML_BYTES", "MAX_XML_DEPTH", "MAX_XML_ELEMENTS", "MAX_XML_TEXT", "MAX_H5_OBJECTS", "MAX_H5_DEPTH",
    "check_fs", "parse_fs", "check_values", "decompressed_limit", "check_decompressed", "samples_to_read",
]

MAX_VALUES = 100_000_000
MAX_LEADS = 1024
MAX_DECOMPRESSED = 1 << 30
MIN_DECOMPRESSED = 32 << 20
MAX_RATIO = 200
MAX_XML_BYTES = 64 << 20
MAX_XML_DEPTH = 64
MAX_XML_ELEMENTS = 200_000
MAX_XML_TEXT = 8 << 20
MAX_H5_OBJECTS = 10_000
MAX_H5_DEPTH = 16


_STORED = "(a corrupt header?); the file cannot be read with it: export the recording again from its device"
_GIVEN = "(a corrupt header?); pass fs=... (CLI: --fs) if the file's rate is wrong"


def check_fs(path: Any, fs: Any, what: str = "sampling rate", shown: str | None = None, *, given: bool = False) -> float:
    """``fs`` as a float after checking it lies in ``[FS_MIN, FS_MAX]`` Hz; else a one-line error
    (quoting ``shown``, the file's own text, when given).  ``given``: a rate the caller may pass
    instead (arrays, CSV): the error says how; a rate a format stores (its readers take no fs=)
    is not replaced."""
    try:
        f = float(fs)
    except (TypeError, ValueError, OverflowError):
        raise RecordReadError(path, f"{what} {fs!r} is not a number of Hz") from None
    if not math.isfinite(f) or not FS_MIN <= f <= FS_MAX:
        raise RecordReadError(
            path, f"{what} {shown if shown is not None else repr(fs)} Hz is outside the plausible ECG range {FS_MIN:g}–{FS_MAX:g} Hz "
            + (_GIVEN if given else _STORED)
        )
    return f


def parse_fs(path: Any, text: str, what: str = "sampling rate", *, given: bool = False) -> float:
    """A rate from header text (``'500'``, ``'1e3'``); refuses ``'1,5'``, ``'inf'`` and out-of-range rates."""
    t = str(text).strip()
    try:
        f = float(t)
    except ValueError:
        raise RecordReadError(path, f"{what} {t[:40]!r} is not a number of Hz") from None
    return check_fs(path, f, what, shown=t[:40], given=given)


def check_values(path: Any, n_leads: int, n_samples: int, what: str = "file",
                 max_duration: float | None = None, fs: float | None = None, *, partial: bool = True) -> None:
    """Refuse a declared signal size that is empty or larger than :data:`MAX_VALUES`
    (after ``max_duration`` has capped the samples to read, when given).  ``partial=False``: the
    reader cannot read the first part of a record alone (DICOM, vendor XML), so the refusal does
    not offer ``max_duration=``, which would give the same refusal again."""
    if n_leads <= 0 or n_samples <= 0:
        raise RecordReadError(path, f"{what} declares {n_leads} leads × {n_samples} samples; nothing to read")
    if n_leads > MAX_LEADS:
        raise RecordReadError(path, f"{what} declares {n_leads} leads (limit {MAX_LEADS})")
    n = samples_to_read(n_samples, fs, max_duration)
    if n_leads * n > MAX_VALUES:
        dur = f" ({n_samples / fs:.0f} s)" if fs else ""
        fix = ("pass max_duration=SECONDS to read the first part of a long record" if partial else
               "this format is read whole (max_duration= cannot shorten the read): a corrupt count, or a record "
               "too long to read")
        raise RecordReadError(
            path, f"{what} declares {n_leads} leads × {n_samples} samples{dur}, above the limit of {MAX_VALUES} "
            f"values; {fix}"
        )


def samples_to_read(n_samples: int, fs: float | None, max_duration: float | None) -> int:
    """How many of ``n_samples`` to read when only the first ``max_duration`` seconds are wanted."""
    if max_duration is None or not fs:
        return int(n_samples)
    md = float(max_duration)
    if not math.isfinite(md) or md <= 0:
        raise ValueError(f"max_duration={max_duration!r} must be a positive number of seconds.")
    return int(min(n_samples, math.ceil(md * fs)))


def decompressed_limit(compressed_bytes: int) -> int:
    """Largest decompressed size accepted for ``compressed_bytes`` of compressed input."""
    return int(min(MAX_DECOMPRESSED, max(MIN_DECOMPRESSED, MAX_RATIO * max(0, compressed_bytes))))


def check_decompressed(path: Any, declared: int, compressed: int, what: str = "compressed data") -> None:
    """Refuse ``declared`` decompressed bytes beyond :func:`decompressed_limit` of ``compressed``."""
    limit = decompressed_limit(compressed)
    if declared > limit:
        raise RecordReadError(
            path, f"{what} expands to {declared} bytes from {compressed} (limit {limit}: "
            f"{MAX_RATIO}× the compressed size, at most {MAX_DECOMPRESSED}); refused as a decompression bomb"
        )


def file_size(path: Any) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
