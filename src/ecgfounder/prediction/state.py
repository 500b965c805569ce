"""What lets a long run be interrupted, resumed and recognised as finished, and keeps two runs
from writing one file.

Beside an output ``out.csv`` (all hidden, all in the same folder):

``.out.csv.partial``     the rows written so far (renamed to ``out.csv`` at the end)
``.out.csv.state.json``  resume state: settings, record files done, bytes and embedding rows saved
``.out.csv.done.json``   written when the run finished: its settings and the output's size, so
                         a repeated ``resume`` returns at once instead of recomputing
``.out.csv.lock``        held while a run writes (:class:`OutputLock`); holds the writer's PID
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .._fileio import WriterLock, write_json
from ..errors import OutputLockedError, SetupError

__all__ = ["OutputLock", "state_path", "done_path", "read_json", "settings_difference", "describe_difference", "digest",
           "truncate_to"]


def state_path(out: str | os.PathLike) -> Path:
    p = Path(out)
    return p.with_name(f".{p.name}.state.json")


def done_path(out: str | os.PathLike) -> Path:
    p = Path(out)
    return p.with_name(f".{p.name}.done.json")


def lock_path(out: str | os.PathLike) -> Path:
    p = Path(out)
    return p.with_name(f".{p.name}.lock")


def digest(items: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(str(it).encode())
        h.update(b"\n")
    return h.hexdigest()


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def settings_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The setting names whose values differ (JSON-compared)."""
    keys = sorted(set(old) | set(new))
    return [k for k in keys if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True)]


def describe_difference(diff: list[str], old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The names of the settings that differ, with what a changed record list means in words."""
    text = ", ".join(diff)
    if "inputs_sha256" in diff:
        n0, n1 = old.get("n_files"), new.get("n_files")
        count = f"{n0} then, {n1} now" if n0 != n1 else f"{n1} then and now, not the same ones"
        text += (f" (the record files: {count}; files were added to, removed from or renamed in the inputs since, "
                 "so the saved rows no longer line up with them)")
    return text


def truncate_to(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (the last saved record boundary)."""
    if not path.exists() or path.stat().st_size < size:
        raise SetupError(f"{path}: the partial output is shorter than its state file says ({size} bytes); it was "
                         "changed since the interruption. Run again with resume=False to start over.", "resume")
    with open(path, "r+b") as f:
        f.truncate(size)


class OutputLock(WriterLock):
    """Exclusive right to write ``out`` while held (``.out.lock``, a :class:`~ecgfounder._fileio.WriterLock`);
    refused with :class:`~ecgfounder.errors.OutputLockedError` naming the output and the holder's PID."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        super().__init__(lock_path(out), lambda holder: OutputLockedError(
            f"output {self.out} is being written by another run (PID {holder}); wait for it to finish, stop it, or "
            "choose another output.", "output"))


def write_state(path: Path, obj: Mapping[str, Any]) -> None:
    write_json(path, obj)
