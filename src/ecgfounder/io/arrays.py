"""Plain arrays: NumPy ``.npy``/``.npz`` and CSV/TSV text (HDF5: :mod:`ecgfounder.io.hdf5`).

These formats carry no standard metadata, so the sampling rate must come from the file (an
``fs`` entry in an ``.npz``, an ``fs`` attribute in HDF5, a ``# fs=500`` line or a time column in
CSV) or from the caller (``fs=``).  No rate is ever assumed.  Amplitudes are taken as mV unless
``units=`` says otherwise.  With exactly 12 unnamed channels the lead order is inferred from the
Goldberger relations between the columns: the standard order (I, II, III, aVR, aVL, aVF, V1–V6) or
MIMIC-IV-ECG's (aVF before aVL); ``meta['leads_assumed']`` says which, with a warning, and
``leads=`` names them explicitly.  Otherwise ``leads=`` is required.

Batches (``.npy`` of shape ``(n, ...)``, ``.npz`` with a 3-D ``signal``, HDF5 datasets such as
CODE-15's ``tracings`` ``(n, 4096, 12)`` at 400 Hz) yield one recording per item through the
``iter_*`` functions.
"""

from __future__ import annotations

import itertools
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import STANDARD_12
from ._common import check_file, make_recording, note, read_length, to_float, unit_scale_to_mv
from .limits import MAX_VALUES, check_decompressed, check_fs, parse_fs
from .opensignals import MAGIC as OPENSIGNALS_MAGIC

__all__ = [
    "read_npy", "iter_npy", "read_npz", "iter_npz", "read_csv",
]

_MAX_LEADS = 64


def _scale(p: Path, units: Any) -> Any:
    """Factor to mV of ``units``; for one unit per lead (an HDF5 attribute), a column of factors."""
    if isinstance(units, (list, tuple, np.ndarray)) and np.ndim(units) == 1:
        f = [_scale(p, str(u)) for u in units]
        return f[0] if len(set(f)) == 1 else np.asarray(f, dtype=np.float64)[:, None]
    f = unit_scale_to_mv(units or "mV")
    if f is None:
        raise ValueError(f"units={units!r} is not a voltage unit; choose mV, uV, V or nV.")
    return f


def _to_mv(p: Path, sig: np.ndarray, scale: Any) -> np.ndarray:
    """``sig`` (leads, samples) times :func:`_scale`'s factor(s), one per lead when a column."""
    if np.ndim(scale) and np.shape(scale)[0] != sig.shape[0]:
        raise RecordReadError(p, f"{np.shape(scale)[0]} units given for {sig.shape[0]} leads; give one unit, or one per lead")
    return sig * scale


def _orient(p: Path, arr: np.ndarray, n_leads: int | None) -> np.ndarray:
    """(leads, samples) from a 2-D array in either orientation (the lead axis is the short one)."""
    if arr.ndim == 1:
        return arr[None, :]
    if arr.ndim != 2:
        raise RecordReadError(p, f"expected a 2-D (leads, samples) array, got shape {arr.shape}")
    r, c = arr.shape
    if r == c > 1:
        raise RecordReadError(p, f"array of shape {arr.shape} is square: its lead axis cannot be told from its sample "
                              "axis; store it as (leads, samples) with more samples than leads")
    if n_leads is not None:
        if r == n_leads and c != n_leads:
            return arr
        if c == n_leads and r != n_leads:
            return arr.T
        if r == n_leads:
            return arr
    if r <= _MAX_LEADS and r <= c:
        return arr
    if c <= _MAX_LEADS:
        return arr.T
    raise RecordReadError(p, f"cannot tell the lead axis of an array of shape {arr.shape}; pass leads=")


MIMIC_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")


