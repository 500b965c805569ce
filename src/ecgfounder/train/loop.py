"""The fine-tuning loop: manifest → patient-level splits → window cache → model → train → report.

One function, :func:`finetune`, runs the whole thing from a :class:`FinetuneConfig`, in one process
or under ``torchrun`` (DDP).  What it writes in ``output.dir``:

``config.yaml``            the resolved configuration
``manifest.csv``           the manifest with the split of every row (reused when resuming)
``checkpoints/last.pt``    the resumable state (weights, optimiser, scheduler, RNG, epoch and
                           position in the epoch, history, config, contract, task), atomically replaced
``best.safetensors``       best weights on validation, loadable by ``load_model`` / ``predict``
``model.safetensors``      the final model (= best), with labels, contract and ``task_meta``
``last.safetensors``       weights after the last step
``log.csv``, ``tb/``       per-epoch CSV log and TensorBoard events
``test_predictions.csv``   record-level test scores and targets
``test_report.csv``        the evaluation module's report with bootstrap CIs (thresholds chosen on validation)
``metrics.json``           summary (validation and test point metrics, best epoch, timings)
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from ..models.net1d import Net1D, Net1DConfig
from ..signal.preprocess import PreprocessContract
from .cache import CacheIndex, RecordRef, WindowCache, _warn_failures
from .config import SMALL_ARCH, ConfigError, FinetuneConfig
from .distributed import DistInfo, barrier, broadcast_object, cleanup, epoch_plan, gather_by_index, setup
from .manifest import label_columns, read_manifest, write_manifest
from .splits import check_leakage, group_ids, assign_splits
from .tasks import TaskSpec, build_task, quick_metrics

__all__ = ["finetune", "FinetuneResult", "build_model", "configure_trainable", "param_groups", "SimulatedInterrupt"]

logger = logging.getLogger("ecgfounder.train")


class SimulatedInterrupt(RuntimeError):
    """Raised by a test hook to simulate a kill between optimiser steps."""


@dataclass
class FinetuneResult:
    out_dir: Path
    model_path: Path
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    report: pd.DataFrame | None
    history: list[dict[str, Any]] = field(default_factory=list)
    global_step: int = 0
    best_epoch: int | None = None


# ----------------------------------------------------------------------------------- data

@dataclass
class _Data:
    df: pd.DataFrame
    spec: TaskSpec
    y_raw: np.ndarray
    index: CacheIndex
    rows: dict[str, np.ndarray]  # split -> manifest row numbers with cached windows
    groups: np.ndarray
    contract: PreprocessContract


def _resolved_manifest(cfg: FinetuneConfig, out: Path, info: DistInfo, task_kind: str, resume: bool) -> pd.DataFrame:
    d = cfg.data
    target = out / "manifest.csv"
    if info.is_main and not (resume and target.exists()):
        if d.preset is not None:
            from .presets import build_preset

            df, _ = build_preset(d.preset, d.root, out, d.preset_task, stride_s=d.train_stride_s)
        else:
            if d.train_stride_s is not None:
                raise ConfigError("data.train_stride_s applies to presets cut into windows (data.preset=cpsc2021); "
                                  "for a manifest, add the overlapping windows as rows with train_only=1.")
            df = read_manifest(d.manifest, path_column=d.path_column)
        cols = label_columns(df, d.label_columns, reserved=_reserved(cfg))
        y = _split_targets(df, cols, task_kind)
        df, fractions = _fixed_patients(df, cfg)
        df = assign_splits(df, patient_column=d.patient_column, split_column=d.split_column, path_column=d.path_column,
                           fractions=fractions, seed=d.split_seed, y=y, task=task_kind)
        if "train_only" in df.columns:
            extra = pd.to_numeric(df["train_only"], errors="coerce").fillna(0).to_numpy() > 0
            df = df[~extra | (df[d.split_column].astype(str).to_numpy() == "train")].reset_index(drop=True)
        write_manifest(df, target)
    barrier(info)
    df = pd.read_csv(target, dtype={d.path_column: str, d.patient_column: str, d.split_column: str})
    return df


def _fixed_patients(df: pd.DataFrame, cfg: FinetuneConfig) -> tuple[pd.DataFrame, tuple[float, float, float]]:
    """Put ``data.test_patients`` / ``data.val_patients`` in their splits; the fractions of the
    fixed splits become zero for the other patients (renormalised)."""
    d = cfg.data
    fr = list(d.split_fractions)
    if not d.test_patients and not d.val_patients:
        return df, tuple(fr)  # type: ignore[return-value]
    if d.patient_column not in df.columns:
        raise ConfigError(f"data.test_patients/val_patients need the manifest column {d.patient_column!r}.")
    df = df.copy()
    pid = df[d.patient_column].astype(str).str.strip()
    known = set(pid)
    for name, ids, k in (("test", d.test_patients, 2), ("val", d.val_patients, 1)):
        if not ids:
            continue
        missing = sorted(set(map(str, ids)) - known)
        if missing:
            raise ConfigError(f"data.{name}_patients: patient(s) {missing} are not in the manifest; "
                              f"known patients: {sorted(known)[:20]}.")
        if d.split_column not in df.columns:
            df[d.split_column] = np.nan
        df[d.split_column] = df[d.split_column].astype(object)
        df.loc[pid.isin(set(map(str, ids))).to_numpy(), d.split_column] = name
        fr[k] = 0.0
    total = sum(fr)
    if total <= 0:
        fr = [1.0, 0.0, 0.0]
    else:
        fr = [f / total for f in fr]
    return df, tuple(fr)  # type: ignore[return-value]


def _reserved(cfg: FinetuneConfig) -> tuple[str, ...]:
    from .manifest import RESERVED_COLUMNS

    d = cfg.data
    return tuple(RESERVED_COLUMNS) + (d.path_column, d.patient_column, d.split_column)


def _split_targets(df: pd.DataFrame, cols: list[str], kind: str) -> np.ndarray | None:
    try:
        if kind == "multiclass" and len(cols) == 1:
            return pd.factorize(df[cols[0]].astype(str))[0]
        return df[cols].to_numpy(dtype=float)
    except (TypeError, ValueError):
        return None


def _prepare_data(cfg: FinetuneConfig, out: Path, info: DistInfo, contract: PreprocessContract, resume: bool) -> _Data:
    d = cfg.data
    df = _resolved_manifest(cfg, out, info, cfg.task.type, resume)
    groups = group_ids(df, d.patient_column, d.path_column).to_numpy()
    check_leakage(df.assign(_g=groups), "_g", d.split_column)
    cols = label_columns(df, d.label_columns, reserved=_reserved(cfg))
    split = df[d.split_column].astype(str).to_numpy()
    if cfg.task.type in ("binary", "multilabel") and d.min_positives > 0:
        pos = df.loc[split == "train", cols].apply(pd.to_numeric, errors="coerce").fillna(0).sum()
        rare = [c for c in cols if pos[c] < d.min_positives]
        if rare and len(rare) < len(cols) and cfg.task.type == "multilabel":
            warnings.warn(f"label(s) {rare} have fewer than data.min_positives={d.min_positives} training positives "
                          "and are left out.", stacklevel=2)
            cols = [c for c in cols if c not in rare]
    spec, y_raw = build_task(cfg.task.type, df, cols, split == "train", class_weighting=cfg.task.class_weighting,
                             standardize=cfg.task.standardize_targets)
    refs = [
        RecordRef(str(p),
                  None if "start_s" not in df.columns or pd.isna(s) else float(s),
                  None if "duration_s" not in df.columns or pd.isna(u) else float(u))
        for p, s, u in zip(df[d.path_column],
                           df["start_s"] if "start_s" in df.columns else [None] * len(df),
                           df["duration_s"] if "duration_s" in df.columns else [None] * len(df))
    ]
    cache = WindowCache(d.cache_dir, contract, lead=d.lead, format=d.format)
    if d.lead and info.is_main and tuple(contract.leads) != (d.lead,):
        logger.info("feeding lead %s of the records to the model's input %s", d.lead, contract.leads[0])
    if info.is_main:
        t0 = time.perf_counter()
        index = cache.build(refs, workers=d.cache_workers, progress=cfg.train.progress)
        logger.info("window cache %s ready in %.1f s (%d examples)", cache.root, time.perf_counter() - t0, len(refs))
    barrier(info)
    if not info.is_main:
        index = cache.index(refs)
    if index.failed:
        if info.is_main:
            _warn_failures(index, refs)
            pd.DataFrame([{"path": refs[i].path, "start_s": refs[i].start_s, "reason": why} for i, why in index.failed.items()]
                         ).to_csv(out / "failed.csv", index=False)
    ok = np.array([index.ok(i) for i in range(len(df))])
    if not ok.any():
        raise ValueError(f"none of the {len(df)} manifest records could be prepared; see {out / 'failed.csv'}.")
    rows = {s: np.flatnonzero((split == s) & ok) for s in ("train", "val", "test")}
    if len(rows["train"]) == 0:
        raise ValueError("no usable training records (split 'train' is empty after dropping unreadable records).")
    if info.is_main:
        logger.info("examples: train %d, val %d, test %d; outputs: %s", *(len(rows[s]) for s in ("train", "val", "test")),
                    ", ".join(spec.labels[:10]) + (" ..." if len(spec.labels) > 10 else ""))
    return _Data(df, spec, y_raw, index, rows, groups, contract)


# ---------------------------------------------------------------------------------- model

def build_model(cfg: FinetuneConfig) -> Net1D:
    """The starting network (head not yet replaced): published/loaded weights or a random init."""
    m = cfg.model
    leads = cfg.data.lead_names()
    if m.init == "random":
        if isinstance(m.arch, str):
            arch = {} if m.arch == "released" else dict(SMALL_ARCH)
        else:
            arch = dict(m.arch)
        leads = leads or tuple(PreprocessContract().leads)
        try:
            net_cfg = Net1DConfig(**{**arch, "in_channels": len(leads), "n_classes": 1})
        except TypeError as exc:
            raise ConfigError(f"model.arch: {exc}; valid fields: {list(Net1DConfig.__dataclass_fields__)}.") from None
        torch.manual_seed(cfg.train.seed)
        model = Net1D(net_cfg)
        model.contract = PreprocessContract(leads=leads, mode=cfg.data.preprocess_mode)
        model.source = {"init": "random", "arch": net_cfg.to_dict()}
        return model
    from ..models.loading import load_model

    model = load_model(m.init, strict=m.strict)
    base = model.contract or PreprocessContract(leads=tuple(PreprocessContract().leads[: model.config.in_channels]))
    if leads is not None and tuple(leads) != tuple(base.leads):
        raise ConfigError(
            f"data.leads={list(leads)} but the weights {m.init} take {list(base.leads)}; "
            "leave data.leads unset or choose weights for those leads (12-lead / 1-lead)."
        )
    model.contract = base.with_mode(cfg.data.preprocess_mode)
    model.source = {"init": str(m.init), "base": dict(model.source or {})}
    return model


def _depth(name: str, n_stages: int) -> int:
    if name.startswith("stage_list."):
        return int(name.split(".")[1]) + 1
    if name.startswith("dense."):
        return n_stages + 1
    return 0


def configure_trainable(model: Net1D, strategy: str, trainable_stages: int = 2) -> None:
    """Freeze parameters: ``linear_probe`` keeps only the head trainable, ``partial`` the last
    ``trainable_stages`` stages and the head, ``full`` everything."""
    n = len(model.stage_list)
    lowest = {"full": 0, "partial": n + 1 - trainable_stages, "linear_probe": n + 1}[strategy]
    for name, p in model.named_parameters():
        # BatchNorm modules exist for checkpoint compatibility but are not applied when use_bn is
        # off: their parameters get no gradient (DDP would refuse them), so they stay frozen
        unused = not model.config.use_bn and (name.startswith("first_bn.") or ".bn" in name)
        p.requires_grad_(_depth(name, n) >= lowest and not unused)


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


def _make_scheduler(cfg: FinetuneConfig, opt: torch.optim.Optimizer, total_steps: int):
    o = cfg.optim
    if o.scheduler == "plateau":
        mode = "max" if _monitor(cfg)[1] == "max" else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=o.plateau_factor, patience=o.plateau_patience)
    if o.scheduler == "none":
        return None
    warm = o.warmup_steps or int(round(o.warmup_ratio * total_steps))
    floor = o.min_lr_ratio

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def _monitor(cfg: FinetuneConfig) -> tuple[str, str]:
    m = cfg.train.monitor
    if m == "auto":
        m = "val_mae" if cfg.task.type == "regression" else "val_auroc"
    return m, ("max" if m == "val_auroc" else "min")


# ------------------------------------------------------------------------------- batches

class _TrainBatches(torch.utils.data.Dataset):
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


def _window_items(index: CacheIndex, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row position, window number) of every window of ``rows``."""
    pos = np.repeat(np.arange(len(rows)), [index.n_windows(int(r)) for r in rows])
    win = np.concatenate([np.arange(index.n_windows(int(r))) for r in rows]) if len(rows) else np.zeros(0, int)
    return pos, win


