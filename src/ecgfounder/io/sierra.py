"""Philips Sierra ECG XML (SierraECG 1.03, PhilipsECG 1.04/1.04.01/1.04.02).

The XML is parsed with defusedxml (UTF-8 or UTF-16 with BOM).  ``parsedwaveforms`` are either
uncompressed int16 or XLI-compressed (Philips' LZW + delta scheme); XLI is decoded with
``sierraecg.xli.xli_decode`` from the maintained reference implementation (``pip install
sierraecg``).  In XLI files, III, aVR, aVL and aVF are stored as residuals of the values derived
from I and II, and are reconstructed here.  The amplitude resolution (µV per count) is
``resolution``/``signalresolution``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import (b64decode_strict, check_values, make_recording, parse_xml, sex_code, stated_or_birth_age, to_float,
                      xml_text)

__all__ = ["read_sierra"]

_STD = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


# XLI is decoded byte by byte in Python (~2 µs a sample): Philips strips are 10-11 s of 12-16
# leads (< 200,000 values); this bound keeps a hostile header's decoding time to seconds.
_MAX_XLI_VALUES = 2_000_000


def _xli(p: Path, raw: bytes, n_leads: int, n_samples: int) -> np.ndarray:
    try:
        from sierraecg.lzw import LzwDecoder
        from sierraecg.xli import xli_decode_deltas
    except ImportError:
        raise RecordReadError(
            p, "XLI-compressed Philips waveforms need the 'sierraecg' package: pip install sierraecg"
        ) from None
    if n_leads * n_samples > _MAX_XLI_VALUES:
        raise RecordReadError(p, f"parsedwaveforms declares {n_leads} leads × {n_samples} samples of XLI data, above "
                              f"the limit of {_MAX_XLI_VALUES} values for XLI-compressed Philips strips")
    # bound the work before decoding: each chunk header declares its compressed size
    off, chunks, spans = 0, 0, []
    while off < len(raw):
        if off + 8 > len(raw):
            raise RecordReadError(p, "XLI data truncated inside a chunk header")
        size = int.from_bytes(raw[off:off + 4], "little", signed=True)
        if size < 0 or off + 8 + size > len(raw):
            raise RecordReadError(p, f"XLI chunk {chunks} declares {size} bytes beyond the end of the data (truncated)")
        spans.append((off, size))
        off += 8 + size
        chunks += 1
    if chunks < n_leads:
        raise RecordReadError(p, f"XLI data holds {chunks} lead chunks, {n_leads} declared")
    # sierraecg.xli.xli_decode, but only for the declared leads (extra chunks are not decoded) and
    # with each chunk's output bounded (10-bit LZW expands up to ~600×: a few KB could decode to GB)
    cap = 4 * n_samples + 64
    out = np.zeros((n_leads, n_samples), dtype=np.int64)
    for k in range(n_leads):
        off, size = spans[k]
        start = int.from_bytes(raw[off + 6:off + 8], "little", signed=True)
        try:
            decoder = LzwDecoder(raw[off + 8:off + 8 + size], bits=10)
            buffer: list[int] = []
            while -1 != (b := decoder.read()):
                buffer.append(b & 0xFF)
                if len(buffer) > cap:
                    raise RecordReadError(p, f"XLI lead {k} decodes to more than {cap // 2} samples, "
                                          f"{n_samples} declared (corrupt data)")
            if len(buffer) % 2 == 1:
                buffer.append(0)
            x = np.asarray(xli_decode_deltas(buffer, start) if buffer else [], dtype=np.int64)[:n_samples]
        except RecordReadError:
            raise
        except Exception as exc:
            raise RecordReadError(p, f"corrupt XLI data: {str(exc).strip() or type(exc).__name__}") from None
        if x.size < n_samples:
            raise RecordReadError(p, f"XLI lead {k} decodes to {x.size} samples, {n_samples} declared (truncated)")
        out[k] = x
    return out


def _reconstruct(sig: np.ndarray, labels: list[str]) -> np.ndarray:
    """Undo Philips' storage of III, aVR, aVL, aVF as residuals (XLI files only)."""
    idx = {n: k for k, n in enumerate(labels)}
    if not all(n in idx for n in ("I", "II", "III", "aVR", "aVL", "aVF")):
        return sig
    s = sig.copy()
    i, ii = s[idx["I"]], s[idx["II"]]
    s[idx["III"]] = ii - i - s[idx["III"]]
    iii = s[idx["III"]]
    s[idx["aVR"]] = -s[idx["aVR"]] - np.floor_divide(i + ii, 2)
    s[idx["aVL"]] = np.floor_divide(i - iii, 2) - s[idx["aVL"]]
    s[idx["aVF"]] = np.floor_divide(ii + iii, 2) - s[idx["aVF"]]
    return s


