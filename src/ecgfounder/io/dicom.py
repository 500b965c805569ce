"""DICOM waveform objects (12-lead ECG, general ECG, hemodynamic), read with pydicom.

The waveform is one multiplex group of the Waveform Sequence (5400,0100): by default the first
group labelled RHYTHM (else the first original, i.e. not derived, group; else the first).  pydicom
applies channel sensitivity × sensitivity correction factor + baseline; we convert each channel
from its sensitivity unit (UCUM: uV, mV) to mV.  8/16/32/64-bit signed and unsigned samples are
read (mu-law/A-law refused), big-endian 16-bit data too; samples equal to a non-zero Waveform
Padding Value (non-simultaneous channels) become NaN.  Channels in other units (mm[Hg], %) are
named in ``meta['other_channels']``, not returned.  A group read whose data a truncated file cuts
short is refused; another group cut short (the median beat after the rhythm) is not read, and
named in ``meta['incomplete_groups']`` with a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import (MAX_AGE, age_in_years, age_years, check_file, check_values, make_recording, note, parse_datetime, sex_code,
                      stated_or_birth_age, to_float, unit_scale_to_mv)
from .scp import SCP_LEAD_IDS

__all__ = ["read_dicom"]

_DTYPES = {(8, "SB"): "i1", (8, "UB"): "u1", (16, "SS"): "i2", (16, "US"): "u2", (32, "SL"): "i4",
           (32, "UL"): "u4", (64, "SV"): "i8", (64, "UV"): "u8"}
# MDC (ISO/IEEE 11073-10101: "2:N", numerically 131072 + N) and SCPECG ("5.6.3-9-N") lead codes
# share the SCP-ECG lead numbers N (DICOM CID 3001)
_CODE = re.compile(r"^(?:2:|5\.6\.3-9-)(\d+)$")


def _lead_from_source(ch) -> str:
    """A channel's lead name: from the code value of its Channel Source Sequence (MDC or SCPECG
    lead codes), else its code meaning (``'Lead I (Einthoven)'``, ``'aVR, augmented voltage,
    right'``), else its Channel Label."""
    src = ch.get("ChannelSourceSequence")
    label = ch.get("ChannelLabel")
    if src:
        value = str(src[0].get("CodeValue", "")).strip()
        m = _CODE.match(value)
        n = int(m.group(1)) if m else (int(value) - 131072 if value.isdigit() and int(value) > 131072 else None)
        if n in SCP_LEAD_IDS:
            return SCP_LEAD_IDS[n]
        meaning = str(src[0].get("CodeMeaning", "")).strip()
        if meaning:
            for pre in ("Lead ", "lead "):
                if meaning.startswith(pre):
                    meaning = meaning[len(pre):]
            return re.split(r"[(,]", meaning)[0].strip()  # "I (Einthoven)" -> "I", "aVR, augmented ..." -> "aVR"
    return str(label or "?").strip()


def _pick_group(p: Path, seq, group) -> int:
    """The multiplex group to read: ``group`` (index or label), else the one labelled RHYTHM, else
    the first original (not derived, e.g. median-beat) group, else the first."""
    labels = [str(g.get("MultiplexGroupLabel", "")).strip().upper() for g in seq]
    if group is None:
        if "RHYTHM" in labels:
            return labels.index("RHYTHM")
        origin = [str(g.get("WaveformOriginality", "")).strip().upper() for g in seq]
        return origin.index("ORIGINAL") if "ORIGINAL" in origin else 0
    if isinstance(group, str) and not group.isdigit():
        if group.strip().upper() not in labels:
            raise ValueError(f"multiplex group {group!r} not in {p}; it has {labels}.")
        return labels.index(group.strip().upper())
    idx = int(group)
    if not 0 <= idx < len(seq):
        raise ValueError(f"multiplex group {idx} not in {p}; it has {len(seq)} groups {labels}.")
    return idx


def _dtype(p: Path, g, idx: int) -> np.dtype:
    """The little-endian sample type of a group, or a refusal naming the supported ones."""
    bits = int(g.get("WaveformBitsAllocated", 16) or 16)
    interp = str(g.get("WaveformSampleInterpretation", "") or "").strip().upper()
    if (bits, interp) not in _DTYPES:
        what = "mu-law/A-law companded audio samples" if interp in ("MB", "AB") else "not a valid combination"
        raise RecordReadError(p, f"group {idx}: WaveformSampleInterpretation {interp or 'missing'!r} with "
                              f"WaveformBitsAllocated {bits} is not supported ({what}); supported: "
                              f"{', '.join(f'{i} ({b} bits)' for b, i in _DTYPES)}")
    return np.dtype("<" + _DTYPES[(bits, interp)])


def _samples(p: Path, ds, g, idx: int, n_ch: int, n_s: int, dtype: np.dtype) -> np.ndarray:
    """The group's samples in sensitivity units, ``(channels, samples)``: pydicom's decoding
    (sensitivity × correction factor + baseline), after what it does not do: big-endian 16-bit
    data swapped to the little-endian order it assumes, samples equal to a non-zero Waveform
    Padding Value set to NaN."""
    little = getattr(ds, "original_encoding", (None, True))[1] is not False
    raw = bytes(g.WaveformData[: n_ch * n_s * dtype.itemsize])
    if not little and dtype.itemsize > 1:
        if dtype.itemsize != 2:
            raise RecordReadError(p, f"group {idx}: {8 * dtype.itemsize}-bit waveform data in a big-endian transfer "
                                  "syntax are not supported (only 16-bit)")
        raw = np.frombuffer(raw, dtype=dtype.newbyteorder(">")).astype(dtype).tobytes()
        g.WaveformData = raw  # in the dataset read here, for pydicom to decode
    try:
        arr = np.asarray(ds.waveform_array(idx), dtype=np.float64).T
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordReadError(p, f"cannot decode waveform group {idx}: {msg}") from None
    pad = g.get("WaveformPaddingValue")
    if pad is not None and len(pad) >= dtype.itemsize:
        value = np.frombuffer(bytes(pad[: dtype.itemsize]), dtype=dtype if little else dtype.newbyteorder(">"))[0]
        if value != 0:  # 0 is also an ordinary sample value (writers set it without padding anything)
            hit = np.frombuffer(raw, dtype=dtype).reshape(n_s, n_ch).T == value
            if hit.any():
                arr[hit] = np.nan
                note("padding_samples", int(hit.sum()))
    return arr


def _note_incomplete_groups(p: Path, seq, idx: int, labels: list[str]) -> None:
    """Note (``meta['incomplete_groups']``, with a warning) the groups other than the one read whose
    channel definitions or waveform data a truncated file cut short: they are not read (the group
    read is refused when it is cut short, :func:`read_dicom`)."""
    cut = []
    for k, g in enumerate(seq):
        if k == idx:
            continue
        n_ch, n_s = int(g.get("NumberOfWaveformChannels", 0) or 0), int(g.get("NumberOfWaveformSamples", 0) or 0)
        bits = int(g.get("WaveformBitsAllocated", 16) or 16)
        data, chans = g.get("WaveformData"), g.get("ChannelDefinitionSequence") or []
        need = max(n_ch, 0) * max(n_s, 0) * max(bits // 8, 1)
        if data is None or len(data) < need or len(chans) < n_ch:
            have = 0 if data is None else len(data)
            cut.append((labels[k] or str(k), f"waveform group {k} ({labels[k] or 'unlabelled'}; {have} of {need} bytes "
                        f"of waveform data, {len(chans)} of {n_ch} channel definitions)"))
    if cut:
        note("incomplete_groups", tuple(name for name, _ in cut),
             f"{p}: truncated file: it ends inside {', '.join(why for _, why in cut)}, which is not read; "
             f"group {idx} ({labels[idx] or 'unlabelled'}) is whole and read")


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
    idx = _pick_group(p, seq, group)
    g = seq[idx]
    n_ch = int(g.get("NumberOfWaveformChannels", 0) or 0)
    n_s = int(g.get("NumberOfWaveformSamples", 0) or 0)
    dtype = _dtype(p, g, idx)
    need = max(n_ch, 0) * max(n_s, 0) * dtype.itemsize
    if need > size:  # first: a count beyond the data is a corrupt count, whatever its size
        raise RecordReadError(p, f"group {idx} declares {n_ch}×{n_s} samples ({need} bytes) but the file has {size} "
                              "bytes (truncated, or a corrupt count)")
    data = g.get("WaveformData")
    if data is None or len(data) < need:
        have = 0 if data is None else len(data)
        raise RecordReadError(p, f"group {idx} holds {have} bytes of waveform data, {need} declared (truncated)")
    check_values(p, n_ch, n_s, f"multiplex group {idx}", partial=False)
    _note_incomplete_groups(p, seq, idx, labels)
    fs = to_float(g.get("SamplingFrequency"))
    if not fs or fs <= 0:
        raise RecordReadError(p, f"group {idx} has no valid SamplingFrequency")
    chans = list(g.get("ChannelDefinitionSequence") or [])
    if len(chans) != n_ch:
        raise RecordReadError(p, f"group {idx}: {len(chans)} channel definitions for {n_ch} channels")
    arr = _samples(p, ds, g, idx, n_ch, n_s, dtype)
    names, units, keep, other = [], [], [], []
    for k, ch in enumerate(chans):
        name = _lead_from_source(ch)
        unit_seq = ch.get("ChannelSensitivityUnitsSequence")
        unit = str(unit_seq[0].get("CodeValue", "")).strip() if unit_seq else ""
        sens, corr = to_float(ch.get("ChannelSensitivity")), to_float(ch.get("ChannelSensitivityCorrectionFactor", 1))
        if sens is None:
            raise RecordReadError(p, f"channel {name} has no ChannelSensitivity; amplitude unit unknown")
        if sens == 0 or corr == 0:
            raise RecordReadError(p, f"channel {name}: ChannelSensitivity {sens:g} × correction factor {corr:g} is 0 "
                                  "(no amplitude scale)")
        if not unit:
            note("dicom_units_assumed", "uV", f"{p}: channel(s) without ChannelSensitivityUnitsSequence; their "
                 "sensitivity is read as µV (the ECG convention)")
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
    birth = parse_datetime(str(ds.get("PatientBirthDate", "") or ""))
    on = acquired or parse_datetime(str(ds.get("StudyDate", "") or ""))
    age = stated_or_birth_age(p, _patient_age(p, str(ds.get("PatientAge", "") or "")), birth, on, "PatientAge")
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
        "sex": sex_code(str(ds.get("PatientSex", "") or "")),
        "age": age,
        "birth_date": birth,
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


_AS_UNITS = {"D": "d", "W": "wk", "M": "mo", "Y": "a", "": "a"}


def _patient_age(p: Path, text: str) -> float | None:
    """PatientAge (DICOM AS: ``nnnD``, ``nnnW``, ``nnnM``, ``nnnY``; a bare number read as years) in
    years, by the readers' rule (:func:`~ecgfounder.io._common.age_years`): ``'069'`` was read as 6."""
    text = text.strip()
    m = re.fullmatch(r"(\d{1,3})\s*([DWMY]?)", text, flags=re.I)
    years = age_in_years(float(m.group(1)), _AS_UNITS[m.group(2).upper()]) if m else None
    if years is not None and 0 <= years <= MAX_AGE:
        return years
    return age_years(text or None, p, "PatientAge")
