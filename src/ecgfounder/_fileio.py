"""Small file helpers with one home each: atomic writes, JSON coercion, the cache folder.

* **Atomic writes.**  Every file the package publishes is written under one temporary name
  beside the target, :func:`partial_path` (``.NAME.partial``), then renamed into place
  (``os.replace`` is atomic on one file system).  A crash never leaves a half-written file under
  the requested name, and a run that resumes finds its partial file under a predictable name.
  The published file gets the mode an ordinary ``open`` would give (``0o666 & ~umask``), not the
  ``0600`` some writers use for their temporary files.
* **Inputs kept.**  :func:`same_file` tells whether an output would replace an input (the same
  path, or one file through a symbolic or hard link), for the commands that refuse it.
* **JSON.**  :func:`to_jsonable` turns numpy scalars and arrays, ``Path``s, dataclasses, tuples
  and mappings into plain JSON values, and NaN/±inf into ``None``, so the output is strict JSON
  (``json.dumps(..., allow_nan=False)`` accepts it; other tools' parsers too).
* **Cache.**  :func:`cache_dir` is the package's cache folder: ``$ECGFOUNDER_CACHE``, else
  ``$XDG_CACHE_HOME/ecgfounder``, else ``~/.cache/ecgfounder``.  Nothing is created on import.
* **One writer.**  :class:`WriterLock` is the right to write something (an output file, a store
  folder) held by one process at a time: ``fcntl.flock`` (Windows: ``msvcrt.locking``) on a lock
  file holding the holder's PID.  The lock ends with its process, so a killed holder blocks no one
  and no PID is guessed at.  These are used directly rather than the ``filelock`` package because
  the PID must be readable by the refused process: ``filelock`` truncates the file when it tries the
  lock, which would erase the holder's PID.  Where neither exists no lock is taken.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, Callable, Iterator, Mapping

__all__ = ["partial_path", "unwritable_reason", "same_file", "atomic_path", "publish", "atomic_write", "write_json", "to_jsonable", "cache_dir", "CACHE_ENV",
           "process_gone", "WriterLock"]

CACHE_ENV = "ECGFOUNDER_CACHE"


def partial_path(path: str | os.PathLike, *, private: bool = False) -> Path:
    """The temporary name a file is written under before it is renamed to ``path``:
    ``dir/.NAME.partial`` (hidden, beside the target, so the rename stays on one file system);
    ``private``: ``dir/.NAME.PID-THREAD.partial``, a name no other writer of ``path`` uses (two
    processes filling one cache never write into, or remove, each other's file)."""
    p = Path(path)
    own = f".{os.getpid()}-{threading.get_ident()}" if private else ""
    return p.with_name(f".{p.name}{own}.partial")


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs, so that files named after it (a killed writer's
    temporaries) can go.  ``False`` when unsure: a process of another user, or Windows (where
    ``os.kill`` would end the process instead of asking about it)."""
    if os.name == "nt":  # pragma: no cover
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)  # restored at once: reading the umask needs setting it
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Give ``tmp`` the ordinary file mode and rename it to ``path`` (atomic)."""
    try:
        os.chmod(tmp, _default_mode())
    except OSError:  # pragma: no cover - file systems without modes
        pass
    os.replace(tmp, path)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike, *, keep_partial: bool = False) -> Iterator[Path]:
    """Yield the temporary path to write; on success it is renamed to ``path``.

    On an exception the temporary file is removed (kept with ``keep_partial=True``, under the one
    name :func:`partial_path` gives, for a later run to continue) and nothing is published under
    ``path``.  Without ``keep_partial`` the temporary name is private to this process and thread.
    The parent folder is created.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(p, private=not keep_partial)
    try:
        yield tmp
        publish(tmp, p)
    except BaseException:
        if not keep_partial:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """``obj`` (coerced by :func:`to_jsonable`) as strict JSON, written atomically."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)
    return atomic_write(path, text + "\n")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values for ``obj``: numpy scalars → Python numbers, arrays and tuples → lists,
    NaN/±inf → ``None``, ``Path`` → ``str``, dataclasses → dicts, mapping keys → ``str``;
    anything else unknown → ``str(obj)``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        to_dict = getattr(obj, "to_dict", None)
        d = to_dict() if callable(to_dict) else {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return to_jsonable(d)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist) and type(obj).__module__.split(".")[0] in ("numpy", "torch"):
        return to_jsonable(tolist())
    return str(obj)


