"""The archive job: predict (or embed) a whole collection into files, resumably.

:func:`run_archive` is what ``ecgfounder predict`` and ``ecgfounder embed`` call, and what a
service or a batch script can call.  In order:

1. **Checks** (nothing loaded, nothing written): inputs exist, output and embeddings can be
   written (suffix, folder, optional packages), shard, device, inference path, weights name.
2. **Records**: folders expanded and sorted; ``shard=(i, n)`` (or torchrun's ``RANK``/
   ``WORLD_SIZE``) keeps part ``i`` and writes ``OUT.shard-i-of-n``.
3. **Lock** on the output, then **resume**: a finished run with the same settings returns at
   once; an interrupted one continues after its last saved record file; different settings are
   refused, naming what differs.
4. **Model**, int8 calibration (the first records of the whole sorted list, so every shard and
   every resume agree), the streaming forward, rows and embeddings appended as they come.
5. **Finish**: files renamed into place, a completion record written, shard sidecar written, and
   under torchrun rank 0 merges the parts after a barrier.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._fileio import partial_path, write_json
from ..errors import SetupError
from ..models.heads import aggregate_windows, check_aggregate
from . import setup as checks
from .columns import table_columns
from .progress import Progress
from .shards import own_files, parse_shard, part_name, shard, shard_from_env
from .state import OutputLock, digest, done_path, how_named, read_json, refuse_other_settings, state_path, truncate_to
from .state import weights_identity

__all__ = ["ArchiveJob", "ArchiveReport", "RunInterrupted", "run_archive", "SMALL_RUN"]

SMALL_RUN = 64  # below this many records, starting worker processes costs more than it saves


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted; ``str(exc)`` says how much was saved and how to continue."""


@dataclass(frozen=True)
class ArchiveJob:
    """One archive run (see the module documentation).

    ``kind="scores"`` writes one row of label probabilities per record (``predict``);
    ``kind="index"`` writes only the rows of :func:`~.columns.index_columns`, aligned with ``embeddings``
    (``embed``).  ``output=None`` (scores only) keeps nothing on disk but the report.
    """

    inputs: tuple[str, ...]
    model: Any = "12-lead"
    output: str | None = None
    embeddings: str | None = None
    kind: str = "scores"
    aggregate: str = "mean"
    batch_size: int = 32
    mode: str | None = None
    lead: str | None = None
    fill_missing: bool = False
    device: str = "cpu"
    precision: str = "auto"
    backend: str | None = None
    workers: int | None = None
    resume: bool = False
    shard: str | tuple[int, int] | None = None
    calibration_records: int = 16
    strict: bool = True
    read_kwargs: Mapping[str, Any] = field(default_factory=dict)
    summary_limit: int = 25
    quality: str = "warn"
    quality_detail: bool = False
    calibrated: bool = False


@dataclass
class ArchiveReport:
    """What a run did.  ``summaries``: ``(record, aggregated scores)`` of the first records."""

    n_files: int = 0
    n_ok: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    output: str | None = None
    embeddings: str | None = None
    labels: tuple[str, ...] = ()
    task: str = "multilabel"
    summaries: list[tuple[str, np.ndarray]] = field(default_factory=list)
    resumed_from: int = 0
    already_complete: bool = False
    merged: str | None = None
    inference: tuple[str, str] | None = None  # (precision, backend) that ran, 'auto' resolved


def _check(job: ArchiveJob) -> tuple[tuple[int, int] | None, bool]:
    """The checks that need neither torch nor a model; returns (shard, distributed)."""
    check_aggregate(job.aggregate)
    checks.check_quality_gate(job.quality)
    if job.read_kwargs.get("format"):  # a wrong name is the run's mistake, not every file's
        from ..io.detect import canonical_format

        canonical_format(job.read_kwargs["format"])
    if job.calibrated and job.kind != "scores":
        raise SetupError("calibrated probabilities apply to prediction tables, not to embeddings.", "calibrated")
    if job.kind not in ("scores", "index"):
        raise SetupError(f"kind {job.kind!r} is not 'scores' or 'index'.", "kind")
    if job.calibration_records < 1:
        raise SetupError(f"calibration_records must be >= 1; got {job.calibration_records}.", "calibration_records")
    if job.batch_size < 1:
        raise SetupError(f"batch_size must be >= 1; got {job.batch_size}.", "batch_size")
    checks.check_inputs(job.inputs)
    if job.output:
        checks.check_output(job.output)
    if job.embeddings:
        checks.check_output(job.embeddings, argument="embeddings", suffixes=(".npy",))
    if job.kind == "index" and not (job.output and job.embeddings):
        raise SetupError("embedding runs write an index table and an array: give output and embeddings.", "output")
    spec = None
    if job.shard is not None:
        try:
            spec = parse_shard(job.shard) if isinstance(job.shard, str) else tuple(job.shard)
        except ValueError as exc:
            raise SetupError(str(exc), "shard") from None
    env_spec = shard_from_env()
    distributed = spec is None and env_spec is not None
    spec = spec or env_spec
    if (spec or job.resume) and not job.output:
        raise SetupError("shard, resume and torchrun runs write their rows to a file: give output (.csv or .jsonl).",
                         "output")
    if job.resume and str(job.output).lower().endswith(".parquet"):
        raise SetupError(f"resume needs a .csv or .jsonl output (a partial Parquet file cannot be continued); got "
                         f"{job.output}.", "resume")
    if isinstance(job.model, (str, os.PathLike)):
        checks.check_weights(job.model)
    return spec, distributed


