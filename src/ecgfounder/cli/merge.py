"""``ecgfounder merge``: join the parts written by sharded or torchrun ``predict`` runs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ._checks import check_writable, usage
from ._common import say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join the parts of a sharded predict run",
                       description="Join OUT.shard-I-of-N parts written by 'ecgfounder predict --shard' (or torchrun) "
                       "into one table in record order, checking that no shard, record or row is missing or repeated.")
    p.add_argument("parts", nargs="+", metavar="PART", help="the part files (.csv/.jsonl/.parquet) of one run")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="merged table (.csv, .parquet or .jsonl; CSV parts, which keep no types: .csv); "
                   "replaced if it exists (never a part)")
    p.add_argument("--embeddings", metavar="FILE.npy", help="also join the parts' embeddings into this array")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    """Outputs that would overwrite a part (or each other) are refused: merging would destroy its input."""
    for part in args.parts:
        if Path(part).is_dir():
            raise usage(f"PART {part} is a folder; give its part files: {part}/*.shard-*-of-*.csv (or .jsonl/.parquet).")
    for flag, path in (("-o/--output", args.output), ("--embeddings", args.embeddings)):
        if path and re.search(r"\.shard-\d+-of-\d+\.", Path(path).name):  # (one of the parts: merge_parts says)
            raise usage(f"{flag} {path} is named like a part of a run; give a new file for the merged result.")
    if args.embeddings:
        if Path(args.embeddings).suffix.lower() != ".npy":
            raise usage(f"--embeddings {args.embeddings}: the embeddings are a NumPy array; give a .npy file.")
        check_writable(args.embeddings, "--embeddings")
    check_writable(args.output, "-o/--output")


def run(args: argparse.Namespace) -> int:
    from ..prediction.parts import merge_parts

    _check(args)

    report = merge_parts(args.parts, args.output, embeddings=args.embeddings)
    msg = f"merged {report['parts']} part(s): {report['rows']} row(s) in {args.output}"
    if args.embeddings:
        msg += f"; embeddings in {args.embeddings}"
    if report["failures"]:
        msg += f"; {len(report['failures'])} record(s) had failed in the shards"
    say(msg)
    return 0
