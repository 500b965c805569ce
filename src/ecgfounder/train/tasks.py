"""Task definitions: targets from manifest columns, the loss, output scores and quick metrics.

=============  ==========================  ==================================  =====================
task           targets                     loss                                scores (``predict``)
=============  ==========================  ==================================  =====================
binary         one 0/1 column              BCE-with-logits (pos_weight)        sigmoid
multilabel     several 0/1 columns         BCE-with-logits per label           sigmoid
multiclass     one column of class names,  cross-entropy (class weights)       softmax
               or one-hot columns
regression     one or more numeric         MSE on z-scored targets             de-standardised
=============  ==========================  ==================================  =====================

Binary and multi-label targets may be missing (NaN: an empty manifest cell), meaning "not
assessed": the entry adds nothing to the loss, to the positive weights or to the metrics.  The
loss of a micro-batch is the mean over its assessed (record, label) entries: :meth:`TaskSpec.loss`
gives each example its summed assessed entries divided by the number of labels, and
:meth:`TaskSpec.weights` the share of its labels assessed, by whose sum (over the micro-batch)
the training loop divides.  Every assessed entry thus weighs the same, as in the plain mean
(which this equals for a complete table); a per-record mean would weigh each label of a record
with few assessed labels more.  The other task types refuse missing targets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..models.heads import scores_from_logits
from .manifest import ManifestError, check_numeric

__all__ = ["TaskSpec", "build_task", "quick_metrics"]


@dataclass(frozen=True)
class TaskSpec:
    """A resolved task.

    Attributes:
        kind: ``binary`` | ``multilabel`` | ``multiclass`` | ``regression``.
        labels: output names, one per model output.
        target_mean, target_std: regression standardisation (per output; training split).
        pos_weight: per-label positive weight (binary/multilabel, ``balanced``) or None.
        class_weight: per-class weight (multiclass, ``balanced``) or None.
    """

    kind: str
    labels: tuple[str, ...]
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    pos_weight: tuple[float, ...] | None = None
    class_weight: tuple[float, ...] | None = None

    @property
    def n_outputs(self) -> int:
        return len(self.labels)

    def task_meta(self) -> dict[str, Any]:
        """What the saved model carries for :func:`ecgfounder.predict` (``model.task_meta``)."""
        meta: dict[str, Any] = {"task": self.kind}
        if self.kind == "regression":
            mean = list(self.target_mean or (0.0,) * self.n_outputs)
            std = list(self.target_std or (1.0,) * self.n_outputs)
            meta["target_mean"] = mean[0] if len(mean) == 1 else mean
            meta["target_std"] = std[0] if len(std) == 1 else std
        return meta

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskSpec":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    # ---------------------------------------------------------------- targets
    def encode(self, y_raw: np.ndarray) -> np.ndarray:
        """Raw targets (see :func:`build_task`) → what the loss takes: float32 ``(n, k)``
        (regression: z-scored) or int64 class indices ``(n,)``."""
        if self.kind == "multiclass":
            return np.asarray(y_raw, dtype=np.int64).reshape(-1)
        y = np.asarray(y_raw, dtype=np.float64).reshape(len(y_raw), -1)
        if self.kind == "regression" and self.target_mean is not None:
            y = (y - np.asarray(self.target_mean)) / np.asarray(self.target_std)
        return y.astype(np.float32)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-example loss ``(batch,)``; binary/multi-label: the BCE of the assessed labels summed
        and divided by the number of labels (a missing target adds 0; see :meth:`weights`)."""
        logits = logits.float()
        if self.kind == "multiclass":
            w = torch.as_tensor(self.class_weight, dtype=logits.dtype, device=logits.device) if self.class_weight else None
            return F.cross_entropy(logits, target.long(), weight=w, reduction="none")
        if self.kind == "regression":
            return F.mse_loss(logits, target.float(), reduction="none").mean(-1)
        pw = torch.as_tensor(self.pos_weight, dtype=logits.dtype, device=logits.device) if self.pos_weight else None
        target = target.float()
        seen = ~torch.isnan(target)
        per = F.binary_cross_entropy_with_logits(logits, torch.where(seen, target, 0.0), pos_weight=pw, reduction="none")
        return torch.where(seen, per, 0.0).sum(-1) / per.shape[-1]

    def weights(self, target: np.ndarray) -> np.ndarray:
        """Each example's share of assessed targets ``(n,)`` (encoded targets in): what its
        :meth:`loss` is normalised by; 1 for a complete row and for multi-class and regression."""
        if self.kind not in ("binary", "multilabel"):
            return np.ones(len(target))
        t = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
        return (~np.isnan(t)).sum(1) / t.shape[1]

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits → probabilities or target-unit values, exactly as ``predict`` computes them."""
        return scores_from_logits(logits.float(), self.task_meta())

    def score_loss(self, scores: np.ndarray, y_raw: np.ndarray) -> float:
        """Mean loss computed from record-level scores (window scores already averaged)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.kind == "multiclass":
            p = np.clip(s[np.arange(len(s)), np.asarray(y_raw, int).reshape(-1)], 1e-7, 1.0)
            return float(-np.log(p).mean())
        y = np.asarray(y_raw, dtype=np.float64).reshape(len(s), -1)
        if self.kind == "regression":
            std = np.asarray(self.target_std or (1.0,) * s.shape[1])
            return float((((s - y) / std) ** 2).mean())
        p = np.clip(s, 1e-7, 1 - 1e-7)
        seen = ~np.isnan(y)  # mean over the assessed entries
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p))[seen].mean()) if seen.any() else float("nan")


