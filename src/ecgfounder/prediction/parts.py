"""Parts of sharded or torchrun ``predict`` runs: the completion sidecar and the merge.

Each part ``OUT.shard-I-of-N.csv`` has a sidecar ``OUT.shard-I-of-N.csv.shard.json`` written when
the part completed (shard, count of records, hash of the whole sorted record list, failures,
row count, size in bytes, and the settings every part of a run shares, the weights by content).
The merge checks that the parts are the complete set 0..N-1 of one run made with the same weights
and settings, that no part is short, cut or changed and that no record file has rows in two parts
(a batch file's recordings share its path), then streams the rows in shard order (the order of an
unsharded run) into one table, and joins the embedding parts the same way.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .._fileio import atomic_path, write_json
from ..errors import SetupError
from .tables import TableWriter

__all__ = ["merge_parts", "write_part_meta", "read_part_meta", "copy_rows_npy", "meta_path"]

_META_SUFFIX = ".shard.json"
_META_KEYS = ("shard", "manifest_sha256", "n_total", "n_files", "rows", "failures")


def write_part_meta(part: str | os.PathLike, *, shard: tuple[int, int], manifest_sha256: str, n_total: int,
                    n_files: int, rows: int, failures: Sequence[tuple[str, str]], embeddings: str | None = None,
                    emb_rows: int = 0, settings: Mapping[str, Any] | None = None, size: int | None = None,
                    ran: Sequence[str] | None = None) -> Path:
    """Write the sidecar that marks ``part`` complete.  ``settings``: what every part of one run
    shares (weights, aggregation, preprocessing, inference path asked; compared by the merge);
    ``size``: the part's size in bytes (a part cut or changed since is refused); ``ran``: the path
    it took (``precision``, ``backend``; what ``auto`` chose on its machine)."""
    p = Path(str(part) + _META_SUFFIX)
    meta = {
        "version": 1, "part": Path(part).name, "shard": list(shard), "manifest_sha256": manifest_sha256,
        "n_total": n_total, "n_files": n_files, "rows": rows, "failures": [list(f) for f in failures],
        "embeddings": str(embeddings) if embeddings else None, "emb_rows": emb_rows,
        "settings": dict(settings) if settings is not None else None, "size": size,
        "ran": list(ran) if ran else None,
    }
    return write_json(p, meta)


def read_part_meta(part: str | os.PathLike) -> dict[str, Any]:
    p = Path(str(part) + _META_SUFFIX)
    if not Path(part).is_file():
        raise SetupError(f"part {part}: no such file; give the OUT.shard-I-of-N files its run wrote.", "parts")
    if not p.exists():
        raise SetupError(f"{part}: no {p.name} beside it, so the part is incomplete (its run was interrupted?) or "
                         "not written by a sharded 'ecgfounder predict'; finish it with the same command and --resume.",
                         "parts")
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        raise SetupError(f"{p}: not readable JSON (changed or cut?); run its shard again.", "parts") from None
    missing = [k for k in _META_KEYS if k not in meta] if isinstance(meta, dict) else list(_META_KEYS)
    shard = meta.get("shard") if isinstance(meta, dict) else None
    if missing or not (isinstance(shard, list) and len(shard) == 2 and all(isinstance(x, int) for x in shard)):
        raise SetupError(f"{p}: not the sidecar a sharded 'ecgfounder predict' writes (no valid "
                         f"{', '.join(missing) or 'shard'}; changed?); run its shard again.", "parts")
    return meta


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    kind = path.suffix.lower()
    if kind == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for n, row in enumerate(reader, 1):
                if None in row or None in row.values():  # more or fewer fields than the header
                    raise SetupError(f"{path}: row {n} does not have the header's {len(reader.fieldnames or ())} "
                                     "fields; the part was changed or cut: run its shard again.", "parts")
                yield row
    elif kind == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        raise SetupError(f"{path}: line {n} is not a JSON row; the part was changed or cut: run "
                                         "its shard again.", "parts") from None
    elif kind == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(str(path))
        for batch in pf.iter_batches(batch_size=4096):
            yield from batch.to_pylist()
    else:
        raise ValueError(f"{path}: unknown table type {kind!r}; parts are .csv, .jsonl or .parquet.")


def _columns(path: Path) -> list[str]:
    kind = path.suffix.lower()
    if kind == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    if kind == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(str(path)).schema_arrow.names)
    for row in _rows(path):
        return list(row)
    return []


def merge_parts(parts: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                embeddings: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check and join shard ``parts`` into ``output`` (table) and, if given, ``embeddings`` (.npy).

    Raises :class:`~ecgfounder.errors.SetupError` (a ``ValueError``) naming the problem when parts
    are missing, duplicated, from different runs or settings, short or changed, or when a record
    file has rows in two parts.  Returns ``{"rows", "parts", "failures"}``.
    """
    if not parts:
        raise SetupError("no parts given; pass the OUT.shard-*-of-* files of one run.", "parts")
    try:
        TableWriter.check_path(output)
    except ValueError as exc:
        raise SetupError(str(exc), "output") from None
    out_kind = Path(output).suffix.lower()
    csv_part = next((Path(q) for q in parts if Path(q).suffix.lower() == ".csv"), None)
    if csv_part is not None and out_kind != ".csv":  # (CSV's text was written as text: n_windows "1", p "0.56")
        raise SetupError(f"{csv_part} is CSV, which keeps no column types: merged into {output} every value would be "
                         f"text; merge into a .csv file, or run the shards with -o OUT{out_kind}.", "output")
    given = {Path(q).resolve() for q in parts}  # merging into a part would destroy its own input
    for name, path in (("output", output), ("embeddings", embeddings)):
        if path is not None and Path(path).resolve() in given:
            raise SetupError(f"{name} {path} is one of the parts; give a new file for the merged result.", name)
    if embeddings is not None and Path(embeddings).resolve() == Path(output).resolve():
        raise SetupError(f"embeddings and output are the same file ({output}); give two files.", "embeddings")
    metas = [(Path(p), read_part_meta(p)) for p in parts]
    (p0, m0), run = metas[0], lambda m: (m["shard"][1], m["manifest_sha256"])
    for p, m in metas[1:]:
        if run(m) != run(m0):
            what = (f"of {m0['shard'][1]} and {m['shard'][1]} shards" if m["shard"][1] != m0["shard"][1]
                    else "made from different record lists")
            raise SetupError(f"{p0} and {p} come from different runs ({what}); merge the parts of one run only.",
                             "parts")
    n_shards = m0["shard"][1]
    seen: dict[int, Path] = {}
    for p, m in metas:
        i = m["shard"][0]
        if i in seen:
            raise SetupError(f"shard {i}/{n_shards} given twice: {seen[i]} and {p}.", "parts")
        seen[i] = p
    missing = sorted(set(range(n_shards)) - set(seen))
    if missing:
        raise SetupError(f"missing shard(s) {', '.join(f'{i}/{n_shards}' for i in missing)}; run them "
                         f"(ecgfounder predict ... --shard I/{n_shards}) and merge again.", "parts")
    metas.sort(key=lambda pm: pm[1]["shard"][0])
    if sum(m["n_files"] for _, m in metas) != metas[0][1]["n_total"]:
        raise SetupError(f"the parts cover {sum(m['n_files'] for _, m in metas)} records but the run had "
                         f"{metas[0][1]['n_total']}; the parts were not made from the same list.", "parts")
    _check_same_settings(metas)
    ran = {m["shard"][0]: "/".join(m["ran"]) for _, m in metas if m.get("ran")}
    if len(set(ran.values())) > 1:  # (auto on machines that chose differently: within its bounds, not equal)
        paths = "; ".join(f"part {i}/{n_shards}: {r}" for i, r in ran.items())
        warnings.warn(f"the parts ran on different inference paths ({paths}): their probabilities agree within "
                      "auto's bounds (0.01), not exactly; for rows that compare exactly, run every shard with the "
                      "same --precision and --backend", stacklevel=2)
    for p, m in metas:
        if m.get("size") is not None and p.stat().st_size != m["size"]:
            raise SetupError(f"{p}: {p.stat().st_size} bytes, but its run wrote {m['size']}: its rows were changed or "
                             f"cut since; run shard {m['shard'][0]}/{n_shards} again.", "parts")
    # the embeddings are checked before anything is written: a refused part leaves no table behind
    arrays, descs = _part_embeddings(metas) if embeddings else ([], [])
    columns = _columns(metas[0][0])
    owner: dict[str, Path] = {}  # record file -> the part holding its rows (a batch file has several rows)
    total = 0
    failures: list[tuple[str, str]] = []
    with TableWriter(output, columns) as writer:
        for p, m in metas:
            cols = _columns(p) if m["rows"] else columns
            if cols != columns:
                raise SetupError(f"{p}: its columns differ from {metas[0][0]}'s; parts of one run have the same "
                                 "columns.", "parts")
            count, keys, buf = 0, set(), []
            for row in _rows(p):
                path = str(row.get("path"))
                if owner.setdefault(path, p) != p:
                    raise SetupError(f"record file {path} has rows in two parts, {owner[path]} and {p}; the parts "
                                     "were not made from the same list: run the shards again.", "parts")
                key = (path, str(row.get("member", "")), str(row.get("record")), str(row.get("window", "")))
                if key in keys:
                    where = f"{path}, {row['member']}" if row.get("member") else path
                    raise SetupError(f"{p}: record {row.get('record')} of {where} (window {row.get('window', '-')}) "
                                     "appears twice; run its shard again.", "parts")
                keys.add(key)
                count += 1
                buf.append(row)
                if len(buf) >= 2048:
                    writer.write(buf)
                    buf.clear()
            writer.write(buf)
            buf.clear()
            if count != m["rows"]:
                raise SetupError(f"{p}: holds {count} rows but its run wrote {m['rows']}; the file was changed or cut.",
                                 "parts")
            # a file with rows may also have failed (a batch file that broke part way): count each file once
            n_seen = len({k[0] for k in keys} | {f[0] for f in m["failures"]})
            if n_seen != m["n_files"]:
                raise SetupError(f"{p}: {n_seen} record files with rows or failures, but the shard had "
                                 f"{m['n_files']}; some are missing.", "parts")
            failures.extend(tuple(f) for f in m["failures"])
            total += count
    if embeddings:
        meta_path(embeddings).unlink(missing_ok=True)  # (a stale description never sits beside new rows)
        copy_rows_npy(arrays, embeddings)
        if descs:
            d = dict(descs[0])
            d["array"] = {**d["array"], "file": Path(embeddings).name, "shape": [sum(len(a) for a in arrays),
                                                                              d["array"]["shape"][1]]}
            d["records"] = {k: sum(x["records"][k] for x in descs) for k in d["records"]}
            d["failures"] = [f for x in descs for f in x.get("failures", [])]
            d["index"], d["merged_from"] = Path(output).name, [str(p) for p, _ in metas]
            write_json(meta_path(embeddings), d)
    return {"rows": total, "parts": len(metas), "failures": failures}


