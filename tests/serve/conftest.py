"""Fixtures of the service tests: a tiny model with the real 150-label head, saved as a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    model = Net1D(Net1DConfig(in_channels=12, base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1),
                              kernel_size=8, groups_width=8, n_classes=150))
    model.labels = load_labels()
    model.contract = PreprocessContract()
    with torch.no_grad():  # a bias that puts a few labels above 0.5, so that there are findings
        model.dense.bias.copy_(torch.linspace(-6.0, 0.3, 150))
    return save_model(model, tmp_path_factory.mktemp("serve") / "tiny.safetensors")


@pytest.fixture(scope="session")
def analyzer(tiny_ckpt):
    from ecgfounder.serve.adapter import Analyzer

    return Analyzer.load(tiny_ckpt)

