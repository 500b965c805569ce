"""MATLAB ``.mat`` files (levels 4 and 5, i.e. MATLAB's ``-v4``, ``-v6`` and default ``-v7``
saves), as research datasets ship them: CPSC 2019's ``ecg`` vector, a ``val`` matrix, a struct
holding ``data`` and the patient's ``age``/``sex`` (CPSC 2018's ``ECG``), or a batch of recordings.

Read with scipy.io, after the file's compressed variables are expanded here under
:func:`~ecgfounder.io.limits.decompressed_limit` (scipy expands a compressed variable whole: a
1.8-MB file declaring 1.9 GB of zeros peaked at 315 MB just to list its variables).  A WFDB ``.mat`` (the
signal file of a ``.hea`` beside it) is read as WFDB, not here.  MATLAB 7.3 files (``-v7.3``, for
variables over 2 GB) are HDF5 inside: their variables are read with h5py under the same rules
(root datasets and 1 x 1 struct groups, told apart by MATLAB's ``MATLAB_class`` attribute; arrays
stored transposed, turned back to MATLAB's shape), each checked as the HDF5 reader checks its
datasets (no external or virtual storage, no declared size far above the stored one).

The signal is the variable ``key=``, else the only numeric array of at least two samples, else the
one named ``ecg``, ``val``, ``signal``, ``data``, ``sig`` or ``x`` (else the only struct or cell
array); in a struct, its field of one of those names.  A struct array (``ECG(k).data``) or a cell
array of signals (``recs{k}``) is a batch: each element a recording (in a -v7.3 file refused, saying
to save with -v7).  Complex arrays are refused.  A scalar variable (or struct field) ``fs``/``Fs``/``freq``/``srate`` gives the
rate where ``fs=`` does not, and a cell array of texts (or a char matrix) ``leads``/``labels``/
``channels``/... the lead names where ``leads=`` does not; otherwise, as for NumPy arrays, the rate
and lead names are the caller's (``fs=``, ``leads=``; 12 unnamed channels: order inferred),
amplitudes mV unless ``units=``.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import age_years, sex_code
from .arrays import _batch_from_array, _single
from .limits import MAX_VALUES, decompressed_limit

__all__ = ["read_matlab", "iter_matlab"]

_SIGNAL_NAMES = ("ecg", "val", "signal", "data", "sig", "x")
_RATE_NAMES = ("fs", "freq", "srate", "sampling_rate", "samplingrate", "sfreq")
_LEAD_NAMES = ("leads", "lead_names", "leadnames", "labels", "channels", "channel_names", "sig_name")
_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_CHUNK = 1 << 20


def _level5_expanded(p: Path, data: bytes) -> bytes:
    """A level-5 MAT file's bytes with each compressed variable expanded in place, under the
    decompression limit of the file's size (refused beyond it, before scipy sees anything)."""
    order = "<" if data[126:128] == b"IM" else ">"
    out, off, budget, size = [data[:128]], 128, decompressed_limit(len(data)), len(data)
    used = 0
    while off + 8 <= size:
        kind, nbytes = struct.unpack(order + "II", data[off:off + 8])
        end = off + 8 + nbytes
        if end > size:
            raise RecordReadError(p, f"MATLAB file truncated: a variable of {nbytes} bytes at byte {off} runs past "
                                  f"its end ({size} bytes)")
        if kind == _MI_COMPRESSED:  # expanded a megabyte at a time, never past the limit
            z, rest = zlib.decompressobj(), data[off + 8:end]
            try:
                while True:
                    raw = z.decompress(rest, _CHUNK)
                    rest, used = z.unconsumed_tail, used + len(raw)
                    if used > budget:
                        raise RecordReadError(p, f"compressed MATLAB variables expand beyond {budget} bytes (limit "
                                              f"for a {size}-byte file); refused as a decompression bomb")
                    out.append(raw)
                    if z.eof or not (raw or rest):
                        break
            except zlib.error as exc:
                raise RecordReadError(p, f"corrupt compressed MATLAB variable at byte {off}: {exc}") from None
        elif kind == _MI_MATRIX:
            out.append(data[off:end])
        off = end
    return b"".join(out)


