"""Background preparation: the plan per device, idle priority per thread, ordered parallel map."""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import pytest

from ecgfounder.runtime import overlap
from ecgfounder.runtime.overlap import idle_priority, ordered_map, overlap_plan

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")


def test_plan_per_device(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    assert overlap_plan("cuda") == (cores, False)  # the CPU is the model's feeder: normal priority
    assert overlap_plan("cpu", 2, streams=2) == (max(1, cores // 2), False)  # beside streams: normal priority, 1 per 2 cores
    if overlap.idle_priority_supported():
        assert overlap_plan("cpu", 10_000) == (cores, True)  # idle time only, whatever the model's threads
    monkeypatch.setattr(overlap, "idle_priority_supported", lambda: False)
    assert overlap_plan("cpu", 10_000) == (0, False)  # no free core: prepare in turn
    assert overlap_plan("cpu", 1) == (cores - 1, False)
    assert overlap_plan("cpu", 10_000, streams=2) == (max(1, cores // 2), False)
    for n, want in ((1, 1), (2, 1), (3, 1), (4, 2), (16, 8)):  # beside streams: one thread per two cores
        monkeypatch.setattr(overlap, "_cores", lambda n=n: n)
        assert overlap_plan("cpu", 2, streams=2) == (want, False)
        assert overlap_plan("cuda") == (n, False)


@linux
def test_idle_priority_is_per_thread():
    seen = {}

    def lowered():
        seen["ok"] = idle_priority()
        seen["policy"] = os.sched_getscheduler(0)

    t = threading.Thread(target=lowered)
    t.start()
    t.join()
    assert seen == {"ok": True, "policy": os.SCHED_IDLE}
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the calling (model's) thread keeps its priority


def test_ordered_map_keeps_order_and_runs_in_parallel():
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.01) for _ in range(60)]
    names = set()

    def slow(i):
        names.add(threading.current_thread().name)
        time.sleep(delays[i])
        return i * i

    assert list(ordered_map(slow, range(60), threads=3, depth=5)) == [i * i for i in range(60)]
    pooled = {n for n in names if n.startswith("ecgfounder-prepare")}
    assert pooled and names - pooled <= {threading.current_thread().name}


@linux
def test_ordered_map_idle_threads(monkeypatch):
    monkeypatch.setattr(overlap, "idle_priority", idle_priority)  # the real one (tests/conftest.py)

    def policy(_):
        time.sleep(0.01)
        return threading.current_thread().name, os.sched_getscheduler(0)

    for idle, want in ((True, os.SCHED_IDLE), (False, os.SCHED_OTHER)):
        got = list(ordered_map(policy, range(8), threads=2, idle=idle))
        pooled = {p for name, p in got if name.startswith("ecgfounder-prepare")}
        assert pooled == {want}  # (items the waiting consumer took over ran at its own priority)


def test_one_thread_applies_fn_in_order_and_hands_each_result_over_at_once():
    names = set()
    gate = threading.Event()

    def fn(i):
        names.add(threading.current_thread().name)
        return i * 10

    def items():
        yield 0
        yield 1
        gate.wait(5)  # the next item is late: what is done must not wait for it
        yield from range(2, 40)

    out = ordered_map(fn, items(), threads=1, depth=3)
    t0 = time.monotonic()
    assert [next(out), next(out)] == [0, 10]
    assert time.monotonic() - t0 < 2  # handed over while the worker waited for item 2
    gate.set()
    assert list(out) == [i * 10 for i in range(2, 40)]
    assert names == {"ecgfounder-prepare"}  # one worker, not the consumer, not a pool


def test_one_thread_stays_within_depth_of_the_consumer():
    calls = []
    out = ordered_map(calls.append, range(1000), threads=1, depth=4)
    next(out)
    time.sleep(0.3)  # a slow consumer: the worker waits for room
    assert 4 <= len(calls) <= 2 * 4 + 1  # what waits for the consumer, and what it drained and holds
    out.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_ordered_map_raises_at_the_position_and_stops_early(threads):
    def fn(i):
        if i == 5:
            raise OSError("disk gone at 5")
        return i

    got = []
    with pytest.raises(OSError, match="disk gone at 5"):
        for v in ordered_map(fn, range(20), threads=threads, depth=4):
            got.append(v)
    assert got == [0, 1, 2, 3, 4]

    def items():
        yield 1
        raise ValueError("bad listing")

    with pytest.raises(ValueError, match="bad listing"):
        list(ordered_map(str, items(), threads=threads))

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    for v in ordered_map(lambda i: i, endless(), threads=threads, depth=3):
        if v == 3:
            break
    time.sleep(0.3)
    n = len(produced)
    time.sleep(0.3)
    assert len(produced) == n <= 12  # the dispatcher stopped reading
    with pytest.raises(ValueError, match="threads"):
        next(ordered_map(str, [1], threads=0))
    with pytest.raises(ValueError, match="depth"):
        next(ordered_map(str, [1], threads=1, depth=0))


def test_the_waiting_consumer_does_work_no_thread_started():
    release = threading.Event()
    where = {}

    def fn(i):
        if i == 0:
            release.wait(5)  # the only pool thread is stuck on item 0 ...
        where[i] = threading.current_thread().name
        return i

    out = ordered_map(fn, range(4), threads=1, depth=4, idle=True)  # (one thread at normal priority: no pool)
    threading.Timer(0.3, release.set).start()
    assert list(out) == [0, 1, 2, 3]
    assert where[0].startswith("ecgfounder-prepare")
    # ... so items still queued when the consumer reached them ran in the consumer's thread
    assert any(where[i] == threading.current_thread().name for i in (1, 2, 3))


def test_env_says_how_preparation_runs(tmp_path):
    from ecgfounder.runtime import speed_info

    line = speed_info(cache_dir=tmp_path)["preparation"]
    threads, idle = overlap_plan("cpu")
    assert line.startswith(f"{threads} background thread") if threads else line.startswith("in turn")
    assert ("idle priority" in line) == idle


def test_a_starved_idle_pool_gets_no_more_work(monkeypatch):
    """Other programs keep the cores busy: the idle thread on item 0 gets no time (simulated by a
    long wait); after STARVED_S the consumer stops feeding the pool and does the rest itself."""
    monkeypatch.setattr(overlap, "STARVED_S", 0.2)
    where = {}

    def fn(i):
        name = threading.current_thread().name
        where.setdefault(i, []).append(name)
        if i == 0 and name.startswith("ecgfounder-prepare"):
            time.sleep(0.6)
        return i

    def slow_items():  # the dispatcher hands items over slowly, so most are submitted after the verdict
        for i in range(12):
            time.sleep(0.05)
            yield i

    assert list(ordered_map(fn, slow_items(), threads=1, depth=2, idle=True)) == list(range(12))
    me = threading.current_thread().name
    assert where[0][0].startswith("ecgfounder-prepare")
    assert where[0][1:] == [me]  # then done by the consumer too, once the pool was found starved
    assert all(where[i] == [me] for i in range(8, 12))  # fed to nobody but the consumer


def test_items_a_starved_pool_holds_are_done_by_the_consumer_after_one_wait(monkeypatch):
    """Every idle thread gets no time at all (other programs keep the cores busy; simulated by
    threads that block until the end): after one wait of STARVED_S the consumer does the items those
    threads hold as well, instead of waiting for each of them in turn (for ever, here)."""
    monkeypatch.setattr(overlap, "STARVED_S", 0.2)
    release = threading.Event()
    where = {}

    def fn(i):
        if threading.current_thread().name.startswith("ecgfounder-prepare"):
            release.wait(30)  # a thread that the scheduler never runs
            return -1  # (would show if a held item's late result were used)
        where[i] = threading.current_thread().name
        return i

    t0 = time.monotonic()
    try:
        got = list(ordered_map(fn, range(10), threads=3, depth=4, idle=True))
    finally:
        release.set()
    took = time.monotonic() - t0
    assert got == list(range(10))
    assert set(where.values()) == {threading.current_thread().name}
    assert took < 5.0, took  # one STARVED_S (0.2 s) and the work; the old consumer waited 30 s per held item
