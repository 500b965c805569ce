"""Shared fixtures for the fine-tuning tests: small real data (tests/data/train) and a small model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _train_helpers import DATA


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def cpsc2021_manifest(tmp_path_factory) -> Path:
    """The cpsc2021 test records as 10-s AF windows, with fixed patient-level splits:
    train = patients 8 (AF), 21 and 35 (no AF); val = 101; test = 92 (both mixed)."""
    from ecgfounder.train.manifest import write_manifest
    from ecgfounder.train.presets import cpsc2021_manifest as build

    df = build(DATA / "cpsc2021")
    df["split"] = df["patient_id"].map({"8": "train", "21": "train", "35": "train", "101": "val", "92": "test"})
    return write_manifest(df, tmp_path_factory.mktemp("m21") / "manifest.csv")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("window-cache")