def _opened(p: Path) -> io.BytesIO | None:
    """The file as level-5 (compressed variables expanded) or level-4 bytes, checked; None for a
    MATLAB 7.3 (HDF5) file."""
    from scipy.io.matlab import matfile_version

    try:
        with open(p, "rb") as fh:
            head = fh.read(128)  # (a 7.3 file, often gigabytes, is not read whole)
            data = head if head[124:128] in (b"\x00\x02IM", b"\x02\x00MI") else head + fh.read()
    except OSError as exc:
        raise RecordReadError(p, f"cannot open: {exc.strerror or exc}") from None
    if not data:
        raise RecordReadError(p, "file is empty (0 bytes)")
    try:
        major, _ = matfile_version(io.BytesIO(data))
    except Exception as exc:  # (scipy: "Unknown mat file type", a truncated header)
        raise RecordReadError(p, f"not a MATLAB .mat file ({' '.join(str(exc).split())[:120] or type(exc).__name__}); "
                              f"if it is a WFDB signal file, put its header {p.stem}.hea beside it") from None
    if major == 2:
        return None
    return io.BytesIO(_level5_expanded(p, data) if major == 1 else data)


def _variables(p: Path, fh: io.BytesIO) -> list[tuple[str, tuple[int, ...], str]]:
    from scipy.io import whosmat

    try:
        return [(str(n), tuple(int(d) for d in s), str(c)) for n, s, c in whosmat(fh)]
    except Exception as exc:
        raise RecordReadError(p, f"cannot list the MATLAB file's variables: {' '.join(str(exc).split())[:160]}") from None


def _pick(p: Path, names: Sequence[str], sizes: dict[str, int], key: str | None, what: str) -> str:
    """The variable (or field) holding the signal among ``names`` (``sizes``: elements of the numeric ones)."""
    if key is not None:
        if key not in names:
            raise RecordReadError(p, f"no {what} {key!r}; it has {', '.join(names) or 'none'}")
        return key
    arrays = [n for n in names if sizes.get(n, 0) >= 2]
    if len(arrays) == 1:
        return arrays[0]
    named = [n for n in arrays if n.lower() in _SIGNAL_NAMES] or [n for n in names if n.lower() in _SIGNAL_NAMES]
    if len(named) == 1:
        return named[0]
    others = [n for n in names if n not in sizes]  # (structs, cell arrays)
    if not arrays and len(others) == 1:
        return others[0]
    raise RecordReadError(p, f"cannot tell which {what} holds the signal among {', '.join(names) or 'none'}; "
                          "pass key=NAME")


def _rate(values: dict[str, Any]) -> float | None:
    for name, v in values.items():
        if name.lower() in _RATE_NAMES and np.size(v) == 1 and np.issubdtype(np.asarray(v).dtype, np.number):
            return float(np.asarray(v).ravel()[0])
    return None


def _load(p: Path, fh: io.BytesIO, names: list[str]) -> dict[str, Any]:
    from scipy.io import loadmat

    fh.seek(0)
    try:
        return loadmat(fh, variable_names=names, simplify_cells=True)
    except Exception as exc:
        raise RecordReadError(p, f"cannot read the MATLAB variables {', '.join(names)}: "
                              f"{' '.join(str(exc).split())[:160]}") from None


def _lead_names(values: dict[str, Any]) -> list[str] | None:
    """Lead names stored beside the signal: a cell array of texts (or a char matrix, a row each) named
    ``leads``, ``lead_names``, ``labels``, ``channels`` ... (``None`` where there is none)."""
    for name, v in values.items():
        if name.lower() not in _LEAD_NAMES:
            continue
        items = [v] if isinstance(v, str) else list(np.asarray(v, dtype=object).ravel()) if v is not None else []
        names = [x.strip() for x in items if isinstance(x, str)]
        if len(names) == 1 and "," in names[0]:  # ('I,II,III,...': one text)
            names = [x.strip() for x in names[0].split(",")]
        if names and len(names) == len(items) and all(names) and len(names) <= 64:
            return names
    return None


def _patient(fields: dict[str, Any]) -> dict[str, Any]:
    """``age``/``sex`` of a struct's fields (either capitalisation), where they hold a value."""
    meta: dict[str, Any] = {}
    for k in ("age", "sex"):
        v = fields.get(k) if k in fields else fields.get(k.capitalize())
        if isinstance(v, str) and v.strip():
            meta[k] = sex_code(v) if k == "sex" else age_years(v, None, f"the struct's {k}")
        elif v is not None and np.size(v) == 1 and np.issubdtype(np.asarray(v).dtype, np.number):
            meta[k] = age_years(float(np.asarray(v).ravel()[0]), None, f"the struct's {k}") if k == "age" else None
    return {k: v for k, v in meta.items() if v is not None}


