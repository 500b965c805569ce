"""Reading and preprocessing in worker processes, results in input order, bounded memory.

:func:`prepared_records` yields the ``(RecordResult, Prepared | None)`` pairs that
:func:`ecgfounder.prediction.stream.iter_predict` consumes: the same pairs, in the same order, as
the in-process path (:func:`ecgfounder.prediction.records.prepared_in_process`: the workers run its
steps), so results do not depend on the number of workers.

Work is sent to the pool in small tasks (``chunk`` inputs each, or :data:`MEMBERS_PER_TASK`
recordings of a batch file: an HDF5 or ``.npy`` file of 20,000 ECGs is read by every worker, a
range each, not whole by one); at most ``max_tasks`` tasks are in flight, so memory stays bounded
whatever the number and size of the inputs (about ``max_tasks × chunk`` records of windows, 240 kB
per 10-s 12-lead record).  Worker processes run single-threaded numpy/scipy so that they do not
compete with the model's threads.  (A batch file that fails part-way is reported per range: the
ranges after a bad item are still read, where reading in one process stops at it.)

A worker that dies (a reader's C library crashing on a hostile file, the kernel's out-of-memory
killer) costs only the input that killed it: the inputs in flight then are prepared again one at a
time in a fresh pool, and one that kills its worker again becomes a failed record
(:data:`~ecgfounder._pools.CRASHED`); workers that cannot start at all raise
:class:`~ecgfounder.errors.WorkersCannotStartError`.  An input whose reading never ends (a named
pipe, a path that blocks) is handled the same way after :data:`TIME_LIMIT_S` seconds an input: the
workers are ended, the inputs in flight are prepared again one at a time, and the one that runs
past the limit again becomes a failed record (:func:`~ecgfounder._pools.timed_out`).

Workers die with their parent: on Linux each asks the kernel for SIGTERM when its parent exits
(``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread ends the worker when the process
that started the pool is gone (``kill -9`` of the parent leaves no orphan reading files).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Iterable, Iterator

import numpy as np

from .._pools import CRASHED, KILLED, TIMED_OUT, BrokenProcessPool, each_alone, kill_pool, submit, timed_out
from ..errors import WorkersCannotStartError
from ..signal.preprocess import Prepared, PreprocessContract
from .records import expand_inputs, prepare_one, prepared_in_process

__all__ = ["prepared_records", "default_workers", "start_worker_server", "worker_context"]


TIME_LIMIT_S = 600.0  # seconds an input may take in a worker (reading and preparing) before it is given up


def default_workers(device: str = "cpu") -> int:
    """Worker processes used by ``workers=None``.

    With the model on a GPU, every usable core but one (at least 1) reads and preprocesses: the
    GPU needs little of the CPU (0.1 CPU-ms a record at batch 256), and on a 16-core H200 host
    15 workers fed predict 1,770 records/s against 1,293 with 8, at the same memory (PSS 1.9 and
    2.0 GB; ``benchmarks/gpu_check.sh``, README there).  With the model on the CPU it already keeps
    every core busy, so a quarter of them (none on 2 cores): measured on the 2-core project machine
    over 1,000 WFDB records (``benchmarks/bench_predict.py``), preparing in the model's process
    reached 0.81 of model-only throughput, one worker process 0.68 (three busy threads on two
    cores).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    if str(device).startswith("cuda"):
        return max(1, n - 1)
    return n // 4