def unwritable_reason(path: str | os.PathLike) -> tuple[Path, str | None]:
    """``(folder, reason)``: the nearest existing folder at or above ``path`` and why a new file
    cannot be created in it (``None`` when one can).  Tried for real: permission bits do not tell
    for root, read-only mounts or pseudo file systems (``/proc``)."""
    import tempfile

    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return folder, f"{folder} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return folder, f"cannot write in {folder} ({exc.strerror or exc})"
    return folder, None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file, so that writing one replaces the other: the same path
    once symbolic links are resolved, or (both existing) one file under two names, a hard link
    included (``os.path.samefile``)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.resolve() == pb.resolve():
            return True
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:  # (unresolvable, e.g. a symbolic-link loop: not shown to be one file)
        return False


def cache_dir(*parts: str) -> Path:
    """The package's cache folder (``$ECGFOUNDER_CACHE``, else ``$XDG_CACHE_HOME/ecgfounder``,
    else ``~/.cache/ecgfounder``), joined with ``parts`` (e.g. ``cache_dir("runtime")``).
    Not created here."""
    env = os.environ.get(CACHE_ENV)
    if env:
        base = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "ecgfounder"
    return base.joinpath(*parts)


_LOCK_BYTE = 1 << 20  # Windows: the byte locked, far past the PID text at offset 0


class _Flock:
    """POSIX: ``fcntl.flock`` on the whole file, freed when the file is closed."""

    checks_same_file = True  # a taker may wait on a file its previous holder removed on release

    def __init__(self, fcntl: Any):
        self._fcntl = fcntl

    def lock(self, fd: int) -> None:
        """Take the lock without waiting; ``OSError`` when another open file holds it."""
        self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)

    def release(self, path: Path, fd: int) -> None:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


class _Msvcrt:
    """Windows: ``msvcrt.locking`` on one byte far past the PID text.  Region locks are mandatory
    there: one over the PID would keep the refused taker from reading it.  An open file cannot be
    removed on Windows, so no taker waits on a removed one, and release closes before it removes."""

    checks_same_file = False

    def __init__(self, msvcrt: Any):
        self._msvcrt = msvcrt

    def _at_lock_byte(self, fd: int, mode: int) -> None:
        os.lseek(fd, _LOCK_BYTE, os.SEEK_SET)  # msvcrt.locking works from the file position
        try:
            self._msvcrt.locking(fd, mode, 1)
        finally:
            os.lseek(fd, 0, os.SEEK_SET)

    def lock(self, fd: int) -> None:
        """Take the lock without waiting; ``OSError`` when another open file holds it."""
        self._at_lock_byte(fd, self._msvcrt.LK_NBLCK)

    def release(self, path: Path, fd: int) -> None:
        try:  # unlocked explicitly: Windows frees a closed file's locks only after a delay
            self._at_lock_byte(fd, self._msvcrt.LK_UNLCK)
        except OSError:  # pragma: no cover - closing frees it anyway
            pass
        finally:
            os.close(fd)
        try:
            path.unlink(missing_ok=True)
        except PermissionError:  # a taker opened it meanwhile: the file is theirs now
            pass


def _lock_backend() -> _Flock | _Msvcrt | None:
    """How this platform locks a file: ``fcntl`` (POSIX), else ``msvcrt`` (Windows), else ``None``."""
    try:
        import fcntl
    except ImportError:
        try:
            import msvcrt
        except ImportError:  # pragma: no cover - neither POSIX nor Windows
            return None
        return _Msvcrt(msvcrt)
    return _Flock(fcntl)


class WriterLock:
    """The right to write something while held, one process at a time: ``fcntl.flock`` (Windows:
    ``msvcrt.locking``) on ``path`` (created), which holds the holder's PID.  A second taker is
    refused at once with ``refused(pid)`` (the holder's PID as text, ``"?"`` when unknown), an
    exception naming what is locked and the fix.  The lock dies with its holder's process: the file a
    killed holder leaves locks nothing.  A taker that opened a lock file its previous holder removed
    (on release) while it waited opens the new one instead.  Releasing removes the file.  A context
    manager."""

    def __init__(self, path: str | os.PathLike, refused: Callable[[str], BaseException]):
        self.path = Path(path)
        self.refused = refused
        self._fd: int | None = None
        self._backend: _Flock | _Msvcrt | None = None

    def acquire(self) -> "WriterLock":
        backend = _lock_backend()
        if backend is None:  # pragma: no cover - neither POSIX nor Windows
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)  # (Windows: no newline translation)
        for _ in range(5):
            fd = os.open(self.path, flags, 0o644)
            try:
                backend.lock(fd)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise self.refused(holder) from None
            if not backend.checks_same_file:
                break
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a lock file its previous holder removed while we waited on it
                break
            os.close(fd)
        else:  # pragma: no cover - only under heavy contention
            raise self.refused("?")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd, self._backend = fd, backend
        return self

    def release(self) -> None:
        if self._fd is None or self._backend is None:
            return
        fd, self._fd = self._fd, None
        self._backend.release(self.path, fd)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
