"""The fine-tuning run: manifest → patient-level splits → window cache → model → train → report.

One function, :func:`finetune`, runs the whole thing from a :class:`FinetuneConfig`, in one process
or under ``torchrun`` (DDP).  What it writes in ``output.dir``:

``config.yaml``            the resolved configuration
``manifest.csv``           the manifest with the split of every row (reused when resuming)
``checkpoints/last.pt``    the resumable state (weights, optimiser, scheduler, RNG, epoch and
                           position in the epoch, history, config, contract, task), atomically replaced
``best.safetensors``       best weights on validation, loadable by ``load_model`` / ``predict``
``model.safetensors``      the final model (= best), with labels, contract and ``task_meta``
``last.safetensors``       weights after the last step
``log.csv``, ``tb/``       per-epoch CSV log and TensorBoard events (a fast linear probe: one row
                           per C tried, its validation metrics, ``chosen`` the C kept; no ``tb/``)
``test_predictions.csv``   record-level test scores and targets
``test_report.csv``        the evaluation module's report with bootstrap CIs (thresholds chosen on validation)
``metrics.json``           summary (validation and test point metrics, best epoch, timings)

The parts live beside this module: ``data`` (manifest, splits, cache), ``model`` (start weights,
freezing, layer-wise decay, schedule), ``batches`` (micro-batches, evaluation), ``probe`` (the
scikit-learn linear probe), ``checkpoint``, ``logs``, ``report`` and ``state`` (global state).
The process's global state (RNGs, threads, deterministic mode, cuDNN flags) is restored on return.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import yaml

from .._fileio import atomic_path, atomic_write
from ..models.net1d import Net1D
from .checkpoint import (TrainingInterrupted, check_resume_config, interrupted_note, load_state, resume_path,
                         save_model_file, unwrap)
from .config import ConfigError, FinetuneConfig
from .data import TrainData, check_resume_source, prepare_data
from .distributed import DistInfo, barrier, cleanup, setup
from .epochs import train_epochs
from .model import build_model, configure_trainable, monitor, param_groups
from .report import test_metrics, test_report, test_report_settings, write_summary, write_test_predictions
from .state import preserved_global_state

__all__ = ["finetune", "FinetuneResult", "TrainingInterrupted", "build_model", "configure_trainable", "param_groups"]

logger = logging.getLogger("ecgfounder.train")


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


def finetune(cfg: FinetuneConfig) -> FinetuneResult:
    """Run fine-tuning (or linear probing) as configured; see the module docstring for outputs."""
    return run(cfg)


def run(cfg: FinetuneConfig, *, step_hook: Callable[[int], None] | None = None) -> FinetuneResult:
    """:func:`finetune`, with ``step_hook(global_step)`` called after every optimiser step (after
    any checkpoint of that step); an exception raised from it stops the run there, as a kill
    would (the resume tests use it)."""
    cfg.validate()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if cfg.train.deterministic and cublas is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # deterministic cuBLAS; removed again on return
    try:
        info = setup(cfg.train.device)
        try:
            with preserved_global_state():
                if cfg.train.threads:
                    torch.set_num_threads(int(cfg.train.threads))
                if cfg.train.deterministic:
                    torch.use_deterministic_algorithms(True)
                    if info.device.type == "cuda":
                        torch.backends.cudnn.benchmark = False
                return _run(cfg, info, step_hook)
        except KeyboardInterrupt as exc:
            if str(exc):  # (already says what was kept)
                raise
            last = Path(cfg.output.dir) / "checkpoints" / "last.pt"
            raise TrainingInterrupted(interrupted_note(last, "when the same command is run again (output.resume=auto)",
                                                       None if cfg.train.checkpoint_every else "train.checkpoint_every=N")) from None
        finally:
            cleanup(info)
    finally:
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def _check_source(cfg: FinetuneConfig) -> None:
    """Refuse a ``data.manifest`` or preset ``data.root`` that is not there."""
    d = cfg.data
    if d.preset is None and d.manifest is not None and not Path(d.manifest).is_file():
        raise ConfigError(f"data.manifest={d.manifest}: no such file; give the manifest's path (relative paths are "
                          "taken from the current folder, or from the configuration file's folder where it is there).")
    if d.preset is not None and not Path(str(d.root)).is_dir():
        raise ConfigError(f"data.root={d.root}: no such folder; give the {d.preset} dataset folder.")


def _start(cfg: FinetuneConfig, info: DistInfo, out: Path) -> tuple[dict[str, Any] | None, Net1D, TrainData]:
    """Resume state (if any), the model with its new head, and the data."""
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    barrier(info)
    resume_from = resume_path(cfg, out)
    state = load_state(resume_from) if resume_from else None
    if state is not None:
        check_resume_config(state, cfg, resume_from)
        check_resume_source(cfg, out, state.get("config"), info)  # (before config.yaml takes the new source)
    if state is not None and info.is_main:
        t = cfg.train
        if state["epoch"] >= t.epochs or (t.max_steps is not None and state["global_step"] >= t.max_steps):
            logger.info("resuming from %s: its training is done (step %d): nothing is trained, the evaluation and "
                        "outputs are made again", resume_from, state["global_step"])
        else:
            logger.info("resuming from %s (epoch %d, micro-batch %d, step %d)", resume_from, state["epoch"] + 1,
                        state["batch_in_epoch"], state["global_step"])  # (epochs numbered from 1, as in log.csv)
    barrier(info)  # every process has looked at the folder (resume_path) before the main one writes in it
    if info.is_main:
        atomic_write(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if not (state is not None and (out / "manifest.csv").exists()):
        _check_source(cfg)  # before the start weights (a download of 353 MB) are fetched
    random.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed % (2**32))
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    data = prepare_data(cfg, out, info, model.contract, resume=state is not None)
    torch.manual_seed(cfg.train.seed + 1)
    model.reset_classifier(data.spec.n_outputs, labels=data.spec.labels)
    model.task_meta = data.spec.task_meta()
    model.to(info.device)
    configure_trainable(model, cfg.strategy.name, cfg.strategy.trainable_stages)
    if info.is_main:
        logger.info("model: %s, %d parameters (%d trainable), strategy %s, %d process(es) on %s",
                    cfg.model.init, sum(p.numel() for p in model.parameters()),
                    sum(p.numel() for p in model.parameters() if p.requires_grad), cfg.strategy.name,
                    info.world_size, info.device)
    return state, model, data


def _run(cfg: FinetuneConfig, info: DistInfo, step_hook: Callable[[int], None] | None) -> FinetuneResult:
    out = Path(cfg.output.dir)
    state, model, data = _start(cfg, info, out)
    t_start = time.perf_counter()
    if cfg.strategy.name == "linear_probe" and cfg.strategy.probe_fast:
        from .probe import fit_probe
        from .tasks import quick_metrics

        probe = fit_probe(cfg, model, data, info, out)
        val_scores, test_scores = probe["val_scores"], probe["test_scores"]
        val_m = quick_metrics(data.spec, data.y_raw[data.rows["val"]], val_scores) if len(data.rows["val"]) else {}
        extra = {"strategy": "linear_probe (scikit-learn)", "C": probe["C"], "grid": probe["grid"]}
        if info.is_main:  # the probe's log: the validation metrics of each C tried
            with atomic_path(out / "log.csv") as tmp:
                pd.DataFrame([{**r, "chosen": r["C"] == probe["C"]} for r in probe["grid"]]).to_csv(tmp, index=False)
        history = [{"epoch": 0, **val_m, "C": probe["C"]}]
        best_epoch, global_step = 0, 0
    else:
        r = train_epochs(cfg, info, model, data, out, state, step_hook)
        val_scores, test_scores, val_m = r.val_scores, r.test_scores, r.val_metrics
        best_epoch, global_step, history = r.best_epoch, r.global_step, r.history
        extra = {"strategy": cfg.strategy.name, "best_epoch": best_epoch, "monitor": monitor(cfg)[0]}
    test_m = test_metrics(data, test_scores)
    report = None
    model_path = out / "model.safetensors"
    if info.is_main:
        net = unwrap(model)
        net.source = {**(net.source or {}), "val_metrics": val_m, "test_metrics": test_m}
        save_model_file(net, model_path, cfg, extra)
        test_settings = None
        if len(data.rows["test"]):
            write_test_predictions(data, test_scores, cfg.data.path_column, out)
            report = test_report(data, val_scores, test_scores, cfg, out)
            test_settings = test_report_settings(data, cfg)
            for note in test_settings["notes"]:
                logger.warning("test report: %s", note)
        write_summary(out, {
            "val": val_m, "test": test_m, "best_epoch": best_epoch, "global_step": global_step,
            "n": {s: int(len(v)) for s, v in data.rows.items()}, "labels": list(data.spec.labels),
            "seconds": round(time.perf_counter() - t_start, 2), "world_size": info.world_size,
            "test_report": test_settings, **{k: v for k, v in extra.items() if k != "grid"}})
        logger.info("test: %s", ", ".join(f"{k} {v:.4f}" for k, v in test_m.items()))
    barrier(info)
    return FinetuneResult(out, model_path, val_m, test_m, report, history, global_step, best_epoch)
