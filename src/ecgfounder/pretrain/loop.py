"""The pre-training run: Net1D from scratch on a shard store, one process or ``torchrun`` DDP.

``torchrun --nproc_per_node N -m ecgfounder pretrain run CONFIG`` (gloo on CPU, NCCL on GPUs; the
process group comes from :mod:`ecgfounder.train.distributed`).  One optimiser step consumes
``train.batch_size`` windows over all processes in ``accum_steps`` micro-batches; the loss is
summed over examples and labels and divided by that global count, so N processes with batch B/N
each equal one process with batch B (``data.split=samples``).

Exact resume: every ``ckpt_every`` steps (and at the end) ``checkpoints/last.pt`` is written
atomically with the weights, optimiser, scheduler, EMA, step and loss history.  The data position
and every augmentation follow from ``(seed, epoch, step)``, so a run killed at any step and started
again with the same configuration ends with the same weights as an uninterrupted one.

FSDP is not offered: the largest preset (≈ 67 M parameters) with AdamW state takes about 1 GB,
which every current accelerator holds, so sharding parameters would only add communication; DDP
is the right tool until models reach billions of parameters.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..models.net1d import Net1D
from ..signal.preprocess import PreprocessContract
from ..train import distributed as D
from ..errors import CheckpointError
from ..train.checkpoint import TrainingInterrupted, interrupted_note, save_state, schedule_changed
from ..train.config import ConfigError
from ..train.model import warn_endless_warmup
from .config import PretrainConfig
from .recipe import (SINGLE_LEAD_ALTERNATIVES, asymmetric_loss, bce_loss, size_preset, targets, transform_batch,
                     warmup_cosine)
from .store import StoreError, StoreInfo, iter_batches, open_store, steps_per_epoch

__all__ = ["pretrain", "PretrainResult", "build_pretrain_model", "model_contract", "evaluate_store"]

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    out: Path
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    model_path: Path | None = None
    report: dict[str, Any] | None = None
    rank: int = 0


def model_contract(cfg: PretrainConfig, store: StoreInfo) -> PreprocessContract:
    """The store's contract, reduced to lead I for a single-lead model."""
    from dataclasses import replace

    return store.contract if cfg.model.leads == 12 else replace(store.contract, leads=("I",))


def build_pretrain_model(cfg: PretrainConfig, store: StoreInfo) -> Net1D:
    contract = model_contract(cfg, store)
    arch = dict(cfg.model.arch or {})
    model = Net1D(size_preset(cfg.model.size, in_channels=len(contract.leads), n_classes=len(store.labels), **arch))
    if not model.config.use_bn:  # BatchNorm modules exist for checkpoint compatibility only: keep them out of DDP
        for name, p in model.named_parameters():
            if "bn" in name.split(".")[-2]:
                p.requires_grad_(False)
    model.labels = tuple(store.labels)
    model.contract = contract
    model.task_meta = {"task": "multilabel"}
    return model


def _missing_leads(model_leads: tuple[str, ...], store_leads: tuple[str, ...], augment_p: float) -> list[str]:
    """Leads a store lacks to feed a model of ``model_leads`` (:func:`~.recipe.transform_batch`):
    the model's, and for a single-lead model fed from several leads the augmentation's alternatives."""
    need = tuple(model_leads)
    if len(need) == 1 and len(store_leads) > 1 and augment_p > 0:
        need += tuple(name for name, _ in SINGLE_LEAD_ALTERNATIVES)
    return [ld for ld in dict.fromkeys(need) if ld not in store_leads]


