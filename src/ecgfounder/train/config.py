"""Fine-tuning configuration: frozen dataclasses, read from YAML with ``key=value`` overrides.

A configuration file has the sections ``data``, ``model``, ``task``, ``strategy``, ``optim``,
``train``, ``output``, ``eval`` and ``augment`` (all optional; every field has a default).  Unknown keys are
refused with the list of valid ones, so a typo never silently falls back to a default.

Overrides use dotted keys and YAML values: ``train.epochs=3``, ``optim.lr=1e-4``,
``data.label_columns=[AF]``, ``model.init=random``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .._fileio import to_jsonable
from ._schema import ConfigError, build_dataclass as _build

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "TaskConfig", "StrategyConfig", "OptimConfig", "TrainConfig",
    "OutputConfig", "EvalConfig", "AugmentConfig", "FinetuneConfig", "load_config", "config_from_dict",
    "apply_overrides", "parse_override", "TASK_TYPES", "STRATEGIES", "SMALL_ARCH",
]

TASK_TYPES = ("binary", "multilabel", "multiclass", "regression")
STRATEGIES = ("full", "linear_probe", "partial")
OPTIMIZERS = ("adamw", "adam")
SCHEDULERS = ("cosine", "plateau", "none")
PRESETS = ("ptbxl", "cinc2021", "cpsc2021", "cpsc2019")

# A small Net1D for CPU experiments and tests (about 55 k parameters for one lead).
SMALL_ARCH: dict[str, Any] = {
    "base_filters": 16,
    "filter_list": [16, 32, 32, 64],
    "m_blocks_list": [1, 1, 1, 1],
}


def _choice(section: str, name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{name}={value!r} is not valid; choose one of {list(choices)}.")


def _at_least(section: str, obj: Any, names: Sequence[str], low: float, note: str = "") -> None:
    """Refuse ``section.name`` values below ``low`` (``None`` values are left alone)."""
    for name in names:
        v = getattr(obj, name)
        if v is not None and v < low:
            raise ConfigError(f"{section}.{name}={v} is not valid; it must be >= {low:g}{note}.")


@dataclass(frozen=True)
class DataConfig:
    """Where the ECGs and labels are and how they become model input.

    Attributes:
        manifest: CSV or Parquet table, one row per example (see :mod:`ecgfounder.train.manifest`).
            Relative record paths are resolved against the manifest's folder.
        preset: build the manifest from a known dataset instead (``ptbxl``, ``cinc2021``,
            ``cpsc2021``, ``cpsc2019``); ``root`` is then the dataset folder.
        preset_task: task of the preset (PTB-XL: all, diagnostic, subdiagnostic, superdiagnostic,
            form, rhythm; CinC 2021: scored; CPSC 2021: af; CPSC 2019: heart_rate).
        label_columns: manifest columns used as targets (empty: every column that is not a
            reserved one such as path, patient_id, split, start_s, duration_s).
        split_fractions: train/val/test fractions for rows without a split (patient-level).
        leads: ``12``, ``1`` (lead I) or a list of lead names, in model-input order (default: the
            pretrained weights' leads, or 12 for random initialisation).
        lead: for one-lead input, take this lead of the recording (e.g. ``II``).
        preprocess_mode: ``published`` (the authors' filter chain), ``zscore`` or ``none``.
        cache_dir: folder of the preprocessed-window cache (default: ``$ECGFOUNDER_CACHE`` or
            ``~/.cache/ecgfounder/windows``).
        cache_workers: processes that write the cache (0: one per CPU core).
        format: force a reader format for every record (default: detect).
        min_positives: classification labels with fewer training positives are dropped (warning).
        train_stride_s: presets cut into windows (``cpsc2021``): training windows also start every
            ``train_stride_s`` seconds (overlapping: many more distinct training windows);
            validation and test windows stay consecutive and non-overlapping.  None: off.
        test_patients, val_patients: patient ids put in the test / validation split (e.g. one
            fold of a leave-patients-out evaluation); the other patients are divided by
            ``split_fractions`` with the fixed splits' fractions set to zero.
    """

    manifest: str | None = None
    preset: str | None = None
    root: str | None = None
    preset_task: str | None = None
    path_column: str = "path"
    label_columns: tuple[str, ...] = ()
    patient_column: str = "patient_id"
    split_column: str = "split"
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 0
    leads: Any = None
    lead: str | None = None
    preprocess_mode: str = "published"
    cache_dir: str | None = None
    cache_workers: int = 0
    format: str | None = None
    min_positives: int = 1
    train_stride_s: float | None = None
    test_patients: tuple[str, ...] = ()
    val_patients: tuple[str, ...] = ()

    def validate(self) -> None:
        _at_least("data", self, ("cache_workers",), 0, " (0: one worker per CPU core)")
        _at_least("data", self, ("min_positives",), 0)
        if self.format is not None:
            from ..io.detect import canonical_format

            try:
                canonical_format(self.format)
            except ValueError as exc:
                raise ConfigError(f"data.format: {exc}") from None
        names = self.lead_names() or ()
        if self.leads is not None and not names:
            raise ConfigError(f"data.leads={self.leads!r} names no lead; use 12, 1 or a list of lead names (e.g. [I, II]).")
        if len(set(names)) < len(names):
            raise ConfigError(f"data.leads={list(names)} names a lead more than once; list each lead once (e.g. [I, II]).")
        if self.train_stride_s is not None and self.train_stride_s <= 0:
            raise ConfigError(f"data.train_stride_s={self.train_stride_s} must be a positive number of seconds (or null: off).")
        if set(self.test_patients) & set(self.val_patients):
            raise ConfigError(f"patient(s) {sorted(set(self.test_patients) & set(self.val_patients))} are in both "
                              "data.test_patients and data.val_patients; list each once.")
        if self.manifest is None and self.preset is None:
            raise ConfigError("data.manifest is not set; give a manifest file (data.manifest=PATH) "
                              f"or a preset with its folder (data.preset={'|'.join(PRESETS)} data.root=DIR).")
        if self.preset is not None:
            _choice("data", "preset", self.preset, PRESETS)
            if not self.root:
                raise ConfigError(f"data.preset={self.preset} needs data.root, the dataset folder.")
        fr = self.split_fractions
        if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
            raise ConfigError(f"data.split_fractions={list(fr)} must be three non-negative numbers summing to 1 (train, val, test).")
        from ..signal.preprocess import MODES

        _choice("data", "preprocess_mode", self.preprocess_mode, MODES)

    def lead_names(self) -> tuple[str, ...] | None:
        from ..signal.preprocess import lead_set

        if self.leads is None:
            return None
        if isinstance(self.leads, (int, float)) or (isinstance(self.leads, str) and self.leads.isdigit()):
            try:
                return lead_set(int(self.leads))
            except ValueError:  # (its fix names lead_set's argument: here the setting)
                raise ConfigError(f"data.leads={self.leads!r}: no default lead set for {self.leads} leads; use 12, 1 or the "
                                  "lead names (e.g. data.leads=[I, II]).") from None
        if isinstance(self.leads, str):
            return (self.leads,)
        return tuple(str(x) for x in self.leads)


@dataclass(frozen=True)
class ModelConfig:
    """Which network and which starting weights.

    Attributes:
        init: ``12-lead`` / ``1-lead`` (published weights), a checkpoint file, or ``random``
            (random initialisation: the baseline).
        arch: for ``random``: ``released`` (the 30.8 M-parameter configuration), ``small``
            (:data:`SMALL_ARCH`), or a mapping of :class:`~ecgfounder.models.net1d.Net1DConfig`
            fields.
        strict: load checkpoints strictly (the head is replaced afterwards).
    """

    init: str = "12-lead"
    arch: Any = "released"
    strict: bool = True

    def validate(self) -> None:
        if isinstance(self.arch, str):
            _choice("model", "arch", self.arch, ("released", "small"))
        elif not isinstance(self.arch, Mapping):
            raise ConfigError(f"model.arch={self.arch!r} must be 'released', 'small' or a mapping of Net1DConfig fields.")


@dataclass(frozen=True)
class TaskConfig:
    """What is predicted.

    Attributes:
        type: ``binary``, ``multilabel``, ``multiclass`` or ``regression``.
        class_weighting: ``none`` or ``balanced`` (positive weight n_neg/n_pos per label; inverse
            class frequency for multi-class).
        standardize_targets: regression targets are z-scored with the training mean and std (the
            model de-standardises its output with ``task_meta``).
    """

    type: str = "multilabel"
    class_weighting: str = "none"
    standardize_targets: bool = True

    def validate(self) -> None:
        _choice("task", "type", self.type, TASK_TYPES)
        _choice("task", "class_weighting", self.class_weighting, ("none", "balanced"))


@dataclass(frozen=True)
class StrategyConfig:
    """How much of the network learns.

    Attributes:
        name: ``full`` (every weight), ``partial`` (the last ``trainable_stages`` stages and the
            head) or ``linear_probe`` (the head only, backbone frozen).
        trainable_stages: for ``partial``.
        layer_decay: layer-wise learning-rate decay (1.0: none); the head gets ``optim.lr``, stage
            ``k`` from the top ``lr * layer_decay**k``.
        probe_fast: linear probe by computing embeddings once and fitting the head with
            scikit-learn (LogisticRegression / Ridge, regularisation chosen on validation); false:
            train the head with the training loop.
        probe_c_grid: inverse regularisation strengths tried (Ridge uses ``alpha = 1/C``).
    """

    name: str = "full"
    trainable_stages: int = 2
    layer_decay: float = 1.0
    probe_fast: bool = True
    probe_c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)

    def validate(self) -> None:
        _choice("strategy", "name", self.name, STRATEGIES)
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"strategy.layer_decay={self.layer_decay} must be in (0, 1].")
        if self.trainable_stages < 0:
            raise ConfigError(f"strategy.trainable_stages={self.trainable_stages} must be >= 0.")
        if not self.probe_c_grid or any(c <= 0 for c in self.probe_c_grid):
            raise ConfigError(f"strategy.probe_c_grid={list(self.probe_c_grid)} must be one or more positive numbers "
                              "(e.g. [0.01, 0.1, 1.0, 10.0]).")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule (stepped once per optimiser step; plateau per epoch).

    ``cosine``: linear warm-up over ``warmup_steps`` (or ``warmup_ratio`` of the schedule), then
    cosine to ``min_lr_ratio`` at ``schedule_steps`` optimiser steps (null: ``train.max_steps`` or
    the steps of ``train.epochs``), flat after.  Set it to train one schedule in pieces; a resume
    under another length is refused (:func:`~ecgfounder.train.checkpoint.check_resume_config`)."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    schedule_steps: int | None = None
    min_lr_ratio: float = 0.0
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    clip_grad_norm: float | None = None

    def validate(self) -> None:
        _choice("optim", "name", self.name, OPTIMIZERS)
        _choice("optim", "scheduler", self.scheduler, SCHEDULERS)
        if self.lr <= 0:
            raise ConfigError(f"optim.lr={self.lr} must be positive.")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"optim.warmup_ratio={self.warmup_ratio} must be in [0, 1).")
        _at_least("optim", self, ("weight_decay", "warmup_steps", "plateau_patience"), 0)
        _at_least("optim", self, ("schedule_steps",), 1, " (null: train.max_steps or the steps of train.epochs)")
        if self.schedule_steps is not None and self.scheduler != "cosine":
            raise ConfigError(f"optim.schedule_steps={self.schedule_steps} applies only to optim.scheduler=cosine "
                              f"(now {self.scheduler!r}); remove it or set optim.scheduler=cosine.")
        if self.schedule_steps is not None and self.warmup_steps >= self.schedule_steps:
            raise ConfigError(f"optim.warmup_steps={self.warmup_steps} does not fit in optim.schedule_steps="
                              f"{self.schedule_steps}: the warm-up must end before the schedule; lower one or raise the other.")
        _at_least("optim", self, ("clip_grad_norm",), 0, " (null or 0: no clipping)")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas={list(self.betas)} must be two numbers in [0, 1) (e.g. [0.9, 0.999]).")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"optim.min_lr_ratio={self.min_lr_ratio} must be in [0, 1].")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"optim.plateau_factor={self.plateau_factor} must be in (0, 1) (e.g. 0.1).")


@dataclass(frozen=True)
class TrainConfig:
    """The loop.

    Attributes:
        batch_size: global batch (split evenly over DDP processes; must divide by their number).
        grad_accum: micro-batches per optimiser step.
        max_steps: stop after this many optimiser steps (None: ``epochs`` decide), inside an epoch if need
            be (a resume with more steps goes on there); also the cosine schedule's length unless
            ``optim.schedule_steps`` is set.
        early_stopping: epochs without improvement of ``monitor`` before stopping (0: off).
        monitor: ``auto`` (val AUROC for classification, val MAE for regression), ``val_loss``,
            ``val_auroc``, ``val_mae``.
        bf16: bfloat16 autocast for the forward pass.
        deterministic: ``torch.use_deterministic_algorithms(True)`` (needed for exact resume on GPU).
        checkpoint_every: also write the resumable checkpoint every N optimiser steps (0: epoch end only).
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda``.
        num_workers: DataLoader worker processes reading the cache.
    """

    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 128
    grad_accum: int = 1
    max_steps: int | None = None
    early_stopping: int = 5
    monitor: str = "auto"
    bf16: bool = False
    seed: int = 0
    deterministic: bool = True
    checkpoint_every: int = 0
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    threads: int | None = None

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)} must be >= 1.")
        _at_least("train", self, ("max_steps",), 1, " (null: train.epochs decide)")
        _at_least("train", self, ("threads",), 1, " (null: torch's default)")
        _at_least("train", self, ("early_stopping",), 0, " (0: off)")
        _at_least("train", self, ("checkpoint_every",), 0, " (0: at epoch ends only)")
        _at_least("train", self, ("num_workers",), 0)
        _choice("train", "monitor", self.monitor, ("auto", "val_loss", "val_auroc", "val_mae"))
        _choice("train", "device", self.device, ("auto", "cpu", "cuda"))


@dataclass(frozen=True)
class OutputConfig:
    """Where results go.  ``resume``: ``auto`` (continue from ``dir/checkpoints/last.pt`` when it
    exists), ``never`` (refuse a non-empty run folder) or a checkpoint path.  A checkpoint is resumed
    only under the settings it was written with; ``train.epochs``/``max_steps``/``early_stopping``,
    how the run executes (device, workers, threads, progress), data paths, ``output`` and ``eval``
    may change (:data:`~ecgfounder.train.checkpoint.RESUMABLE_CHANGES`), and ``optim.schedule_steps``
    as long as the cosine schedule keeps the checkpoint's length."""

    dir: str = "runs/finetune"
    resume: str = "auto"
    tensorboard: bool = True


@dataclass(frozen=True)
class EvalConfig:
    """Test report: bootstrap resamples for the 95 % CIs, thresholds chosen on validation.

    ``bootstrap_unit``: ``patient`` resamples patients (cluster bootstrap: honest when patients
    have several examples; degenerate with a single test patient) or ``record`` resamples rows.
    """

    n_boot: int = 1000
    seed: int = 0
    threshold_method: str = "youden"
    bootstrap_unit: str = "patient"

    def validate(self) -> None:
        _choice("eval", "bootstrap_unit", self.bootstrap_unit, ("patient", "record"))
        _choice("eval", "threshold_method", self.threshold_method, ("youden", "sensitivity", "f1"))
        if self.n_boot < 0:
            raise ConfigError(f"eval.n_boot={self.n_boot} must be >= 0 (1000 or more for reported intervals).")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation of the cached (preprocessed) training windows; off by default.

    Each training window of epoch ``e`` is transformed with a random generator seeded by
    ``(train.seed, e, example)``, so a resumed run sees exactly the same inputs.  Validation and
    test windows are never augmented.  Amplitudes are relative to the window's own standard
    deviation (windows are z-scored by the ``published`` and ``zscore`` modes).

    Attributes:
        p: probability that a training window is augmented at all.
        amplitude_scale: ``[low, high]``: the window is multiplied by a gain drawn uniformly.
        noise_std: standard deviation of additive white Gaussian noise.
        baseline_wander: amplitude of an added sinusoid of 0.05–0.5 Hz with random phase.
        time_shift_s: the window is shifted by up to ± this many seconds, the gap zero-filled.
        flip_prob: probability of inverting the polarity (for rhythm tasks, not morphology).
    """

    p: float = 1.0
    amplitude_scale: tuple[float, float] = (1.0, 1.0)
    noise_std: float = 0.0
    baseline_wander: float = 0.0
    time_shift_s: float = 0.0
    flip_prob: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.p > 0 and (tuple(self.amplitude_scale) != (1.0, 1.0) or self.noise_std > 0 or self.baseline_wander > 0
                               or self.time_shift_s > 0 or self.flip_prob > 0)

    def validate(self) -> None:
        if not 0 <= self.p <= 1:
            raise ConfigError(f"augment.p={self.p} must be in [0, 1].")
        lo, hi = self.amplitude_scale
        if not 0 < lo <= hi:
            raise ConfigError(f"augment.amplitude_scale={list(self.amplitude_scale)} must be [low, high] with 0 < low <= high (e.g. [0.8, 1.2]).")
        for name in ("noise_std", "baseline_wander", "time_shift_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augment.{name}={getattr(self, name)} must be >= 0 (0: off).")
        if not 0 <= self.flip_prob <= 1:
            raise ConfigError(f"augment.flip_prob={self.flip_prob} must be in [0, 1].")


@dataclass(frozen=True)
class FinetuneConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> "FinetuneConfig":
        for f in fields(self):
            getattr(self, f.name).validate() if hasattr(getattr(self, f.name), "validate") else None
        if self.model.init != "random" and self.model.arch != "released":
            raise ConfigError(
                f"model.arch={self.model.arch!r} applies only to model.init=random; pretrained weights "
                f"({self.model.init}) bring their own architecture."
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(dataclasses.asdict(self))

    def replace(self, **sections: Any) -> "FinetuneConfig":
        return dataclasses.replace(self, **sections)


def config_from_dict(data: Mapping[str, Any] | None) -> FinetuneConfig:
    """Build and validate a :class:`FinetuneConfig` from nested plain data."""
    cfg = _build(FinetuneConfig, dict(data or {}), "")
    return cfg.validate()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` → ``(["train", "epochs"], 3)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form section.key=value (e.g. train.epochs=3).")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of nested ``data`` with ``key=value`` overrides applied (unknown keys are caught when
    the result is turned into a :class:`FinetuneConfig`)."""
    out: dict[str, Any] = to_jsonable(dict(data))
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return out


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> FinetuneConfig:
    """Read a YAML configuration file (or none: defaults), apply overrides, validate.

    Relative ``data.manifest``, ``data.root`` and ``model.init`` paths in the file are resolved
    against the file's folder when they exist there; ``output.dir`` and override paths are taken
    relative to the current directory.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"configuration file {p} not found.")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{p}: the top level must be a mapping of sections; got {type(loaded).__name__}.")
        data = to_jsonable(loaded)
        for section, key in (("data", "manifest"), ("data", "root"), ("model", "init")):
            val = (data.get(section) or {}).get(key) if isinstance(data.get(section), dict) else None
            if isinstance(val, str) and not Path(val).is_absolute() and (p.parent / val).exists():
                data[section][key] = str((p.parent / val).resolve())
    data = apply_overrides(data, overrides)
    return config_from_dict(data)
