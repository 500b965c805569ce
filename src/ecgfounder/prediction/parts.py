"""Parts of sharded or torchrun ``predict`` runs: the completion sidecar and the merge.

Each part ``OUT.shard-I-of-N.csv`` has a sidecar ``OUT.shard-I-of-N.csv.shard.json`` written when
the part completed (shard, count of records, hash of the whole sorted record list, failures,
row count).  The merge checks that the parts are the complete set 0..N-1 of one run, that no part
is short and that no record appears twice, then streams the rows in shard order (the order of an
unsharded run) into one table, and joins the embedding parts the same way.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .._fileio import atomic_path, write_json
from .tables import TableWriter

__all__ = ["merge_parts", "write_part_meta", "read_part_meta", "copy_rows_npy"]

_META_SUFFIX = ".shard.json"


def write_part_meta(part: str | os.PathLike, *, shard: tuple[int, int], manifest_sha256: str, n_total: int,
                    n_files: int, rows: int, failures: Sequence[tuple[str, str]], embeddings: str | None = None,
                    emb_rows: int = 0) -> Path:
    """Write the sidecar that marks ``part`` complete."""
    p = Path(str(part) + _META_SUFFIX)
    meta = {
        "version": 1, "part": Path(part).name, "shard": list(shard), "manifest_sha256": manifest_sha256,
        "n_total": n_total, "n_files": n_files, "rows": rows, "failures": [list(f) for f in failures],
        "embeddings": str(embeddings) if embeddings else None, "emb_rows": emb_rows,
    }
    return write_json(p, meta)


def read_part_meta(part: str | os.PathLike) -> dict[str, Any]:
    p = Path(str(part) + _META_SUFFIX)
    if not p.exists():
        raise ValueError(f"{part}: no {p.name} beside it, so the part is incomplete (its run was interrupted?) or "
                         "not written by a sharded 'ecgfounder predict'; finish it with the same command and --resume.")
    return json.loads(p.read_text(encoding="utf-8"))


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    kind = path.suffix.lower()
    if kind == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            yield from csv.DictReader(f)
    elif kind == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
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

    Raises ``ValueError`` naming the problem when parts are missing, duplicated, from different
    runs, short, or when a record appears twice.  Returns ``{"rows", "parts", "failures"}``.
    """
    if not parts:
        raise ValueError("no parts given; pass the OUT.shard-*-of-* files of one run.")
    TableWriter.check_path(output)
    metas = [(Path(p), read_part_meta(p)) for p in parts]
    n = {m["shard"][1] for _, m in metas}
    runs = {m["manifest_sha256"] for _, m in metas}
    if len(n) != 1 or len(runs) != 1:
        raise ValueError(f"the parts come from different runs (shard counts {sorted(n)}, {len(runs)} record lists); "
                         "merge the parts of one run only.")
    n_shards = n.pop()
    seen: dict[int, Path] = {}
    for p, m in metas:
        i = m["shard"][0]
        if i in seen:
            raise ValueError(f"shard {i}/{n_shards} given twice: {seen[i]} and {p}.")
        seen[i] = p
    missing = sorted(set(range(n_shards)) - set(seen))
    if missing:
        raise ValueError(f"missing shard(s) {', '.join(f'{i}/{n_shards}' for i in missing)}; run them "
                         f"(ecgfounder predict ... --shard I/{n_shards}) and merge again.")
    metas.sort(key=lambda pm: pm[1]["shard"][0])
    if sum(m["n_files"] for _, m in metas) != metas[0][1]["n_total"]:
        raise ValueError(f"the parts cover {sum(m['n_files'] for _, m in metas)} records but the run had "
                         f"{metas[0][1]['n_total']}; the parts were not made from the same list.")
    columns = _columns(metas[0][0])
    keys: set[tuple[str, str]] = set()
    total = 0
    failures: list[tuple[str, str]] = []
    with TableWriter(output, columns) as writer:
        for p, m in metas:
            cols = _columns(p) if m["rows"] else columns
            if cols != columns:
                raise ValueError(f"{p}: its columns differ from {metas[0][0]}'s; parts of one run have the same columns.")
            count, paths, buf = 0, set(), []
            for row in _rows(p):
                key = (str(row.get("path")), str(row.get("window", "")))
                if key in keys:
                    raise ValueError(f"{p}: record {row.get('path')} (window {row.get('window', '-')}) appears twice "
                                     "across the parts.")
                keys.add(key)
                paths.add(key[0])
                count += 1
                buf.append(row)
                if len(buf) >= 2048:
                    writer.write(buf)
                    buf.clear()
            writer.write(buf)
            buf.clear()
            if count != m["rows"]:
                raise ValueError(f"{p}: holds {count} rows but its run wrote {m['rows']}; the file was changed or cut.")
            if len(paths) + len({f[0] for f in m["failures"]}) != m["n_files"]:
                raise ValueError(f"{p}: {len(paths)} records with rows and {len(m['failures'])} failures, but the shard "
                                 f"had {m['n_files']} records; some are missing.")
            failures.extend(tuple(f) for f in m["failures"])
            total += count
    if embeddings:
        arrays = []
        for p, m in metas:
            if not m.get("embeddings"):
                raise ValueError(f"{p}: its run wrote no embeddings; rerun the shards with --embeddings.")
            e = Path(m["embeddings"])
            if not e.is_absolute() and not e.exists():
                e = p.parent / e.name
            arr = np.load(e, mmap_mode="r")
            if arr.shape[0] != m["emb_rows"]:
                raise ValueError(f"{e}: {arr.shape[0]} embedding rows, expected {m['emb_rows']}.")
            arrays.append(arr)
        copy_rows_npy(arrays, embeddings)
    return {"rows": total, "parts": len(metas), "failures": failures}


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
