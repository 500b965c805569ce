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

__all__ = ["resume_path", "load_state", "save_state", "unwrap", "save_model_file", "load_weights"]


def resume_path(cfg: FinetuneConfig, out: Path) -> Path | None:
    """The checkpoint to resume from (``output.resume``: ``auto``, ``never`` or a path), or ``None``."""
    r = cfg.output.resume
    last = out / "checkpoints" / "last.pt"
    if r == "auto":
        return last if last.exists() else None
    if r == "never":
        if last.exists():
            raise ConfigError(f"{out} already holds a run ({last}); choose another output.dir or output.resume=auto.")
        return None
    p = Path(r)
    if not p.is_file():
        raise ConfigError(f"output.resume={r}: checkpoint not found (use auto, never or a path to last.pt).")
    return p


def load_state(path: Path) -> dict[str, Any]:
    """A resumable state written by :func:`save_state` (tensors and plain data only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable training checkpoint ({' '.join(str(exc).split())[:200]}).") from None


def save_state(obj: dict[str, Any], path: Path) -> None:
    """``torch.save``, written atomically (a kill never leaves a half-written checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def unwrap(model: nn.Module) -> Net1D:
    """The network inside a ``DistributedDataParallel`` wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]


def save_model_file(model: nn.Module, path: Path, cfg: FinetuneConfig, extra: dict[str, Any]) -> Path:
    """A loadable ``.safetensors`` model whose source records the run's configuration and ``extra``."""
    from ..models.loading import save_model

    return save_model(unwrap(model), path, source={"finetune": {"config": cfg.to_dict(), **extra}})


def load_weights(model: nn.Module, path: Path) -> None:
    """Load the weights of a model file written by :func:`save_model_file` into ``model``."""
    from ..models.loading import read_checkpoint

    sd, _ = read_checkpoint(path)
    unwrap(model).load_state_dict(sd)
