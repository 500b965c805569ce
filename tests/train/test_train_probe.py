"""The linear probe keeps what it reuses honest: embeddings of the weights it starts from, written
atomically, and a frozen backbone that stays frozen (BatchNorm statistics, dropout)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from ecgfounder.models.net1d import Net1D, Net1DConfig
from ecgfounder.train.config import config_from_dict
from ecgfounder.train.loop import finetune
from ecgfounder.train.model import build_model

from _train_helpers import SMALL, base_config


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    net = Net1D(Net1DConfig(in_channels=1, n_classes=150, **SMALL))
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def _probe_cfg(manifest, out, cache, init):
    cfg = base_config(manifest, out, cache, strategy={"name": "linear_probe", "probe_c_grid": [1.0]}, eval={"n_boot": 0})
    cfg["model"] = {"init": str(init)}
    cfg["data"].pop("leads")
    return config_from_dict(cfg)


@pytest.fixture
def small_manifest(tmp_path, cpsc2021_manifest):
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df = df[df.record.str.startswith(("data_8_4", "data_35_6#0", "data_35_6#1", "data_92_12", "data_101_6#1", "data_101_6#2"))]
    df.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def test_probe_of_rewritten_start_weights_embeds_again(tmp_path, small_manifest, cache_dir):
    """model.init rewritten in place (a pre-training run published again): the probe reused the old
    weights' embeddings and saved the new backbone with a head fitted on the old one's features."""
    init = _checkpoint(tmp_path / "base.pth", seed=0)
    finetune(_probe_cfg(small_manifest, tmp_path / "run", cache_dir, init))
    _checkpoint(init, seed=1)
    again = finetune(_probe_cfg(small_manifest, tmp_path / "run", cache_dir, init))
    fresh = finetune(_probe_cfg(small_manifest, tmp_path / "fresh", cache_dir, init))
    a, b = load_file(str(again.model_path)), load_file(str(fresh.model_path))
    for k in ("dense.weight", "dense.bias"):
        torch.testing.assert_close(a[k], b[k])
    assert again.test_metrics == pytest.approx(fresh.test_metrics)


def test_probe_killed_while_saving_embeddings_runs_again(tmp_path, small_manifest, cache_dir):
    """np.savez wrote the embeddings file in place: a kill left a truncated file under the final
    name, and the next run of the same command failed on it (zipfile.BadZipFile)."""
    init = _checkpoint(tmp_path / "base.pth", seed=0)
    first = finetune(_probe_cfg(small_manifest, tmp_path / "run", cache_dir, init))
    emb = next((tmp_path / "run").glob("embeddings-*.npz"))
    emb.write_bytes(emb.read_bytes()[:300])
    for name in ("model.safetensors", "best.safetensors", "last.safetensors", "metrics.json"):
        (tmp_path / "run" / name).unlink(missing_ok=True)  # the killed run wrote no results
    again = finetune(_probe_cfg(small_manifest, tmp_path / "run", cache_dir, init))
    assert again.test_metrics == pytest.approx(first.test_metrics)
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".partial")] == []
    with np.load(emb) as z:
        assert set(z.files) == {"train", "val", "test"}


@pytest.mark.parametrize("layer", ["use_bn", "use_do"])
def test_frozen_backbone_keeps_its_statistics_and_no_dropout(tmp_path, cpsc2021_manifest, cache_dir, layer):
    """A trained linear probe (probe_fast=false) of a BatchNorm backbone: train mode updated the
    frozen layers' running statistics, and dropout fed the head features it never sees in use."""
    cfg = config_from_dict(base_config(cpsc2021_manifest, tmp_path / "run", cache_dir,
                                       model={"init": "random", "arch": {**SMALL, layer: True}},
                                       strategy={"name": "linear_probe", "probe_fast": False},
                                       train={"max_steps": 2}, eval={"n_boot": 0}))
    start = build_model(cfg).state_dict()
    seen = []
    model_forward = Net1D.forward_features

    def spy(self, x):
        seen.append([m.training for n, m in self.named_modules()
                     if n.startswith(("first_", "stage_list.")) and not any(m.children())])  # the layers that act
        return model_forward(self, x)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Net1D, "forward_features", spy)
        res = finetune(cfg)
    end = load_file(str(res.model_path))
    assert [k for k in start if not k.startswith("dense.") and not torch.equal(start[k], end[k])] == []
    assert seen and not any(any(s) for s in seen)
