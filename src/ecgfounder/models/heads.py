"""What users read from a model's outputs: logits → scores, and windows → one row per record.

These two operations have one home each; prediction, evaluation, training and every runtime
back-end call them.

* :func:`scores_from_logits`: sigmoid (multi-label, binary), softmax (multi-class) or the
  de-standardised value (regression, ``target_mean``/``target_std`` of ``task_meta``).
* :func:`aggregate_windows`: the scores (or features) of a record's 10-s windows combined into
  one vector: ``"mean"`` (default) or ``"max"``; ``"none"`` keeps one row per window.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["TASKS", "AGGREGATES", "scores_from_logits", "aggregate_windows", "check_aggregate"]

TASKS = ("multilabel", "binary", "multiclass", "regression")
AGGREGATES = ("mean", "max", "none")


def scores_from_logits(logits: Any, task_meta: Mapping[str, Any] | None = None) -> Any:
    """Logits ``(n, n_out)`` → scores of the same shape and kind (torch tensor in, tensor out;
    numpy in, float32 numpy out).

    ``task_meta["task"]`` (default ``"multilabel"``) decides: sigmoid for ``multilabel``/
    ``binary``, softmax over the last axis for ``multiclass``, ``logits * target_std +
    target_mean`` for ``regression``.
    """
    import torch

    meta = dict(task_meta or {})
    task = meta.get("task", "multilabel")
    as_numpy = not isinstance(logits, torch.Tensor)
    t = torch.as_tensor(np.asarray(logits) if as_numpy else logits)
    if task in ("multilabel", "binary"):
        out = torch.sigmoid(t)
    elif task == "multiclass":
        out = torch.softmax(t, dim=-1)
    elif task == "regression":
        mean = torch.as_tensor(meta.get("target_mean", 0.0), dtype=t.dtype, device=t.device)
        std = torch.as_tensor(meta.get("target_std", 1.0), dtype=t.dtype, device=t.device)
        out = t * std + mean
    else:
        raise ValueError(f"unknown task {task!r} in task_meta; expected one of {', '.join(TASKS)}.")
    if as_numpy:
        return out.detach().cpu().float().numpy()
    return out


def check_aggregate(how: str) -> str:
    """``how`` if it is one of :data:`AGGREGATES`; else a ``ValueError`` naming the choices."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregate {how!r}; choose one of {', '.join(AGGREGATES)}.")
    return how


def aggregate_windows(values: np.ndarray, how: str = "mean") -> np.ndarray:
    """Combine the windows of one record: ``values`` ``(n_windows, k)`` → ``(k,)`` for ``"mean"``
    and ``"max"``; ``"none"`` returns ``values`` unchanged (one row per window)."""
    check_aggregate(how)
    v = np.asarray(values)
    if how == "none":
        return v
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"aggregate_windows needs (n_windows >= 1, k) values; got shape {v.shape}.")
    return v.mean(axis=0) if how == "mean" else v.max(axis=0)