def meta_path(embeddings: str | os.PathLike) -> Path:
    """The description written beside ``embeddings``: ``emb.npy`` → ``emb.json``."""
    return Path(embeddings).with_suffix(".json")


def _part_embeddings(metas: Sequence[tuple[Path, dict[str, Any]]]) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Each part's embedding rows (memory-mapped, their count checked) and descriptions."""
    arrays, files = [], []
    for p, m in metas:
        if not m.get("embeddings"):
            raise SetupError(f"{p}: its run wrote no embeddings; rerun the shards with --embeddings.", "embeddings")
        e = Path(m["embeddings"])
        if not e.is_absolute() and not e.exists():
            e = p.parent / e.name
        arr = np.load(e, mmap_mode="r")
        if arr.shape[0] != m["emb_rows"]:
            raise SetupError(f"{e}: {arr.shape[0]} embedding rows, expected {m['emb_rows']}.", "embeddings")
        arrays.append(arr)
        files.append((p, e))
    return arrays, _embedding_descriptions(files)


def _embedding_descriptions(parts: Sequence[tuple[Path, Path]]) -> list[dict[str, Any]]:
    """The ``emb.json`` of each part's embeddings (``[]`` when a part has none: written before they
    existed); parts whose rows came from other inference paths are refused (a shard on another
    machine may have taken int8 where this one took fp32: rows not comparable)."""
    descs = []
    for p, e in parts:
        try:
            d = json.loads(meta_path(e).read_text())
        except (OSError, ValueError):
            return []
        if not (isinstance(d, dict) and all(isinstance(d.get(k), dict) for k in ("inference", "records", "array"))
                and {"precision", "backend"} <= d["inference"].keys()):
            raise SetupError(f"{meta_path(e)}: not the description its run wrote (changed or cut); run the shard "
                             f"of {p} again, or remove that file to merge without descriptions.", "embeddings")
        descs.append((p, d))
    (p0, d0) = descs[0]
    ran = lambda d: (d["inference"]["precision"], d["inference"]["backend"])  # noqa: E731
    for p, d in descs[1:]:
        if ran(d) != ran(d0):
            raise SetupError(f"{p0} and {p} hold embeddings of other inference paths ({'/'.join(ran(d0))} and "
                             f"{'/'.join(ran(d))}): their rows are not comparable; run the shards again on one path "
                             "(precision='fp32' (CLI: --precision fp32) gives exact ones everywhere).", "embeddings")
    return [d for _, d in descs]


