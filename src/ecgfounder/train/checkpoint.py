"""What a run writes to resume from and to share: the resumable state (``checkpoints/last.pt``)
and the model files (``best``/``last``/``model.safetensors``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._fileio import atomic_path
from ..errors import CheckpointError
from ..models.net1d import Net1D
from .config import ConfigError, FinetuneConfig
from .model import schedule_length

__all__ = ["resume_path", "load_state", "check_resume_config", "config_changes", "save_state", "write_failed", "unwrap",
           "save_model_file", "load_weights", "TrainingInterrupted", "interrupted_note", "schedule_changed",
           "model_file_epoch"]

# Settings a resumed run may change: how long to train, how to run, where paths point, what to report.
# Every other setting shapes the weights, so a checkpoint written under another value is refused.
# The cosine schedule's length (optim.schedule_steps, else train.max_steps or the epochs' steps)
# shapes them too: it is compared on its own (check_resume_config), whichever setting gives it.
RESUMABLE_CHANGES = frozenset({
    "data.manifest", "data.root", "data.cache_dir", "data.cache_workers",
    "train.epochs", "train.max_steps", "train.early_stopping", "train.eval_batch_size", "train.checkpoint_every",
    "train.device", "train.num_workers", "train.progress", "train.threads", "optim.schedule_steps",
})
RESUMABLE_SECTIONS = ("output", "eval")


def resume_path(cfg: FinetuneConfig, out: Path) -> Path | None:
    """The checkpoint to resume from (``output.resume``: ``auto``, ``never`` or a path), or ``None``."""
    r = cfg.output.resume
    last = out / "checkpoints" / "last.pt"
    if r == "auto":
        if last.exists():
            return last
        _check_run_folder(cfg, out)  # a run without a resumable checkpoint (linear probe, killed early)
        return None
    if r == "never":
        held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if held:
            raise ConfigError(f"{out} is not empty (it holds {', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); "
                              "output.resume=never starts only in a new or empty folder: choose another output.dir, "
                              "or output.resume=auto to continue the run there.")
        return None
    p = Path(r)
    if not p.is_file():
        raise ConfigError(f"output.resume={r}: checkpoint not found (use auto, never or a path to last.pt).")
    return p


# files a run writes when it ends: what a new run in the folder would overwrite
_RESULTS = ("model.safetensors", "best.safetensors", "last.safetensors", "metrics.json")


def _check_run_folder(cfg: FinetuneConfig, out: Path) -> None:
    """Refuse to write over the results of a finished run (a linear probe keeps no checkpoint) made
    with another configuration (its ``config.yaml``); a run that ended before any result (a wrong
    setting found at the start) may be started again with other settings."""
    import yaml

    f = out / "config.yaml"
    if not f.is_file() or not any((out / name).exists() for name in _RESULTS):
        return
    try:
        saved = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        saved = None
    changed = (config_changes(saved, cfg.to_dict(), RESUMABLE_CHANGES, RESUMABLE_SECTIONS, where="its config.yaml")
               if isinstance(saved, dict) else [f"{f.name} unreadable"])
    if changed:
        raise ConfigError(f"{out} already holds the results of a run with another configuration ({'; '.join(changed)}); "
                          "choose another output.dir, or run it with the settings of its config.yaml.")


def load_state(path: Path) -> dict[str, Any]:
    """A resumable state written by :func:`save_state` (tensors and plain data only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable training checkpoint ({' '.join(str(exc).split())[:200]}).") from None


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and key.count(".") < 1:  # sections; values that are mappings (model.arch) stay whole
            out.update(_flat(v, key))
        else:
            out[key] = v
    return out


def config_changes(saved: dict[str, Any], now: dict[str, Any], allowed: frozenset[str] = frozenset(),
                   sections: tuple[str, ...] = (), where: str = "the checkpoint") -> list[str]:
    """``key: saved -> now`` for every setting of the nested configuration dicts that differs,
    except the ``allowed`` keys and the keys of ``sections``."""
    a, b = _flat(saved), _flat(now)
    return [f"{k}={a.get(k)!r} in {where}, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in allowed and k.split(".")[0] not in sections]


def check_resume_config(state: dict[str, Any], cfg: FinetuneConfig, path: Path) -> None:
    """Refuse to resume ``state`` (read from ``path``) under a configuration that would train
    differently from the one it was written with (see :data:`RESUMABLE_CHANGES`), or under a
    cosine schedule of another length: the learning rates from its step on would follow another
    curve than the one its steps followed.  Setting ``optim.schedule_steps`` to the checkpoint's
    length keeps its schedule (e.g. to train beyond its end at ``min_lr_ratio``)."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return  # a checkpoint of an older version: nothing to compare
    changed = config_changes(saved, cfg.to_dict(), RESUMABLE_CHANGES, RESUMABLE_SECTIONS)
    if changed:
        raise ConfigError(
            f"cannot resume from {path}: it was written with another configuration ({'; '.join(changed)}). "
            "Resume with the checkpoint's settings (its run folder's config.yaml), or start a new run in another "
            "output.dir (output.resume=never)."
        )
    was, per_epoch = state.get("schedule_steps"), state.get("steps_per_epoch")
    if was is None or per_epoch is None:
        return  # no cosine schedule, or a checkpoint that does not record its length
    now = schedule_length(cfg, int(per_epoch))
    if now is not None and now != was:
        o, t = cfg.optim, cfg.train
        why = (f"optim.schedule_steps={o.schedule_steps}" if o.schedule_steps else f"train.max_steps={t.max_steps}"
               if t.max_steps else f"train.epochs={t.epochs} of {per_epoch} steps")
        raise schedule_changed(path, was, now, why, state.get("global_step"), "output.dir")


def schedule_changed(path: Path, was: int, now: int, why: str, step: Any, out_setting: str) -> ConfigError:
    """The refusal to resume ``path`` (at optimiser step ``step``) under a cosine schedule of ``now``
    steps (set by ``why``) where the checkpoint's spans ``was``; ``out_setting`` names the run folder's
    setting (fine-tuning's ``output.dir``, pre-training's ``train.out``)."""
    return ConfigError(
        f"cannot resume from {path}: its cosine schedule spans {was} optimiser steps and this run's would span "
        f"{now} ({why}), which changes the learning rates from step {step} on. Keep the checkpoint's schedule with "
        f"optim.schedule_steps={was}, or start a new run in another {out_setting} with optim.schedule_steps set to "
        "the whole run's length (a run trained in pieces then follows one schedule)."
    )


def write_failed(path: Path, exc: BaseException, then: str) -> CheckpointError:
    """The one-line error of a file a run could not write (disk full, no permission): torch and
    safetensors say only "file write failed" or "unexpected pos"; this names the file, the reason
    and the free space, and ``then`` says how to go on."""
    import shutil

    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MB free there"
    except OSError:
        free = "free space unknown"
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed"
    return CheckpointError(f"cannot write {path} ({why}; {free}): the disk may be full or not writable. The files "
                           f"written before are kept; free space or fix the permissions, then {then}.")


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C, SIGTERM); ``str(exc)`` says what was kept and how to go on."""


def interrupted_note(last: Path, how: str, every: str | None) -> str:
    """What an interrupted run leaves to resume from (its checkpoint ``last``) and ``how`` it goes
    on; ``every``: the setting that checkpoints more often (``None``: the run already sets it, so
    the hint would send the user to a setting they have)."""
    if not last.is_file():
        hint = f"; {every} checkpoints every N steps" if every else ""
        return f"interrupted before the first checkpoint: nothing in {last.parent} to resume from{hint}."
    import time

    when = time.strftime("%H:%M:%S", time.localtime(last.stat().st_mtime))
    return f"interrupted: the run goes on from its last checkpoint, {last} (written {when}), {how}."


def save_state(obj: dict[str, Any], path: Path, then: str = "run the same command again to resume") -> None:
    """``torch.save``, written atomically (a kill never leaves a half-written checkpoint); a failed
    write is a :class:`CheckpointError` (see :func:`write_failed`)."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as exc:
        raise write_failed(path, exc, then) from None


def unwrap(model: nn.Module) -> Net1D:
    """The network inside a ``DistributedDataParallel`` wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]


def save_model_file(model: nn.Module, path: Path, cfg: FinetuneConfig, extra: dict[str, Any]) -> Path:
    """A loadable ``.safetensors`` model whose source records the run's configuration and ``extra``."""
    from safetensors import SafetensorError

    from ..models.loading import save_model

    try:
        return save_model(unwrap(model), path, source={"finetune": {"config": cfg.to_dict(), **extra}})
    except (OSError, RuntimeError, SafetensorError) as exc:
        raise write_failed(path, exc, "run the same command again to resume") from None


def load_weights(model: nn.Module, path: Path) -> None:
    """Load the weights of a model file written by :func:`save_model_file` into ``model``."""
    from ..models.loading import read_checkpoint

    sd, _ = read_checkpoint(path)
    unwrap(model).load_state_dict(sd)


def model_file_epoch(path: Path) -> int | str | None:
    """The epoch (from 1) a model file written by :func:`save_model_file` records (its header
    only is read); ``None`` where there is no file, ``"unreadable"`` where it cannot be read or
    records none."""
    import json

    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("ecgfounder", "{}"))
        epoch = meta["source"]["finetune"]["epoch"]
    except (SafetensorError, OSError, ValueError, KeyError, TypeError):
        return "unreadable"
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else "unreadable"