def _die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent exits
        except (OSError, AttributeError):  # pragma: no cover
            pass

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - pid reused by another user's process
                os._exit(1)

    threading.Thread(target=watch, name="ecgfounder-parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    torch = sys.modules.get("torch")  # reading and preprocessing need no torch: not imported here
    if torch is not None:  # (~1.5 s and ~300 MB per worker); only tamed if something brought it in
        torch.set_num_threads(1)


#: recordings of a batch file (HDF5, ``.npy``) per task: a larger file is shared out in such ranges
MEMBERS_PER_TASK = 32

Unit = tuple[str, Any, int, "tuple[int, int] | None"]  # (shown path, path or Recording, input index, member range)


def _units(items: Iterable[tuple[str, Any]], read_kwargs: dict, per: int = MEMBERS_PER_TASK) -> Iterator[Unit]:
    """The work of ``items``: a unit per input, except that a batch file of more than ``per``
    recordings whose header tells how many (:func:`ecgfounder.io.detect.count_records`) becomes a
    unit per ``per`` of them, so that one file of 20,000 ECGs is read by every worker in parts of
    bounded memory instead of by one worker whole."""
    from ..io.detect import count_records

    for i, (shown, item) in enumerate(items):
        n = None
        if isinstance(item, (str, os.PathLike)):
            try:
                n = count_records(item, **{k: v for k, v in read_kwargs.items() if k in ("format", "dataset")})
            except (ValueError, OSError):  # (reported by the worker that reads it)
                n = None
        if n is None or n <= per:
            yield shown, item, i, None
        else:
            for a in range(0, n, per):
                yield shown, item, i, (a, min(a + per, n))


def _work(units: list[Unit], contract: PreprocessContract, read_kwargs: dict, prep_kwargs: dict,
          tag: int, spool: str | None = None) -> tuple[str | None, list]:
    """Read and prepare ``units`` in a worker; ``index`` is renumbered by the parent.  With a
    ``spool`` folder the windows go back through a file there (:func:`_spool_out`, named by ``tag``)."""
    pairs = []
    for shown, item, i, span in units:
        kw = read_kwargs if span is None else {**read_kwargs, "start": span[0], "stop": span[1]}
        pairs += prepared_in_process([(shown, item)], contract, kw, prep_kwargs, input_offset=i,
                                     member_offset=span[0] if span else 0)
    return _spool_out(pairs, spool, tag) if spool else (None, pairs)


_NO_WINDOWS = np.empty((0,), np.float32)


def _spool_folder() -> str | None:
    """A private folder in shared memory (``/dev/shm``) for the windows on their way back from the
    workers, or ``None`` where there is none (then they go through the pool's pipe).  Through the
    pipe, a 10-s 12-lead record's 240 kB cost the consuming process 0.2-0.28 CPU-ms (0.32-0.42 ms a
    record with them, 0.12-0.14 without: 2,000 records, two workers, the project machine); through
    these files 0.25-0.28 (reading from tmpfs costs ~0.1 ms a record here, mostly page faults), and
    ``predict``'s consumer 0.27-0.29 against 0.30-0.33 (``bench_predict.py --workers 2 --pipeline``).
    The consumer is what bounds ``predict`` on a GPU (``benchmarks/README.md``, H200)."""
    import tempfile

    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)):
        return None
    _sweep_spools("/dev/shm")
    try:
        return tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir="/dev/shm")
    except OSError:
        return None


SPOOL_PREFIX = "ecgfounder-windows-"  # + the pid of the process that made the folder


def _sweep_spools(root: str) -> None:
    """Remove the spool folders of processes that no longer run (a ``kill -9`` leaves its folder)."""
    import shutil

    from .._fileio import process_gone

    for entry in os.scandir(root):
        if not entry.name.startswith(SPOOL_PREFIX):
            continue
        try:
            pid = int(entry.name[len(SPOOL_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue  # a name we did not write
        if process_gone(pid):  # (not another user's process: theirs to judge)
            shutil.rmtree(entry.path, ignore_errors=True)


def _spool_out(pairs: list, folder: str, tag: int) -> tuple[str | None, list]:
    """The windows of ``pairs`` written to one file of ``folder``; the pairs keep an empty array in
    their place and ``(shape, dtype, position)`` beside them, for :func:`_spool_in`."""
    if not any(p is not None for _, p in pairs):
        return None, pairs
    from dataclasses import replace

    path, out, pos = os.path.join(folder, f"{os.getpid()}-{tag}.bin"), [], 0
    try:
        with open(path, "wb") as f:
            for res, prep in pairs:
                if prep is None:
                    out.append((res, None, None))
                    continue
                w = np.ascontiguousarray(prep.windows)
                f.write(w.data)
                out.append((res, replace(prep, windows=_NO_WINDOWS), (w.shape, w.dtype.str, pos)))
                pos += w.nbytes
    except OSError:  # shared memory full (a container's 64 MB /dev/shm): through the pipe after all
        try:
            os.unlink(path)
        except OSError:
            pass
        return None, pairs
    return path, out


def _spool_in(path: str | None, out: list) -> list:
    """The pairs of a task, their windows read back from its file (then removed)."""
    if path is None:
        return out
    from dataclasses import replace

    with open(path, "rb") as f:  # (into a bytearray: the windows stay writable, as through the pipe)
        buf = bytearray(os.fstat(f.fileno()).st_size)
        f.readinto(buf)
    os.unlink(path)
    pairs = []
    for res, prep, where in out:
        if prep is None:
            pairs.append((res, None))
            continue
        shape, dtype, pos = where
        w = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape)), offset=pos).reshape(shape)
        pairs.append((res, replace(prep, windows=w)))
    return pairs


