"""What lets a store build cut short resume without losing finished work.

Beside the shards of a store folder (hidden files):

``.build.json``        the settings of the build that writes (or wrote) the folder: digests of the
                       sources and of the rules, the contract, dtype, shard size, records per chunk
                       and ``fill_missing`` (and ``max_duration``, when given)
``.chunk-CCCCC.json``  chunk C's completion record, written (atomically) after its shard files were
                       renamed into place: their names, sample counts, sizes and SHA-256, and the
                       chunk's failures and label report

A rerun of the same build into the same folder keeps every chunk whose record is there and whose
shard files still have the recorded sizes and SHA-256, and writes only the others: a record is
trusted only as far as its files verify, so a shard that a crash cut, or that was truncated or
replaced since, is written again with its chunk.  Another build into the folder is refused
(:func:`start`) unless it is asked to start over.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._fileio import to_jsonable, write_json
from ..models.weights import sha256_file
from ..prediction.state import digest, read_json, settings_difference
from .shards import INDEX, StoreError

__all__ = ["BUILD", "record_path", "settings", "start", "shard_entries", "record", "finished"]

BUILD = ".build.json"


def record_path(out: Path, chunk: int) -> Path:
    """Where chunk ``chunk``'s completion record lives."""
    return out / f".chunk-{chunk:05d}.json"


def settings(items: list, contract: Any, rules: Any, dtype: str, shard_size: int, records_per_chunk: int,
             fill_missing: bool, max_duration: float | None = None) -> dict[str, Any]:
    """What decides a store's content: the sources (``[(index, path, statements)]``), the rules and
    the writing options."""
    out = {"format": "ecgfounder-store-build", "version": 1, "sources": digest(items), "n_records": len(items),
           "contract": contract.to_dict(), "rules": digest([rules]), "dtype": dtype, "shard_size": int(shard_size),
           "records_per_chunk": int(records_per_chunk), "fill_missing": bool(fill_missing)}
    if max_duration is not None:  # (absent otherwise: builds begun before it existed still resume)
        out["max_duration"] = float(max_duration)
    return out


def _changes(old: dict, new: dict) -> str:
    out = []
    for k in settings_difference(old, new):
        if k == "sources":
            n0, n1 = old.get("n_records"), new.get("n_records")
            out.append(f"the sources ({n0} records then, {n1} now)" if n0 != n1 else "the sources (other files or statements)")
        elif k == "rules":
            out.append("the rules (labels or statement patterns)")
        elif k == "contract" and isinstance(old.get(k), dict):
            out.append(f"the preprocessing contract ({', '.join(settings_difference(old[k], new[k]))})")
        elif k != "n_records":
            out.append(f"{k} {old.get(k)!r} then, {new.get(k)!r} now")
    return "; ".join(out)


def start(out: Path, new: dict[str, Any], restart: bool) -> str:
    """Begin a build of :func:`settings` ``new`` in ``out``: the key its chunk records carry.  A folder
    written by another build is refused (a :class:`StoreError` naming what changed) unless
    ``restart``; with ``restart``, or with no readable ``.build.json``, the chunk records there are
    discarded.  The index goes first: a build in progress has none."""
    old = read_json(out / BUILD)
    old = old if isinstance(old, dict) else None
    changed = old is not None and bool(settings_difference(old, new))
    if changed and not restart:
        what = "a store" if (out / INDEX).exists() else "a build cut short"
        raise StoreError(f"{out} holds {what} made with other settings ({_changes(old, new)}); run again with the "
                         "settings it was made with to resume it, build into another folder, or pass restart=True "
                         "to discard it and start over.")
    (out / INDEX).unlink(missing_ok=True)
    if restart or old is None or changed:
        for stale in out.glob(".chunk-*.json"):
            stale.unlink(missing_ok=True)
    write_json(out / BUILD, new)
    return digest([json.dumps(to_jsonable(new), sort_keys=True)])


def shard_entries(out: Path, names: list[str], counts: list[int]) -> list[dict[str, Any]]:
    """``[{name, count, size, sha256}]`` of a chunk's finished shard files."""
    return [{"name": n, "count": int(c), "size": (out / n).stat().st_size, "sha256": sha256_file(out / n)}
            for n, c in zip(names, counts)]


def record(out: Path, chunk: int, key: str, result: dict[str, Any]) -> None:
    """Record chunk ``chunk`` as finished (``result``: its ``shards`` entries, ``failures`` and
    ``report``); call only once its shard files are in place."""
    write_json(record_path(out, chunk), {"format": "ecgfounder-store-chunk", "version": 1, "build": key,
                                         "chunk": chunk, **result})


def _shard_ok(out: Path, chunk: int, s: dict) -> bool:
    name = s["name"]
    return bool(re.fullmatch(rf"shard-{chunk:05d}-\d{{3}}[.]tar", name)) and (out / name).stat().st_size == s["size"] \
        and sha256_file(out / name) == s["sha256"]


def _verified(out: Path, chunk: int, key: str) -> dict[str, Any] | None:
    rec = read_json(record_path(out, chunk))
    try:
        ok = (rec["build"] == key and rec["chunk"] == chunk and isinstance(rec["failures"], list)
              and isinstance(rec["report"], dict) and all(_shard_ok(out, chunk, s) for s in rec["shards"]))
    except (OSError, KeyError, TypeError):  # a file gone, a record damaged
        ok = False
    if not ok:
        record_path(out, chunk).unlink(missing_ok=True)  # (its chunk is written again)
    return rec if ok else None


def finished(out: Path, key: str, n_chunks: int, threads: int) -> dict[int, dict[str, Any]]:
    """The records of the chunks a build of ``key`` finished and whose files verify, by chunk;
    records that do not verify are removed.  Files are hashed in ``threads`` threads."""
    todo = [c for c in range(n_chunks) if record_path(out, c).exists()]
    with ThreadPoolExecutor(max(1, min(threads, len(todo) or 1))) as ex:
        found = list(ex.map(lambda c: _verified(out, c, key), todo))
    return {c: r for c, r in zip(todo, found) if r is not None}
