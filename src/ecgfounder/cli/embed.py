"""``ecgfounder embed``: the 1024-d ECGFounder embeddings of ECG files."""

from __future__ import annotations

import argparse

from ._common import CLIStream, add_model_args, add_read_args, say
from .predict import add_run_args, job_args

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="compute embeddings for ECG files or folders",
                       description="Write the pooled features (1024-d) of each record to a .npy file, with an "
                       "index table (.csv/.parquet/.jsonl) whose rows align with the array's rows. Long runs can be "
                       "resumed (--resume) and sharded (--shard) like predict.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="ECG files or folders (the formats of predict)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npy", help="embeddings array (n_records, 1024)")
    p.add_argument("--index", metavar="FILE", help="index table (default: FILE.csv beside the array)")
    add_model_args(p)
    add_read_args(p)
    add_run_args(p, scores=False)
    # the library's output is this command's index table, its embeddings this command's output
    p.set_defaults(func=run, flag_names={"output": "--index", "embeddings": "--output"})


def run(args: argparse.Namespace) -> int:
    from ..prediction.archive import ArchiveJob, run_archive

    index = args.index or (args.output[:-4] if args.output.endswith(".npy") else args.output) + ".csv"
    job = ArchiveJob(**{**job_args(argparse.Namespace(**{**vars(args), "output": index, "embeddings": args.output})),
                        "kind": "index"})
    report = run_archive(job, progress=not args.no_progress, quiet=args.quiet, stream=CLIStream())
    if not args.quiet:
        verb = "complete; nothing to do" if report.already_complete else "written"
        say(f"{report.n_ok} embedding(s) {verb}: {report.embeddings} (index {report.output})"
            + (f"; {len(report.failures)} failed" + (f", e.g. {report.failures[0][0]}: {report.failures[0][1]}"
                                                      if report.already_complete else " (listed above)")
               if report.failures else ""))
    return 1 if report.failures else 0
