"""Overlap preparation (reading + preprocessing) with inference: bounded background producers.

:func:`ordered_map` applies a function to the items of an iterator in a small pool of threads and
hands the results over in input order, through a bounded queue.  The prediction engine uses it so
that records are read, checked and filtered while the model runs on the previous batch.  Threads
suffice: the model (torch, ONNX Runtime, OpenVINO), the compiled preprocessing kernels and most
numpy work release the GIL, and no process start-up, pickling or second copy of the windows is paid.

With the model on the CPU its threads already fill the cores.  Where they meet after every
operation (one inference request over all threads: torch, ONNX Runtime, OpenVINO on a single
ECG), a preparation thread of the same priority preempts them at their synchronisation points:
measured on 2 cores with int8/OpenVINO on 2 threads in that layout (``benchmarks/bench_predict.py``),
predict fell from 56.9 (prepare, then infer) to 29.9 ECG/s.  So there the preparing threads run at **idle priority** (Linux
``SCHED_IDLE``, :func:`idle_priority`): they get a core only when the model's threads leave it
idle (between batches, at the model's barriers, and whenever the model waits for data), and never
delay the model.  Measured on the same machine with a preparation process at idle priority
beside the model: the model kept its throughput (within the run-to-run noise) and the
preparation still got ~0.3 CPU.  Where idle priority does not exist (macOS, Windows), the rule
of :func:`overlap_plan` falls back to overlapping only where a core is free.

Where the model's threads work on separate parts of each batch instead (OpenVINO's streams,
:meth:`ecgfounder.runtime.runners.Runner.streams`), they meet once per batch, so a preparation
thread that takes a core delays one stream by the time it took and no more; there preparation
runs at normal priority.  Measured on the 2-core VM over 2,000 records, interleaved, int8/OpenVINO
on 2 streams: two preparation threads at normal priority 69.9-88.7 ECG/s, at idle priority
60.5-76.7 (lower in 8 of 9 rounds): an idle thread that holds the GIL when a stream's thread takes
its core keeps the model's feeding thread waiting.  And one thread per two cores, not one per
core: beside the streams every preparing thread competes for the cores and for the GIL, and one
thread on 2 cores kept 0.70-0.82 of the model's throughput (paired with model-only runs, 1,500
records, 10 rounds) against 0.63-0.75 for two, at 17.7-22.2 against 18.9-22.3 CPU-ms per record
(``benchmarks/README.md``, stop 22).  A single thread at normal priority iterates the items and
prepares them itself (no pool, no dispatcher thread: the GIL and the items pass between two threads,
not three; paired 0.73 against 0.69 of model-only, stop 23).  With a pool (more threads, or idle
priority) the consumer takes over queued work whenever it waits, so a pool that falls behind a
faster model costs overlap, not progress.

Idle priority has one hazard: on a machine that other programs keep busy, an idle thread may
wait long for a core.  So the consumer never idles beside work that no thread has started: while
it waits for the next result it takes queued items over (cancels them in the pool and does them
itself, at its own priority: the model's thread has nothing else to do then); and once it has
waited :data:`STARVED_S` for one item an idle thread holds, it hands the pool no more work and
prepares the rest itself (in turn with inference, the behaviour without overlap), the items the
starved threads hold included (their results, when they come, are not used): one wait of
:data:`STARVED_S` in all, not one per item a thread holds.

Errors raised by the iterator or the function are re-raised in the consumer, at the position they
occurred.  Leaving the loop early (``break``, an exception, garbage collection) stops the threads.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["ordered_map", "overlap_plan", "idle_priority", "idle_priority_supported"]

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()
_PENDING = object()

#: Seconds the consumer may wait for one item that an idle-priority thread is working on before it
#: concludes that other programs keep the cores busy (the thread gets no time) and stops handing
#: work to the pool: from then on it prepares every item itself, in turn with the model.
STARVED_S = 2.0


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def idle_priority_supported() -> bool:
    """Whether a thread can lower itself to idle priority here (Linux ``SCHED_IDLE``)."""
    return hasattr(os, "SCHED_IDLE") and hasattr(os, "sched_setscheduler")


def idle_priority() -> bool:
    """Lower the **calling thread** to idle priority (Linux ``SCHED_IDLE``: on Linux a scheduling
    policy belongs to a thread, so the rest of the process keeps its priority).  Returns whether
    it could; elsewhere it changes nothing."""
    if not idle_priority_supported():
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:  # pragma: no cover - refused by a sandbox
        return False
    return True


def overlap_plan(device: str = "cpu", model_threads: int | None = None, streams: int = 1) -> tuple[int, bool]:
    """``(preparation threads, at idle priority)`` for a model on ``device``; ``(0, False)``
    means prepare in turn with inference.

    A GPU model leaves the CPU to preparation: one thread per core (at least 1), normal priority.
    A CPU model whose threads run on ``streams`` > 1 (separate parts of each batch, meeting once per
    batch: :meth:`ecgfounder.runtime.runners.Runner.streams`) gets preparation at normal priority
    too (a thread that takes a core from one stream delays that stream alone, by the time it took),
    one thread per two cores (at least 1: fewer threads fighting the model and each other for the
    cores and the GIL; see the module docstring).  A CPU model whose
    threads meet after every operation: one thread per core at idle priority where that exists;
    elsewhere, the cores its ``model_threads`` leave free (none: prepare in turn)."""
    cores = _cores()
    if not str(device).startswith("cpu"):
        return max(1, cores), False
    if streams > 1:
        return max(1, cores // 2), False
    if idle_priority_supported():
        return max(1, cores), True
    if model_threads is None:
        import torch

        model_threads = torch.get_num_threads()
    free = cores - int(model_threads)
    return max(0, free), False


class _Job:
    """One item's work: submitted to the pool, or taken over by the waiting consumer."""

    __slots__ = ("fut", "item", "value", "error")

    def __init__(self, fut: Future | None, item: object):
        self.fut, self.item, self.value, self.error = fut, item, _PENDING, None

    def take_over(self, fn: Callable) -> bool:
        """Do the work here if no pool thread has started it; whether it did."""
        if self.value is not _PENDING or (self.fut is not None and not self.fut.cancel()):
            return False
        try:
            self.value = fn(self.item)
        except BaseException as exc:  # raised at this item's position
            self.value, self.error = None, exc
        return True

    def redo(self, fn: Callable) -> None:
        """Do the work here although a pool thread has started it (that thread gets no time): its
        result, when it comes, is not used."""
        try:
            self.value = fn(self.item)
        except BaseException as exc:  # raised at this item's position
            self.value, self.error = None, exc

    def result(self) -> object:
        if self.error is not None:
            raise self.error
        return self.fut.result() if self.value is _PENDING else self.value


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, threads: int, depth: int = 16,
                idle: bool = False) -> Iterator[R]:
    """``fn(item)`` for every item of ``items``, in input order, computed ahead by ``threads``
    background threads.

    With one thread at normal priority, that thread iterates ``items`` and applies ``fn`` in turn
    (:func:`_one_thread`: the least handing over).  Otherwise ``items`` is iterated in one more
    thread, in order, and submitted to a pool; while the consumer waits for the next result, it
    takes over queued work that no thread has started (so a pool starved of cores, e.g. at idle
    priority on a busy machine, cannot stall it).

    Args:
        fn: the work per item; it runs in several threads at once, so it must be thread-safe; with
            ``idle``, an item a starved thread holds is done again by the consumer (``fn`` must give
            the same for the same item, and have no effect beyond its result).
        items: any iterable (e.g. records read from files).
        threads: worker threads (``>= 1``).
        depth: items submitted and not yet consumed at most (bounds memory).
        idle: run the ``threads`` worker threads at idle priority (:func:`idle_priority`).
    """
    if threads < 1:
        raise ValueError(f"ordered_map needs threads >= 1; got {threads}.")
    if depth < 1:
        raise ValueError(f"ordered_map depth must be >= 1; got {depth}.")
    if threads == 1 and not idle:
        return _one_thread(fn, items, depth)
    return _pooled(fn, items, threads, depth, idle)


