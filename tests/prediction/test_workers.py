"""Reading and preprocessing in worker processes: same pairs, same order, workers die with their parent."""

from __future__ import annotations

import numpy as np

from ecgfounder.prediction.workers import prepared_records

N_RECORDS = 40  # enough for three shards and interruptions at the 31st and 37th record


def test_workers_give_same_pairs_in_order(records):
    from ecgfounder.signal.preprocess import PreprocessContract

    c = PreprocessContract()
    serial = list(prepared_records([records], c, workers=0))
    parallel = list(prepared_records([records], c, workers=2, chunk=7, max_tasks=2))  # 6 tasks: one worker recycled
    assert len(serial) == len(parallel) == N_RECORDS
    assert [r.path for r, _ in serial] == [r.path for r, _ in parallel] == sorted(r.path for r, _ in serial)
    assert [r.index for r, _ in parallel] == list(range(N_RECORDS))
    bad = [r for r, p in parallel if p is None]
    assert len(bad) == 1 and bad[0].path.endswith("r0027.hea") and bad[0].error
    for (rs, ps), (rp, pp) in zip(serial, parallel):
        if ps is not None:
            np.testing.assert_array_equal(ps.windows, pp.windows)


def _descendants(pid: int) -> set[int]:
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_die_with_their_parent(records, tmp_path):
    """kill -9 of the process that started the pool leaves no worker behind (issue 11, finding 5)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import pytest

    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc to find the workers")
    script = (
        "import sys, time\n"
        "from ecgfounder.prediction.workers import prepared_records\n"
        "from ecgfounder.signal.preprocess import PreprocessContract\n"
        "it = prepared_records([sys.argv[1]], PreprocessContract(), workers=2, chunk=1, max_tasks=2)\n"
        "next(it)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(records)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        workers = _descendants(proc.pid)
        assert len(workers) >= 2  # the fork server and its workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = {p for p in workers if _running(p)}
        assert not alive, f"orphaned workers {sorted(alive)}"
    finally:
        if proc.poll() is None:
            proc.kill()
