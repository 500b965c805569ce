"""DICOM waveform objects (12-lead ECG, general ECG, hemodynamic), read with pydicom.

The waveform is one multiplex group of the Waveform Sequence (5400,0100): by default the first
group labelled RHYTHM (else the first group).  pydicom applies channel sensitivity, sensitivity
correction factor and baseline; we convert each channel from its sensitivity unit (UCUM: uV, mV)
to mV.  Channels in other units (mm[Hg], %) are named in ``meta['other_channels']``, not returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import check_file, check_values, make_recording, parse_datetime, to_float, unit_scale_to_mv

__all__ = ["read_dicom"]

_BYTES = {8: 1, 16: 2, 32: 4, 64: 8}


def _lead_from_source(ch) -> str:
    src = ch.get("ChannelSourceSequence")
    label = ch.get("ChannelLabel")
    if src:
        meaning = str(src[0].get("CodeMeaning", "")).strip()
        if meaning:
            m = meaning
            for pre in ("Lead ", "lead "):
                if m.startswith(pre):
                    m = m[len(pre):]
            m = m.split("(")[0].strip()  # "Lead I (Einthoven)" -> "I"
            m = {"-aVR": "-aVR"}.get(m, m)
            return m
    return str(label or "?").strip()


def read_dicom(path: str | Path, *, group: int | str | None = None, **_: object) -> Recording:
    """Read a DICOM waveform file.

    Args:
        path: the ``.dcm`` file.
        group: multiplex group index or label (``"RHYTHM"``, ``"MEDIAN BEAT"``); default RHYTHM.

    Returns a :class:`Recording` with the channels of the group in mV.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    size = check_file(p, min_bytes=132)
    try:
        ds = pydicom.dcmread(str(p), force=False)
    except InvalidDicomError:
        raise RecordReadError(p, "not a DICOM file (no 'DICM' preamble)") from None
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordReadError(p, f"corrupt DICOM file: {msg}") from None
    try:
        seq = ds.get("WaveformSequence")
    except Exception as exc:
        raise RecordReadError(p, f"corrupt DICOM waveform sequence: {exc}") from None
    if not seq:
        sop = ds.get("SOPClassUID", "?")
        name = getattr(sop, "name", str(sop))
        raise RecordReadError(p, f"DICOM file has no waveform (SOP class {name}); it is not an ECG waveform object")
    labels = [str(g.get("MultiplexGroupLabel", "")).strip().upper() for g in seq]
    if group is None:
        idx = labels.index("RHYTHM") if "RHYTHM" in labels else 0
    elif isinstance(group, str) and not group.isdigit():
        if group.strip().upper() not in labels:
            raise ValueError(f"multiplex group {group!r} not in {p}; it has {labels}.")
        idx = labels.index(group.strip().upper())
    else:
        idx = int(group)
        if not 0 <= idx < len(seq):
            raise ValueError(f"multiplex group {idx} not in {p}; it has {len(seq)} groups {labels}.")
    g = seq[idx]
    n_ch = int(g.get("NumberOfWaveformChannels", 0) or 0)
    n_s = int(g.get("NumberOfWaveformSamples", 0) or 0)
    bits = int(g.get("WaveformBitsAllocated", 16) or 16)
    check_values(p, n_ch, n_s, f"multiplex group {idx}")
    if bits not in _BYTES:
        raise RecordReadError(p, f"unsupported WaveformBitsAllocated {bits}")
    need = n_ch * n_s * _BYTES[bits]
    if need > size:
        raise RecordReadError(
            p, f"group {idx} declares {n_ch}×{n_s} samples ({need} bytes) but the file has {size} bytes (truncated?)"
        )
    data = g.get("WaveformData")
    if data is None or len(data) < need:
        have = 0 if data is None else len(data)
        raise RecordReadError(p, f"group {idx} holds {have} bytes of waveform data, {need} declared (truncated)")
    fs = to_float(g.get("SamplingFrequency"))
    if not fs or fs <= 0:
        raise RecordReadError(p, f"group {idx} has no valid SamplingFrequency")
    chans = list(g.get("ChannelDefinitionSequence") or [])
    if len(chans) != n_ch:
        raise RecordReadError(p, f"group {idx}: {len(chans)} channel definitions for {n_ch} channels")
    try:
        arr = np.asarray(ds.waveform_array(idx), dtype=np.float64).T  # (channels, samples), sensitivity units
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordReadError(p, f"cannot decode waveform group {idx}: {msg}") from None
    names, units, keep, other = [], [], [], []
    for k, ch in enumerate(chans):
        name = _lead_from_source(ch)
        unit_seq = ch.get("ChannelSensitivityUnitsSequence")
        unit = str(unit_seq[0].get("CodeValue", "")).strip() if unit_seq else ""
        if "ChannelSensitivity" not in ch:
            raise RecordReadError(p, f"channel {name} has no ChannelSensitivity; amplitude unit unknown")
        scale = unit_scale_to_mv(unit or "uV")
        if scale is None:  # pressure (mm[Hg]), SpO2 (%), respiration: named in meta, not a lead
            other.append(f"{name} ({unit})")
            continue
        arr[k] *= scale
        names.append(name)
        units.append(unit or "uV")
        keep.append(k)
    if not keep:
        raise RecordReadError(p, f"no voltage channel in group {idx} (it holds {', '.join(other)})")
    arr = arr[keep]
    sop = ds.get("SOPClassUID")
    acquired = parse_datetime(str(ds.get("AcquisitionDateTime", "") or "")) or parse_datetime(
        str(ds.get("ContentDate", "") or "") + str(ds.get("ContentTime", "") or "")
    )
    age_s = str(ds.get("PatientAge", "") or "").strip()
    age = None
    if age_s[:-1].isdigit():
        age = float(age_s[:-1]) / {"Y": 1, "M": 12, "W": 52.18, "D": 365.25}.get(age_s[-1:].upper(), 1)
    statements = []
    for ann in ds.get("WaveformAnnotationSequence") or []:
        txt = str(ann.get("UnformattedTextValue", "") or "").strip()
        if txt:
            statements.append(txt)
    device = " ".join(
        str(x).strip() for x in (ds.get("Manufacturer"), ds.get("ManufacturerModelName")) if x and str(x).strip()
    )
    meta = {
        "patient_id": str(ds.get("PatientID", "") or "").strip() or None,
        "patient_name": str(ds.get("PatientName", "") or "").strip() or None,
        "sex": {"M": "M", "F": "F"}.get(str(ds.get("PatientSex", "") or "").strip().upper()),
        "age": age,
        "birth_date": parse_datetime(str(ds.get("PatientBirthDate", "") or "")),
        "acquired": acquired,
        "device": device or None,
        "institution": str(ds.get("InstitutionName", "") or "").strip() or None,
        "statements": tuple(statements),
        "sop_class": getattr(sop, "name", str(sop)) if sop else None,
        "multiplex_group": labels[idx] or str(idx),
        "original_units": ",".join(sorted(set(units))),
        "other_channels": tuple(other),
    }
    return make_recording(p, arr, fs, names, meta, fmt="dicom")