def _counts(p: Path, pw, sc, n_leads: int, n_samples: int, labels: list[str]) -> np.ndarray:
    """The stored counts, ``(leads, samples)``: Base64 int16 (XLI-compressed or not) or ``Plain``
    text integers (what sierra-ecg-tools writes when it decompresses a file: ``compressflag="False"``
    with ``compressmethod="XLI"`` kept).  Leads are stored one after the other; only XLI data hold
    III, aVR, aVL, aVF as residuals.  A signal offset, unsigned samples or other than 16 bits per
    sample are refused (no file we know uses them, and their meaning is not documented)."""
    def attr(name: str) -> str | None:
        return pw.get(name) or xml_text(sc, name)

    offset, signed, bits = to_float(attr("signaloffset")) or 0, (attr("signalsigned") or "True"), attr("bitspersample")
    if offset or signed.strip().lower() != "true" or (bits or "16").strip() != "16":
        raise RecordReadError(p, f"signal offset {offset:g}, signed {signed}, {bits} bits per sample: only offset 0, "
                              "signed 16-bit Philips samples are supported")
    encoding = pw.get("dataencoding", "Base64")
    method = pw.get("compressmethod") or pw.get("compression") or "Uncompressed"
    if pw.get("compressflag", "True").strip().lower() == "false":
        method = "Uncompressed"
    if encoding == "Plain":
        if method.upper() == "XLI":
            raise RecordReadError(p, "XLI compression declared for Plain (text) waveform data; expected Base64")
        vals = (pw.text or "").split()
        if len(vals) < n_leads * n_samples:
            raise RecordReadError(p, f"{len(vals)} waveform values, {n_leads * n_samples} declared (truncated)")
        try:
            return np.asarray(vals[: n_leads * n_samples], dtype=np.int64).reshape(n_leads, n_samples)
        except ValueError:
            raise RecordReadError(p, "Plain waveform data hold a value that is not an integer") from None
    if encoding != "Base64":
        raise RecordReadError(p, f"waveform encoding {encoding!r} is not supported (Base64 or Plain)")
    raw = b64decode_strict(p, pw.text, "parsedwaveforms")
    if method.upper() == "XLI":
        return _reconstruct(_xli(p, raw, n_leads, n_samples), labels)
    if method.lower() not in ("uncompressed", "none", ""):
        raise RecordReadError(p, f"waveform compression {method!r} is not supported (XLI or uncompressed)")
    need = 2 * n_leads * n_samples
    if len(raw) < need:
        raise RecordReadError(p, f"{len(raw)} bytes of waveform data, {need} declared (truncated)")
    return np.frombuffer(raw[:need], dtype="<i2").reshape(n_leads, n_samples).astype(np.int64)


def _trailing_calibration(sig: np.ndarray, fs: float) -> tuple[int, int] | None:
    """(cut, pulse_start) if the strip ends with the 1-mV calibration pulse Philips appends, else None."""
    cal = np.all(np.abs(sig - 1.0) < 1e-9, axis=0)
    if not cal.any():
        return None
    last = int(np.nonzero(cal)[0][-1])
    start = last
    while start > 0 and cal[start - 1]:
        start -= 1
    if last - start + 1 < int(0.1 * fs) or np.any(sig[:, last + 1:] != 0):
        return None
    cut = start
    zero = np.all(sig == 0, axis=0)
    while cut > 0 and zero[cut - 1]:
        cut -= 1
    return cut, start


