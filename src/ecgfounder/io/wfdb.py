"""WFDB records (``.hea`` + ``.dat``/``.mat``), read with the wfdb package.

Channels in a voltage unit are returned in mV; others (ABP in mmHg, PLETH in NU, respiration,
uterine contraction) are named with their units in ``meta['other_channels']`` (``"ABP (mmHg)"``),
the same policy as EDF.  The header's sampling rate is parsed and range-checked here (wfdb reads
``1e-9`` or ``1,5`` as 1 Hz).

Reading a 12-lead 10-s format-16 record the way ``predict`` does (``iter_read``: this reader and
the reading policy) takes 0.5-0.64 CPU-ms on one core, against 0.95-0.99 ms before the header was
read once (it was read three times), the signal made lead-major in its one conversion pass and the
calibration-pulse check made to reject an ordinary record from its last sample; reading and
preparing it, 2.6-2.8 ms against 5.0 (``python benchmarks/bench_preprocess.py --records DIR`` over
400 such records written by ``wfdb.wrsamp``)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import stat
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import RecordReadError, SetupError
from ..recording import Recording
from ..signal.leads import canonical_lead
from ._common import check_file
from .limits import check_values, parse_fs, samples_to_read

__all__ = ["read_wfdb", "write_wfdb", "quiet_wfdb", "wfdb_module"]

# bytes per sample of the WFDB signal formats (compressed FLAC formats 5xx are not size-checked)
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3}

_UNIT_SCALE = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nv": 1e-6}

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


# Patient and acquisition fields kept in header comments (WFDB has no fields of its own for them;
# the record line's base time and date also get ``acquired``, for WFDB tools).
_COMMENT_META = {"patient_id": "Patient ID", "birth_date": "Birth date", "device": "Device", "acquired": "Acquired"}
_COMMENT_KEYS = {label.lower(): key for key, label in _COMMENT_META.items()}


def _parse_comments(comments: list[str]) -> dict:
    meta: dict = {}
    for line in comments:
        m = re.match(r"\s*([A-Za-z][A-Za-z _/()-]*?)\s*:\s*(.*)$", line)
        if not m:
            continue
        key, val = m.group(1).strip().lower(), m.group(2).strip()
        if key == "age":
            try:
                meta["age"] = float(val)
            except ValueError:
                pass
        elif key == "sex":
            meta["sex"] = {"m": "M", "male": "M", "f": "F", "female": "F"}.get(val.lower(), val)
        elif key == "dx":
            from ..datasets.codes import parse_dx  # the one Dx parser

            meta["dx"] = parse_dx(val)
        elif key == "statements":
            meta["statements"] = tuple(c.strip() for c in val.split(",") if c.strip())
        elif key in _COMMENT_KEYS and val:
            meta[_COMMENT_KEYS[key]] = val
    return meta


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


def _header_layout(lines: list[str]) -> tuple[int, int, list[str], list[str], list[int | None]] | None:
    """``(n_sig, sig_len, file names, formats, byte offsets)`` from a single-segment header's lines,
    read cheaply for the size checks made before wfdb allocates anything; ``None`` when the header is
    not of that simple form (wfdb then parses it).  wfdb's own header parser costs ~10 ms a call
    (pandas indexing per field), and ``rdrecord`` parses the header again, so parsing it twice
    doubled the reading time of a 10-s record."""
    if not lines:
        return None
    head = lines[0].split()
    if len(head) < 4 or "/" in head[0]:  # multi-segment or no signal length: leave it to wfdb
        return None
    try:
        n_sig, sig_len = int(head[1]), int(head[3])
    except ValueError:
        return None
    files, fmts, offsets = [], [], []
    for ln in lines[1 : 1 + n_sig]:
        tok = ln.split()
        m = _FMT.match(tok[1]) if len(tok) > 1 else None
        if m is None:
            return None
        files.append(tok[0])
        fmts.append(m.group(1))
        offsets.append(int(m.group(2)) if m.group(2) else None)
    if len(files) != n_sig:
        return None
    return n_sig, sig_len, files, fmts, offsets


_FMT = re.compile(r"(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?$")
_FMT16 = re.compile(r"16(?:x1)?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\((-?[0-9]+)\))?(?:/(\S+))?$")


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
                    offset: int, n_read: int | None = None) -> Recording | None:
    """Fast path for the most common layout (PTB-XL, CinC, MIMIC-IV-ECG): one signal file of
    interleaved little-endian 16-bit samples, one sample per frame, no skew, every header field
    present.  Returns ``None`` for anything else (wfdb then reads the record).

    Measured reason for not calling ``wfdb.rdrecord`` here: its header parsing costs about 9 ms per
    record (pandas indexing per field) against < 1 ms for the whole read below, which decides the
    throughput of ``predict`` on archives.  The values equal wfdb's exactly
    (``(digital - baseline) / gain`` in float64, -32768 → NaN), as the tests check on real records.
    The signal is made lead-major (C order) in the one conversion pass, so that every later
    per-lead pass (checks, filters) reads contiguous memory (a transposed view made numpy's
    per-lead reductions strided: 0.7 ms per record for ``np.ptp`` alone).
    """
    names, gains, baselines, units = [], [], [], []
    for ln in lines[1 : 1 + n_sig]:
        tok = ln.split()
        fm = _FMT16.match(tok[1]) if len(tok) >= 9 else None
        if fm is None or int(fm.group(1) or 0) != offset:
            return None
        m = _GAIN.match(tok[2])
        if m is None:
            return None
        try:
            gain = float(m.group(1)) or 200.0
            base = int(m.group(2)) if m.group(2) is not None else int(tok[4])
        except ValueError:
            return None
        gains.append(gain)
        baselines.append(base)
        units.append(m.group(3) or "mV")
        names.append(" ".join(tok[8:]))
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
    return _recording(hea, lines[0], fs, sig, units, names, comments)


def _recording(hea: Path, line: str, fs: float, sig: np.ndarray, units: list, names: list, comments: list) -> Recording:
    """A :class:`Recording` in mV from a WFDB record's physical signal ``(n_sig, n)``; channels in
    other units go to ``meta['other_channels']``."""
    keep, other = [], []
    for i, u in enumerate(units):
        scale = _UNIT_SCALE.get(str(u or "mV").strip().lower())
        if scale is None:
            other.append(f"{names[i]} ({u})")
            continue
        if scale != 1.0:
            sig[i] *= scale
        keep.append(i)
    if not keep:
        raise RecordReadError(hea, f"no voltage channel to read (the record holds {', '.join(other)}); "
                              "ECG channels have a voltage unit (mV, uV)")
    meta = {"id": line.split()[0].split("/")[0], "source": str(hea), "format": "wfdb", "units": "mV",
            "original_units": tuple(units[i] for i in keep)}
    if other:
        meta["other_channels"] = tuple(other)
    start = _acquired(line)
    if start:
        meta["acquired"] = start
    meta.update(_parse_comments(comments))  # an 'Acquired:' comment (exact, with its zone) wins
    if len(keep) < len(units):
        sig = sig[keep]
    return Recording(signal=sig, fs=fs, leads=tuple(canonical_lead(names[i]) for i in keep), meta=meta)


def _beside(hea: Path, name: str) -> None:
    """Refuse a file name in a header that is not a plain name beside it: WFDB records keep their
    signal files in the header's folder, and a header naming ``/etc/...`` or
    ``../x`` would make a reader of untrusted files (a service's uploads) read any file."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or (len(name) > 1 and name[1] == ":"):
        raise RecordReadError(hea, f"signal file {name!r} is not a plain file name in the header's folder (no folders, "
                              "'..' or drive letters); WFDB records keep their files beside the header")


def read_wfdb(path: str | Path, *, max_duration: float | None = None, **_: object) -> Recording:
    """Read a WFDB record given its ``.hea`` (or signal) file; signals converted to mV; with
    ``max_duration`` only the first ``max_duration`` seconds are read."""
    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() in (".hea", ".dat", ".mat") else p
    hea = base.with_suffix(".hea")
    if not hea.exists():
        raise RecordReadError(p, f"WFDB header {hea.name} not found")
    check_file(hea, max_bytes=1 << 20)
    try:  # the header is read and split once (it was read three times)
        lines, comments = _header_lines(hea.read_text(encoding="latin-1"))
    except OSError as exc:
        raise RecordReadError(hea, f"cannot open: {exc.strerror or exc}") from None
    fs = _header_fs(hea, lines)
    layout = _header_layout(lines)
    if layout is None:  # not the simple single-segment layout: let wfdb parse (and judge) it
        try:
            header = wfdb_module().rdheader(str(base))
        except Exception as exc:  # wfdb raises bare Exceptions on malformed headers
            raise RecordReadError(hea, f"corrupt WFDB header: {str(exc).strip() or type(exc).__name__}") from None
        layout = (int(header.n_sig or 0), int(header.sig_len or 0), list(header.file_name or []),
                  [str(x) for x in (header.fmt or [])], list(getattr(header, "byte_offset", None) or []))
    n_sig, sig_len, files, fmts, offsets = layout
    for fname in set(files):  # (wfdb's own header syntax already refuses paths as segment names)
        _beside(hea, str(fname))
    if n_sig <= 0 or sig_len <= 0:
        raise RecordReadError(hea, f"WFDB header declares {n_sig} signals of {sig_len} samples; nothing to read")
    check_values(hea, n_sig, sig_len, "WFDB header", max_duration=max_duration, fs=fs)
    n_read = samples_to_read(sig_len, fs, max_duration)
    offsets = offsets or [None] * n_sig
    for fname in sorted(set(files)):
        try:
            st = os.stat(hea.parent / fname)
            if not stat.S_ISREG(st.st_mode):  # a named pipe would make the read wait for ever
                raise RecordReadError(hea, f"signal file {fname} is not a regular file (a named pipe, socket or device)")
            have = st.st_size
        except FileNotFoundError:
            raise RecordReadError(hea, f"signal file {fname} is missing") from None
        except OSError as exc:
            raise RecordReadError(hea, f"cannot open signal file {fname}: {exc.strerror or exc}") from None
        chans = [k for k, x in enumerate(files) if x == fname]
        per = [_BYTES_PER_SAMPLE.get(fmts[k]) if k < len(fmts) else None for k in chans]
        if all(b is not None for b in per):
            off = max(int(offsets[k] or 0) for k in chans) if offsets else 0
            need = int(off + sig_len * sum(per))  # type: ignore[arg-type]
            if have < need:
                raise RecordReadError(
                    hea, f"signal file {fname} has {have} bytes, the header declares {n_sig} signals × {sig_len} "
                    f"samples ({need} bytes) (truncated, or a wrong header)"
                )
    if len(set(files)) == 1 and set(fmts) == {"16"} and len(set(offsets)) == 1:
        fast = _read_simple_16(hea, lines, comments, fs, n_sig, sig_len, int(offsets[0] or 0), n_read)
        if fast is not None:
            return fast
    try:
        rec = wfdb_module().rdrecord(str(base), physical=True, sampto=n_read)
    except Exception as exc:
        raise RecordReadError(hea, f"cannot read signal: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    sig = np.ascontiguousarray(np.asarray(rec.p_signal, dtype=np.float64).T)  # lead-major rows
    if sig.shape[1] != n_read:
        raise RecordReadError(hea, f"signal file holds {sig.shape[1]} samples, header declares {sig_len} (truncated?)")
    units = list(rec.units or ["mV"] * n_sig)
    return _recording(hea, lines[0], fs, sig, units, list(rec.sig_name), list(rec.comments or []))


def write_wfdb(rec: Recording, path: str | Path, *, fmt: str = "16", adc_gain: float | None = None) -> Path:
    """Write ``rec`` as a WFDB record (``.hea`` + ``.dat``) with ``wfdb.wrsamp``; returns the ``.hea``.

    Samples: each lead gets its own gain and baseline (wfdb's ``calc_adc_params``: the lead's
    min-max over the format's digital range), so in format 16 the step is (max - min) / 65533 mV of
    that lead and a value reads back within half a step; ``adc_gain`` (ADC units per mV) sets one
    gain for every lead instead (baseline 0).  NaN samples are WFDB's invalid sample and read back
    as NaN; so are +-inf samples, with a warning.

    Kept: lead names (spaces written as ``_``), the sampling rate as given (``128.0001``), and in
    header comments age, sex, ``dx``, ``statements``, patient id, birth date, device and
    ``acquired`` (also as the record line's base time and date, without time zone).  Not kept:
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
    comments = []
    if rec.meta.get("age") is not None:
        comments.append(f"Age: {float(rec.meta['age']):g}")
    if rec.meta.get("sex"):
        comments.append(f"Sex: {rec.meta['sex']}")
    for key in ("dx", "statements"):
        val = rec.meta.get(key)
        if val:
            label = "Dx" if key == "dx" else "Statements"
            comments.append(f"{label}: " + ",".join(str(x).replace(",", ";") for x in val))
    for key, label in _COMMENT_META.items():
        if rec.meta.get(key):
            comments.append(f"{label}: {rec.meta[key]}")
    comments = [" ".join(c.split()) for c in comments]  # one line each
    start = _base_datetime(rec.meta.get("acquired"))
    names = [str(x).replace(" ", "_") for x in rec.leads]
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


def _base_datetime(acquired: object) -> _dt.datetime | None:
    """``acquired`` (ISO text) as the record line's base time and date: local clock time, no zone."""
    if not acquired:
        return None
    try:
        return _dt.datetime.fromisoformat(str(acquired)).replace(tzinfo=None)
    except ValueError:
        return None


def _acquired(record_line: str) -> str | None:
    """``acquired`` (ISO) from a record line's base time and date (``HH:MM:SS[.f] DD/MM/YYYY``);
    ``None`` when the line has no date."""
    tok = record_line.split()
    if len(tok) < 6:
        return None
    try:
        day = _dt.datetime.strptime(tok[5], "%d/%m/%Y").date()
        t = re.fullmatch(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,6}))?", tok[4])
        if t is None:
            return day.isoformat()
        h, m, sec, frac = t.groups()
        return _dt.datetime(day.year, day.month, day.day, int(h), int(m), int(sec), int((frac or "0").ljust(6, "0"))).isoformat()
    except ValueError:
        return None
