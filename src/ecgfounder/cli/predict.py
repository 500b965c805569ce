"""``ecgfounder predict``: the 150 diagnoses (or a fine-tuned model's outputs) for ECG files."""

from __future__ import annotations

import argparse

import numpy as np

from ._checks import count, probability
from ._common import CLIStream, add_model_args, add_read_args, model_source, read_options, say

__all__ = ["add_parser", "run", "summary_line", "add_run_args", "job_args"]


def add_run_args(p: argparse.ArgumentParser, *, scores: bool = True) -> None:
    """Input, output and scale options shared by ``predict`` and ``embed``."""
    g = p.add_argument_group("input")
    g.add_argument("--lead", metavar="NAME", help="single-lead models: the lead to use (default: I)")
    g.add_argument("--fill-missing", action="store_true", help="zero-fill missing precordial leads instead of refusing")
    g.add_argument("--mode", choices=("published", "zscore", "none"),
                   help="override the weights' preprocessing mode (default: the one they were trained with)")
    g.add_argument("--quality-gate", choices=("warn", "skip", "off"), default="warn",
                   help="signal quality before the model: warn (default: assess every record, write the flags in "
                   "the 'quality' column, predict anyway), skip (a record flagged on a lead the model reads, or as a "
                   "whole, is not predicted and is reported like a failed file), off (no check)")
    g = p.add_argument_group("output")
    g.add_argument("--aggregate", choices=("mean", "max", "none"), default="mean",
                   help="combine the 10-s windows of long records (none: one row per window, with its number, window, and "
                   "its first second in the recording, start_s)")
    if scores:
        g.add_argument("--top", type=count(1), default=3, metavar="K", help="findings shown per record in the summary (default 3)")
        g.add_argument("--threshold", type=probability, default=0.5, metavar="P",
                       help="probability at which a finding is shown (default 0.5)")
        g.add_argument("--quality-detail", action="store_true",
                       help="add a 'quality_leads' column: each lead's quality flags ('I:good;...;V3:flat')")
        g.add_argument("--calibrated", action="store_true",
                       help="calibrated probabilities, from the calibration the weights carry (see 'evaluate "
                       "--calibrate'); refused for weights without one")
    g.add_argument("--batch-size", type=int, default=32, metavar="N", help="windows per forward pass (default 32)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    g.add_argument("-q", "--quiet", action="store_true", help="no summary, no warnings, no progress; errors only")
    g = p.add_argument_group("speed and scale")
    g.add_argument("--precision", choices=("fp32", "bf16", "int8", "auto"), default="auto",
                   help="inference precision (default auto: the fastest path that agrees with fp32 here, measured "
                   "once per machine and model on the first records, cached, shown by 'ecgfounder env'; fp32 is "
                   "exact; int8 is calibrated on the first records of the list)")
    g.add_argument("--backend", choices=("torch", "onnxruntime", "openvino", "auto"), default=None,
                   help="inference engine (default: torch for fp32/bf16, auto for int8/auto; onnxruntime and "
                   "openvino export the model once and cache it; need ecgfounder[onnx] / [openvino])")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes reading and preprocessing while the model runs (default: every core but one "
                   "with a GPU, a quarter of them on a CPU (none on 2 cores), none for fewer than 64 records; "
                   "with none, background threads of this process do it; 0: none)")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command (.csv/.jsonl output): records already "
                   "written are skipped, none is written twice; a finished run is recognised and left as it is")
    g.add_argument("--shard", metavar="I/N",
                   help="process only part I of N (from 0) of the sorted record list; writes OUTPUT with a "
                   ".shard-I-of-N suffix (zero-padded: p.shard-00000-of-00004.csv); join the parts with 'ecgfounder "
                   "merge'. Under torchrun, RANK/WORLD_SIZE set this automatically")
    g.add_argument("--calibration-records", type=count(1), default=None, metavar="N",
                   help="int8 (and auto where it chooses int8): records (the first N of the whole sorted list) used to "
                   "calibrate (default 16)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict labels for ECG files or folders",
        description="Predict per-label probabilities for ECG records. Folders are searched recursively; "
        "a record that cannot be read is reported and skipped; the exit code is 1 if any failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="ECG files or folders: WFDB, EDF/BDF, GE MUSE XML, HL7 "
                   "aECG, DICOM, Philips Sierra XML, SCP-ECG (Healforce too), CardioSoft XML, ISHNE, NumPy, CSV, "
                   "HDF5; also compressed (.gz, .zst, .bz2, .xz) and in .zip archives")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="table to write: .csv, .parquet (needs ecgfounder[parquet]) or .jsonl (atomic; a file that "
                   "exists is replaced, or with --resume continued)")
    p.add_argument("--embeddings", metavar="FILE.npy", help="also save the embeddings, row-aligned with --output")
    add_model_args(p)
    add_read_args(p)
    add_run_args(p)
    p.set_defaults(func=run)


def job_args(args: argparse.Namespace, **overrides) -> dict:
    """The :class:`~ecgfounder.prediction.archive.ArchiveJob` fields the flags give (a flag the
    precision does not use is said so, once: this is called once a run)."""
    n = args.calibration_records
    if n is not None and args.precision in ("fp32", "bf16") and not args.quiet:
        say(f"warning: --calibration-records {n} is not used: --precision {args.precision} needs no calibration (only "
            "int8, or auto where it chooses int8, calibrates on the first records)")
    return dict(
        inputs=tuple(args.paths), model=model_source(args), output=args.output, embeddings=args.embeddings,
        aggregate=args.aggregate, batch_size=args.batch_size, mode=args.mode, lead=args.lead,
        fill_missing=args.fill_missing, device=args.device, precision=args.precision, backend=args.backend,
        workers=args.workers, resume=args.resume, shard=args.shard, calibration_records=16 if n is None else n,
        strict=not args.no_strict, read_kwargs=read_options(args), quality=args.quality_gate, **overrides,
    )


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
    from ..prediction.archive import ArchiveJob, run_archive

    job = ArchiveJob(**job_args(args, quality_detail=args.quality_detail, calibrated=args.calibrated))
    report = run_archive(job, progress=not args.no_progress, quiet=args.quiet, stream=CLIStream())
    if report.already_complete:
        if not args.quiet:
            failed = ""
            if report.failures:  # not listed above: the run that met them listed them
                path, why = report.failures[0]
                why = why if why.startswith(str(path)) else f"{path}: {why}"  # (a reason names its file)
                failed = f"; {len(report.failures)} record(s) failed in it, e.g. {why}"
            say(f"{report.output} is complete ({report.n_ok} record(s){failed}); nothing to do")
        return 1 if report.failures else 0
    if not args.quiet:
        for record, scores in report.summaries:
            print(summary_line(record, report.labels, scores, args.top, args.threshold, report.task))
        if report.n_ok > len(report.summaries):
            print(f"... {report.n_ok - len(report.summaries)} more record(s)" + (f" in {report.output}" if report.output else ""))
        msg = f"{report.n_ok} record(s) predicted"
        if report.output:
            msg += f", written to {report.output}"
        if report.embeddings:
            msg += f"; embeddings in {report.embeddings}"
        if report.failures:
            msg += f"; {len(report.failures)} failed (listed above)"
        say(msg)
    return 1 if report.failures else 0
