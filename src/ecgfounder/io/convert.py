"""Batch conversion of ECG records to WFDB, npz or EDF/BDF: :func:`convert_records`.

Every input file is read with :func:`~ecgfounder.io.iter_read` and written with
:func:`~ecgfounder.io.write`: a file holding one recording to one file, a batch file's recordings
one file each into a folder, named by their ids.  An input is never overwritten (under any name,
links included); an existing output only with ``overwrite=True``.  One unreadable input (or one
whose output exists) costs none of the others: its :class:`ConvertResult` carries the error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from itertools import chain
from typing import Any, Iterable, Iterator, Mapping

from .._fileio import same_file, unwritable_reason
from .._formats import CHECKPOINT_SUFFIXES
from ..errors import ECGFounderError, RecordReadError, SetupError
from .write import WRITE_FORMATS, write, written_files

__all__ = ["convert_records", "ConvertResult", "RecordConversion", "check_outputs", "suffix_agrees", "record_file_name"]

# suffixes of other writers: an output named with one was meant for something else
_OTHER_SUFFIXES = (".dat", ".safetensors", *CHECKPOINT_SUFFIXES)


@dataclass(frozen=True)
class ConvertResult:
    """What became of one input file.

    ``written``: the files written, one per recording (for WFDB the ``.hea``, its ``.dat``
    beside it); ``folder``: the folder a batch file's recordings went into (``None`` for a file
    holding one recording); ``renamed``: recordings whose id (or file name) was met before in the
    run, written as ``ID_N`` (N their position in the file); ``error``: why the file (or one of its
    recordings) could not be converted, ``None`` when it was (``written`` then holds what was
    written before it)."""

    source: Path
    written: tuple[Path, ...] = ()
    folder: Path | None = None
    renamed: int = 0
    error: ECGFounderError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def recordings(self) -> int:
        """Recordings written from the file."""
        return len(self.written)


def record_file_name(stem: str, to: str) -> str:
    """``stem`` as a file name for format ``to``: letters, digits, ``-``, ``_`` (and ``.`` but for
    WFDB, whose record names hold none), anything else ``_``."""
    keep = "-_" if to == "wfdb" else "-_."
    return "".join(c if (c.isascii() and c.isalnum()) or c in keep else "_" for c in stem)


def _named(path: Path) -> str:
    """``output`` with its command-line form beside it, for messages."""
    return f"output={str(path)!r} (CLI: -o/--output {path})"


def _writable(path: Path, *, folder: bool = False) -> Path:
    """``path`` (a file, or with ``folder=True`` a folder) can be created there."""
    if folder and path.exists() and not path.is_dir():
        raise SetupError(f"{_named(path)} is a file; give a folder (it is created if needed).", "output")
    if not folder and path.is_dir():
        raise SetupError(f"{_named(path)} is a folder; give a file name.", "output")
    _, reason = unwritable_reason(path if folder else path.parent)
    if reason:
        raise SetupError(f"{_named(path)}: {reason}; choose another path.", "output")
    return path


def check_outputs(outputs: Iterable[Path], inputs: Iterable[Path] = (), *, overwrite: bool = False) -> None:
    """Refuse output files that would replace an input (always: the same file under any name, a
    symbolic or hard link included) or a file that exists (unless ``overwrite``)."""
    inputs = list(inputs)
    for q in map(Path, outputs):
        src = next((f for f in inputs if same_file(q, f)), None)
        if src is not None:
            raise SetupError(f"output {q} would overwrite the input {src}; give another file or folder with "
                             "output=... (CLI: -o/--output).")
        if q.exists() and not overwrite:
            raise SetupError(f"output {q} exists; give another file or folder with output=... (CLI: -o/--output), "
                             "or add overwrite=True (CLI: --overwrite) to replace it.", "overwrite")


def suffix_agrees(output: Path | None, suffix: str, writer: str) -> None:
    """An output named with another writer's suffix (a record format's, a checkpoint's) is refused:
    it would be written under a new name.  ``writer`` names what writes ``suffix``, for the message."""
    got = output.suffix.lower() if output else ""
    known = {*WRITE_FORMATS.values(), *_OTHER_SUFFIXES}
    if got in known and got != suffix and not (suffix == ".hea" and got == ".dat"):
        raise SetupError(f"{_named(output)} ends in {got}, but {writer} writes a {suffix} file; "
                         f"give {output.with_suffix(suffix)} instead.", "output")


class RecordConversion(Iterator[ConvertResult]):
    """A planned conversion: ``files`` are the input files found (in order, ``len()`` of them);
    iterating converts them one at a time, yielding a :class:`ConvertResult` each.  A mistake of
    the call (an output that is an input) ends the iteration with a :class:`SetupError`; an output
    that exists is kept, the error of that file's result."""

    def __init__(self, paths: list[Any], to: str, output: Path | None, raw_output: str, overwrite: bool,
                 read_kwargs: Mapping[str, Any]):
        from .detect import find_records

        self.to, self.output, self.overwrite, self.read_kwargs = to, output, overwrite, dict(read_kwargs)
        self._slash = raw_output.endswith(("/", os.sep))  # `out/`: a folder to make, not a file "out"
        files = find_records(paths)
        if not files:
            raise SetupError(f"no ECG files found in {' '.join(map(str, paths))}; give files or folders holding them.",
                             "inputs")
        self.files: tuple[Path, ...] = tuple(files)
        self._inputs = [*files, *(f.with_suffix(".dat") for f in files if f.suffix.lower() == ".hea")]
        self._single = len(paths) == 1 and len(files) == 1  # only then may output name a file
        self.folder: Path | None = None  # several inputs: the folder they go into (None: beside each)
        if not self._single:
            self._plan(output)
        self._results = self._run()

    def __len__(self) -> int:
        return len(self.files)

    def __next__(self) -> ConvertResult:
        return next(self._results)

    def _plan(self, output: Path | None) -> None:
        """Several inputs: a folder (or beside each input), and no two inputs onto one file."""
        if output is not None and output.suffix.lower() in WRITE_FORMATS.values() and not output.is_dir():
            raise SetupError(f"{len(self.files)} inputs are written one file each into a folder, but "
                             f"output={str(output)!r} (CLI: -o {output}) names a file; give a folder with "
                             "output=... (CLI: -o/--output).", "output")
        self.folder = _writable(output, folder=True) if output is not None else None
        planned: dict[Path, Path] = {}  # two inputs of one stem (a/1.xml, b/1.xml) would write one file
        for f in self.files:
            q = self._target(f)
            if planned.setdefault(q, f) != f:
                raise SetupError(f"{planned[q]} and {f} would both be written to {q}; convert them into separate "
                                 "folders (output=... (CLI: -o/--output)).", "output")

    def _target(self, src: Path) -> Path:
        """Where a file holding one recording is written: in the folder (several inputs), else at
        ``output`` (a folder: inside it), else beside the input."""
        own = record_file_name(src.stem, self.to) + WRITE_FORMATS[self.to]
        if not self._single:
            return (self.folder or src.parent) / own
        out = self.output or src.with_name(own)
        if self.output is not None and self._slash:
            _writable(out, folder=True).mkdir(parents=True, exist_ok=True)
        return out / own if out.is_dir() else out

    def _write(self, rec: Any, out: Path) -> Path:
        check_outputs(written_files(out, self.to), self._inputs, overwrite=self.overwrite)
        return write(rec, _writable(out), self.to)

    def _convert(self, src: Path, used: set[Path], written: list[Path]) -> ConvertResult:
        """One input file: one recording to its own file, a batch file's into a folder, each named
        by its id (an id met before in this run gets its position in the file: ``ID_N``)."""
        from .detect import iter_read

        suffix = WRITE_FORMATS[self.to]
        recs = iter_read(src, **self.read_kwargs)
        first, second = next(recs, None), next(recs, None)
        if first is None:
            raise RecordReadError(src, "no recordings in the file, nothing to convert")
        if second is None:
            out, renamed = self._target(src), 0
            if out in used:  # (a batch file's recording of this run has the name: not replaced)
                out, renamed = out.with_name(f"{out.stem}_0{out.suffix}"), 1
            used.add(out)
            written.append(self._write(first, out))
            return ConvertResult(src, tuple(written), renamed=renamed)
        out = self.folder or self.output or src.parent / f"{src.stem}_{self.to}"
        if out.exists() and not out.is_dir():
            raise SetupError(f"{src} holds several recordings, written one file each into a folder, but "
                             f"output={str(out)!r} (CLI: -o {out}) is a file; give a folder with output=... "
                             "(CLI: -o/--output).", "output")
        _writable(out, folder=True).mkdir(parents=True, exist_ok=True)
        renamed = 0
        for n, rec in enumerate(chain((first, second), recs)):  # (read as they are written)
            name = record_file_name(rec.id, self.to) or f"record{n}"
            if out / f"{name}{suffix}" in used:  # (ids HR.001 and HR_001 both make HR_001 for WFDB)
                name, renamed = f"{name}_{n}", renamed + 1
            used.add(out / f"{name}{suffix}")
            written.append(self._write(rec, out / f"{name}{suffix}"))
        return ConvertResult(src, tuple(written), out, renamed)

    def _run(self) -> Iterator[ConvertResult]:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        used: set[Path] = set()
        for f in self.files:
            written: list[Path] = []
            try:
                yield self._convert(f, used, written)
            except (RecordReadError, SetupError) as exc:  # an unreadable input (or recording) costs none of the others
                if not isinstance(exc, RecordReadError) and exc.argument not in ("recording", "overwrite"):
                    raise  # (a mistake of the call: an output that is an input, ...; an existing output is kept)
                yield ConvertResult(f, tuple(written), error=exc)


