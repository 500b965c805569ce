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
           "truncate_to", "how_named", "refuse_other_settings", "weights_identity"]


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


def weights_identity(model: Any) -> dict[str, Any]:
    """The weights of a run's settings: a checkpoint file by path, size and mtime, published weights by
    name and hash, a model object by its content fingerprint."""
    if not isinstance(model, (str, os.PathLike)):
        from ..models.description import model_fingerprint

        return {"fingerprint": model_fingerprint(model)}
    p = Path(model)
    if p.is_file():
        st = p.stat()
        return {"file": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    from ..models.weights import resolve_known

    known = resolve_known(str(model))
    return {"name": known.name if known else str(model), "sha256": known.sha256 if known else None}


def how_named(inputs: Iterable[Any]) -> dict[str, Any]:
    """How a run names its inputs (as given) and where it started (relative names are relative to it):
    kept beside its settings, so a resume naming the same inputs otherwise is told so."""
    return {"inputs": [str(i) for i in inputs], "cwd": os.getcwd()}


def _same_places(then: list[str], cwd: str, now: list[str]) -> bool:
    """Whether names ``then`` (relative to ``cwd``) and ``now`` (to the working folder) are the same places."""
    return sorted(os.path.realpath(os.path.join(cwd, a)) for a in then) == sorted(map(os.path.realpath, now))


def _renamed(diff: list[str], old: Mapping[str, Any], new: Mapping[str, Any], named: Mapping[str, Any] | None,
             named_now: Mapping[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """``(what, then, now)`` for the inputs and the embeddings named otherwise than by the run that wrote
    ``old`` (an absolute path for a relative one, ``a/../b`` for ``b``) but the same files and folders."""
    if not named or not isinstance(named.get("inputs"), list):
        return []  # (a run of an older version: how it named them is not known)
    cwd, then, now = str(named.get("cwd", "")), named["inputs"], named_now["inputs"]
    out = []
    if "inputs_sha256" in diff and then != now and _same_places(then, cwd, now):
        out.append(("inputs", then, now))
    e0, e1 = old.get("embeddings"), new.get("embeddings")
    if "embeddings" in diff and e0 and e1 and _same_places([str(e0)], cwd, [str(e1)]):
        out.append(("embeddings", [str(e0)], [str(e1)]))
    return out


def refuse_other_settings(out: Any, recorded: Mapping[str, Any], settings: Mapping[str, Any],
                          named: Mapping[str, Any] | None, named_now: Mapping[str, Any], *, finished: bool) -> None:
    """Raise :class:`SetupError` where the run that wrote ``out`` (``recorded`` settings, inputs ``named``
    so: :func:`how_named`) differs from this one, naming what differs and the fix; inputs named
    otherwise (the rows hold their paths as first named) are said so, with both names."""
    diff = settings_difference(recorded, settings)
    if not diff:
        return
    which, again = ("finished", "repeat the same command") if finished else (
        "interrupted", "repeat the same command with resume=True")
    renamed = _renamed(diff, recorded, settings, named, named_now)
    if not renamed:
        raise SetupError(f"{out}: the {which} run differs from this one in {describe_difference(diff, recorded, settings)}"
                         f"; {again}, or run again with resume=False to start over.", "resume")
    skip = {"inputs_sha256" if w == "inputs" else w for w, _, _ in renamed}
    rest = [d for d in diff if d not in skip]
    def names(paths: list[str]) -> str:
        return " ".join(f"'{p}'" for p in paths)

    spelled = "; ".join(f"{w} {names(a)} then, {names(b)} now" for w, a, b in renamed)
    first = ", ".join(f"{w} {names(a)}" for w, a, _ in renamed)
    cwd = str((named or {}).get("cwd", ""))
    where = (f", from the folder {cwd}, where it started"
             if cwd and cwd != named_now["cwd"] and any(not os.path.isabs(p) for _, a, _ in renamed for p in a) else "")
    also = f"; it also differs in {describe_difference(rest, recorded, settings)}" if rest else ""
    why = (": its rows hold the record paths as first named, so this run's would not line up with them"
           if "inputs_sha256" in skip else "")
    raise SetupError(f"{out}: the {which} run named the same files differently ({spelled}){why}{also}. Name them as it did "
                     f"({first}{where}) with resume=True, or run again with resume=False to start over.", "resume")


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
