"""A fine-tuned model pushed to the (stand-in) Hub and loaded back by name gives the same outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ecgfounder.models.hub import push_to_hub
from ecgfounder.models.loading import load_model
from ecgfounder.train.cache import RecordRef, load_windows
from ecgfounder.train.config import config_from_dict
from ecgfounder.train.loop import finetune

from _train_helpers import base_config


def test_finetuned_model_pushed_and_loaded_back_by_name(cpsc2021_manifest, cache_dir, tmp_path, stand_in_hub):
    res = finetune(config_from_dict(base_config(cpsc2021_manifest, tmp_path / "run", cache_dir, train={"max_steps": 2})))
    tuned = load_model(res.model_path)
    ref = push_to_hub(tuned, "lab/af-cpsc2021", token="hf_test")
    card = stand_in_hub.pushed("lab/af-cpsc2021", "README.md").decode()
    assert "`AF`" in card and "binary" in card and "random initialisation" in card and "test_auroc" in card
    back = load_model("hf://lab/af-cpsc2021")
    assert back.labels == ("AF",) and back.task_meta == tuned.task_meta and back.contract == tuned.contract
    assert load_model(ref).source == back.source
    seg = pd.read_csv(tmp_path / "run" / "manifest.csv").iloc[0]
    x = torch.from_numpy(load_windows(RecordRef(seg.path, seg.start_s, seg.duration_s), tuned.contract))
    with torch.no_grad():
        np.testing.assert_array_equal(tuned(x).numpy(), back(x).numpy())
