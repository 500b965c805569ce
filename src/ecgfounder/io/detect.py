"""Format registry and detection."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import RecordReadError
from ..recording import Recording

__all__ = ["FORMATS", "detect_format", "read", "iter_read", "find_records"]

# format name -> "module:function" returning a Recording (lazy, so optional dependencies load on use)
FORMATS: dict[str, str] = {
    "wfdb": "ecgfounder.io.wfdb:read_wfdb",
}

# extension -> format name, for files that are whole records on their own
_EXTENSIONS: dict[str, str] = {
    ".hea": "wfdb",
}


def detect_format(path: str | os.PathLike) -> str:
    """Name of the format of ``path`` (a key of :data:`FORMATS`), from extension and first bytes."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if ext in (".dat", ".mat") and p.with_suffix(".hea").exists():
        return "wfdb"
    if not p.suffix and p.with_suffix(".hea").exists():
        return "wfdb"
    raise RecordReadError(
        p,
        f"unknown ECG file type {ext or '(no extension)'!r}; known formats: {', '.join(sorted(FORMATS))}. "
        "Pass format=... (CLI: --format) to force one.",
    )


def _reader(fmt: str) -> Callable[..., Recording]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}.")
    mod, func = FORMATS[fmt].split(":")
    return getattr(importlib.import_module(mod), func)


def read(path: str | os.PathLike, format: str | None = None, **kwargs) -> Recording:
    """Read one ECG file into a :class:`Recording` (signal in mV, leads × samples).

    Raises :class:`RecordReadError` (a ``ValueError``) with a one-line reason naming the file for
    anything that is not a readable ECG: missing, truncated or corrupt files, bad headers.
    """
    p = Path(path)
    fmt = format or detect_format(p)
    reader = _reader(fmt)
    try:
        return reader(p, **kwargs)
    except RecordReadError:
        raise
    except MemoryError:
        raise RecordReadError(p, "file declares more data than can be held in memory") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, UnicodeDecodeError, AttributeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordReadError(p, f"cannot read as {fmt}: {msg}") from exc


def iter_read(path: str | os.PathLike, format: str | None = None, **kwargs) -> Iterator[Recording]:
    """Every recording in ``path``: one for most formats, many for container files (HDF5)."""
    yield read(path, format=format, **kwargs)


def _is_record_file(p: Path) -> bool:
    ext = p.suffix.lower()
    if ext in _EXTENSIONS:
        return True
    return False


def find_records(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and directories (recursively) into record files, sorted, without duplicates.

    A WFDB record is represented by its ``.hea`` file.  A path that does not exist is kept, so the
    caller reports it as a failed record instead of losing it silently.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and _is_record_file(q))
        else:
            if p.suffix.lower() in (".dat", ".mat") and p.with_suffix(".hea").exists():
                p = p.with_suffix(".hea")
            found = [p]
        for q in found:
            key = q.resolve() if q.exists() else q
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out
