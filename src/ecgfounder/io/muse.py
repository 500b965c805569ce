"""GE MUSE XML resting ECGs (``<RestingECG>``).

MUSE stores 8 leads (I, II, V1–V6) per waveform block as base64 little-endian int16 with a
per-lead amplitude resolution (``LeadAmplitudeUnitsPerBit``, usually 4.88 µV).  III, aVR, aVL and
aVF are derived from I and II.  ``waveform="rhythm"`` (default, 10 s) or ``"median"`` (one beat).
Leads whose data do not match their ``LeadDataCRC32``, or that declare a non-zero
``FirstSampleBaseline``/``LeadOffsetFirstSample``/``LeadTimeOffset``, are refused; leads marked
``LeadOff`` are named in ``meta['leads_off']``.
"""

from __future__ import annotations

import datetime as _dt
import zlib
from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import (
    age_in_years,
    age_years,
    note,
    sex_code,
    xml_text,
    b64decode_strict,
    check_values,
    make_recording,
    parse_xml,
    to_float,
    unit_scale_to_mv,
)

__all__ = ["read_muse"]


def _acquired(test) -> str | None:
    date, time = xml_text(test, "AcquisitionDate"), xml_text(test, "AcquisitionTime")
    if not date:
        return None
    for fmt in ("%m-%d-%Y", "%m/%d/%Y", "%Y-%m-%d"):
        try:
            d = _dt.datetime.strptime(date, fmt)
            break
        except ValueError:
            continue
    else:
        return date
    if time:
        try:
            t = _dt.datetime.strptime(time, "%H:%M:%S").time()
            d = _dt.datetime.combine(d.date(), t)
            return d.isoformat()
        except ValueError:
            pass
    return d.date().isoformat()


def _statements(root, tag: str) -> tuple[str, ...]:
    """Diagnosis lines; statements without ENDSLINE continue onto the next one (MUSE convention)."""
    diag = root.find(tag)
    if diag is None:
        return ()
    lines, cur = [], []
    for st in diag.findall("DiagnosisStatement"):
        txt = xml_text(st, "StmtText")
        if txt:
            cur.append(txt)
        flags = {(f.text or "").strip().upper() for f in st.findall("StmtFlag")}
        if "ENDSLINE" in flags and cur:
            lines.append(" ".join(cur))
            cur = []
    if cur:
        lines.append(" ".join(cur))
    return tuple(lines)


def _lead_mv(p: Path, ld, name: str) -> np.ndarray:
    """One ``LeadData`` element's samples in mV, after the checks that keep wrong numbers out:
    2-byte samples, the declared count (else all the data) present, the data matching their
    ``LeadDataCRC32`` (when given), a positive amplitude per bit in a known unit, and no first-sample
    offset, baseline or time offset (open readers disagree on what those mean: a sample offset or
    bytes to skip, a baseline to add or to subtract)."""
    size = int(to_float(xml_text(ld, "LeadSampleSize")) or 2)
    if size != 2:
        raise RecordReadError(p, f"lead {name}: {size}-byte samples are not supported (MUSE uses 2)")
    raw = b64decode_strict(p, xml_text(ld, "WaveFormData"), f"lead {name}")
    declared = to_float(xml_text(ld, "LeadSampleCountTotal"))
    n = int(declared) if declared is not None else len(raw) // 2
    if len(raw) < 2 * n:  # before the size limit, whose fix (max_duration=) cannot help here
        raise RecordReadError(p, f"lead {name}: {len(raw)} bytes of data for {n} declared samples "
                              "(LeadSampleCountTotal; truncated or corrupt file)")
    check_values(p, 1, n, f"lead {name}")
    crc = to_float(xml_text(ld, "LeadDataCRC32"))
    if crc is not None and zlib.crc32(raw) != int(crc) and zlib.crc32(raw[: 2 * n]) != int(crc):
        raise RecordReadError(p, f"lead {name}: waveform data do not match their LeadDataCRC32 {int(crc)} "
                              "(corrupt or edited file)")
    for tag in ("LeadOffsetFirstSample", "FirstSampleBaseline", "LeadTimeOffset"):
        v = to_float(xml_text(ld, tag))
        if v:
            raise RecordReadError(p, f"lead {name}: {tag} {xml_text(ld, tag)} is not supported (only 0: readers "
                                  "disagree on how to apply it, so the samples cannot be placed or scaled reliably)")
    res = to_float(xml_text(ld, "LeadAmplitudeUnitsPerBit"))
    if res is None or not 0 < res <= 1e6:
        raise RecordReadError(p, f"lead {name}: LeadAmplitudeUnitsPerBit {xml_text(ld, 'LeadAmplitudeUnitsPerBit')!r} "
                              "is missing, not positive or absurd (expected a few µV per count)")
    unit = xml_text(ld, "LeadAmplitudeUnits") or "MICROVOLTS"
    scale = unit_scale_to_mv(unit)
    if scale is None:
        raise RecordReadError(p, f"lead {name}: unknown amplitude unit {unit!r} (expected MICROVOLTS or MILLIVOLTS)")
    return np.frombuffer(raw[: 2 * n], dtype="<i2").astype(np.float64) * (res * scale)