def _check_stores(cfg: PretrainConfig, store: StoreInfo) -> StoreInfo | None:
    """Refuse, before any training, stores this run cannot use to its end: leads the model (or its
    lead augmentation) needs and the store lacks (refused at the first batch before), and a
    held-out store (returned) of other labels or preprocessing (refused after the last step)."""
    model = model_contract(cfg, store)
    leads = store.contract.leads
    missing = _missing_leads(model.leads, leads, cfg.recipe.lead_augment_p)
    if missing:
        aug = " or set recipe.lead_augment_p=0 (no lead augmentation)" if not _missing_leads(model.leads, leads, 0) else ""
        raise ConfigError(f"model.leads={cfg.model.leads} needs lead(s) {', '.join(missing)} that data.store={cfg.data.store} "
                          f"does not hold (its leads: {', '.join(leads)}); build the store with 12 leads "
                          f"(ecgfounder pretrain build-store --leads 12){aug}.")
    if not cfg.data.val_store:
        return None
    val = open_store(cfg.data.val_store)
    fix = "build it from the held-out records with the same rules and contract as data.store, or unset data.val_store"
    if not val.n_samples:
        raise ConfigError(f"data.val_store={cfg.data.val_store} holds no windows (its records all failed?); {fix}.")
    if val.labels != store.labels:
        raise ConfigError(f"data.val_store={cfg.data.val_store} has other labels than data.store={cfg.data.store} "
                          f"({len(val.labels)} vs {len(store.labels)}, or in another order); {fix}.")
    a, b = (dict(c.to_dict(), leads=None) for c in (val.contract, model))
    changed = [k for k in a if a[k] != b[k]]
    missing = _missing_leads(model.leads, val.contract.leads, 0)
    if changed or missing:
        what = (f"{', '.join(f'{k}={a[k]!r}' for k in changed)} where data.store has "
                f"{', '.join(f'{k}={b[k]!r}' for k in changed)}" if changed else f"it lacks the model's lead(s) {', '.join(missing)}")
        raise ConfigError(f"data.val_store={cfg.data.val_store} does not hold this model's input: {what}; {fix}.")
    return val