@torch.no_grad()
def _map_windows(fn: Callable[[torch.Tensor], torch.Tensor], index: CacheIndex, rows: np.ndarray, info: DistInfo,
                 batch_size: int, bf16: bool, progress: bool = False, desc: str = "eval") -> np.ndarray:
    """``fn`` applied to every window of ``rows`` (sharded over ranks, gathered once):
    ``(n_windows_total, ...)`` in window order."""
    pos, win = _window_items(index, rows)
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
    local = np.concatenate(outs) if outs else np.zeros((0,))
    local_idx = np.concatenate(idxs) if idxs else np.zeros(0, int)
    if not outs:  # an empty shard still has to take part in the gather
        local = np.zeros((0, 1), np.float32)
    return gather_by_index(info, local_idx, local, n)


def _aggregate(per_window: np.ndarray, index: CacheIndex, rows: np.ndarray) -> np.ndarray:
    """Mean over each example's windows (as ``predict(aggregate="mean")``)."""
    pos, _ = _window_items(index, rows)
    out = np.zeros((len(rows),) + per_window.shape[1:], dtype=np.float64)
    np.add.at(out, pos, per_window)
    counts = np.bincount(pos, minlength=len(rows)).reshape((-1,) + (1,) * (per_window.ndim - 1))
    return out / np.maximum(counts, 1)


