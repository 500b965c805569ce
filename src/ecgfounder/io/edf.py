"""EDF, EDF+ and BDF files, read and written with pyedflib.

Channels whose physical dimension is a voltage (or whose label is an ECG lead name) are read, at
the sampling rate shared by most of them; channels of other units (SpO2, temperature, pressure,
accelerometers) are named with their units in ``meta['other_channels']`` (``"SpO2 (%)"``, the same
policy as WFDB), voltage channels at another rate in ``meta['skipped_channels']``.  Amplitudes are
converted to mV.  EDF+ annotations at the start of the record are read as ``statements``.
A header byte outside ASCII (e.g. ``µ`` in a unit), which pyedflib refuses, is replaced on a
private copy (``meta['header_repaired']``).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import STANDARD_12, canonical_lead
from ._common import check_file, make_recording, note, unit_scale_to_mv
from .limits import check_values, samples_to_read

__all__ = ["read_edf", "write_edf"]

_KNOWN = set(STANDARD_12)


def _label_to_lead(label: str) -> str:
    s = label.strip()
    s = re.sub(r"^(ECG|EKG)[\s_-]*", "", s, flags=re.I).strip()
    s = re.sub(r"[\s_-]*(ECG|EKG)$", "", s, flags=re.I).strip()
    if s.isdigit():  # 'ECG1', 'ECG 2': a channel number (PSG, Holter), not limb lead I or II
        return label.strip()
    return canonical_lead(s) if s else label.strip()


# EDF signal header fields (name, width), in file order, each repeated once per signal
_SIG_FIELDS = (("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8), ("physical_max", 8),
               ("digital_min", 8), ("digital_max", 8), ("prefilter", 80), ("samples", 8), ("reserved", 32))


def _ascii_field(raw: bytes) -> bytes:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("µ", "u").replace("μ", "u").replace("°", "deg")
    out = "".join(c if 32 <= ord(c) < 127 else "?" for c in text).encode("ascii")
    return out[: len(raw)].ljust(len(raw))


def _repaired_copy(p: Path, n_sig: int) -> Path | None:
    """A private copy of ``p`` whose header bytes outside ASCII are replaced field by field
    (``µV`` → ``uV``, others → ``?``), or ``None`` if the header is already ASCII."""
    with open(p, "rb") as fh:
        head = bytearray(fh.read(256 * (n_sig + 1)))
    if all(32 <= b < 127 for b in head[1:]):  # byte 0 is 0xFF in BDF
        return None
    fixed = bytearray(head[:1] + _ascii_field(bytes(head[1:256])))
    off = 256
    for _name, width in _SIG_FIELDS:
        for _ in range(n_sig):
            fixed += _ascii_field(bytes(head[off:off + width]))
            off += width
    fd, tmp = tempfile.mkstemp(suffix=p.suffix or ".edf", prefix="ecgfounder-")
    with os.fdopen(fd, "wb") as out, open(p, "rb") as src:
        out.write(bytes(fixed))
        src.seek(len(fixed))
        shutil.copyfileobj(src, out, 1 << 20)
    return Path(tmp)


def _check_header(p: Path, size: int, max_duration: float | None = None) -> int:
    """Check the fixed EDF/BDF header against the file size before pyedflib allocates anything."""
    with open(p, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise RecordReadError(p, f"file is {size} bytes, shorter than the 256-byte EDF header (truncated)")
        bdf = head[:1] == b"\xff" and head[1:8] == b"BIOSEMI"
        if not bdf and head[:8].strip() != b"0":
            raise RecordReadError(p, "not an EDF/BDF file (bad version field in the header)")
        try:
            n_sig = int(head[252:256].decode("ascii").strip())
            n_rec = int(head[236:244].decode("ascii").strip())
            hdr_bytes = int(head[184:192].decode("ascii").strip())
        except ValueError:
            raise RecordReadError(p, "corrupt EDF header (non-numeric size fields)") from None
        if n_sig <= 0 or n_sig > 4096:
            raise RecordReadError(p, f"EDF header declares {n_sig} signals")
        if hdr_bytes != 256 * (n_sig + 1):
            raise RecordReadError(p, f"EDF header size {hdr_bytes} does not match {n_sig} signals")
        sig_hdr = fh.read(256 * n_sig)
        if len(sig_hdr) < 256 * n_sig:
            raise RecordReadError(p, "EDF signal headers are truncated")
    off = 216 * n_sig  # samples-per-record block starts after label..prefilter fields
    try:
        spr = [int(sig_hdr[off + 8 * k: off + 8 * k + 8].decode("ascii").strip()) for k in range(n_sig)]
    except ValueError:
        raise RecordReadError(p, "corrupt EDF header (non-numeric samples per record)") from None
    width = 3 if bdf else 2
    if n_rec < 0:  # -1: unknown (still recording); pyedflib derives it from the size
        n_rec = (size - hdr_bytes) // max(1, sum(spr) * width)
    need = hdr_bytes + n_rec * sum(spr) * width
    try:
        rec_dur = float(head[244:252].decode("ascii").strip() or "1")
    except ValueError:
        raise RecordReadError(p, "corrupt EDF header (non-numeric data record duration)") from None
    if not 0 < rec_dur < 1e6 or any(x < 0 for x in spr):
        raise RecordReadError(p, f"EDF header declares a data record of {rec_dur!r} s and {spr[:4]} samples")
    fs_max = max(spr) / rec_dur if rec_dur > 0 else None
    check_values(p, n_sig, max(spr) * max(n_rec, 0), "EDF header", max_duration=max_duration, fs=fs_max)
    if need > size:
        raise RecordReadError(
            p, f"EDF header declares {n_rec} records × {sum(spr)} samples ({need} bytes) but the file has {size} bytes (truncated)"
        )
    return n_sig


def read_edf(path: str | Path, *, channels: list[str] | None = None, max_duration: float | None = None,
             **_: Any) -> Recording:
    """Read an EDF/EDF+/BDF file; voltage channels in mV (leads × samples); with ``max_duration``
    only the first ``max_duration`` seconds are read."""
    p = Path(path)
    size = check_file(p, min_bytes=256)
    n_sig = _check_header(p, size, max_duration)
    repaired = _repaired_copy(p, n_sig)
    try:
        return _read(p, repaired or p, channels, max_duration, repaired is not None)
    finally:
        if repaired is not None:
            repaired.unlink(missing_ok=True)


def _read(p: Path, src: Path, channels, max_duration, repaired: bool) -> Recording:
    import pyedflib

    try:
        f = pyedflib.EdfReader(str(src))
    except OSError as exc:
        msg = str(exc).strip().splitlines()[0].replace(str(src), "").strip(": ")
        raise RecordReadError(p, f"cannot read EDF: {msg}") from None
    if repaired:
        note("header_repaired", "non-ASCII header bytes replaced",
             f"{p}: EDF header holds bytes outside ASCII (not EDF-conformant); replaced to read the file")
    try:
        labels = [s.strip() for s in f.getSignalLabels()]
        rates = [float(f.getSampleFrequency(k)) for k in range(len(labels))]
        dims = [f.getPhysicalDimension(k).strip() for k in range(len(labels))]
        wanted = None if channels is None else {canonical_lead(c) for c in channels}
        cands = []
        skipped, other = [], []
        for k, (lab, dim) in enumerate(zip(labels, dims)):
            lead = _label_to_lead(lab)
            # no unit: mV for a named lead; a unit that is not a voltage ('counts', a misspelling)
            # is not read as mV (it was, 1000× off for 'microV'): the channel is named, not returned
            scale = unit_scale_to_mv(dim or ("mV" if lead in _KNOWN else None))
            if scale is None:
                other.append(f"{lab} ({dim or 'no unit'})")
                continue
            if wanted is not None and lead not in wanted:
                skipped.append(lab)
                continue
            cands.append((k, lead, scale))
        if not cands:
            what = f"channels {', '.join(other + skipped)}" if other or skipped else "only EDF+ annotations"
            raise RecordReadError(p, f"no ECG/voltage channel to read (the file holds {what}); "
                                  "ECG channels need a voltage unit (uV, mV), or a lead name and no unit")
        cand_rates = [rates[k] for k, _, _ in cands]
        fs = max(set(cand_rates), key=lambda r: (cand_rates.count(r), r))
        rows, names = [], []
        for k, lead, scale in cands:
            if rates[k] != fs:
                skipped.append(f"{labels[k]} ({rates[k]:g} Hz)")
                continue
            n_read = samples_to_read(int(f.getNSamples()[k]), fs, max_duration)
            rows.append(f.readSignal(k, 0, n_read) * scale)
            names.append(lead)
        n = min(len(r) for r in rows)
        sig = np.stack([r[:n] for r in rows])
        sex = (f.getSex() or "").strip() if hasattr(f, "getSex") else ""
        try:
            start = f.getStartdatetime().isoformat()
        except Exception:
            start = None
        birth = None
        try:
            b = f.getBirthdate()
            birth = b if isinstance(b, str) else b.isoformat()
        except Exception:
            birth = None
        age = None
        if birth and start:
            try:
                bd = _dt.date.fromisoformat(str(birth)[:10]) if re.match(r"\d{4}-", str(birth)) else \
                    _dt.datetime.strptime(str(birth).strip(), "%d %b %Y").date()
                ad = _dt.date.fromisoformat(start[:10])
                age = float(ad.year - bd.year - ((ad.month, ad.day) < (bd.month, bd.day)))
            except ValueError:
                age = None
        statements = []
        try:
            onsets, _durations, texts = f.readAnnotations()
            statements, cont = [], ""
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
        except Exception:
            statements = []
        additional = (f.getPatientAdditional() or "").strip() if hasattr(f, "getPatientAdditional") else ""
        m_age = re.search(r"\bage[=:_ ]?(\d{1,3}(?:\.\d+)?)\b", additional, re.I)
        if age is None and m_age:
            age = float(m_age.group(1))
        meta = {
            "statements": tuple(statements),
            "other_channels": tuple(other),
            "patient_id": (f.getPatientCode() or "").strip() or None,
            "sex": {"male": "M", "m": "M", "female": "F", "f": "F"}.get(sex.lower()),
            "birth_date": birth or None,
            "age": age,
            "acquired": start,
            "device": (f.getEquipment() or "").strip() or None,
            "skipped_channels": tuple(skipped),
            "original_units": ",".join(sorted({dims[k] for k, _, _ in cands if rates[k] == fs})),
        }
    finally:
        f.close()
    return make_recording(p, sig, fs, names, meta, fmt="edf")


def _record_duration(n: int, fs: float) -> float | None:
    """A data-record duration (s) whose sample count divides ``n`` exactly, so that the file holds
    the record without padding, written exactly in the 8-character header field; ``None`` if none."""
    best = None
    divisors = {d for k in range(1, int(n ** 0.5) + 1) if n % k == 0 for d in (k, n // k)}
    for spr in sorted(divisors):
        d = spr / fs
        text = f"{d:.6g}"
        if 0.001 <= d <= 60 and len(text) <= 8 and abs(float(text) * fs - spr) < 1e-6:
            if best is None or abs(np.log(d)) < abs(np.log(best)):
                best = d
    return best


def write_edf(rec: Recording, path: str | Path, *, bdf: bool = False) -> Path:
    """Write ``rec`` as EDF+ (16-bit) or BDF+ (24-bit) with pyedflib.

    The physical range of each channel is its min/max (rounded outward to 1 µV), so the
    quantisation step is (max − min) / 65535 (EDF) or / 16777215 (BDF).
    """
    import pyedflib

    p = Path(path)
    sig = np.asarray(rec.signal, dtype=np.float64)
    n_ch = sig.shape[0]
    ftype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    dmax = 8388607 if bdf else 32767
    fs = float(rec.fs)
    headers = []
    for k, name in enumerate(rec.leads):
        lo = float(np.floor(np.nanmin(sig[k]) * 1000) / 1000)
        hi = float(np.ceil(np.nanmax(sig[k]) * 1000) / 1000)
        if hi - lo < 1e-3:
            lo, hi = lo - 0.001, hi + 0.001
        headers.append({
            "label": str(name)[:16], "dimension": "mV", "sample_frequency": fs,
            "physical_min": lo, "physical_max": hi, "digital_min": -dmax - 1, "digital_max": dmax,
            "transducer": "", "prefilter": "",
        })
    def field(v: object) -> str:  # EDF+ header subfields: ASCII, spaces written as '_'
        return "".join(c if 32 < ord(c) < 127 else "_" for c in str(v).strip())[:80]

    w = pyedflib.EdfWriter(str(p), n_ch, file_type=ftype)
    try:
        w.setSignalHeaders(headers)
        rec_s = _record_duration(sig.shape[1], fs)
        if rec_s is not None and rec_s != 1.0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w.setDatarecordDuration(rec_s)
        age = rec.meta.get("age")
        if isinstance(age, (int, float)) and np.isfinite(age):
            w.setPatientAdditional(f"age={float(age):g}")
        birth = rec.meta.get("birth_date")
        if birth:
            try:
                w.setBirthdate(_dt.date.fromisoformat(str(birth)[:10]))
            except ValueError:
                pass
        for key in ("statements", "dx"):
            for text in rec.meta.get(key) or ():
                t = str(text)[:400]
                # EDFlib keeps 40 characters per annotation: longer statements go in pieces, each but
                # the last ending in '~' (joined again by read_edf)
                pieces = [t[k:k + 39] for k in range(0, len(t), 39)] or [""]
                for j, piece in enumerate(pieces):
                    w.writeAnnotation(0, -1, piece + ("~" if j < len(pieces) - 1 else ""))
        pid = str(rec.meta.get("patient_id", "") or "")
        if pid:
            w.setPatientCode(field(pid))
        sex = rec.meta.get("sex")
        if sex in ("M", "F"):
            w.setSex(1 if sex == "M" else 0)
        dev = rec.meta.get("device")
        if dev:
            w.setEquipment(field(dev))
        acq = rec.meta.get("acquired")
        if acq:
            try:
                w.setStartdatetime(_dt.datetime.fromisoformat(str(acq)))
            except ValueError:
                pass
        # quantise ourselves with rounding (pyedflib truncates), so the error is at most half a step
        digital = []
        for k, h in enumerate(headers):
            lo, hi = h["physical_min"], h["physical_max"]
            d = np.round((sig[k] - lo) / (hi - lo) * (2 * dmax + 1) - dmax - 1)
            digital.append(np.ascontiguousarray(np.clip(d, -dmax - 1, dmax).astype(np.int32)))
        w.writeSamples(digital, digital=True)
    finally:
        w.close()
    return p
