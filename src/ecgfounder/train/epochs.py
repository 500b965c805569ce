"""The epoch loop: deterministic micro-batches, gradient accumulation, DDP, bf16 autocast,
checkpoints between optimiser steps (exact resume), validation, best model and early stopping.

A run that ``train.max_steps`` stops inside an epoch checkpoints that position (a resume with a
larger ``max_steps``, or none, goes on with the epoch's next micro-batch), then validates the
weights there for its history (a row marked ``partial``) and outputs.  The best model, early
stopping and a plateau schedule are epoch-end decisions: a partial epoch leaves them as they are,
so the resumed run equals an uninterrupted one.

An epoch that improves the monitor is checkpointed first, then its weights are written to
``best.safetensors``: a kill between the two leaves a checkpoint whose weights are the best ones,
and the resume writes them (:meth:`_Trainer.check_best`); ``best.safetensors`` never holds an
epoch the checkpoint's history does not record as its best."""

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
from .checkpoint import load_weights, model_file_epoch, save_model_file, save_state, unwrap
from .config import ConfigError, FinetuneConfig
from .data import TrainData
from .distributed import DistInfo, all_reduce_sum, barrier, epoch_plan
from .logs import RunLog
from .model import freeze_modes, make_optimizer, make_scheduler, monitor, schedule_length
from .state import rng_state, set_rng_state

__all__ = ["train_epochs", "TrainOutcome"]

logger = logging.getLogger("ecgfounder.train")