def _one_thread(fn: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """:func:`ordered_map` with one worker at normal priority: the thread that iterates ``items``
    applies ``fn`` too, in order, and appends each result to a list the consumer drains whole.

    No pool, no futures, no dispatcher beside the worker: one lock taken per item, and a wake-up
    only when the consumer is waiting.  Measured on the 2-core VM, 1,000 WFDB records read, checked
    and preprocessed: 4.7-5.3 CPU-ms per record, as in turn in one thread (4.3-5.2), against
    5.8-7.3 through the pool of one thread with its dispatcher (three threads passing the GIL and
    the items between them; ``benchmarks/README.md``, stop 23)."""
    cond = threading.Condition()
    ready: deque = deque()  # results, then _DONE or a _Failure, in input order
    flags = {"waiting": False, "stop": False}

    def hand_over(value: object) -> bool:
        """Append ``value`` for the consumer, then wait while ``depth`` results wait; whether to go on."""
        with cond:
            ready.append(value)
            if flags["waiting"]:
                cond.notify()
            while len(ready) >= depth and not flags["stop"]:
                cond.wait()
            return not flags["stop"]

    def produce() -> None:
        try:
            for item in items:
                try:
                    value = fn(item)
                except BaseException as exc:  # raised by the consumer at this position
                    hand_over(_Failure(exc))
                    return
                if not hand_over(value):
                    return  # the consumer has stopped
        except BaseException as exc:  # from iterating ``items``
            hand_over(_Failure(exc))
            return
        hand_over(_DONE)

    thread = threading.Thread(target=produce, name="ecgfounder-prepare", daemon=True)

    def consume() -> Iterator[R]:
        thread.start()
        try:
            while True:
                with cond:
                    while not ready:
                        flags["waiting"] = True
                        cond.wait()
                    flags["waiting"] = False
                    got = ready.copy()
                    ready.clear()
                    cond.notify()  # room again for a worker waiting on ``depth``
                while got:
                    value = got.popleft()  # (held by the consumer alone once yielded)
                    if value is _DONE:
                        return
                    if isinstance(value, _Failure):
                        raise value.exc
                    yield value  # type: ignore[misc]
        finally:
            with cond:
                flags["stop"] = True
                cond.notify_all()
            thread.join(timeout=5.0)

    return consume()


def _pooled(fn: Callable[[T], R], items: Iterable[T], threads: int, depth: int, idle: bool) -> Iterator[R]:
    """:func:`ordered_map` with a pool of ``threads`` (or at idle priority): a dispatcher thread
    iterates ``items`` and submits each to the pool; the waiting consumer takes queued items over."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="ecgfounder-prepare",
                              initializer=idle_priority if idle else None)

    starved = threading.Event()

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def dispatch() -> None:
        try:
            for item in items:
                # once the pool is found starved, the consumer does all the work
                if not put(_Job(None if starved.is_set() else pool.submit(fn, item), item)):
                    return  # the consumer has stopped
        except BaseException as exc:  # raised by the consumer at this position
            put(_Failure(exc))
            return
        put(_DONE)

    # the dispatcher (it iterates ``items``: reading records) keeps normal priority: its work is light
    # (0.5 ms per WFDB record), and a starved dispatcher would leave the consumer nothing to take over
    thread = threading.Thread(target=dispatch, name="ecgfounder-dispatch", daemon=True)
    thread.start()
    jobs: deque = deque()  # _Job or _Failure, in input order
    ended = False  # the dispatcher has handed everything over

    def pull(block: bool) -> None:
        nonlocal ended
        while not ended and len(jobs) < depth:
            try:
                obj = q.get(block=block)
            except queue.Empty:
                return
            block = False
            if obj is _DONE:
                ended = True
            else:
                jobs.append(obj)

    try:
        while True:
            if not jobs:
                pull(True)
                if not jobs:
                    return
            job = jobs[0]
            if isinstance(job, _Failure):
                raise job.exc
            waited = 0.0
            while job.value is _PENDING and (job.fut is None or not job.fut.done()):
                pull(False)
                if job.take_over(fn) or any(j.take_over(fn) for j in jobs if isinstance(j, _Job)):
                    continue
                if starved.is_set():  # its thread gets no time: this item too is done here
                    job.redo(fn)
                    break
                t0 = time.monotonic()
                wait([job.fut], timeout=0.05 if ended else 0.005)  # (job.fut is set: else taken over)
                waited += time.monotonic() - t0
                if idle and waited > STARVED_S and not starved.is_set():
                    starved.set()
            jobs.popleft()
            yield job.result()  # type: ignore[misc]
    finally:
        stop.set()
        for j in jobs:
            if isinstance(j, _Job) and j.fut is not None:
                j.fut.cancel()
        while True:  # unblock the dispatcher and drop what was submitted
            try:
                obj = q.get_nowait()
            except queue.Empty:
                break
            if isinstance(obj, _Job) and obj.fut is not None:
                obj.fut.cancel()
        thread.join(timeout=5.0)
        pool.shutdown(wait=False, cancel_futures=True)
