"""WFDB records (``.hea`` + ``.dat``/``.mat``), read with the wfdb package."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import canonical_lead

__all__ = ["read_wfdb"]

_UNIT_SCALE = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nv": 1e-6}

# Largest record we are willing to allocate (samples × channels): about 2 GB of float64.
MAX_VALUES = 250_000_000


def _parse_comments(comments: list[str]) -> dict:
    meta: dict = {}
    for line in comments:
        m = re.match(r"\s*([A-Za-z][A-Za-z _/()-]*?)\s*:\s*(.*)$", line)
        if not m:
            continue
        key, val = m.group(1).strip().lower(), m.group(2).strip()
        if key == "age":
            try:
                meta["age"] = float(val)
            except ValueError:
                pass
        elif key == "sex":
            meta["sex"] = {"m": "M", "male": "M", "f": "F", "female": "F"}.get(val.lower(), val)
        elif key == "dx":
            meta["dx"] = tuple(c.strip() for c in val.split(",") if c.strip())
    return meta


def read_wfdb(path: str | Path, **_: object) -> Recording:
    """Read a WFDB record given its ``.hea`` (or signal) file; signals converted to mV."""
    import wfdb

    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() in (".hea", ".dat", ".mat") else p
    hea = base.with_suffix(".hea")
    if not hea.exists():
        raise RecordReadError(p, f"WFDB header {hea.name} not found")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises bare Exceptions on malformed headers
        raise RecordReadError(hea, f"corrupt WFDB header: {str(exc).strip() or type(exc).__name__}") from None
    n_sig = int(header.n_sig or 0)
    sig_len = int(header.sig_len or 0)
    if n_sig <= 0 or sig_len <= 0:
        raise RecordReadError(hea, f"WFDB header declares {n_sig} signals of {sig_len} samples; nothing to read")
    if n_sig * sig_len > MAX_VALUES:
        raise RecordReadError(hea, f"WFDB header declares {n_sig}×{sig_len} samples, above the limit of {MAX_VALUES}")
    for fname in sorted(set(header.file_name or [])):
        f = hea.parent / fname
        if not f.exists():
            raise RecordReadError(hea, f"signal file {fname} is missing")
    try:
        rec = wfdb.rdrecord(str(base), physical=True)
    except Exception as exc:
        raise RecordReadError(hea, f"cannot read signal: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    sig = np.asarray(rec.p_signal, dtype=np.float64).T
    if sig.shape[1] != sig_len:
        raise RecordReadError(hea, f"signal file holds {sig.shape[1]} samples, header declares {sig_len} (truncated?)")
    units = list(rec.units or ["mV"] * n_sig)
    for i, u in enumerate(units):
        scale = _UNIT_SCALE.get(str(u).strip().lower())
        if scale is not None and scale != 1.0:
            sig[i] *= scale
    meta = {"id": rec.record_name, "source": str(hea), "units": "mV", "original_units": tuple(units)}
    meta.update(_parse_comments(list(rec.comments or [])))
    leads = tuple(canonical_lead(n) for n in rec.sig_name)
    return Recording(signal=sig, fs=float(rec.fs), leads=leads, meta=meta)
