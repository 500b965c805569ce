"""What a WFDB header says of the patient and the recording, beyond the signals: its comment lines
(WFDB has no fields of its own for them: ``Age:``, ``Sex:``, ``Dx:`` as the CinC challenges write
them, ``Statement:``, ``Patient ID:`` ...) and the record line's base time and date, read into a
:class:`~ecgfounder.recording.Recording`'s metadata and written back from it."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Mapping

from ._common import sex_code

__all__ = ["COMMENT_META", "comment_meta", "meta_comments", "acquired_of", "base_datetime"]

#: metadata keys kept in header comments, with the comment's label (the record line's base time and
#: date also get ``acquired``, for WFDB tools)
COMMENT_META = {"patient_id": "Patient ID", "birth_date": "Birth date", "device": "Device", "acquired": "Acquired"}
_COMMENT_KEYS = {label.lower(): key for key, label in COMMENT_META.items()}


def comment_meta(comments: list[str]) -> dict:
    """What a header's comment lines (without their '#') say of the patient and the recording:
    ``age``, ``sex``, ``dx``, ``statements`` and the fields of :data:`COMMENT_META`."""
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
            meta["sex"] = sex_code(val)
        elif key == "dx":
            from ..datasets.codes import parse_dx  # the one Dx parser

            meta["dx"] = parse_dx(val)
        elif key in ("statements", "statement"):  # a comma-separated list (CinC), or one a line (as written here)
            parts = val.split(",") if key == "statements" else [val]
            meta["statements"] = meta.get("statements", ()) + tuple(c.strip() for c in parts if c.strip())
        elif key in _COMMENT_KEYS and val:
            meta[_COMMENT_KEYS[key]] = val
    return meta


def meta_comments(meta: Mapping[str, Any]) -> list[str]:
    """The comment lines (without '#') that keep ``meta`` in a written header, one line each."""
    comments = []
    if meta.get("age") is not None:
        comments.append(f"Age: {float(meta['age']):g}")
    if meta.get("sex"):
        comments.append(f"Sex: {meta['sex']}")
    if meta.get("dx"):
        comments.append("Dx: " + ",".join(str(x).replace(",", ";") for x in meta["dx"]))
    comments += [f"Statement: {x}" for x in meta.get("statements") or ()]  # one a line: its commas kept
    for key, label in COMMENT_META.items():
        if meta.get(key):
            comments.append(f"{label}: {meta[key]}")
    return [" ".join(c.split()) for c in comments]


def base_datetime(acquired: object) -> _dt.datetime | None:
    """``acquired`` (ISO text) as the record line's base time and date: local clock time, no zone."""
    if not acquired:
        return None
    try:
        return _dt.datetime.fromisoformat(str(acquired)).replace(tzinfo=None)
    except ValueError:
        return None


def _ecg_date(comments: list[str]) -> str | None:
    """The day of an ``ECG date: DD/MM/YYYY`` comment (PTB: the PhysioNet convention of the record
    line's base date), ISO; ``None`` without one."""
    for line in comments:
        m = re.fullmatch(r"\s*ECG date\s*:\s*(\d{1,2}/\d{1,2}/\d{4})\s*", line, flags=re.IGNORECASE)
        if m:
            try:
                return _dt.datetime.strptime(m.group(1), "%d/%m/%Y").date().isoformat()
            except ValueError:
                return None
    return None


def acquired_of(record_line: str, comments: list[str] = ()) -> str | None:
    """``acquired`` (ISO) from a record line's base time and date (``HH:MM:SS[.f] DD/MM/YYYY``), or
    else the day of an ``ECG date:`` comment; ``None`` when neither gives a date."""
    tok = record_line.split()
    if len(tok) < 6:
        return _ecg_date(comments)
    try:
        day = _dt.datetime.strptime(tok[5], "%d/%m/%Y").date()
        t = re.fullmatch(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?", tok[4])
        if t is None:
            return day.isoformat()
        h, m, sec, frac = t.groups()
        return _dt.datetime(day.year, day.month, day.day, int(h), int(m), int(sec), int((frac or "0").ljust(6, "0"))).isoformat()
    except ValueError:
        return None
