"""Writers for interchange: WFDB, NumPy ``.npz`` and EDF+/BDF+."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._fileio import to_jsonable
from ..errors import SetupError
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

    What survives (details and limits: :func:`.wfdb.write_wfdb`, :func:`.edf.write_edf`):

    * npz: everything (float64 samples, rate, leads, metadata as JSON).
    * WFDB: 16-bit samples over each lead's own min-max (step (max - min) / 65533 mV), NaN kept,
      the rate as given, lead names, patient and acquisition fields; the id is the file name.
    * EDF/BDF: 16/24-bit samples over each lead's min-max (step (max - min) / 65535 or / 16777215
      mV); no missing-sample code (NaN written as 0 mV), a rate that the 10-µs record duration
      cannot hold exactly is read back within 10 ppm; a warning says when data is changed.
    """
    p = Path(path)
    fmt = (format or "").strip().lower() or {".hea": "wfdb", ".dat": "wfdb", ".npz": "npz", ".edf": "edf",
                                              ".bdf": "bdf"}.get(p.suffix.lower(), "")
    if fmt not in WRITE_FORMATS:
        raise SetupError(
            f"cannot write format {format or p.suffix!r}; choose one of {', '.join(WRITE_FORMATS)} "
            "(or give a path ending in .hea, .npz, .edf, .bdf).", "format"
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