@dataclass
class TrainOutcome:
    """Record-level validation/test scores of the best weights, and how training went;
    ``best_epoch``: the best weights' epoch as ``log.csv`` and ``history`` number it (1 = the first)."""

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
        self.weight = data.spec.weights(self.target[data.rows["train"]])  # loss normaliser per training example
        micro = len(epoch_plan(self.n_train, epoch=0, seed=t.seed, global_batch=t.batch_size,
                               world_size=info.world_size, rank=info.rank))
        self.steps_per_epoch = math.ceil(micro / t.grad_accum)  # the same for any number of processes
        self.schedule_steps = schedule_length(cfg, self.steps_per_epoch)
        self.opt = make_optimizer(cfg, model)
        self.sched = make_scheduler(cfg, self.opt, self.schedule_steps)
        self.plateau = isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self.mon, self.direction = monitor(cfg)
        self.epoch, self.start_micro, self.global_step = 0, 0, 0
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        self.loss_sum, self.loss_n = 0.0, 0.0  # this process's part of the current epoch's train loss
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
        if self.info.is_main:  # the epoch's loss so far, summed over the processes that wrote it
            self.loss_sum, self.loss_n = (float(v) for v in state.get("epoch_loss", (0.0, 0.0)))
        set_rng_state(state["rng"])
        self.check_best()

    def write_best(self) -> None:
        """Write the current weights, those of the best epoch, to ``best.safetensors``."""
        if self.info.is_main:
            save_model_file(self.ddp, self.out / "best.safetensors", self.cfg,
                            {"epoch": self.best_epoch + 1, "monitor": self.mon, "value": self.best_val})

    def check_best(self) -> None:
        """On resume: ``best.safetensors`` must hold the epoch the checkpoint records as its best.
        Where the checkpoint was written at the end of that epoch (a kill before best.safetensors),
        its weights are written there; where that epoch's weights are gone (the file of another
        epoch, or none: a run of an older version killed between the two writes, or a checkpoint
        resumed into another folder), the best is chosen again among the epochs trained from now on."""
        f = self.out / "best.safetensors"
        want = None if self.best_epoch is None else self.best_epoch + 1
        have = model_file_epoch(f)
        if have == want:
            return
        if want is not None and self.epoch == want and not self.start_micro:
            if self.info.is_main:
                logger.info("resuming: %s did not hold epoch %d's weights, the best (%s); written from the checkpoint",
                            f, want, self.mon)
            self.write_best()
            return
        if self.info.is_main:
            what = "is not there" if have is None else f"holds the weights of epoch {have}"
            logger.warning("resuming: %s %s, while the checkpoint records %s; the best epoch is chosen again among the "
                           "epochs trained from now on%s", f, what,
                           "no best epoch" if want is None else f"epoch {want} as its best ({self.mon})",
                           " (the file is removed)" if have is not None else "")
            for p in (f, f.with_suffix(".json")):
                p.unlink(missing_ok=True)
        self.best_val, self.best_epoch = None, None

    def finished(self) -> bool:
        """``train.max_steps`` reached or early stopping's patience used up (also on resume)."""
        t = self.cfg.train
        return bool((t.max_steps and self.global_step >= t.max_steps)
                    or (t.early_stopping and self.bad_epochs >= t.early_stopping))

    def _epoch_loss(self) -> tuple[float, float]:
        """The current epoch's train loss sum and example count over all processes (collective)."""
        return all_reduce_sum(self.info, self.loss_sum), all_reduce_sum(self.info, self.loss_n)

    def checkpoint(self, epoch: int, micro: int) -> None:
        """Write ``checkpoints/last.pt``: resuming continues at micro-batch ``micro`` of ``epoch``.
        Every process calls it (mid-epoch, the epoch's loss so far is summed over them)."""
        epoch_loss = self._epoch_loss() if micro else (0.0, 0.0)
        if not self.info.is_main:
            return
        save_state({
            "model": unwrap(self.ddp).state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict() if self.sched is not None else None,
            "epoch": epoch, "batch_in_epoch": micro, "global_step": self.global_step,
            "best_val": self.best_val, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
            "history": self.history, "epoch_loss": list(epoch_loss), "rng": rng_state(),
            "world_size": self.info.world_size,
            "schedule_steps": self.schedule_steps, "steps_per_epoch": self.steps_per_epoch,  # see check_resume_config
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

    def train_epoch(self, log: RunLog, step_hook: Callable[[int], None] | None) -> tuple[int, bool]:
        """Train on the epoch plan from ``start_micro`` to its end, or until ``train.max_steps``
        (checkpointed there, and ``start_micro`` set to that position): ``(micro-batches trained,
        epoch ended)``."""
        t, info, spec = self.cfg.train, self.info, self.data.spec
        plan = epoch_plan(self.n_train, epoch=self.epoch, seed=t.seed, global_batch=t.batch_size, rank=info.rank,
                          world_size=info.world_size)
        ds = TrainBatches(self.data.index, self.data.rows["train"], self.target, plan, t.seed, self.epoch,
                          self.cfg.augment, float(self.data.contract.fs))
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(self.start_micro, len(plan)),
                                             num_workers=t.num_workers, pin_memory=info.device.type == "cuda")
        self.ddp.train()
        freeze_modes(self.model, self.cfg.strategy.name, self.cfg.strategy.trainable_stages)
        bar = self._progress(len(plan))
        k = self.start_micro - 1
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
                # mean over the assessed entries of the global micro-batch (= its real examples when
                # every target is there); a micro-batch without any adds nothing
                norm = float(self.weight[plan.global_items[k]].sum()) or 1.0
                loss = (per * real).sum() * (info.world_size / (norm * n_in_window))
                loss.backward()
            self.loss_sum += float((per.detach() * real).sum())
            self.loss_n += float((self.weight[plan.batches[k]] * plan.real[k]).sum())
            if bar is not None:
                bar.update(1)
            if not sync:
                continue
            self._optimizer_step()
            step_loss = float(per.detach().sum()) / max(float(self.weight[plan.batches[k]].sum()), 1e-12)
            log.step(self.global_step, step_loss, self.opt.param_groups[-1]["lr"])
            if bar is not None:
                bar.set_postfix(loss=f"{self.loss_sum / max(self.loss_n, 1):.4f}")
            stop = bool(t.max_steps and self.global_step >= t.max_steps)
            if (stop or (t.checkpoint_every and self.global_step % t.checkpoint_every == 0)) and k + 1 != len(plan):
                self.checkpoint(self.epoch, k + 1)  # an epoch's end is checkpointed after its validation
            if step_hook is not None:
                step_hook(self.global_step)
            if stop:
                break
        if bar is not None:
            bar.close()
        trained, self.start_micro = k + 1 - self.start_micro, k + 1
        return trained, k + 1 == len(plan)

    def _log_row(self, log: RunLog, val_m: dict[str, float], trained: int, seconds: float, **extra: Any) -> None:
        """Add the current epoch's row to the history and log it."""
        tot, cnt = self._epoch_loss()
        train_loss = tot / cnt if cnt else float("nan")
        speed = trained * self.cfg.train.batch_size / max(seconds, 1e-9)
        self.history.append({"epoch": self.epoch + 1, "step": self.global_step, "train_loss": train_loss, **val_m,
                             "lr": self.opt.param_groups[-1]["lr"], "seconds": round(seconds, 2),
                             "ecg_per_s": round(speed, 1), **extra})
        log.epoch(self.history, val_m, train_loss, self.global_step)

    def end_epoch(self, log: RunLog, trained: int, seconds: float) -> None:
        """Validate, keep the best model, step a plateau schedule, log; move to the next epoch."""
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
        else:
            self.bad_epochs += 1
        if self.plateau and cur is not None and np.isfinite(cur):
            self.sched.step(cur)
        self._log_row(log, val_m, trained, seconds)
        self.epoch += 1
        self.start_micro = 0
        self.loss_sum, self.loss_n = 0.0, 0.0
        if t.early_stopping and self.bad_epochs >= t.early_stopping and self.info.is_main:
            logger.info("early stopping: %s did not improve for %d epochs", self.mon, self.bad_epochs)

    def report_partial(self, log: RunLog, trained: int, seconds: float) -> None:
        """Validate the weights where ``train.max_steps`` stopped inside the epoch and log it as a
        ``partial`` row: the checkpoint (written before) keeps the state without it, so the epoch
        goes on unchanged when the run is resumed."""
        _, val_m = self.evaluate("val")
        self._log_row(log, val_m, trained, seconds, partial=True)


def train_epochs(cfg: FinetuneConfig, info: DistInfo, model: Net1D, data: TrainData, out: Path,
                 state: dict[str, Any] | None, step_hook: Callable[[int], None] | None) -> TrainOutcome:
    """Train ``model`` for ``train.epochs`` (or ``train.max_steps``), resuming from ``state``;
    then score validation and test with the best epoch's weights (the last ones when no epoch has
    ended, or none improved the monitor)."""
    tr = _Trainer(cfg, info, model, data, out)
    if state is not None:
        tr.restore(state)
    if info.distributed:
        tr.ddp = nn.parallel.DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None)
    log = RunLog(out, enabled=info.is_main, tensorboard=cfg.output.tensorboard, global_step=tr.global_step)
    trained, seconds = 0, 0.0
    while tr.epoch < cfg.train.epochs and not tr.finished():
        t0 = time.perf_counter()
        trained, ended = tr.train_epoch(log, step_hook)
        seconds = time.perf_counter() - t0
        if not ended:
            break
        tr.end_epoch(log, trained, seconds)
        tr.checkpoint(tr.epoch, 0)
        if tr.best_epoch is not None and tr.best_epoch == tr.epoch - 1:  # improved: best.safetensors after the
            tr.write_best()  # epoch's checkpoint (see the module docstring)
        trained, seconds = 0, 0.0
    if tr.start_micro:  # stopped inside an epoch, by this run or by the one resumed
        tr.report_partial(log, trained, seconds)
    log.close()
    if info.is_main:
        save_model_file(tr.ddp, out / "last.safetensors", cfg, {"epoch": tr.epoch, "step": tr.global_step})
    barrier(info)
    best_file = out / "best.safetensors"
    if best_file.exists() and tr.best_epoch is not None:  # best weights for the test report and the final model
        load_weights(model, best_file)
    val_scores, val_m = tr.evaluate("val")
    test_scores, _ = tr.evaluate("test")
    best = None if tr.best_epoch is None else tr.best_epoch + 1  # (kept 0-based in the checkpoint)
    return TrainOutcome(val_scores, test_scores, val_m, best, tr.global_step, tr.history)
