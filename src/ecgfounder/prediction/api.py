"""``predict`` and ``embed``: records in, a DataFrame of per-label probabilities (or embeddings) out."""

from __future__ import annotations

import warnings
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..models.heads import check_aggregate
from .records import record_error
from .stream import (check_labels, feature_rows, index_columns, index_rows, iter_predict, model_calibration,
                     resolve_model, result_rows, score_columns)

__all__ = ["predict", "embed"]


def predict(
    inputs: Iterable[Any],
    model: Any = "12-lead",
    *,
    aggregate: str = "mean",
    batch_size: int = 32,
    on_error: str = "warn",
    calibrated: bool = False,
    quality_detail: bool = False,
    **kwargs: Any,
) -> pd.DataFrame:
    """Per-label scores for each record, as a DataFrame.

    Columns: ``record``, ``path``, ``member`` (a file inside a zip: its path there),
    ``n_windows`` (10-s windows used), ``quality`` (``good`` or the signal-quality flags,
    :func:`ecgfounder.quality`; ``quality_leads`` per lead with ``quality_detail=True``), then one
    column per model label (150 for ECGFounder) holding the probability, averaged over windows
    (``aggregate="mean"``, or ``"max"``; ``"none"`` gives one row per window with ``window`` and
    ``start_s`` columns).  ``calibrated=True`` gives the calibrated
    probabilities of the calibration the weights carry (refused when they carry none).
    ``quality="skip"`` leaves records unpredicted (listed as failures) whose flags concern what the
    model reads: a lead it reads, or the record as a whole (a flat V3 does not stop a lead-I model).
    Records that fail are skipped with a warning (``on_error="warn"``) or raise (``"raise"``); they
    are listed in ``df.attrs["failures"]`` as ``(path, reason)`` pairs.  Other keyword arguments
    go to :func:`ecgfounder.prediction.iter_predict` (``mode``, ``lead``, ``device``, ``precision`` ...).
    """
    check_aggregate(aggregate)
    if on_error not in ("warn", "raise"):
        raise ValueError(f"on_error must be 'warn' or 'raise'; got {on_error!r}.")
    net = resolve_model(model)
    labels = check_labels(net)
    cal = model_calibration(net) if calibrated else None
    rows: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    for res in iter_predict(inputs, net, batch_size=batch_size, **kwargs):
        if res.error is not None:
            if on_error == "raise":
                raise record_error(res)
            warnings.warn(res.reason, stacklevel=2)
            failures.append((res.path, res.error))
            continue
        for note in res.notes:
            warnings.warn(f"{res.path}: {note}", stacklevel=2)
        rows.extend(result_rows(res, labels, aggregate, calibration=cal, quality_detail=quality_detail))
    df = pd.DataFrame(rows, columns=score_columns(labels, aggregate, quality_detail=quality_detail))
    df.attrs["failures"] = failures
    return df


def embed(
    inputs: Iterable[Any],
    model: Any = "12-lead",
    *,
    aggregate: str = "mean",
    batch_size: int = 32,
    **kwargs: Any,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Embeddings (the ``num_features``-d pooled activations before the head, 1024 for ECGFounder).

    Returns ``(table, features)``: ``table`` has ``record``, ``path``, ``member``, ``n_windows``, ``quality``
    (and ``window`` with ``start_s``, the window's first second in the recording, when
    ``aggregate="none"``); ``features[i]`` belongs to ``table.iloc[i]``,
    float32.  A record longer than 10 s is cut into 10-s windows, each embedded; its row is their
    mean (``aggregate="mean"``), elementwise maximum (``"max"``), or one row per window
    (``"none"``).  Failed records are skipped with a warning and listed in
    ``table.attrs["failures"]``.  ``table.attrs["inference"]`` is the ``(precision, backend)``
    that ran: only ``fp32`` is exact (equal to ``model.forward_features`` to ~1e-6); the default
    ``precision="auto"`` may take a faster approximate path (said in a warning), ``precision="fp32"``
    keeps to the exact one.  Everything is held in memory: for large collections use
    :func:`~ecgfounder.prediction.run_archive` (``ecgfounder embed``), which writes as it goes.
    Other keyword arguments go to :func:`ecgfounder.prediction.iter_predict`.
    """
    from .embeddings import inference_note, runner_path

    check_aggregate(aggregate)
    net = resolve_model(model)
    rows: list[dict[str, Any]] = []
    feats: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    runners: list[Any] = []
    for res in iter_predict(inputs, net, batch_size=batch_size, on_runner=runners.append, **kwargs):
        if res.error is not None:
            warnings.warn(res.reason, stacklevel=2)
            failures.append((res.path, res.error))
            continue
        rows.extend(index_rows(res, aggregate))
        feats.append(feature_rows(res, aggregate))
    table = pd.DataFrame(rows, columns=index_columns(aggregate))
    table.attrs["failures"] = failures
    requested = (kwargs.get("precision", "auto"), kwargs.get("backend", "auto"))
    table.attrs["inference"] = path = runner_path(runners[0] if runners else None, requested)
    note = inference_note(*path) if feats and requested[0] == "auto" else None
    if note:  # (a precision asked for by name is the caller's choice, known to them)
        warnings.warn(note, stacklevel=2)
    arr = np.concatenate(feats) if feats else np.zeros((0, net.num_features), np.float32)  # (float32 rows)
    return table, arr
