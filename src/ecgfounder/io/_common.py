"""Helpers shared by the readers: size limits, safe XML, base64, lead derivation, metadata."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import canonical_lead

__all__ = [
    "MAX_VALUES",
    "MAX_XML_BYTES",
    "check_file",
    "check_values",
    "parse_xml",
    "b64decode_strict",
    "derive_limb_leads",
    "make_recording",
    "to_float",
    "unit_scale_to_mv",
]

# Largest signal we are willing to allocate (leads × samples): about 2 GB of float64.
MAX_VALUES = 250_000_000
# Largest XML file we parse (vendor XML ECGs are < 5 MB; this leaves ample room).
MAX_XML_BYTES = 512 * 1024 * 1024

_UNIT_TO_MV = {
    "mv": 1.0, "millivolt": 1.0, "millivolts": 1.0,
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3,
    "nv": 1e-6, "nanovolt": 1e-6, "nanovolts": 1e-6,
    "v": 1e3, "volt": 1e3, "volts": 1e3,
}


def unit_scale_to_mv(unit: str | None) -> float | None:
    """Factor turning a value in ``unit`` into millivolts, or ``None`` for an unknown unit."""
    if unit is None:
        return None
    return _UNIT_TO_MV.get(str(unit).strip().lower().replace(" ", ""))


def check_file(path: Path, *, min_bytes: int = 1, max_bytes: int | None = None) -> int:
    """Size of ``path`` in bytes after checking that it exists, is a file and is not empty."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RecordReadError(path, "file not found") from None
    except OSError as exc:
        raise RecordReadError(path, f"cannot open: {exc.strerror or exc}") from None
    if not Path(path).is_file():
        raise RecordReadError(path, "not a regular file")
    if st.st_size == 0:
        raise RecordReadError(path, "file is empty (0 bytes)")
    if st.st_size < min_bytes:
        raise RecordReadError(path, f"file is {st.st_size} bytes, too short to hold a header (truncated?)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise RecordReadError(path, f"file is {st.st_size} bytes, above the {max_bytes}-byte limit for this format")
    return int(st.st_size)


def check_values(path: Path, n_leads: int, n_samples: int, what: str = "file") -> None:
    """Refuse a declared signal size that is empty or larger than :data:`MAX_VALUES`."""
    if n_leads <= 0 or n_samples <= 0:
        raise RecordReadError(path, f"{what} declares {n_leads} leads × {n_samples} samples; nothing to read")
    if n_leads * n_samples > MAX_VALUES:
        raise RecordReadError(
            path, f"{what} declares {n_leads} leads × {n_samples} samples, above the limit of {MAX_VALUES} values"
        )


def parse_xml(path: Path, data: bytes | None = None):
    """Parse an XML file with defusedxml (entities, DTD-declared entities and external references refused).

    Returns the root ``Element``; namespaces are stripped from tags so that ``find('a/b')`` works on
    any vendor's namespace.
    """
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if data is None:
        check_file(path, max_bytes=MAX_XML_BYTES)
        data = Path(path).read_bytes()
    # Expat reads UTF-16 with a BOM; a file without a BOM but with an utf-16 declaration needs help.
    if data[:2] not in (b"\xff\xfe", b"\xfe\xff") and data[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        enc = "utf-16-le" if data[:1] == b"<" else "utf-16-be"
        data = data.decode(enc).encode("utf-8")
        data = re.sub(rb"encoding\s*=\s*[\"'][^\"']*[\"']", b'encoding="utf-8"', data, count=1)
    try:
        root = DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise RecordReadError(path, f"unsafe XML refused ({type(exc).__name__}: entity or external reference)") from None
    except Exception as exc:  # ParseError and expat errors
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordReadError(path, f"malformed XML: {msg}") from None
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag[:1] == "{":
            el.tag = el.tag.split("}", 1)[1]
    return root


def b64decode_strict(path: Path, text: str | None, what: str) -> bytes:
    """Decode base64 text (whitespace ignored); a clear error for invalid characters or padding."""
    if text is None:
        raise RecordReadError(path, f"{what}: no waveform data")
    s = re.sub(r"\s+", "", text)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordReadError(path, f"{what}: invalid base64 data ({exc})") from None


def to_float(value: Any) -> float | None:
    """``float(value)`` or ``None`` for missing/unparseable values."""
    if value is None:
        return None
    try:
        out = float(str(value).strip())
    except ValueError:
        return None
    return out if np.isfinite(out) else None


def derive_limb_leads(signal: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Add III, aVR, aVL, aVF computed from I and II when they are missing (Einthoven/Goldberger).

    III = II − I, aVR = −(I + II)/2, aVL = I − II/2, aVF = II − I/2.  Returned in standard order
    (I, II, III, aVR, aVL, aVF, then the remaining leads in their original order).
    """
    names = [canonical_lead(n) for n in leads]
    if "I" not in names or "II" not in names:
        return signal, tuple(names)
    i, ii = signal[names.index("I")], signal[names.index("II")]
    derived = {"III": ii - i, "aVR": -(i + ii) / 2.0, "aVL": i - ii / 2.0, "aVF": ii - i / 2.0}
    rows, out = [], []
    for name in ("I", "II", "III", "aVR", "aVL", "aVF"):
        if name in names:
            rows.append(signal[names.index(name)])
        else:
            rows.append(derived[name])
        out.append(name)
    for k, name in enumerate(names):
        if name not in out:
            rows.append(signal[k])
            out.append(name)
    return np.stack(rows), tuple(out)


def parse_datetime(text: str | None) -> str | None:
    """An ISO-8601 string from an HL7/DICOM style timestamp ``YYYYMMDDhhmmss[.fff]``, else ``None``."""
    if not text:
        return None
    s = str(text).strip()
    m = re.match(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.(\d+))?)?", s)
    if not m:
        return None
    y, mo, d, h, mi, sec, _frac = m.groups()
    try:
        if h is None:
            return _dt.date(int(y), int(mo), int(d)).isoformat()
        return _dt.datetime(int(y), int(mo), int(d), int(h), int(mi or 0), int(sec or 0)).isoformat()
    except ValueError:
        return None


def make_recording(
    path: Path,
    signal: np.ndarray,
    fs: float,
    leads: Iterable[str],
    meta: Mapping[str, Any],
    *,
    fmt: str,
) -> Recording:
    """Build a :class:`Recording` with canonical lead names, ``source``/``format`` in meta and
    ``None``/empty metadata dropped."""
    sig = np.asarray(signal, dtype=np.float64)
    if sig.ndim != 2 or sig.shape[0] == 0 or sig.shape[1] == 0:
        raise RecordReadError(path, f"no signal samples found (shape {sig.shape})")
    if not np.isfinite(fs) or fs <= 0:
        raise RecordReadError(path, f"invalid sampling rate {fs!r} Hz")
    m: dict[str, Any] = {"id": Path(path).stem}
    for k, v in meta.items():
        if v is None or (isinstance(v, (str, tuple, list, dict)) and len(v) == 0):
            continue
        m[k] = v
    m.setdefault("source", str(path))
    m["format"] = fmt
    m.setdefault("units", "mV")
    return Recording(signal=sig, fs=float(fs), leads=tuple(canonical_lead(n) for n in leads), meta=m)


def age_at(birth: str | None, acquired: str | None) -> float | None:
    """Age in whole years on the acquisition date, from two ISO dates; ``None`` if either is missing."""
    if not birth or not acquired:
        return None
    try:
        b = _dt.date.fromisoformat(str(birth)[:10])
        a = _dt.date.fromisoformat(str(acquired)[:10])
    except ValueError:
        return None
    age = a.year - b.year - ((a.month, a.day) < (b.month, b.day))
    return float(age) if 0 <= age < 150 else None
