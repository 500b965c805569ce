"""Shared fixtures: test data paths and synthetic checkpoints saved exactly as the published ones."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"

# the suite is sized for 2 cores: one torch thread per pytest-xdist worker (``-n 2``), two otherwise
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))
# precision/backend "auto" (the default) measures every inference path once per model: tests pin
# it to the reference path; tests/runtime/test_auto.py unsets this to test the measurement itself
os.environ.setdefault("ECGFOUNDER_AUTO_PATH", "fp32/torch")
# the preprocessing chain on scipy (identical results): compiling the numba kernels costs every test
# process ~6 s; tests/runtime/test_chains.py runs the compiled chain explicitly
os.environ.setdefault("ECGFOUNDER_NUMBA", "0")


def pytest_configure(config):
    """No garbage collection while the test modules are imported and rewritten: each full collection
    walked torch's and scipy's objects (~0.2 s; 2 of the 3 s of assertion rewriting per worker)."""
    gc.disable()


def pytest_collection_finish(session):
    """Collection on again, with what the imports and the collected tests hold frozen (never freed
    before the process ends anyway), so the full collections of the tests do not walk it again."""
    gc.enable()
    gc.freeze()


@pytest.fixture(autouse=True)
def _preparation_threads_at_normal_priority(monkeypatch):
    """Prediction's preparation threads stay at normal priority in tests (the same code path, see
    ``ecgfounder.runtime.overlap``): at idle priority their speed depends on what else keeps the cores
    busy (the suite's other xdist worker), and a thread that holds the GIL while it waits for a core
    stalls its test (a 0.9-s test took 8.7 s in a full run).  tests/runtime/test_overlap.py tests idle
    priority itself (``idle_priority`` imported before this patch) and starvation."""
    from ecgfounder.runtime import overlap

    monkeypatch.setattr(overlap, "idle_priority", lambda: False)


@pytest.fixture(autouse=True)
def _no_full_collection_between_auto_paths(monkeypatch, request):
    """``auto``'s measurement runs a full garbage collection before it builds each path (so the last
    one's weights are gone): ~0.1-0.3 s each in a test process that holds the suite's objects, for
    fakes and tiny models that hold nothing.  Kept where the release itself is tested (a test named
    ``..._is_released_...``)."""
    if "is_released" not in request.node.name:
        from types import SimpleNamespace

        monkeypatch.setattr("ecgfounder.runtime.auto.gc", SimpleNamespace(collect=lambda: 0))


@pytest.fixture(scope="session", autouse=True)
def _own_package_cache(tmp_path_factory):
    """The package's cache (window cache, exported/quantised models) in a folder of this test
    process: tests never touch the user's ~/.cache/ecgfounder, and two xdist workers never write
    the same cache file at once."""
    old = os.environ.get("ECGFOUNDER_CACHE")
    os.environ["ECGFOUNDER_CACHE"] = str(tmp_path_factory.mktemp("ecgfounder-cache"))
    yield
    if old is None:
        os.environ.pop("ECGFOUNDER_CACHE", None)
    else:
        os.environ["ECGFOUNDER_CACHE"] = old


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


@pytest.fixture
def stand_in_hub(tmp_path, monkeypatch):
    """A local stand-in for the Hugging Face Hub (tests/hub_server.py); huggingface_hub in this
    process downloads from and pushes to it, with its cache under ``tmp_path``."""
    import huggingface_hub.constants as hfc
    from hub_server import FakeHub

    with FakeHub() as hub:
        monkeypatch.setattr(hfc, "ENDPOINT", hub.url)
        monkeypatch.setattr(hfc, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        yield hub

