"""HL7 annotated ECG (aECG, ``<AnnotatedECG>``) XML.

Each lead is a ``SLIST_PQ`` sequence: value = origin + scale × digit, with origin and scale in
physical units (usually µV).  The sampling interval comes from the ``GLIST_TS``/``GLIST_PQ``
increment of the time sequence of the same sequence set.  ``series="rhythm"`` (default) or
``"representative"`` (the derived median beat).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import (age_in_years, check_values, make_recording, note, parse_datetime, parse_xml, sex_code,
                      stated_or_birth_age, to_float, unit_scale_to_mv, xml_text)

__all__ = ["read_hl7_aecg"]

_TIME_UNIT_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_MAX_DIGITS_CHARS = 400_000_000


def _lead_name(code: str) -> str:
    """``MDC_ECG_LEAD_AVR`` → ``AVR`` (``aVR`` once canonicalised), ``MDC_ECG_LEAD_AVRneg`` → ``-aVR``;
    other codes are returned unchanged."""
    c = code.strip()
    for prefix in ("MDC_ECG_LEAD_", "ECG_LEAD_"):
        if c.upper().startswith(prefix):
            c = c[len(prefix):]
            break
    return "-aVR" if c.upper() == "AVRNEG" else c


def _attr(el, path: str, name: str) -> str | None:
    node = el.find(path) if el is not None else None
    if node is None:
        return None
    v = node.get(name)
    return v.strip() if v and v.strip() else None


def _parse_set(p: Path, sset, label: str) -> tuple[list[np.ndarray], list[str], float | None, str | None, set]:
    """The lead rows (mV), names, sampling rate, time origin (``head``) and units of one sequence set."""
    fs = head = None
    names, rows, units = [], [], set()
    for seq in sset.findall("component/sequence"):
        code = _attr(seq, "code", "code") or ""
        value = seq.find("value")
        if value is None:
            continue
        if code.upper().startswith("TIME_"):
            inc = value.find("increment")
            head = _attr(value, "head", "value")
            if inc is not None:
                step = to_float(inc.get("value"))
                unit = (inc.get("unit") or "s").strip()
                if step is None or step <= 0 or unit not in _TIME_UNIT_S:
                    raise RecordReadError(p, f"{label}: invalid time increment {inc.get('value')!r} {unit!r}")
                fs = 1.0 / (step * _TIME_UNIT_S[unit])
            continue
        digits = value.find("digits")
        if digits is None:
            continue
        origin = to_float(_attr(value, "origin", "value")) or 0.0
        scale = to_float(_attr(value, "scale", "value"))
        if scale is None:
            raise RecordReadError(p, f"{label}: lead {code} has no scale")
        unit = _attr(value, "scale", "unit")
        if unit is None:
            unit = "uV"
            note("aecg_unit_assumed", "uV", f"{p}: {label} lead {code}: the scale has no unit; read as µV (the "
                 "aECG convention)")
        ounit = _attr(value, "origin", "unit") or unit
        f, fo = unit_scale_to_mv(unit), unit_scale_to_mv(ounit)
        if f is None or fo is None:
            raise RecordReadError(p, f"{label}: lead {code}: unknown amplitude unit "
                                  f"{unit if f is None else ounit!r} (expected uV or mV)")
        text = digits.text or ""
        if len(text) > _MAX_DIGITS_CHARS:
            raise RecordReadError(p, f"{label}: lead {code} holds more digits than the reader accepts")
        try:
            vals = np.array(text.split(), dtype=np.float64)
        except ValueError:
            bad = next((t for t in text.split() if not _is_number(t)), "?")
            raise RecordReadError(p, f"{label}: lead {code}: non-numeric digit {bad[:20]!r}") from None
        check_values(p, 1, vals.size, f"{label} lead {code}")
        names.append(_lead_name(code))
        rows.append(origin * fo + vals * scale * f)
        units.add(unit)
    return rows, names, fs, head, units


def _parse_series(p: Path, series, label: str) -> tuple[np.ndarray, float, list[str], dict]:
    """The leads of a series' sequence sets (``series/component/sequenceSet``; the sets of a
    derived series below it are not its own).  Sets sharing the first one's time origin, rate and
    length are merged (leads split over sets); other sets (leads recorded at another time) are not
    read, with a warning."""
    sets = [_parse_set(p, s, label) for s in series.findall("component/sequenceSet")]
    sets = [s for s in sets if s[0]]
    if not sets:
        raise RecordReadError(p, f"{label}: no lead sequences found")
    rows, names, fs, head, units = sets[0]
    if fs is None:
        raise RecordReadError(p, f"{label}: no time sequence with an increment (sampling rate unknown)")
    n = {len(r) for r in rows}
    if len(n) != 1:
        raise RecordReadError(p, f"{label}: leads have different lengths {sorted(n)}")
    skipped = []
    for r2, n2, fs2, head2, u2 in sets[1:]:
        if fs2 == fs and head2 == head and {len(r) for r in r2} == n:
            rows, names, units = rows + r2, names + n2, units | u2
        else:
            skipped.extend(n2)
    if skipped:
        note("aecg_sets_skipped", tuple(skipped), f"{p}: {label}: lead(s) {', '.join(skipped)} are in a sequence set "
             "with another time origin, rate or length than the first (not recorded simultaneously); not read")
    return np.stack(rows), fs, names, {"original_units": ",".join(sorted(units))}


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def read_hl7_aecg(path: str | Path, *, series: str = "rhythm", **_: object) -> Recording:
    """Read an HL7 aECG XML file; signal in mV (leads × samples)."""
    p = Path(path)
    root = parse_xml(p)
    if root.tag != "AnnotatedECG":
        raise RecordReadError(p, f"not an HL7 aECG file (root element <{root.tag}>, expected <AnnotatedECG>)")
    want = {"rhythm": "RHYTHM", "representative": "REPRESENTATIVE_BEAT", "median": "REPRESENTATIVE_BEAT"}.get(
        series.strip().lower()
    )
    if want is None:
        raise ValueError(f"series={series!r}; choose 'rhythm' or 'representative'.")
    found = []
    target = None
    for comp in root.findall("component"):
        s = comp.find("series")
        if s is None:
            continue
        code = (_attr(s, "code", "code") or "").upper()
        found.append(code)
        if code == want and target is None:
            target = s
        # a derived series (representative beat) may hang below the rhythm series
        for der in s.iter("derivedSeries"):
            dcode = (_attr(der, "code", "code") or "").upper()
            found.append(dcode)
            if dcode == want and target is None:
                target = der
    if target is None:
        raise RecordReadError(p, f"no {want} series in the file (found: {found or 'none'})")
    sig, fs, names, extra = _parse_series(p, target, want)

    subject = next(root.iter("trialSubject"), None)
    person = subject.find("subjectDemographicPerson") if subject is not None else None
    sex = _attr(person, "administrativeGenderCode", "code")
    birth = parse_datetime(_attr(person, "birthTime", "value"))
    acquired = parse_datetime(
        _attr(target, "effectiveTime/low", "value")
        or _attr(root, "effectiveTime/center", "value")
        or _attr(root, "effectiveTime/low", "value")
    )
    age = None
    for obs in root.iter("relatedObservation"):
        if (_attr(obs, "code", "code") or "") == "21612-7":  # LOINC "Reported Age"
            v = obs.find("value")
            value = to_float(v.get("value")) if v is not None else None
            if value is not None:
                age = age_in_years(value, v.get("unit"))
                if age is None:
                    note("age_unit_unknown", v.get("unit"), f"{p}: the reported age {v.get('value')} "
                         f"{v.get('unit')!r} has an unknown unit (UCUM a, mo, wk, d or h expected); age taken "
                         "from the birth date instead")
    age = stated_or_birth_age(p, age, birth, acquired, "reported age")
    device = None
    dev = next(root.iter("manufacturedSeriesDevice"), None)
    if dev is not None:
        device = xml_text(dev, "manufacturerModelName", deep=True)
    manufacturer = xml_text(next(root.iter("manufacturerOrganization"), None), "name", deep=True) if dev is not None else None
    statements = []
    for ann in root.iter("annotation"):
        code = (_attr(ann, "code", "code") or "").upper()
        v = ann.find("value")
        if v is None or code.startswith(("MDC_ECG_BEAT", "MDC_ECG_WAVC")):
            continue
        if "CE" in (v.get("{http://www.w3.org/2001/XMLSchema-instance}type") or v.get("type") or "CE"):
            txt = (v.get("displayName") or v.get("code") or "").strip()
            if txt and txt not in statements and not txt.startswith("MDC_ECG_WAVC"):
                statements.append(txt)
    meta = {
        "document_id": _attr(root, "id", "root"),
        "patient_id": _attr(subject, "id", "extension") if subject is not None else None,
        "patient_name": xml_text(person, "name", deep=True),
        "sex": sex_code(sex),
        "birth_date": birth,
        "age": age,
        "acquired": acquired,
        "device": device,
        "manufacturer": manufacturer,
        "statements": tuple(statements),
        "series": want.lower(),
        **extra,
    }
    return make_recording(p, sig, fs, names, meta, fmt="hl7_aecg")
