"""``ecgfounder convert``: ECG records to WFDB/npz/EDF (:func:`ecgfounder.io.convert_records`), and
checkpoints to safetensors (:func:`ecgfounder.models.loading.convert_checkpoint`)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .._formats import CHECKPOINT_SUFFIXES, WRITE_FORMATS
from ..errors import WeightsDownloadError
from ._checks import check_writable, usage
from ._common import add_read_args, flags, read_options

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert ECG files (to wfdb, npz, edf, bdf) or a checkpoint (to safetensors)",
        description="Convert ECG records of any supported format to WFDB, NumPy .npz or EDF+/BDF+ for interchange "
        "(samples in mV), or a published .pth checkpoint to our .safetensors format (--to safetensors, or any "
        f"{'/'.join(CHECKPOINT_SUFFIXES)} input). An existing output is kept unless --overwrite; an input is never overwritten.",
    )
    p.add_argument("paths", nargs="+", metavar="FILE", help="ECG files or folders of them, or one checkpoint (a file, or 12-lead / 1-lead: the "
                   "published weights, downloaded to the cache and written beside them)")
    p.add_argument("--to", choices=(*WRITE_FORMATS, "safetensors"), help="target format (records: required)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="output file (default: the input's stem with the new suffix, beside the input; an existing "
                   "folder: that name inside it); for several inputs or a batch file, a folder")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist (never an input)")
    p.add_argument("--no-strict", action="store_true", help="checkpoints: accept keys that differ from the architecture")
    add_read_args(p)
    p.set_defaults(func=run)


def _convert_checkpoint(args: argparse.Namespace, src: Path) -> int:
    from ..io.convert import check_outputs, suffix_agrees
    from ..models.loading import convert_checkpoint

    if args.to not in (None, "safetensors"):
        raise usage(f"{src} is a checkpoint, which converts to safetensors only, not --to {args.to}; use "
                    "--to safetensors (or no --to).")
    out = args.output
    if out and Path(out).is_dir():  # a folder: the file goes inside it (not beside it as FOLDER.safetensors)
        out = Path(out) / f"{src.stem}.safetensors"
    suffix_agrees(Path(args.output) if args.output else None, ".safetensors", "checkpoint conversion")
    target = Path(out) if out else src.with_suffix(".safetensors") if src.is_file() else None
    if target is not None:  # (a known name's output goes beside its download)
        check_outputs([target, target.with_suffix(".json")], [src], overwrite=args.overwrite)
    try:
        out = convert_checkpoint(src, out and check_writable(out, "-o/--output"), strict=not args.no_strict)
    except WeightsDownloadError as exc:  # (a known name offline: its fix names predict's flag, not this command)
        raise WeightsDownloadError(re.sub(r"load it from there: .*?\(CLI: --checkpoint (\S+)\)",
                                          r"convert it from there: ecgfounder convert \1 --to safetensors", str(exc))) from None
    print(out)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..io.convert import convert_records
    from ..io.detect import EXTENSIONS
    from ..models.weights import resolve_known

    srcs = [Path(x) for x in args.paths]
    named = [s for s in srcs if not s.exists() and resolve_known(str(s)) is not None]  # 12-lead: a checkpoint
    if args.to == "safetensors" or named or any(s.suffix.lower() in CHECKPOINT_SUFFIXES for s in srcs):
        if len(srcs) > 1:
            raise usage(f"checkpoints convert one at a time; give one FILE, not {len(srcs)}.")
        if srcs[0].suffix.lower() in {*EXTENSIONS, ".dat", ".mat"}:
            raise usage(f"--to safetensors converts checkpoints; {srcs[0]} is an ECG record: choose --to "
                        f"{', '.join(WRITE_FORMATS)}.")
        return _convert_checkpoint(args, srcs[0])
    if not args.to:
        raise ValueError(f"--to is required for ECG records; choose one of {', '.join(WRITE_FORMATS)}.")
    results = convert_records(args.paths, args.to, args.output, overwrite=args.overwrite,
                              read_kwargs=read_options(args))
    alone = len(args.paths) == 1 and len(results) == 1  # one input file: its error is the command's (exit 2)
    failed = 0
    for r in results:
        if r.error is not None:
            if alone:
                raise r.error
            failed += 1
            msg = flags(" ".join(str(r.error).split()))
            print(f"error: {msg if str(r.source) in msg else f'{r.source}: {msg}'}", file=sys.stderr)
        elif r.folder is None:
            print(r.written[0])
        else:
            again = (f"; {r.renamed} whose id was met before written as ID_N, N the position in the file"
                     if r.renamed else "")
            print(f"{r.folder} ({r.recordings} recordings from {r.source}{again})")
        sys.stdout.flush()
    if failed:
        print(f"error: {failed} of {len(results)} files could not be converted", file=sys.stderr)
    return 1 if failed else 0
