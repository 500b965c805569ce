"""A cache of preprocessed windows, so that epochs never re-read or re-filter a file.

Layout: ``<cache_dir>/<contract key>/`` holds ``contract.json`` and shards.  A shard is a ``.npy``
array ``(n_windows, n_leads, n_samples)`` float32, opened memory-mapped, plus a ``.json`` index
listing, for each record key, its first row and window count (or the reason it failed).  The JSON
is written last, atomically, so a shard without one is incomplete and ignored.

* The **contract key** hashes the preprocessing contract (rate, window, leads, filters, mode),
  the substituted lead and the reader format, so a change of any of them starts a new cache.
* A **record key** hashes the record's absolute path, its size and modification time, and the
  segment (start, duration), so an edited file is preprocessed again.
* Missing records are preprocessed in parallel (a process pool, one shard per task) and reused by
  every later run, whatever its model, task or split.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .._fileio import cache_dir, process_gone, publish
from ..errors import WorkerDiedError
from ..signal.preprocess import PreprocessContract

__all__ = ["RecordRef", "WindowCache", "CacheIndex", "contract_key", "record_key", "default_cache_dir", "load_windows"]

CACHE_VERSION = 2  # 2: records at other rates resampled without edge steps (signal.filters.resample)
_SHARD_NPY = re.compile(r"shard-[0-9a-f]+[.]npy")  # a shard's array: a file of the cache folder


@dataclass(frozen=True)
class RecordRef:
    """One example: a record file, optionally a segment of it (seconds from its start)."""

    path: str
    start_s: float | None = None
    duration_s: float | None = None


def default_cache_dir() -> Path:
    """``windows/`` in the package's cache folder (:func:`ecgfounder._fileio.cache_dir`)."""
    return cache_dir("windows")