def _step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of one optimiser step on one rank: dropout (``model.arch.use_do``) draws the
    same masks in a resumed run as in an uninterrupted one."""
    return int(np.random.SeedSequence([int(seed) % (2**32), int(step), int(rank)]).generate_state(1, np.uint64)[0])


def _plan(store: StoreInfo, cfg: PretrainConfig, world: int) -> tuple[int, int, Callable[[int], tuple[int, int]]]:
    """``(micro global batch, total optimiser steps, locate)``; ``locate(step)`` → ``(epoch, micro start)``."""
    t = cfg.train
    micro = t.batch_size // t.accum_steps

    def per_epoch(e: int) -> int:
        return steps_per_epoch(store, micro, world=world, split=cfg.data.split, epoch=e, seed=t.seed) // t.accum_steps

    if per_epoch(0) < 1:
        raise StoreError(f"the store holds {store.n_samples} windows: not one batch of train.batch_size={t.batch_size}; "
                         "lower the batch size or add records.")
    total = t.max_steps if t.max_steps is not None else sum(per_epoch(e) for e in range(t.epochs))
    cache: dict[int, int] = {}

    def locate(step: int) -> tuple[int, int]:
        e = 0
        while True:
            n = cache.setdefault(e, per_epoch(e))
            if step < n:
                return e, step * t.accum_steps
            step -= n
            e += 1

    return micro, int(total), locate


# Settings a resumed run may change (how long, how to run, where the store is, what to publish);
# every other setting shapes the weights, so a checkpoint written under another value is refused.
# The cosine schedule's length (optim.schedule_steps, else the run's) is compared on its own.
RESUMABLE_CHANGES = frozenset({"data.store", "data.val_store", "train.out", "train.epochs", "train.max_steps",
                               "train.ckpt_every", "train.log_every", "train.resume", "train.device", "train.compile",
                               "optim.schedule_steps"})


_BLOCK = 1 << 16  # bytes of a shard's beginning and end its fingerprint hashes


def _shard_fingerprint(path: Path) -> str | None:
    """``SIZE:HASH`` of a local shard file: its size and the BLAKE2b of its first and last 64 KiB
    (two reads a shard: a tar's first member and its last samples); ``None`` where it cannot be read."""
    import hashlib

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            h = hashlib.blake2b(f.read(_BLOCK), digest_size=16)
            if size > _BLOCK:
                f.seek(max(_BLOCK, size - _BLOCK))
                h.update(f.read(_BLOCK))
    except OSError:
        return None
    return f"{size}:{h.hexdigest()}"


def _store_identity(store: StoreInfo) -> str:
    """What a checkpoint must be resumed on: the store's labels (the head's columns), contract and
    samples (its shards and their counts: the data position is a place in them), and for a store in
    a local folder each shard's fingerprint (:func:`_shard_fingerprint`: a shard replaced under its
    name and count is another store); ``data.store`` may point elsewhere on resume: another copy or
    mirror of the same store."""
    ident: dict[str, Any] = {"labels": list(store.labels), "contract": store.contract.to_dict(),
                             "shards": [[Path(str(s)).name, int(c)] for s, c in zip(store.shards, store.counts)]}
    if "://" not in store.location and not store.location.startswith("pipe:"):
        ident["fingerprints"] = [_shard_fingerprint(Path(store.url(str(s)))) for s in store.shards]
    return json.dumps(ident, sort_keys=True)


def _other_store(saved: str, store: StoreInfo, cfg: PretrainConfig, path: Path, now: str) -> ConfigError | None:
    """The refusal to resume a checkpoint trained on the store ``saved`` (its identity) on ``store``
    (identity ``now``); a checkpoint of an older version records no shards or fingerprints, a remote
    store has no fingerprints: those are not compared."""
    was, now_d = json.loads(saved), json.loads(now)
    if was.get("labels") != now_d["labels"] or was.get("contract") != now_d["contract"]:
        what = "of other labels or preprocessing than"
    elif "shards" in was and was["shards"] != now_d["shards"]:
        n_was = sum(c for _, c in was["shards"])
        what = (f"of other samples ({n_was} windows in {len(was['shards'])} shards) than the {store.n_samples} windows "
                f"in {len(store.shards)} shards of")
    elif "fingerprints" in was and "fingerprints" in now_d and was["fingerprints"] != now_d["fingerprints"]:
        i = next(k for k, (a, b) in enumerate(zip(was["fingerprints"], now_d["fingerprints"])) if a != b)
        name = now_d["shards"][i][0]
        return ConfigError(f"cannot resume from {path}: shard {name} of data.store={cfg.data.store} changed since the "
                           "checkpoint was written (its size or content: replaced or rebuilt under the same name and "
                           "sample count), so its data position would go on in other windows. Put the store's shard "
                           "back as it was (a copy of the store may live elsewhere), or choose another train.out.")
    else:
        return None
    return ConfigError(f"cannot resume from {path}: it was trained on a store {what} data.store={cfg.data.store} "
                       "(its index.json); its data position is a place in that store's samples. Resume on that store "
                       "(a copy of it may live elsewhere), or choose another train.out.")


def _load_checkpoint(path: Path, cfg: PretrainConfig, device: torch.device, store: StoreInfo,
                     schedule: int, identity: str) -> dict[str, Any]:
    """The resumable state at ``path``, refused when unreadable, written under another configuration,
    on a store of other labels or preprocessing, or under a cosine schedule of another length than
    ``schedule`` (the learning rates from its step on would follow another curve than its steps did)."""
    from ..train.checkpoint import config_changes

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable pre-training checkpoint ({' '.join(str(exc).split())[:200]}); "
                              "delete it to start again, or choose another train.out.") from None
    if isinstance(state, dict) and isinstance(state.get("config"), str):
        changed = config_changes(json.loads(state["config"]), json.loads(json.dumps(cfg.to_dict())), RESUMABLE_CHANGES,
                                 ("publish",))
        if changed:
            raise ConfigError(f"cannot resume from {path}: it was written with another configuration ({'; '.join(changed)}). "
                              "Resume with the settings it was written with, or choose another train.out.")
    if isinstance(state, dict) and isinstance(state.get("store"), str):
        refusal = _other_store(state["store"], store, cfg, path, identity)
        if refusal is not None:
            raise refusal
    was = state.get("schedule_steps") if isinstance(state, dict) else None
    if was is not None and int(was) != schedule:
        o, t = cfg.optim, cfg.train
        why = (f"optim.schedule_steps={o.schedule_steps}" if o.schedule_steps else f"train.max_steps={t.max_steps}"
               if t.max_steps else f"the steps of train.epochs={t.epochs}")
        raise schedule_changed(path, int(was), schedule, why, state.get("step"), "train.out")
    return state


def _loss(cfg: PretrainConfig, logits: torch.Tensor, t: torch.Tensor, w: torch.Tensor, kn: torch.Tensor) -> torch.Tensor:
    r = cfg.recipe
    if r.loss == "bce":
        el = bce_loss(logits.float(), t)
    else:
        el = asymmetric_loss(logits, t, kn, gamma=r.gamma, clip=r.clip)
    return (el * w).sum()


