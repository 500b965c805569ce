"""The small shared file helpers: atomic writes, strict JSON, the cache folder."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ecgfounder._fileio import (WriterLock, atomic_path, atomic_write, cache_dir, partial_path, process_gone,
                                to_jsonable, write_json)


def test_atomic_write_publishes_with_ordinary_mode_and_leaves_nothing_on_failure(tmp_path):
    p = atomic_write(tmp_path / "sub" / "a.txt", "hello")
    assert p.read_text() == "hello" and not partial_path(p).exists()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert not (tmp_path / "b.bin").exists() and not partial_path(tmp_path / "b.bin").exists()
    assert partial_path(tmp_path / "b.bin").name == ".b.bin.partial"
    assert not list(tmp_path.glob(".b.bin*"))


def test_atomic_path_writes_under_a_name_no_other_writer_uses(tmp_path):
    """Two processes filling one cache (graphs, auto choices) each write their own temporary file:
    the fixed ``.NAME.partial`` is kept for the one a resumed run continues (keep_partial)."""
    other = partial_path(tmp_path / "g.onnx")
    other.write_bytes(b"another writer's half")
    with atomic_path(tmp_path / "g.onnx") as tmp:
        assert tmp != other and tmp.name.startswith(".g.onnx.") and tmp.name.endswith(".partial")
        tmp.write_bytes(b"mine")
    assert (tmp_path / "g.onnx").read_bytes() == b"mine" and other.read_bytes() == b"another writer's half"
    with atomic_path(tmp_path / "r.csv", keep_partial=True) as tmp:
        assert tmp == partial_path(tmp_path / "r.csv")
        tmp.write_text("rows")


@dataclass(frozen=True)
class _Cfg:
    a: float
    b: tuple


def test_to_jsonable_gives_strict_json(tmp_path):
    obj = {"x": np.float32(1.5), "n": np.int64(3), "nan": float("nan"), "arr": np.array([1.0, np.inf]),
           "p": Path("/a/b"), "cfg": _Cfg(np.nan, (1, 2)), 4: {"s": {"b", "a"}}}
    out = to_jsonable(obj)
    text = json.dumps(out, allow_nan=False)  # raises on NaN: strict JSON
    assert json.loads(text) == {"x": 1.5, "n": 3, "nan": None, "arr": [1.0, None], "p": "/a/b",
                                "cfg": {"a": None, "b": [1, 2]}, "4": {"s": ["a", "b"]}}
    write_json(tmp_path / "w.json", obj)
    assert json.loads((tmp_path / "w.json").read_text())["nan"] is None


def test_cache_dir_honours_env_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path / "c"))
    assert cache_dir("runtime") == tmp_path / "c" / "runtime"
    monkeypatch.delenv("ECGFOUNDER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "ecgfounder"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("w") == Path.home() / ".cache" / "ecgfounder" / "w"
    assert not (tmp_path / "x").exists()  # looked up, never created


def test_process_gone_only_for_a_process_that_ended():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # (reaped: its pid names no process now)
    assert process_gone(child.pid)
    assert not process_gone(os.getpid())
    assert not process_gone(1)  # init: alive, whoever owns it


class _Busy(Exception):
    pass


def test_writer_lock_is_one_process_at_a_time_and_dies_with_its_holder(tmp_path):
    """Refused while another process holds it, naming that process; free once the holder is killed
    (the file it leaves, with its PID, locks nothing); removed on release."""
    import subprocess
    import sys

    path = tmp_path / "x.lock"
    hold = ("import sys, time; from ecgfounder._fileio import WriterLock; WriterLock(sys.argv[1], RuntimeError).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "held\n"
        with pytest.raises(_Busy, match=f"^{child.pid}$"):
            WriterLock(path, _Busy).acquire()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert path.read_text().strip() == str(child.pid)  # left by the killed holder
    with WriterLock(path, _Busy):
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(_Busy, match=f"^{os.getpid()}$"):  # (another open file: refused in this process too)
            WriterLock(path, _Busy).acquire()
    assert not path.exists()
