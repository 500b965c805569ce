"""Splitting a record list between processes, GPUs or nodes, and the names of the parts.

:func:`shard` takes contiguous, balanced, deterministic blocks of the sorted list, so that the
parts joined in shard order are the order of an unsharded run.  :func:`shard_from_env` reads
``RANK``/``WORLD_SIZE`` as ``torchrun`` sets them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._fileio import same_file
from ..errors import SetupError

__all__ = ["parse_shard", "shard_bounds", "shard", "shard_from_env", "part_name", "own_files"]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``."""
    try:
        a, b = str(text).split("/")
        i, n = int(a), int(b)
    except ValueError:
        raise ValueError(f"shard {text!r} is not of the form i/n (e.g. 0/4 for the first of 4 shards).") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < n (shards are numbered from 0); got i={i}, n={n}.")
    return i, n


def shard_bounds(n_items: int, i: int, n: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``i`` of ``n`` over ``n_items``: contiguous, sizes differ by at most 1."""
    base, extra = divmod(n_items, n)
    start = i * base + min(i, extra)
    return start, start + base + (1 if i < extra else 0)


def shard(items: Sequence[Any], i: int, n: int) -> list[Any]:
    """Shard ``i`` of ``n`` of ``items`` sorted by their string form (deterministic across
    processes and machines); concatenating shards 0..n-1 gives the whole sorted list."""
    ordered = sorted(items, key=str)
    a, b = shard_bounds(len(ordered), i, n)
    return ordered[a:b]


def shard_from_env(env: dict[str, str] | None = None) -> tuple[int, int] | None:
    """``(rank, world_size)`` from ``RANK``/``WORLD_SIZE`` (torchrun, Slurm via torchrun) when
    ``WORLD_SIZE > 1``; else ``None``."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        raise ValueError(f"RANK={env.get('RANK')!r} / WORLD_SIZE={env.get('WORLD_SIZE')!r} are not integers.") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside 0..WORLD_SIZE-1={world - 1}.")
    return rank, world


def part_name(path: str | os.PathLike, i: int, n: int) -> str:
    """``out.csv`` → ``out.shard-00002-of-00004.csv`` (the part written by shard 2 of 4)."""
    p = Path(path)
    suffix = "".join(p.suffixes[-1:])
    return str(p.with_name(f"{p.name[: len(p.name) - len(suffix)]}.shard-{i:05d}-of-{n:05d}{suffix}"))


def own_files(files: Sequence[Any], inputs: Sequence[Any], outputs: Mapping[str, Any]) -> list[Any]:
    """The ``files`` (records found) that the run itself writes: one of ``outputs`` (argument name →
    path, ``None`` for none) or a shard part of one (``OUT.shard-I-of-N.ext``).  Such a file found in
    an input folder is not a record: an embeddings ``.npy`` read as an ECG would change the record
    list between a run and its resume, and between shards.  An output that is a file named among
    ``inputs``, or found among them but not written by a run of ours (:func:`_an_earlier_output`), is
    :class:`SetupError`: the run would replace that file with its results."""
    named = [Path(x) for x in inputs if Path(x).is_file()]
    for argument, t in ((a, Path(x)) for a, x in outputs.items() if x):
        src = next((x for x in named if same_file(x, t)), None)
        if src is not None:
            raise SetupError(f"{argument} {t} is the input {src}; writing it would replace that ECG: give another "
                             "file name.", argument)

    def written(q: Path) -> str | None:  # the argument whose output (or a shard part of it) q is
        for argument, t in ((a, Path(x)) for a, x in outputs.items() if x):
            stem, suffix = t.name[: len(t.name) - len(t.suffix)], t.suffix
            hit = q.name == t.name or re.fullmatch(re.escape(stem) + r"\.shard-\d{5}-of-\d{5}" + re.escape(suffix), q.name)
            if hit and q.resolve().parent == t.resolve().parent:
                return argument
        return None

    own = [(f, argument) for f in files if (argument := written(Path(f)))]
    for f, argument in own:
        if not _an_earlier_output(Path(f)):
            raise SetupError(f"{argument} {f} is a file found among the inputs that this command did not write (not "
                             "a table of its rows, nor an array with its description beside it); writing it would "
                             "replace it: give another file name, or an output outside the input folder.", argument)
    return [f for f, _ in own]


def _an_earlier_output(p: Path) -> bool:
    """Whether ``p`` (an output's name found in an input folder) is what a run of ours wrote there:
    empty, a table whose first column is ``record``, or an ``.npy`` with its description (``.json``
    holding ``array``)."""
    from .._formats import META_COLUMNS

    first = META_COLUMNS[0]  # (record: the first column of every table a run writes)
    try:
        if p.stat().st_size == 0:
            return True
        if p.suffix.lower() == ".npy":  # (an ECG array may have a .json of its own: ours holds "array")
            import json

            from .parts import meta_path

            d = json.loads(meta_path(p).read_text(encoding="utf-8"))
            return isinstance(d, dict) and isinstance(d.get("array"), dict)
        if p.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(p).names[:1] == [first]
        with open(p, "rb") as fh:
            head = fh.read(len(first) + 8)  # (a BOM, then {"record": at most)
    except (OSError, ImportError, ValueError, TypeError):  # (pyarrow's and json's errors are ValueErrors)
        return False
    return head.lstrip(b"\xef\xbb\xbf").startswith((f"{first},".encode(), f'{{"{first}":'.encode()))
