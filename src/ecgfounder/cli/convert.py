"""``ecgfounder convert``: ECG records to WFDB/npz/EDF, and checkpoints to safetensors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._checks import check_writable, usage
from ._common import add_read_args, read_options

__all__ = ["add_parser", "run", "CHECKPOINT_SUFFIXES"]

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_RECORD_TARGETS = {"wfdb": ".hea", "npz": ".npz", "edf": ".edf", "bdf": ".bdf"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an ECG file (to wfdb, npz, edf, bdf) or a checkpoint (to safetensors)",
        description="Convert an ECG record of any supported format to WFDB, NumPy .npz or EDF+/BDF+ for interchange "
        "(samples in mV), or a published .pth checkpoint to our .safetensors format (--to safetensors, or any "
        ".pth/.pt/.bin/.ckpt input).",
    )
    p.add_argument("path", metavar="FILE", help="an ECG file, or a checkpoint")
    p.add_argument("--to", choices=(*_RECORD_TARGETS, "safetensors"), help="target format (records: required)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="output file (default: the input's stem with the new suffix, beside the input; an existing "
                   "folder: that name inside it); for batch files, a folder")
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


def _convert_checkpoint(args: argparse.Namespace) -> int:
    from ..models.loading import convert_checkpoint

    if args.to not in (None, "safetensors"):
        raise usage(f"{args.path} is a checkpoint, which converts to safetensors only, not --to {args.to}; use "
                    "--to safetensors (or no --to).")
    out = args.output
    if out and Path(out).is_dir():  # a folder: the file goes inside it (not beside it as FOLDER.safetensors)
        out = Path(out) / f"{Path(args.path).stem}.safetensors"
    _suffix_agrees(args.output, ".safetensors", "checkpoint conversion")
    out = convert_checkpoint(args.path, out and check_writable(out, "-o/--output"), strict=not args.no_strict)
    print(out)
    return 0


def _name(stem: str, to: str) -> str:
    """``stem`` as a file name for ``to``: letters, digits, ``-``, ``_`` (and ``.`` but for WFDB,
    whose record names hold none), anything else ``_``."""
    keep = "-_" if to == "wfdb" else "-_."
    return "".join(c if (c.isascii() and c.isalnum()) or c in keep else "_" for c in stem)


def run(args: argparse.Namespace) -> int:
    from ..io import iter_read, write

    from ..io.detect import EXTENSIONS

    src = Path(args.path)
    if args.to == "safetensors" and src.suffix.lower() in {*EXTENSIONS, ".dat", ".mat"}:
        raise usage(f"--to safetensors converts checkpoints; {src} is an ECG record: choose --to "
                    f"{', '.join(_RECORD_TARGETS)}.")
    if src.suffix.lower() in CHECKPOINT_SUFFIXES or args.to == "safetensors":
        return _convert_checkpoint(args)
    if not args.to:
        raise ValueError(f"--to is required for ECG records; choose one of {', '.join(_RECORD_TARGETS)}.")
    suffix = _RECORD_TARGETS[args.to]
    _suffix_agrees(args.output, suffix, f"--to {args.to}")
    recs = iter_read(src, **read_options(args))
    first = next(recs)
    second = next(recs, None)
    if second is None:
        own = _name(src.stem, args.to) + suffix  # the input's stem, made a valid name for the target
        out = Path(args.output) if args.output else src.with_name(own)
        if args.output and args.output.endswith(("/", os.sep)):  # a folder to make (-o out/), not a file "out"
            check_writable(out, "-o/--output", folder=True).mkdir(parents=True, exist_ok=True)
        if out.is_dir():  # a folder given as -o: the file goes inside it (not beside it as FOLDER.edf)
            out = out / own
        if out.resolve() == src.resolve():
            raise ValueError(f"output {out} would overwrite the input; give another file or folder with -o/--output.")
        print(write(first, check_writable(out, "-o/--output"), args.to))
        return 0
    # a batch file: one output per recording in a folder
    folder = Path(args.output) if args.output else src.parent / f"{src.stem}_{args.to}"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{src} holds several recordings, written one file each into a folder, but -o {folder} "
                         "is a file; give a folder with -o/--output.")
    check_writable(folder, "-o/--output", folder=True).mkdir(parents=True, exist_ok=True)
    n = 0
    for rec in (first, second, *recs):
        write(rec, folder / f"{_name(rec.id, args.to) or f'record{n}'}{suffix}", args.to)
        n += 1
    print(f"{folder} ({n} recordings)")
    sys.stdout.flush()
    return 0
