"""EDF, EDF+ and BDF files, read and written with pyedflib.

Channels whose physical dimension is a voltage (or whose label is an ECG lead name: mV, with a
note) are read in mV, at the rate shared by most of them; channels of other units (SpO2, pressure)
are named with their units in ``meta['other_channels']`` (``"SpO2 (%)"``, as in WFDB), voltage
channels at another rate in ``meta['skipped_channels']``.  EDF+ annotations at time 0 are read as
``statements`` (one ``Dx: <codes>`` as ``dx``); a start of 1985-01-01 00:00:00 (what
:func:`write_edf` writes for none) as no ``acquired``.  What pyedflib refuses is mended on a private
copy: header bytes outside ASCII (``µV``, ``meta['header_repaired']``), a number of data records of
-1 (taken from the file size), EDF+D (the records up to the first gap in time, with a note).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordReadError, SetupError
from ..recording import Recording
from ..signal.leads import STANDARD_12, canonical_lead
from ._common import check_file, make_recording, note, read_length, unit_scale_to_mv
from .edf_meta import UNKNOWN_START, annotation_meta, label_name, patient_meta, start_read
from .limits import check_values

__all__ = ["read_edf", "write_edf"]

_KNOWN = set(STANDARD_12)


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


def _repaired_copy(p: Path, n_sig: int, fixes: dict[int, bytes], n_bytes: int) -> Path | None:
    """A copy of ``p``'s first ``n_bytes`` for pyedflib, header bytes outside ASCII replaced field by
    field (``µV`` → ``uV``, others → ``?``) and at each offset of ``fixes``; ``None`` if not needed."""
    with open(p, "rb") as fh:
        head = bytearray(fh.read(256 * (n_sig + 1)))
    if not all(32 <= b < 127 for b in head[1:]):  # byte 0 is 0xFF in BDF
        note("header_repaired", "non-ASCII header bytes replaced",
             f"{p}: EDF header holds bytes outside ASCII (not EDF-conformant); replaced to read the file")
    elif not fixes:
        return None
    fixed = bytearray(head[:1] + _ascii_field(bytes(head[1:256])))
    off = 256
    for _name, width in _SIG_FIELDS:
        for _ in range(n_sig):
            fixed += _ascii_field(bytes(head[off:off + width]))
            off += width
    for at, value in fixes.items():
        fixed[at:at + len(value)] = value
    fd, tmp = tempfile.mkstemp(suffix=p.suffix or ".edf", prefix="ecgfounder-")
    with os.fdopen(fd, "wb") as out, open(p, "rb") as src:
        out.write(bytes(fixed))
        src.seek(len(fixed))
        left = n_bytes - len(fixed)
        while left > 0 and (chunk := src.read(min(left, 1 << 20))):
            out.write(chunk)
            left -= len(chunk)
    return Path(tmp)


def _continuous_records(p: Path, h: dict) -> int:
    """How many data records of an EDF+D file follow each other without a gap, from the onset of
    each record's time-keeping annotation (EDF+ spec: the first TAL of the annotation signal)."""
    ann = next((k for k, lab in enumerate(h["labels"]) if lab.strip() in ("EDF Annotations", "BDF Annotations")), None)
    if ann is None or h["n_rec"] == 0:
        raise RecordReadError(p, "EDF+D file without an 'EDF Annotations' signal: the data records' times are unknown")
    rec_bytes, start = sum(h["spr"]) * h["width"], sum(h["spr"][:ann]) * h["width"]
    rows = np.memmap(p, dtype=np.uint8, mode="r", offset=h["hdr"], shape=(h["n_rec"], rec_bytes))
    heads = np.array(rows[:, start:start + min(32, h["spr"][ann] * h["width"])])
    tals = [re.match(rb"([+-]\d+(?:\.\d*)?)\x14", row.tobytes()) for row in heads]
    if None in tals:
        raise RecordReadError(p, f"EDF+D data record {tals.index(None)} has no time-keeping annotation (its start is unknown)")
    onsets = [float(m.group(1)) for m in tals]  # type: ignore[union-attr]
    steps = np.abs(np.diff(onsets) - h["dur"]) > 0.5 * h["dur"] / max(h["spr"])  # more than half a sample off
    return int(np.argmax(steps)) + 1 if steps.any() else h["n_rec"]


