"""One model description: set by the builder and the loader, carried by the published weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgfounder.models.description import ModelDescription, default_contract, model_fingerprint, model_metadata
from ecgfounder.models.heads import aggregate_windows, scores_from_logits
from ecgfounder.models.net1d import Net1D, Net1DConfig
from ecgfounder.models.weights import KNOWN_WEIGHTS
from ecgfounder.signal.leads import STANDARD_12

TINY = dict(base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1))


def test_builder_and_known_weights_describe_the_same_contract():
    m = Net1D(Net1DConfig(**TINY, n_classes=150))
    known = KNOWN_WEIGHTS["12-lead"].description
    assert m.description.contract == known.contract == default_contract(12)
    assert m.labels == known.labels and len(known.labels) == 150 and known.sha256 == KNOWN_WEIGHTS["12-lead"].sha256
    assert KNOWN_WEIGHTS["1-lead"].description.contract.leads == ("I",)
    assert default_contract(3).leads == STANDARD_12[:3] and default_contract(15) is None


def test_properties_read_through_and_assignments_are_checked():
    m = Net1D(Net1DConfig(**TINY, n_classes=2))
    assert m.labels == ("output_0", "output_1") and m.task_meta == {"task": "multilabel"}
    m.task_meta = {"task": "multiclass"}
    assert m.description.task == "multiclass"
    m.task_meta["task"] = "regression"  # a copy: the description is immutable
    assert m.description.task == "multiclass"
    with pytest.raises(ValueError, match="3 label names for a head of 2 outputs"):
        m.labels = ("a", "b", "c")
    with pytest.raises(ValueError, match="names 1 leads but the model takes 12"):
        m.description = m.description.replace(contract=default_contract(1))
    with pytest.raises(Exception):
        m.description.labels = ("x", "y")  # frozen


def test_one_metadata_dict_and_one_fingerprint():
    torch.manual_seed(0)
    a = Net1D(Net1DConfig(**TINY, n_classes=150))
    meta = model_metadata(a)
    assert meta["config"]["filter_list"] == [16, 32] and len(meta["labels"]) == 150
    assert ModelDescription.for_model(12, 150, meta).contract == a.contract
    fa = model_fingerprint(a)
    assert fa == model_fingerprint(a) and len(fa) == 64
    a.contract = a.contract.with_mode("zscore")
    assert model_fingerprint(a) != fa  # the contract decides outputs, so it is in the key
    assert model_fingerprint(a, extra="max") != model_fingerprint(a)


def test_heads_scores_and_window_aggregation():
    logits = np.array([[0.0, 2.0], [1.0, -1.0]], np.float32)
    np.testing.assert_allclose(scores_from_logits(logits), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    sm = scores_from_logits(torch.from_numpy(logits), {"task": "multiclass"})
    assert isinstance(sm, torch.Tensor) and torch.allclose(sm.sum(1), torch.ones(2))
    reg = scores_from_logits(logits, {"task": "regression", "target_mean": 10.0, "target_std": 2.0})
    np.testing.assert_allclose(reg, logits * 2 + 10)
    with pytest.raises(ValueError, match="unknown task"):
        scores_from_logits(logits, {"task": "ranking"})
    np.testing.assert_allclose(aggregate_windows(logits, "mean"), [0.5, 0.5])
    np.testing.assert_allclose(aggregate_windows(logits, "max"), [1.0, 2.0])
    assert aggregate_windows(logits, "none") is not None and aggregate_windows(logits, "none").shape == (2, 2)
    with pytest.raises(ValueError, match="choose one of mean, max, none"):
        aggregate_windows(logits, "median")
