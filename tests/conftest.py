"""Shared fixtures: test data paths and synthetic checkpoints saved exactly as the published ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(DATA / "golden_cinc2021.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="session")
def ckpt12(tmp_path_factory) -> Path:
    """A 12-lead checkpoint in the published format (torch.save'd dict with numpy scalars)."""
    from ecgfounder.models.loading import build_synthetic_checkpoint

    return build_synthetic_checkpoint(tmp_path_factory.mktemp("ckpt") / "12_lead_ECGFounder.pth", leads=12)


@pytest.fixture(scope="session")
def ckpt1(tmp_path_factory) -> Path:
    from ecgfounder.models.loading import build_synthetic_checkpoint

    return build_synthetic_checkpoint(tmp_path_factory.mktemp("ckpt") / "1_lead_ECGFounder.pth", leads=1)


@pytest.fixture(scope="session")
def model12(ckpt12):
    from ecgfounder.models.loading import load_model

    return load_model(ckpt12)


@pytest.fixture(scope="session")
def model1(ckpt1):
    from ecgfounder.models.loading import load_model

    return load_model(ckpt1)


# --- small models with the real 150-label head (prediction and CLI tests) -----------------------


@pytest.fixture(scope="session")
def tiny12():
    """A ~20 k-parameter Net1D with the 150 ECGFounder labels and the published 12-lead contract."""
    from ecgfounder.testing import tiny_model

    return tiny_model(12)


@pytest.fixture(scope="session")
def tiny1():
    from ecgfounder.testing import tiny_model

    return tiny_model(1)


@pytest.fixture(scope="session")
def tiny_ckpt12(tmp_path_factory, tiny12) -> Path:
    """``tiny12`` saved in our format (for the command line's --checkpoint)."""
    from ecgfounder.models.loading import save_model

    return save_model(tiny12, tmp_path_factory.mktemp("tiny") / "tiny12.safetensors")
