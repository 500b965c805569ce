"""The epoch loop: deterministic micro-batches, gradient accumulation, DDP, bf16 autocast,
checkpoints between optimiser steps (exact resume), validation, best model and early stopping."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..models.net1d import Net1D
from .batches import TrainBatches, evaluate_split
from .checkpoint import load_weights, save_model_file, save_state, unwrap
from .config import ConfigError, FinetuneConfig
from .data import TrainData
from .distributed import DistInfo, all_reduce_sum, barrier, epoch_plan
from .logs import RunLog
from .model import make_optimizer, make_scheduler, monitor
from .state import rng_state, set_rng_state

__all__ = ["train_epochs", "TrainOutcome"]

logger = logging.getLogger("ecgfounder.train")


@dataclass
class TrainOutcome:
    """Record-level validation/test scores of the best weights, and how training went."""

    val_scores: np.ndarray
    test_scores: np.ndarray
    val_metrics: dict[str, float]
    best_epoch: int | None
    global_step: int
    history: list[dict[str, Any]]


class _Trainer:
    """The mutable state of one training run (what ``checkpoints/last.pt`` holds)."""

    def __init__(self, cfg: FinetuneConfig, info: DistInfo, model: Net1D, data: TrainData, out: Path):
        self.cfg, self.info, self.model, self.data, self.out = cfg, info, model, data, out
        t = cfg.train
        self.target = data.spec.encode(data.y_raw)
        self.n_train = len(data.rows["train"])
        micro = len(epoch_plan(self.n_train, epoch=0, seed=t.seed, global_batch=t.batch_size,
                               world_size=info.world_size, rank=info.rank))
        total_steps = t.max_steps or math.ceil(micro / t.grad_accum) * t.epochs
        self.opt = make_optimizer(cfg, model)
        self.sched = make_scheduler(cfg, self.opt, total_steps)
        self.plateau = isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self.mon, self.direction = monitor(cfg)
        self.epoch, self.start_micro, self.global_step = 0, 0, 0
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.ddp: nn.Module = model

    # ------------------------------------------------------------------------- state
    def restore(self, state: dict[str, Any]) -> None:
        if state.get("world_size", 1) != self.info.world_size and state["batch_in_epoch"]:
            raise ConfigError(
                f"the checkpoint was written mid-epoch by {state['world_size']} process(es); resume it with the same "
                f"number (now {self.info.world_size}), or from an epoch-end checkpoint."
            )
        try:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"the checkpoint to resume from (output.resume={self.cfg.output.resume}) does not fit this run's model "
                f"and optimiser "
                f"({' '.join(str(exc).split())[:200]}); resume with the configuration it was written with, "
                "or start a new run in another output.dir."
            ) from None
        if self.sched is not None and state.get("scheduler") is not None:
            self.sched.load_state_dict(state["scheduler"])
        self.epoch, self.start_micro = int(state["epoch"]), int(state["batch_in_epoch"])
        self.global_step = int(state["global_step"])
        self.best_val, self.best_epoch = state.get("best_val"), state.get("best_epoch")
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.history = list(state.get("history", []))
        set_rng_state(state["rng"])

    def checkpoint(self, epoch: int, micro: int) -> None:
        """Write ``checkpoints/last.pt``: resuming continues at micro-batch ``micro`` of ``epoch``."""
        if not self.info.is_main:
            return
        save_state({
            "model": unwrap(self.ddp).state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "epoch": epoch, "batch_in_epoch": micro, "global_step": self.global_step,
            "best_val": self.best_val, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "history": self.history, "rng": rng_state(), "world_size": self.info.world_size,
            "config": self.cfg.to_dict(), "contract": self.model.contract.to_dict(), "task": self.data.spec.to_dict(),
        }, self.out / "checkpoints" / "last.pt")

    def evaluate(self, split: str) -> tuple[np.ndarray, dict[str, float]]:
        d, t = self.data, self.cfg.train
        return evaluate_split(self.model, d.spec, d.index, d.rows[split], d.y_raw, self.info, t.eval_batch_size, t.bf16)

    # ------------------------------------------------------------------------- one epoch
    def _progress(self, total: int):
        t = self.cfg.train
        if not (t.progress and self.info.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=self.start_micro, desc=f"epoch {self.epoch + 1}/{t.epochs}", unit="batch",
                    leave=False, disable=None)  # None: off when not a terminal

    def _optimizer_step(self) -> None:
        clip = self.cfg.optim.clip_grad_norm
        if clip:
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.sched is not None and not self.plateau:
            self.sched.step()
        self.global_step += 1

    def train_epoch(self, log: RunLog, step_hook: Callable[[int], None] | None) -> tuple[float, int, bool]:
        """One pass over the epoch plan from ``start_micro``: ``(mean train loss, micro-batches
        planned, stop requested)``."""
        t, info, spec = self.cfg.train, self.info, self.data.spec
        plan = epoch_plan(self.n_train, epoch=self.epoch, seed=t.seed, global_batch=t.batch_size, rank=info.rank,
                          world_size=info.world_size)
        ds = TrainBatches(self.data.index, self.data.rows["train"], self.target, plan, t.seed, self.epoch,
                          self.cfg.augment, float(self.data.contract.fs))
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(self.start_micro, len(plan)),
                                             num_workers=t.num_workers, pin_memory=info.device.type == "cuda")
        self.ddp.train()
        loss_sum, loss_n, stop = 0.0, 0.0, False
        bar = self._progress(len(plan))
        for k, (x, y, real) in zip(range(self.start_micro, len(plan)), loader):
            x, y, real = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True), real.to(info.device)
            win_start = (k // t.grad_accum) * t.grad_accum
            n_in_window = min(t.grad_accum, len(plan) - win_start)
            sync = (k + 1 - win_start) == n_in_window
            ctx = self.ddp.no_sync() if (info.distributed and not sync) else contextlib.nullcontext()
            with ctx:
                with torch.autocast(device_type=info.device.type, dtype=torch.bfloat16, enabled=t.bf16):
                    logits = self.ddp(x)
                per = spec.loss(logits, y)
                loss = (per * real).sum() * (info.world_size / (plan.global_real[k] * n_in_window))
                loss.backward()
            loss_sum += float((per.detach() * real).sum())
            loss_n += float(real.sum())
            if bar is not None:
                bar.update(1)
            if not sync:
                continue
            self._optimizer_step()
            log.step(self.global_step, float(per.detach().mean()), self.opt.param_groups[-1]["lr"])
            if bar is not None:
                bar.set_postfix(loss=f"{loss_sum / max(loss_n, 1):.4f}")
            if t.checkpoint_every and self.global_step % t.checkpoint_every == 0 and k + 1 != len(plan):
                self.checkpoint(self.epoch, k + 1)
            if step_hook is not None:
                step_hook(self.global_step)
            if t.max_steps and self.global_step >= t.max_steps:
                stop = True
                break
        if bar is not None:
            bar.close()
        tot, cnt = all_reduce_sum(info, loss_sum), all_reduce_sum(info, loss_n)
        return (tot / cnt if cnt else float("nan")), len(plan), stop

    def end_epoch(self, log: RunLog, train_loss: float, n_micro: int, seconds: float) -> bool:
        """Validate, keep the best model, step a plateau schedule, log; whether to stop early."""
        t = self.cfg.train
        _, val_m = self.evaluate("val")
        cur = val_m.get(self.mon)
        improved = False
        if cur is not None and np.isfinite(cur):
            improved = self.best_val is None or (cur > self.best_val if self.direction == "max" else cur < self.best_val)
        elif self.best_val is None and not len(self.data.rows["val"]):
            improved = True  # no validation split: the last epoch is the best
        if improved:
            self.best_val, self.best_epoch, self.bad_epochs = cur, self.epoch, 0
            if self.info.is_main:
                save_model_file(self.ddp, self.out / "best.safetensors", self.cfg,
                                {"epoch": self.epoch, "monitor": self.mon, "value": cur})
        else:
            self.bad_epochs += 1
        if self.plateau and cur is not None and np.isfinite(cur):
            self.sched.step(cur)
        self.history.append({"epoch": self.epoch + 1, "step": self.global_step, "train_loss": train_loss, **val_m,
                             "lr": self.opt.param_groups[-1]["lr"], "seconds": round(seconds, 2),
                             "ecg_per_s": round((n_micro - self.start_micro) * t.batch_size / max(seconds, 1e-9), 1)})
        log.epoch(self.history, val_m, train_loss, self.global_step)
        self.epoch += 1
        self.start_micro = 0
        if t.early_stopping and self.bad_epochs >= t.early_stopping:
            if self.info.is_main:
                logger.info("early stopping: %s did not improve for %d epochs", self.mon, self.bad_epochs)
            return True
        return False


def train_epochs(cfg: FinetuneConfig, info: DistInfo, model: Net1D, data: TrainData, out: Path,
                 state: dict[str, Any] | None, step_hook: Callable[[int], None] | None) -> TrainOutcome:
    """Train ``model`` for ``train.epochs`` (or ``train.max_steps``), resuming from ``state``;
    then score validation and test with the best weights."""
    tr = _Trainer(cfg, info, model, data, out)
    if state is not None:
        tr.restore(state)
    if info.distributed:
        tr.ddp = nn.parallel.DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None)
    log = RunLog(out, enabled=info.is_main, tensorboard=cfg.output.tensorboard, global_step=tr.global_step)
    stop = bool(cfg.train.max_steps and tr.global_step >= cfg.train.max_steps)
    while tr.epoch < cfg.train.epochs and not stop:
        t0 = time.perf_counter()
        train_loss, n_micro, stop = tr.train_epoch(log, step_hook)
        stop = tr.end_epoch(log, train_loss, n_micro, time.perf_counter() - t0) or stop
        tr.checkpoint(tr.epoch, 0)
    log.close()
    if info.is_main:
        save_model_file(tr.ddp, out / "last.safetensors", cfg, {"epoch": tr.epoch, "step": tr.global_step})
    barrier(info)
    best_file = out / "best.safetensors"
    if best_file.exists() and tr.best_epoch is not None:  # best weights for the test report and the final model
        load_weights(model, best_file)
    val_scores, val_m = tr.evaluate("val")
    test_scores, _ = tr.evaluate("test")
    return TrainOutcome(val_scores, test_scores, val_m, tr.best_epoch, tr.global_step, tr.history)
