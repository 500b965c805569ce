"""The streaming batched forward: prepared records in, :class:`RecordResult` objects out, in order.

Windows of several records share a batch; a long record is split over batches; results come
back in input order, failed records included (with ``error``).  Window scores become one row per
record by :func:`ecgfounder.models.heads.aggregate_windows`, the one aggregation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .._say import to_stderr
from ..errors import SetupError
from ..models.heads import aggregate_windows
from ..signal.preprocess import Prepared, PreprocessContract
from .columns import index_columns, score_columns, table_columns
from .records import RecordResult, expand_inputs, prepared_ahead
from .setup import check_quality_gate

__all__ = ["iter_predict", "resolve_model", "check_labels", "model_contract", "result_rows", "index_rows",
           "index_columns", "feature_rows", "score_columns", "table_columns", "window_starts", "model_calibration", "Runner"]

Runner = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def resolve_model(model: Any, *, strict: bool = True) -> Any:
    """A loaded model from a model object, a known weights name or a checkpoint path."""
    from ..models.net1d import Net1D

    if isinstance(model, Net1D):
        return model
    from ..models.loading import load_model

    return load_model(model, strict=strict)


def check_labels(model: Any) -> tuple[str, ...]:
    """The model's output names; ``ValueError`` when they cannot name its outputs."""
    labels = tuple(model.labels or ())
    if len(labels) != model.num_classes or model.num_classes == 0:
        raise ValueError(
            f"the model's head has {model.num_classes} outputs but the checkpoint carries "
            f"{len(labels)} label names, so its outputs cannot be named. 150-label prediction needs a "
            "150-output ECGFounder head; a fine-tuned model must be saved with its labels "
            "(ecgfounder finetune does this; or set model.labels and use save_model)."
        )
    return labels


def model_contract(model: Any, mode: str | None = None) -> PreprocessContract:
    """The model's preprocessing contract with ``mode`` applied; refuses a model without one."""
    contract = model.description.contract
    if contract is None:
        raise ValueError(f"the model ({model.config.in_channels} input channels) carries no preprocessing contract, "
                         "so its input cannot be prepared; give it one: model.description = "
                         "model.description.replace(contract=PreprocessContract(leads=...)).")
    return contract.with_mode(mode)


def model_calibration(model: Any) -> Any:
    """The calibration the model's weights carry (``predict --calibrated``); refuses a model without one."""
    from ..explain.calibration import calibration_of

    cal = calibration_of(model)
    if cal is None:
        raise ValueError("the weights carry no calibration, so calibrated probabilities cannot be given; fit one "
                         "on a validation split with ecgfounder.calibrate(..., model=model) and save the model, "
                         "or evaluate with calibrate='temperature' and save_calibrated=PATH.")
    names = sorted(cal.unchanged)
    if names:  # (their columns are the model's scores: said, as the report marks them)
        import warnings

        warnings.warn(f"the weights' calibration leaves {len(names)} of {len(cal.labels)} labels as the model scores "
                      f"them (too few positives when it was fitted), so their columns are not calibrated: "
                      f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}", stacklevel=2)
    return cal


@dataclass
class _Pending:
    result: RecordResult
    windows: np.ndarray
    done: int = 0
    scores: list = field(default_factory=list)
    feats: list = field(default_factory=list)


