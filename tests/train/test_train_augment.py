"""Training-time augmentation, dense training windows, per-window heart rate and fixed test patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb

from ecgfounder.train import finetune
from ecgfounder.train.augment import augment_rng, augment_window
from ecgfounder.train.config import AugmentConfig, ConfigError, config_from_dict
from ecgfounder.train.loop import run as run_with_hook
from ecgfounder.train.manifest import write_manifest
from ecgfounder.train.presets import build_preset, cpsc2021_manifest, heart_rate_bpm

from _train_helpers import SimulatedInterrupt, DATA, base_config

AUG = {"amplitude_scale": [0.7, 1.3], "noise_std": 0.1, "baseline_wander": 0.3, "flip_prob": 0.5, "time_shift_s": 0.4}


def _window(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 5000)).astype(np.float32)
    x[1] = 0.0  # a zero-filled missing lead
    return x


def test_augmentation_off_by_default_is_identity():
    x = _window()
    assert not AugmentConfig().enabled
    y = augment_window(x, AugmentConfig(), augment_rng(0, 0, 0), 500.0)
    np.testing.assert_array_equal(x, y)


def test_augmentation_is_deterministic_and_keeps_zero_leads():
    x = _window()
    cfg = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in AUG.items()})
    a = augment_window(x, cfg, augment_rng(3, 1, 7), 500.0)
    b = augment_window(x, cfg, augment_rng(3, 1, 7), 500.0)
    c = augment_window(x, cfg, augment_rng(3, 2, 7), 500.0)  # another epoch: another draw
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert (a[1] == 0).all()
    x0 = x.copy()
    augment_window(x, cfg, augment_rng(0, 0, 0), 500.0)
    np.testing.assert_array_equal(x, x0)  # input untouched


def test_each_transform_does_what_it_says():
    x = _window()
    gain = augment_window(x, AugmentConfig(amplitude_scale=(2.0, 2.0)), augment_rng(0, 0, 0), 500.0)
    np.testing.assert_allclose(gain, 2 * x, rtol=1e-6)
    flip = augment_window(x, AugmentConfig(flip_prob=1.0), augment_rng(0, 0, 0), 500.0)
    np.testing.assert_array_equal(flip, -x)
    noisy = augment_window(x, AugmentConfig(noise_std=0.5), augment_rng(0, 0, 0), 500.0)
    assert np.std(noisy[0] - x[0]) == pytest.approx(0.5 * x[0].std(), rel=0.05)
    for seed in range(5):
        sh = augment_window(x, AugmentConfig(time_shift_s=0.2), augment_rng(seed, 0, 0), 500.0)[0]
        ks = [k for k in range(-100, 101)
              if np.array_equal(sh, np.concatenate([np.zeros(max(k, 0), np.float32), x[0, max(-k, 0): 5000 - max(k, 0)],
                                                    np.zeros(max(-k, 0), np.float32)]))]
        assert len(ks) == 1  # a shift by at most 0.2 s = 100 samples, the gap zero-filled
    wander = augment_window(x, AugmentConfig(baseline_wander=1.0), augment_rng(1, 0, 0), 500.0) - x
    spec = np.abs(np.fft.rfft(wander[0]))
    assert spec.argmax() / 10.0 <= 0.5  # a slow sinusoid (10 s window: bin k = k/10 Hz)


@pytest.mark.parametrize("bad", ["augment.amplitude_scale=[1.2,0.8]", "augment.noise_std=-1", "augment.p=2",
                                 "augment.flip_prob=1.5", "augment.bogus=1", "data.train_stride_s=0"])
def test_bad_augment_values_refused(bad):
    from ecgfounder.train.config import apply_overrides

    with pytest.raises(ConfigError):
        config_from_dict(apply_overrides({"data": {"manifest": "m.csv"}}, [bad]))


def test_dense_training_windows_and_heart_rate_labels():
    grid = cpsc2021_manifest(DATA / "cpsc2021")
    dense = cpsc2021_manifest(DATA / "cpsc2021", stride_s=2.5)
    on_grid = dense[dense.train_only == 0].drop(columns="train_only").reset_index(drop=True)
    pd.testing.assert_frame_equal(on_grid, grid)  # the consecutive windows are unchanged
    off = dense[dense.train_only == 1]
    assert len(off) > 2 * len(grid) and not (off.start_s % 10 == 0).any()
    hr = cpsc2021_manifest(DATA / "cpsc2021", "hr")
    # heart rate of one window from the .atr beats, computed independently
    row = hr[hr.record == "data_21_7#3"].iloc[0]
    ann = wfdb.rdann(str(DATA / "cpsc2021" / "data_21_7"), "atr")
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in "NAaV"])
    inside = beats[(beats >= 30 * 200) & (beats < 40 * 200)]
    assert row.heart_rate == pytest.approx(60 * (len(inside) - 1) / ((inside[-1] - inside[0]) / 200))
    assert hr.heart_rate.between(35, 180).all()
    assert heart_rate_bpm(np.array([0, 500, 1000]), 500.0) == pytest.approx(60.0)
    _, info = build_preset("cpsc2021", DATA / "cpsc2021", ".", "hr")
    assert info["task"] == "regression"


def test_train_only_rows_and_fixed_test_patients(tmp_path, cache_dir):
    df = cpsc2021_manifest(DATA / "cpsc2021", stride_s=5.0)
    m = write_manifest(df, tmp_path / "dense.csv")
    cfg = base_config(m, tmp_path / "run", cache_dir, data={"test_patients": [92, 35], "val_patients": ["101"]},
                      train={"max_steps": 1})
    res = finetune(config_from_dict(cfg))
    out = pd.read_csv(tmp_path / "run" / "manifest.csv", dtype={"patient_id": str})
    assert set(out[out.split == "test"].patient_id) == {"92", "35"}
    assert set(out[out.split == "val"].patient_id) == {"101"}
    assert set(out[out.split == "train"].patient_id) == {"8", "21"}
    assert (out[out.split != "train"].train_only == 0).all()  # overlapping windows only for training
    assert (out[out.split == "train"].train_only == 1).any()
    assert res.global_step == 1
    with pytest.raises(ConfigError, match="not in the manifest"):
        finetune(config_from_dict(base_config(m, tmp_path / "bad", cache_dir, data={"test_patients": ["999"]})))


def test_resume_with_augmentation_is_exact(tmp_path, cpsc2021_manifest, cache_dir):
    kw = dict(train={"epochs": 2, "batch_size": 16, "checkpoint_every": 1}, augment=dict(AUG))
    full = finetune(config_from_dict(base_config(cpsc2021_manifest, tmp_path / "full", cache_dir, **kw)))
    plain = finetune(config_from_dict(base_config(cpsc2021_manifest, tmp_path / "plain", cache_dir,
                                                  train=kw["train"])))

    def kill(step):
        if step == full.global_step // 2 + 1:
            raise SimulatedInterrupt("killed")

    with pytest.raises(SimulatedInterrupt):
        run_with_hook(config_from_dict(base_config(cpsc2021_manifest, tmp_path / "cut", cache_dir, **kw)), step_hook=kill)
    finetune(config_from_dict(base_config(cpsc2021_manifest, tmp_path / "cut", cache_dir, **kw)))
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "full" / "last.safetensors")), load_file(str(tmp_path / "cut" / "last.safetensors"))
    c = load_file(str(tmp_path / "plain" / "last.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert any(not torch.allclose(a[k], c[k]) for k in a)  # augmentation changed the training