def _check_header(p: Path, size: int, max_duration: float | None = None) -> dict:
    """The EDF/BDF header's layout, checked against the file size before pyedflib allocates anything."""
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
    width, unknown = (3 if bdf else 2), n_rec < 0
    if unknown:  # -1: unknown (still recording): the complete data records the file holds
        n_rec = (size - hdr_bytes) // max(1, sum(spr) * width)
    need = hdr_bytes + n_rec * sum(spr) * width
    try:
        rec_dur = float(head[244:252].decode("ascii").strip() or "1")
    except ValueError:
        raise RecordReadError(p, "corrupt EDF header (non-numeric data record duration)") from None
    if not 0 < rec_dur < 1e6 or any(x < 0 for x in spr):
        raise RecordReadError(p, f"EDF header declares a data record of {rec_dur!r} s and {spr[:4]} samples")
    check_values(p, n_sig, max(spr) * max(n_rec, 0), "EDF header", max_duration=max_duration, fs=max(spr) / rec_dur)
    if need > size:
        raise RecordReadError(p, f"EDF header declares {n_rec} records × {sum(spr)} samples ({need} bytes) but the file "
                              f"has {size} bytes (truncated)")
    return {"n_sig": n_sig, "n_rec": n_rec, "hdr": hdr_bytes, "spr": spr, "width": width, "dur": rec_dur,
            "n_rec_unknown": unknown, "plus_d": head[192:197] in (b"EDF+D", b"BDF+D"),
            "labels": [sig_hdr[16 * k:16 * k + 16].decode("latin-1") for k in range(n_sig)]}


def read_edf(path: str | Path, *, channels: list[str] | None = None, max_duration: float | None = None,
             **_: Any) -> Recording:
    """Read an EDF/EDF+/BDF file; voltage channels in mV (leads × samples); with ``max_duration``
    only the first ``max_duration`` seconds are read."""
    p = Path(path)
    size = check_file(p, min_bytes=256)
    h = _check_header(p, size, max_duration)
    n_rec, fixes = h["n_rec"], ({192: b"BDF+C" if h["width"] == 3 else b"EDF+C"} if h["plus_d"] else {})
    if h["n_rec_unknown"]:
        note("n_records_from_size", n_rec, f"{p}: EDF header's number of data records is -1 (unknown: the file was "
             f"being recorded); the {n_rec} complete records the file holds are read")
    if h["plus_d"]:  # the records up to the first gap, read as EDF+C
        n_rec = _continuous_records(p, h)
        t, total = n_rec * h["dur"], h["n_rec"] * h["dur"]
        if n_rec < h["n_rec"]:
            note("discontinuous", f"first {t:g} s of {total:g} s read (EDF+D: a gap after {t:g} s)", f"{p}: EDF+D file "
                 f"with a gap in time after {t:g} s; only the first {t:g} s (of {total:g} s) are read, not joined to the rest")
    if h["plus_d"] or h["n_rec_unknown"]:
        n_rec = n_rec if max_duration is None else min(n_rec, int(np.ceil(float(max_duration) / h["dur"])))
        fixes[236] = f"{n_rec:<8}".encode()
    repaired = _repaired_copy(p, h["n_sig"], fixes, h["hdr"] + n_rec * sum(h["spr"]) * h["width"])
    try:
        return _read(p, repaired or p, channels, max_duration)
    finally:
        if repaired is not None:
            repaired.unlink(missing_ok=True)


