"""The batched torch chain of the benchmarks (``benchmarks/torch_chain.py``, measured on a GPU by
``gpu_check.sh``) against the published outputs: the figures it gives are of the right chain."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ecgfounder.signal.preprocess import PreprocessContract

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from torch_chain import TorchChain  # noqa: E402


def _records(data_dir, names):
    import wfdb

    return [np.nan_to_num(wfdb.rdsamp(str(data_dir / "cinc2021" / n))[0].T) for n in names]


def _z(x):
    return ((x - x.mean()) / (x.std() + 1e-8)).astype(np.float32)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_chain_matches_golden(golden, data_dir, dtype):
    names = golden["names"][golden["sub_index"]][:4]
    x = np.stack(_records(data_dir, names))
    out = TorchChain(PreprocessContract(), "cpu", dtype)(x).numpy()
    assert out.shape == (4, 12, 5000) and out.dtype == np.float32
    assert np.abs(out - golden["preprocessed_12_sub"][:4]).max() <= 1e-4


def test_torch_chain_zscore_mode_and_short_input():
    x = np.random.default_rng(0).standard_normal((2, 1, 600))
    c = PreprocessContract(leads=("I",), mode="zscore")
    out = TorchChain(c)(x).numpy()
    np.testing.assert_allclose(out, np.stack([_z(r) for r in x]), atol=1e-6)
    with pytest.raises(ValueError, match="too short"):
        TorchChain(PreprocessContract(leads=("I",))).filter(x[..., :20])
