"""Helpers for tests, benchmarks and examples: not part of the public API.

* :func:`synthetic_state_dict` / :func:`build_synthetic_checkpoint`: deterministic weights in the
  published checkpoint format (the golden outputs' recipe; see ``tests/data/SOURCES.md``).
* :func:`tiny_model`: a small Net1D with the real 150-label head and contract, for tests where the
  30.8 M-parameter model adds nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .models.net1d import Net1D, Net1DConfig

__all__ = ["synthetic_state_dict", "build_synthetic_checkpoint", "tiny_model", "TINY_CONFIG"]

TINY_CONFIG = dict(base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1))


def tiny_model(n_leads: int = 12, n_classes: int = 150, seed: int = 0) -> Net1D:
    """A small :class:`Net1D` (widths 8/16/32, one block per stage: ~20 k parameters) with the
    default description (the 150 ECGFounder labels for 150 outputs, the published contract over
    ``n_leads`` leads), deterministically initialised, in eval mode."""
    torch.manual_seed(seed)
    return Net1D(Net1DConfig(in_channels=n_leads, n_classes=n_classes, **TINY_CONFIG)).eval()


def synthetic_state_dict(n_leads: int = 12, seed: int = 0, config: Net1DConfig | None = None) -> dict[str, torch.Tensor]:
    """Deterministic weights anyone can rebuild (the golden outputs' recipe): walk the state dict
    in order; BatchNorm tensors get their defaults; every other tensor
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` from one ``torch.Generator`` seeded with ``seed``."""
    model = Net1D(config or Net1DConfig(in_channels=n_leads))
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        shape = tuple(t.shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.int64)
        elif key.endswith("running_mean"):
            out[key] = torch.zeros(shape)
        elif key.endswith("running_var"):
            out[key] = torch.ones(shape)
        elif "bn" in key and key.endswith(".weight"):
            out[key] = torch.ones(shape)
        elif "bn" in key and key.endswith(".bias"):
            out[key] = torch.zeros(shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
            bound = 1.0 / math.sqrt(fan_in)
            out[key] = (torch.rand(shape, generator=g) * 2 - 1) * bound
    return out


def build_synthetic_checkpoint(path: str | os.PathLike, leads: int = 12, seed: int = 0,
                               config: Net1DConfig | None = None) -> Path:
    """Write a checkpoint exactly in the published format (a ``torch.save``d dict with numpy
    scalars beside ``state_dict``) holding :func:`synthetic_state_dict` weights.  For tests."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "epoch": 0,
        "step": np.int64(0),
        "state_dict": synthetic_state_dict(leads, seed, config),
        "val_auroc": np.float64(0.5),
    }
    torch.save(ckpt, p)
    return p
