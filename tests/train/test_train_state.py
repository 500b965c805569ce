"""A training run leaves the caller's process as it found it; training errors are package errors."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from ecgfounder.errors import ECGFounderError
from ecgfounder.train.config import ConfigError, config_from_dict
from ecgfounder.train.loop import finetune, run as run_with_hook
from ecgfounder.train.manifest import ManifestError
from ecgfounder.train.splits import LeakageError
from ecgfounder.train.state import preserved_global_state

from _train_helpers import SimulatedInterrupt, base_config


def _snapshot():
    return (torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate(),
            torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
            os.environ.get("CUBLAS_WORKSPACE_CONFIG"))


def _same(a, b) -> bool:
    return (torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2] and a[3:] == b[3:])


def test_finetune_restores_rng_threads_and_flags(cpsc2021_manifest, cache_dir, tmp_path):
    torch.manual_seed(1234)
    np.random.seed(99)
    random.seed(7)
    torch.backends.cudnn.benchmark = True
    before = _snapshot()
    try:
        cfg = base_config(cpsc2021_manifest, tmp_path / "a", cache_dir, train={"max_steps": 1, "deterministic": True})
        finetune(config_from_dict(cfg))
        assert _same(_snapshot(), before)
        # also when the run stops with an exception (a kill between steps)
        def kill(step):
            raise SimulatedInterrupt("killed")

        cfg["output"]["dir"] = str(tmp_path / "b")
        with pytest.raises(SimulatedInterrupt):
            run_with_hook(config_from_dict(cfg), step_hook=kill)
        assert _same(_snapshot(), before)
    finally:
        torch.backends.cudnn.benchmark = False


def test_preserved_global_state_restores_cudnn_and_deterministic_mode():
    torch.backends.cudnn.benchmark = True
    before = _snapshot()
    try:
        with pytest.raises(RuntimeError):
            with preserved_global_state():
                torch.backends.cudnn.benchmark = False
                torch.use_deterministic_algorithms(True)
                torch.manual_seed(0)
                np.random.seed(0)
                random.seed(0)
                torch.set_num_threads(max(1, before[3] + 1))
                raise RuntimeError("boom")
        assert _same(_snapshot(), before)
    finally:
        torch.backends.cudnn.benchmark = False


@pytest.mark.parametrize("cls", [ConfigError, ManifestError, LeakageError])
def test_training_errors_are_package_errors(cls):
    assert issubclass(cls, ECGFounderError) and issubclass(cls, ValueError)


def test_config_error_names_the_library_key(tmp_path):
    with pytest.raises(ECGFounderError, match=r"train\.batch_size=7 must be divisible"):
        from ecgfounder.train.distributed import epoch_plan

        epoch_plan(10, epoch=0, seed=0, global_batch=7, world_size=2)
    with pytest.raises(ConfigError, match="output.resume=.*not found"):
        finetune(config_from_dict(base_config(tmp_path / "m.csv", tmp_path / "o", tmp_path / "c",
                                              output={"resume": str(tmp_path / "nope.pt")})))