def convert_records(paths: str | os.PathLike | Iterable[str | os.PathLike], to: str,
                    output: str | os.PathLike | None = None, *, overwrite: bool = False,
                    read_kwargs: Mapping[str, Any] | None = None) -> RecordConversion:
    """Convert ECG files (or every record file in folders) to ``to``: ``wfdb``, ``npz``, ``edf``
    or ``bdf``.  Returns an iterator of one :class:`ConvertResult` per input file, converting as
    it is consumed (``list(...)`` runs it all); its ``files`` are the inputs found.

    ``output``: for one input file, the file to write (an existing folder, or a name ending in
    ``/``: the file goes inside it); for several inputs, the folder they go into; ``None``: beside
    each input.  A batch file's recordings go into ``output`` (a folder) or ``STEM_TO/`` beside
    it.  ``overwrite``: replace existing outputs (never an input).  ``read_kwargs``: passed to
    :func:`~ecgfounder.io.iter_read` (``fs``, ``leads``, ``format``, ...).

    Mistakes of the call (an unknown ``to``, no ECG files, an output that contradicts ``to`` or
    the inputs, two inputs onto one file) raise :class:`~ecgfounder.errors.SetupError` here,
    before anything is written; an output that is an input ends the iteration with one.  An output
    that exists (without ``overwrite``) is kept: that file's result carries the error.
    """
    if to not in WRITE_FORMATS:
        raise SetupError(f"to={to!r} is not a format convert_records writes; choose one of "
                         f"{', '.join(WRITE_FORMATS)}.", "to")
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out = Path(output) if output is not None and str(output) else None
    suffix_agrees(out, WRITE_FORMATS[to], f"to={to!r} (CLI: --to {to})")
    return RecordConversion(paths, to, out, str(output or ""), overwrite, read_kwargs or {})
