"""WFDB records (``.hea`` + ``.dat``/``.mat``, single- or multi-segment), read with the wfdb package.

Channels in a voltage unit are returned in mV; others (ABP in mmHg, PLETH in NU) are named with
their units in ``meta['other_channels']`` (``"ABP (mmHg)"``), as in EDF.  The header's sampling
rate is parsed and range-checked here (wfdb reads ``1e-9`` or ``1,5`` as 1 Hz).

Reading a 12-lead 10-s format-16 record as ``predict`` does takes 0.5-0.64 CPU-ms on one core
(0.95-0.99 ms before the fast path; ``benchmarks/bench_preprocess.py --records DIR``)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import RecordReadError, SetupError
from ..recording import Recording
from ..signal.leads import canonical_lead
from ._common import canonical_leads, check_file, note, read_length, stated_or_birth_age, unit_scale_to_mv
from .limits import check_values, parse_fs
from .wfdb_meta import acquired_of, base_datetime, comment_meta, meta_comments

__all__ = ["read_wfdb", "write_wfdb", "quiet_wfdb", "wfdb_module"]

# bytes per sample of the WFDB signal formats (compressed FLAC formats 5xx are not size-checked)
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}

# wfdb (4.3) passes inplace=True to pandas methods, deprecated in pandas 3.1 (Pandas4Warning, a
# DeprecationWarning): at its import, in wrsamp and in rdann.  A library's internal deprecation that
# users cannot act on, so it is silenced where the package imports and calls wfdb, and only there.
_WFDB_INPLACE = r"The inplace keyword in DataFrame\.\w+ is deprecated"
_IMPORT_LOCK = threading.Lock()
_imported = False


@contextlib.contextmanager
def quiet_wfdb() -> Iterator[Any]:
    """The ``wfdb`` module, with its pandas ``inplace`` deprecation warnings silenced inside the
    block.  ``warnings.catch_warnings`` is process-wide: for writers and annotation readers, not
    for the record reader that threads run (it uses :func:`wfdb_module`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_WFDB_INPLACE, category=DeprecationWarning)
        import wfdb

        yield wfdb


def wfdb_module() -> Any:
    """The ``wfdb`` module, imported once with its import-time deprecation warnings silenced
    (reading a record with ``rdheader``/``rdrecord`` warns no more)."""
    global _imported
    if not _imported:
        with _IMPORT_LOCK:
            if not _imported:
                with quiet_wfdb():
                    pass
                _imported = True
    import wfdb

    return wfdb


def _header_lines(text: str) -> tuple[list[str], list[str]]:
    """``(record and signal lines, comment lines without their '#')`` of a header's text."""
    lines, comments = [], []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln:
            continue
        if ln.startswith("#"):
            comments.append(ln[1:].strip())
        else:
            lines.append(ln)
    return lines, comments


def _header_layout(lines: list[str]) -> tuple[int, int | None, list[str], list[str], list[int | None]] | None:
    """``(n_sig, sig_len, file names, formats, byte offsets)`` of a single-segment header, for the
    size checks made before wfdb allocates anything (``sig_len`` ``None`` when omitted; ``'16x2'``:
    2 samples per frame); ``None`` when not of that simple form (wfdb then parses it: ~10 ms)."""
    head = lines[0].split() if lines else []
    if len(head) < 2 or "/" in head[0]:  # multi-segment: read by _read_multi
        return None
    try:
        n_sig, sig_len = int(head[1]), (int(head[3]) if len(head) > 3 else None)
    except ValueError:
        return None
    files, fmts, offsets = [], [], []
    for ln in lines[1 : 1 + n_sig]:
        tok = ln.split()
        m = _FMT.match(tok[1]) if len(tok) > 1 else None
        if m is None:
            return None
        files.append(tok[0])
        fmts.append(m.group(1) + (f"x{int(m.group(2))}" if m.group(2) and int(m.group(2)) > 1 else ""))
        offsets.append(int(m.group(3)) if m.group(3) else None)
    if len(files) != n_sig:
        return None
    return n_sig, sig_len, files, fmts, offsets