def _infer_12_order(sig: np.ndarray | None) -> tuple[str, str]:
    """``('standard' | 'mimic', explanation)`` for 12 unnamed channels, from which of columns 5 and 6
    fits aVL = I − II/2 and aVF = II − I/2 (Goldberger); the standard order when undecided."""
    if sig is not None and sig.shape[0] == 12 and sig.shape[1] > 1:
        i, ii, c5, c6 = (np.nan_to_num(sig[k]) for k in (0, 1, 4, 5))
        avl, avf = i - ii / 2, ii - i / 2
        scale = max(float(np.ptp(ii)), 1e-9)
        std = max(float(np.max(np.abs(c5 - avl))), float(np.max(np.abs(c6 - avf)))) / scale
        mim = max(float(np.max(np.abs(c5 - avf))), float(np.max(np.abs(c6 - avl)))) / scale
        if mim < 0.05 <= std:
            return "mimic", "MIMIC-IV-ECG order (I, II, III, aVR, aVF, aVL, V1-V6: columns 5-6 fit aVF, aVL)"
        if std < 0.05:
            return "standard", "the standard order I, II, III, aVR, aVL, aVF, V1-V6 (columns 5-6 fit aVL, aVF)"
    return "standard", "the standard order I, II, III, aVR, aVL, aVF, V1-V6 (unverified: the limb columns do not " \
        "fit Goldberger's relations)"


def _lead_names(p: Path, n: int, leads: Sequence[str] | None, meta: dict,
                sig: np.ndarray | None = None) -> tuple[str, ...]:
    if leads is not None:
        leads = tuple(leads)
        if len(leads) != n:
            raise RecordReadError(p, f"{len(leads)} lead names given for {n} channels: {list(leads)}")
        return leads  # (canonical in make_recording, which notes a modified lead read as the standard one)
    if n == 12:
        order, why = _infer_12_order(sig)
        meta["leads_assumed"] = order
        note("leads_assumed", order, f"{p}: 12 unnamed channels taken as {why}; pass leads=[...] (CLI: --leads) "
             "if the file uses another order")
        return STANDARD_12 if order == "standard" else MIMIC_ORDER
    if n == 1:
        raise RecordReadError(p, "1 channel and no lead name; pass leads=['II'] (CLI: --leads II)")
    raise RecordReadError(p, f"{n} channels and no lead names; pass leads=[...] (CLI: --leads I,II,...)")


def _need_fs(p: Path, fs: float | None) -> float:
    if fs is None:
        raise RecordReadError(p, "sampling rate unknown (the file does not store it); pass fs=... (CLI: --fs)")
    return check_fs(p, fs, given=True)