def pretrain(cfg: PretrainConfig, *, on_step: Callable[[int], None] | None = None) -> PretrainResult:
    """Run (or resume) pre-training as configured; returns the history and the published model."""
    info = D.setup(cfg.train.device)
    try:
        return _run(cfg, info, on_step)
    except KeyboardInterrupt as exc:
        if str(exc):
            raise
        raise TrainingInterrupted(interrupted_note(Path(cfg.train.out) / "checkpoints" / "last.pt",
                                                   "when the same command is run again (train.resume=true, the default)",
                                                   "train.ckpt_every=N")) from None
    finally:
        D.cleanup(info)


def _run(cfg: PretrainConfig, info: D.DistInfo, on_step: Callable[[int], None] | None) -> PretrainResult:
    t = cfg.train
    out = Path(t.out)
    store = open_store(cfg.data.store)
    val_store = _check_stores(cfg, store)
    micro, total, locate = _plan(store, cfg, info.world_size)
    per_rank = micro // info.world_size
    torch.manual_seed(t.seed)
    model = build_pretrain_model(cfg, store).to(info.device)
    ema = None
    if t.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    o = cfg.optim
    schedule = o.schedule_steps or total
    if info.is_main:
        warn_endless_warmup(f"optim.warmup_steps={o.warmup_steps}", o.warmup_steps, schedule,
                            f"train.max_steps={t.max_steps}" if t.max_steps else f"the steps of train.epochs={t.epochs}", o.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, warmup=o.warmup_steps, total=schedule, min_ratio=o.min_lr_ratio))
    ckpt = out / "checkpoints" / "last.pt"
    step, history = 0, []
    # the store's identity (its shards' sizes and ends read): the main process records it with every checkpoint,
    # a resume compares it
    identity = _store_identity(store) if info.is_main or (t.resume and ckpt.exists()) else ""
    if ckpt.exists() and not t.resume:
        raise ConfigError(f"{out} already holds a pre-training run ({ckpt}); choose another train.out, or "
                          "train.resume=true to continue it.")
    if t.resume and ckpt.exists():
        state = _load_checkpoint(ckpt, cfg, info.device, store, schedule, identity)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            step, history = int(state["step"]), list(json.loads(state["history"]))
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{ckpt}: does not fit this run's model and optimiser ({' '.join(str(exc).split())[:200]}); "
                                  "resume with the configuration it was written with, or choose another train.out.") from None
        if info.is_main:
            log.info("resumed from %s at step %d", ckpt, step)
    net: nn.Module = model
    if info.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    fwd = torch.compile(net) if t.compile else net
    amp = torch.autocast(info.device.type, dtype=torch.bfloat16) if t.bf16 else contextlib.nullcontext()
    contract = model.contract
    L = len(store.labels)
    it, it_epoch = None, -1
    t_data = t_compute = 0.0
    model.train()
    while step < total:
        epoch, micro0 = locate(step)
        if it is None or epoch != it_epoch:
            it = iter_batches(store, global_batch=micro, epoch=epoch, seed=t.seed, rank=info.rank, world=info.world_size,
                              split=cfg.data.split, shuffle_buffer=cfg.data.shuffle_buffer, start_batch=micro0)
            it_epoch = epoch
        opt.zero_grad(set_to_none=True)
        torch.manual_seed(_step_seed(t.seed, step, info.rank))
        loss_sum = 0.0
        for a in range(t.accum_steps):
            t0 = time.perf_counter()
            x, states, keys = next(it)
            x = transform_batch(x, keys, store_leads=store.contract.leads, model_leads=contract.leads, seed=t.seed,
                                epoch=epoch, lead_augment_p=cfg.recipe.lead_augment_p, lead_mask_p=cfg.recipe.lead_mask_p)
            tg, w, kn = (torch.from_numpy(v).to(info.device) for v in targets(states, cfg.recipe.uncertain))
            xb = torch.from_numpy(x).to(info.device)
            t1 = time.perf_counter()
            sync = net.no_sync() if info.distributed and a < t.accum_steps - 1 else contextlib.nullcontext()
            with sync:
                with amp:
                    logits = fwd(xb)
                loss = _loss(cfg, logits, tg, w, kn) / (per_rank * L * t.accum_steps)
                loss.backward()
            loss_sum += float(loss.detach()) * info.world_size
            t_data += t1 - t0
            t_compute += time.perf_counter() - t1
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], o.grad_clip)
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        mean_loss = D.all_reduce_sum(info, loss_sum) / info.world_size
        # epochs numbered from 1, as fine-tuning's log.csv (the last step of train.epochs=3 read "epoch 2")
        history.append({"step": step, "epoch": epoch + 1, "loss": mean_loss, "lr": sched.get_last_lr()[0]})
        if info.is_main and (step % t.log_every == 0 or step == total):
            log.info("step %d/%d epoch %d loss %.5f lr %.2e", step, total, epoch + 1, mean_loss, sched.get_last_lr()[0])
        if step % t.ckpt_every == 0 or step == total:
            if info.is_main:
                save_state({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "ema": ema.state_dict() if ema is not None else None, "step": step,
                            "history": json.dumps(history), "config": json.dumps(cfg.to_dict()),
                            "store": identity, "schedule_steps": schedule}, ckpt,
                           "run the same command again to resume")
            D.barrier(info)
        if on_step is not None:
            on_step(step)
    result = PretrainResult(out, step, history, rank=info.rank)
    final = model
    if ema is not None and cfg.publish.use_ema:
        final = _ema_model(model, ema)
    if info.is_main:
        (out / "history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
        (out / "timing.json").write_text(json.dumps({"data_s": t_data, "compute_s": t_compute}) + "\n", encoding="utf-8")
        if cfg.data.val_store:
            result.report = evaluate_store(final, val_store, out / "auroc.csv", device=info.device)
        from .publish import publish

        result.model_path = publish(final, out / "model", cfg=cfg, store=store, history=history, report=result.report)
    D.barrier(info)
    return result


def _ema_model(model: Net1D, ema: nn.Module) -> Net1D:
    import copy

    m = copy.deepcopy(model)
    m.load_state_dict(ema.module.state_dict())
    return m


@torch.no_grad()
def evaluate_store(model: Net1D, store: StoreInfo, csv_path: Path | None = None, *, batch: int = 64,
                   device: torch.device | str = "cpu") -> dict[str, Any]:
    """Per-label AUROC of ``model`` on every window of ``store`` (targets: positive vs none/negated;
    uncertain windows left out of that label).  Writes ``csv_path`` (label, n_pos, n_neg, auroc)."""
    from sklearn.metrics import roc_auc_score

    if tuple(model.labels) != tuple(store.labels):
        raise ValueError("the evaluation store's labels differ from the model's; build it with the same rules.")
    model.eval()
    # windows are scored ``batch`` at a time: a held-out store is never in memory whole (100 000 windows
    # of the published contract are 24 GB as float32), only its label states and scores are
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    parts: list[np.ndarray] = []

    def score() -> None:
        parts.append(torch.sigmoid(model(torch.from_numpy(np.concatenate(xs)).to(device))).float().cpu().numpy())
        xs.clear()

    for x, st, keys in iter_batches(store, global_batch=1, shuffle=False):
        xs.append(transform_batch(x, keys, store_leads=store.contract.leads, model_leads=model.contract.leads, seed=0, epoch=0))
        ys.append(st)
        if len(xs) == batch:
            score()
    if xs:
        score()
    n = len(ys)
    Y = np.concatenate(ys)
    scores = np.concatenate(parts)
    rows = []
    for j, lab in enumerate(store.labels):
        keep = Y[:, j] != 2
        y = (Y[keep, j] == 1).astype(int)
        npos, nneg = int(y.sum()), int(len(y) - y.sum())
        auc = float(roc_auc_score(y, scores[keep, j])) if npos and nneg else float("nan")
        rows.append({"label": lab, "n_pos": npos, "n_neg": nneg, "auroc": auc})
    if csv_path is not None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(csv_path, index=False)
    defined = [r["auroc"] for r in rows if not np.isnan(r["auroc"])]
    model.train()
    return {"n_windows": n, "n_labels_defined": len(defined),
            "mean_auroc": float(np.mean(defined)) if defined else float("nan"),
            "per_label": {r["label"]: r["auroc"] for r in rows if not np.isnan(r["auroc"])}}
