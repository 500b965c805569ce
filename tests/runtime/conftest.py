"""Fixtures of the runtime tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny():
    """A small Net1D with the 150 labels and the default contract (fast to export and run)."""
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    m = Net1D(Net1DConfig(base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 2), n_classes=150))
    m.contract, m.labels = PreprocessContract(), load_labels()
    return m.eval()
