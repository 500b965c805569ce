"""What a WFDB header says of the patient and the recording, beyond the signals: its comment lines
(WFDB has no fields of its own for them: ``Age:``, ``Sex:``, ``Dx:`` as the CinC challenges write
them, ``Statement:``, ``Patient ID:`` ...; MIT-BIH's unlabelled ``# 69 M 1085 1629 x1``) and the record line's base time and date, read into a
:class:`~ecgfounder.recording.Recording`'s metadata and written back from it."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Mapping

from ._common import MAX_AGE, age_years, sex_code

__all__ = ["COMMENT_META", "comment_meta", "meta_comments", "acquired_of", "base_datetime"]

#: metadata keys kept in header comments, with the comment's label (the record line's base time and
#: date also get ``acquired``, for WFDB tools)
COMMENT_META = {"patient_id": "Patient ID", "birth_date": "Birth date", "device": "Device", "acquired": "Acquired"}
_COMMENT_KEYS = {label.lower(): key for key, label in COMMENT_META.items()}


# MIT-BIH's first comment line: age (-1 or ? unknown), sex, then other fields ('69 M 1085 1629 x1')
_LEADING_AGE_SEX = re.compile(r"\s*(\d{1,3}|-1|\?)\s+([MF])(?:\s|$)")


def _leading_age_sex(comments: list[str]) -> tuple[str, str] | None:
    """``(age, sex)`` texts of MIT-BIH's unlabelled form: the first comment line holding a digit or a
    '?' (leading lines of words alone, such as wfdb-python's sample ``# unnecessary comment``, are
    passed over) when its first token is an age (an integer 0 to 120, ``-1`` or ``?``) and its second
    ``M`` or ``F``; ``None`` otherwise: no other line is read as one."""
    first = next((c for c in comments if re.search(r"[\d?]", c)), None)
    m = _LEADING_AGE_SEX.match(first or "")
    if m is None or (m.group(1).isdigit() and int(m.group(1)) > MAX_AGE):
        return None
    return m.group(1), m.group(2)


def comment_meta(comments: list[str], path: object = None) -> dict:
    """What a header's comment lines (without their '#') say of the patient and the recording:
    ``age``, ``sex``, ``dx``, ``statements`` and the fields of :data:`COMMENT_META`.  Age and sex are
    read from ``Age:`` and ``Sex:`` (one a line, or both on one: ``Age: 51  Sex: M``), else from
    MIT-BIH's leading ``69 M`` (:func:`_leading_age_sex`), with the readers' rules (:func:`age_years`,
    :func:`sex_code`); ``path`` names the header in a warning."""
    meta: dict = {}
    pieces = [part for line in comments  # 'Age: 51  Sex: M' as two
              for part in (re.split(r"\s+(?=sex\s*:)", line, flags=re.I) if re.match(r"\s*age\s*:", line, re.I) else [line])]
    for line in pieces:
        m = re.match(r"\s*([A-Za-z][A-Za-z _/()-]*?)\s*:\s*(.*)$", line)
        if not m:
            continue
        key, val = m.group(1).strip().lower(), m.group(2).strip()
        if key == "age":
            meta["age"] = age_years(val, path, f"the header comment 'Age: {val}'")
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
    leading = None if {"age", "sex"} & meta.keys() else _leading_age_sex(comments)
    if leading:
        meta["age"], meta["sex"] = age_years(leading[0]), sex_code(leading[1])
    return {k: v for k, v in meta.items() if v is not None}


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
