"""Pre-training configuration: frozen dataclasses read from YAML with ``key=value`` overrides.

Same conventions as fine-tuning (:mod:`ecgfounder.train.config`, whose YAML reader, override
parser and type checker are reused): sections ``data``, ``model``, ``recipe``, ``optim``,
``train``, ``publish``; unknown keys are refused with the valid ones listed.  Example::

    data:   {store: shards/train, val_store: shards/val, shuffle_buffer: 2000}
    model:  {size: base, leads: 12}
    recipe: {loss: asymmetric, gamma: 1.5, uncertain: mask, lead_mask_p: 0.1}
    optim:  {lr: 1.0e-3, warmup_steps: 500}
    train:  {batch_size: 1024, accum_steps: 4, epochs: 20, bf16: true, ema_decay: 0.999, ckpt_every: 1000}
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..train.config import ConfigError, _build, apply_overrides
from .recipe import LOSSES, SIZE_PRESETS, UNCERTAIN_POLICIES, size_preset
from .store import SPLITS

__all__ = ["PretrainConfig", "PTDataConfig", "PTModelConfig", "RecipeConfig", "PTOptimConfig", "PTTrainConfig",
           "PublishConfig", "load_pretrain_config", "pretrain_config_from_dict"]


def _choice(where: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}={value!r} is not valid; choose one of {list(choices)}.")


@dataclass(frozen=True)
class PTDataConfig:
    """``store``: training shard store (folder, ``http(s)://`` prefix or ``pipe:`` template);
    ``val_store``: held-out store for the per-label AUROC report (optional); ``split``:
    ``samples`` (exact multi-process equivalence) or ``shards`` (no duplicated I/O)."""

    store: str | None = None
    val_store: str | None = None
    split: str = "samples"
    shuffle_buffer: int = 1000


@dataclass(frozen=True)
class PTModelConfig:
    """``size``: tiny / small (≈ 8.6 M) / base (30.8 M, released) / large (≈ 67 M); ``leads``:
    ``12`` (the store's leads) or ``1`` (lead I, with the single-lead augmentation);
    ``arch``: Net1DConfig overrides (e.g. ``{kernel_size: 8}``)."""

    size: str = "base"
    leads: int = 12
    arch: Any = None


@dataclass(frozen=True)
class RecipeConfig:
    """See :mod:`ecgfounder.pretrain.recipe` for the reading of each option."""

    loss: str = "asymmetric"
    gamma: float = 1.5
    clip: float = 0.05
    uncertain: str = "mask"
    lead_augment_p: float = 0.5
    lead_mask_p: float = 0.0


@dataclass(frozen=True)
class PTOptimConfig:
    """AdamW; linear warm-up over ``warmup_steps``, then cosine to ``min_lr_ratio`` of ``lr`` at
    ``schedule_steps`` optimiser steps (null: the run's length, ``train.max_steps`` or the steps of
    ``train.epochs``), flat after.  Set it to train one schedule in pieces; a resume whose schedule
    length differs from the checkpoint's is refused."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule_steps: int | None = None
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0


@dataclass(frozen=True)
class PTTrainConfig:
    """``batch_size`` is global (all processes, one optimiser step = ``accum_steps`` micro-batches
    of ``batch_size / accum_steps``); ``max_steps`` (optimiser steps) overrides ``epochs``.
    ``resume``: continue from ``out/checkpoints/last.pt`` (only under the settings it was written
    with, except how long and how to run); false refuses an ``out`` that already holds a run."""

    out: str = "pretrain-run"
    batch_size: int = 64
    accum_steps: int = 1
    epochs: int = 1
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    compile: bool = False
    ema_decay: float = 0.0
    ckpt_every: int = 500
    log_every: int = 10
    resume: bool = True


@dataclass(frozen=True)
class PublishConfig:
    """What the model card says, which weights are published (the EMA ones when EMA is on) and
    where: ``repo_id`` (``owner/name``) names the Hub repository in the card; ``push: true``
    uploads the folder there at the end of the run."""

    name: str = "ecgfounder-pretrained"
    description: str = ""
    use_ema: bool = True
    repo_id: str | None = None
    push: bool = False
    license: str = "other"


@dataclass(frozen=True)
class PretrainConfig:
    data: PTDataConfig = field(default_factory=PTDataConfig)
    model: PTModelConfig = field(default_factory=PTModelConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    optim: PTOptimConfig = field(default_factory=PTOptimConfig)
    train: PTTrainConfig = field(default_factory=PTTrainConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)

    def validate(self) -> "PretrainConfig":
        if not self.data.store:
            raise ConfigError("data.store is not set; give the shard store (data.store=DIR), built with 'ecgfounder pretrain build-store'.")
        _choice("data.split", self.data.split, SPLITS)
        _choice("model.size", self.model.size, tuple(SIZE_PRESETS))
        _choice("model.leads", self.model.leads, (1, 12))
        _choice("recipe.loss", self.recipe.loss, LOSSES)
        _choice("recipe.uncertain", self.recipe.uncertain, UNCERTAIN_POLICIES)
        if self.model.arch is not None:
            from ..models.net1d import Net1DConfig

            valid = [f for f in Net1DConfig.__dataclass_fields__ if f not in ("in_channels", "n_classes")]
            if not isinstance(self.model.arch, Mapping):
                raise ConfigError(f"model.arch={self.model.arch!r} must be a mapping of Net1DConfig fields ({', '.join(valid)}) or null.")
            bad = [k for k in self.model.arch if k not in valid]
            if bad:
                raise ConfigError(f"model.arch: unknown field(s) {bad}; valid fields: {', '.join(valid)}.")
            try:  # the values too, now rather than when the run builds its model
                size_preset(self.model.size, in_channels=1, n_classes=1, **self.model.arch)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"model.arch={dict(self.model.arch)!r} does not make a Net1D of model.size="
                                  f"{self.model.size!r}: {str(exc).replace('Net1DConfig.', 'model.arch.').rstrip('.')}; "
                                  "fix that field or remove it.") from None
        for name in ("lead_augment_p", "lead_mask_p"):
            v = getattr(self.recipe, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"recipe.{name}={v} must be a probability in [0, 1].")
        r, o, t = self.recipe, self.optim, self.train
        if r.gamma < 0:
            raise ConfigError(f"recipe.gamma={r.gamma} must be >= 0 (0: no focusing).")
        if not 0 <= r.clip < 1:
            raise ConfigError(f"recipe.clip={r.clip} must be in [0, 1) (0: no probability shift).")
        if o.lr <= 0:
            raise ConfigError(f"optim.lr={o.lr} must be positive.")
        if not 0 <= o.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio={o.min_lr_ratio} must be in [0, 1].")
        for where, v, note in (("data.shuffle_buffer", self.data.shuffle_buffer, " (0 or 1: no shuffle buffer)"),
                               ("optim.weight_decay", o.weight_decay, ""), ("optim.warmup_steps", o.warmup_steps, ""),
                               ("optim.grad_clip", o.grad_clip, " (0: no clipping)")):
            if v < 0:
                raise ConfigError(f"{where}={v} must be >= 0{note}.")
        _choice("train.device", t.device, ("auto", "cpu", "cuda"))
        for where, v, note in (("train.epochs", t.epochs, ""), ("train.log_every", t.log_every, " step"),
                               ("train.max_steps", t.max_steps, " (null: train.epochs decide)"),
                               ("optim.schedule_steps", o.schedule_steps, " (null: the run's length)")):
            if v is not None and v < 1:
                raise ConfigError(f"{where}={v} must be >= 1{note}.")
        if o.schedule_steps is not None and o.warmup_steps >= o.schedule_steps:
            raise ConfigError(f"optim.warmup_steps={o.warmup_steps} does not fit in optim.schedule_steps={o.schedule_steps}: "
                              "the warm-up must end before the schedule; lower one or raise the other.")
        if t.accum_steps < 1:
            raise ConfigError(f"train.accum_steps={t.accum_steps} must be >= 1 (micro-batches per optimiser step).")
        if t.batch_size < 1 or t.batch_size % t.accum_steps:
            raise ConfigError(f"train.batch_size={t.batch_size} must be a positive multiple of train.accum_steps={t.accum_steps}.")
        if not 0 <= t.ema_decay < 1:
            raise ConfigError(f"train.ema_decay={t.ema_decay} must be in [0, 1) (0: no EMA).")
        if t.ckpt_every < 1:
            raise ConfigError(f"train.ckpt_every={t.ckpt_every} must be >= 1 step.")
        pub = self.publish
        if pub.push and not pub.repo_id:  # (refused at the end of the run before: after the training)
            raise ConfigError("publish.push=true needs publish.repo_id (owner/name of the Hub repository); set it, or "
                              "publish.push=false.")
        if pub.repo_id is not None:
            from ..models.hubref import parse_hf_reference

            try:
                if parse_hf_reference(pub.repo_id) != (pub.repo_id, None):  # (no hf://, no @revision)
                    raise ValueError
            except ValueError:
                raise ConfigError(f"publish.repo_id={pub.repo_id!r} is not a Hub repository id; write OWNER/NAME "
                                  "(letters, digits, '.', '_', '-').") from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pretrain_config_from_dict(data: Mapping[str, Any] | None) -> PretrainConfig:
    return _build(PretrainConfig, dict(data or {}), "").validate()


def load_pretrain_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> PretrainConfig:
    """Read a YAML file (or none: defaults), apply ``section.key=value`` overrides, validate.
    Relative store paths in the file are taken relative to the file's folder."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file {p} not found.")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections.")
        data = loaded
        for key in ("store", "val_store"):
            v = data["data"].get(key) if isinstance(data.get("data"), dict) else None
            if isinstance(v, str) and "://" not in v and not v.startswith("pipe:") and (p.parent / v).exists():
                data["data"][key] = str((p.parent / v).resolve())
    return pretrain_config_from_dict(apply_overrides(data, overrides))
