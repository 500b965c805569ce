"""Process pools whose workers may die: a reader's C library crashing on a hostile file, or the
kernel's out-of-memory killer, ends a worker, and ``concurrent.futures`` then fails every task
of the pool with ``BrokenProcessPool``.  These helpers let the callers (prediction's workers,
the pre-training store's chunk writers, the training window cache's shard writers) tell the input
that did it from the ones that were only in flight beside it, so that one input fails and nothing
else is lost.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

__all__ = ["BrokenProcessPool", "CRASHED", "KILLED", "TIMED_OUT", "each_alone", "find_killers", "in_own_pool",
           "kill_pool", "run_in_order", "submit", "timed_out", "without_killers"]

CRASHED = ("reading or preparing this input ended its worker process abruptly (a crash in a reader's library, or "
           "the system ended it, e.g. out of memory), also when it was read alone in a fresh worker; the other "
           "inputs are unaffected. Check or convert this file.")


def timed_out(seconds: float) -> str:
    """The error of an input whose reading or preparation ran past its time limit (:data:`TIMED_OUT`)."""
    return (f"reading or preparing this input took more than {seconds:g} s, also when it was read alone in a fresh "
            "worker (a file that never ends, such as a named pipe, or one on a path that blocks); its worker was "
            "ended and the other inputs are unaffected. Check or convert this file.")


def kill_pool(ex: ProcessPoolExecutor) -> None:
    """End the workers of ``ex`` at once (one may be stuck in a read that never returns, which
    ``shutdown(wait=True)`` would wait for forever), then shut it down."""
    for proc in list((getattr(ex, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (OSError, ValueError, AttributeError):  # already gone / closed
            pass
    ex.shutdown(wait=True, cancel_futures=True)


def submit(ex: ProcessPoolExecutor, fn: Callable, *args: Any) -> Future:
    """``ex.submit(fn, *args)``; a pool already broken (a worker died since the last task was
    sent) gives a task that failed with ``BrokenProcessPool``, to be handled where results are
    taken, like any other task of the broken pool."""
    try:
        return ex.submit(fn, *args)
    except BrokenProcessPool as exc:
        failed: Future = Future()
        failed.set_exception(exc)
        return failed


def in_own_pool(ctx: Any, fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` in a one-worker pool of its own (start method ``ctx``); raises
    ``BrokenProcessPool`` if that worker dies."""
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        return submit(ex, fn, *args).result()


KILLED = object()  # what each_alone gives for a call that ended its worker
TIMED_OUT = object()  # what each_alone gives for a call that ran past its time limit (its worker was ended)


def each_alone(ctx: Any, fn: Callable, calls: Sequence[tuple], *, initializer: Callable | None = None,
               initargs: tuple = (), timeout: float | None = None) -> list:
    """``[fn(*args) for args in calls]``, each call in turn in one worker process (a fresh one after
    each death), :data:`KILLED` for a call that ended its worker, :data:`TIMED_OUT` for one that took
    more than ``timeout`` seconds (its worker is then ended); other exceptions propagate."""
    def new() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=initializer, initargs=initargs)

    out: list = []
    ex = new()
    try:
        for args in calls:
            try:
                out.append(submit(ex, fn, *args).result(timeout=timeout))
            except (BrokenProcessPool, FutureTimeout) as exc:  # its worker died, or is stuck: ended, replaced
                out.append(KILLED if isinstance(exc, BrokenProcessPool) else TIMED_OUT)
                kill_pool(ex)
                ex = new()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return out


def find_killers(ctx: Any, fn: Callable, calls: Sequence[tuple]) -> set[int]:
    """Positions in ``calls`` whose ``fn(*args)`` ends its worker process (:func:`each_alone`;
    ``fn`` is a probe that keeps its ordinary failures to itself)."""
    return {i for i, r in enumerate(each_alone(ctx, fn, calls)) if r is KILLED}


def without_killers(ctx: Any, fn: Callable, job: Any, probe: Callable, probe_calls: Sequence[tuple],
                    drop: Callable[[set[int]], Any], again: Callable[[], Exception]) -> tuple[Any, set[int]]:
    """``(fn(job), set())`` in a worker of its own; if that worker dies, the inputs of ``job`` are
    probed alone in turn (``probe(*probe_calls[i])``, :func:`find_killers`) and ``fn`` runs once
    more on ``drop(killers)`` (the job without them, or with them marked as failed): ``(its result,
    killers)``.  A death on that last run too is no one input's doing (memory): ``again()`` is raised.
    For the jobs of :func:`run_in_order` that were in flight when a worker died."""
    try:
        return in_own_pool(ctx, fn, job), set()
    except BrokenProcessPool:
        pass
    hit = find_killers(ctx, probe, probe_calls)
    try:
        return in_own_pool(ctx, fn, drop(hit)), hit
    except BrokenProcessPool:
        raise again() from None


def run_in_order(fn: Callable[[Any], Any], jobs: Sequence[Any], n_workers: int, ctx: Any,
                 alone: Callable[[Any], Any], on_result: Callable[[int], None] | None = None) -> list:
    """``[fn(job) for job in jobs]`` (results in job order) in ``n_workers`` processes, at most one
    job a worker in flight, so that every job in flight is running; a worker that finishes gets
    the next job at once.  When a worker dies, the jobs in flight go to ``alone(job)`` one at a
    time, in order (it runs the job where a death can be told apart, e.g. :func:`in_own_pool`, and
    decides what a job that kills again gives); the rest continue in a fresh pool.
    ``on_result(k)`` is called as job ``k``'s result arrives (progress)."""
    results: list = [None] * len(jobs)
    in_flight: dict[Future, int] = {}
    nxt, ex = 0, ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
    try:
        while nxt < len(jobs) or in_flight:
            while nxt < len(jobs) and len(in_flight) < n_workers:
                in_flight[submit(ex, fn, jobs[nxt])] = nxt
                nxt += 1
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            done, suspects = [], []
            for fut in finished:
                k = in_flight.pop(fut)
                try:
                    results[k] = fut.result()
                    done.append(k)
                except BrokenProcessPool:
                    suspects.append(k)
            if suspects:
                suspects += list(in_flight.values())
                in_flight.clear()
                ex.shutdown(wait=True, cancel_futures=True)
                for j in sorted(suspects):
                    results[j] = alone(jobs[j])
                ex = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
            for j in done + sorted(suspects) if on_result is not None else ():
                on_result(j)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return results