def _check_runtime(job: ArchiveJob, distributed: bool) -> tuple[str, str, str]:
    """Device and inference path (these import torch); returns (device, precision, backend)."""
    device = job.device
    if distributed and str(device) == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    device = checks.check_device(device)
    return (device, *checks.check_inference(job.precision, job.backend, device))


class _Run:
    """The mutable part of one run: counters, files, the snapshot at the last record-file boundary."""

    def __init__(self, job: ArchiveJob, files: list, out: str | None, emb: str | None, settings: dict):
        self.job, self.files, self.out, self.emb, self.settings = job, files, out, emb, settings
        self.named = how_named(job.inputs)  # (beside the settings: a resume naming them otherwise is told so)
        self.resumable = bool(out) and not str(out).lower().endswith(".parquet")
        self.state = state_path(out) if out else None
        self.report = ArchiveReport(n_files=len(files), output=out, embeddings=emb)
        self.done = self.emb_rows = self.base_rows = 0
        self.writer: Any = None
        self.emb_fh: Any = None
        self.snap: dict[str, Any] = {}
        self.last_save = 0.0
        self.dim = 0  # embedding width, known once the model is loaded
        self.calibration: Any = None  # the weights' calibration, with calibrated=True
        self.runner: Any = None  # the inference runner (what ran: its precision and backend)
        self.ran: list[str] | None = None  # the path an interrupted run of precision auto took

    @property
    def emb_partial(self) -> Path:
        p = Path(self.emb)
        return p.with_name(f".{p.name}.partial.f32")

    def snapshot(self) -> None:
        """Remember what is on disk now, at a record-file boundary (what a resume may rely on)."""
        w = self.writer
        self.snap = {
            "done": self.done, "n_ok": self.report.n_ok, "emb_rows": self.emb_rows, "dim": self.dim,
            "n_failures": len(self.report.failures),
            "bytes": os.path.getsize(w.tmp) if w is not None and w.tmp.exists() else 0,
            "rows": self.base_rows + (w.n_rows if w is not None else 0),
            "ran": self.ran if self.ran else _resolved(self.runner),  # auto's choice: a resume keeps it
        }

    def save(self, *, force: bool = False) -> None:
        if self.state is None or not self.resumable:
            return
        now = time.monotonic()
        if force or now - self.last_save > 1.0:
            failures = [list(f) for f in self.report.failures[: self.snap["n_failures"]]]
            write_json(self.state, {"version": 2, "settings": self.settings, **self.snap, "failures": failures,
                                    "named": self.named})
            self.last_save = now


def _finished(run: _Run) -> bool:
    """With ``resume``: whether the output is a finished run of these settings (nothing to do; a state
    file beside no partial table: one stopped after it published its rows); a finished run of other
    settings is refused, naming what differs."""
    job, out = run.job, run.out
    left = run.state is not None and run.state.exists()
    if not job.resume or run.state is None or (left and partial_path(out).exists()):
        return False
    done_rec = read_json(done_path(out))
    if done_rec is None:
        return False
    recorded = {k: v for k, v in done_rec.get("settings", {}).items() if k != "path"}  # path: known later
    refuse_other_settings(out, recorded, run.settings, done_rec.get("named"), run.named, finished=True)
    if not (Path(out).exists() and Path(out).stat().st_size == done_rec.get("size")):
        return False  # the output was changed or removed since: compute it again
    if left:
        _drop_partials(run)
    r = run.report
    r.already_complete, r.n_ok = True, int(done_rec.get("n_ok", 0))
    r.failures = [tuple(f) for f in done_rec.get("failures", [])]
    r.resumed_from = len(run.files)
    return True