def _read(p: Path, src: Path, channels, max_duration) -> Recording:
    import pyedflib

    try:
        f = pyedflib.EdfReader(str(src))
    except OSError as exc:
        msg = str(exc).strip().splitlines()[0].replace(str(src), "").strip(": ")
        raise RecordReadError(p, f"cannot read EDF: {msg}") from None
    try:
        labels = [s.strip() for s in f.getSignalLabels()]
        rates = [float(f.getSampleFrequency(k)) for k in range(len(labels))]
        dims = [f.getPhysicalDimension(k).strip() for k in range(len(labels))]
        wanted = None if channels is None else {canonical_lead(c) for c in channels}
        cands, skipped, other, blank = [], [], [], []
        for k, (lab, dim) in enumerate(zip(labels, dims)):
            name = label_name(lab)
            lead = canonical_lead(name)
            # no unit: mV for a named lead, with a note; a unit that is not a voltage ('counts', a
            # misspelling) is not read as mV (it was, 1000× off for 'microV'): the channel is named
            scale = unit_scale_to_mv(dim or ("mV" if lead in _KNOWN else None))
            if not dim and scale is not None and (wanted is None or lead in wanted):
                blank.append(lead)
            if scale is None:
                other.append(f"{lab} ({dim or 'no unit'})")
                continue
            if wanted is not None and lead not in wanted:
                skipped.append(lab)
                continue
            cands.append((k, lead, name, scale))
        if not cands:
            what = f"channels {', '.join(other + skipped)}" if other or skipped else "only EDF+ annotations"
            raise RecordReadError(p, f"no ECG/voltage channel to read (the file holds {what}); "
                                  "ECG channels need a voltage unit (uV, mV), or a lead name and no unit")
        if blank:
            note("units_assumed", tuple(blank), f"{p}: lead(s) {', '.join(blank)} have no physical dimension in the "
                 "EDF header; read as mV (EDF ECGs are mostly in uV: check the amplitudes)")
        # the rate of most ECG leads (a PSG's many EEG channels in uV must not decide it), else of most channels
        cand_rates = [rates[k] for k, lead, _, _ in cands if lead in _KNOWN] or [rates[k] for k, _, _, _ in cands]
        fs = max(set(cand_rates), key=lambda r: (cand_rates.count(r), r))
        skipped += [f"{labels[k]} ({rates[k]:g} Hz)" for k, _, _, _ in cands if rates[k] != fs]
        cands = [c for c in cands if rates[c[0]] == fs]
        n_read = read_length(int(f.getNSamples()[cands[0][0]]), fs, max_duration)  # (one rate: one length)
        rows = [f.readSignal(k, 0, n_read) * scale for k, _, _, scale in cands]
        names = [name for _, _, name, _ in cands]  # (canonical in make_recording, which notes MLII read as II)
        n = min(len(r) for r in rows)
        sig = np.stack([r[:n] for r in rows])
        start = start_read(f)
        meta = {
            **annotation_meta(f),
            "other_channels": tuple(other),
            **patient_meta(p, f, start),
            "acquired": start,
            "device": (f.getEquipment() or "").strip() or None,
            "skipped_channels": tuple(skipped),
            "original_units": ",".join(sorted({dims[k] for k, _, _, _ in cands})),
        }
    finally:
        f.close()
    return make_recording(p, sig, fs, names, meta, fmt="edf")


# EDF header numbers are 8 ASCII characters; a data record lasts a whole number of 10 µs, at most 60 s
_FIELD = 8
_TICKS = 100_000
# the largest relative change of the sampling rate accepted to store a record without padding: the
# data-record duration's 10-µs resolution makes some rates (257 Hz over 2500 samples) inexact
RATE_TOLERANCE = 1e-5


def _header_number(x: float, up: bool) -> float | int:
    """``x`` rounded outward (``up`` for a maximum) to the most decimals an 8-character EDF header
    field holds, so that the header states the very range the samples were quantised with."""
    for dec in range(_FIELD - 1, -1, -1):
        q = 10.0 ** dec
        v = (np.ceil(x * q) if up else np.floor(x * q)) / q
        if len(f"{v:.{dec}f}".rstrip("0").rstrip(".") if dec else f"{v:.0f}") <= _FIELD:
            v = float(v) + 0.0  # no '-0'
            return int(v) if v.is_integer() else v  # pyedflib measures str(v): '-9999999.0' is 10 characters
    raise ValueError(f"{x:g} does not fit an EDF header field")  # write_edf checks the range first


