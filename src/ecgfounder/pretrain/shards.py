"""What a shard store is made of, and reading one shard safely: the store's description
(:class:`StoreInfo`, from ``index.json``), its error, and the bounded, checked reader of a shard's
samples that :func:`ecgfounder.pretrain.store.iter_batches` streams.

The tar stream of a shard is read here rather than by WebDataset's ``tarfile_to_samples``: that
stage opens shards in ``r|*`` mode (a gzip-compressed shard is decompressed) and reads every member
whole, whatever size it declares; here shards are plain tar, every member is bounded by what a
sample of the store's contract can hold, a shard must hold the samples ``index.json`` counts, and
each sample's arrays are checked against the contract, the labels and the dtype before training
sees them.  ``gopen`` (local files, ``http(s)://``, ``pipe:``) is still WebDataset's.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ECGFounderError
from ..signal.preprocess import PreprocessContract

__all__ = ["StoreError", "StoreInfo", "INDEX", "SPLITS", "need_wds", "shard_samples", "decode"]

SPLITS = ("samples", "shards")
INDEX = "index.json"


class StoreError(ECGFounderError, ValueError):
    """A store is missing, inconsistent, or asked for something it cannot give."""


def need_wds():
    try:
        import webdataset as wds
    except ImportError:  # pragma: no cover - depends on the environment
        raise StoreError("the shard store needs WebDataset; install it with: pip install 'ecgfounder[pretrain]'") from None
    return wds


@dataclass(frozen=True)
class StoreInfo:
    """What ``index.json`` says: where the shards are, how many samples each holds, the labels
    (column order of ``y``) and the preprocessing contract of ``x``."""

    location: str
    shards: tuple[str, ...]
    counts: tuple[int, ...]
    labels: tuple[str, ...]
    contract: PreprocessContract
    dtype: str
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def n_samples(self) -> int:
        return int(sum(self.counts))

    def url(self, name: str) -> str:
        loc = self.location
        if loc.startswith("pipe:"):
            return loc.replace("{name}", name)
        if "://" in loc:
            return loc.rstrip("/") + "/" + name
        return str(Path(loc) / name)



_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*[.]tar")  # a shard's file name: no folder, no shell syntax
_MEMBER = re.compile(r"^((?:.*/|)[^./]+)[.]([^/]*)$")  # key . extension (WebDataset's grouping)


def shard_samples(info: StoreInfo, order: list[int]) -> Iterator[dict]:
    """The raw samples ``{__key__, __url__, x.npy, y.npy, json}`` of the shards ``order``, in turn.
    Each shard is read as a plain tar stream (no compression), every member is bounded by what the
    contract allows, and a shard must hold the samples ``index.json`` counts: a truncated, missing,
    swapped or hostile shard is a :class:`StoreError` naming it, never a bare tar error or a silent
    short epoch."""
    import tarfile

    wds = need_wds()
    limit = 4 * len(info.contract.leads) * info.contract.n_samples + 4 * len(info.labels) + 65536
    for i in order:
        name, url = info.shards[i], info.url(info.shards[i])
        fix = f"rebuild the store (ecgfounder pretrain build-store) or restore {name}"
        n, cur = 0, None
        try:
            stream = wds.gopen(url, "rb")
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for m in tar:
                        if not m.isreg():
                            continue
                        km = _MEMBER.match(m.name)
                        if km is None:
                            continue
                        if m.size > limit:
                            raise StoreError(f"shard {url}: member {m.name!r} declares {m.size} bytes, more than a sample "
                                             f"of this store can hold ({limit}); {fix}.")
                        key, ext = km.groups()
                        if cur is not None and cur["__key__"] != key:
                            yield cur
                            n += 1
                            cur = None
                        if cur is None:
                            cur = {"__key__": key, "__url__": url}
                        cur[ext] = tar.extractfile(m).read()
                    if cur is not None:
                        yield cur
                        n += 1
            finally:
                stream.close()
        except StoreError:
            raise
        except Exception as exc:  # a missing or damaged shard, a failed download
            raise StoreError(f"shard {url} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                             f"{fix}.") from None
        if n != info.counts[i]:
            raise StoreError(f"shard {url} holds {n} samples where {INDEX} says {info.counts[i]}: it is truncated or "
                             f"from another store; {fix}.")


def decode(sample: dict, info: StoreInfo) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x float32, y int8, key)`` of a raw sample, checked against the store's contract and labels."""
    from .statements import STATE_NAMES

    where = f"sample {sample.get('__key__')!r} of shard {sample.get('__url__')}"
    fix = "rebuild the store (ecgfounder pretrain build-store) or restore that shard"
    want = {"x.npy": ((len(info.contract.leads), info.contract.n_samples), np.dtype(info.dtype)),
            "y.npy": ((len(info.labels),), np.dtype(np.int8))}
    out = {}
    for ext, (shape, dtype) in want.items():
        try:
            a = np.load(io.BytesIO(sample[ext]), allow_pickle=False)
        except Exception as exc:  # absent, not a .npy, cut
            raise StoreError(f"{where}: no readable {ext} ({type(exc).__name__}: {' '.join(str(exc).split())[:150]}); "
                             f"{fix}.") from None
        if a.shape != shape or a.dtype != dtype:
            raise StoreError(f"{where}: {ext} is {a.dtype} {a.shape}, this store's {INDEX} says {dtype} {shape} "
                             f"(a shard of another store?); {fix}.")
        out[ext] = a
    x, y = out["x.npy"], out["y.npy"]
    if not np.isfinite(x).all():
        raise StoreError(f"{where}: x.npy holds NaN or infinite values; {fix}.")
    if not np.isin(y, list(STATE_NAMES)).all():
        raise StoreError(f"{where}: y.npy holds label states other than {sorted(STATE_NAMES)}; {fix}.")
    return x.astype(np.float32, copy=False), y, sample["__key__"]
