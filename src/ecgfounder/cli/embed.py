"""``ecgfounder embed``: the 1024-d ECGFounder embeddings of ECG files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CLIStream, add_model_args, add_read_args, flags, say
from .predict import add_run_args, job_args

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="compute embeddings for ECG files or folders",
                       description="Write the embeddings (the model's pooled features before its head, 1024-d for "
                       "ECGFounder) to FILE.npy, float32 (rows, 1024), with an index table (.csv/.parquet/.jsonl: "
                       "record, path, member, n_windows, quality) whose rows align with the array's and FILE.json describing "
                       "them (weights, preprocessing, lead, inference path). A record longer than 10 s is cut into "
                       "10-s windows, each embedded; its row is their mean (--aggregate mean, the default), their "
                       "elementwise maximum (max), or one row per window (none: the index adds window, its number "
                       "as in predict's per-window rows, and start_s, its first second in the recording; the last "
                       "window ends with the record). Only --precision fp32 is exact; the "
                       "default auto may take a faster path (int8, bf16) whose embeddings are close to fp32's, not "
                       "equal (said at the end, and in FILE.json). Records that fail are reported and have no row; "
                       "the exit code is then 1. Long runs can be resumed (--resume) and sharded (--shard) like "
                       "predict.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="ECG files or folders (the formats of predict)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npy",
                   help="embeddings array, float32 (rows, 1024): a row per record, or per window with --aggregate none "
                   "(a file that exists is replaced, or with --resume continued)")
    p.add_argument("--index", metavar="FILE", help="index table (default: FILE.csv beside the array)")
    add_model_args(p)
    add_read_args(p)
    add_run_args(p, scores=False)
    # the library's output is this command's index table, its embeddings this command's output
    p.set_defaults(func=run, flag_names={"output": "--index", "embeddings": "--output"})


def run(args: argparse.Namespace) -> int:
    from ..prediction.archive import ArchiveJob, run_archive
    from ..prediction.embeddings import inference_note
    from ..prediction.setup import check_output

    check_output(args.output, argument="embeddings", suffixes=(".npy",))  # -o first: the index is named after it
    index = args.index or str(Path(args.output).with_suffix(".csv"))
    job = ArchiveJob(**{**job_args(argparse.Namespace(**{**vars(args), "output": index, "embeddings": args.output})),
                        "kind": "index"})
    report = run_archive(job, progress=not args.no_progress, quiet=args.quiet, stream=CLIStream())
    if not args.quiet:
        verb = "complete; nothing to do" if report.already_complete else "written"
        say(f"{report.n_ok} embedding(s) {verb}: {report.embeddings} (index {report.output})"
            + (f"; {len(report.failures)} failed" + (f", e.g. {report.failures[0][0]}: {report.failures[0][1]}"
                                                      if report.already_complete else " (listed above)")
               if report.failures else ""))
        note = inference_note(*report.inference) if report.inference and report.n_ok else None
        if note:
            say(flags(note))
    return 1 if report.failures else 0