def _resume(run: _Run, progress: Progress) -> None:
    """With ``resume``: continue after the last saved record file of an interrupted run."""
    job, out = run.job, run.out
    st = read_json(run.state) if run.state is not None else None
    if not job.resume:
        return
    if st is None:
        progress.note(f"nothing to resume for {out}; starting from the beginning")
        return
    refuse_other_settings(out, st.get("settings", {}), run.settings, st.get("named"), run.named, finished=False)
    run.done, run.emb_rows, run.base_rows = int(st["done"]), int(st["emb_rows"]), int(st["rows"])
    run.report.n_ok = int(st["n_ok"])
    run.report.failures = [tuple(f) for f in st["failures"]]
    run.report.resumed_from = run.done
    if "auto" in run.settings["path"] and st.get("ran"):
        run.ran = [str(x) for x in st["ran"]]
    if run.done:
        truncate_to(partial_path(out), int(st["bytes"]))
        if run.emb:
            truncate_to(run.emb_partial, run.emb_rows * int(st["dim"]) * 4)
    progress.note(f"resuming {out}: {run.done} of {len(run.files)} record file(s) already done")


def run_archive(job: ArchiveJob, *, progress: bool = True, quiet: bool = False, stream: Any = None) -> ArchiveReport:
    """Run ``job`` (see the module documentation); returns an :class:`ArchiveReport`.

    ``progress``: a bar on a terminal, periodic lines elsewhere; ``quiet``: no warnings and no
    progress (errors still shown); ``stream``: where messages go (default ``sys.stderr``).
    Raises :class:`~ecgfounder.errors.SetupError` before anything is loaded or written when the
    run cannot start, and :class:`RunInterrupted` (a ``KeyboardInterrupt``) on Ctrl-C after saving.
    """
    with warnings.catch_warnings():
        if quiet:  # (the readers' and the loader's warnings too, in every thread of the run)
            warnings.simplefilter("ignore")
        return _run_archive(job, progress, quiet, stream)


def _run_archive(job: ArchiveJob, progress: bool, quiet: bool, stream: Any) -> ArchiveReport:
    spec, distributed = _check(job)
    from ..io import find_records  # after the checks: the readers import scipy

    all_files = find_records(job.inputs)
    own = own_files(all_files, job.inputs, {"output": job.output, "embeddings": job.embeddings})  # not records
    all_files = [f for f in all_files if f not in own] if own else all_files
    if not all_files:
        raise SetupError(f"no ECG records found in {', '.join(map(str, job.inputs))}; give files or folders holding "
                         "them.", "inputs")
    files = shard(all_files, *spec) if spec else list(all_files)
    out = part_name(job.output, *spec) if spec and job.output else job.output
    emb = part_name(job.embeddings, *spec) if spec and job.embeddings else job.embeddings
    settings = {
        "model": weights_identity(job.model), "strict": job.strict, "kind": job.kind, "aggregate": job.aggregate,
        "precision": job.precision, "backend": job.backend, "mode": job.mode, "lead": job.lead,
        "fill_missing": job.fill_missing, "reading": dict(job.read_kwargs), "embeddings": emb,
        "quality": job.quality, "quality_detail": job.quality_detail, "calibrated": job.calibrated,
        "inputs_sha256": digest(files), "n_files": len(files), "shard": list(spec) if spec else None,
        "columns": table_columns(job.kind, job.aggregate, quality_detail=job.quality_detail)}  # (not other columns)
    run = _Run(job, files, out, emb, settings)
    lock = OutputLock(out).acquire() if out else None
    try:
        bar = Progress(len(files), "embed" if job.kind == "index" else "predict", enabled=progress and not quiet,
                       stream=stream, quiet=quiet)
        with bar:
            if own:
                bar.note(f"left out {len(own)} file(s) this run writes, found among the inputs: "
                         f"{', '.join(map(str, own[:3]))}{' ...' if len(own) > 3 else ''}")
            if _finished(run):  # answered before torch is imported: a requeued finished job costs nothing
                return run.report
            device, precision, backend = _check_runtime(job, distributed)
            # the concrete inference path ('auto' resolved): rows of one output never mix paths
            settings["path"] = [precision, backend]
            _resume(run, bar)
            if run.ran:  # rows of one output never mix paths: on another machine auto might choose another
                precision, backend = checks.check_inference(*run.ran, device)
                bar.note(f"continuing on {precision}/{backend}, the path the interrupted run took")
            bar.resumed(run.done)
            _predict(run, bar, device, precision, backend, quiet, all_files)
        if distributed:
            _distributed_merge(job, run, spec, bar)
        return run.report
    finally:
        if lock is not None:
            lock.release()


