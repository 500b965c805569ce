"""The recipe: label policy, PU-style asymmetric loss, single-lead augmentation, lead masking,
schedule, size presets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ecgfounder
from ecgfounder.pretrain.recipe import (
    SIZE_PRESETS, asymmetric_loss, bce_loss, mask_leads, select_lead, size_preset, targets, transform_batch,
    warmup_cosine,
)
from ecgfounder.signal.preprocess import PreprocessContract, prepare

from _pt_helpers import DATA


def test_targets_policies():
    s = np.array([[1, 0, -1, 2]], dtype=np.int8)
    t, w, kn = targets(s, "mask")
    assert t.tolist() == [[1, 0, 0, 0]] and w.tolist() == [[1, 1, 1, 0]] and kn.tolist() == [[0, 0, 1, 0]]
    assert targets(s, "positive")[0].tolist() == [[1, 0, 0, 1]]
    assert targets(s, "soft")[0].tolist() == [[1, 0, 0, 0.5]]
    assert targets(s, "negative")[1].tolist() == [[1, 1, 1, 1]]
    with pytest.raises(ValueError, match="choose one of"):
        targets(s, "drop")


def test_asymmetric_loss_reading():
    z = torch.linspace(-6, 6, 25)
    y = (torch.arange(25) % 2).float()
    # γ = 0 and no clip: exactly BCE
    assert torch.allclose(asymmetric_loss(z, y, gamma=0, clip=0), bce_loss(z, y), atol=1e-6)
    el = asymmetric_loss(z, torch.zeros(25), gamma=1.5, clip=0.05)
    p = torch.sigmoid(z)
    assert torch.all(el[p < 0.05] == 0)  # easy unlabelled negatives cost nothing
    assert torch.all(el <= bce_loss(z, torch.zeros(25)) + 1e-6)  # never more than BCE on unlabelled
    # positives: plain −log p; explicitly negated labels: plain BCE
    assert torch.allclose(asymmetric_loss(z, torch.ones(25)), bce_loss(z, torch.ones(25)), atol=1e-6)
    kn = torch.ones(25)
    assert torch.allclose(asymmetric_loss(z, torch.zeros(25), kn), bce_loss(z, torch.zeros(25)), atol=1e-6)


def test_single_lead_selection_equals_preprocessing_that_lead():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = ecgfounder.read(DATA / "cinc2021" / "E07500.hea")
        w12 = prepare(rec.signal, rec.fs, rec.leads, PreprocessContract()).windows[0]
        for name, sign in (("I", 1), ("aVR", -1), ("III", -1)):
            w1 = prepare(sign * rec.lead(name)[None], rec.fs, ["I"], PreprocessContract(leads=("I",))).windows[0]
            i = PreprocessContract().leads.index(name)
            got = select_lead(sign * w12[[i] * 12], PreprocessContract().leads, None)
            assert np.abs(got - w1).max() < 1e-4, name
    # with p = 0.5 about half the examples use an alternative lead, drawn per example
    x = np.stack([w12] * 200)
    keys = [f"{i:08d}_000" for i in range(200)]
    out = transform_batch(x, keys, store_leads=PreprocessContract().leads, model_leads=("I",), seed=0, epoch=0,
                          lead_augment_p=0.5)
    is_lead_i = np.array([np.allclose(o[0], select_lead(w12, PreprocessContract().leads, None)[0], atol=1e-5) for o in out])
    assert out.shape == (200, 1, 5000) and 0.35 < is_lead_i.mean() < 0.65
    again = transform_batch(x, keys, store_leads=PreprocessContract().leads, model_leads=("I",), seed=0, epoch=0,
                            lead_augment_p=0.5)
    assert np.array_equal(out, again)


def test_lead_masking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 500)).astype(np.float32)
    x[8:] = 0  # already missing leads stay missing
    for seed in range(20):
        y = mask_leads(x, np.random.default_rng(seed), 0.5)
        live = np.any(y != 0, axis=1)
        assert 1 <= live.sum() <= 8 and not live[8:].any()
        assert abs(float(y[live].mean())) < 1e-5 and abs(float(y[live].std()) - 1) < 1e-4
    assert mask_leads(x, np.random.default_rng(0), 0.0) is x


def test_schedule_and_presets():
    lr = [warmup_cosine(s, warmup=4, total=20, min_ratio=0.1) for s in range(21)]
    assert lr[:4] == [0.25, 0.5, 0.75, 1.0] and lr[4] == 1.0 and abs(lr[20] - 0.1) < 1e-12
    assert all(a >= b for a, b in zip(lr[4:], lr[5:]))
    assert size_preset("base", in_channels=12, n_classes=150) == ecgfounder.Net1DConfig()
    n = sum(p.numel() for p in ecgfounder.Net1D(size_preset("small", in_channels=12, n_classes=150)).parameters())
    assert 7.5e6 < n < 9.5e6
    assert set(SIZE_PRESETS) == {"tiny", "small", "base", "large"}
