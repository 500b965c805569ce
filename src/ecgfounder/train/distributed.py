"""A thin distributed layer over ``torch.distributed``: set-up from ``torchrun``'s environment,
deterministic sharding of epochs, and gathering of predictions exactly once.

``torchrun --nproc_per_node N -m ecgfounder finetune run CONFIG`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous variables; :func:`setup` then starts a process group (NCCL on
GPUs, gloo on CPU).  Without those variables everything runs in one process.

Sharding (:func:`epoch_plan`): the epoch's permutation is drawn from a generator seeded with
``(seed, epoch)`` (identical on every rank), padded with repeats of its first items to a multiple
of the world size, and dealt round-robin (rank ``r`` takes positions ``r, r+W, ...``).  Micro-batch
``k`` of all ranks together is then exactly items ``k·B … (k+1)·B`` of the permutation, where ``B``
is the global batch: the same examples a single process with batch ``B`` sees.  Padding repeats get
zero weight in the loss and are dropped when predictions are gathered, so every record counts once.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .config import ConfigError

__all__ = ["DistInfo", "setup", "cleanup", "barrier", "broadcast_object", "gather_by_index", "epoch_plan", "EpochPlan", "all_reduce_sum"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its device and backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", *, timeout_s: float = 1800.0) -> DistInfo:
    """Read torchrun's environment and, for ``WORLD_SIZE > 1``, start the process group.

    Device: ``auto`` picks CUDA when available (``cuda:LOCAL_RANK``), else CPU.  Backend: NCCL
    for CUDA, gloo for CPU.  A group already started by the caller is reused.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible; use train.device=cpu or auto.")
    if use_cuda:
        torch.cuda.set_device(local % max(1, torch.cuda.device_count()))
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev, dist.get_backend(), False)
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None, False)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, dev, backend, True)


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(info: DistInfo, obj: Any = None, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(info: DistInfo, value: float) -> float:
    if not info.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return float(t.item())


def gather_by_index(info: DistInfo, index: np.ndarray, values: np.ndarray, n_total: int) -> np.ndarray:
    """Collect per-rank ``values`` (rows aligned with ``index``) into one ``(n_total, ...)`` array
    ordered by index, on every rank.  Duplicates (sampler padding) are dropped; a missing index
    is an error."""
    index = np.asarray(index, dtype=np.int64)
    values = np.asarray(values)
    if info.distributed:
        parts: list[Any] = [None] * info.world_size
        dist.all_gather_object(parts, (index, values))
        index = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1] for p in parts])
    out = np.zeros((n_total,) + values.shape[1:], dtype=values.dtype)
    seen = np.zeros(n_total, dtype=bool)
    uniq, first = np.unique(index, return_index=True)
    out[uniq] = values[first]
    seen[uniq] = True
    if not seen.all():
        raise RuntimeError(f"gathered predictions miss {int((~seen).sum())} of {n_total} items (sharding bug).")
    return out


@dataclass(frozen=True)
class EpochPlan:
    """This rank's micro-batches for one epoch.

    ``batches[k]``: item indices; ``real[k]``: False for padding repeats; ``global_real[k]``:
    the number of real items in micro-batch ``k`` over all ranks (the loss normaliser);
    ``global_items[k]``: those items (for a normaliser that weighs items, e.g. by the share of
    their targets that is assessed).
    """

    batches: list[np.ndarray]
    real: list[np.ndarray]
    global_real: list[int]
    global_items: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.batches)


def epoch_plan(n: int, *, epoch: int, seed: int, global_batch: int, rank: int = 0, world_size: int = 1,
               shuffle: bool = True) -> EpochPlan:
    """Deterministic micro-batches of ``n`` items for ``rank`` (see the module docstring)."""
    if global_batch % world_size:
        raise ConfigError(
            f"train.batch_size={global_batch} must be divisible by the number of processes ({world_size}); "
            f"use e.g. {((global_batch + world_size - 1) // world_size) * world_size}."
        )
    per_rank = global_batch // world_size
    if shuffle:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        perm = torch.randperm(n, generator=g).numpy()
    else:
        perm = np.arange(n)
    total = -(-n // world_size) * world_size if n else 0
    pad = total - n
    padded = np.concatenate([perm, perm[:pad]]) if pad else perm
    flags = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
    mine, mine_real = padded[rank::world_size], flags[rank::world_size]
    batches, real, greal, gitems = [], [], [], []
    for k in range(0, len(mine), per_rank):
        batches.append(mine[k : k + per_rank])
        real.append(mine_real[k : k + per_rank])
        lo = k * world_size
        greal.append(int(flags[lo : lo + per_rank * world_size].sum()))
        gitems.append(padded[lo : lo + per_rank * world_size][flags[lo : lo + per_rank * world_size]])
    return EpochPlan(batches, real, greal, gitems)
