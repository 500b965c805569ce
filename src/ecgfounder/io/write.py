"""Writers for interchange: WFDB, NumPy ``.npz`` and EDF+/BDF+."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._fileio import to_jsonable
from ..recording import Recording

__all__ = ["write", "WRITE_FORMATS"]

WRITE_FORMATS: dict[str, str] = {"wfdb": ".hea", "npz": ".npz", "edf": ".edf", "bdf": ".bdf"}


def write_npz(rec: Recording, path: str | Path) -> Path:
    """Write ``signal`` (float64 mV, leads × samples), ``fs``, ``leads``, ``units`` and the metadata
    as JSON (``meta_json``) into a compressed ``.npz`` (lossless)."""
    p = Path(path)
    meta = {k: to_jsonable(v) for k, v in rec.meta.items() if k not in ("source", "format")}
    with open(p, "wb") as fh:
        np.savez_compressed(
            fh, signal=np.asarray(rec.signal, dtype=np.float64), fs=np.float64(rec.fs),
            leads=np.array(rec.leads, dtype=str), units=np.array("mV"), meta_json=np.array(json.dumps(meta)),
        )
    return p


def write(recording: Recording, path: str | os.PathLike, format: str | None = None, **kwargs: Any) -> Path:
    """Write ``recording`` to ``path`` as ``format`` (``wfdb``, ``npz``, ``edf``, ``bdf``; guessed from
    the extension when ``None``).  Returns the path written (the ``.hea`` for WFDB).

    Resolution: npz is lossless; WFDB stores 16-bit samples (step ≤ max|x|/32000 mV); EDF stores
    16-bit (BDF 24-bit) samples over each channel's min–max range.
    """
    p = Path(path)
    fmt = (format or "").strip().lower() or {".hea": "wfdb", ".dat": "wfdb", ".npz": "npz", ".edf": "edf",
                                              ".bdf": "bdf"}.get(p.suffix.lower(), "")
    if fmt not in WRITE_FORMATS:
        raise ValueError(
            f"cannot write format {format or p.suffix!r}; choose one of {', '.join(WRITE_FORMATS)} "
            "(or give a path ending in .hea, .npz, .edf, .bdf)."
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "wfdb":
        from .wfdb import write_wfdb

        return write_wfdb(recording, p, **kwargs)
    if fmt == "npz":
        return write_npz(recording, p if p.suffix.lower() == ".npz" else p.with_suffix(".npz"))
    from .edf import write_edf

    want = ".bdf" if fmt == "bdf" else ".edf"
    return write_edf(recording, p if p.suffix.lower() == want else p.with_suffix(want), bdf=fmt == "bdf")
