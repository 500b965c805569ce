"""``ecgfounder merge``: join the parts written by sharded or torchrun ``predict`` runs."""

from __future__ import annotations

import argparse

from ._common import say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join the parts of a sharded predict run",
                       description="Join OUT.shard-I-of-N parts written by 'ecgfounder predict --shard' (or torchrun) "
                       "into one table in record order, checking that no shard, record or row is missing or repeated.")
    p.add_argument("parts", nargs="+", metavar="PART", help="the part files (.csv/.jsonl/.parquet) of one run")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="merged table (.csv, .parquet or .jsonl)")
    p.add_argument("--embeddings", metavar="FILE.npy", help="also join the parts' embeddings into this array")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..prediction.parts import merge_parts

    report = merge_parts(args.parts, args.output, embeddings=args.embeddings)
    msg = f"merged {report['parts']} part(s): {report['rows']} row(s) in {args.output}"
    if args.embeddings:
        msg += f"; embeddings in {args.embeddings}"
    if report["failures"]:
        msg += f"; {len(report['failures'])} record(s) had failed in the shards"
    say(msg)
    return 0
