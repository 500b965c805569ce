"""``ecgfounder convert``: ECG records to WFDB/npz/EDF, and checkpoints to safetensors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._checks import check_writable, usage
from ._common import add_read_args, flags, read_options

__all__ = ["add_parser", "run", "CHECKPOINT_SUFFIXES"]

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_RECORD_TARGETS = {"wfdb": ".hea", "npz": ".npz", "edf": ".edf", "bdf": ".bdf"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert ECG files (to wfdb, npz, edf, bdf) or a checkpoint (to safetensors)",
        description="Convert ECG records of any supported format to WFDB, NumPy .npz or EDF+/BDF+ for interchange "
        "(samples in mV), or a published .pth checkpoint to our .safetensors format (--to safetensors, or any "
        ".pth/.pt/.bin/.ckpt input). An existing output is kept unless --overwrite; an input is never overwritten.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="ECG files or folders of them, or one checkpoint")
    p.add_argument("--to", choices=(*_RECORD_TARGETS, "safetensors"), help="target format (records: required)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="output file (default: the input's stem with the new suffix, beside the input; an existing "
                   "folder: that name inside it); for several inputs or a batch file, a folder")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist (never an input)")
    p.add_argument("--no-strict", action="store_true", help="checkpoints: accept keys that differ from the architecture")
    add_read_args(p)
    p.set_defaults(func=run)


def _suffix_agrees(output: str | None, suffix: str, writer: str) -> None:
    """An output named with another format's suffix is refused (it was written under a new name)."""
    got = Path(output).suffix.lower() if output else ""
    known = {*_RECORD_TARGETS.values(), ".dat", ".safetensors", *CHECKPOINT_SUFFIXES}
    if got in known and got != suffix and not (suffix == ".hea" and got == ".dat"):
        raise usage(f"-o/--output {output} ends in {got}, but {writer} writes a {suffix} file; give "
                    f"{Path(output).with_suffix(suffix)} instead.")


def _convert_checkpoint(args: argparse.Namespace, src: Path) -> int:
    from ..models.loading import convert_checkpoint

    if args.to not in (None, "safetensors"):
        raise usage(f"{src} is a checkpoint, which converts to safetensors only, not --to {args.to}; use "
                    "--to safetensors (or no --to).")
    out = args.output
    if out and Path(out).is_dir():  # a folder: the file goes inside it (not beside it as FOLDER.safetensors)
        out = Path(out) / f"{src.stem}.safetensors"
    _suffix_agrees(args.output, ".safetensors", "checkpoint conversion")
    target = Path(out) if out else src.with_suffix(".safetensors") if src.is_file() else None
    if target is not None:  # (a known name's output goes beside its download)
        _keep([target, target.with_suffix(".json")], [src], args.overwrite)
    out = convert_checkpoint(src, out and check_writable(out, "-o/--output"), strict=not args.no_strict)
    print(out)
    return 0


def _name(stem: str, to: str) -> str:
    """``stem`` as a file name for ``to``: letters, digits, ``-``, ``_`` (and ``.`` but for WFDB,
    whose record names hold none), anything else ``_``."""
    keep = "-_" if to == "wfdb" else "-_."
    return "".join(c if (c.isascii() and c.isalnum()) or c in keep else "_" for c in stem)


def _target(src: Path, args: argparse.Namespace, folder: Path | None) -> Path:
    """Where a file holding one recording is written: in ``folder`` (several inputs), else at -o
    (a folder: inside it), else beside the input."""
    own = _name(src.stem, args.to) + _RECORD_TARGETS[args.to]
    if folder is not None or len(args.paths) > 1:
        return (folder or src.parent) / own
    out = Path(args.output) if args.output else src.with_name(own)
    if args.output and args.output.endswith(("/", os.sep)):  # a folder to make (-o out/), not a file "out"
        check_writable(out, "-o/--output", folder=True).mkdir(parents=True, exist_ok=True)
    return out / own if out.is_dir() else out  # a folder given as -o: the file goes inside it


def _keep(outs: list[Path], inputs: list[Path], overwrite: bool) -> None:
    """Refuse output files that would replace an input (always: the same file under any name, a
    symbolic or hard link included) or a file that exists (unless --overwrite)."""
    from .._fileio import same_file

    for q in outs:
        src = next((f for f in inputs if same_file(q, f)), None)
        if src is not None:
            raise usage(f"output {q} would overwrite the input {src}; give another file or folder with -o/--output.")
        if q.exists() and not overwrite:
            raise usage(f"output {q} exists; give another file or folder with -o/--output, or add --overwrite to "
                        "replace it.")


