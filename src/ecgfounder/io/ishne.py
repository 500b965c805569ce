"""ISHNE Holter (``ISHNE1.0``): the International Society for Holter and Noninvasive
Electrocardiology standard output format (Badilini et al., Ann Noninvasive Electrocardiol 1998),
used by THEW and many Holter archives.

Written from the published standard; no participant file was used.  Layout (little-endian):

======  =====  ==========================================================
offset  bytes  field
======  =====  ==========================================================
0       8      magic ``ISHNE1.0``
8       2      CRC-16 (CCITT, init 0xFFFF) of bytes 10 .. ECG offset
10      4      size of the variable-length block
14      4      samples per lead
18      4      offset of the variable-length block (522)
22      4      offset of the ECG block
26      2      file version
28      40+40  first and last name (not read)
108     20     subject id
128     2      sex (1 male, 2 female)
132     6×3    birth, recording, file date (day, month, year)
150     6      start time (hour, minute, second)
156     2      number of leads (≤ 12)
158     2×12   lead specification (5=I, 6=II, 7=III, 8=aVR … 16=V6; 2–4 X/Y/Z; 17–19 ES/AS/AI)
182     2×12   lead quality (1 good … 4 intermittent, 5 frequent disconnect)
206     2×12   amplitude resolution, nV per count
230     2      pacemaker code
272     2      sampling rate, Hz
======  =====  ==========================================================

The ECG block holds int16 samples, leads interleaved; bytes after the declared samples per lead
are not read (a warning says how many).  Holter files are long (24 h × 3 leads ×
200 Hz ≈ 17 M samples per lead): ``max_duration`` (seconds) and ``start`` (seconds) read a bounded
window straight from the file instead of the whole record.  A bad CRC is reported in
``meta["crc_ok"]`` and a warning, not refused: the samples do not depend on it.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import struct
import warnings
from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import check_file, check_values, make_recording

__all__ = ["read_ishne", "ISHNE_LEADS"]

MAGIC = b"ISHNE1.0"
HEADER_BYTES = 522
#: ISHNE lead specification codes (Table 1 of the standard).
ISHNE_LEADS = {
    0: "unknown", 1: "generic", 2: "X", 3: "Y", 4: "Z", 5: "I", 6: "II", 7: "III", 8: "aVR", 9: "aVL",
    10: "aVF", 11: "V1", 12: "V2", 13: "V3", 14: "V4", 15: "V5", 16: "V6", 17: "ES", 18: "AS", 19: "AI",
}
_QUALITY = {1: "good", 2: "intermittent noise", 3: "frequent noise", 4: "intermittent disconnect",
            5: "frequent disconnect"}
# A plausible Holter rate (the standard stores an int16; real devices use 128–1000 Hz).
_FS_RANGE = (50, 10_000)


def _date(d: int, m: int, y: int) -> str | None:
    try:
        return _dt.date(y, m, d).isoformat()
    except ValueError:
        return None


def _header(p: Path, raw: bytes) -> dict:
    var_size, n_per_lead, var_off, ecg_off = struct.unpack_from("<iiii", raw, 10)
    n_leads = struct.unpack_from("<h", raw, 156)[0]
    return {
        "crc": struct.unpack_from("<H", raw, 8)[0],
        "var_size": var_size, "n_per_lead": n_per_lead, "var_off": var_off, "ecg_off": ecg_off,
        "version": struct.unpack_from("<h", raw, 26)[0],
        "id": raw[108:128].split(b"\x00")[0].decode("latin-1").strip(),
        "sex": struct.unpack_from("<h", raw, 128)[0],
        "birth": _date(*struct.unpack_from("<hhh", raw, 132)),
        "recorded": _date(*struct.unpack_from("<hhh", raw, 138)),
        "start": struct.unpack_from("<hhh", raw, 150),
        "n_leads": n_leads,
        "spec": struct.unpack_from("<12h", raw, 158),
        "quality": struct.unpack_from("<12h", raw, 182),
        "resolution": struct.unpack_from("<12h", raw, 206),
        "pacemaker": struct.unpack_from("<h", raw, 230)[0],
        "fs": struct.unpack_from("<h", raw, 272)[0],
    }


def read_ishne(path: str | Path, *, max_duration: float | None = None, start: float = 0.0, **_: object) -> Recording:
    """Read an ISHNE Holter ``.ecg`` file.

    Args:
        path: the file.
        max_duration: read at most this many seconds (``None``: the whole record, within the
            package's size limit).
        start: first second to read.
    """
    p = Path(path)
    size = check_file(p, min_bytes=HEADER_BYTES)
    with open(p, "rb") as fh:
        raw = fh.read(HEADER_BYTES)
        if raw[:8] != MAGIC:
            raise RecordReadError(p, f"not an ISHNE Holter file (magic {raw[:8]!r}, expected {MAGIC!r})")
        h = _header(p, raw)
        n_leads, fs = h["n_leads"], h["fs"]
        if not 1 <= n_leads <= 12:
            raise RecordReadError(p, f"ISHNE header declares {n_leads} leads; the standard allows 1 to 12")
        if not _FS_RANGE[0] <= fs <= _FS_RANGE[1]:
            raise RecordReadError(p, f"ISHNE header declares a sampling rate of {fs} Hz, outside {_FS_RANGE[0]}–{_FS_RANGE[1]} Hz")
        if not HEADER_BYTES <= h["ecg_off"] <= size or h["var_size"] < 0:
            raise RecordReadError(p, f"ISHNE ECG block offset {h['ecg_off']} lies outside the {size}-byte file")
        res = np.asarray(h["resolution"][:n_leads], dtype=np.float64)
        if np.any(res <= 0):
            raise RecordReadError(p, f"ISHNE lead resolutions {res.tolist()} nV must be positive")
        head_rest = fh.read(max(0, h["ecg_off"] - HEADER_BYTES))
        crc_ok = binascii.crc_hqx(raw[10:] + head_rest, 0xFFFF) == h["crc"]
        in_file = (size - h["ecg_off"]) // (2 * n_leads)
        declared = h["n_per_lead"]
        # bytes beyond the declared samples (padding, a writer's trailer) are not ECG samples
        available = min(in_file, declared) if declared > 0 else in_file
        first = int(max(0.0, float(start)) * fs)
        n = available - first
        if max_duration is not None:
            n = min(n, int(float(max_duration) * fs))
        if n <= 0:
            raise RecordReadError(p, f"no samples to read from second {start} (the file holds {available / fs:.1f} s)")
        check_values(p, n_leads, n, "ISHNE file")
        fh.seek(h["ecg_off"] + 2 * n_leads * first)
        data = np.frombuffer(fh.read(2 * n_leads * n), dtype="<i2")
    counts = data.reshape(-1, n_leads).T.astype(np.float64)
    signal = counts * (res * 1e-6)[:, None]  # nV per count -> mV
    leads = [ISHNE_LEADS.get(code, f"lead{k + 1}") for k, code in enumerate(h["spec"][:n_leads])]
    leads = [f"{name}{k + 1}" if name in ("unknown", "generic") else name for k, name in enumerate(leads)]
    quality = {ld: _QUALITY.get(q, "unknown") for ld, q in zip(leads, h["quality"][:n_leads])}
    if not crc_ok:
        warnings.warn(f"{p}: ISHNE header checksum does not match; samples read as stored", stacklevel=2)
    if in_file > available:
        warnings.warn(f"{p}: ISHNE file holds {in_file - available} samples per lead beyond the {declared} its header "
                      "declares; they are not read", stacklevel=2)
    if 0 < available < declared:
        warnings.warn(f"{p}: ISHNE file holds {available} samples per lead of the {declared} its header declares "
                      "(truncated); reading what is there", stacklevel=2)
    hh, mm, ss = h["start"]
    meta = {
        "patient_id": h["id"] or None,
        "sex": {1: "M", 2: "F"}.get(h["sex"]),
        "birth_date": h["birth"],
        "acquired": f"{h['recorded']}T{hh:02d}:{mm:02d}:{ss:02d}" if h["recorded"] and 0 <= hh < 24 else h["recorded"],
        "device": "ISHNE Holter",
        "lead_quality": quality,
        "leads_off": tuple(ld for ld, q in quality.items() if q == "frequent disconnect"),
        "pacemaker": h["pacemaker"] if h["pacemaker"] > 0 else None,
        "crc_ok": crc_ok,
        "declared_samples": declared,
        "file_truncated": bool(0 < available < declared),
        "start_s": first / fs,
        "truncated_to_s": (n / fs) if first + n < available else None,
        "original_units": "nV",
    }
    return make_recording(p, signal, float(fs), leads, meta, fmt="ishne")
