"""Small file helpers with one home each: atomic writes, JSON coercion, the cache folder.

* **Atomic writes.**  Every file the package publishes is written under one temporary name
  beside the target, :func:`partial_path` (``.NAME.partial``), then renamed into place
  (``os.replace`` is atomic on one file system).  A crash never leaves a half-written file under
  the requested name, and a run that resumes finds its partial file under a predictable name.
  The published file gets the mode an ordinary ``open`` would give (``0o666 & ~umask``), not the
  ``0600`` some writers use for their temporary files.
* **JSON.**  :func:`to_jsonable` turns numpy scalars and arrays, ``Path``s, dataclasses, tuples
  and mappings into plain JSON values, and NaN/±inf into ``None``, so the output is strict JSON
  (``json.dumps(..., allow_nan=False)`` accepts it; other tools' parsers too).
* **Cache.**  :func:`cache_dir` is the package's cache folder: ``$ECGFOUNDER_CACHE``, else
  ``$XDG_CACHE_HOME/ecgfounder``, else ``~/.cache/ecgfounder``.  Nothing is created on import.
* **One writer.**  :class:`WriterLock` is the right to write something (an output file, a store
  folder) held by one process at a time: ``fcntl.flock`` on a lock file holding the holder's PID.
  The lock ends with its process, so a killed holder blocks no one and no PID is guessed at.
  ``fcntl`` is used directly rather than the ``filelock`` package because the PID must be readable
  by the refused process: ``filelock`` truncates the file when it tries the lock, which would erase
  the holder's PID.  Where ``fcntl`` does not exist (Windows) no lock is taken.
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

__all__ = ["partial_path", "atomic_path", "publish", "atomic_write", "write_json", "to_jsonable", "cache_dir", "CACHE_ENV",
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


class WriterLock:
    """The right to write something while held, one process at a time: ``fcntl.flock`` on ``path``
    (created), which holds the holder's PID.  A second taker is refused at once with
    ``refused(pid)`` (the holder's PID as text, ``"?"`` when unknown), an exception naming what is
    locked and the fix.  The lock dies with its holder's process: the file a killed holder leaves
    locks nothing.  A taker that opened a lock file its previous holder removed (on release) while
    it waited opens the new one instead.  Releasing removes the file.  A context manager."""

    def __init__(self, path: str | os.PathLike, refused: Callable[[str], BaseException]):
        self.path = Path(path)
        self.refused = refused
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise self.refused(holder) from None
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
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