def _from_struct(name: str, field: str, others: dict[str, Any], fs: float | None,
                 leads: list[str] | None) -> tuple[float | None, list[str] | None, dict[str, Any]]:
    """``(rate, lead names, meta)`` of struct ``name`` whose signal is ``field``, from its other fields
    (as loaded): its own rate and lead names where the file's top level gives none, age and sex."""
    meta = {**_patient(others), "matlab_variable": f"{name}.{field}"}
    return (fs if fs is not None else _rate(others)), (_lead_names(others) or leads), meta


def _h5_class(obj) -> str:
    c = obj.attrs.get("MATLAB_class", b"")
    return c.decode("ascii", "replace") if isinstance(c, bytes) else str(c)


def _h5_numeric(d) -> bool:
    """Whether a MATLAB 7.3 dataset is a real numeric array (a class MATLAB writes; numbers with none)."""
    cls = _h5_class(d)
    return (cls in _NUMERIC or (not cls and d.dtype.kind in "iuf")) and not d.attrs.get("MATLAB_empty")


def _h5_small(p: Path, ds) -> Any:
    """A MATLAB 7.3 scalar, text (``char``: UTF-16 codes; a char matrix: its rows) or cell array of
    texts, as loadmat gives it; None for others and for anything over a few hundred values."""
    from .hdf5 import _h5_safe

    cls = _h5_class(ds)
    if ds.size > 256 or ds.attrs.get("MATLAB_empty") or not (cls in ("char", "cell") or _h5_numeric(ds)):
        return None
    _h5_safe(p, ds)
    v = np.asarray(ds[()]).T
    if cls == "cell":  # references to the cells, each a variable of its own under '#refs#'
        cells = [ds.file[r] for r in v.ravel() if r]
        return [_h5_small(p, c) if isinstance(c, type(ds)) and _h5_class(c) == "char" else None for c in cells]
    if cls == "char":
        rows = ["".join(map(chr, row)) for row in np.atleast_2d(v)]
        return rows[0] if len(rows) == 1 else rows
    return v


def _h5_no_elements(p: Path, name: str, obj, field: str | None = None) -> None:
    """Refuse a MATLAB 7.3 cell array, or struct array (its fields hold references), of signals."""
    import h5py

    if not isinstance(obj, h5py.Dataset) or obj.dtype != h5py.ref_dtype or (field and _h5_class(obj) == "cell"):
        return  # (a struct's field that is a cell: refused as not numeric, below)
    what = f"struct array {name!r} (field {field!r})" if field else f"{_h5_class(obj) or 'reference'} array {name!r}"
    raise RecordReadError(p, f"MATLAB 7.3 {what} of shape {obj.shape[::-1]}: its elements are not read from a -v7.3 "
                          "file; save it with -v7 (each element is then read as a recording), or stack the signals "
                          "into one (n, leads, samples) array")


def _signal_h5(p: Path, key: str | None) -> tuple[np.ndarray, float | None, dict, list[str] | None]:
    """:func:`_signal` of a MATLAB 7.3 file: its root datasets are the variables, a 1 x 1 struct a
    group of fields, each stored transposed (HDF5 is row-major, MATLAB column-major)."""
    import h5py

    from .hdf5 import _h5_safe, _open_h5

    with _open_h5(p) as f:
        if len(f) > 4096:
            raise RecordReadError(p, f"MATLAB 7.3 file holds {len(f)} variables (limit 4096; refused)")
        root = {n: f.get(n) for n in f if not n.startswith("#") and isinstance(f.get(n, getlink=True), h5py.HardLink)}

        def numeric(group: dict) -> dict[str, int]:
            return {n: int(d.size) for n, d in group.items() if isinstance(d, h5py.Dataset) and _h5_numeric(d)}

        sizes = numeric(root)
        structs = [n for n, g in root.items() if (isinstance(g, h5py.Group) and _h5_class(g) == "struct")
                   or (_h5_class(g) == "cell" and n.lower() not in _LEAD_NAMES)]
        name = _pick(p, [n for n in root if n in sizes or n in structs], sizes, key, "variable")
        _h5_no_elements(p, name, root[name])
        fs = _rate({n: _h5_small(p, root[n]) for n in root if sizes.get(n) == 1 and n.lower() in _RATE_NAMES})
        leads = _lead_names({n: _h5_small(p, d) for n, d in root.items()
                             if n.lower() in _LEAD_NAMES and isinstance(d, h5py.Dataset)})
        ds, meta = root[name], {"matlab_variable": name}
        if isinstance(ds, h5py.Group):
            fields = {n: ds.get(n) for n in ds if isinstance(ds.get(n, getlink=True), h5py.HardLink)}
            fsizes = numeric(fields)
            field = _pick(p, list(fields), fsizes, None, f"field of struct {name!r}")
            _h5_no_elements(p, name, fields[field], field)
            if field not in fsizes:
                raise RecordReadError(p, f"field {field!r} of struct {name!r} is not a numeric array "
                                      f"({_h5_class(fields[field]) or 'no MATLAB class'})")
            small = {n: _h5_small(p, d) for n, d in fields.items() if n != field and isinstance(d, h5py.Dataset)}
            fs, leads, meta = _from_struct(name, field, small, fs, leads)
            ds = fields[field]
        if ds.size > MAX_VALUES:
            raise RecordReadError(p, f"MATLAB variable {meta['matlab_variable']!r} of shape {ds.shape[::-1]} is above "
                                  f"the limit of {MAX_VALUES} values")
        _h5_safe(p, ds)
        if ds.dtype.kind == "c" or (ds.dtype.names and {"real", "imag"} <= set(ds.dtype.names)):  # (MATLAB: real, imag)
            raise RecordReadError(p, f"MATLAB variable {meta['matlab_variable']!r} of shape {ds.shape[::-1]} holds "
                                  "complex numbers; an ECG is real-valued: save real(x) (the signal) in MATLAB")
        if not np.issubdtype(ds.dtype, np.number):
            raise RecordReadError(p, f"MATLAB variable {meta['matlab_variable']!r} is not a real numeric array "
                                  f"({_h5_class(ds)}, stored as {ds.dtype})")
        return np.asarray(ds[()]).T, fs, meta, leads