# ----------------------------------------------------------------------------------------- npy / npz
def _open_npy_header(p: Path, max_duration: float | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the ``.npy`` header, checked against the file size before loading."""
    size = check_file(p, min_bytes=10)
    with open(p, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = reader(fh, max_header_size=100_000)
        except Exception as exc:
            raise RecordReadError(p, f"not a valid .npy file: {str(exc).strip() or type(exc).__name__}") from None
        offset = fh.tell()
    if dtype.hasobject:
        raise RecordReadError(p, ".npy holds Python objects; only numeric arrays are read (pickles are refused)")
    n = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if n > MAX_VALUES and not (max_duration and len(shape) == 2):
        raise RecordReadError(p, f".npy declares shape {shape}, above the limit of {MAX_VALUES} values"
                              + ("; pass max_duration=SECONDS to read the first part" if len(shape) == 2 else ""))
    if offset + n * dtype.itemsize > size:
        raise RecordReadError(p, f".npy declares shape {shape} ({n * dtype.itemsize} bytes) but the file is shorter (truncated)")
    return shape, dtype


def _members(n: int, start: int = 0, stop: int | None = None) -> range:
    """The items ``start`` to ``stop - 1`` of a batch of ``n`` (``stop=None``: to the end)."""
    return range(n)[slice(int(start), None if stop is None else int(stop))]


def count_npy(path: str | Path, **_: Any) -> int:
    """Recordings in a ``.npy`` file (``n`` of an ``(n, ...)`` batch, else 1), from its header."""
    shape, _ = _open_npy_header(Path(path), max_duration=1.0)
    return int(shape[0]) if len(shape) == 3 else 1


def _batch_from_array(
    p: Path, arr: np.ndarray, fs: float | None, leads, units, meta: dict, fmt: str, ids: Sequence[str] | None = None,
    max_duration: float | None = None, start: int = 0, stop: int | None = None,
) -> Iterator[Recording]:
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise RecordReadError(p, f"array dtype {arr.dtype} is not real-valued numeric")
    scale = _scale(p, units)
    if arr.ndim <= 2:
        if not _members(1, start, stop):
            return
        fs_ok = _need_fs(p, fs)
        view = _orient(p, arr, len(leads) if leads is not None else None)
        n = read_length(view.shape[1], fs_ok, max_duration)
        if view.shape[0] * n > MAX_VALUES:
            raise RecordReadError(p, f"array of shape {arr.shape} is above the limit of {MAX_VALUES} values; "
                                  "pass max_duration=SECONDS to read the first part")
        sig = _to_mv(p, np.asarray(view[:, :n], dtype=np.float64), scale)
        m = dict(meta)
        names = _lead_names(p, sig.shape[0], leads, m, sig)
        yield make_recording(p, sig, fs_ok, names, m, fmt=fmt)
        return
    if arr.ndim != 3:
        raise RecordReadError(p, f"array of shape {arr.shape}; expected (leads, samples) or (n, ...) batches")
    fs_ = _need_fs(p, fs)
    for k in _members(arr.shape[0], start, stop):
        sig = _to_mv(p, _orient(p, np.asarray(arr[k], dtype=np.float64), len(leads) if leads is not None else None), scale)
        m = dict(meta)
        m["id"] = (str(ids[k]) if ids is not None and k < len(ids) else f"{p.stem}#{k}")
        m["index"] = k
        names = _lead_names(p, sig.shape[0], leads, m, sig)
        yield make_recording(p, sig, fs_, names, m, fmt=fmt)


def iter_npy(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None,
             units: str | None = None, max_duration: float | None = None, start: int = 0, stop: int | None = None,
             **_: Any) -> Iterator[Recording]:
    """Recordings of a ``.npy`` file: ``(leads, samples)``/``(samples, leads)`` or a batch ``(n, ..)``
    (``start``/``stop``: only those items, read from the memory-mapped file)."""
    p = Path(path)
    _open_npy_header(p, max_duration)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise RecordReadError(p, f"cannot load .npy: {str(exc).strip() or type(exc).__name__}") from None
    yield from _batch_from_array(p, arr, fs, leads, units, {}, "npy", max_duration=max_duration, start=start, stop=stop)


def read_npy(path: str | Path, **kw: Any) -> Recording:
    return _single(Path(path), iter_npy(path, **kw), kw)


def _npz_meta(p: Path, z) -> tuple[dict, float | None, list[str] | None, str | None]:
    meta: dict = {}
    fs = to_float(np.asarray(z["fs"]).item()) if "fs" in z.files else None
    leads = [str(x) for x in np.asarray(z["leads"]).ravel()] if "leads" in z.files else None
    units = str(np.asarray(z["units"]).item()) if "units" in z.files else None
    if "meta_json" in z.files:
        try:
            meta = dict(json.loads(str(np.asarray(z["meta_json"]).item())))
        except (ValueError, TypeError):
            raise RecordReadError(p, "meta_json entry is not valid JSON") from None
    return meta, fs, leads, units


def _check_npz_members(p: Path, size: int) -> None:
    """Before numpy decompresses anything: every member's declared size within the decompression
    limit, and every member's ``.npy`` header (shape × itemsize) within its declared size."""
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RecordReadError(p, f"not a valid .npz archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > 1000:
            raise RecordReadError(p, f".npz holds {len(infos)} entries (limit 1000)")
        check_decompressed(p, sum(i.file_size for i in infos), size, ".npz entries")
        for info in infos:
            try:
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, _f, dtype = reader(fh, max_header_size=100_000)
            except Exception as exc:
                msg = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise RecordReadError(p, f"entry {info.filename!r} is not a valid .npy array: {msg}") from None
            n = int(np.prod(shape, dtype=np.float64)) if shape else 1
            if dtype.hasobject:
                raise RecordReadError(p, f"entry {info.filename!r} holds Python objects (pickles are refused)")
            if n * dtype.itemsize > info.file_size:
                raise RecordReadError(p, f"entry {info.filename!r} declares shape {shape} ({n * dtype.itemsize} bytes) "
                                      f"but holds {info.file_size} bytes (corrupt)")


def iter_npz(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None,
             units: str | None = None, key: str | None = None, start: int = 0, stop: int | None = None,
             **_: Any) -> Iterator[Recording]:
    """Recordings of an ``.npz`` archive.

    The signal is the entry ``key`` (default: ``signal``, else the only numeric array with ≥ 2
    dimensions); optional entries ``fs``, ``leads``, ``units``, ``meta_json`` (as written by
    :func:`ecgfounder.io.write`) and ``ids`` for batches; ``start``/``stop``: only those items.
    """
    p = Path(path)
    size = check_file(p, min_bytes=22)
    _check_npz_members(p, size)
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise RecordReadError(p, f"not a valid .npz archive: {str(exc).strip() or type(exc).__name__}") from None
    with z:
        meta, fs_f, leads_f, units_f = _npz_meta(p, z)
        if key is None:
            if "signal" in z.files:
                key = "signal"
            else:
                cands = [k for k in z.files if k not in ("fs", "leads", "units", "meta_json", "ids")]
                if len(cands) != 1:
                    raise RecordReadError(p, f"cannot tell the signal entry among {z.files}; pass key=")
                key = cands[0]
        if key not in z.files:
            raise RecordReadError(p, f"no entry {key!r} in the archive; it has {z.files}")
        try:
            arr = z[key]
        except Exception as exc:
            raise RecordReadError(p, f"cannot read entry {key!r}: {str(exc).strip() or type(exc).__name__}") from None
        ids = [str(x) for x in np.asarray(z["ids"]).ravel()] if "ids" in z.files else None
    meta.pop("source", None)
    meta.pop("format", None)
    yield from _batch_from_array(
        p, arr, fs if fs is not None else fs_f, leads if leads is not None else leads_f,
        units if units is not None else (units_f or meta.get("units")), meta, "npz", ids, start=start, stop=stop,
    )


def read_npz(path: str | Path, **kw: Any) -> Recording:
    return _single(Path(path), iter_npz(path, **kw), kw)


# ----------------------------------------------------------------------------------------- CSV/TSV
_MAX_TEXT_BYTES = 256 * 1024 * 1024
_MAX_CSV_COLUMNS = 1024 + 8
# a time column: its name, then its unit (seconds if none)
_TIME = re.compile(r"^(?:time|t|seconds|sec|s|elapsed[ _]time|timestamp)(?:\s*[(\[]\s*(s|sec|ms)\s*[)\]]|_(s|sec|ms))?$", re.I)
_INDEX_NAMES = {"sample", "index", "n", "nseq", "sample #", "sample_index", ""}


def read_csv(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None,
             units: str | None = None, delimiter: str | None = None, max_duration: float | None = None,
             **_: Any) -> Recording:
    """Read a CSV/TSV file: one column per lead, lead names in the header row.

    The sampling rate is ``fs=``, a comment line ``# fs=500`` (also ``sampling_rate``,
    ``sampling rate: 500 Hz``), or derived from a time column (``time``, ``time (s)``, ``t_ms``; see
    :func:`_rate_from_times`).  A column named ``sample``/``index`` is dropped.  Units per column
    may be given in the header, e.g. ``I (uV)``.  Separators ``,``, ``;`` and tab; with ``;`` or tab,
    decimal commas (European exports); quoted fields; UTF-8 (with or without BOM), UTF-16 with BOM.
    """
    p = Path(path)
    check_file(p, max_bytes=_MAX_TEXT_BYTES)
    raw = p.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with BOM ("Unicode text" from spreadsheets)
        try:
            raw = raw.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            raise RecordReadError(p, "text file starts with a UTF-16 byte-order mark but is not UTF-16") from None
    if b"\x00" in raw[:4096]:
        raise RecordReadError(p, "binary content in a text (CSV/TSV) file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    del raw
    # lines are taken one at a time (a list of every line of a 256-MB file of short rows took
    # over 3 GB); \r\n and \r end lines as \n does (as str.splitlines)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    n_lines = text.count("\n") + 1
    stream = _lines(text)
    fs_found = None
    comments = []
    first = None
    for line in stream:
        s = line.strip()
        if s.startswith("#"):
            comments.append(s)
            m = re.search(r"(?:\bfs|sampling[ _]?(?:rate|frequency)|sample[ _]?rate)\"?\s*[:=]\s*\"?([-+0-9.eE,]+)", s, re.I)
            if m and fs is None:  # fs= given: the comment's rate is not needed (nor checked)
                # a separator after the number ('"sampling rate": 1000, ...' in a JSON header) is
                # not part of it; a decimal comma ('1,5') still is, and is refused
                fs_found = parse_fs(p, m.group(1).rstrip(","), "sampling rate in the comment line", given=True)
        elif s:
            first = line
            break
    if first is None:
        raise RecordReadError(p, "no data rows")
    if delimiter is None:
        bare = re.sub(r'"[^"]*"', "x", first)  # ';' unless commas separate more fields (not decimal commas)
        semi = bare.split(";")
        delimiter = "\t" if "\t" in bare else (";" if len(semi) > 1 and (len(semi) > bare.count(",") or all(
            _numeric(f.strip().replace(",", ".")) for f in semi)) else ",")
    n_fields = first.rstrip(delimiter + "\r\n").count(delimiter) + 1
    if n_fields > _MAX_CSV_COLUMNS:
        raise RecordReadError(p, f"first row has {n_fields} columns (limit {_MAX_CSV_COLUMNS}: one per lead, plus "
                              "time or sample columns); is delimiter= right?")
    header = [h.strip().strip('"') for h in first.rstrip(delimiter + "\r\n").split(delimiter)]
    has_header = any(not _numeric(h if delimiter == "," else h.replace(",", ".")) for h in header if h)
    if comments[:1] == [OPENSIGNALS_MAGIC] and not has_header:  # its rows are raw ADC counts, not mV
        raise RecordReadError(p, "an OpenSignals export (raw ADC counts, not mV): read it with format='opensignals' "
                              "(CLI: --format opensignals), which applies its sensor's transfer function")
    rows = (line.rstrip(delimiter + " \r\n") for line in stream)
    data_lines = rows if has_header else itertools.chain([first.rstrip(delimiter + " \r")], rows)
    if delimiter != ",":  # a comma in a row of numbers separated by ';' or tabs is a decimal comma
        data_lines = (line.replace(",", ".") for line in data_lines)
    max_rows = MAX_VALUES // n_fields
    n_rows = n_lines - len(comments) - (1 if has_header else 0)  # at most (blank lines counted)
    if n_rows > max_rows:
        raise RecordReadError(p, f"{n_rows} rows of {n_fields} columns, above the limit of {MAX_VALUES} values")
    try:  # (max_rows= would make numpy allocate that many rows at once)
        arr = np.loadtxt(data_lines, delimiter=delimiter, ndmin=2, dtype=np.float64, quotechar='"')
    except ValueError as exc:
        raise RecordReadError(p, f"non-numeric data: {str(exc).strip().splitlines()[0]}") from None
    if arr.size == 0:
        raise RecordReadError(p, "no data rows")
    names = header if has_header else [f"ch{k + 1}" for k in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise RecordReadError(p, f"header has {len(names)} columns, data rows have {arr.shape[1]}")
    keep, col_units, lead_names = [], [], []
    for k, name in enumerate(names):
        low = name.strip().lower()
        tm = _TIME.match(low)
        if tm:
            if fs_found is None and fs is None:  # (given fs=, the column is not read)
                fs_found = _rate_from_times(p, arr[:, k] * (1e-3 if "ms" in tm.groups() else 1.0), name)
            continue
        if has_header and low in _INDEX_NAMES:
            continue
        m = re.match(r"^(.*?)\s*[\(\[]\s*([µμu]?[mn]?V)\s*[\)\]]\s*$", name)
        lead_names.append(m.group(1) if m else name)
        col_units.append(m.group(2) if m else None)
        keep.append(k)
    sig = arr[:, keep].T
    for k, u in enumerate(col_units):
        sig[k] *= _scale(p, u or units)
    meta: dict = {}
    if comments:
        meta["comments"] = tuple(comments)
    if fs_found is not None and fs is None:
        fs_found = round(fs_found, 6)
    out_leads = leads if leads is not None else (lead_names if has_header else None)
    fs_ok = _need_fs(p, fs if fs is not None else fs_found)
    sig = sig[:, : read_length(sig.shape[1], fs_ok, max_duration)]
    return make_recording(p, sig, fs_ok, _lead_names(p, sig.shape[0], out_leads, meta, sig), meta, fmt="csv")


def _rate_from_times(p: Path, t: np.ndarray, name: str) -> float:
    """The rate of a time column in seconds: the least-squares slope of the times over the sample
    numbers (the median step was wrong for rounded times: 0.002/0.003-s steps at 360 Hz written to
    the ms gave 333.3 Hz), a whole number of Hz if one lies within the times' rounding.  A column
    that goes back, or has a gap or a join (a time off the regular grid by more than half a sample
    and its rounding, or a step of 1.5 samples or more), is refused."""
    k = np.arange(t.size)
    d = np.diff(t)
    if t.size < 2 or not np.isfinite(t).all() or (d < 0).any() or t[-1] <= t[0]:
        raise RecordReadError(p, f"time column {name!r} does not increase from row to row; pass fs=... (CLI: --fs)")
    step, t0 = np.polyfit(k, t, 1)
    resid = float(np.max(np.abs(t - (t0 + step * k))))
    q = float(d[d > 0].min())  # the times' resolution (coarser than a sample: steps of 0)
    if resid > 0.5 * (step + q) or (d.min() > 0.5 * step and d.max() >= 1.5 * step):
        i = int(np.argmax(np.abs(d - step)))
        raise RecordReadError(p, f"time column {name!r} is not evenly spaced (a step of {d[i]:g} s at {t[i]:g} s, the "
                              f"mean step is {step:g} s: a gap or a join); pass fs=... (CLI: --fs) to ignore it")
    fs = 1.0 / step
    tol = fs * 2 * resid / (t[-1] - t[0]) + 1e-9 * fs
    return float(round(fs)) if abs(fs - round(fs)) <= tol else fs


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` (split at ``\\n``, without it), one at a time."""
    pos, n = 0, len(text)
    while pos < n:
        end = text.find("\n", pos)
        if end < 0:
            end = n
        yield text[pos:end]
        pos = end + 1


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _single(p: Path, it: Iterator[Recording], kw: dict) -> Recording:
    first = next(it, None)
    if first is None:
        raise RecordReadError(p, "no recordings in the file")
    second = next(it, None)
    if second is not None:
        if hasattr(it, "close"):
            it.close()
        raise RecordReadError(
            p, "file holds a batch of recordings; use ecgfounder.io.iter_read() (the CLI reads every one)"
        )
    return first
