"""Cached windows in and out of the network: training micro-batches, and a function applied to
every window of a split (sharded over processes, gathered once) with the record-level mean."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..models.heads import aggregate_windows
from .cache import CacheIndex
from .distributed import DistInfo, epoch_plan, gather_by_index
from .tasks import TaskSpec, quick_metrics

__all__ = ["TrainBatches", "window_items", "map_windows", "aggregate", "evaluate_split"]


class TrainBatches(torch.utils.data.Dataset):
    """Micro-batch ``k`` of an epoch plan: ``(x (b, leads, samples), target, real mask)``.
    Multi-window examples contribute one window chosen by a generator seeded with
    (seed, epoch, example)."""

    def __init__(self, index: CacheIndex, rows: np.ndarray, target: np.ndarray, plan, seed: int, epoch: int,
                 augment: Any = None, fs: float = 500.0):
        self.index, self.rows, self.target, self.plan, self.seed, self.epoch = index, rows, target, plan, seed, epoch
        self.augment = augment if augment is not None and augment.enabled else None
        self.fs = fs

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int):
        items = self.plan.batches[k]
        xs = []
        for i in items:
            r = int(self.rows[i])
            n = self.index.n_windows(r)
            w = 0 if n == 1 else int(np.random.default_rng([self.seed, self.epoch, r]).integers(n))
            win = self.index.window(r, w)
            if self.augment is not None:
                from .augment import augment_rng, augment_window

                win = augment_window(win, self.augment, augment_rng(self.seed, self.epoch, r), self.fs)
            xs.append(win)
        x = torch.from_numpy(np.stack(xs).astype(np.float32, copy=False))
        t = torch.from_numpy(self.target[self.rows[items]])
        return x, t, torch.from_numpy(self.plan.real[k].astype(np.float32))


def window_items(index: CacheIndex, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row position, window number) of every window of ``rows``."""
    pos = np.repeat(np.arange(len(rows)), [index.n_windows(int(r)) for r in rows])
    win = np.concatenate([np.arange(index.n_windows(int(r))) for r in rows]) if len(rows) else np.zeros(0, int)
    return pos, win


@torch.no_grad()
def map_windows(fn: Callable[[torch.Tensor], torch.Tensor], index: CacheIndex, rows: np.ndarray, info: DistInfo,
                batch_size: int, bf16: bool, progress: bool = False, desc: str = "eval") -> np.ndarray:
    """``fn`` applied to every window of ``rows`` (sharded over ranks, gathered once):
    ``(n_windows_total, ...)`` in window order."""
    pos, win = window_items(index, rows)
    n = len(pos)
    plan = epoch_plan(n, epoch=0, seed=0, global_batch=batch_size * info.world_size, rank=info.rank,
                      world_size=info.world_size, shuffle=False)
    outs, idxs = [], []
    it = plan.batches
    if progress and info.is_main:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=desc, unit="batch", leave=False, disable=None)  # None: off when not a terminal
    for items in it:
        x = np.stack([index.window(int(rows[pos[i]]), int(win[i])) for i in items]).astype(np.float32, copy=False)
        xt = torch.from_numpy(x).to(info.device, non_blocking=True)
        with torch.autocast(device_type=info.device.type, dtype=torch.bfloat16, enabled=bf16):
            y = fn(xt)
        outs.append(y.float().cpu().numpy())
        idxs.append(items)
    local = np.concatenate(outs) if outs else np.zeros((0, 1), np.float32)  # an empty shard still takes part
    local_idx = np.concatenate(idxs) if idxs else np.zeros(0, int)
    return gather_by_index(info, local_idx, local, n)


def aggregate(per_window: np.ndarray, index: CacheIndex, rows: np.ndarray) -> np.ndarray:
    """Record-level values ``(len(rows), ...)``: each example's windows combined as ``predict``
    combines them (:func:`ecgfounder.models.heads.aggregate_windows`, ``"mean"``)."""
    counts = [index.n_windows(int(r)) for r in rows]
    if not counts:
        return np.zeros((0,) + per_window.shape[1:], dtype=np.float64)
    parts = np.split(np.asarray(per_window, dtype=np.float64), np.cumsum(counts)[:-1])
    return np.stack([aggregate_windows(p, "mean") for p in parts])


def evaluate_split(model: nn.Module, spec: TaskSpec, index: CacheIndex, rows: np.ndarray, y_raw: np.ndarray,
                   info: DistInfo, batch_size: int, bf16: bool) -> tuple[np.ndarray, dict[str, float]]:
    """Record-level scores ``(len(rows), n_outputs)`` and quick metrics of ``model`` on ``rows``."""
    if len(rows) == 0:
        return np.zeros((0, spec.n_outputs)), {}
    was = model.training
    model.eval()
    win = map_windows(lambda x: spec.scores(model(x)), index, rows, info, batch_size, bf16)
    model.train(was)
    scores = aggregate(win, index, rows)
    return scores, quick_metrics(spec, y_raw[rows], scores)