def _check_same_settings(metas: Sequence[tuple[Path, dict[str, Any]]]) -> None:
    """Parts made with other weights or settings (aggregation, preprocessing, quality gate, inference
    path ...) are refused, naming what differs (parts written before sidecars held settings pass)."""
    from .state import settings_difference

    first_p, first = metas[0][0], metas[0][1].get("settings")
    for p, m in metas[1:]:
        other = m.get("settings")
        if first is None or other is None:
            continue
        diff = settings_difference(first, other)
        if diff:
            raise SetupError(f"{p} and {first_p} were made with different settings ({', '.join(diff)}); the parts "
                             "of one run share them: run the odd shards again with the same command.", "parts")


def copy_rows_npy(arrays: Sequence[np.ndarray], out: str | os.PathLike, dim: int | None = None) -> Path:
    """Concatenate float32 row blocks (memory-mapped files are fine) into ``out`` (``.npy``),
    copied 65,536 rows at a time so memory stays bounded; written atomically."""
    rows = sum(a.shape[0] for a in arrays)
    dim = int(arrays[0].shape[1]) if arrays else int(dim or 0)
    with atomic_path(out) as tmp:
        dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        off = 0
        for a in arrays:
            for s in range(0, a.shape[0], 65536):
                blk = a[s : s + 65536]
                dst[off : off + blk.shape[0]] = blk
                off += blk.shape[0]
        dst.flush()
        del dst
    return Path(out)
