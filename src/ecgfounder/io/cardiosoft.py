"""GE CardioSoft XML (``<CardiologyXML>``): the resting and exercise ECG export of GE CardioSoft /
CASE, the format of UK Biobank's resting (field 20205) and exercise (field 6025) ECGs.

Written from the public descriptions of the format (GE's CardioSoft manual and the open readers
that parse UK Biobank files); no participant file was used.  Layout read here:

* ``StripData`` (resting: 10 s of 12 leads; exercise: a strip of 3 leads) holds ``SampleRate``
  (Hz), ``Resolution`` (``units="uVperLsb"``) and one ``WaveformData lead="..."`` per lead with
  comma-separated integer counts.  Exercise files may nest it as ``Strip/StripData`` (several
  strips: the first is read unless ``strip=`` says otherwise).
* ``FullDisclosure`` (exercise) holds the whole test: ``SampleRate``, ``Resolution``,
  ``LeadOrder`` (e.g. ``I,2,3``) and ``FullDisclosureData``: the leads' counts interleaved,
  comma-separated.  Read with ``waveform="full"``.
* ``RestingECGMeasurements/MedianSamples`` holds the median beat: ``waveform="median"``.
* ``PatientInfo`` (``PID``, ``Age``, ``Gender``), ``ObservationDateTime``, ``ObservationType``,
  ``Interpretation`` (``Diagnosis/DiagnosisText``, ``Conclusion/ConclusionText``) go to ``meta``.

Lead names such as ``2`` and ``3`` (exercise files) are canonicalised (``II``, ``III``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import age_years, check_values, make_recording, parse_xml, sex_code, to_float, unit_scale_to_mv, xml_text

__all__ = ["read_cardiosoft"]

_WAVEFORMS = ("strip", "median", "full")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _counts(p: Path, text: str | None, what: str) -> np.ndarray:
    if not text:
        raise RecordReadError(p, f"{what}: no samples")
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    try:
        return np.asarray(items, dtype=np.float64)
    except ValueError:
        bad = next((t for t in items if not _NUMBER.fullmatch(t)), "?")
        raise RecordReadError(p, f"{what}: {bad[:20]!r} is not a sample value") from None


def _scale_mv(p: Path, block) -> float:
    res_el = block.find("Resolution")
    res = to_float(res_el.text if res_el is not None else None)
    if res is None or res <= 0:
        raise RecordReadError(p, "CardioSoft block has no valid Resolution (amplitude per count)")
    unit = (res_el.get("units") or "uVperLsb").strip()
    base = unit_scale_to_mv(re.sub(r"(?i)per\s*lsb$", "", unit))
    if base is None:
        raise RecordReadError(p, f"unknown Resolution unit {unit!r} (expected uVperLsb)")
    return res * base


def _rate(p: Path, block) -> float:
    fs = to_float(xml_text(block, "SampleRate"))
    if fs is None or fs <= 0:
        raise RecordReadError(p, "CardioSoft block has no valid SampleRate")
    return fs


def _per_lead(p: Path, block) -> tuple[np.ndarray, list[str]]:
    names, rows = [], []
    for wd in block.findall("WaveformData"):
        name = (wd.get("lead") or f"lead{len(names) + 1}").strip()
        rows.append(_counts(p, wd.text, f"lead {name}"))
        names.append(name)
    if not rows:
        raise RecordReadError(p, "CardioSoft block holds no WaveformData")
    n = min(len(r) for r in rows)
    if any(len(r) != n for r in rows):
        raise RecordReadError(p, f"leads have different lengths {[len(r) for r in rows]}")
    check_values(p, len(rows), n, "CardioSoft block")
    return np.stack(rows), names


def _interleaved(p: Path, block) -> tuple[np.ndarray, list[str]]:
    order = xml_text(block, "LeadOrder")
    n_ch = int(to_float(xml_text(block, "NumberOfChannels")) or 0)
    names = [s.strip() for s in order.split(",")] if order else [f"lead{k + 1}" for k in range(n_ch)]
    if not names or (n_ch and n_ch != len(names)):
        raise RecordReadError(p, f"FullDisclosure: LeadOrder {order!r} does not match NumberOfChannels {n_ch}")
    data = _counts(p, xml_text(block, "FullDisclosureData"), "FullDisclosureData")
    n = data.size // len(names)
    check_values(p, len(names), n, "FullDisclosure")
    return data[: n * len(names)].reshape(n, len(names)).T, names


def _block(p: Path, root, waveform: str, strip: int):
    if waveform == "median":
        blk = root.find("RestingECGMeasurements/MedianSamples")
    elif waveform == "full":
        blk = root.find("FullDisclosure")
    else:
        blk = root.find("StripData")
        if blk is None:
            strips = root.findall("Strip/StripData")
            if strips:
                if not 0 <= strip < len(strips):
                    raise RecordReadError(p, f"strip={strip} but the file holds {len(strips)} strips (0..{len(strips) - 1})")
                blk = strips[strip]
    if blk is None:
        found = [w for w, tag in zip(_WAVEFORMS, ("StripData", "RestingECGMeasurements/MedianSamples", "FullDisclosure"))
                 if root.find(tag) is not None or (w == "strip" and root.find("Strip/StripData") is not None)]
        raise RecordReadError(p, f"no {waveform} waveform in the CardioSoft file (found: {found or 'none'})")
    return blk


def _meta(root, waveform: str, names: list[str]) -> dict:
    info = root.find("PatientInfo")
    when = root.find("ObservationDateTime")
    acquired = None
    if when is not None:
        parts = [int(to_float(xml_text(when, k)) or 0) for k in ("Year", "Month", "Day", "Hour", "Minute", "Second")]
        if parts[0]:
            acquired = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*parts)
    statements = tuple(
        (el.text or "").strip() for el in root.iter() if el.tag in ("DiagnosisText", "ConclusionText") and (el.text or "").strip()
    )
    return {
        "patient_id": xml_text(info, "PID"),
        "age": age_years(xml_text(info, "Age"), None, "PatientInfo Age"),
        "sex": sex_code(xml_text(info, "Gender")),
        "acquired": acquired,
        "device": "GE CardioSoft",
        "observation": xml_text(root, "ObservationType"),
        "statements": statements,
        "waveform": waveform,
        "stored_leads": tuple(names),
        "original_units": "µV",
    }


def read_cardiosoft(path: str | Path, *, waveform: str = "strip", strip: int = 0, **_: object) -> Recording:
    """Read a GE CardioSoft XML file (``<CardiologyXML>``).

    Args:
        path: the ``.xml`` file.
        waveform: ``"strip"`` (default: the 10-s resting strip or the exercise strip), ``"median"``
            (the median beat) or ``"full"`` (an exercise test's full disclosure).
        strip: which ``Strip`` of an exercise file (0-based) when it holds several.
    """
    p = Path(path)
    want = str(waveform).strip().lower()
    if want not in _WAVEFORMS:
        raise ValueError(f"waveform={waveform!r}; choose one of {', '.join(_WAVEFORMS)}.")
    root = parse_xml(p)
    if root.tag != "CardiologyXML":
        raise RecordReadError(p, f"not a GE CardioSoft XML file (root element <{root.tag}>, expected <CardiologyXML>)")
    blk = _block(p, root, want, int(strip))
    counts, names = _interleaved(p, blk) if want == "full" else _per_lead(p, blk)
    sig, leads = counts * _scale_mv(p, blk), names  # III, aVR, aVL, aVF: derived by io/policy.py
    return make_recording(p, sig, _rate(p, blk), leads, _meta(root, want, names), fmt="cardiosoft")
