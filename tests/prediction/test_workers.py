"""Reading and preprocessing in worker processes: same pairs, same order, workers die with their parent."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

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


def test_recordings_in_memory_go_to_the_workers():
    """Recording objects (not files) given to worker processes: their read-only metadata could not
    be pickled (TypeError); they come back prepared as in this process."""
    import pickle

    from ecgfounder.recording import Recording
    from ecgfounder.signal.leads import STANDARD_12
    from ecgfounder.signal.preprocess import PreprocessContract

    rng = np.random.default_rng(3)
    recs = [Recording(rng.standard_normal((12, 5000)) * 0.1, 500.0, STANDARD_12, {"id": f"m{i}", "nested": {"k": [i]}})
            for i in range(3)]
    back = pickle.loads(pickle.dumps(recs[0]))
    assert back.meta == recs[0].meta and back.leads == recs[0].leads and np.array_equal(back.signal, recs[0].signal)
    c = PreprocessContract()
    serial = list(prepared_records(recs, c, workers=0))
    parallel = list(prepared_records(recs, c, workers=1, chunk=2))
    assert [r.record for r, _ in parallel] == ["m0", "m1", "m2"] and all(p is not None for _, p in parallel)
    for (_, ps), (_, pp) in zip(serial, parallel):
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


@pytest.mark.slow  # a fresh interpreter starting worker processes, killed (~4-5 s on 2 cores)
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
        from ecgfounder.prediction import workers as workers_mod

        # its shared-memory folder, seen while it runs (after the kill another test's run may already
        # have removed it: what is checked below is that none is left once a run has started)
        left = glob.glob(f"/dev/shm/{workers_mod.SPOOL_PREFIX}{proc.pid}-*")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = {p for p in workers if _running(p)}
        assert not alive, f"orphaned workers {sorted(alive)}"
        # the killed process could not remove its shared-memory folder; the next run does
        if os.path.isdir("/dev/shm"):
            assert left, "the killed run had a spool folder"
            fresh = workers_mod._spool_folder()
            assert fresh is not None and not any(os.path.exists(d) for d in left)
            os.rmdir(fresh)
    finally:
        if proc.poll() is None:
            proc.kill()


_SCRIPT = '''
import os, sys
with open(os.environ["RUNS_LOG"], "a") as f:  # one line each time this script's top level runs
    f.write(f"{os.getpid()} {sys.argv[1:]}\\n")


def probe():
    import sys, time
    time.sleep(0.3)  # (keeps each worker busy, so the pool starts all three)
    fs = sys.modules.get("ecgfounder.prediction._forkserver")
    return os.getpid(), fs is not None and fs.WARMED, sys.modules["__main__"].__file__


if __name__ == "__main__":
    from ecgfounder.prediction.workers import start_worker_server, worker_context
    from concurrent.futures import ProcessPoolExecutor

    start_worker_server()
    with ProcessPoolExecutor(3, mp_context=worker_context()) as pool:
        out = [f.result() for f in [pool.submit(probe) for _ in range(6)]]
    pids = {o[0] for o in out}
    print(len(pids), all(o[1] for o in out), {o[2] for o in out} == {__file__})
'''


@pytest.mark.slow  # a fresh interpreter starting a worker server (~4-6 s on 2 cores)
def test_workers_fork_from_a_warm_server_that_ran_the_main_script_once(tmp_path):
    """Workers are forks of a server that loaded the reading/preparation modules, warmed their
    kernels and ran the parent's main script: the script's top level runs twice (parent, server),
    not once more per worker as CPython's forkserver makes it before gh-126631."""
    import os
    import subprocess
    import sys

    script, log = tmp_path / "main_script.py", tmp_path / "runs.log"
    script.write_text(_SCRIPT)
    env = dict(os.environ, RUNS_LOG=str(log))
    out = subprocess.run([sys.executable, str(script), "--flag"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    n_workers, warmed, same_main = out.stdout.split()
    assert int(n_workers) >= 2 and warmed == "True" and same_main == "True"
    runs = log.read_text().splitlines()
    assert len(runs) == 2, runs  # the parent and the server; no worker ran it again
    assert all(r.endswith("['--flag']") for r in runs)  # the server saw the parent's arguments


def test_load_main_ignores_what_it_cannot_use(monkeypatch):
    from ecgfounder.prediction import _forkserver
    from ecgfounder.prediction.workers import MAIN_ENV

    for bad in ("", "not json", '{"path": 3}', '{"argv": []}'):
        monkeypatch.setenv(MAIN_ENV, bad)
        assert _forkserver.load_main() is False
        assert MAIN_ENV not in os.environ  # read once, not passed on to the workers' children
    monkeypatch.setenv(MAIN_ENV, '{"path": "/no/such/script.py", "argv": []}')
    assert _forkserver.load_main() is False  # a script that cannot run: the workers run it themselves


def test_an_input_that_kills_its_worker_is_one_failed_record(records, monkeypatch):
    """A reader that takes its process down (a crash in a C library, the kernel's OOM killer) costs
    that input alone: the inputs in flight with it are prepared again one at a time, and the
    killer is reported as a failed record; the others come back as without the crash, in order."""
    import signal

    import ecgfounder.io as io_mod
    from ecgfounder._pools import CRASHED
    from ecgfounder.signal.preprocess import PreprocessContract

    real = io_mod.iter_read

    def deadly(path, **kw):
        if str(path).endswith("r0011.hea"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, **kw)

    c = PreprocessContract()
    serial = list(prepared_records([records], c, workers=0))  # (before the patch: it would kill this process)
    monkeypatch.setattr(io_mod, "iter_read", deadly)  # (a forked pool's workers inherit the patch)
    got = list(prepared_records([records], c, workers=2, chunk=3, max_tasks=3, mp_context="fork"))
    assert [r.index for r, _ in got] == list(range(N_RECORDS))
    failed = {r.path.rsplit("/", 1)[-1]: r.error for r, p in got if p is None}
    assert set(failed) == {"r0011.hea", "r0027.hea"} and failed["r0011.hea"] == CRASHED
    for (rs, ps), (rg, pg) in zip(serial, got):
        assert rs.path == rg.path
        if ps is not None and not rs.path.endswith("r0011.hea"):
            np.testing.assert_array_equal(ps.windows, pg.windows)


def test_workers_that_cannot_start_are_one_clear_error(records, monkeypatch):
    import pytest

    from ecgfounder.errors import WorkersCannotStartError
    from ecgfounder.prediction import workers as workers_mod
    from ecgfounder.signal.preprocess import PreprocessContract

    monkeypatch.setattr(workers_mod, "_init_worker", lambda parent: os._exit(3))  # every worker dies at start
    with pytest.raises(WorkersCannotStartError, match="workers=0"):
        list(prepared_records([records], PreprocessContract(), workers=2, mp_context="fork"))


def test_windows_come_back_through_shared_memory_or_the_pipe(records, monkeypatch):
    """Windows travel back in files of a private folder in /dev/shm (removed at the end), or through
    the pipe where writing there fails (a full /dev/shm); the pairs are the same either way."""
    from ecgfounder.prediction import workers as workers_mod
    from ecgfounder.signal.preprocess import PreprocessContract

    c = PreprocessContract()
    serial = list(prepared_records([records], c, workers=0))
    folders = []
    real_folder = workers_mod._spool_folder

    def remembered():
        folders.append(real_folder())
        return folders[-1]

    monkeypatch.setattr(workers_mod, "_spool_folder", remembered)
    via_files = list(prepared_records([records], c, workers=2, chunk=5, mp_context="fork"))
    assert len(folders) == 1 and (folders[0] is None) == (not os.path.isdir("/dev/shm"))
    if folders[0] is not None:
        assert not os.path.exists(folders[0])  # removed at the end, with anything left in it

    pairs = serial[:3]
    assert workers_mod._spool_out(pairs, "/no/such/folder", 0) == (None, pairs)  # cannot write: the pipe
    monkeypatch.setattr(workers_mod, "_spool_folder", lambda: "/no/such/folder")  # every task falls back
    via_pipe = list(prepared_records([records], c, workers=2, chunk=5, mp_context="fork"))
    for got in (via_files, via_pipe):
        assert [r.path for r, _ in got] == [r.path for r, _ in serial]
        for (rs, ps), (rg, pg) in zip(serial, got):
            assert (ps is None) == (pg is None)
            if ps is not None:
                np.testing.assert_array_equal(ps.windows, pg.windows)
                assert pg.windows.dtype == ps.windows.dtype and pg.duration_s == ps.duration_s
                assert pg.windows.flags.writeable


def _stuck_on(monkeypatch, name: str, seconds: float = 20) -> None:
    """Reading ``name`` blocks (a named pipe, a path that hangs) in forked workers."""
    import time

    import ecgfounder.io as io_mod

    real = io_mod.iter_read

    def blocking(path, **kw):
        if str(path).endswith(name):
            time.sleep(seconds)
        return real(path, **kw)

    monkeypatch.setattr(io_mod, "iter_read", blocking)


def test_an_input_that_never_finishes_is_one_failed_record(records, monkeypatch):
    """A read that never returns costs its input alone, after the time limit: the others come back,
    in order, each once."""
    import time

    from ecgfounder.signal.preprocess import PreprocessContract

    files = [records / f"r{i:04d}.hea" for i in range(6)]
    _stuck_on(monkeypatch, "r0002.hea")
    t0 = time.monotonic()
    got = list(prepared_records(files, PreprocessContract(), workers=2, chunk=2, max_tasks=2, mp_context="fork",
                                time_limit=0.5))
    assert time.monotonic() - t0 < 10
    assert [r.path for r, _ in got] == [str(f) for f in files] and [r.index for r, _ in got] == list(range(6))
    failed = {r.path.rsplit("/", 1)[-1]: r.error for r, p in got if p is None}
    assert set(failed) == {"r0002.hea"} and "took more than 0.5 s" in failed["r0002.hea"]


def test_stopping_early_does_not_wait_for_a_stuck_worker(records, monkeypatch):
    """Interrupted (Ctrl-C, or the consumer stops) while a worker is stuck in a read: the workers
    are ended at once and the shared-memory folder removed, not waited for."""
    import threading
    import time

    from ecgfounder.prediction import workers as workers_mod
    from ecgfounder.signal.preprocess import PreprocessContract

    files = [records / f"r{i:04d}.hea" for i in range(4)]
    _stuck_on(monkeypatch, "r0001.hea", seconds=15)
    folders = []
    real_folder = workers_mod._spool_folder
    monkeypatch.setattr(workers_mod, "_spool_folder", lambda: folders.append(real_folder()) or folders[-1])
    def cmdline(pid: int) -> bytes:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read()
        except OSError:
            return b""

    def forks() -> set[int]:  # (this process's forked workers: its command line; not a resource tracker or server)
        return {p for p in _descendants(os.getpid()) if _running(p) and cmdline(p) == cmdline(os.getpid())}

    before = forks()
    it = prepared_records(files, PreprocessContract(), workers=1, chunk=1, max_tasks=2, mp_context="fork")
    next(it)
    workers = forks() - before
    assert workers
    closer = threading.Thread(target=it.close, daemon=True)
    t0 = time.monotonic()
    closer.start()
    closer.join(5)
    assert not closer.is_alive() and time.monotonic() - t0 < 5
    time.sleep(0.2)
    assert not {p for p in workers if _running(p)}
    assert folders[0] is None or not os.path.exists(folders[0])


def test_an_input_that_exhausts_memory_is_one_failed_record(records, monkeypatch):
    """A file whose reading asks for more memory than there is (``MemoryError``) fails alone, in a
    worker as in this process; the run goes on."""
    import ecgfounder.io as io_mod
    from ecgfounder.signal.preprocess import PreprocessContract

    real = io_mod.iter_read

    def greedy(path, **kw):
        if str(path).endswith("r0001.hea"):
            raise MemoryError("Unable to allocate 512. TiB for an array")
        return real(path, **kw)

    files = [records / f"r{i:04d}.hea" for i in range(3)]
    monkeypatch.setattr(io_mod, "iter_read", greedy)
    for workers in (0, 1):
        got = list(prepared_records(files, PreprocessContract(), workers=workers, mp_context="fork"))
        assert [r.path for r, _ in got] == [str(f) for f in files]
        assert [p is None for _, p in got] == [False, True, False]
        assert got[1][0].error.startswith("out of memory") and "512. TiB" in got[1][0].error


def test_a_large_batch_file_is_shared_out_in_ranges_of_bounded_size(tmp_path, records, monkeypatch):
    """An HDF5 file of 70 ECGs (and a .npy of 40) between WFDB records: the workers read them in
    ranges of MEMBERS_PER_TASK records (every worker helps, no task brings a whole file back), and
    the pairs are those of the in-process path: ids, members, input positions, windows."""
    import h5py

    from ecgfounder.prediction import workers as w
    from ecgfounder.signal.preprocess import PreprocessContract

    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "batch.h5", "w") as f:
        d = f.create_dataset("tracings", data=rng.normal(0, 0.3, (70, 1000, 12)).astype(np.float32))
        d.attrs["fs"], d.attrs["leads"] = 500.0, ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    np.save(tmp_path / "batch.npy", rng.normal(0, 0.3, (40, 12, 1000)))
    inputs = [sorted(records.glob("r000*.hea"))[0], tmp_path / "batch.h5", tmp_path / "batch.npy",
              sorted(records.glob("r000*.hea"))[1]]
    read_kwargs = {"fs": 500.0}
    sizes, real = [], w._spool_in

    def spy(path, out):
        sizes.append(len(out))
        return real(path, out)

    monkeypatch.setattr(w, "_spool_in", spy)
    c = PreprocessContract()
    serial = list(prepared_records(inputs, c, workers=0, read_kwargs=read_kwargs))
    parallel = list(prepared_records(inputs, c, workers=2, chunk=4, read_kwargs=read_kwargs))
    assert len(serial) == len(parallel) == 1 + 70 + 40 + 1
    assert max(sizes) <= w.MEMBERS_PER_TASK < 70 and len(sizes) >= 70 // w.MEMBERS_PER_TASK + 40 // w.MEMBERS_PER_TASK
    key = [(r.path, r.record, r.input_index, r.member, r.index) for r, _ in serial]
    assert [(r.path, r.record, r.input_index, r.member, r.index) for r, _ in parallel] == key
    assert [r.member for r, _ in parallel if r.path.endswith("batch.h5")] == list(range(70))
    assert {r.input_index for r, _ in parallel if r.path.endswith("batch.npy")} == {2}
    for (rs, ps), (rp, pp) in zip(serial, parallel):
        assert (ps is None) == (pp is None) and rs.error == rp.error
        if ps is not None:
            np.testing.assert_array_equal(ps.windows, pp.windows)


def test_units_split_only_batch_files_that_say_how_many_they_hold(tmp_path, records):
    from ecgfounder.prediction.workers import _units

    np.save(tmp_path / "big.npy", np.zeros((10, 12, 500)))
    np.save(tmp_path / "one.npy", np.zeros((12, 500)))
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    hea = sorted(records.glob("*.hea"))[0]
    items = [(str(p), p) for p in (hea, tmp_path / "big.npy", tmp_path / "one.npy", tmp_path / "bad.h5")]
    got = [(u[2], u[3]) for u in _units(items, {}, per=4)]
    assert got == [(0, None), (1, (0, 4)), (1, (4, 8)), (1, (8, 10)), (2, None), (3, None)]  # a bad file: read (and reported) whole
