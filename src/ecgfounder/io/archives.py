"""Reading the ECG files inside compressed files and zip archives (expanded by
:mod:`ecgfounder.io.compressed`), one member at a time.

A member that cannot be read costs no other member: with ``errors="yield"`` its
:class:`~ecgfounder.errors.RecordReadError` takes its place among the recordings (naming the
archive, the member in ``member``); with ``errors="raise"`` every readable member is yielded, then
one error names each that was not."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import RecordReadError
from ..recording import Recording
from ._common import read_error, shown_as
from .compressed import expanded

__all__ = ["ArchiveReaders", "archive_items", "ERRORS"]

ERRORS = ("raise", "yield")
# archives inside archives (a .hea.gz in a .zip is 2 deep) expand at most this deep
_MAX_NESTING = 4
_NAMED = 5  # an error for several bad members names this many, then counts the rest


@dataclass(frozen=True)
class ArchiveReaders:
    """How the files inside an archive are found and read (:mod:`ecgfounder.io.detect`'s
    ``iter_read``, ``find_records`` and its archive test), given by the caller: this module imports
    none of them."""

    read: Callable[..., Iterator[Recording]]
    find: Callable[[list[Path]], list[Path]]
    kind_of: Callable[[Path, str | None], str | None]


def archive_items(p: Path, format: str | None, kwargs: dict, readers: ArchiveReaders, *, kind: str | None = None,
                  errors: str = "raise", budget: list[int] | None = None, depth: int = 0,
                  ) -> Iterator[Recording | RecordReadError]:
    """The recordings of the compressed file or zip archive ``p``, named after it (``budget``: the
    decompression budget of the outermost archive, shared by the archives inside it; ``depth``:
    how many archives enclose this one; ``kind``: its compression, when not its extension's).
    ``errors`` as the module says; an archive that cannot be opened at all is one error either way
    (yielded or raised)."""
    failed: list[RecordReadError] = []
    try:
        for item in _members(p, format, kwargs, readers, [] if budget is None else budget, depth, kind):
            if isinstance(item, RecordReadError) and errors != "yield":
                failed.append(item)
            else:
                yield item
    except GeneratorExit:
        raise
    except Exception as exc:  # a folder named x.gz, an unreadable file, a bomb: one line naming the file
        err = read_error(p, "compressed file", exc)
        if errors != "yield":
            raise err from (None if isinstance(exc, RecordReadError) else exc)
        yield err
        return
    if len(failed) == 1:
        raise failed[0]
    if failed:
        more = f"; and {len(failed) - _NAMED} more" if len(failed) > _NAMED else ""
        raise RecordReadError(p, f"{len(failed)} of its files could not be read (the others were): "
                              + "; ".join(e.reason for e in failed[:_NAMED]) + more)


def _members(p: Path, format: str | None, kwargs: dict, readers: ArchiveReaders, budget: list[int], depth: int,
             kind: str | None) -> Iterator[Recording | RecordReadError]:
    if depth >= _MAX_NESTING:
        raise RecordReadError(p, f"archive nested inside {depth} others (limit {_MAX_NESTING - 1}); refused")
    with expanded(p, budget, kind) as (inner, kind, not_extracted):
        tmp = str(inner if inner.is_dir() else inner.parent) + os.sep  # the private folder it is expanded into
        with shown_as(f"{inner}: ", f"{p}: "):  # (files passed over are named in the archive)
            targets = readers.find([inner]) if inner.is_dir() else [inner]
        for rel, why in not_extracted.items():  # each a failure of its own (encrypted, a name the disk refuses)
            err = RecordReadError(p, f"{rel} in the {kind} archive: {why}")
            err.member = rel
            yield err
        if not targets and not not_extracted:
            raise RecordReadError(p, f"{kind} archive holds no ECG record files")
        for t in targets:
            name = t.relative_to(inner).as_posix() if inner.is_dir() else t.name  # (its path in the archive)
            where = f"{name} in the {kind} archive" if inner.is_dir() else f"{kind}-compressed {name}"
            inner_kind = readers.kind_of(t, format)
            it = (archive_items(t, format, kwargs, readers, kind=inner_kind, errors="yield", budget=budget, depth=depth + 1)
                  if inner_kind else readers.read(t, format, **kwargs))
            while True:
                try:
                    with shown_as(tmp, f"{p}: "):  # its warnings name the archive, not the temporary copy
                        rec = next(it)
                except StopIteration:
                    break
                except RecordReadError as exc:  # the member's reader stops at its first error
                    rec = exc
                if isinstance(rec, RecordReadError):
                    err = RecordReadError(p, f"{where}: {rec.reason.replace(tmp, '')}")
                    err.member = rec.member or name
                    yield err
                    if not inner_kind:
                        break
                    continue
                meta = dict(rec.meta)
                meta["source"] = str(p)
                meta["compression"] = kind
                if inner.is_dir():
                    meta["archive_member"] = name
                yield Recording(signal=rec.signal, fs=rec.fs, leads=rec.leads, meta=meta)