def contract_key(contract: PreprocessContract, lead: str | None = None, fmt: str | None = None) -> str:
    """Hex key of everything that decides the windows' values except the file itself."""
    payload = {"v": CACHE_VERSION, "contract": contract.to_dict(), "lead": lead, "format": fmt}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def record_key(ref: RecordRef) -> str:
    """Hex key of a record file's identity (absolute path, size, mtime) and the segment."""
    p = Path(ref.path)
    try:
        st = p.stat()
        ident = [str(p.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        ident = [str(p.absolute()), None, None]
    # a WFDB header's signal file changes without the header changing
    if p.suffix.lower() == ".hea":
        for ext in (".dat", ".mat"):
            q = p.with_suffix(ext)
            if q.exists():
                s2 = q.stat()
                ident += [ext, s2.st_size, s2.st_mtime_ns]
    seg = [None if ref.start_s is None else round(float(ref.start_s), 6),
           None if ref.duration_s is None else round(float(ref.duration_s), 6)]
    return hashlib.sha256(json.dumps(ident + seg).encode()).hexdigest()[:24]


def load_windows(ref: RecordRef, contract: PreprocessContract, *, lead: str | None = None,
                 fmt: str | None = None, recording: Any = None) -> np.ndarray:
    """Read and preprocess one example: float32 ``(n_windows, n_leads, n_samples)``.

    A segment is cut from the record at its own rate and then prepared exactly as a record of that
    length would be by :func:`ecgfounder.signal.preprocess.prepare` (so a 10-s segment gives the
    window that ``predict`` gives for a 10-s file).
    """
    from ..io import read
    from ..signal.preprocess import prepare

    rec = recording if recording is not None else read(ref.path, format=fmt)
    x = rec.signal
    source = ref.path
    if ref.start_s is not None or ref.duration_s is not None:
        s0 = int(round(float(ref.start_s or 0.0) * rec.fs))
        n = x.shape[1] - s0 if ref.duration_s is None else int(round(float(ref.duration_s) * rec.fs))
        if s0 < 0 or n <= 0 or s0 + n > x.shape[1]:
            raise ValueError(
                f"{ref.path}: segment start {ref.start_s} s, duration {ref.duration_s} s lies outside the "
                f"record ({x.shape[1] / rec.fs:.2f} s)."
            )
        x = x[:, s0 : s0 + n]
        source = f"{ref.path}[{ref.start_s}s+{ref.duration_s}s]"
    return prepare(x, rec.fs, rec.leads, contract, lead=lead, warn=False, source=source).windows


def _write_shard(job: tuple) -> str:
    """Worker: preprocess the records of one shard and write it (returns the shard's JSON path).
    ``job``: ``(shard_dir, contract, lead, format, items[, known failures {key: reason}])``; a known
    failure (an example whose reading killed its worker: :func:`_shard_alone`) is not read again."""
    shard_dir, contract_d, lead, fmt, items = job[:5]
    from ..io import read

    contract = PreprocessContract.from_dict(contract_d)
    name = hashlib.sha256("|".join(k for k, *_ in items).encode()).hexdigest()[:16]
    arrays: list[np.ndarray] = []
    index: dict[str, list[int]] = {}
    failed: dict[str, str] = dict(job[5]) if len(job) > 5 else {}
    offset = 0
    rec_cache: tuple[str, Any] | None = None
    for key, path, start, dur in items:
        if key in failed:
            continue
        try:
            if rec_cache is None or rec_cache[0] != path:
                try:
                    rec_cache = (path, read(path, format=fmt))
                except Exception as exc:  # remember: the other segments of this file fail alike
                    rec_cache = (path, exc)
            if isinstance(rec_cache[1], Exception):
                raise rec_cache[1]
            with warnings.catch_warnings():  # e.g. "feeding lead X to a model trained on lead I": said once by the caller
                warnings.simplefilter("ignore")
                w = load_windows(RecordRef(path, start, dur), contract, lead=lead, fmt=fmt, recording=rec_cache[1])
        except (ValueError, OSError) as exc:
            failed[key] = " ".join(str(exc).split())[:300]
            continue
        except Exception as exc:  # one bad file never stops the others
            failed[key] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            continue
        index[key] = [offset, int(w.shape[0])]
        offset += int(w.shape[0])
        arrays.append(w.astype(np.float32, copy=False))
    d = Path(shard_dir)
    npy = d / f"shard-{name}.npy"
    # temporary names carry the process id: runs sharing one cache may fill the same shard at the
    # same time, each must write its own file, and the sweep finds a dead writer's by its id
    tmp = d / f".shard-{name}.{os.getpid()}.npy"
    n_leads, n_samples = len(contract.leads), contract.n_samples
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(offset, n_leads, n_samples))
    row = 0
    for a in arrays:
        mm[row : row + len(a)] = a
        row += len(a)
    mm.flush()
    del mm
    publish(tmp, npy)
    meta = d / f"shard-{name}.json"
    tmpj = d / f".shard-{name}.{os.getpid()}.json"
    tmpj.write_text(json.dumps({"array": npy.name, "index": index, "failed": failed}), encoding="utf-8")
    publish(tmpj, meta)
    return str(meta)


_START_METHOD = "spawn"  # of the shard writers


def _shard_alone(job: tuple, ctx: Any) -> str:
    """A shard that was in flight when a worker died, in a worker of its own; if an example kills
    that worker too, each example is read and prepared alone, in turn, to find the killers, and the
    shard is written with them as failures (:data:`~ecgfounder._pools.CRASHED`), so that a later run
    does not read them again."""
    from .._pools import CRASHED, without_killers

    items = job[4]
    return without_killers(
        ctx, _write_shard, job, _probe_example, [(job[1], job[2], job[3], item) for item in items],
        lambda hit: (*job[:5], {items[i][0]: CRASHED for i in hit}),
        lambda: WorkerDiedError(
            f"caching the windows of {len(items)} examples ({items[0][1]} to {items[-1][1]}) ends its worker process "
            "even without the examples that did so alone (out of memory?); build the cache with fewer worker "
            "processes (data.cache_workers in a training config; WindowCache.build's workers=) or smaller shards "
            "(records_per_shard=)."))[0]


def _probe_example(contract_d: dict, lead: str | None, fmt: str | None, item: tuple) -> None:
    """Read and prepare one example and drop it: whether that takes its process down."""
    _, path, start, dur = item
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_windows(RecordRef(path, start, dur), PreprocessContract.from_dict(contract_d), lead=lead, fmt=fmt)
    except Exception:  # noqa: BLE001 - an ordinary failure is _write_shard's to record
        pass


class CacheIndex:
    """Windows of a list of examples, served from memory-mapped shards.

    ``windows(i)`` → float32 ``(n_windows_i, n_leads, n_samples)`` (a read-only view);
    ``failed`` maps example positions to the reason they could not be prepared.
    """

    def __init__(self, root: Path, locations: list[tuple[str, int, int] | None], failed: dict[int, str]):
        self.root = Path(root)
        self.locations = locations
        self.failed = failed
        self._open: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.locations)

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_open"] = {}
        return d

    def _array(self, name: str) -> np.ndarray:
        a = self._open.get(name)
        if a is None:
            a = np.load(self.root / name, mmap_mode="r")
            self._open[name] = a
        return a

    def ok(self, i: int) -> bool:
        return self.locations[i] is not None

    def n_windows(self, i: int) -> int:
        loc = self.locations[i]
        return 0 if loc is None else loc[2]

    def windows(self, i: int) -> np.ndarray:
        loc = self.locations[i]
        if loc is None:
            raise KeyError(f"example {i} is not in the cache: {self.failed.get(i, 'unknown')}")
        name, off, n = loc
        return self._array(name)[off : off + n]

    def window(self, i: int, k: int) -> np.ndarray:
        name, off, n = self.locations[i]  # type: ignore[misc]
        return self._array(name)[off + (k % n)]


