"""Prediction: records in, a table of per-label probabilities (or embeddings) out.

Readers, the preprocessing contract of the weights, and the model are composed here; nothing
else.  Records are streamed: windows of several records share a batch, results come back in
input order, and a record that cannot be read or prepared is reported without stopping the run.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from .models.heads import AGGREGATES, aggregate_windows, scores_from_logits
from .models.net1d import Net1D
from .recording import Recording
from .signal.preprocess import Prepared, PreprocessContract, preprocess_recording

__all__ = ["predict", "embed", "iter_predict", "RecordResult", "resolve_model", "AGGREGATES", "outputs_to_scores"]


@dataclass
class RecordResult:
    """What prediction produced for one record (``error`` set when it failed)."""

    index: int
    record: str
    path: str
    n_windows: int = 0
    duration_s: float = float("nan")
    scores: np.ndarray | None = None  # (n_windows, n_outputs): probabilities / regression values
    features: np.ndarray | None = None  # (n_windows, n_features)
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Pending:
    result: RecordResult
    windows: np.ndarray
    done: int = 0
    scores: list = field(default_factory=list)
    feats: list = field(default_factory=list)


def resolve_model(model: "Net1D | str | os.PathLike", *, strict: bool = True) -> Net1D:
    """A loaded model from a model object, a known weights name or a checkpoint path."""
    if isinstance(model, Net1D):
        return model
    from .models.loading import load_model

    return load_model(model, strict=strict)


def _check_labels(model: Net1D) -> tuple[str, ...]:
    labels = tuple(model.labels or ())
    if len(labels) != model.num_classes or model.num_classes == 0:
        raise ValueError(
            f"the model's head has {model.num_classes} outputs but the checkpoint carries "
            f"{len(labels)} label names, so its outputs cannot be named. 150-label prediction needs a "
            "150-output ECGFounder head; a fine-tuned model must be saved with its labels "
            "(ecgfounder finetune does this; or set model.labels and use save_model)."
        )
    return labels


# Kept for callers of the former name (train/tasks.py); the one home is models.heads.
outputs_to_scores = scores_from_logits


def _expand_inputs(inputs: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """(display path, path-or-Recording) for every input; directories are expanded."""
    from .io import find_records

    if isinstance(inputs, (str, os.PathLike, Recording)):
        inputs = [inputs]
    for item in inputs:
        if isinstance(item, Recording):
            yield str(item.meta.get("source") or item.id or "recording"), item
        else:
            for p in find_records([item]):
                yield str(p), p


def _records(inputs: Iterable[Any], read_kwargs: dict[str, Any]) -> Iterator[tuple[str, Recording | None, str | None]]:
    """(path, recording or None, error or None), one per recording, in input order."""
    from .io import iter_read

    for shown, item in _expand_inputs(inputs):
        if isinstance(item, Recording):
            yield shown, item, None
            continue
        try:
            for rec in iter_read(item, **read_kwargs):
                yield shown, rec, None
        except (ValueError, OSError) as exc:
            yield shown, None, " ".join(str(exc).split())


def _record_name(path: str, rec: Recording | None) -> str:
    if rec is not None and rec.id:
        return rec.id
    p = Path(path)
    return p.stem if p.suffix else p.name


def _prepare_one(
    index: int, path: str, rec: Recording | None, err: str | None, contract: PreprocessContract, prep_kwargs: dict
) -> tuple[RecordResult, Prepared | None]:
    res = RecordResult(index=index, record=_record_name(path, rec), path=path)
    if err is not None:
        res.error = err
        return res, None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prep = preprocess_recording(rec, contract, source=path, warn=False, **prep_kwargs)
    except (ValueError, OSError) as exc:
        res.error = " ".join(str(exc).split())
        return res, None
    notes = [str(w.message).removeprefix(f"{path}: ") for w in caught] + list(prep.notes)
    res.notes = tuple(notes)
    res.n_windows = prep.windows.shape[0]
    res.duration_s = prep.duration_s
    return res, prep


Runner = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def _torch_runner(model: Net1D, device: str | torch.device) -> Runner:
    dev = torch.device(device)
    model.to(dev).eval()
    task_meta = dict(model.task_meta or {})

    @torch.inference_mode()
    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = torch.from_numpy(x).to(dev)
        feats = model.forward_features(t)
        scores = scores_from_logits(model.forward_head(feats).float(), task_meta)
        return scores.cpu().numpy(), feats.float().cpu().numpy()

    return run


def iter_predict(
    inputs: Iterable[Any],
    model: "Net1D | str | os.PathLike" = "12-lead",
    *,
    batch_size: int = 32,
    mode: str | None = None,
    lead: str | None = None,
    fill_missing: bool = False,
    device: str | torch.device = "cpu",
    read_kwargs: dict[str, Any] | None = None,
    runner: Runner | None = None,
    prepared: Iterable[tuple[RecordResult, Prepared | None]] | None = None,
    precision: str = "fp32",
    backend: str = "torch",
    workers: int | None = 0,
    calibration: np.ndarray | None = None,
) -> Iterator[RecordResult]:
    """Stream :class:`RecordResult` objects in input order (failed records included, with ``error``).

    Args:
        inputs: files, directories (recursed), or :class:`~ecgfounder.Recording` objects.
        model: a :class:`Net1D`, ``"12-lead"``/``"1-lead"``, or a checkpoint path.
        batch_size: windows per forward pass (windows of several records are batched together).
        mode: override the preprocessing mode of the model's contract (``published``/``zscore``/``none``).
        lead: single-lead models: the lead of the recording to use (default: the trained lead, I).
        fill_missing: zero-fill missing precordial leads instead of refusing the record.
        runner: ``f(windows) -> (scores, features)``; default: eager torch on ``device``.
        prepared: an iterable of already prepared ``(RecordResult, Prepared)`` pairs (used by the
            parallel pipeline); when given, ``inputs`` is ignored.
        precision, backend: inference path (``fp32``/``bf16``/``int8``/``auto``;
            ``torch``/``onnxruntime``/``auto``), see :func:`ecgfounder.runtime.make_runner`.
        workers: processes reading and preprocessing records while the model runs (``0``: in
            this process; ``None``: half the cores); results are the same and in the same order.
        calibration: int8 only: preprocessed windows ``(n, leads, n_samples)`` to calibrate on.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    net = resolve_model(model)
    if net.contract is None:
        raise ValueError(f"the model (input channels {net.config.in_channels}) carries no preprocessing contract, so "
                         "its input cannot be prepared; set model.description with a PreprocessContract.")
    contract = net.contract.with_mode(mode)
    if runner is not None:
        run = runner
    elif (precision, backend) == ("fp32", "torch"):
        run = _torch_runner(net, device)
    else:
        from .runtime import make_runner

        run = make_runner(net, precision, backend, device, calibration=calibration)
    prep_kwargs = {"lead": lead, "fill_missing": fill_missing}
    if prepared is None and workers != 0:
        from .pipeline import prepared_records

        prepared = prepared_records(inputs, contract, workers=workers, read_kwargs=read_kwargs,
                                    prep_kwargs=prep_kwargs, chunk=max(1, min(8, batch_size // 4)),
                                    device=str(device))
    if prepared is None:
        prepared = (
            _prepare_one(i, path, rec, err, contract, prep_kwargs)
            for i, (path, rec, err) in enumerate(_records(inputs, read_kwargs or {}))
        )

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


def result_rows(res: RecordResult, labels: Sequence[str], aggregate: str = "mean", window_s: float = 10.0) -> list[dict[str, Any]]:
    """Table rows of one successful record: one row (aggregated) or one per window."""
    base = {"record": res.record, "path": res.path, "n_windows": res.n_windows}
    if res.scores is None:
        raise ValueError(f"{res.path}: no scores (the record failed: {res.error})")
    if aggregate == "none":
        rows = []
        n = res.scores.shape[0]
        for k in range(n):
            row = dict(base, window=k)
            row.update(zip(labels, res.scores[k].tolist()))
            rows.append(row)
        return rows
    row = dict(base)
    row.update(zip(labels, aggregate_windows(res.scores, aggregate).tolist()))
    return [row]


def predict(
    inputs: Iterable[Any],
    model: "Net1D | str | os.PathLike" = "12-lead",
    *,
    aggregate: str = "mean",
    batch_size: int = 32,
    on_error: str = "warn",
    **kwargs: Any,
) -> pd.DataFrame:
    """Per-label scores for each record, as a DataFrame.

    Columns: ``record``, ``path``, ``n_windows`` (10-s windows used), then one column per model
    label (150 for ECGFounder) holding the probability, averaged over windows (``aggregate="mean"``,
    or ``"max"``; ``"none"`` gives one row per window with a ``window`` column).
    Records that fail are skipped with a warning (``on_error="warn"``) or raise (``"raise"``); they
    are listed in ``df.attrs["failures"]`` as ``(path, reason)`` pairs.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {AGGREGATES}.")
    if on_error not in ("warn", "raise"):
        raise ValueError(f"on_error must be 'warn' or 'raise'; got {on_error!r}.")
    net = resolve_model(model)
    labels = _check_labels(net)
    rows: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    for res in iter_predict(inputs, net, batch_size=batch_size, **kwargs):
        if res.error is not None:
            if on_error == "raise":
                raise ValueError(res.error if res.error.startswith(res.path) else f"{res.path}: {res.error}")
            warnings.warn(res.error if res.error.startswith(res.path) else f"{res.path}: {res.error}", stacklevel=2)
            failures.append((res.path, res.error))
            continue
        for note in res.notes:
            warnings.warn(f"{res.path}: {note}", stacklevel=2)
        rows.extend(result_rows(res, labels, aggregate))
    cols = ["record", "path", "n_windows"] + (["window"] if aggregate == "none" else []) + list(labels)
    df = pd.DataFrame(rows, columns=cols)
    df.attrs["failures"] = failures
    return df


def embed(
    inputs: Iterable[Any],
    model: "Net1D | str | os.PathLike" = "12-lead",
    *,
    aggregate: str = "mean",
    batch_size: int = 32,
    **kwargs: Any,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Embeddings (the ``num_features``-d pooled activations, 1024 for ECGFounder).

    Returns ``(table, features)``: ``table`` has ``record``, ``path``, ``n_windows`` (and
    ``window`` when ``aggregate="none"``); ``features[i]`` belongs to ``table.iloc[i]``, float32.
    Failed records are skipped with a warning and listed in ``table.attrs["failures"]``.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; choose one of {AGGREGATES}.")
    net = resolve_model(model)
    rows: list[dict[str, Any]] = []
    feats: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    for res in iter_predict(inputs, net, batch_size=batch_size, **kwargs):
        if res.error is not None:
            warnings.warn(f"{res.path}: {res.error}", stacklevel=2)
            failures.append((res.path, res.error))
            continue
        base = {"record": res.record, "path": res.path, "n_windows": res.n_windows}
        if aggregate == "none":
            for k in range(res.n_windows):
                rows.append(dict(base, window=k))
                feats.append(res.features[k])
        else:
            rows.append(base)
            feats.append(aggregate_windows(res.features, aggregate))
    table = pd.DataFrame(rows, columns=["record", "path", "n_windows"] + (["window"] if aggregate == "none" else []))
    table.attrs["failures"] = failures
    arr = np.stack(feats).astype(np.float32) if feats else np.zeros((0, net.num_features), np.float32)
    return table, arr
