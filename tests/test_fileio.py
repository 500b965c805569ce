"""The small shared file helpers: atomic writes, strict JSON, the cache folder."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import types
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


class _FakeMsvcrt(types.ModuleType):
    """Windows' ``msvcrt.locking`` on Linux, with the Windows file rules a lock relies on: a region
    lock belongs to one open file and is freed when that file is closed; it is mandatory (another open
    file's read or write of a locked byte fails); an open file cannot be removed.  ``install`` puts it
    in place of ``msvcrt`` with ``fcntl`` made unimportable, and routes ``os`` calls through the rules."""

    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4

    def __init__(self):
        super().__init__("msvcrt")
        self.held: dict = {}  # (file identity, byte offset) -> the fd holding that byte
        self.open_files: dict = {}  # fd -> file identity

    @staticmethod
    def _identity(fd):
        st = os.fstat(fd)
        return st.st_dev, st.st_ino

    def _bytes(self, fd, n):
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        return [(self.open_files.get(fd), pos + i) for i in range(n)]

    def locking(self, fd, mode, nbytes):
        keys = self._bytes(fd, nbytes)
        if mode == self.LK_NBLCK:
            if any(k in self.held for k in keys):
                raise PermissionError(errno.EACCES, "Permission denied")
            self.held.update(dict.fromkeys(keys, fd))
        elif mode == self.LK_UNLCK:
            if any(self.held.get(k) != fd for k in keys):
                raise PermissionError(errno.EACCES, "Permission denied")
            for k in keys:
                del self.held[k]
        else:
            raise NotImplementedError(f"fake msvcrt: mode {mode}")  # blocking and shared modes are not used

    def install(self, monkeypatch):
        real_open, real_close, real_read, real_write, real_unlink = os.open, os.close, os.read, os.write, os.unlink

        def open_(path, flags, mode=0o777, *, dir_fd=None):
            fd = real_open(path, flags, mode, dir_fd=dir_fd)
            self.open_files[fd] = self._identity(fd)
            return fd

        def close(fd):
            for k in [k for k, owner in self.held.items() if owner == fd]:
                del self.held[k]
            self.open_files.pop(fd, None)
            real_close(fd)

        def mandatory(fd, n):
            if any(self.held.get(k, fd) != fd for k in self._bytes(fd, n)):
                raise PermissionError(errno.EACCES, "a region of the file is locked")

        def read(fd, n):
            mandatory(fd, n)
            return real_read(fd, n)

        def write(fd, data):
            mandatory(fd, len(data))
            return real_write(fd, data)

        def unlink(path, *, dir_fd=None):
            try:
                st = os.stat(path, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            else:
                if (st.st_dev, st.st_ino) in self.open_files.values():
                    raise PermissionError(errno.EACCES, "the file is open")
            real_unlink(path, dir_fd=dir_fd)

        for name, fn in {"open": open_, "close": close, "read": read, "write": write, "unlink": unlink}.items():
            monkeypatch.setattr(os, name, fn)
        monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl: ImportError, as on Windows
        monkeypatch.setitem(sys.modules, "msvcrt", self)


@pytest.fixture
def fake_msvcrt(monkeypatch):
    from ecgfounder._fileio import _lock_backend, _Msvcrt

    fake = _FakeMsvcrt()
    fake.install(monkeypatch)
    assert isinstance(_lock_backend(), _Msvcrt)
    return fake


def test_writer_lock_on_windows_refuses_a_second_taker_with_the_holders_pid(tmp_path, fake_msvcrt):
    """The refused taker reads the PID past the holder's (mandatory) region lock; release closes,
    then removes the file (an open file cannot be removed on Windows); the lock can be taken again."""
    path = tmp_path / "x.lock"
    with WriterLock(path, _Busy) as held:
        assert path.read_text() == f"{os.getpid()}\n" and fake_msvcrt.held
        with pytest.raises(_Busy, match=f"^{os.getpid()}$"):
            WriterLock(path, _Busy).acquire()
        assert list(fake_msvcrt.open_files) == [held._fd]  # the refused taker closed its file
    assert not path.exists() and not fake_msvcrt.held and not fake_msvcrt.open_files
    with WriterLock(path, _Busy):
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_writer_lock_on_windows_dies_with_its_holder(tmp_path, fake_msvcrt):
    """A killed holder's files are closed by Windows, which frees its lock: the file it leaves locks nothing."""
    path = tmp_path / "x.lock"
    killed = WriterLock(path, _Busy).acquire()
    os.close(killed._fd)  # what the end of its process does; the file stays, with its PID
    assert path.read_text() == f"{os.getpid()}\n"
    with WriterLock(path, _Busy):
        with pytest.raises(_Busy):
            WriterLock(path, _Busy).acquire()
    assert not path.exists()


def test_writer_lock_on_windows_release_leaves_the_file_to_a_taker_that_opened_it(tmp_path, fake_msvcrt):
    """A taker that opened the file before the holder released it keeps it: removing it fails on
    Windows, which release tolerates, and the taker then locks the file it has."""
    path = tmp_path / "x.lock"
    holder = WriterLock(path, _Busy).acquire()
    racing = os.open(path, os.O_RDWR)  # a taker between its open and its lock
    holder.release()
    assert path.exists()
    with WriterLock(path, _Busy):  # (stands in for the racing taker's lock on the same file)
        os.close(racing)
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_same_file_sees_one_file_under_any_name(tmp_path):
    """convert compared resolved paths: a hard link to its input passed as another file (export's
    os.path.samefile saw it); one helper now serves both."""
    from ecgfounder._fileio import same_file

    a = tmp_path / "a.bin"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "hard.bin")
    (tmp_path / "soft.bin").symlink_to(a)
    (tmp_path / "b.bin").write_bytes(b"x")
    assert Path(tmp_path / "hard.bin").resolve() != a.resolve() and same_file(tmp_path / "hard.bin", a)
    assert same_file(tmp_path / "soft.bin", a) and same_file(tmp_path / "sub" / ".." / "a.bin", a)
    assert same_file(tmp_path / "new.bin", tmp_path / "new.bin")  # one path, neither there yet
    assert not same_file(tmp_path / "b.bin", a) and not same_file(tmp_path / "new.bin", a)