class WindowCache:
    """Preprocessed windows for one contract (and lead substitution and reader format)."""

    def __init__(self, cache_dir: str | os.PathLike | None, contract: PreprocessContract, *,
                 lead: str | None = None, format: str | None = None):
        self.contract = contract
        self.lead = lead
        self.format = format
        self.key = contract_key(contract, lead, format)
        self.root = Path(cache_dir or default_cache_dir()) / self.key

    def _sweep(self) -> None:
        """Remove the temporaries (``.shard-NAME.PID.npy|json``) of shard writers that no longer
        run: a worker that died (a crashing reader, the out-of-memory killer) or a killed run left
        them, up to a shard's size each."""
        for tmp in self.root.glob(".shard-*.*.*"):
            try:
                pid = int(tmp.name.split(".")[-2])
            except ValueError:
                continue
            if process_gone(pid):
                tmp.unlink(missing_ok=True)

    def _scan(self) -> tuple[dict[str, tuple[str, int, int]], dict[str, str]]:
        found: dict[str, tuple[str, int, int]] = {}
        failed: dict[str, str] = {}
        if not self.root.is_dir():
            return found, failed
        for meta in sorted(self.root.glob("shard-*.json")):
            try:
                d = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            shard = self._check_shard(meta, d)
            if shard is None:
                continue
            arr, index, why = shard
            found.update({k: (arr, off, n) for k, (off, n) in index.items()})
            for k, reason in why.items():
                failed.setdefault(k, reason)
        return found, failed

    def _check_shard(self, meta: Path, d: Any) -> tuple[str, dict[str, tuple[int, int]], dict[str, str]] | None:
        """``(array name, {key: (first row, n)}, {key: reason})`` of a shard, or ``None`` when its array is
        missing; a shard that does not fit this cache (damaged, cut, of another contract, naming a file
        outside the cache) is removed, with a warning naming it, so that its examples are prepared again."""
        arr = d.get("array") if isinstance(d, dict) else None
        if isinstance(arr, str) and _SHARD_NPY.fullmatch(arr) and not (self.root / arr).exists():
            return None  # (not written yet, or removed: its examples are prepared again)
        shape = (len(self.contract.leads), self.contract.n_samples)
        try:
            if not (isinstance(arr, str) and _SHARD_NPY.fullmatch(arr)):
                raise ValueError(f"its array {arr!r} is not a shard-NAME.npy of this folder")
            a = np.load(self.root / arr, mmap_mode="r", allow_pickle=False)
            if a.dtype != np.float32 or a.ndim != 3 or a.shape[1:] != shape:
                raise ValueError(f"{arr} is {a.dtype} {a.shape}, this contract's windows are float32 (n, {shape[0]}, {shape[1]})")
            rows = a.shape[0]
            del a
            index = {str(k): (int(off), int(n)) for k, (off, n) in d.get("index", {}).items()}
            bad = [k for k, (off, n) in index.items() if off < 0 or n < 1 or off + n > rows]
            if bad:
                raise ValueError(f"example {bad[0]} lies outside the {rows} rows of {arr}")
            why = {str(k): str(v) for k, v in d.get("failed", {}).items()}
        except Exception as exc:  # noqa: BLE001 - whatever the damage, the shard is prepared again
            warnings.warn(f"window cache shard {meta} is damaged ({' '.join(str(exc).split())[:200]}); it is removed and "
                          "its examples are prepared again.", stacklevel=3)
            meta.unlink(missing_ok=True)
            if isinstance(arr, str) and _SHARD_NPY.fullmatch(arr):
                (self.root / arr).unlink(missing_ok=True)
            return None
        return arr, index, why

    def build(self, refs: Sequence[RecordRef], *, workers: int = 0, records_per_shard: int | None = None,
              progress: bool = False) -> CacheIndex:
        """Make sure every example is cached (preprocessing the missing ones in parallel) and return
        the index.  Failures are remembered (until the file changes) and reported in ``failed``."""
        self.root.mkdir(parents=True, exist_ok=True)
        cj = self.root / "contract.json"
        if not cj.exists():
            tmp = cj.with_name(f".contract.{os.getpid()}.json")
            tmp.write_text(json.dumps({"contract": self.contract.to_dict(), "lead": self.lead,
                                       "format": self.format, "version": CACHE_VERSION}, indent=2), encoding="utf-8")
            publish(tmp, cj)
        keys = [record_key(r) for r in refs]
        found, failed = self._scan()
        todo: dict[str, RecordRef] = {}
        for k, r in zip(keys, refs):
            if k not in found and k not in failed and k not in todo:
                todo[k] = r
        if todo:
            try:
                self._write(todo, workers=workers, records_per_shard=records_per_shard, progress=progress)
            finally:
                self._sweep()
            found, failed = self._scan()
        locations: list[tuple[str, int, int] | None] = []
        bad: dict[int, str] = {}
        for i, k in enumerate(keys):
            loc = found.get(k)
            locations.append(loc)
            if loc is None:
                bad[i] = failed.get(k, "not cached")
        return CacheIndex(self.root, locations, bad)

    def _write(self, todo: dict[str, RecordRef], *, workers: int, records_per_shard: int | None, progress: bool) -> None:
        items = sorted(((k, r.path, r.start_s, r.duration_s) for k, r in todo.items()),
                       key=lambda t: (t[1], -1 if t[2] is None else t[2]))
        n_workers = workers if workers > 0 else (os.cpu_count() or 1)
        per = records_per_shard or max(1, min(256, math.ceil(len(items) / (4 * n_workers))))
        # keep segments of one file in one shard where possible (the file is then read once)
        chunks: list[list] = []
        cur: list = []
        for it in items:
            if len(cur) >= per and cur[-1][1] != it[1]:
                chunks.append(cur)
                cur = []
            cur.append(it)
        if cur:
            chunks.append(cur)
        jobs = [(str(self.root), self.contract.to_dict(), self.lead, self.format, c) for c in chunks]
        bar = None
        if progress:
            try:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(items), desc="caching windows", unit="rec", disable=None)
            except ImportError:  # pragma: no cover
                bar = None
        if n_workers <= 1 or len(jobs) == 1:
            for j in jobs:
                _write_shard(j)
                if bar is not None:
                    bar.update(len(j[4]))
        else:
            import multiprocessing as mp

            from .._pools import run_in_order

            ctx = mp.get_context(_START_METHOD)
            run_in_order(_write_shard, jobs, min(n_workers, len(jobs)), ctx, lambda job: _shard_alone(job, ctx),
                         on_result=(lambda k: bar.update(len(jobs[k][4]))) if bar is not None else None)
        if bar is not None:
            bar.close()

    def index(self, refs: Iterable[RecordRef]) -> CacheIndex:
        """Index of already-cached examples (nothing is written)."""
        found, failed = self._scan()
        keys = [record_key(r) for r in refs]
        locs = [found.get(k) for k in keys]
        return CacheIndex(self.root, locs, {i: failed.get(k, "not cached") for i, (k, l) in enumerate(zip(keys, locs)) if l is None})


def _warn_failures(index: CacheIndex, refs: Sequence[RecordRef], limit: int = 5) -> None:
    """One warning: how many examples (of how many records) failed, and the first reason of up to
    ``limit`` records (the windows of one record fail alike: it named one record five times, its
    path twice each, the reasons starting with it)."""
    if not index.failed:
        return
    first: dict[str, str] = {}
    for i, why in index.failed.items():
        path = refs[i].path
        first.setdefault(path, why if str(why).startswith(path) else f"{path}: {why}")
    msg = "; ".join(list(first.values())[:limit])
    warnings.warn(f"{len(index.failed)} example(s) of {len(first)} record(s) could not be prepared and are skipped, "
                  f"e.g. {msg}", stacklevel=2)