def _write(rec: Any, out: Path, args: argparse.Namespace, inputs: list[Path]) -> Path:
    """Write ``rec`` to ``out`` (for WFDB its .hea and .dat), kept from the inputs by :func:`_keep`."""
    from ..io import write
    from ..io.write import written_files

    _keep(written_files(out, args.to), inputs, args.overwrite)
    return write(rec, check_writable(out, "-o/--output"), args.to)


def _convert_file(src: Path, args: argparse.Namespace, folder: Path | None, inputs: list[Path],
                  used: set[Path]) -> None:
    """Convert one input file: one recording to its own file, a batch file's into a folder, each
    named by its id (an id met before in this run gets its position in the file: ``ID_N``)."""
    from ..errors import RecordReadError
    from ..io import iter_read

    suffix = _RECORD_TARGETS[args.to]
    recs = iter_read(src, **read_options(args))
    first, second = next(recs, None), next(recs, None)
    if first is None:  # (an empty batch file: StopIteration, a traceback)
        raise RecordReadError(src, "no recordings in the file, nothing to convert")
    if second is None:
        out = _target(src, args, folder)
        used.add(out)
        print(_write(first, out, args, inputs))
        return
    out = folder or (Path(args.output) if args.output else src.parent / f"{src.stem}_{args.to}")
    if out.exists() and not out.is_dir():
        raise usage(f"{src} holds several recordings, written one file each into a folder, but -o {out} is a file; "
                    "give a folder with -o/--output.")
    check_writable(out, "-o/--output", folder=True).mkdir(parents=True, exist_ok=True)
    n, renamed = 0, 0
    for rec in (first, second, *recs):
        name = _name(rec.id, args.to) or f"record{n}"
        if out / f"{name}{suffix}" in used:  # (ids HR.001 and HR_001 both make HR_001 for WFDB)
            name, renamed = f"{name}_{n}", renamed + 1
        used.add(out / f"{name}{suffix}")
        _write(rec, out / f"{name}{suffix}", args, inputs)
        n += 1
    again = f"; {renamed} whose id was met before written as ID_N, N the position in the file" if renamed else ""
    print(f"{out} ({n} recordings from {src}{again})")


def run(args: argparse.Namespace) -> int:
    from ..errors import RecordReadError, SetupError
    from ..io import find_records
    from ..io.detect import EXTENSIONS

    srcs = [Path(x) for x in args.paths]
    if args.to == "safetensors" or any(s.suffix.lower() in CHECKPOINT_SUFFIXES for s in srcs):
        if len(srcs) > 1:
            raise usage(f"checkpoints convert one at a time; give one FILE, not {len(srcs)}.")
        if srcs[0].suffix.lower() in {*EXTENSIONS, ".dat", ".mat"}:
            raise usage(f"--to safetensors converts checkpoints; {srcs[0]} is an ECG record: choose --to "
                        f"{', '.join(_RECORD_TARGETS)}.")
        return _convert_checkpoint(args, srcs[0])
    if not args.to:
        raise ValueError(f"--to is required for ECG records; choose one of {', '.join(_RECORD_TARGETS)}.")
    _suffix_agrees(args.output, _RECORD_TARGETS[args.to], f"--to {args.to}")
    files = find_records(args.paths)
    if not files:
        raise ValueError(f"no ECG files found in {' '.join(args.paths)}; give files or folders holding them.")
    inputs = [*files, *(f.with_suffix(".dat") for f in files if f.suffix.lower() == ".hea")]
    if len(args.paths) == 1 and len(files) == 1:
        _convert_file(files[0], args, None, inputs, set())
        return 0
    if args.output and Path(args.output).suffix.lower() in _RECORD_TARGETS.values() and not Path(args.output).is_dir():
        raise usage(f"{len(files)} inputs are written one file each into a folder, but -o {args.output} names a file; "
                    "give a folder with -o/--output.")
    folder = check_writable(args.output, "-o/--output", folder=True) if args.output else None
    planned: dict[Path, Path] = {}  # two inputs of one stem (a/1.xml, b/1.xml) would write one file
    for f in files:
        q = _target(f, args, folder)
        if planned.setdefault(q, f) != f:
            raise usage(f"{planned[q]} and {f} would both be written to {q}; convert them into separate folders "
                        "(-o/--output).")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    failed, used = 0, set()
    for f in files:
        try:
            _convert_file(f, args, folder, inputs, used)
        except (RecordReadError, SetupError) as exc:  # an unreadable input (or recording) costs none of the others
            if not isinstance(exc, RecordReadError) and exc.argument != "recording":
                raise  # (a mistake of the command: an output that exists, ...)
            failed += 1
            msg = flags(" ".join(str(exc).split()))
            print(f"error: {msg if str(f) in msg else f'{f}: {msg}'}", file=sys.stderr)
        sys.stdout.flush()
    if failed:
        print(f"error: {failed} of {len(files)} files could not be converted", file=sys.stderr)
    return 1 if failed else 0