def read_sierra(path: str | Path, *, trim_calibration: bool = True, **_: Any) -> Recording:
    """Read a Philips Sierra/PhilipsECG XML file; 12 leads in mV.

    Philips strips (11 s) end with a 1-mV, 200-ms calibration pulse in every lead after the ECG;
    with ``trim_calibration`` (default) the signal is cut before it (and the blank gap preceding
    it), and ``meta['calibration_pulse_s']`` gives where it started.
    """
    p = Path(path)
    root = parse_xml(p)
    if root.tag != "restingecgdata":
        raise RecordReadError(p, f"not a Philips Sierra XML file (root <{root.tag}>, expected <restingecgdata>)")
    doc_type = xml_text(root, "documentinfo/documenttype") or "?"
    doc_ver = xml_text(root, "documentinfo/documentversion") or "?"
    if doc_type not in ("SierraECG", "PhilipsECG") or not re.match(r"^1\.0[34]", doc_ver):
        raise RecordReadError(p, f"unsupported Philips XML {doc_type} {doc_ver}; supported: SierraECG 1.03, PhilipsECG 1.04.x")
    sc = root.find("dataacquisition/signalcharacteristics")
    pw = root.find("waveforms/parsedwaveforms")
    if sc is None or pw is None:
        raise RecordReadError(p, "no <signalcharacteristics> or <parsedwaveforms> element")
    fs = to_float(pw.get("samplespersecond")) or to_float(xml_text(sc, "samplingrate"))
    res = to_float(pw.get("resolution")) or to_float(xml_text(sc, "resolution")) or to_float(xml_text(sc, "signalresolution"))
    dur_ms = to_float(pw.get("durationperchannel"))
    if not fs or not res or not dur_ms:
        raise RecordReadError(p, f"missing sampling rate ({fs}), resolution ({res}) or duration ({dur_ms})")
    n_samples = int(round(dur_ms * fs / 1000.0))
    labels_attr = pw.get("leadlabels")
    if labels_attr:
        n_leads = int(to_float(pw.get("numberofleads")) or len(labels_attr.split()))
        check_values(p, n_leads, n_samples, "parsedwaveforms", partial=False)
        labels = labels_attr.split()[:n_leads]
    else:
        n_leads = int(to_float(xml_text(sc, "numberchannelsallocated")) or 12)
        check_values(p, n_leads, n_samples, "parsedwaveforms", partial=False)
        acq = xml_text(sc, "acquisitiontype") or ""
        if acq in ("STD-12", "10-WIRE") and n_leads <= 12:
            labels = list(_STD[:n_leads])
        else:
            labels = [f"Channel {k + 1}" for k in range(n_leads)]
    check_values(p, n_leads, n_samples, "parsedwaveforms", partial=False)
    counts = _counts(p, pw, sc, n_leads, n_samples, labels)
    sig = counts.astype(np.float64) * res * 1e-3
    cal = _trailing_calibration(sig, fs)
    cal_s = None
    if cal is not None:
        cal_s = cal[1] / fs
        if trim_calibration:
            sig = sig[:, : cal[0]]
    pat = root.find("patient/generalpatientdata")
    age = to_float(xml_text(pat, "age/years"))
    da = root.find("dataacquisition")
    date, time = (da.get("date") if da is not None else None), (da.get("time") if da is not None else None)
    acquired = f"{date}T{time}" if date and time else date
    machine = da.find("machine") if da is not None else None
    device = " ".join((machine.text or "").split()) if machine is not None and machine.text else None
    statements = []
    for st in root.iter("statement"):
        left = xml_text(st, "leftstatement")
        right = xml_text(st, "rightstatement")
        txt = " ".join(x for x in (left, right) if x)
        if txt:
            statements.append(txt)
    age = stated_or_birth_age(p, age, xml_text(pat, "age/dateofbirth"), acquired, "stated age")
    meta = {
        "patient_id": xml_text(pat, "patientid"),
        "age": age,
        "birth_date": xml_text(pat, "age/dateofbirth"),
        "sex": sex_code(xml_text(pat, "sex")),
        "acquired": acquired,
        "device": device,
        "statements": tuple(statements),
        "document": f"{doc_type} {doc_ver}",
        "original_units": f"{res:g} µV/count",
        "calibration_pulse_s": cal_s,
        "calibration_trimmed": bool(cal is not None and trim_calibration),
    }
    return make_recording(p, sig, fs, labels, meta, fmt="sierra")