def _evaluate(model: nn.Module, spec: TaskSpec, data: _Data, split: str, info: DistInfo, cfg: FinetuneConfig) -> tuple[np.ndarray, dict[str, float]]:
    rows = data.rows[split]
    if len(rows) == 0:
        return np.zeros((0, spec.n_outputs)), {}
    was = model.training
    model.eval()
    win = _map_windows(lambda x: spec.scores(model(x)), data.index, rows, info, cfg.train.eval_batch_size, cfg.train.bf16)
    model.train(was)
    scores = _aggregate(win, data.index, rows)
    return scores, quick_metrics(spec, data.y_raw[rows], scores)


# ------------------------------------------------------------------------------ checkpoints

def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = st["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable training checkpoint ({' '.join(str(exc).split())[:200]}).") from None


def _unwrap(model: nn.Module) -> Net1D:
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]


def _save_model_file(model: Net1D, path: Path, cfg: FinetuneConfig, extra: dict[str, Any]) -> Path:
    from ..models.loading import save_model

    src = {"finetune": {"config": cfg.to_dict(), **extra}}
    return save_model(model, path, source=src)


# ---------------------------------------------------------------------------------- report

def _test_report(spec: TaskSpec, data: _Data, val_scores: np.ndarray, test_scores: np.ndarray, cfg: FinetuneConfig,
                 out: Path) -> pd.DataFrame | None:
    rows = data.rows["test"]
    if len(rows) == 0:
        return None
    y = data.y_raw[rows]
    groups = data.groups[rows] if cfg.eval.bootstrap_unit == "patient" else None
    from ..eval import metrics as M

    if spec.kind == "regression":
        y2 = np.asarray(y, float).reshape(len(rows), -1)
        parts = []
        for j, lab in enumerate(spec.labels):
            r = M.regression_report(y2[:, j], test_scores[:, j], n_boot=cfg.eval.n_boot, seed=cfg.eval.seed, groups=groups)
            parts.append(r.assign(target=lab).set_index("target", append=True).reorder_levels([1, 0]))
        rep = pd.concat(parts)
    else:
        if spec.kind == "multiclass":
            y_bin = np.eye(spec.n_outputs)[np.asarray(y, int)]
            yv = np.eye(spec.n_outputs)[np.asarray(data.y_raw[data.rows["val"]], int)] if len(data.rows["val"]) else None
        else:
            y_bin = np.asarray(y, float).reshape(len(rows), -1)
            yv = np.asarray(data.y_raw[data.rows["val"]], float).reshape(len(data.rows["val"]), -1) if len(data.rows["val"]) else None
        thresholds = _thresholds(yv, val_scores, spec, cfg)
        rep = M.multilabel_report(y_bin, test_scores, labels=list(spec.labels), thresholds=thresholds, groups=groups,
                                  n_boot=cfg.eval.n_boot, seed=cfg.eval.seed)
    rep.to_csv(out / "test_report.csv")
    return rep


