"""Helpers shared by the readers: file checks, safe XML, base64, metadata, read notes."""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import datetime as _dt
import io
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import canonical_lead
from .limits import MAX_VALUES, MAX_XML_BYTES, MAX_XML_DEPTH, MAX_XML_ELEMENTS, MAX_XML_TEXT, check_values, samples_to_read

__all__ = [
    "MAX_VALUES",
    "MAX_XML_BYTES",
    "check_file",
    "check_values",
    "parse_xml",
    "b64decode_strict",
    "xml_text",
    "make_recording",
    "note",
    "collect_notes",
    "to_float",
    "unit_scale_to_mv",
    "sex_code",
    "read_length",
    "age_in_years",
    "MAX_AGE",
    "age_years",
    "canonical_leads",
    "age_at",
    "stated_or_birth_age",
]

_NOTES: contextvars.ContextVar[list | None] = contextvars.ContextVar("ecgfounder_read_notes", default=None)


def note(key: str, value: Any, warning: str | None = None) -> None:
    """Record a ``meta`` flag (and optionally a warning) about the file being read; ``read()``
    merges the flags into the recording's ``meta`` and issues the warnings once."""
    notes = _NOTES.get()
    if notes is not None:
        notes.append((key, value, warning))


def read_length(n_samples: int, fs: float | None, max_duration: float | None) -> int:
    """The samples of ``n_samples`` a reader reads for ``max_duration`` (:func:`~ecgfounder.io.limits.samples_to_read`),
    noting ``meta['truncated_from_s']`` (the file's duration) when that is fewer: a record read in part says so,
    as one cut after reading does (:mod:`ecgfounder.io.policy`)."""
    n = samples_to_read(n_samples, fs, max_duration)
    if n < n_samples and fs:
        note("truncated_from_s", round(int(n_samples) / float(fs), 6))
    return n


@contextlib.contextmanager
def collect_notes():
    """Collect :func:`note` calls made while reading one file (nested calls share the outer list)."""
    outer = _NOTES.get()
    if outer is not None:
        yield outer
        return
    notes: list = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


# (temporary path prefix, what to show instead): the files of an archive are read from a private
# temporary folder, and a warning should name the archive the user gave
_SHOWN: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar("ecgfounder_shown", default=())


@contextlib.contextmanager
def shown_as(prefix: str, shown: str):
    """While the block runs, messages of the reading policy show ``prefix`` as ``shown``
    (:func:`as_shown`); nested archives stack their prefixes."""
    token = _SHOWN.set(_SHOWN.get() + ((prefix, shown),))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def as_shown(text: str) -> str:
    """``text`` with each temporary path prefix of :func:`shown_as` written as what the user gave."""
    for prefix, shown in reversed(_SHOWN.get()):
        text = text.replace(prefix, shown)
    return text


_UNIT_TO_MV = {
    "mv": 1.0, "millivolt": 1.0, "millivolts": 1.0,
    "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3, "microvolts": 1e-3, "microv": 1e-3, "mcv": 1e-3,
    "nv": 1e-6, "nanovolt": 1e-6, "nanovolts": 1e-6,
    "v": 1e3, "volt": 1e3, "volts": 1e3,
}


def unit_scale_to_mv(unit: str | None) -> float | None:
    """Factor turning a value in ``unit`` into millivolts, or ``None`` for an unknown unit."""
    if unit is None:
        return None
    return _UNIT_TO_MV.get(str(unit).strip().lower().replace(" ", ""))


_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}


def sex_code(text: str) -> str | None:
    """``M`` or ``F`` for the ways files write a sex (``male``, ``F``, ...; any case), ``None`` otherwise."""
    return _SEX.get(str(text).strip().lower())


# age units: UCUM (HL7 PQ: a, mo, wk, d, h, min) and the words MUSE and others write; value: units a year
_AGE_UNIT_PER_YEAR = {
    "a": 1.0, "y": 1.0, "yr": 1.0, "yrs": 1.0, "year": 1.0, "years": 1.0,
    "mo": 12.0, "month": 12.0, "months": 12.0,
    "wk": 52.1775, "w": 52.1775, "week": 52.1775, "weeks": 52.1775,
    "d": 365.25, "day": 365.25, "days": 365.25,
    "h": 8766.0, "hr": 8766.0, "hour": 8766.0, "hours": 8766.0,
    "min": 525960.0, "minute": 525960.0, "minutes": 525960.0,
}


def age_in_years(value: float | None, unit: str | None) -> float | None:
    """``value`` (an age in ``unit``: ``a``/years, ``mo``/months, ``wk``, ``d``, ``h``, ``min``; none:
    years) in years, or ``None`` for a missing value or an unknown unit (never a guess: 6 months is
    not 6 years)."""
    if value is None:
        return None
    key = str(unit or "a").strip().lower()
    per_year = _AGE_UNIT_PER_YEAR.get(key)
    return None if per_year is None else value / per_year