def iter_predict(
    inputs: Iterable[Any],
    model: Any = "12-lead",
    *,
    batch_size: int = 32,
    mode: str | None = None,
    lead: str | None = None,
    fill_missing: bool = False,
    device: Any = "cpu",
    read_kwargs: dict[str, Any] | None = None,
    runner: Runner | None = None,
    prepared: Iterable[tuple[RecordResult, Prepared | None]] | None = None,
    precision: str = "auto",
    backend: str = "auto",
    workers: int | None = 0,
    calibration: np.ndarray | Callable[[], np.ndarray | None] | None = None,
    on_windows: Callable[[int], None] | None = None,
    quality: str = "warn",
    announce: Callable[[str], None] | None = to_stderr,
    on_runner: Callable[[Any], None] | None = None,
    exact_if_small: bool = True,
) -> Iterator[RecordResult]:
    """Stream :class:`RecordResult` objects in input order (failed records included, with ``error``).

    Args:
        inputs: files, directories (recursed), or :class:`~ecgfounder.Recording` objects.
        model: a :class:`~ecgfounder.models.net1d.Net1D`, ``"12-lead"``/``"1-lead"``, or a checkpoint path.
        batch_size: windows per forward pass (windows of several records are batched together).
        mode: override the preprocessing mode of the model's contract (``published``/``zscore``/``none``).
        lead: single-lead models: the lead of the recording to use (default: the trained lead, I).
        fill_missing: zero-fill missing precordial leads instead of refusing the record.
        runner: ``f(windows) -> (scores, features)``; default :func:`ecgfounder.runtime.make_runner`.
        prepared: already prepared ``(RecordResult, Prepared)`` pairs; when given, ``inputs`` is ignored.
        precision, backend: inference path (``fp32``/``bf16``/``int8``/``auto``;
            ``torch``/``onnxruntime``/``openvino``/``auto``), see :func:`ecgfounder.runtime.make_runner`;
            ``auto`` (default) takes the fastest path that agrees with fp32 on this machine, measured
            once on the first batch (or on ``calibration``) and cached; a job of fewer windows than
            ``batch_size`` runs the exact fp32/torch path where no choice is cached yet
            (``exact_if_small``: measuring would outlast it; ``False`` for runs whose parts must
            share one path, e.g. shards).
        workers: processes reading and preprocessing records while the model runs (``0``: in
            this process, in background threads beside the model, at idle priority when it runs on
            the CPU with threads that meet after every operation:
            :func:`~ecgfounder.runtime.overlap.overlap_plan`; ``None``:
            :func:`~ecgfounder.prediction.workers.default_workers` processes, and where that is none
            (a CPU model on fewer than 4 cores) the background threads of ``0``).
        calibration: preprocessed windows ``(n, leads, n_samples)`` that int8 calibrates on and
            ``auto`` measures on, or a function of no arguments giving them, called only where
            they are used (:func:`~ecgfounder.runtime.make_runner`).
        on_windows: called with the number of windows after every forward pass (progress).
        quality: the signal-quality gate (:data:`~ecgfounder.prediction.setup.QUALITY_GATES`):
            ``warn`` (default) assesses every record (``RecordResult.quality``) and predicts it;
            ``skip`` turns a record into a failure when a lead the model reads or the record as a
            whole is flagged; ``off`` does not assess.
        announce: where ``auto`` says the path it measured and chose, in one line (default
            stderr; ``None``: nowhere; a callable: given the line).
        on_runner: called with the runner before the first record is read; an ``auto`` runner's
            ``precision``/``backend`` name the path it took once its first batch ran (what an
            embeddings file records).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    check_quality_gate(quality)
    if prepared is None and workers is None:  # resolved first: none (the CPU's default on 2 cores) still overlaps
        from .workers import default_workers

        workers = default_workers(str(device))
    in_workers = prepared is None and workers != 0
    if in_workers:  # the workers' server starts while the model loads
        from .workers import start_worker_server

        start_worker_server()
    net = resolve_model(model)
    contract = model_contract(net, mode)
    if lead is not None and len(contract.leads) != 1:  # (it would be ignored: every lead is fed)
        raise SetupError(f"lead={lead!r} picks the lead fed to a single-lead model; this model takes "
                         f"{len(contract.leads)} leads ({', '.join(contract.leads)}): leave lead out.", "lead")
    if runner is None:
        from ..runtime import make_runner

        runner = make_runner(net, precision, backend, device, calibration=calibration, batch=batch_size,
                             announce=announce, exact_if_small=exact_if_small)
    if on_runner is not None:
        on_runner(runner)
    prep_kwargs = {"lead": lead, "fill_missing": fill_missing, "quality": quality}
    if in_workers:
        from .workers import prepared_records

        prepared = prepared_records(inputs, contract, workers=workers, read_kwargs=read_kwargs,
                                    prep_kwargs=prep_kwargs, chunk=max(1, min(8, batch_size // 4)),
                                    device=str(device))
    if prepared is None:  # read and prepare in background threads while the model runs
        from ..runtime.overlap import overlap_plan
        from ..runtime.runners import Runner as BuiltRunner

        streams = runner.streams(batch_size) if isinstance(runner, BuiltRunner) else 1  # (a plain function: 1)
        threads, idle = overlap_plan(str(device), streams=streams)
        prepared = prepared_ahead(expand_inputs(inputs), contract, dict(read_kwargs or {}), prep_kwargs,
                                  threads=threads, idle=idle, depth=max(8, 2 * batch_size))
    return _stream(prepared, runner, batch_size, on_windows)


def _stream(prepared: Iterable[tuple[RecordResult, Prepared | None]], run: Runner, batch_size: int,
            on_windows: Callable[[int], None] | None) -> Iterator[RecordResult]:
    queue: list[_Pending] = []  # records in input order, not yet emitted
    chunks: list[tuple[_Pending, int, int]] = []  # (record, start, stop) windows waiting for a batch
    n_waiting = 0

    def flush(all_: bool) -> None:
        nonlocal n_waiting
        while n_waiting >= batch_size or (all_ and n_waiting > 0):
            take, parts = 0, []
            while chunks and take < batch_size:
                pend, a, b = chunks[0]
                n = min(b - a, batch_size - take)
                parts.append((pend, a, a + n))
                take += n
                if a + n == b:
                    chunks.pop(0)
                else:
                    chunks[0] = (pend, a + n, b)
            x = np.concatenate([p.windows[a:b] for p, a, b in parts], axis=0)
            scores, feats = run(x)
            off = 0
            for p, a, b in parts:
                p.scores.append(scores[off : off + b - a])
                p.feats.append(feats[off : off + b - a])
                p.done += b - a
                off += b - a
            n_waiting -= take
            if on_windows is not None:
                on_windows(take)

    def emit() -> Iterator[RecordResult]:
        while queue and (queue[0].result.error is not None or queue[0].done == queue[0].result.n_windows):
            p = queue.pop(0)
            if p.result.error is None:
                p.result.scores = np.concatenate(p.scores, axis=0)
                p.result.features = np.concatenate(p.feats, axis=0)
            p.windows = np.empty((0,))
            yield p.result

    for res, prep in prepared:
        pend = _Pending(res, prep.windows if prep is not None else np.empty((0,)))
        queue.append(pend)
        if prep is not None:
            chunks.append((pend, 0, res.n_windows))
            n_waiting += res.n_windows
            flush(False)
        yield from emit()
    flush(True)
    yield from emit()


def _identity(res: RecordResult) -> dict[str, Any]:
    """The columns of a row that say which recording it is and how it was read (before the scores)."""
    return {"record": res.record, "path": res.path, "member": res.archive_member, "n_windows": res.n_windows,
            "quality": res.quality}


def window_starts(res: RecordResult) -> tuple[float | None, ...]:
    """Each window's first second in the recording (the last window ends with the record, so it may
    overlap the one before); ``None`` each where the caller's own prepared records do not say."""
    return res.starts_s if len(res.starts_s) == res.n_windows else (None,) * res.n_windows