def build_task(
    kind: str,
    df: pd.DataFrame,
    label_cols: Sequence[str],
    train_mask: np.ndarray,
    *,
    class_weighting: str = "none",
    standardize: bool = True,
) -> tuple[TaskSpec, np.ndarray]:
    """Resolve the task from the manifest: ``(spec, y_raw)``.

    ``y_raw`` is float ``(n_rows, k)`` for binary/multilabel (0/1, NaN: not assessed) and
    regression (target units), int ``(n_rows,)`` class indices for multiclass.  Statistics (target
    mean/std, weights) come from the rows where ``train_mask`` is true (binary/multilabel: their
    assessed entries).  A binary/multilabel column assessed for no training row is refused.
    """
    cols = list(label_cols)
    train_mask = np.asarray(train_mask, bool)
    if not train_mask.any():
        raise ManifestError("no training rows: the split column assigns no row to 'train'.")
    if kind == "binary":
        if len(cols) != 1:
            raise ManifestError(f"task.type=binary needs exactly one label column; got {cols}. Use multilabel for several.")
    if kind in ("binary", "multilabel"):
        y = check_numeric(df, cols, binary=True, task=kind, missing=True)
        _check_assessed(y, cols, train_mask)
        pos = np.nansum(y[train_mask], 0)
        neg = (~np.isnan(y[train_mask])).sum(0) - pos
        empty = [c for c, p, n in zip(cols, pos, neg) if p == 0 or n == 0]
        if empty:
            warnings.warn(f"label(s) {empty} have no positive or no negative training example.", stacklevel=2)
        pw = None
        if class_weighting == "balanced":
            pw = tuple(float(n / p) if p > 0 else 1.0 for p, n in zip(pos, neg))
        return TaskSpec(kind, tuple(cols), pos_weight=pw), y
    if kind == "regression":
        y = check_numeric(df, cols, binary=False, task=kind)
        if standardize:
            mean = y[train_mask].mean(0)
            std = y[train_mask].std(0)
            std = np.where(std > 0, std, 1.0)
        else:
            mean, std = np.zeros(y.shape[1]), np.ones(y.shape[1])
        return TaskSpec(kind, tuple(cols), tuple(map(float, mean)), tuple(map(float, std))), y
    if kind == "multiclass":
        if len(cols) == 1 and not pd.api.types.is_bool_dtype(df[cols[0]]):
            col = df[cols[0]]
            if col.isna().any():
                raise ManifestError(f"column {cols[0]!r} has empty class names in rows {col.index[col.isna()].tolist()[:5]}.")
            names = tuple(sorted(map(str, col.unique())))
            if len(names) < 2:
                raise ManifestError(f"multiclass column {cols[0]!r} holds one class only ({names}).")
            lookup = {n: i for i, n in enumerate(names)}
            y = np.array([lookup[str(v)] for v in col], dtype=np.int64)
        else:
            onehot = check_numeric(df, cols, binary=True, task=kind)
            bad = np.flatnonzero(onehot.sum(1) != 1)
            if len(bad):
                raise ManifestError(f"one-hot multiclass columns {cols} must hold exactly one 1 per row; row {int(bad[0])} "
                                    f"holds {int(onehot[bad[0]].sum())}. Rows with several labels, or none, are "
                                    "task.type=multilabel.")
            names = tuple(cols)
            y = onehot.argmax(1).astype(np.int64)
        cw = None
        if class_weighting == "balanced":
            counts = np.bincount(y[train_mask], minlength=len(names)).astype(float)
            cw = tuple(float(train_mask.sum() / (len(names) * c)) if c > 0 else 0.0 for c in counts)
        return TaskSpec(kind, names, class_weight=cw), y
    raise ManifestError(f"unknown task type {kind!r}.")


