"""``ecgfounder predict``: the 150 diagnoses (or a fine-tuned model's outputs) for ECG files."""

from __future__ import annotations

import argparse
import sys
import numpy as np

from ._common import add_model_args, model_from_args, progress, say

__all__ = ["add_parser", "run", "summary_line"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict labels for ECG files or folders",
        description="Predict per-label probabilities for ECG records. Folders are searched recursively; "
        "a record that cannot be read is reported and skipped; the exit code is 1 if any failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="ECG files or folders: WFDB, EDF/BDF, GE MUSE XML, HL7 aECG, DICOM, Philips Sierra XML, SCP-ECG, NumPy, CSV, HDF5")
    p.add_argument("-o", "--output", metavar="FILE", help="table to write: .csv, .parquet or .jsonl (atomic)")
    p.add_argument("--embeddings", metavar="FILE.npy", help="also save the embeddings, row-aligned with --output")
    add_model_args(p)
    g = p.add_argument_group("input")
    g.add_argument("--format", dest="read_format", metavar="NAME", help="force the file format (default: detected)")
    g.add_argument("--lead", metavar="NAME", help="single-lead models: the lead to use (default: I)")
    g.add_argument("--fill-missing", action="store_true", help="zero-fill missing precordial leads instead of refusing")
    g.add_argument("--mode", choices=("published", "zscore", "none"),
                   help="override the weights' preprocessing mode (default: the one they were trained with)")
    g = p.add_argument_group("output")
    g.add_argument("--aggregate", choices=("mean", "max", "none"), default="mean",
                   help="combine the 10-s windows of long records (none: one row per window)")
    g.add_argument("--top", type=int, default=3, metavar="K", help="findings shown per record in the summary")
    g.add_argument("--threshold", type=float, default=0.5, help="probability at which a finding is shown")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("-q", "--quiet", action="store_true", help="no summary, no warnings; errors only")
    p.set_defaults(func=run)


def summary_line(record: str, labels, scores: np.ndarray, top: int, threshold: float, task: str) -> str:
    """One readable line: the record and its top findings."""
    if task == "regression":
        vals = ", ".join(f"{lab} {v:.3g}" for lab, v in zip(labels, scores))
        return f"{record}: {vals}"
    order = np.argsort(-scores)
    shown = [i for i in order[:top] if scores[i] >= threshold] or [order[0]]
    parts = [f"{labels[i]} {scores[i]:.2f}" for i in shown]
    suffix = "" if scores[shown[0]] >= threshold else f" (nothing ≥ {threshold:g})"
    return f"{record}: " + "; ".join(parts) + suffix


def run(args: argparse.Namespace) -> int:
    from ..io import find_records
    from ..output import TableWriter, atomic_save_npy
    from ..predict import _check_labels, iter_predict, result_rows

    if args.output:
        TableWriter.check_path(args.output)
    model = model_from_args(args)
    labels = _check_labels(model)
    task = model.task_meta.get("task", "multilabel")
    files = find_records(args.paths)
    if not files:
        raise ValueError(f"no ECG records found in {args.paths}; give files or folders holding them.")
    cols = ["record", "path", "n_windows"] + (["window"] if args.aggregate == "none" else []) + list(labels)
    writer = TableWriter(args.output, cols) if args.output else None
    feats: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    n_ok = 0
    lines: list[str] = []
    show_bar = not args.no_progress and not args.quiet and sys.stderr.isatty()
    read_kwargs = {"format": args.read_format} if args.read_format else {}
    try:
        with progress(len(files), "predict", show_bar) as bar:
            for res in iter_predict(
                files, model, batch_size=args.batch_size, mode=args.mode, lead=args.lead,
                fill_missing=args.fill_missing, device=args.device, read_kwargs=read_kwargs,
            ):
                bar.update(1)
                if res.error is not None:
                    reason = res.error if res.error.startswith(res.path) else f"{res.path}: {res.error}"
                    failures.append((res.path, reason))
                    bar.write(f"error: {reason}", file=sys.stderr)
                    continue
                if not args.quiet:
                    for note in res.notes:
                        bar.write(f"warning: {res.path}: {note}", file=sys.stderr)
                rows = result_rows(res, labels, args.aggregate)
                if writer is not None:
                    writer.write(rows)
                if args.embeddings:
                    f = res.features
                    feats.extend(list(f) if args.aggregate == "none" else [f.mean(0) if args.aggregate == "mean" else f.max(0)])
                n_ok += 1
                if not args.quiet:
                    agg = res.scores.mean(0) if args.aggregate != "max" else res.scores.max(0)
                    lines.append(summary_line(res.record, labels, agg, args.top, args.threshold, task))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
    if args.embeddings:
        arr = np.stack(feats).astype(np.float32) if feats else np.zeros((0, model.num_features), np.float32)
        atomic_save_npy(args.embeddings, arr)
    if not args.quiet:
        limit = 25
        for line in lines[:limit]:
            print(line)
        if len(lines) > limit:
            print(f"... {len(lines) - limit} more record(s)" + (f" in {args.output}" if args.output else ""))
    done = f"{n_ok} record(s) predicted"
    if args.output:
        done += f", written to {args.output}"
    if args.embeddings:
        done += f"; embeddings in {args.embeddings}"
    if failures:
        done += f"; {len(failures)} failed:"
    say(done)
    for _, reason in failures:
        say(f"  {reason}")
    return 1 if failures else 0