_FMT = re.compile(r"(\d+)(?:x(\d+))?(?::\d+)?(?:\+(\d+))?$")
_FMT16 = re.compile(r"16(?:x1)?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((-?[0-9]+)\))?(?:/(\S+))?$")


def _signal_specs(lines: list[str], n_sig: int) -> list[tuple[str, str, bool]] | None:
    """``(name, units, calibrated)`` of each signal line from the header's own text (wfdb drops bytes
    outside ASCII: ``µV`` became ``V``, 10⁶ too large): the description (``signal k`` if absent),
    units (header(5): mV if absent), and whether an ADC gain other than 0 is given (header(5): 0 or
    none means uncalibrated, 200 adu per unit assumed); ``None`` for a line not of that form."""
    out = []
    for k, ln in enumerate(lines[1 : 1 + n_sig]):
        tok = ln.split()
        m = _GAIN.match(tok[2]) if len(tok) > 2 else None
        if len(tok) < 2 or (len(tok) > 2 and m is None):
            return None
        out.append((" ".join(tok[8:]) or f"signal {k}", (m.group(3) if m else None) or "mV", bool(m and float(m.group(1)))))
    return out if len(out) == n_sig else None


def _open_header(p: Path, hea: Path) -> tuple[list[str], list[str], float]:
    """``(lines, comments, sampling rate)`` of the header ``hea`` (UTF-8, else Latin-1)."""
    if not hea.exists():
        raise RecordReadError(p, f"WFDB header {hea.name} not found")
    check_file(hea, max_bytes=1 << 20)
    try:  # the header is read and split once (it was read three times)
        raw = hea.read_bytes()
    except OSError as exc:
        raise RecordReadError(hea, f"cannot open: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines, comments = _header_lines(text)
    return lines, comments, _header_fs(hea, lines)


def _header_fs(hea: Path, lines: list[str]) -> float:
    """The record line's sampling rate, parsed strictly and range-checked (``'500'``, ``'500/360'``,
    ``'360(0)'``); the WFDB default of 250 Hz applies only when the field is absent."""
    if not lines:
        raise RecordReadError(hea, "WFDB header has no record line")
    tok = lines[0].split()
    if len(tok) < 3:
        return 250.0
    return parse_fs(hea, re.split(r"[/(]", tok[2])[0], "WFDB header sampling rate")


def _read_simple_16(hea: Path, lines: list[str], comments: list[str], fs: float, n_sig: int, sig_len: int,
                    offset: int, n_read: int | None = None, segment: bool = False) -> Recording | None:
    """Fast path for the most common layout (PTB-XL, CinC, MIMIC-IV-ECG): one file of interleaved
    little-endian 16-bit samples, one sample per frame, no skew, every header field present;
    ``None`` for anything else (wfdb then reads it).  Measured reason: ``wfdb.rdrecord``'s header
    parsing costs ~9 ms a record against < 1 ms for this whole read.  The values equal wfdb's
    (``(digital - baseline) / gain`` in float64, -32768 → NaN), made lead-major (C order) in the one
    pass (a transposed view made per-lead reductions strided: 0.7 ms a record for ``np.ptp``)."""
    specs, gains, baselines = [], [], []
    for ln in lines[1 : 1 + n_sig]:
        tok = ln.split()
        fm = _FMT16.match(tok[1]) if len(tok) >= 9 else None
        m = _GAIN.match(tok[2]) if fm is not None else None
        if m is None or int(fm.group(1) or 0) != offset:  # type: ignore[union-attr]
            return None
        try:
            gain, base = float(m.group(1)), (int(m.group(2)) if m.group(2) is not None else int(tok[4]))
        except ValueError:
            return None
        gains.append(gain or 200.0)  # (as _signal_specs: 0 is uncalibrated)
        baselines.append(base)
        specs.append((" ".join(tok[8:]), m.group(3) or "mV", gain != 0))
    n = sig_len if n_read is None else n_read
    data = np.fromfile(hea.parent / lines[1].split(None, 1)[0], dtype="<i2", count=n_sig * n, offset=offset)
    if data.size != n_sig * n:
        return None
    d = data.reshape(n, n_sig).T
    sig = np.array(d, dtype=np.float64, order="C")
    sig -= np.asarray(baselines, dtype=np.float64)[:, None]
    sig /= np.asarray(gains, dtype=np.float64)[:, None]
    if d.size and d.min() == -32768:  # WFDB's invalid sample
        sig[d == -32768] = np.nan
    return _recording(hea, lines[0], fs, sig, specs, comments, segment)  # type: ignore[arg-type]


def _recording(hea: Path, line: str, fs: float, sig: np.ndarray, specs: list[tuple[str, str, bool]],
               comments: list, segment: bool = False) -> Recording:
    """A :class:`Recording` in mV from a WFDB record's physical signal ``(n_sig, n)`` and its
    signals' ``(name, units, calibrated)``; channels in other units go to ``meta['other_channels']``
    (a record without a voltage channel is refused, a ``segment`` of a multi-segment record is not)."""
    keep, other, uncal = [], [], []
    for i, (name, u, calibrated) in enumerate(specs):
        scale = unit_scale_to_mv(u)
        if scale is None:
            other.append(f"{name} ({u})")
            continue
        if scale != 1.0:
            sig[i] *= scale
        keep.append(i)
        if not calibrated:
            uncal.append(canonical_lead(name))
    if not keep and not segment:
        raise RecordReadError(hea, f"no voltage channel to read (the record holds {', '.join(other)}); "
                              "ECG channels have a voltage unit (mV, uV)")
    if uncal:
        note("uncalibrated_leads", tuple(uncal), f"{hea}: lead(s) {', '.join(uncal)} have an ADC gain of 0 or none "
             "(uncalibrated, WFDB header(5)); read at the default 200 ADC units per mV: amplitudes may be off")
    meta = {"id": line.split()[0].split("/")[0], "source": str(hea), "format": "wfdb", "units": "mV",
            "original_units": tuple(specs[i][1] for i in keep)}
    if other:
        meta["other_channels"] = tuple(other)
    start = acquired_of(line, comments)
    if start:
        meta["acquired"] = start
    meta.update(comment_meta(comments, hea))  # an 'Acquired:' comment (exact, with its zone) wins
    age = stated_or_birth_age(hea, meta.get("age"), meta.get("birth_date"), meta.get("acquired"), "header's age")
    if age is not None:
        meta["age"] = age
    return Recording(signal=sig[keep] if len(keep) < len(specs) else sig, fs=fs,
                     leads=canonical_leads(specs[i][0] for i in keep), meta=meta)


def _beside(hea: Path, name: str) -> None:
    """Refuse a file name in a header that is not a plain name beside it: WFDB records keep their
    signal files in the header's folder, and a header naming ``/etc/...`` or
    ``../x`` would make a reader of untrusted files (a service's uploads) read any file."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or (len(name) > 1 and name[1] == ":"):
        raise RecordReadError(hea, f"signal file {name!r} is not a plain file name in the header's folder (no folders, "
                              "'..' or drive letters); WFDB records keep their files beside the header")


def _frame_bytes(fmt: str) -> float | None:
    """Bytes of one frame of a signal of format ``fmt`` (``'212'``, ``'16x2'``); ``None`` for FLAC."""
    f, _, spf = fmt.partition("x")
    b = _BYTES_PER_SAMPLE.get(f)
    return None if b is None else b * int(spf or 1)


def read_wfdb(path: str | Path, *, max_duration: float | None = None, **_: object) -> Recording:
    """Read a WFDB record given its ``.hea`` (or signal) file; signals converted to mV; with
    ``max_duration`` only the first ``max_duration`` seconds are read.  A multi-segment record is
    read segment by segment (:func:`_read_multi`)."""
    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() in (".hea", ".dat", ".mat") else p
    hea = base.with_suffix(".hea")
    lines, comments, fs = _open_header(p, hea)
    if "/" in lines[0].split()[0]:
        return _read_multi(hea, lines, comments, fs, max_duration)
    return _read_single(hea, lines, comments, fs, max_duration)


def _read_single(hea: Path, lines: list[str], comments: list[str], fs: float, max_duration: float | None,
                 n_max: int | None = None, segment: bool = False) -> Recording:
    """A single-segment record (``n_max``: read at most that many samples)."""
    base = hea.with_suffix("")
    layout = _header_layout(lines)
    if layout is None:  # not the simple single-segment layout: let wfdb parse (and judge) it
        try:
            header = wfdb_module().rdheader(str(base))
        except Exception as exc:  # wfdb raises bare Exceptions on malformed headers
            raise RecordReadError(hea, f"corrupt WFDB header: {str(exc).strip() or type(exc).__name__}") from None
        layout = (int(header.n_sig or 0), header.sig_len, list(header.file_name or []),
                  [f"{f}x{s}" if (s or 1) > 1 else str(f) for f, s in zip(header.fmt or [], header.samps_per_frame or [])],
                  list(getattr(header, "byte_offset", None) or []))
    n_sig, sig_len, files, fmts, offsets = layout
    for fname in set(files):  # (wfdb's own header syntax already refuses paths as segment names)
        _beside(hea, str(fname))
    offsets = offsets or [None] * n_sig
    frames = []  # frames each signal file holds
    for fname in sorted(set(files)):
        try:
            st = os.stat(hea.parent / fname)
            if not stat.S_ISREG(st.st_mode):  # a named pipe would make the read wait for ever
                raise RecordReadError(hea, f"signal file {fname} is not a regular file (a named pipe, socket or device)")
        except FileNotFoundError:
            raise RecordReadError(hea, f"signal file {fname} is missing: WFDB reads it from the header's folder; "
                                  "put the two files side by side") from None
        except OSError as exc:
            raise RecordReadError(hea, f"cannot open signal file {fname}: {exc.strerror or exc}") from None
        chans = [k for k, x in enumerate(files) if x == fname]
        per = [_frame_bytes(fmts[k]) if k < len(fmts) else None for k in chans]
        if all(b is not None for b in per):
            off = max(int(offsets[k] or 0) for k in chans)
            frames.append((fname, off, sum(per), st.st_size))  # type: ignore[arg-type]
        elif sig_len is None:  # header(5): no length given means to the end of the signal files
            raise RecordReadError(hea, f"the header gives no number of samples and signal file {fname} is FLAC-"
                                  "compressed (its length is not known from its size); add the number to the header")
    inferred = sig_len is None and bool(frames)
    if inferred:  # (wfdb then reads the whole record: read no more than the limit allows)
        sig_len = min(int((size - off) // per) for _f, off, per, size in frames)
    if n_sig <= 0 or not sig_len or sig_len <= 0:
        raise RecordReadError(hea, f"WFDB header declares {n_sig} signals of {sig_len or 0} samples; nothing to read")
    check_values(hea, n_sig, sig_len, "WFDB header", max_duration=None if inferred else max_duration, fs=fs)
    n_read = min(read_length(sig_len, fs, max_duration), n_max or sig_len)
    for fname, off, per_frame, have in frames:
        if have < int(off + sig_len * per_frame):
            raise RecordReadError(hea, f"signal file {fname} has {have} bytes, the header declares {n_sig} signals × "
                                  f"{sig_len} samples ({int(off + sig_len * per_frame)} bytes) (truncated, or a wrong header)")
    if len(set(files)) == 1 and set(fmts) == {"16"} and len(set(offsets)) == 1:
        fast = _read_simple_16(hea, lines, comments, fs, n_sig, sig_len, int(offsets[0] or 0), n_read, segment)
        if fast is not None:
            return fast
    try:
        rec = wfdb_module().rdrecord(str(base), physical=True, sampto=None if inferred else n_read)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        flac = " (FLAC signal data corrupt or truncated?)" if any(f[:1] == "5" for f in fmts) else ""
        raise RecordReadError(hea, f"cannot read signal: {msg}{flac}") from None
    sig = np.ascontiguousarray(np.asarray(rec.p_signal, dtype=np.float64)[:n_read].T)  # lead-major rows
    if sig.shape[1] != n_read:
        raise RecordReadError(hea, f"signal file holds {sig.shape[1]} samples, header declares {sig_len} (truncated?)")
    specs = _signal_specs(lines, n_sig) or [(str(n) if n else f"signal {k}", u or "mV", True) for k, (n, u)
                                            in enumerate(zip(rec.sig_name, rec.units or ["mV"] * n_sig))]
    return _recording(hea, lines[0], fs, sig, specs, list(rec.comments or []), segment)


def _read_multi(hea: Path, lines: list[str], comments: list[str], fs: float, max_duration: float | None) -> Recording:
    """A multi-segment record (header(5)): each segment read as a record of its own (its own gains
    and units), joined in time by lead name; a null segment (``~``) and the leads a segment lacks
    are NaN.  (wfdb's own joining applies one segment's units to all.)"""
    head = lines[0].split()
    try:
        n_seg, n_sig = int(head[0].split("/", 1)[1]), int(head[1])
        segs = [(t[0], int(t[1])) for t in (ln.split() for ln in lines[1 : 1 + n_seg])]
        total, listed = (int(head[3]) if len(head) > 3 else sum(n for _, n in segs)), sum(n for _, n in segs)
    except (ValueError, IndexError):
        raise RecordReadError(hea, "corrupt multi-segment WFDB header (record line or 'name length' segment lines)") from None
    if len(segs) != n_seg or any(n < 0 for _, n in segs) or total != listed:
        raise RecordReadError(hea, f"multi-segment WFDB header declares {n_seg} segments and {total} samples; its "
                              f"segment lines give {len(segs)} segments of {listed} samples")
    check_values(hea, max(n_sig, 1), total, "WFDB header", max_duration=max_duration, fs=fs)
    n_read = read_length(total, fs, max_duration)
    rows: dict[tuple[str, int], int] = {}
    parts, other, pos = [], [], 0
    bad = next((s for s, _ in segs if s != "~" and not re.fullmatch(r"[-\w]+", s)), None)
    if bad is not None:  # header(5): a segment is a record beside the header, named by letters, digits, '_'
        raise RecordReadError(hea, f"corrupt WFDB header: segment {bad!r} is not a record name (letters, digits, '_', '-')")
    for k, (name, n) in enumerate(segs):
        if name == "~" or n == 0 or pos >= n_read:  # a null segment, or the layout segment (0 samples)
            if k == 0 and n == 0 and name != "~":  # a variable layout's signals give the lead order
                lay_lines = _open_header(hea, hea.parent / f"{name}.hea")[0]
                for key in _keys([canonical_lead(s[0]) for s in _signal_specs(lay_lines, len(lay_lines) - 1) or []]):
                    rows.setdefault(key, len(rows))
            pos += n
            continue
        seg_hea, take = hea.parent / f"{name}.hea", min(n, n_read - pos)
        try:  # (errors named by the record read, with the segment at fault)
            seg_lines, seg_comments, seg_fs = _open_header(hea, seg_hea)
            if "/" in seg_lines[0].split()[0] or seg_fs != fs:
                raise RecordReadError(hea, f"{'a multi-segment record' if seg_fs == fs else f'at {seg_fs:g} Hz'}; the "
                                      f"segments of a record are single-segment records at its rate ({fs:g} Hz)")
            rec = _read_single(seg_hea, seg_lines, seg_comments, seg_fs, take / fs, take, segment=True)
        except RecordReadError as exc:
            raise RecordReadError(hea, f"segment {name}: {exc.reason}") from None
        if rec.signal.shape[1] < take:
            raise RecordReadError(hea, f"segment {name} holds {rec.signal.shape[1]} samples, the header gives it {n}")
        for key in _keys(rec.leads):
            rows.setdefault(key, len(rows))
        if len(rows) > max(n_sig, 1):  # (the record's size was checked for n_sig signals)
            raise RecordReadError(hea, f"segment {name} brings the record's signals to {len(rows)}; the header declares {n_sig}")
        other += [c for c in rec.meta.get("other_channels", ()) if c not in other]
        parts.append((pos, take, rec))
        pos += n
    sig = np.full((len(rows), n_read), np.nan)
    for start, take, rec in parts:
        for key, x in zip(_keys(rec.leads), rec.signal):
            sig[rows[key], start:start + take] = x[:take]
    keep = sorted({rows[key] for _s, _t, rec in parts for key in _keys(rec.leads)})  # leads some segment holds
    if not keep:
        raise RecordReadError(hea, f"no voltage channel to read in any segment (they hold {', '.join(other) or 'none'})")
    names = [key[0] for key in sorted(rows, key=rows.get)]  # type: ignore[arg-type]
    rec = _recording(hea, lines[0], fs, sig[keep], [(names[i], "mV", True) for i in keep], comments)
    return replace(rec, meta={**rec.meta, "segments": len(segs), **({"other_channels": tuple(other)} if other else {})})


def _keys(leads: Any) -> list[tuple[str, int]]:
    """``(lead, occurrence)`` of each lead name (a lead stored twice keeps both)."""
    return [(name, list(leads[:i]).count(name)) for i, name in enumerate(leads)]


def write_wfdb(rec: Recording, path: str | Path, *, fmt: str = "16", adc_gain: float | None = None) -> Path:
    """Write ``rec`` as a WFDB record (``.hea`` + ``.dat``) with ``wfdb.wrsamp``; returns the ``.hea``.

    Samples: each lead gets its own gain and baseline (wfdb's ``calc_adc_params``: the lead's
    min-max over the format's digital range), so in format 16 the step is (max - min) / 65533 mV of
    that lead and a value reads back within half a step; ``adc_gain`` (ADC units per mV) sets one
    gain for every lead instead (baseline 0).  NaN samples are WFDB's invalid sample and read back
    as NaN; so are +-inf samples, with a warning.

    Kept: lead names (spaces and control characters written as ``_``), the sampling rate as given
    (``128.0001``), and in header comments age, sex, ``dx``, ``statements``, patient id, birth date,
    device and ``acquired`` (also as the record line's base time and date, without time zone).  Not kept:
    ``meta['id']`` (a WFDB record is named by its file, so the file name is the id read back) and
    other metadata.  The record name (the file name without ``.hea``) may hold only letters,
    digits, ``-`` and ``_``.
    """
    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() in (".hea", ".dat") else p
    if not re.fullmatch(r"[-\w]+", base.name):
        safe = re.sub(r"[^-\w]", "_", base.name) or "record"
        raise SetupError(f"{p}: a WFDB record name holds only letters, digits, '-' and '_' (got {base.name!r}); "
                         f"give a file name like {safe}.hea.", "path")
    sig = np.array(rec.signal, dtype=np.float64)
    inf = np.isinf(sig)
    if inf.any():
        warnings.warn(f"{p}: {int(inf.sum())} infinite sample(s) written as WFDB's invalid sample (read back as NaN).",
                      stacklevel=3)
        sig[inf] = np.nan
    n = sig.shape[0]
    comments = meta_comments(rec.meta)
    start = base_datetime(rec.meta.get("acquired"))
    names = [re.sub(r"[\s\x00-\x1f\x7f]", "_", str(x)) for x in rec.leads]  # (wfdb refused control characters)
    with quiet_wfdb() as wfdb:
        if adc_gain:
            gains, baselines = [float(adc_gain)] * n, [0] * n
        else:  # wfdb's per-lead choice; an all-NaN lead (which wfdb cannot size) as a lead of zeros
            empty = np.isnan(sig).all(axis=1)
            gains, baselines = wfdb.Record(p_signal=np.where(empty[:, None], 0.0, sig).T, fmt=[fmt] * n).calc_adc_params()
        wfdb.wrsamp(
            record_name=base.name, fs=float(rec.fs), units=["mV"] * n, sig_name=names,
            p_signal=sig.T, fmt=[fmt] * n, adc_gain=list(gains), baseline=[int(b) for b in baselines],
            comments=comments, write_dir=str(base.parent),
            base_time=start.time() if start else None, base_date=start.date() if start else None,
        )
    return base.with_suffix(".hea")
