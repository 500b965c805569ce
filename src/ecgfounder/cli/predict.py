"""``ecgfounder predict``: the 150 diagnoses (or a fine-tuned model's outputs) for ECG files."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._common import add_model_args, add_read_args, model_from_args, progress, read_options, say

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
    add_read_args(p)
    g = p.add_argument_group("input")
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
    g = p.add_argument_group("speed and scale")
    g.add_argument("--precision", choices=("fp32", "bf16", "int8", "auto"), default="fp32",
                   help="inference precision (default fp32; auto: bf16 where it is native (GPUs, AVX512-BF16 CPUs), "
                   "else fp32; int8: quantised, "
                   "calibrated on the first records of the list)")
    g.add_argument("--backend", choices=("torch", "onnxruntime", "auto"), default=None,
                   help="inference engine (default: torch, or auto for --precision int8/auto; auto: onnxruntime "
                   "for int8, which exports the model once and caches it, torch otherwise)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes reading and preprocessing while the model runs (default: half the cores "
                   f"with a GPU, a quarter on a CPU, none for fewer than {SMALL_RUN} records; 0: none)")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command (.csv/.jsonl output): records already "
                   "written are skipped, none is written twice")
    g.add_argument("--shard", metavar="I/N",
                   help="process only part I of N (from 0) of the sorted record list; writes OUTPUT with a "
                   ".shard-I-of-N suffix; join the parts with 'ecgfounder merge'. Under torchrun, RANK/WORLD_SIZE "
                   "set this automatically")
    g.add_argument("--calibration-records", type=int, default=16, metavar="N",
                   help="int8: records (the first N of the whole sorted list) used to calibrate")
    g.add_argument("-q", "--quiet", action="store_true", help="no summary, no warnings; errors only")
    p.set_defaults(func=run)


SMALL_RUN = 64  # below this many records, starting worker processes costs more than it saves


def _workers(requested: int | None, n_records: int) -> int | None:
    """``--workers`` as given, else none for small runs and the pipeline's default otherwise."""
    if requested is not None:
        return requested
    return 0 if n_records < SMALL_RUN else None


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


def _part_name(path: str, i: int, n: int) -> str:
    """``out.csv`` → ``out.shard-00002-of-00004.csv`` (the part written by shard 2 of 4)."""
    p = Path(path)
    suffix = "".join(p.suffixes[-1:])
    return str(p.with_name(f"{p.name[: len(p.name) - len(suffix)]}.shard-{i:05d}-of-{n:05d}{suffix}"))


def _state_path(out: str) -> Path:
    p = Path(out)
    return p.with_name(f".{p.name}.state.json")


def _emb_partial(emb: str) -> Path:
    p = Path(emb)
    return p.with_name(f".{p.name}.partial.f32")


def _digest(items) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(str(it).encode())
        h.update(b"\n")
    return h.hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    from .._fileio import write_json

    write_json(path, obj)


def _truncate(path: Path, size: int) -> None:
    if not path.exists() or path.stat().st_size < size:
        raise ValueError(f"{path}: the partial output is shorter than its state file says ({size} bytes); "
                         "it was changed since the interruption. Rerun without --resume to start over.")
    with open(path, "r+b") as f:
        f.truncate(size)


def _calibration(files, model, args, n: int) -> np.ndarray | None:
    """First windows of the first ``n`` readable records of the whole sorted list (int8 calibration;
    identical in every shard and on resume)."""
    from ..prediction import _prepare_one, _records

    contract = model.contract.with_mode(args.mode)
    wins = []
    read_kwargs = read_options(args)
    for i, (path, rec, err) in enumerate(_records(sorted(files, key=str)[: 4 * n], read_kwargs)):
        res, prep = _prepare_one(i, path, rec, err, contract, {"lead": args.lead, "fill_missing": args.fill_missing})
        if prep is not None:
            wins.append(prep.windows[0])
        if len(wins) >= n:
            break
    return np.stack(wins) if wins else None


def _finish_embeddings(partial: Path, out: str, rows: int, dim: int) -> None:
    """Raw float32 rows → ``.npy`` (copied in blocks: memory stays bounded)."""
    src = np.memmap(partial, dtype=np.float32, mode="r", shape=(rows, dim)) if rows else np.zeros((0, dim), np.float32)
    dst_path = Path(out)
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_path.with_name(f".{dst_path.name}.partial")
    dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
    for a in range(0, rows, 65536):
        dst[a : a + 65536] = src[a : a + 65536]
    dst.flush()
    del dst, src
    os.replace(tmp, dst_path)
    partial.unlink(missing_ok=True)