def result_rows(res: RecordResult, labels: Sequence[str], aggregate: str = "mean", *, calibration: Any = None,
                quality_detail: bool = False) -> list[dict[str, Any]]:
    """Table rows of one successful record: one row (aggregated) or one per window.

    ``calibration``: a :class:`~ecgfounder.explain.calibration.Calibration` applied to the
    aggregated probabilities (``predict --calibrated``).  Columns: :func:`score_columns`.
    """
    base = _identity(res)
    if quality_detail:
        base["quality_leads"] = res.quality_leads
    if res.scores is None:
        raise ValueError(f"{res.path}: no scores (the record failed: {res.error})")
    values = aggregate_windows(res.scores, aggregate)
    if calibration is not None:
        from ..explain.calibration import apply_calibration

        values = apply_calibration(values, calibration)
    if aggregate == "none":
        starts = window_starts(res)
        return [dict(base, window=k, start_s=starts[k], **dict(zip(labels, values[k].tolist())))
                for k in range(values.shape[0])]
    return [dict(base, **dict(zip(labels, values.tolist())))]


def index_rows(res: RecordResult, aggregate: str = "mean") -> list[dict[str, Any]]:
    """Rows of an embeddings index table for one successful record (aligned with its feature rows);
    ``quality`` as in a prediction table (``good``, the flags, or empty with the gate off).  A row per
    window has ``window`` (its number) and ``start_s`` (:func:`window_starts`), as in a prediction table."""
    base = _identity(res)
    if aggregate == "none":
        starts = window_starts(res)
        return [dict(base, window=k, start_s=starts[k]) for k in range(res.n_windows)]
    return [base]


def feature_rows(res: RecordResult, aggregate: str = "mean") -> np.ndarray:
    """Float32 ``(rows, num_features)`` embeddings of one successful record."""
    block = aggregate_windows(res.features, aggregate)
    return np.ascontiguousarray(block if aggregate == "none" else block[None], dtype=np.float32)
