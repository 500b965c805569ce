"""``ecgfounder embed``: the 1024-d ECGFounder embeddings of ECG files."""

from __future__ import annotations

import argparse

from ._common import add_model_args, add_read_args, model_from_args, read_options, say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="compute embeddings for ECG files or folders",
                       description="Write the pooled features (1024-d) of each record to a .npy file, with an "
                       "index table (.csv/.parquet/.jsonl) whose rows align with the array's rows.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npy", help="embeddings array (n_records, 1024)")
    p.add_argument("--index", metavar="FILE", help="index table (default: FILE.csv beside the array)")
    add_model_args(p)
    add_read_args(p)
    p.add_argument("--lead", metavar="NAME", help="single-lead models: the lead to use")
    p.add_argument("--fill-missing", action="store_true")
    p.add_argument("--aggregate", choices=("mean", "max", "none"), default="mean")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..output import TableWriter, atomic_save_npy
    from ..prediction import embed

    index = args.index or (args.output[:-4] if args.output.endswith(".npy") else args.output) + ".csv"
    TableWriter.check_path(index)
    model = model_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table, feats = embed(args.paths, model, aggregate=args.aggregate, batch_size=args.batch_size,
                             lead=args.lead, fill_missing=args.fill_missing, device=args.device,
                             read_kwargs=read_options(args))
    for w in caught:  # what the records and the model say; not third-party deprecation notices
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
            say(f"warning: {w.message}")
    atomic_save_npy(args.output, feats)
    with TableWriter(index, list(table.columns)) as wr:
        wr.write(table.to_dict("records"))
    failures = table.attrs.get("failures", [])
    say(f"{len(table)} embedding(s) of {feats.shape[1]} features written to {args.output} (index {index})"
        + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0