def _distributed_merge(args: argparse.Namespace, rank: int, world: int, parts: list[str], emb_parts: list[str]) -> None:
    """Under torchrun: wait for every rank, then rank 0 joins the parts into the requested output."""
    try:
        import torch.distributed as dist

        if not dist.is_available() or "MASTER_ADDR" not in os.environ:
            raise RuntimeError("no rendezvous")
        import datetime

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=datetime.timedelta(hours=12))
        dist.barrier()
    except (RuntimeError, ValueError) as exc:  # no process group: leave the parts for 'ecgfounder merge'
        say(f"shard {rank}/{world} done ({exc}); join the parts with: ecgfounder merge ... -o {args.output}")
        return
    try:
        if rank == 0:
            from .merge import merge_parts

            report = merge_parts(parts, args.output, embeddings=args.embeddings)
            say(f"merged {world} parts: {report['rows']} rows in {args.output}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run(args: argparse.Namespace) -> int:
    from ..io import find_records
    from ..output import TableWriter
    from ..pipeline import parse_shard, shard, shard_from_env
    from ..prediction import _check_labels, iter_predict, result_rows

    if args.output:
        TableWriter.check_path(args.output)
    shard_spec = parse_shard(args.shard) if args.shard else None
    env_shard = shard_from_env()
    distributed = shard_spec is None and env_shard is not None
    if distributed:
        shard_spec = env_shard
    if (shard_spec or args.resume) and not args.output:
        raise ValueError("--shard, --resume and torchrun runs write their rows to a file: give -o/--output (.csv or .jsonl).")
    if args.resume and str(args.output).lower().endswith(".parquet"):
        raise ValueError(f"--resume needs a .csv or .jsonl output (a partial Parquet file cannot be continued); got {args.output}.")
    if args.embeddings and not str(args.embeddings).endswith(".npy"):
        raise ValueError(f"--embeddings must name a .npy file; got {args.embeddings}.")
    if args.backend is None:
        args.backend = "auto" if args.precision in ("int8", "auto") else "torch"
    device = args.device
    if distributed and device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    model = model_from_args(args)
    labels = _check_labels(model)
    task = model.task_meta.get("task", "multilabel")
    all_files = find_records(args.paths)
    if not all_files:
        raise ValueError(f"no ECG records found in {args.paths}; give files or folders holding them.")
    files = shard(all_files, *shard_spec) if shard_spec else list(all_files)
    out = _part_name(args.output, *shard_spec) if shard_spec and args.output else args.output
    emb = _part_name(args.embeddings, *shard_spec) if shard_spec and args.embeddings else args.embeddings
    cols = ["record", "path", "n_windows"] + (["window"] if args.aggregate == "none" else []) + list(labels)
    settings = {
        "columns": cols, "aggregate": args.aggregate, "precision": args.precision, "backend": args.backend,
        "mode": args.mode, "lead": args.lead, "fill_missing": args.fill_missing, "embeddings": emb,
        "files_sha256": _digest(files), "n_files": len(files), "shard": list(shard_spec) if shard_spec else None,
    }
    resumable = bool(out) and not str(out).lower().endswith(".parquet")
    state_path = _state_path(out) if out else None
    skip, emb_rows, n_ok, failures, base_rows = 0, 0, 0, [], 0
    if args.resume and state_path.exists():
        st = json.loads(state_path.read_text(encoding="utf-8"))
        if st.get("settings") != settings:
            diff = sorted(k for k in settings if st.get("settings", {}).get(k) != settings[k])
            raise ValueError(f"{out}: the interrupted run differs from this one in {', '.join(diff)}; repeat the "
                             "same command with --resume, or rerun without --resume to start over.")
        skip, emb_rows, n_ok, base_rows = int(st["done"]), int(st["emb_rows"]), int(st["n_ok"]), int(st["rows"])
        failures = [tuple(f) for f in st["failures"]]
        writer_tmp = Path(out).with_name(f".{Path(out).name}.partial")
        if skip:
            _truncate(writer_tmp, int(st["bytes"]))
            if emb:
                _truncate(_emb_partial(emb), emb_rows * model.num_features * 4)
        say(f"resuming {out}: {skip} of {len(files)} record file(s) already done")
    elif args.resume:
        say(f"nothing to resume for {out}; starting from the beginning")
    writer = TableWriter(out, cols, append=skip > 0) if out else None
    emb_fh = open(_emb_partial(emb), "ab" if skip else "wb") if emb else None
    todo = files[skip:]
    calibration = None
    if args.precision == "int8":
        calibration = _calibration(all_files, model, args, args.calibration_records)
    limit = 25
    lines: list[str] = []
    n_lines = 0
    show_bar = not args.no_progress and not args.quiet and sys.stderr.isatty()
    read_kwargs = read_options(args)

    done = skip
    last_save = 0.0

    def save_state(complete: bool = False) -> None:
        if state_path is None or not resumable:
            return
        _write_json(state_path, {
            "version": 1, "settings": settings, "done": done, "complete": complete,
            "bytes": os.path.getsize(writer.tmp) if writer is not None and writer.tmp.exists() else 0,
            "emb_rows": emb_rows, "n_ok": n_ok, "failures": [list(f) for f in failures],
            "rows": base_rows + (writer.n_rows if writer is not None else 0),
        })

    cur_path = None
    try:
        save_state()
        with progress(len(files), "predict", show_bar) as bar:
            bar.update(skip)
            for res in iter_predict(
                todo, model, batch_size=args.batch_size, mode=args.mode, lead=args.lead,
                fill_missing=args.fill_missing, device=device, read_kwargs=read_kwargs,
                precision=args.precision, backend=args.backend, workers=_workers(args.workers, len(todo)),
                calibration=calibration,
            ):
                if res.path != cur_path:
                    if cur_path is not None:
                        done += 1
                        bar.update(1)
                        now = time.monotonic()
                        if now - last_save > 1.0:
                            save_state()
                            last_save = now
                    cur_path = res.path
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
                if emb_fh is not None:
                    f = res.features
                    block = f if args.aggregate == "none" else (f.mean(0) if args.aggregate == "mean" else f.max(0))[None]
                    emb_fh.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())
                    emb_fh.flush()
                    emb_rows += block.shape[0]
                n_ok += 1
                if not args.quiet:
                    n_lines += 1
                    if len(lines) < limit:
                        agg = res.scores.mean(0) if args.aggregate != "max" else res.scores.max(0)
                        lines.append(summary_line(res.record, labels, agg, args.top, args.threshold, task))
            if cur_path is not None:
                done += 1
                bar.update(1)
    except BaseException:
        if emb_fh is not None:
            emb_fh.close()
        if writer is not None:
            writer.abort(keep=resumable)
        if resumable:
            say(f"interrupted after {done} of {len(files)} record file(s); continue with the same command and --resume")
        raise
    if emb_fh is not None:
        emb_fh.close()
        _finish_embeddings(_emb_partial(emb), emb, emb_rows, model.num_features)
    if writer is not None:
        writer.close()
    if shard_spec and out:
        from .merge import write_part_meta

        write_part_meta(out, shard=shard_spec, manifest_sha256=_digest(sorted(all_files, key=str)),
                        n_total=len(all_files), n_files=len(files), rows=base_rows + writer.n_rows,
                        failures=failures, embeddings=emb, emb_rows=emb_rows)
    if state_path is not None:
        state_path.unlink(missing_ok=True)
    if not args.quiet:
        for line in lines:
            print(line)
        if n_lines > limit:
            print(f"... {n_lines - limit} more record(s)" + (f" in {out}" if out else ""))
    msg = f"{n_ok} record(s) predicted"
    if out:
        msg += f", written to {out}"
    if emb:
        msg += f"; embeddings in {emb}"
    if failures:
        msg += f"; {len(failures)} failed:"
    say(msg)
    shown = 10  # the reasons were printed as they happened; repeat the first few at the end
    for _, reason in failures[:shown]:
        say(f"  {reason}")
    if len(failures) > shown:
        say(f"  ... and {len(failures) - shown} more (reported above)")
    if distributed:
        rank, world = shard_spec
        parts = [_part_name(args.output, r, world) for r in range(world)]
        _distributed_merge(args, rank, world, parts, [])
    return 1 if failures else 0