def _signal(p: Path, key: str | None) -> tuple[np.ndarray, float | None, dict, list[str] | None]:
    """``(array, rate the file gives or None, meta, lead names the file gives or None)`` of the file's
    signal variable."""
    fh = _opened(p)
    if fh is None:
        return _signal_h5(p, key)
    found = _variables(p, fh)
    sizes = {n: int(np.prod(s)) for n, s, c in found if c in _NUMERIC}
    for n, s, c in found:
        if c in _NUMERIC and sizes[n] > MAX_VALUES:
            raise RecordReadError(p, f"MATLAB variable {n!r} of shape {s} is above the limit of {MAX_VALUES} values")
    structs = [n for n, s, c in found if c == "struct" or (c == "cell" and n.lower() not in _LEAD_NAMES)]
    name = _pick(p, [n for n, _, c in found if c in _NUMERIC or n in structs], sizes, key, "variable")
    scalars = [n for n, s, c in found if c in _NUMERIC and sizes[n] == 1 and n.lower() in _RATE_NAMES]
    texts = [n for n, s, c in found if c in ("cell", "char") and n.lower() in _LEAD_NAMES and np.prod(s) <= 4096]
    got = _load(p, fh, [name, *scalars, *texts])
    value, fs, meta = got[name], _rate({n: got[n] for n in scalars if n in got}), {"matlab_variable": name}
    leads = _lead_names({n: got[n] for n in texts if n in got})
    shape, cls = next((s, c) for n, s, c in found if n == name)
    if cls == "cell" or (cls == "struct" and int(np.prod(shape)) != 1):  # each element a recording
        return _elements(p, name, shape, cls, value, fs, leads), fs, meta, leads
    if _fields(value) is not None:  # a struct: its signal field, rate and patient fields
        value, fs, leads, meta = _struct_signal(p, name, _fields(value), fs, leads)
    else:
        _check_real(p, name, value)
    return np.asarray(value), fs, meta, leads


def _fields(value: Any) -> dict[str, Any] | None:
    """A struct's fields as loadmat gives them (a dict; a ``mat_struct`` inside a 2-D struct array)."""
    if isinstance(value, dict):
        return value
    names = getattr(value, "_fieldnames", None)
    return None if names is None else {f: getattr(value, f) for f in names}


