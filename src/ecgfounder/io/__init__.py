"""Readers and writers: every ECG file format becomes a :class:`~ecgfounder.Recording`.

``read(path)`` detects the format by extension and content; ``read(path, format="wfdb")`` forces it.
``iter_read(path)`` yields every recording of a file (many for HDF5/npz/npy batches).
``find_records(paths)`` expands directories into the record files below them.
``write(recording, path, format)`` writes WFDB, npz or EDF/BDF for interchange.
``convert_records(paths, to, output)`` converts files or folders of them (``ecgfounder convert``),
yielding a :class:`ConvertResult` per input file.

Formats: WFDB (.hea/.dat/.mat), EDF/EDF+/BDF, GE MUSE XML, HL7 aECG XML, DICOM waveform,
Philips Sierra XML, SCP-ECG, NumPy .npy/.npz, CSV/TSV, HDF5, BITalino OpenSignals text.
"""

from __future__ import annotations

from .convert import ConvertResult, convert_records
from .detect import FORMATS, detect_format, find_records, iter_read, read
from .write import WRITE_FORMATS, write

__all__ = ["read", "iter_read", "detect_format", "find_records", "FORMATS", "write", "WRITE_FORMATS",
           "convert_records", "ConvertResult"]
