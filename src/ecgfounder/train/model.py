"""The network being trained: the starting model, which parameters train, optimiser groups with
layer-wise learning-rate decay, and the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import torch

from ..models.net1d import Net1D, Net1DConfig
from ..signal.preprocess import PreprocessContract
from .config import SMALL_ARCH, ConfigError, FinetuneConfig

__all__ = ["build_model", "configure_trainable", "freeze_modes", "param_groups", "make_optimizer", "schedule_length",
           "make_scheduler", "warmup_cosine", "warn_endless_warmup", "monitor"]


def build_model(cfg: FinetuneConfig) -> Net1D:
    """The starting network (head not yet replaced): published/loaded weights or a random init
    (seeded with ``train.seed``; the caller's global generator is left as it was).  A one-lead
    model fed ``data.lead`` carries that lead in its contract, so that the saved model reads it."""
    model = _start_model(cfg)
    if cfg.data.lead and len(model.contract.leads) == 1:  # the lead it learns from is the lead it reads
        model.contract = dataclasses.replace(model.contract, leads=(cfg.data.lead,))
    return model


def _start_model(cfg: FinetuneConfig) -> Net1D:
    m = cfg.model
    leads = cfg.data.lead_names()
    if m.init == "random":
        return _random_model(cfg, leads or tuple(PreprocessContract().leads))
    from ..errors import WeightsDownloadError
    from ..models.loading import load_model

    try:
        model = load_model(m.init, strict=m.strict)
    except WeightsDownloadError as exc:  # its fix names load_model's argument and predict's flag: here, model.init
        raise WeightsDownloadError(_LOAD_FIX.sub(lambda g: f"model.init={g.group(1)}", str(exc))) from None
    base = model.contract or PreprocessContract(leads=tuple(PreprocessContract().leads[: model.config.in_channels]))
    if leads is not None and tuple(leads) != tuple(base.leads):
        raise ConfigError(
            f"data.leads={list(leads)} but the weights {m.init} take {list(base.leads)}; "
            "leave data.leads unset or choose weights for those leads (12-lead / 1-lead)."
        )
    model.contract = base.with_mode(cfg.data.preprocess_mode)
    d = model.description  # the weights trained from here are no longer the published file: its name, hash
    base_of = {**dict(d.source or {}), **{k: v for k, v in (("name", d.name), ("sha256", d.sha256),  # and revision
                                                               ("revision", d.revision)) if v}}  # go to source.base
    model.description = d.replace(name=None, sha256=None, revision=None,
                                  source={"init": str(m.init), "base": base_of})
    return model


# "load_model('./X.pth'), or model='./X.pth' (CLI: --checkpoint ./X.pth)" in the weights' messages
_LOAD_FIX = re.compile(r"load_model\('?([^')]*)'?\), or model='?[^' ]*'? \(CLI: --checkpoint [^)]*\)")


def _random_model(cfg: FinetuneConfig, leads: tuple[str, ...]) -> Net1D:
    arch = cfg.model.arch
    if isinstance(arch, str):
        arch = {} if arch == "released" else dict(SMALL_ARCH)
    try:
        net_cfg = Net1DConfig(**{**dict(arch), "in_channels": len(leads), "n_classes": 1})
    except TypeError as exc:
        raise ConfigError(f"model.arch: {exc}; valid fields: {list(Net1DConfig.__dataclass_fields__)}.") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        model = Net1D(net_cfg)
    model.contract = PreprocessContract(leads=leads, mode=cfg.data.preprocess_mode)
    model.source = {"init": "random", "arch": net_cfg.to_dict()}
    return model


def _depth(name: str, n_stages: int) -> int:
    if name.startswith("stage_list."):
        return int(name.split(".")[1]) + 1
    if name.startswith("dense."):
        return n_stages + 1
    return 0


def _lowest_trained(model: Net1D, strategy: str, trainable_stages: int) -> int:
    n = len(model.stage_list)
    return {"full": 0, "partial": n + 1 - trainable_stages, "linear_probe": n + 1}[strategy]


def configure_trainable(model: Net1D, strategy: str, trainable_stages: int = 2) -> None:
    """Freeze parameters: ``linear_probe`` keeps only the head trainable, ``partial`` the last
    ``trainable_stages`` stages and the head, ``full`` everything."""
    n = len(model.stage_list)
    lowest = _lowest_trained(model, strategy, trainable_stages)
    for name, p in model.named_parameters():
        # BatchNorm modules exist for checkpoint compatibility but are not applied when use_bn is
        # off: their parameters get no gradient (DDP would refuse them), so they stay frozen
        unused = not model.config.use_bn and (name.startswith("first_bn.") or ".bn" in name)
        p.requires_grad_(_depth(name, n) >= lowest and not unused)


def freeze_modes(model: Net1D, strategy: str, trainable_stages: int = 2) -> None:
    """Put the frozen layers (see :func:`configure_trainable`) in eval mode after ``model.train()``:
    a frozen backbone's BatchNorm statistics stay as they are and its dropout stays off
    (``use_bn`` / ``use_do`` architectures), so the head learns on the features it is used with."""
    n = len(model.stage_list)
    lowest = _lowest_trained(model, strategy, trainable_stages)
    for name, m in model.named_modules():
        if name and not any(m.children()) and _depth(name + ".", n) < lowest:
            m.eval()


def param_groups(model: Net1D, lr: float, weight_decay: float, layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """Optimiser groups: per depth (stem 0, stage i → i+1, head n+1) ``lr · layer_decay**(n+1-depth)``;
    biases and other 1-D tensors without weight decay."""
    n = len(model.stage_list)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        d = _depth(name, n)
        decay = p.ndim > 1
        g = groups.setdefault((d, decay), {"params": [], "lr": lr * layer_decay ** (n + 1 - d),
                                            "weight_decay": weight_decay if decay else 0.0, "depth": d})
        g["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def make_optimizer(cfg: FinetuneConfig, model: Net1D) -> torch.optim.Optimizer:
    """AdamW/Adam over :func:`param_groups` (``optim.*``, ``strategy.layer_decay``)."""
    o = cfg.optim
    groups = param_groups(model, o.lr, o.weight_decay, cfg.strategy.layer_decay)
    if not groups:
        raise ConfigError("no trainable parameters: check strategy.name / strategy.trainable_stages.")
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return opt_cls(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def schedule_length(cfg: FinetuneConfig, steps_per_epoch: int) -> int | None:
    """The cosine schedule's length in optimiser steps: ``optim.schedule_steps``, else
    ``train.max_steps``, else ``train.epochs × steps_per_epoch``; ``None`` for the other schedulers."""
    o, t = cfg.optim, cfg.train
    if o.scheduler != "cosine":
        return None
    return o.schedule_steps or t.max_steps or steps_per_epoch * t.epochs


def make_scheduler(cfg: FinetuneConfig, opt: torch.optim.Optimizer, total_steps: int | None):
    """``optim.scheduler``: linear warm-up then cosine to ``min_lr_ratio`` at ``total_steps`` (the
    :func:`schedule_length`; stepped per optimiser step), ReduceLROnPlateau on the monitored metric
    (stepped per epoch), or ``None``."""
    o = cfg.optim
    if o.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=monitor(cfg)[1], factor=o.plateau_factor,
                                                          patience=o.plateau_patience)
    if o.scheduler == "none":
        return None
    warm = o.warmup_steps or int(round(o.warmup_ratio * total_steps))
    t = cfg.train
    why = (f"optim.schedule_steps={o.schedule_steps}" if o.schedule_steps else f"train.max_steps={t.max_steps}"
           if t.max_steps else f"train.epochs={t.epochs} of {total_steps // t.epochs} steps")
    setting = f"optim.warmup_steps={warm}" if o.warmup_steps else f"optim.warmup_ratio={o.warmup_ratio} ({warm} steps)"
    warn_endless_warmup(setting, warm, total_steps, why, o.lr)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: warmup_cosine(step, warmup=warm, total=total_steps, min_ratio=o.min_lr_ratio))


def warn_endless_warmup(setting: str, warmup: int, total: int, why: str, lr: float) -> None:
    """Warn when the linear warm-up (``setting``: its option, e.g. ``optim.warmup_steps=100``) lasts
    as long as the whole cosine schedule of ``total`` steps (``why``: the setting giving that
    length): the learning rate then reaches ``lr`` at best at the last step and never decays; the
    run trained at a fraction of it without a word."""
    if warmup < 1 or warmup < total:
        return
    import warnings

    end = lr * warmup_cosine(total - 1, warmup=warmup, total=total)
    warnings.warn(f"{setting} is not shorter than the cosine schedule of {total} optimiser steps ({why}): the "
                  f"whole run warms up (its learning rate reaches {end:.3g} at its last step; optim.lr={lr:g}) and the "
                  "cosine decay never starts. Lower the warm-up, or lengthen the schedule (optim.schedule_steps, or "
                  "train longer).", stacklevel=2)


def warmup_cosine(step: int, *, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at
    ``total`` steps, flat after (fine-tuning's ``optim.scheduler: cosine`` and pre-training's)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def monitor(cfg: FinetuneConfig) -> tuple[str, str]:
    """``(metric, "max" | "min")`` that picks the best epoch (``train.monitor``)."""
    m = cfg.train.monitor
    if m == "auto":
        m = "val_mae" if cfg.task.type == "regression" else "val_auroc"
    return m, ("max" if m == "val_auroc" else "min")