def _record_layout(n: int, fs: float) -> tuple[int, int, int]:
    """``(samples per data record, record duration in 10-µs ticks, samples to append)`` for ``n``
    samples at ``fs`` Hz: an exact layout (duration nearest 1 s) if one exists, else the one whose
    rate ``spr / duration`` is nearest ``fs`` within :data:`RATE_TOLERANCE`, else the same for the
    fewest samples more than ``n`` (the file then ends with appended samples)."""
    for m in range(n, n + int(60 * fs) + 2):
        best = None
        for k in range(1, int(m ** 0.5) + 1):
            if m % k:
                continue
            for spr in {k, m // k}:
                ticks = round(spr / fs * _TICKS)
                # 0.1-60 s (shorter only as the one record of a short recording): EDF+ adds an
                # annotation signal to every data record, so 2-ms records would multiply the file
                if not (_TICKS // 10 <= ticks or (spr == m and ticks >= 100)) or ticks > 60 * _TICKS:
                    continue
                err = abs(spr * _TICKS / ticks - fs) / fs
                if err <= RATE_TOLERANCE:
                    key = (err > 1e-12, err if err > 1e-12 else abs(np.log(ticks / _TICKS)))
                    if best is None or key < best[0]:
                        best = (key, spr, ticks)
        if best is not None:
            return best[1], best[2], m - n
    raise SetupError(f"no EDF data-record layout for {fs:g} Hz; write the recording as WFDB or npz.", "recording")


def write_edf(rec: Recording, path: str | Path, *, bdf: bool = False) -> Path:
    """Write ``rec`` as EDF+ (16-bit) or BDF+ (24-bit) with pyedflib.

    Samples: each lead's physical range is its min-max, rounded outward to what the 8-character
    header fields hold, so the step is (max - min) / 65535 mV (BDF: / 16777215) and a value reads
    back within half a step.

    Kept: lead names (16 ASCII characters, others written as ``_``), the sampling rate, start date
    and time, patient id, sex, birth date, age, device, ``statements`` and ``dx`` (EDF+ annotations
    at time 0).  Limits of the format, each with a warning when it changes the data:

    * no missing-sample code: NaN and +-inf samples are written as 0 mV;
    * the rate is stored as samples per data record over its duration (10 µs steps, 0.1-60 s):
      a rate no duration fits exactly is read back within :data:`RATE_TOLERANCE` (257 Hz over 2500
      samples: 256.99991 Hz); when no record size divides the samples, 0 mV samples are appended;
    * header texts are ASCII, spaces written as ``_`` (patient id, device), no time zone;
    * ``meta['id']`` is not stored (the file name is the id read back); a recording without a
      start gets 1985-01-01 00:00:00, read back as unknown.
    """
    import pyedflib

    p = Path(path)
    sig = np.array(rec.signal, dtype=np.float64)
    n_ch, n = sig.shape
    bad = ~np.isfinite(sig)
    if bad.any():
        which = [rec.leads[k] for k in np.flatnonzero(bad.any(axis=1))]
        warnings.warn(f"{p}: EDF has no code for a missing sample: {int(bad.sum())} NaN/inf sample(s) of lead(s) "
                      f"{', '.join(which)} written as 0 mV.", stacklevel=3)
        sig[bad] = 0.0
    fs = float(rec.fs)
    spr, ticks, pad = _record_layout(n, fs)
    if pad:
        warnings.warn(f"{p}: EDF stores whole data records and no record size divides {n} samples at {fs:g} Hz: "
                      f"{pad} sample(s) of 0 mV appended at the end.", stacklevel=3)
        sig = np.concatenate([sig, np.zeros((n_ch, pad))], axis=1)
    if spr * _TICKS / ticks != fs:
        warnings.warn(f"{p}: EDF stores the rate as samples per data record over a duration in 10 µs steps: "
                      f"{fs:g} Hz is read back as {spr * _TICKS / ticks:.9g} Hz.", stacklevel=3)
    ftype = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    dmax = 8388607 if bdf else 32767
    headers = []
    for k, name in enumerate(rec.leads):
        lo, hi = float(sig[k].min()), float(sig[k].max())
        if hi == lo:  # a flat lead: a range around its value
            lo, hi = lo - 0.001, hi + 0.001
        if np.floor(lo) < -9_999_999 or np.ceil(hi) > 99_999_999:
            raise SetupError(f"{p}: lead {name} reaches {lo if np.floor(lo) < -9_999_999 else hi:g} mV; EDF's 8-character "
                             "physical range fields hold -9999999 to 99999999 mV (is the signal in mV?); scale the "
                             "recording's signal to mV.", "recording")
        label = "".join(c if 32 <= ord(c) < 127 else "_" for c in str(name))  # (pyedflib mangled 'ü' to 'A')
        if len(label) > 16 or label != name:
            warnings.warn(f"{p}: lead name {name!r} written as {label[:16]!r} (EDF: 16 ASCII characters).", stacklevel=3)
        headers.append({
            "label": label[:16], "dimension": "mV", "sample_frequency": spr / ((ticks + 0.5) / _TICKS),
            "physical_min": _header_number(lo, False), "physical_max": _header_number(hi, True),
            "digital_min": -dmax - 1, "digital_max": dmax, "transducer": "", "prefilter": "",
        })

    def field(v: object) -> str:  # EDF+ header subfields: ASCII, spaces written as '_'
        return "".join(c if 32 < ord(c) < 127 else "_" for c in str(v).strip())[:80]

    w = pyedflib.EdfWriter(str(p), n_ch, file_type=ftype)
    try:
        w.setSignalHeaders(headers)
        with warnings.catch_warnings():  # pyedflib's notice that a set duration may change rates
            warnings.simplefilter("ignore", UserWarning)
            w.setDatarecordDuration((ticks + 0.5) / _TICKS)  # pyedflib truncates to whole ticks
        age = rec.meta.get("age")
        if isinstance(age, (int, float)) and np.isfinite(age):
            w.setPatientAdditional(f"age={float(age):g}")
        birth = rec.meta.get("birth_date")
        if birth:
            try:
                w.setBirthdate(_dt.date.fromisoformat(str(birth)[:10]))
            except ValueError:
                warnings.warn(f"{p}: birth date {birth!r} is not an ISO date; not written.", stacklevel=3)
        _annotate(w, p, rec.meta, (n + pad) // spr)
        pid = str(rec.meta.get("patient_id", "") or "")
        if pid:
            w.setPatientCode(field(pid))
        sex = rec.meta.get("sex")
        if sex in ("M", "F"):
            w.setSex(1 if sex == "M" else 0)
        dev = rec.meta.get("device")
        if dev:
            w.setEquipment(field(dev))
        start = _start(p, rec.meta.get("acquired"))
        w.setStartdatetime(start.replace(microsecond=0))
        if start.microsecond:  # EDFlib counts 100 ns; pyedflib passes µs x 100, 10x too large
            from pyedflib.edfwriter import set_starttime_subsecond

            set_starttime_subsecond(w.handle, start.microsecond * 10)
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


def _annotate(w: Any, p: Path, meta: Any, n_records: int) -> None:
    """``statements`` and ``dx`` (one ``Dx: <codes>`` text) as EDF+ annotations at time 0.  EDFlib
    keeps 40 characters per annotation, one annotation per data record and annotation signal:
    longer texts go in pieces, each but the last ending in '~' (joined again by read_edf), and the
    file gets as many annotation signals (at most 64) as the pieces need."""
    texts = [str(t) for t in meta.get("statements") or ()]
    if meta.get("dx"):
        texts.append("Dx: " + ",".join(str(c) for c in meta["dx"]))
    pieces = []
    for t in texts:
        t = t[:400]
        parts = [t[k:k + 39] for k in range(0, len(t), 39)] or [""]
        pieces += [piece + ("~" if j < len(parts) - 1 else "") for j, piece in enumerate(parts)]
    if not pieces:
        return
    signals = -(-len(pieces) // n_records)
    if signals > 64:
        keep = 64 * n_records
        warnings.warn(f"{p}: EDF+ holds {keep} annotation pieces in {n_records} data record(s); "
                      f"{len(pieces) - keep} of the statements' {len(pieces)} pieces are not written.", stacklevel=4)
        pieces, signals = pieces[:keep], 64
    w.set_number_of_annotation_signals(signals)
    for piece in pieces:
        w.writeAnnotation(0, -1, piece)


def _start(p: Path, acquired: object) -> _dt.datetime:
    """The EDF start of ``acquired`` (ISO text): local clock time (a zone is dropped, with a
    warning); :data:`UNKNOWN_START` when there is none."""
    if not acquired:
        return UNKNOWN_START
    try:
        t = _dt.datetime.fromisoformat(str(acquired))
    except ValueError:
        warnings.warn(f"{p}: start {acquired!r} is not an ISO date and time; written as unknown.", stacklevel=4)
        return UNKNOWN_START
    if t.tzinfo is not None:
        warnings.warn(f"{p}: EDF has no time zone: start {acquired} written as {t.replace(tzinfo=None).isoformat()}.",
                      stacklevel=4)
    return t.replace(tzinfo=None)