def _check_assessed(y: np.ndarray, cols: Sequence[str], train_mask: np.ndarray) -> None:
    """Refuse label columns that no (training) row assesses: nothing to learn them from."""
    for where, rows, says in (("every row", np.ones(len(y), bool), "no record assessed"),
                              ("every training row", train_mask, "no training record assessed")):
        empty = [c for c, any_ in zip(cols, (~np.isnan(y[rows])).any(0)) if not any_]
        if empty:
            raise ManifestError(
                f"label column(s) {empty} are empty in {where} ({says} them): there is nothing to learn them from; "
                "leave them out (name the others in data.label_columns) or fill in 0/1 where they were assessed.")


def quick_metrics(spec: TaskSpec, y_raw: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Point metrics for monitoring (scikit-learn): macro AUROC for classification (per label over
    its assessed records; a label with one class there is left out); MAE, RMSE and R² (first
    output) for regression.  No confidence intervals: those are in the test report."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

    out: dict[str, float] = {"val_loss": spec.score_loss(scores, y_raw)}
    if spec.kind == "regression":
        y = np.asarray(y_raw, float).reshape(len(scores), -1)
        out["val_mae"] = float(mean_absolute_error(y, scores))
        out["val_rmse"] = float(np.sqrt(mean_squared_error(y, scores)))
        out["val_r2"] = float(r2_score(y, scores)) if len(y) > 1 else float("nan")
        return out
    if spec.kind == "multiclass":
        y = np.asarray(y_raw, int).reshape(-1)
        present = np.unique(y)
        try:
            if len(present) == scores.shape[1]:
                out["val_auroc"] = float(roc_auc_score(y, scores, multi_class="ovr", average="macro"))
            else:
                aucs = [roc_auc_score(y == c, scores[:, c]) for c in present]
                out["val_auroc"] = float(np.mean(aucs)) if len(present) > 1 else float("nan")
        except ValueError:
            out["val_auroc"] = float("nan")
        out["val_accuracy"] = float((scores.argmax(1) == y).mean())
        return out
    y = np.asarray(y_raw, float).reshape(len(scores), -1)
    aucs = []
    for j in range(y.shape[1]):
        seen = ~np.isnan(y[:, j])
        if 0 < y[seen, j].sum() < seen.sum():
            aucs.append(roc_auc_score(y[seen, j], scores[seen, j]))
    out["val_auroc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out