PRELOAD = "ecgfounder.prediction._forkserver"
MAIN_ENV = "ECGFOUNDER_FORKSERVER_MAIN"  # the parent's main script, for the server (_forkserver.load_main)


def worker_context(name: str | None = None) -> mp.context.BaseContext:
    """The start method of the worker processes: ``name``, or ``forkserver`` where available (else
    ``spawn``).  A forkserver loads :mod:`ecgfounder.prediction._forkserver` once (the reading and
    preparation modules, their compiled kernels warmed), so each worker starts as a fork of a
    process that has them, not as a bare interpreter that imports and loads them itself."""
    methods = mp.get_all_start_methods()
    name = name or ("forkserver" if "forkserver" in methods else "spawn")
    ctx = mp.get_context(name)
    if name == "forkserver":
        from multiprocessing import spawn

        main = spawn.get_preparation_data("ecgfounder-worker").get("init_main_from_path")
        if main:  # a script (not ``python -m``): the server loads it once, see _forkserver.load_main
            os.environ[MAIN_ENV] = json.dumps({"path": main, "argv": list(sys.argv)})
        else:
            os.environ.pop(MAIN_ENV, None)
        ctx.set_forkserver_preload([PRELOAD, "__main__"])
    return ctx


def start_worker_server(mp_context: str | None = None) -> None:
    """Start the forkserver now, so that its imports and warm-up overlap with what the caller does
    next (loading the model, measuring ``auto``); the first workers then fork at once.  Nothing
    happens where the start method is not ``forkserver`` or the server already runs."""
    ctx = worker_context(mp_context)
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


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
    time_limit: float | None = None,
) -> Iterator[tuple[Any, Prepared | None]]:
    """``(RecordResult, Prepared | None)`` for every recording of ``inputs``, in input order.

    Args:
        inputs: files, folders (searched recursively) or :class:`~ecgfounder.Recording` objects.
        contract: the model's preprocessing contract (mode already applied).
        workers: worker processes; ``0`` prepares in this process; ``None``: :func:`default_workers`
            for the model's ``device``.
        read_kwargs / prep_kwargs: passed to the readers / to ``prepare`` (``lead``, ``fill_missing``).
        chunk: inputs per task sent to a worker (a batch file's recordings go :data:`MEMBERS_PER_TASK`
            a task).
        max_tasks: tasks in flight at most (default ``2 × workers``): bounds memory.
        mp_context: multiprocessing start method (default ``forkserver`` where available).
        time_limit: seconds an input may take in a worker (default :data:`TIME_LIMIT_S`); one that
            takes longer, also alone in a fresh worker, becomes a failed record.
    """
    read_kwargs = dict(read_kwargs or {})
    prep_kwargs = dict(prep_kwargs or {})
    n_workers = default_workers(device) if workers is None else int(workers)
    if n_workers < 0:
        raise ValueError(f"workers must be >= 0 (0: prepare in this process); got {workers}.")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1; got {chunk}.")
    if n_workers == 0:
        yield from prepared_in_process(expand_inputs(inputs), contract, read_kwargs, prep_kwargs)
        return

    limit = max(1, int(max_tasks if max_tasks is not None else 2 * n_workers))
    seconds = float(TIME_LIMIT_S if time_limit is None else time_limit)
    units = _units(expand_inputs(inputs), read_kwargs)
    ctx = worker_context(mp_context)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))

    index = 0
    sent = 0  # tasks sent (their spool files' names)
    pending: deque[tuple[Future, list[Unit]]] = deque()  # (task, its units)
    held: list[Unit] = []  # a unit read ahead that starts the next task
    spool = _spool_folder()
    pool = new_pool()
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                batch, held = held, []  # up to ``chunk`` inputs, or one range of a batch file
                for shown, item, i, span in units:
                    unit = (shown, str(item) if isinstance(item, os.PathLike) else item, i, span)
                    if span is not None and batch:
                        held = [unit]
                        break
                    batch.append(unit)
                    if span is not None or len(batch) >= chunk:
                        break
                if not batch:
                    exhausted = True
                    break
                pending.append((submit(pool, _work, batch, contract, read_kwargs, prep_kwargs, sent, spool), batch))
                sent += 1
            if not pending:
                break
            task, batch = pending.popleft()
            try:  # (the oldest task runs from the moment a worker is free: its time is counted from now)
                pairs = _spool_in(*task.result(timeout=seconds * len(batch)))
            except (BrokenProcessPool, FutureTimeout):  # a worker died (a reader's library crashed, the
                in_flight = [batch] + [b for _, b in pending]  # system killed it) or is stuck
                pending.clear()
                kill_pool(pool)  # (a broken pool's workers are gone already; a stuck one must be ended)
                pairs = _one_at_a_time(ctx, in_flight, contract, read_kwargs, prep_kwargs, spool, seconds)
                pool = new_pool()
            for res, prep in pairs:
                res.index = index
                index += 1
                yield res, prep
    finally:
        for task, _ in pending:
            task.cancel()
        if pending:  # cut short (interrupted, or the consumer stopped): the work in flight is not wanted, and
            kill_pool(pool)  # a worker stuck in a read would keep shutdown(wait=True) waiting forever
        else:
            pool.shutdown(wait=True, cancel_futures=True)
        if spool is not None:  # (files of tasks cut short, or of a worker that died while writing)
            import shutil

            shutil.rmtree(spool, ignore_errors=True)


