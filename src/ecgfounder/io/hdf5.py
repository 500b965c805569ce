"""HDF5 datasets: a 2-D ``(leads, samples)`` array or a batch such as CODE-15's ``tracings``
``(n, 4096, 12)``, read one item at a time.

Before any data is read, the file is walked without following links (bounded objects and depth),
and the chosen dataset is checked: external storage, virtual datasets and external links (which
read other local files, e.g. ``/etc/passwd``) are refused, and a dataset may not declare far more
data than it stores (sparse or compression bombs; see :mod:`ecgfounder.io.limits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import STANDARD_12
from ._common import check_file, make_recording, read_length, to_float
from .arrays import _batch_from_array, _lead_names, _members, _need_fs, _orient, _scale, _single, _to_mv
from .limits import MAX_H5_DEPTH, MAX_H5_OBJECTS, MAX_VALUES, check_decompressed, file_size

__all__ = ["read_hdf5", "iter_hdf5", "count_hdf5"]

_KNOWN_H5 = {
    # dataset name -> (fs, leads) of public datasets that do not store them (CODE-15, Ribeiro et al. 2020)
    "tracings": (400.0, STANDARD_12),
}


def _h5_walk(p: Path, f) -> list:
    """Every dataset of the file, walked without following soft or external links, within
    :data:`MAX_H5_OBJECTS` objects and :data:`MAX_H5_DEPTH` levels; an external link is refused."""
    import h5py

    out, seen, queue, count = [], set(), [(f, 0)], 0
    while queue:
        grp, depth = queue.pop()
        if len(grp) + count > MAX_H5_OBJECTS:
            raise RecordReadError(p, f"HDF5 file holds more than {MAX_H5_OBJECTS} objects (refused)")
        for name in grp:
            count += 1
            link = grp.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise RecordReadError(p, f"HDF5 object {grp.name.rstrip('/')}/{name} is a link to another file "
                                      f"({link.filename}); external links are refused")
            if isinstance(link, h5py.SoftLink):
                continue
            obj = grp.get(name)
            if isinstance(obj, h5py.Group):
                key = obj.id.__hash__()
                if key in seen:
                    continue
                seen.add(key)
                if depth + 1 > MAX_H5_DEPTH:
                    raise RecordReadError(p, f"HDF5 groups nested deeper than {MAX_H5_DEPTH} levels (refused)")
                queue.append((obj, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                out.append(obj)
    return out


def _h5_safe(p: Path, ds) -> None:
    """Refuse datasets that read other files (external storage, virtual datasets) or declare far
    more data than they store (sparse or compression bombs), before any data is read."""
    if ds.external:
        raise RecordReadError(p, f"HDF5 dataset {ds.name} uses external storage ({ds.external[0][0]!r}); "
                              "datasets stored outside the file are refused")
    if ds.is_virtual:
        raise RecordReadError(p, f"HDF5 dataset {ds.name} is a virtual dataset (maps other files); refused")
    nbytes = int(np.prod(ds.shape, dtype=np.float64)) * ds.dtype.itemsize if ds.shape else ds.dtype.itemsize
    stored = int(ds.id.get_storage_size())
    if ds.chunks is None:
        if nbytes > stored or stored > file_size(p):
            raise RecordReadError(p, f"HDF5 dataset {ds.name} declares {nbytes} bytes but stores {stored} "
                                  f"(the file has {file_size(p)}); refused")
        return
    chunk = int(np.prod(ds.chunks, dtype=np.float64)) * ds.dtype.itemsize
    if chunk > (64 << 20):
        raise RecordReadError(p, f"HDF5 dataset {ds.name} has chunks of {chunk} bytes (limit {64 << 20})")
    check_decompressed(p, nbytes, stored, f"HDF5 dataset {ds.name}")


def _h5_dataset(p: Path, f, dataset: str | None):
    import h5py

    if dataset is not None:
        if dataset not in f:
            raise RecordReadError(p, f"no dataset {dataset!r} in the HDF5 file")
        if isinstance(f.get(dataset, getlink=True), h5py.ExternalLink):
            raise RecordReadError(p, f"{dataset!r} is a link to another file; external links are refused")
        ds = f[dataset]
        if not isinstance(ds, h5py.Dataset):
            raise RecordReadError(p, f"{dataset!r} is a group, not a dataset")
        _h5_safe(p, ds)
        return ds
    found = [d for d in _h5_walk(p, f) if d.ndim >= 2]
    numeric = [d for d in found if np.issubdtype(d.dtype, np.number)]
    pick = None
    if len(numeric) == 1:
        pick = numeric[0]
    else:
        pick = next((d for d in numeric if d.name.rsplit("/", 1)[-1] in ("signal", "tracings", "ecg", "data")), None)
    if pick is None:
        raise RecordReadError(p, f"cannot tell the signal dataset among {[d.name for d in numeric][:20] or 'none'}; "
                              "pass dataset=")
    _h5_safe(p, pick)
    return pick


def _h5_attr(obj, *names):
    """The first of the attributes ``names`` of ``obj``: text decoded, a 1-D array as a list (of one
    value: the value)."""
    for n in names:
        if n in obj.attrs:
            v = obj.attrs[n]
            if isinstance(v, np.ndarray) and v.ndim <= 1:
                v = [x.decode() if isinstance(x, bytes) else x for x in np.atleast_1d(v).tolist()]
                return v[0] if len(v) == 1 else v
            return v.decode() if isinstance(v, bytes) else v
    return None


_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _open_h5(p: Path):
    import h5py

    check_file(p, min_bytes=8)
    with open(p, "rb") as fh:  # the signature at 0, or after a user block of 512 * 2^k bytes (MATLAB 7.3: 512)
        heads = [(fh.seek(at), fh.read(8))[1] for at in (0, 512, 1024, 2048, 4096)]
    if _SIGNATURE not in heads:
        raise RecordReadError(p, "not an HDF5 file (bad signature)")
    try:
        return h5py.File(p, "r")
    except Exception as exc:
        raise RecordReadError(p, f"cannot open HDF5 file: {str(exc).strip().splitlines()[0]}") from None


def count_hdf5(path: str | Path, *, dataset: str | None = None, **_: Any) -> int:
    """Recordings in an HDF5 file (the items of a 3-D batch dataset, else 1), from its shape."""
    p = Path(path)
    with _open_h5(p) as f:
        ds = _h5_dataset(p, f, dataset)
        return int(ds.shape[0]) if ds.ndim == 3 else 1


def iter_hdf5(path: str | Path, *, dataset: str | None = None, fs: float | None = None,
              leads: Sequence[str] | None = None, units: str | None = None, ids: str | None = None,
              max_duration: float | None = None, start: int = 0, stop: int | None = None,
              **_: Any) -> Iterator[Recording]:
    """Recordings of an HDF5 dataset: 2-D ``(leads, samples)`` or a batch ``(n, samples, leads)``/
    ``(n, leads, samples)``; read one item at a time (bounded memory); ``start``/``stop``: only
    the items ``start`` to ``stop - 1`` (a 2-D dataset is item 0).

    ``fs``/``leads``/``units`` come from the arguments, else from the dataset or file attributes
    (``fs``/``sampling_rate``, ``leads``/``lead_names``, ``units``), else from the known layout of
    CODE-15 (dataset ``tracings``: 400 Hz, 12 standard leads).  Record ids come from a sibling
    dataset ``exam_id``/``ids`` when present (or the one named by ``ids=``).
    """
    import h5py

    p = Path(path)
    f = _open_h5(p)
    try:
        ds = _h5_dataset(p, f, dataset)
        base = ds.name.rsplit("/", 1)[-1]
        fs_ = fs if fs is not None else to_float(_h5_attr(ds, "fs", "sampling_rate", "sampling_frequency", "sfreq"))
        if fs_ is None:
            fs_ = to_float(_h5_attr(f, "fs", "sampling_rate", "sampling_frequency", "sfreq"))
        lds = leads
        if lds is None:
            a = _h5_attr(ds, "leads", "lead_names", "channels")
            if a is None:
                a = _h5_attr(f, "leads", "lead_names")
            if a is not None:
                lds = [x.decode() if isinstance(x, bytes) else str(x) for x in np.atleast_1d(a)]
        meta: dict = {"dataset": ds.name}
        if (fs_ is None or lds is None) and base in _KNOWN_H5 and ds.ndim == 3 and 12 in ds.shape[1:]:
            kfs, kleads = _KNOWN_H5[base]
            if fs_ is None:
                fs_ = kfs
                meta["fs_from_known_layout"] = f"CODE-15 '{base}'"
            if lds is None:
                lds = kleads
        u = units if units is not None else _h5_attr(ds, "units", "unit")
        if u is None:  # (as the rate and the leads: the dataset's attribute, else the file's)
            u = _h5_attr(f, "units", "unit")
        if not np.issubdtype(ds.dtype, np.number):
            raise RecordReadError(p, f"dataset {ds.name} has non-numeric dtype {ds.dtype}")
        id_values = None
        parent = ds.parent
        for cand in ([ids] if ids else ["exam_id", "ids", "record_id", "id"]):
            if cand and cand in parent and cand != base:
                if not isinstance(parent.get(cand, getlink=True), h5py.HardLink):
                    continue
                d = parent[cand]
                if getattr(d, "ndim", 0) == 1 and d.shape[0] == ds.shape[0] and d.shape[0] <= MAX_VALUES // 8:
                    _h5_safe(p, d)
                    id_values = d[()]
                    break
        if ds.ndim <= 2:
            if not _members(1, start, stop):
                return
            fs_ok = _need_fs(p, fs_)
            if ds.ndim == 2:
                rows, cols = ds.shape
                long_axis = 1 if (lds is not None and rows == len(lds)) or (lds is None and rows <= cols) else 0
                n = read_length(ds.shape[long_axis], fs_ok, max_duration)
                if (ds.shape[1 - long_axis]) * n > MAX_VALUES:
                    raise RecordReadError(p, f"dataset {ds.name} of shape {ds.shape} is above the limit of {MAX_VALUES} "
                                          "values; pass max_duration=SECONDS to read the first part")
                arr = ds[:, :n] if long_axis == 1 else ds[:n, :]
            else:
                if ds.size > MAX_VALUES:
                    raise RecordReadError(p, f"dataset {ds.name} of shape {ds.shape} is above the limit of {MAX_VALUES} values")
                arr = ds[()]
            yield from _batch_from_array(p, arr, fs_, lds, u, meta, "hdf5")
            return
        if ds.ndim != 3:
            raise RecordReadError(p, f"dataset {ds.name} has shape {ds.shape}; expected 2-D or 3-D")
        per = int(np.prod(ds.shape[1:]))
        if per > MAX_VALUES:
            raise RecordReadError(p, f"dataset items of shape {ds.shape[1:]} exceed the limit of {MAX_VALUES} values")
        fs_ok = _need_fs(p, fs_)
        for k in _members(ds.shape[0], start, stop):
            m = dict(meta)
            m["index"] = k
            if id_values is not None:
                v = id_values[k]
                m["id"] = v.decode() if isinstance(v, bytes) else str(v)
            else:
                m["id"] = f"{p.stem}#{k}"
            try:
                item = np.asarray(ds[k], dtype=np.float64)
            except Exception as exc:
                raise RecordReadError(p, f"cannot read item {k} of {ds.name}: {str(exc).strip().splitlines()[0]}") from None
            sig = _to_mv(p, _orient(p, item, len(lds) if lds is not None else None), _scale(p, u))
            yield make_recording(p, sig, fs_ok, _lead_names(p, sig.shape[0], lds, m, sig), m, fmt="hdf5")
    finally:
        f.close()


def read_hdf5(path: str | Path, *, index: int | None = None, **kw: Any) -> Recording:
    """One recording of an HDF5 file (``index=`` picks an item of a batch)."""
    p = Path(path)
    if index is not None:
        for rec in iter_hdf5(p, **kw):
            if rec.meta.get("index") == index:
                return rec
        raise RecordReadError(p, f"no item {index} in the dataset")
    return _single(p, iter_hdf5(p, **kw), kw)