def _predict(run: _Run, bar: Progress, device: str, precision: str, backend: str, quiet: bool, all_files: list) -> None:
    from .records import calibration_windows
    from .stream import (check_labels, feature_rows, index_rows, iter_predict, model_calibration, model_contract,
                         resolve_model, result_rows)
    from .tables import TableWriter
    job = run.job
    model = resolve_model(job.model, strict=job.strict)
    labels = check_labels(model) if job.kind == "scores" else ()
    run.calibration = model_calibration(model) if job.calibrated else None
    run.report.labels, run.report.task = labels, model.description.task
    prep = {"lead": job.lead, "fill_missing": job.fill_missing}
    calibration = None
    if precision in ("int8", "auto"):  # int8 calibrates on real windows, auto measures on them: read if used
        if precision == "int8":
            bar.note(f"int8: calibrating on the first {job.calibration_records} records and quantising the model "
                     "(once per model and calibration set; cached)")
        calibration = functools.partial(calibration_windows, all_files, model_contract(model, job.mode),
                                        job.calibration_records, read_kwargs=dict(job.read_kwargs), prep_kwargs=prep)
    todo = run.files[run.done:]
    workers = job.workers if job.workers is not None else (0 if len(todo) < SMALL_RUN else None)
    # the runner is built before any state or partial file exists: a failure to set it up is no interruption
    results = iter_predict(todo, model, batch_size=job.batch_size, mode=job.mode, lead=job.lead,
                           fill_missing=job.fill_missing, device=device, read_kwargs=dict(job.read_kwargs),
                           precision=precision, backend=backend, workers=workers, calibration=calibration,
                           on_windows=bar.add_windows, quality=job.quality, announce=bar.note,
                           on_runner=lambda r: setattr(run, "runner", r), exact_if_small=run.settings["shard"] is None)
    cols = table_columns(job.kind, job.aggregate, labels, quality_detail=job.quality_detail)
    if run.out:
        run.writer = TableWriter(run.out, cols, append=run.done > 0)
    if run.emb:
        run.emb_fh = open(run.emb_partial, "ab" if run.done else "wb")
    run.dim = model.num_features
    run.snapshot()
    run.save(force=True)
    cur, start = None, run.done
    try:
        for res in results:
            if res.input_index != cur:
                if cur is not None:  # every file before this one is done (by position: not every file yields)
                    bar.add_records(start + res.input_index - run.done)
                    run.done = start + res.input_index
                    run.snapshot()
                    run.save()
                cur = res.input_index
            _take(run, res, labels, bar, quiet, result_rows, index_rows, feature_rows)
        if cur is not None:
            bar.add_records(len(run.files) - run.done)
            run.done = len(run.files)
    except BaseException as exc:
        _stop(run, bar, exc)
        raise
    run.snapshot()  # every record done: a run stopped while it finishes keeps them all (a resume only finishes)
    run.save(force=True)
    try:
        _finish(run, model, all_files)
    except BaseException as exc:  # (Ctrl-C while a large embeddings array is copied into place)
        _stop(run, bar, exc)
        raise


def _take(run: _Run, res: Any, labels: tuple, bar: Progress, quiet: bool, result_rows, index_rows, feature_rows) -> None:
    job, report = run.job, run.report
    if res.error is not None:
        report.failures.append((res.path, res.reason))
        bar.write(f"error: {res.reason}")
        return
    if not quiet:
        for note in res.notes:
            bar.write(f"warning: {res.path}: {note}")
    if run.writer is not None:
        run.writer.write(result_rows(res, labels, job.aggregate, calibration=run.calibration,
                                     quality_detail=job.quality_detail)
                         if job.kind == "scores" else index_rows(res, job.aggregate))
    if run.emb_fh is not None:
        block = feature_rows(res, job.aggregate)
        run.emb_fh.write(block.tobytes())
        run.emb_fh.flush()
        run.emb_rows += block.shape[0]
    report.n_ok += 1
    if job.kind == "scores" and len(report.summaries) < job.summary_limit:
        values = aggregate_windows(res.scores, "max" if job.aggregate == "max" else "mean")
        if run.calibration is not None:
            from ..explain.calibration import apply_calibration

            values = apply_calibration(values, run.calibration)
        report.summaries.append((f"{res.record} ({res.archive_member})" if res.archive_member else res.record, values))
    if res.quality and res.quality != "good" and not quiet and job.quality != "off":
        bar.write(f"quality: {res.path}: {res.quality}")