#: the oldest age read as a patient's age, in years: a larger number is a code (PTB-XL's 300 for
#: "over 89") or an error, not an age
MAX_AGE = 120.0
# what files write for an age not known (CinC: 'NaN'; MIT-BIH: '-1' or '?')
_AGE_UNKNOWN = {"", "nan", "-1", "?", "unknown", "none", "n/a", "na"}


def age_years(value: Any, path: Path | str | None = None, what: str = "age") -> float | None:
    """The one rule of the readers for an age in years that a file states: a finite number (of years:
    ``69``, ``69 years``, ``69y``) from 0 to
    :data:`MAX_AGE`; ``None`` for a missing age and the ways files write one not known (``NaN``,
    ``-1``, ``?``, ``unknown``), and for anything else (``300``, ``69 months``, ``inf``), then with a
    warning naming the value and ``meta['age_not_read']``: never a guess."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    years = re.fullmatch(r"([0-9.]+)\s*(?:y|yr|yrs|year|years)\.?", text, flags=re.I)  # '69 years', '69y'
    age = to_float(years.group(1) if years else text)
    if text.lower() in _AGE_UNKNOWN or age == -1:
        return None
    if age is not None and 0 <= age <= MAX_AGE:
        return age
    note("age_not_read", text, f"{f'{path}: ' if path else ''}{what} {text!r} is not an age in years (0 to "
         f"{MAX_AGE:g}); age not read")
    return None


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


_DECL = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])([^\"']*)([\"'])")


def _fix_declared_encoding(path: Path, data: bytes) -> bytes:
    """Bytes expat can parse: UTF-16 without a BOM re-encoded, and a declaration that names an
    encoding the bytes are not in (UTF-16 declared, UTF-8/ASCII bytes) corrected, with a note."""
    if data[:2] not in (b"\xff\xfe", b"\xfe\xff") and data[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        enc = "utf-16-le" if data[:1] == b"<" else "utf-16-be"
        data = data.decode(enc, errors="replace").encode("utf-8")
        return _DECL.sub(rb'\1utf-8\3', data, count=1)
    body = data[3:] if data[:3] == b"\xef\xbb\xbf" else data
    m = _DECL.match(body)
    if m and data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        declared = m.group(2).decode("latin-1").strip().lower()
        if declared.replace("-", "").replace("_", "") in ("utf16", "utf16le", "utf16be", "ucs2", "utf32"):
            try:
                body.decode("utf-8")
                actual = "utf-8"
            except UnicodeDecodeError:
                actual = "latin-1"
            note("encoding_fixed", f"declared {declared}, read as {actual}",
                 f"{path}: the XML declaration says {declared} but the bytes are {actual}; read as {actual}")
            return _DECL.sub(b"\\1" + actual.encode() + b"\\3", body, count=1)
    return data


def _prescan_xml(path: Path, data: bytes) -> None:
    """Bounds checked on the raw bytes before expat sees them (expat would buffer a giant attribute
    whole): no run of more than ``MAX_XML_TEXT`` bytes without ``<`` or ``>``, and not far more
    tags than ``MAX_XML_ELEMENTS`` allows."""
    u8 = np.frombuffer(data, dtype=np.uint8)
    marks = np.flatnonzero((u8 == 60) | (u8 == 62))
    if marks.size > 4 * MAX_XML_ELEMENTS + 16:
        raise RecordReadError(path, f"XML holds more than {MAX_XML_ELEMENTS} elements (refused)")
    edges = np.concatenate(([-1], marks, [u8.size]))
    if edges.size > 1 and int(np.max(np.diff(edges))) > MAX_XML_TEXT:
        raise RecordReadError(path, f"XML text or attribute of more than {MAX_XML_TEXT} characters (refused)")


def parse_xml(path: Path, data: bytes | None = None):
    """Parse an XML file with defusedxml (entities, DTD-declared entities and external references
    refused) and the bounds of :mod:`ecgfounder.io.limits` (size, depth, elements, text length),
    checked while parsing so that a hostile file stops early.

    Returns the root ``Element``; namespaces are stripped from tags so that ``find('a/b')`` works on
    any vendor's namespace.
    """
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if data is None:
        check_file(path, max_bytes=MAX_XML_BYTES)
        data = Path(path).read_bytes()
    elif len(data) > MAX_XML_BYTES:
        raise RecordReadError(path, f"XML of {len(data)} bytes is above the {MAX_XML_BYTES}-byte limit")
    data = _fix_declared_encoding(path, data)
    _prescan_xml(path, data)
    depth, count, root = 0, 0, None
    try:
        for event, el in DET.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=False,
                                       forbid_entities=True, forbid_external=True):
            if event == "start":
                depth += 1
                count += 1
                if root is None:
                    root = el
                if depth > MAX_XML_DEPTH:
                    raise RecordReadError(path, f"XML nested deeper than {MAX_XML_DEPTH} elements (refused)")
                if count > MAX_XML_ELEMENTS:
                    raise RecordReadError(path, f"XML holds more than {MAX_XML_ELEMENTS} elements (refused)")
                for v in el.attrib.values():
                    if len(v) > MAX_XML_TEXT:
                        raise RecordReadError(path, f"XML attribute of {len(v)} characters (limit {MAX_XML_TEXT})")
            else:
                depth -= 1
                if (el.text and len(el.text) > MAX_XML_TEXT) or (el.tail and len(el.tail) > MAX_XML_TEXT):
                    raise RecordReadError(path, f"XML text of more than {MAX_XML_TEXT} characters in <{el.tag}>")
    except RecordReadError:
        raise
    except DefusedXmlException as exc:
        raise RecordReadError(path, f"unsafe XML refused ({type(exc).__name__}: entity or external reference)") from None
    except Exception as exc:  # ParseError and expat errors
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordReadError(path, f"malformed XML: {msg}") from None
    if root is None:
        raise RecordReadError(path, "malformed XML: no root element")
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag[:1] == "{":
            el.tag = el.tag.split("}", 1)[1]
    return root


def xml_text(el, path: str, *, deep: bool = False) -> str | None:
    """The text of ``el.find(path)`` with runs of whitespace collapsed, or ``None`` when the element
    is missing or empty; ``deep=True`` includes the text of its children (HL7 mixed content)."""
    node = el.find(path) if el is not None else None
    if node is None:
        return None
    raw = "".join(node.itertext()) if deep else node.text
    t = " ".join((raw or "").split())
    return t or None


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


def canonical_leads(names: Iterable[str]) -> tuple[str, ...]:
    """The canonical names of a file's ``names`` (:func:`~ecgfounder.signal.leads.canonical_lead`),
    noting ``meta['lead_names_from']`` (``{"II": "MLII"}``: canonical name -> the file's) for each
    modified lead read under its standard name: MIT-BIH's ``MLII``, ``MLV1`` ... are modified leads
    (electrodes on the torso, not the limbs: amplitudes and axis differ from II or V1), read as the
    standard lead the model knows.  Other spellings (``avr``, ``Lead II``, ``D2``, ``C1``) name the
    same lead and are not noted."""
    given = [str(n).strip() for n in names]
    out = tuple(canonical_lead(n) for n in given)
    renamed = {c: g for g, c in zip(given, out) if c != g and g.lower().startswith("ml")}
    if renamed:
        note("lead_names_from", renamed)
    return out


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
    return Recording(signal=sig, fs=float(fs), leads=canonical_leads(leads), meta=m)


def age_at(birth: str | None, acquired: str | None) -> float | None:
    """Age in whole years on the acquisition date, from two ISO dates; ``None`` if either is missing
    or the age is not one of :func:`age_years` (0 to :data:`MAX_AGE`)."""
    if not birth or not acquired:
        return None
    try:
        b = _dt.date.fromisoformat(str(birth)[:10])
        a = _dt.date.fromisoformat(str(acquired)[:10])
    except ValueError:
        return None
    age = a.year - b.year - ((a.month, a.day) < (b.month, b.day))
    return float(age) if 0 <= age <= MAX_AGE else None


def stated_or_birth_age(path: Path, stated: float | None, birth: str | None, acquired: str | None,
                        what: str = "stated age") -> float | None:
    """The one rule of the readers for a file giving an age, a birth date, or both: the age it states
    (``stated``, in years) is the patient's age; else the age on the acquisition date from the birth
    date (:func:`age_at`).  A stated age is the age the file (device, operator) recorded for this
    ECG, as DICOM's PatientAge, MUSE's PatientAge and HL7's Reported Age are defined; a birth date
    is often shifted or masked to de-identify a record.  When both are there and disagree (the whole
    years of the stated age are not the age from the birth date), the stated age is kept, with a
    warning naming both and ``meta['age_from_birth_date']``."""
    from_birth = age_at(birth, acquired)
    if stated is None:
        return from_birth
    if from_birth is not None and int(np.floor(stated + 1e-9)) != int(from_birth):
        note("age_from_birth_date", from_birth,
             f"{path}: the {what} {stated:g} years and the birth date {str(birth)[:10]} ({from_birth:g} years on the "
             f"acquisition date {str(acquired)[:10]}) disagree; the {what} is used as the age")
    return stated


def read_error(p: Path, fmt: str, exc: BaseException) -> RecordReadError:
    """``exc``, raised reading ``p`` as ``fmt``, as one line naming the file."""
    if isinstance(exc, RecordReadError):
        return exc
    if isinstance(exc, MemoryError):
        return RecordReadError(p, "file declares more data than can be held in memory")
    if isinstance(exc, RecursionError):
        return RecordReadError(p, f"cannot read as {fmt}: structure nested too deeply")
    msg = " ".join(str(exc).split()) if str(exc).strip() else type(exc).__name__
    return RecordReadError(p, f"cannot read as {fmt}: {msg[:300]}")