def _thresholds(y_val: np.ndarray | None, val_scores: np.ndarray, spec: TaskSpec, cfg: FinetuneConfig) -> np.ndarray | None:
    """Decision thresholds chosen on the validation split by the evaluation module."""
    if y_val is None or len(y_val) == 0:
        return None
    from ..eval.thresholds import choose_thresholds

    th = choose_thresholds(y_val, val_scores, method=cfg.eval.threshold_method)
    return np.asarray(th, dtype=float).reshape(-1)


# ----------------------------------------------------------------------------- linear probe

def _fit_probe(cfg: FinetuneConfig, model: Net1D, data: _Data, info: DistInfo, out: Path) -> dict[str, Any]:
    """Embeddings once, then a scikit-learn head (LogisticRegression / Ridge) with C chosen on
    validation; the head is written into ``model.dense`` (features standardisation folded in)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    spec = data.spec
    model.eval()
    feats: dict[str, np.ndarray] = {}
    key = hashlib.sha256(json.dumps([cfg.model.init, cfg.to_dict()["model"], data.index.root.name, cfg.train.seed,
                                     [list(map(str, data.index.locations[int(r)] or ())) for s in ("train", "val", "test") for r in data.rows[s]]],
                                    default=str).encode()).hexdigest()[:16]
    emb_file = out / f"embeddings-{key}.npz"
    if emb_file.exists():
        with np.load(emb_file) as z:
            feats = {s: z[s] for s in z.files}
        if info.is_main:
            logger.info("embeddings reused from %s", emb_file)
    else:
        t0 = time.perf_counter()
        for s in ("train", "val", "test"):
            feats[s] = _map_windows(model.forward_features, data.index, data.rows[s], info, cfg.train.eval_batch_size,
                                    cfg.train.bf16, progress=cfg.train.progress, desc=f"embeddings {s}").astype(np.float32)
        if info.is_main:
            np.savez(emb_file, **feats)
            logger.info("embeddings of %d windows in %.1f s", sum(len(v) for v in feats.values()), time.perf_counter() - t0)
    Xtr = feats["train"].astype(np.float64)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    pos_tr, _ = _window_items(data.index, data.rows["train"])
    ytr = spec.encode(data.y_raw[data.rows["train"]])[pos_tr]
    Z = (Xtr - mu) / sd
    balanced = "balanced" if cfg.task.class_weighting == "balanced" else None
    n_out = spec.n_outputs

    def fit(C: float) -> tuple[np.ndarray, np.ndarray]:
        W = np.zeros((n_out, Z.shape[1]))
        b = np.zeros(n_out)
        if spec.kind == "regression":
            r = Ridge(alpha=1.0 / C).fit(Z, ytr)
            return np.atleast_2d(r.coef_).reshape(n_out, -1), np.atleast_1d(r.intercept_).reshape(n_out)
        if spec.kind == "multiclass":
            clf = LogisticRegression(C=C, max_iter=3000, class_weight=balanced).fit(Z, ytr)
            W[clf.classes_] = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_ / 2, clf.coef_ / 2])
            b[clf.classes_] = clf.intercept_ if len(clf.classes_) > 2 else np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
            missing = np.setdiff1d(np.arange(n_out), clf.classes_)
            b[missing] = -30.0
            return W, b
        for j in range(n_out):
            yj = ytr[:, j]
            if yj.min() == yj.max():
                b[j] = 30.0 if yj[0] > 0.5 else -30.0
                continue
            clf = LogisticRegression(C=C, max_iter=3000, class_weight=balanced).fit(Z, yj)
            W[j], b[j] = clf.coef_[0], clf.intercept_[0]
        return W, b

    def head_scores(W: np.ndarray, b: np.ndarray, s: str) -> np.ndarray:
        logits = torch.from_numpy(((feats[s].astype(np.float64) - mu) / sd) @ W.T + b).float()
        return _aggregate(spec.scores(logits).numpy(), data.index, data.rows[s])

    mon, direction = _monitor(cfg)
    best = None
    results = []
    if info.is_main:
        grid = cfg.strategy.probe_c_grid if len(data.rows["val"]) else (cfg.strategy.probe_c_grid[len(cfg.strategy.probe_c_grid) // 2],)
        for C in grid:
            W, b = fit(C)
            m = quick_metrics(spec, data.y_raw[data.rows["val"]], head_scores(W, b, "val")) if len(data.rows["val"]) else {}
            v = m.get(mon, float("nan"))
            results.append({"C": C, **m})
            logger.info("probe C=%g: %s", C, ", ".join(f"{k} {x:.4f}" for k, x in m.items()))
            better = best is None or (np.isfinite(v) and (not np.isfinite(best[0]) or (v > best[0] if direction == "max" else v < best[0])))
            if better:
                best = (v, C, W, b)
        W, b = best[2], best[3]
        Wf = W / sd
        bf = b - Wf @ mu
        payload = (torch.from_numpy(Wf).float(), torch.from_numpy(bf).float(), best[1], results)
    else:
        payload = None
    Wt, bt, C, results = broadcast_object(info, payload)
    with torch.no_grad():
        model.dense.weight.copy_(Wt.to(model.dense.weight.device))
        model.dense.bias.copy_(bt.to(model.dense.bias.device))
    W64, b64 = Wt.double().numpy(), bt.double().numpy()

    def final_scores(s: str) -> np.ndarray:
        # the feature standardisation is folded into (W64, b64): raw embeddings in, as in the model
        if not len(data.rows[s]):
            return np.zeros((0, n_out))
        logits = torch.from_numpy(feats[s].astype(np.float64) @ W64.T + b64).float()
        return _aggregate(spec.scores(logits).numpy(), data.index, data.rows[s])

    val_scores, test_scores = final_scores("val"), final_scores("test")
    return {"C": C, "grid": results, "val_scores": val_scores, "test_scores": test_scores}


# -------------------------------------------------------------------------------- main loop

def _write_log(out: Path, history: list[dict[str, Any]]) -> None:
    if history:
        tmp = out / ".log.csv.tmp"
        pd.DataFrame(history).to_csv(tmp, index=False)
        os.replace(tmp, out / "log.csv")


def _resume_path(cfg: FinetuneConfig, out: Path) -> Path | None:
    r = cfg.output.resume
    last = out / "checkpoints" / "last.pt"
    if r == "auto":
        return last if last.exists() else None
    if r == "never":
        if last.exists():
            raise ValueError(f"{out} already holds a run ({last}); choose another output.dir or output.resume=auto.")
        return None
    p = Path(r)
    if not p.is_file():
        raise ValueError(f"output.resume={r}: checkpoint not found (use auto, never or a path to last.pt).")
    return p


def finetune(cfg: FinetuneConfig, *, step_hook: Callable[[int], None] | None = None) -> FinetuneResult:
    """Run fine-tuning (or linear probing) as configured; see the module docstring for outputs.

    ``step_hook(global_step)`` is called after every optimiser step (after any checkpoint of that
    step); raising :class:`SimulatedInterrupt` from it simulates a kill (used by the resume tests).
    """
    cfg.validate()
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    info = setup(cfg.train.device)
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    try:
        if cfg.train.threads:
            torch.set_num_threads(int(cfg.train.threads))
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True)
            if info.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
        return _finetune(cfg, info, step_hook)
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)
        cleanup(info)


def _finetune(cfg: FinetuneConfig, info: DistInfo, step_hook: Callable[[int], None] | None) -> FinetuneResult:
    out = Path(cfg.output.dir)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(info)
    resume_from = _resume_path(cfg, out)
    state = _load_state(resume_from) if resume_from else None
    if state is not None and info.is_main:
        logger.info("resuming from %s (epoch %d, micro-batch %d, step %d)", resume_from, state["epoch"], state["batch_in_epoch"], state["global_step"])
    if info.is_main:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")

    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed % (2**32))
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    data = _prepare_data(cfg, out, info, model.contract, resume=state is not None)
    spec = data.spec
    torch.manual_seed(cfg.train.seed + 1)
    model.reset_classifier(spec.n_outputs, labels=spec.labels)
    model.task_meta = spec.task_meta()
    model.to(info.device)
    configure_trainable(model, cfg.strategy.name, cfg.strategy.trainable_stages)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if info.is_main:
        logger.info("model: %s, %d parameters (%d trainable), strategy %s, %d process(es) on %s",
                    cfg.model.init, sum(p.numel() for p in model.parameters()), n_trainable, cfg.strategy.name,
                    info.world_size, info.device)
    t_start = time.perf_counter()
    history: list[dict[str, Any]] = []
    mon, direction = _monitor(cfg)

    if cfg.strategy.name == "linear_probe" and cfg.strategy.probe_fast:
        probe = _fit_probe(cfg, model, data, info, out)
        val_scores, test_scores = probe["val_scores"], probe["test_scores"]
        val_m = quick_metrics(spec, data.y_raw[data.rows["val"]], val_scores) if len(data.rows["val"]) else {}
        extra = {"strategy": "linear_probe (scikit-learn)", "C": probe["C"], "grid": probe["grid"]}
        history = [{"epoch": 0, **{k: v for k, v in val_m.items()}, "C": probe["C"]}]
        best_epoch, global_step = 0, 0
    else:
        val_scores, test_scores, val_m, best_epoch, global_step, history = _train(cfg, info, model, data, out, state, step_hook)
        extra = {"strategy": cfg.strategy.name, "best_epoch": best_epoch, "monitor": mon}

    test_m = quick_metrics(spec, data.y_raw[data.rows["test"]], test_scores) if len(data.rows["test"]) else {}
    test_m = {k.replace("val_", "test_"): v for k, v in test_m.items()}
    if spec.kind == "regression" and len(data.rows["test"]):
        # chance level of a regression: always predicting the training mean
        y_tr = np.asarray(data.y_raw[data.rows["train"]], float).reshape(len(data.rows["train"]), -1)
        y_te = np.asarray(data.y_raw[data.rows["test"]], float).reshape(len(data.rows["test"]), -1)
        test_m["test_mae_train_mean"] = float(np.abs(y_te - y_tr.mean(0)).mean())
    report = None
    model_path = out / "model.safetensors"
    if info.is_main:
        net = _unwrap(model)
        net.source = {**(net.source or {}), "val_metrics": val_m, "test_metrics": test_m}
        _save_model_file(net, model_path, cfg, extra)
        rows = data.rows["test"]
        if len(rows):
            pred = pd.DataFrame({"record": data.df["record"].iloc[rows].to_numpy() if "record" in data.df.columns else data.df[cfg.data.path_column].iloc[rows].to_numpy(),
                                 "path": data.df[cfg.data.path_column].iloc[rows].to_numpy(),
                                 "patient": data.groups[rows]})
            y = data.y_raw[rows]
            if spec.kind == "multiclass":
                pred["target"] = [spec.labels[int(i)] for i in y]
            else:
                for j, lab in enumerate(spec.labels):
                    pred[f"target:{lab}"] = np.asarray(y, float).reshape(len(rows), -1)[:, j]
            for j, lab in enumerate(spec.labels):
                pred[lab] = test_scores[:, j]
            pred.to_csv(out / "test_predictions.csv", index=False)
            report = _test_report(spec, data, val_scores, test_scores, cfg, out)
        summary = {"val": val_m, "test": test_m, "best_epoch": best_epoch, "global_step": global_step,
                   "n": {s: int(len(v)) for s, v in data.rows.items()}, "labels": list(spec.labels),
                   "seconds": round(time.perf_counter() - t_start, 2), "world_size": info.world_size, **{k: v for k, v in extra.items() if k != "grid"}}
        (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
        logger.info("test: %s", ", ".join(f"{k} {v:.4f}" for k, v in test_m.items()))
    barrier(info)
    return FinetuneResult(out, model_path, val_m, test_m, report, history, global_step, best_epoch)


def _train(cfg: FinetuneConfig, info: DistInfo, model: Net1D, data: _Data, out: Path, state: dict[str, Any] | None,
           step_hook: Callable[[int], None] | None):
    spec = data.spec
    t = cfg.train
    target = spec.encode(data.y_raw)
    rows_tr = data.rows["train"]
    n_train = len(rows_tr)
    micro_per_epoch = len(epoch_plan(n_train, epoch=0, seed=t.seed, global_batch=t.batch_size, world_size=info.world_size, rank=info.rank))
    steps_per_epoch = math.ceil(micro_per_epoch / t.grad_accum)
    total_steps = t.max_steps or steps_per_epoch * t.epochs
    groups = param_groups(model, cfg.optim.lr, cfg.optim.weight_decay, cfg.strategy.layer_decay)
    if not groups:
        raise ConfigError("no trainable parameters: check strategy.name / strategy.trainable_stages.")
    opt_cls = torch.optim.AdamW if cfg.optim.name == "adamw" else torch.optim.Adam
    opt = opt_cls(groups, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    sched = _make_scheduler(cfg, opt, total_steps)
    mon, direction = _monitor(cfg)

    epoch, start_micro, global_step = 0, 0, 0
    best_val, best_epoch, bad_epochs = None, None, 0
    history: list[dict[str, Any]] = []
    if state is not None:
        if state.get("world_size", 1) != info.world_size and state["batch_in_epoch"]:
            raise ValueError(
                f"the checkpoint was written mid-epoch by {state['world_size']} process(es); resume it with the same "
                f"number (now {info.world_size}), or from an epoch-end checkpoint."
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler") is not None:
            sched.load_state_dict(state["scheduler"])
        epoch, start_micro, global_step = int(state["epoch"]), int(state["batch_in_epoch"]), int(state["global_step"])
        best_val, best_epoch, bad_epochs = state.get("best_val"), state.get("best_epoch"), int(state.get("bad_epochs", 0))
        history = list(state.get("history", []))
        _set_rng_state(state["rng"])

    ddp_model: nn.Module = model
    if info.distributed:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None)

    writer = None
    if info.is_main and cfg.output.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"), purge_step=global_step or None)
        except ImportError:
            warnings.warn("tensorboard is not installed (pip install 'ecgfounder[train]'); TensorBoard logs skipped.", stacklevel=2)

    def checkpoint(ep: int, micro: int, tag: str = "last") -> None:
        if not info.is_main:
            return
        _atomic_save({
            "model": _unwrap(ddp_model).state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "epoch": ep, "batch_in_epoch": micro, "global_step": global_step,
            "best_val": best_val, "best_epoch": best_epoch, "bad_epochs": bad_epochs, "history": history,
            "rng": _rng_state(), "world_size": info.world_size, "config": cfg.to_dict(),
            "contract": model.contract.to_dict(), "task": spec.to_dict(),
        }, out / "checkpoints" / f"{tag}.pt")

    stop = bool(t.max_steps and global_step >= t.max_steps)
    val_scores = np.zeros((0, spec.n_outputs))
    val_m: dict[str, float] = {}
    while epoch < t.epochs and not stop:
        plan = epoch_plan(n_train, epoch=epoch, seed=t.seed, global_batch=t.batch_size, rank=info.rank, world_size=info.world_size)
        ds = _TrainBatches(data.index, rows_tr, target, plan, t.seed, epoch, cfg.augment, float(data.contract.fs))
        loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=range(start_micro, len(plan)),
                                             num_workers=t.num_workers, pin_memory=info.device.type == "cuda")
        ddp_model.train()
        loss_sum, loss_n = 0.0, 0.0
        bar = None
        if t.progress and info.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(plan), initial=start_micro, desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch",
                       leave=False, disable=None)  # None: off when not a terminal
        t_epoch = time.perf_counter()
        for k, (x, y, real) in zip(range(start_micro, len(plan)), loader):
            x, y, real = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True), real.to(info.device)
            win_start = (k // t.grad_accum) * t.grad_accum
            n_in_window = min(t.grad_accum, len(plan) - win_start)
            sync = (k + 1 - win_start) == n_in_window
            ctx = ddp_model.no_sync() if (info.distributed and not sync) else contextlib.nullcontext()
            with ctx:
                with torch.autocast(device_type=info.device.type, dtype=torch.bfloat16, enabled=t.bf16):
                    logits = ddp_model(x)
                per = spec.loss(logits, y)
                loss = (per * real).sum() * (info.world_size / (plan.global_real[k] * n_in_window))
                loss.backward()
            loss_sum += float((per.detach() * real).sum())
            loss_n += float(real.sum())
            if bar is not None:
                bar.update(1)
            if not sync:
                continue
            if cfg.optim.clip_grad_norm:
                nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.optim.clip_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if sched is not None and not isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step()
            global_step += 1
            if writer is not None:
                writer.add_scalar("train/loss", float(per.detach().mean()), global_step)
                writer.add_scalar("train/lr", opt.param_groups[-1]["lr"], global_step)
            if bar is not None:
                bar.set_postfix(loss=f"{loss_sum / max(loss_n, 1):.4f}")
            last_of_epoch = k + 1 == len(plan)
            if t.checkpoint_every and global_step % t.checkpoint_every == 0 and not last_of_epoch:
                checkpoint(epoch, k + 1)
            if step_hook is not None:
                step_hook(global_step)
            if t.max_steps and global_step >= t.max_steps:
                stop = True
                break
        if bar is not None:
            bar.close()
        train_loss = _mean_across(info, loss_sum, loss_n)
        epoch_s = time.perf_counter() - t_epoch
        val_scores, val_m = _evaluate(model, spec, data, "val", info, cfg)
        cur = val_m.get(mon)
        improved = False
        if cur is not None and np.isfinite(cur):
            improved = best_val is None or (cur > best_val if direction == "max" else cur < best_val)
        elif best_val is None and not len(data.rows["val"]):
            improved = True  # no validation split: the last epoch is the best
        if improved:
            best_val, best_epoch, bad_epochs = cur, epoch, 0
            if info.is_main:
                _save_model_file(_unwrap(ddp_model), out / "best.safetensors", cfg, {"epoch": epoch, "monitor": mon, "value": cur})
        else:
            bad_epochs += 1
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) and cur is not None and np.isfinite(cur):
            sched.step(cur)
        row = {"epoch": epoch + 1, "step": global_step, "train_loss": train_loss, **val_m,
               "lr": opt.param_groups[-1]["lr"], "seconds": round(epoch_s, 2),
               "ecg_per_s": round((len(plan) - start_micro) * t.batch_size / max(epoch_s, 1e-9), 1)}
        history.append(row)
        if info.is_main:
            logger.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"))
            _write_log(out, history)
            if writer is not None:
                for k2, v in val_m.items():
                    writer.add_scalar(f"val/{k2[4:]}", v, global_step)
                writer.add_scalar("train/epoch_loss", train_loss, global_step)
                writer.flush()
        epoch += 1
        start_micro = 0
        if t.early_stopping and bad_epochs >= t.early_stopping:
            if info.is_main:
                logger.info("early stopping: %s did not improve for %d epochs", mon, bad_epochs)
            stop = True
        checkpoint(epoch, 0)
    if writer is not None:
        writer.close()
    if info.is_main:
        _save_model_file(_unwrap(ddp_model), out / "last.safetensors", cfg, {"epoch": epoch, "step": global_step})
    barrier(info)
    # best weights for the test report and the final model
    best_file = out / "best.safetensors"
    if best_file.exists() and best_epoch is not None:
        from ..models.loading import read_checkpoint

        sd, _ = read_checkpoint(best_file)
        model.load_state_dict(sd)
    val_scores, val_m = _evaluate(model, spec, data, "val", info, cfg)
    test_scores, _ = _evaluate(model, spec, data, "test", info, cfg)
    return val_scores, test_scores, val_m, best_epoch, global_step, history


def _mean_across(info: DistInfo, s: float, n: float) -> float:
    from .distributed import all_reduce_sum

    tot = all_reduce_sum(info, s)
    cnt = all_reduce_sum(info, n)
    return tot / cnt if cnt else float("nan")