def read_muse(path: str | Path, *, waveform: str = "rhythm", **_: object) -> Recording:
    """Read a GE MUSE XML file.

    Args:
        path: the ``.xml`` file.
        waveform: ``"rhythm"`` (the full strip) or ``"median"`` (the representative beat).

    Returns a :class:`Recording` with 12 leads (I, II, III, aVR, aVL, aVF, V1–V6) in mV.
    """
    p = Path(path)
    root = parse_xml(p)
    if root.tag != "RestingECG":
        raise RecordReadError(p, f"not a GE MUSE XML file (root element <{root.tag}>, expected <RestingECG>)")
    want = waveform.strip().lower()
    if want not in ("rhythm", "median"):
        raise ValueError(f"waveform={waveform!r}; choose 'rhythm' or 'median'.")
    blocks = root.findall("Waveform")
    block = next((b for b in blocks if (xml_text(b, "WaveformType") or "").lower() == want), None)
    if block is None:
        kinds = [(xml_text(b, "WaveformType") or "?") for b in blocks]
        raise RecordReadError(p, f"no {want} waveform in the file (found: {kinds or 'none'})")
    fs = to_float(xml_text(block, "SampleBase"))
    exp = to_float(xml_text(block, "SampleExponent")) or 0.0
    if not fs:
        raise RecordReadError(p, "MUSE waveform has no SampleBase (sampling rate)")
    if not -6 <= exp <= 6:  # rates are written 500 × 10^0 (or 5 × 10^2)
        raise RecordReadError(p, f"MUSE SampleExponent {exp:g} is absurd (SampleBase {fs:g} × 10^{exp:g} Hz); a corrupt "
                              "file: export the ECG again from MUSE")
    fs = fs * 10.0**exp
    names, rows, off = [], [], []
    for ld in block.findall("LeadData"):
        name = xml_text(ld, "LeadID") or f"lead{len(names) + 1}"
        rows.append(_lead_mv(p, ld, name))
        names.append(name)
        if (xml_text(ld, "LeadOff") or "").upper() == "TRUE":
            off.append(name)
    if not rows:
        raise RecordReadError(p, f"{want} waveform holds no leads")
    n = min(len(r) for r in rows)
    if any(len(r) != n for r in rows):
        raise RecordReadError(p, f"leads have different lengths {[len(r) for r in rows]}")
    sig, leads = np.stack(rows), names  # III, aVR, aVL, aVF: derived by the reading policy (io/policy.py)
    demo, test = root.find("PatientDemographics"), root.find("TestDemographics")
    age_value, age_unit = to_float(xml_text(demo, "PatientAge")), xml_text(demo, "AgeUnits")
    age = age_in_years(age_value, age_unit)
    if age_value is not None and age is None:
        note("age_unit_unknown", age_unit, f"{p}: PatientAge {age_value:g} has an unknown AgeUnits {age_unit!r} "
             "(YEARS, MONTHS, WEEKS, DAYS or HOURS expected); age not read")
    elif age is not None:
        age = age_years(age, p, "PatientAge")  # (the readers' one bound)
    meta = {
        "patient_id": xml_text(demo, "PatientID"),
        "age": age,
        "sex": sex_code(xml_text(demo, "Gender")),
        "acquired": _acquired(test),
        "device": xml_text(test, "AcquisitionDevice"),
        "statements": _statements(root, "Diagnosis"),
        "original_statements": _statements(root, "OriginalDiagnosis"),
        "waveform": want,
        "stored_leads": tuple(names),
        "leads_off": tuple(off),
        "original_units": "µV",
    }
    return make_recording(p, sig, fs, leads, meta, fmt="muse")
