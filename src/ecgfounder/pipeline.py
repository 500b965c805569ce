"""Reading and preprocessing in worker processes, results in input order, bounded memory.

:func:`prepared_records` yields the ``(RecordResult, Prepared | None)`` pairs that
:func:`ecgfounder.prediction.iter_predict` takes as ``prepared``: the same pairs, in the same order,
as the in-process path (it reuses :func:`ecgfounder.prediction._records` and
:func:`ecgfounder.prediction._prepare_one` inside the workers), so results do not depend on the
number of workers.

Work is sent to the pool in small tasks (``chunk`` inputs each); at most ``max_tasks`` tasks are
in flight, so memory stays bounded whatever the number of inputs (about
``max_tasks × chunk`` records of windows, 240 kB per 10-s 12-lead record).  Worker processes run
single-threaded numpy/scipy so that they do not compete with the model's threads.

Splitting a record list between processes, GPUs or nodes: :func:`shard` (contiguous, balanced,
deterministic blocks of the sorted list) and :func:`shard_from_env` (``RANK``/``WORLD_SIZE`` as set by
``torchrun``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Iterable, Iterator, Sequence

from .signal.preprocess import PreprocessContract, Prepared

__all__ = ["prepared_records", "default_workers", "shard", "parse_shard", "shard_from_env", "shard_bounds"]


def default_workers(device: str = "cpu") -> int:
    """Worker processes used by ``workers=None``.

    With the model on a GPU, half the usable cores (at least 1) read and preprocess.  With the
    model on the CPU it already keeps every core busy, so a quarter of them (none on 2 cores):
    measured on the 2-core project machine over 1,000 WFDB records (``benchmarks/bench_predict.py``),
    preparing in the model's process reached 0.81 of model-only throughput, one worker process
    0.68 (three busy threads on two cores).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    if str(device).startswith("cuda"):
        return max(1, n // 2)
    return n // 4


def _init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _work(items: list[tuple[str, Any]], contract: PreprocessContract, read_kwargs: dict, prep_kwargs: dict) -> list:
    """Read and prepare ``items`` (display path, path-or-Recording) in a worker; the index of each
    result is provisional (renumbered by the parent)."""
    from .prediction import _prepare_one, _records

    out = []
    for _shown, item in items:
        for path, rec, err in _records([item], read_kwargs):
            out.append(_prepare_one(0, path, rec, err, contract, prep_kwargs))
    return out


def _context(name: str | None) -> mp.context.BaseContext:
    if name:
        return mp.get_context(name)
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def prepared_records(
    inputs: Iterable[Any],
    contract: PreprocessContract,
    *,
    workers: int | None = None,
    read_kwargs: dict[str, Any] | None = None,
    prep_kwargs: dict[str, Any] | None = None,
    chunk: int = 4,
    max_tasks: int | None = None,
    mp_context: str | None = None,
    device: str = "cpu",
) -> Iterator[tuple[Any, Prepared | None]]:
    """``(RecordResult, Prepared | None)`` for every recording of ``inputs``, in input order.

    Args:
        inputs: files, folders (searched recursively, as :func:`ecgfounder.prediction.predict` does)
            or :class:`~ecgfounder.Recording` objects.
        contract: the model's preprocessing contract (mode already applied).
        workers: worker processes; ``0`` prepares in this process; ``None``: :func:`default_workers`
            for the model's ``device``.
        read_kwargs / prep_kwargs: passed to the readers / to ``prepare`` (``lead``, ``fill_missing``).
        chunk: inputs per task sent to a worker.
        max_tasks: tasks in flight at most (default ``2 × workers``): bounds memory.
        mp_context: multiprocessing start method (default ``forkserver`` where available).
    """
    from .prediction import _expand_inputs, _prepare_one, _records

    read_kwargs = dict(read_kwargs or {})
    prep_kwargs = dict(prep_kwargs or {})
    n_workers = default_workers(device) if workers is None else int(workers)
    if n_workers < 0:
        raise ValueError(f"workers must be >= 0 (0: prepare in this process); got {workers}.")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}.")
    if n_workers == 0:
        for i, (path, rec, err) in enumerate(_records(inputs, read_kwargs)):
            yield _prepare_one(i, path, rec, err, contract, prep_kwargs)
        return

    limit = max_tasks if max_tasks is not None else 2 * n_workers
    limit = max(1, int(limit))
    items = _expand_inputs(inputs)
    index = 0
    pending: deque[Future] = deque()
    with ProcessPoolExecutor(n_workers, mp_context=_context(mp_context), initializer=_init_worker) as pool:
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < limit:
                    batch: list[tuple[str, Any]] = []
                    for shown, item in items:
                        batch.append((shown, str(item) if isinstance(item, os.PathLike) else item))
                        if len(batch) >= chunk:
                            break
                    if not batch:
                        exhausted = True
                        break
                    pending.append(pool.submit(_work, batch, contract, read_kwargs, prep_kwargs))
                if not pending:
                    break
                for res, prep in pending.popleft().result():
                    res.index = index
                    index += 1
                    yield res, prep
        finally:
            for f in pending:
                f.cancel()


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