def _stop(run: _Run, bar: Progress, exc: BaseException) -> None:
    """Keep what is saved, say so once, and turn Ctrl-C into :class:`RunInterrupted`."""
    if run.emb_fh is not None:
        run.emb_fh.close()
    if run.writer is not None:
        run.writer.abort(keep=run.resumable)
    if not run.resumable:
        return
    run.save(force=True)
    kept = f"{partial_path(run.out)}{f' and {run.emb_partial}' if run.emb else ''}, with the resume state"
    msg = (f"interrupted while finishing: all {len(run.files)} record file(s) are done, kept in {kept}; continue with "
           "the same command and resume=True: it finishes them without computing them again"
           if run.snap["done"] == len(run.files) else
           f"interrupted after {run.snap['done']} of {len(run.files)} record file(s), saved in {run.out}'s partial "
           "file; continue with the same command and resume=True" if run.snap["done"] else
           f"interrupted before any of the {len(run.files)} record file(s) was done; nothing to keep: run the same "
           "command again")
    if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
        raise RunInterrupted(msg) from None
    bar.write(f"stopped after {run.snap['done']} of {len(run.files)} record file(s); the rows are kept: continue with "
              "the same command and resume=True")


_PART_OWN = ("model", "embeddings", "inputs_sha256", "n_files", "shard")  # settings that differ between parts


def _finish(run: _Run, model: Any, all_files: list) -> None:
    from .embeddings import embeddings_meta, finish_embeddings, runner_path
    from .parts import write_part_meta

    report, requested = run.report, tuple(run.settings["path"])
    report.inference = runner_path(run.runner, requested)
    if run.emb_fh is not None:
        run.emb_fh.close()
        finish_embeddings(run.emb_partial, run.emb, embeddings_meta(model, run, requested))
    rows, size = run.base_rows, None
    if run.writer is not None:  # finished under its temporary name; published after the records below
        size = run.writer.close(publish_now=False).stat().st_size
        rows += run.writer.n_rows
    spec = run.settings["shard"]
    if spec and run.out:
        from ..models.description import model_fingerprint
        # what every part of one run shares (the merge compares it): the settings less those of the
        # part itself, and the weights by their content (the checkpoint's path may differ between nodes)
        shared = {k: v for k, v in run.settings.items() if k not in _PART_OWN}
        shared["weights"] = model_fingerprint(model)
        write_part_meta(run.out, shard=tuple(spec), manifest_sha256=digest(sorted(all_files, key=str)),
                        n_total=len(all_files), n_files=len(run.files), rows=rows, failures=report.failures,
                        embeddings=run.emb, emb_rows=run.emb_rows, settings=shared, size=size,
                        ran=run.ran or _resolved(run.runner))
    if run.out and run.resumable:
        write_json(done_path(run.out), {"version": 1, "settings": run.settings, "n_ok": report.n_ok, "rows": rows,
                                        "failures": [list(f) for f in report.failures], "size": size, "named": run.named})
    if run.writer is not None:  # rows published last, partial files removed after (see _finished)
        run.writer.publish()
    _drop_partials(run)


def _resolved(runner: Any) -> list[str] | None:
    got = [str(getattr(runner, k, "auto")) for k in ("precision", "backend")]
    return None if "auto" in got or "None" in got else got


def _drop_partials(run: _Run) -> None:
    for p in [q for q in (run.state, run.emb_partial if run.emb else None) if q is not None]:
        p.unlink(missing_ok=True)


def _distributed_merge(job: ArchiveJob, run: _Run, spec: tuple[int, int], bar: Progress) -> None:
    """Under torchrun: wait for every rank, then rank 0 joins the parts into the requested output."""
    rank, world = spec
    try:
        from ..train.distributed import barrier, cleanup, setup

        info = setup("cpu", timeout_s=12 * 3600.0)  # gloo: barriers only; the model ran on its own device
        barrier(info)
    except (RuntimeError, ValueError, ImportError) as exc:  # no process group: leave the parts
        bar.note(f"shard {rank}/{world} done ({' '.join(str(exc).split())[:120]}); join the parts with "
                  f"merge_parts (CLI: ecgfounder merge ... -o {job.output})")
        return
    try:
        if info.rank == 0:
            from .parts import merge_parts

            parts = [part_name(job.output, r, world) for r in range(world)]
            merged = merge_parts(parts, job.output, embeddings=job.embeddings)
            run.report.merged = job.output
            bar.note(f"merged {world} parts: {merged['rows']} rows in {job.output}")
        barrier(info)
    finally:
        cleanup(info)