def _one_at_a_time(ctx: mp.context.BaseContext, tasks: list[list[Unit]], contract: PreprocessContract,
                   read_kwargs: dict, prep_kwargs: dict, spool: str | None, seconds: float | None = None) -> list:
    """The units (inputs, or ranges of a batch file) that were in flight when a worker died, each
    alone, in order (:func:`~ecgfounder._pools.each_alone`): one that kills its worker again is a
    failed record (:data:`~ecgfounder._pools.CRASHED`; for a range, at its first member), as is one
    that takes more than ``seconds`` (:func:`~ecgfounder._pools.timed_out`); the rest are prepared
    as usual."""
    init = {"initializer": _init_worker, "initargs": (os.getpid(),)}
    if each_alone(ctx, os.getpid, [()], **init) == [KILLED]:
        raise WorkersCannotStartError(
            "worker processes end before doing any work (memory exhausted, or a main script that starts "
            "prediction at import time: put that under `if __name__ == \"__main__\":`). Prepare in this "
            "process instead: workers=0 (--workers 0).")
    calls = [([unit], contract, read_kwargs, prep_kwargs, -1 - k, spool)
             for k, unit in enumerate(u for batch in tasks for u in batch)]
    pairs: list = []
    for args, got in zip(calls, each_alone(ctx, _work, calls, timeout=seconds, **init)):
        if got is KILLED or got is TIMED_OUT:
            err = CRASHED if got is KILLED else timed_out(seconds or 0)
            shown, _, i, span = args[0][0]
            pairs.append(prepare_one(0, i, span[0] if span else 0, shown, None, err, contract, prep_kwargs))
        else:
            pairs.extend(_spool_in(*got))
    return pairs
