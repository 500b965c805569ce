"""What an EDF/EDF+/BDF file says beyond its samples, for :mod:`ecgfounder.io.edf`: lead names of
its signal labels, the start, the patient (sex, birth date, age, by the readers' one age rule) and
EDF+ annotations at time 0 (``statements``, one ``Dx: <codes>`` as ``dx``)."""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from ._common import age_years, sex_code, stated_or_birth_age

__all__ = ["UNKNOWN_START", "label_name", "start_read", "patient_meta", "annotation_meta"]

# the start written when a recording has none (EDF requires one): read back as unknown
UNKNOWN_START = _dt.datetime(1985, 1, 1)


def label_name(label: str) -> str:
    """The lead name a signal label gives, as the file writes it: ``'ECG MLII'`` -> ``'MLII'``
    (``ECG``/``EKG`` before or after dropped); a label that is then a number (``ECG1``, ``ECG 2``:
    a channel number of a PSG or Holter, not limb lead I or II) is kept whole.  Its canonical name is
    ``canonical_lead`` of it; :func:`~ecgfounder.io._common.canonical_leads` notes a modified lead."""
    s = re.sub(r"^(ECG|EKG)[\s_-]*", "", label.strip(), flags=re.I).strip()
    s = re.sub(r"[\s_-]*(ECG|EKG)$", "", s, flags=re.I).strip()
    return label.strip() if not s or s.isdigit() else s


def start_read(f: Any) -> str | None:
    """The start as ISO text, to the µs (pyedflib's ``getStartdatetime`` takes EDFlib's 100-ns
    sub-second count for 10 ns); ``None`` for the :data:`UNKNOWN_START` written for no start."""
    try:
        t = f.getStartdatetime()
    except Exception:
        return None
    t = t.replace(microsecond=int(getattr(f, "starttime_subsecond", 0) or 0) // 10)
    return None if t == UNKNOWN_START else t.isoformat()


def _birth_read(f: Any) -> str | None:
    """The birth date as ISO text (pyedflib gives ``'02 jan 1958'``)."""
    try:
        b = f.getBirthdate()
    except Exception:
        return None
    if not b:
        return None
    if not isinstance(b, str):
        return b.isoformat()[:10]
    for fmt in ("%d %b %Y", "%d-%b-%Y", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(b.strip()[:11], fmt).date().isoformat()
        except ValueError:
            continue
    return None


def patient_meta(p: Path, f: Any, start: str | None) -> dict[str, Any]:
    """``patient_id``, ``sex``, ``birth_date`` and ``age`` of an open pyedflib reader: the age the
    patient field's additional part states (``age=69``, ``Age: 69``, as :func:`write_edf` writes it),
    else the age from the birth date on the start date, by the readers' one rule
    (:func:`~ecgfounder.io._common.stated_or_birth_age`: a stated age disagreeing is kept and said)."""
    birth = _birth_read(f)
    additional = (f.getPatientAdditional() or "").strip() if hasattr(f, "getPatientAdditional") else ""
    m_age = re.search(r"\bage(?:[\s=:_]+|(?=\d))([^\s_,;]+)", additional, re.I)
    stated = age_years(m_age.group(1), p, "EDF+ patient field's age") if m_age else None
    sex = (f.getSex() or "").strip() if hasattr(f, "getSex") else ""
    return {
        "patient_id": (f.getPatientCode() or "").strip() or None,
        "sex": sex_code(sex),
        "birth_date": birth or None,
        "age": stated_or_birth_age(p, stated, birth, start, "EDF+ patient field's age"),
    }


_DX = re.compile(r"^Dx\s*:\s*(.*)$", re.S)


def annotation_meta(f: Any) -> dict[str, Any]:
    """``statements`` and ``dx`` of the EDF+ annotations at time 0 of an open pyedflib reader (texts
    split in pieces ending in '~' by :func:`write_edf` joined again)."""
    statements, cont = [], ""
    try:
        onsets, _durations, texts = f.readAnnotations()
    except Exception:
        onsets, texts = [], []
    for o, t in zip(onsets, texts):
        t = str(t)
        if float(o) > 0:
            continue
        if t.endswith("~"):
            cont += t[:-1]
            continue
        if (cont + t).strip():
            statements.append((cont + t).strip())
        cont = ""
    dx = [x for x in statements if _DX.match(x)]
    if not dx:
        return {"statements": tuple(statements)}
    from ..datasets.codes import parse_dx  # the one Dx parser

    return {"statements": tuple(x for x in statements if x not in dx),
            "dx": tuple(c for x in dx for c in parse_dx(_DX.match(x).group(1)))}  # type: ignore[union-attr]