def _check_real(p: Path, what: str, value: Any) -> None:
    """Refuse ``value`` (MATLAB variable or element ``what``) unless it is a real numeric array."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        raise RecordReadError(p, f"MATLAB variable {what!r} of shape {value.shape} holds complex numbers; an ECG is "
                              "real-valued: save real(x) (the signal) in MATLAB, not a spectrum or analytic signal")
    if not (isinstance(value, np.ndarray) and value.dtype.kind in "iuf"):
        kind = f"{type(value).__name__} {getattr(value, 'dtype', '')}".strip()
        raise RecordReadError(p, f"MATLAB variable {what!r} is not a numeric array ({kind})")


def _struct_signal(p: Path, name: str, value: dict[str, Any], fs: float | None,
                   leads: list[str] | None) -> tuple[np.ndarray, float | None, list[str] | None, dict]:
    """``(signal, rate, lead names, meta)`` of struct ``name`` (its fields ``value``)."""
    fields = {k: v for k, v in value.items() if isinstance(v, np.ndarray) and v.dtype.kind in "iufc"}
    field = _pick(p, list(value), {k: int(v.size) for k, v in fields.items()}, None, f"field of struct {name!r}")
    if field not in fields:
        raise RecordReadError(p, f"field {field!r} of struct {name!r} is not a numeric array")
    _check_real(p, f"{name}.{field}", fields[field])
    fs, leads, meta = _from_struct(name, field, {k: v for k, v in value.items() if k != field}, fs, leads)
    return fields[field], fs, leads, meta


def _elements(p: Path, name: str, shape: tuple[int, ...], cls: str, value: Any, fs: float | None,
              leads: list[str] | None) -> list[tuple[np.ndarray, float | None, dict, list[str] | None]]:
    """``(signal, rate, meta, lead names)`` of each element of a struct array or cell array ``name``,
    in MATLAB's order (column-major: ``name(1)``, ``name(2)`` ...): each a recording of its own."""
    items = value if isinstance(value, list) else list(np.asarray(value, dtype=object).ravel(order="F")) \
        if isinstance(value, np.ndarray) and value.dtype == object else [value]
    out = []
    for k, item in enumerate(items):
        where = f"{name}({k + 1})" if cls == "struct" else f"{name}{{{k + 1}}}"
        if _fields(item) is not None:
            sig, fs_k, leads_k, meta = _struct_signal(p, where, _fields(item), fs, leads)
        else:
            _check_real(p, where, item)
            sig, fs_k, leads_k, meta = item, fs, leads, {"matlab_variable": where}
        if np.ndim(sig) > 2:
            raise RecordReadError(p, f"MATLAB {cls} {name!r} {'x'.join(map(str, shape))}: element {where} has shape "
                                  f"{np.shape(sig)}; each element is read as one recording (leads x samples)")
        out.append((np.asarray(sig), fs_k, {**meta, "id": f"{p.stem}#{k}", "index": k}, leads_k))
    if not out:
        raise RecordReadError(p, f"MATLAB {cls} {name!r} of shape {shape} is empty")
    return out


def _names(p: Path, arr: np.ndarray, meta: dict, leads: Sequence[str] | None,
           stored: list[str] | None) -> Sequence[str] | None:
    """The lead names: the caller's, else those the file stores (checked against the signal's shape)."""
    if leads is not None or stored is None:
        return leads
    if len(stored) not in arr.shape[-2:]:
        raise RecordReadError(p, f"the file names {len(stored)} leads ({', '.join(stored)}), but its signal "
                              f"{meta['matlab_variable']!r} has shape {arr.shape}; "
                              "pass leads=[...] (CLI: --leads) naming its channels")
    return stored


def iter_matlab(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None,
                units: str | None = None, key: str | None = None, max_duration: float | None = None,
                start: int = 0, stop: int | None = None, **_: Any) -> Iterator[Recording]:
    """Recordings of a ``.mat`` file: a ``(leads, samples)``/``(samples, leads)`` array, a vector (one
    lead), a batch ``(n, ...)``, or a struct array or cell array of signals, each element a recording
    (``id`` ``name#k``, ``meta['matlab_variable']`` ``ECG(k+1).data`` or ``ecg{k+1}``; ``start``/``stop``:
    only those items)."""
    p = Path(path)
    arr, fs_file, meta, stored = _signal(p, key)
    if isinstance(arr, list):  # a struct array or cell array: each element a recording
        for k in range(start, len(arr) if stop is None else min(stop, len(arr))):
            sig, fs_k, meta_k, stored_k = arr[k]
            yield from _batch_from_array(p, sig, fs if fs is not None else fs_k, _names(p, sig, meta_k, leads, stored_k),
                                         units, meta_k, "matlab", max_duration=max_duration)
        return
    leads = _names(p, arr, meta, leads, stored)
    if meta["matlab_variable"] == "val" and units is None:  # (PhysioNet's wfdb2mat and the CinC challenges)
        raise RecordReadError(p, f"variable 'val' is a WFDB signal in ADC units, whose gains are in its header: put "
                              f"{p.stem}.hea beside it (or pass units= if the values are in a voltage unit)")
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    yield from _batch_from_array(p, arr, fs if fs is not None else fs_file, leads, units, meta, "matlab",
                                 max_duration=max_duration, start=start, stop=stop)


def read_matlab(path: str | Path, **kw: Any) -> Recording:
    return _single(Path(path), iter_matlab(path, **kw), kw)

