"""Learnability: from random initialisation a small Net1D learns a real single-lead task on CPU.

Heart rate (beats/min, from the reference R peaks) of the 50 CPSC 2019 sample records: 40 records
train, 10 held out (whole groups: records of one moment, with identical R peaks, stay together),
with the training-time augmentation of the example configuration.  Chance level of a regression
is predicting the training mean; the held-out MAE must be well below it.  A network that did not
learn (or a broken loop, augmentation or target standardisation) stays at or above the baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgfounder.train import finetune
from ecgfounder.train.config import config_from_dict
from ecgfounder.train.manifest import write_manifest
from ecgfounder.train.presets import cpsc2019_manifest

from _train_helpers import DATA

AUGMENT = {"amplitude_scale": [0.7, 1.3], "noise_std": 0.1, "baseline_wander": 0.3, "flip_prob": 0.5, "time_shift_s": 0.5}


def _run(tmp_path, cache_dir, epochs: int):
    df = cpsc2019_manifest(DATA / "cpsc2019", tmp_path)
    assert len(df) == 50
    # 10 held-out records of whole groups: records of one moment (identical R peaks) stay together
    groups = np.random.default_rng(0).permutation(df.patient_id.unique())
    sizes = df.patient_id.value_counts()
    held = groups[: int(np.searchsorted(np.cumsum(sizes[groups].to_numpy()), 10)) + 1]
    test = df.patient_id.isin(held).to_numpy()
    df["split"] = np.where(test, "test", "train")
    m = write_manifest(df, tmp_path / "hr.csv")
    cfg = config_from_dict({
        "data": {"manifest": str(m), "leads": 1, "lead": "ECG", "cache_dir": str(cache_dir), "cache_workers": 1},
        "model": {"init": "random", "arch": "small"},
        "task": {"type": "regression"},
        "optim": {"lr": 3e-3, "scheduler": "cosine", "warmup_ratio": 0.05},
        "train": {"epochs": epochs, "batch_size": 8, "early_stopping": 0, "progress": False, "threads": 1, "seed": 0},
        "augment": AUGMENT,
        "output": {"dir": str(tmp_path / "run"), "tensorboard": False},
        "eval": {"n_boot": 200, "bootstrap_unit": "record"},
    })
    res = finetune(cfg)
    pred = pd.read_csv(res.out_dir / "test_predictions.csv")
    y, p = pred["target:heart_rate"].to_numpy(), pred["heart_rate"].to_numpy()
    baseline = np.abs(y - df.loc[~test, "heart_rate"].mean()).mean()  # chance: the training mean
    return float(np.abs(y - p).mean()), float(baseline), res


@pytest.mark.slow
def test_heart_rate_learned_from_scratch(tmp_path, cache_dir):
    mae, baseline, res = _run(tmp_path, cache_dir, epochs=150)
    assert res.test_metrics["test_mae_train_mean"] == pytest.approx(baseline)
    assert baseline > 15  # the held-out heart rates spread widely: the bar is meaningful
    assert mae < 0.5 * baseline, (mae, baseline)
