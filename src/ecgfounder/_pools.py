"""Process pools whose workers may die: a reader's C library crashing on a hostile file, or the
kernel's out-of-memory killer, ends a worker, and ``concurrent.futures`` then fails every task
of the pool with ``BrokenProcessPool``.  These helpers let the callers (prediction's workers,
the pre-training store's chunk writers) tell the input that did it from the ones that were only
in flight beside it, so that one input fails and nothing else is lost.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

__all__ = ["BrokenProcessPool", "in_own_pool", "run_in_order", "submit"]


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


def run_in_order(fn: Callable[[Any], Any], jobs: Sequence[Any], n_workers: int, ctx: Any,
                 alone: Callable[[Any], Any]) -> list:
    """``[fn(job) for job in jobs]`` in ``n_workers`` processes, at most one job a worker in
    flight (so every job in flight is running).  When a worker dies, the jobs in flight go to
    ``alone(job)`` one at a time, in order (it runs the job where a death can be told apart, e.g.
    :func:`in_own_pool`, and decides what a job that kills again gives); the rest continue in a
    fresh pool."""
    results: list = [None] * len(jobs)
    window: deque[tuple[int, Future]] = deque()
    nxt, ex = 0, ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
    try:
        while nxt < len(jobs) or window:
            while nxt < len(jobs) and len(window) < n_workers:
                window.append((nxt, submit(ex, fn, jobs[nxt])))
                nxt += 1
            k, fut = window.popleft()
            try:
                results[k] = fut.result()
            except BrokenProcessPool:
                suspects = [k] + [j for j, _ in window]
                window.clear()
                ex.shutdown(wait=True, cancel_futures=True)
                for j in suspects:
                    results[j] = alone(jobs[j])
                ex = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return results
