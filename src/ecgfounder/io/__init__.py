"""Readers: every ECG file format becomes a :class:`~ecgfounder.Recording`.

``read(path)`` detects the format by extension and content; ``read(path, format="wfdb")`` forces it.
``find_records(paths)`` expands directories into the record files below them.
"""

from __future__ import annotations

from .detect import FORMATS, detect_format, find_records, read, iter_read

__all__ = ["read", "iter_read", "detect_format", "find_records", "FORMATS"]
