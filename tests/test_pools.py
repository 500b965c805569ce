"""Process pools whose workers may die (``ecgfounder._pools``): the input that ends a worker is
told apart from those in flight beside it, and a death that no input explains is one clear error."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from ecgfounder._pools import KILLED, each_alone, find_killers, run_in_order, without_killers

CTX = mp.get_context("fork")


def _total(values: list[int]) -> int:
    """Sum of ``values``; a 1 among them ends the worker (a reader's library crashing)."""
    if 1 in values:
        os.kill(os.getpid(), signal.SIGKILL)
    return sum(values)


def _probe(value: int) -> None:
    _total([value])


def _always_dies(values: list[int]) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0  # pragma: no cover


def test_each_alone_and_find_killers_name_the_input_that_ends_its_worker():
    assert each_alone(CTX, _total, [([2],), ([1],), ([3, 4],)]) == [2, KILLED, 7]
    assert find_killers(CTX, _probe, [(0,), (1,), (5,), (1,)]) == {1, 3}


def test_without_killers_reruns_the_job_without_them():
    job = [5, 1, 7, 1]
    got, hit = without_killers(CTX, _total, job, _probe, [(v,) for v in job],
                               lambda hit: [v for i, v in enumerate(job) if i not in hit], lambda: AssertionError())
    assert (got, hit) == (12, {1, 3})
    assert without_killers(CTX, _total, [2, 3], _probe, [(2,), (3,)], pytest.fail, pytest.fail) == (5, set())


def test_without_killers_raises_the_callers_error_when_no_input_explains_the_death():
    class Died(Exception):
        pass

    with pytest.raises(Died):
        without_killers(CTX, _always_dies, [2, 3], _probe, [(2,), (3,)], lambda hit: [2, 3], Died)


def test_run_in_order_hands_the_jobs_in_flight_at_a_death_to_alone():
    jobs = [[2], [1, 4], [3], [5]]
    alone = []

    def one(job):
        alone.append(job)
        return -1 if 1 in job else sum(job)

    assert run_in_order(_total, jobs, 2, CTX, one) == [2, -1, 3, 5]
    assert [1, 4] in alone


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_each_alone_ends_a_call_past_its_time_limit():
    """A call that never returns (a read of a named pipe) is given up after ``timeout`` and its
    worker ended; the calls after it run in a fresh worker."""
    import time

    from ecgfounder._pools import TIMED_OUT

    t0 = time.monotonic()
    assert each_alone(CTX, _sleep, [(0,), (30,), (0.01,)], timeout=0.5) == [0, TIMED_OUT, 0.01]
    assert time.monotonic() - t0 < 5
