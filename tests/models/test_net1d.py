"""Net1D: architecture facts, transfer interface, and parity with the published outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ecgfounder.io import read
from ecgfounder.models.net1d import Net1D, Net1DConfig, net1d_1lead, net1d_12lead
from ecgfounder.signal.preprocess import PreprocessContract, preprocess


@pytest.mark.parametrize("leads", [12, 1])
def test_state_dict_matches_published_manifest(data_dir, leads):
    manifest = json.loads((data_dir / f"manifest_{leads}lead.json").read_text())
    sd = Net1D(Net1DConfig(in_channels=leads)).state_dict()
    assert [k for k, _, _ in manifest] == list(sd)
    for key, shape, dtype in manifest:
        assert list(sd[key].shape) == shape, key
        assert str(sd[key].dtype) == dtype, key


def test_parameter_counts():
    assert sum(p.numel() for p in net1d_12lead().parameters()) == 30_819_014
    assert sum(p.numel() for p in net1d_1lead().parameters()) == 30_807_750


def test_time_length_progression():
    m = Net1D(Net1DConfig(in_channels=1, n_classes=3))
    lengths = []
    hooks = [s.register_forward_hook(lambda mod, i, o: lengths.append(o.shape[-1])) for s in m.stage_list]
    stem = []
    hooks.append(m.first_conv.register_forward_hook(lambda mod, i, o: stem.append(o.shape[-1])))
    with torch.no_grad():
        m(torch.zeros(1, 1, 5000))
    for h in hooks:
        h.remove()
    assert stem == [2500]
    assert lengths == [1250, 625, 313, 157, 79, 40, 20]


def test_transfer_interface():
    m = Net1D(Net1DConfig(in_channels=12, filter_list=(16, 32), m_blocks_list=(1, 2), base_filters=16, n_classes=5))
    x = torch.randn(3, 12, 5000)
    with torch.no_grad():
        f = m.forward_features(x)
        assert f.shape == (3, 32)
        assert torch.allclose(m.forward_head(f), m(x))
    assert m.get_classifier() is m.dense
    m.reset_classifier(2, labels=["a", "b"])
    assert m.labels == ("a", "b") and m.num_classes == 2 and m(x).shape == (3, 2)
    m.reset_classifier(0)
    assert m(x).shape == (3, 32)


def test_input_and_config_errors():
    m = Net1D(Net1DConfig(in_channels=12, filter_list=(16,), m_blocks_list=(1,), base_filters=16))
    with pytest.raises(ValueError, match=r"\(batch, 12, n_samples\)"):
        m(torch.zeros(1, 1, 5000))
    with pytest.raises(ValueError, match="groups_width"):
        Net1DConfig(filter_list=(20,), m_blocks_list=(1,))
    with pytest.raises(ValueError, match="equal length"):
        Net1DConfig(filter_list=(16, 32), m_blocks_list=(1,))


@pytest.mark.parametrize("leads", [12, 1])
def test_parity_with_published_outputs_on_golden_input(golden, leads, request):
    """Logits and features equal the published implementation within 1e-4 (golden input)."""
    model = request.getfixturevalue(f"model{leads}")
    idx = golden["sub_index"]
    x = torch.from_numpy(golden[f"preprocessed_{leads}_sub"])
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
    np.testing.assert_allclose(feats.numpy(), golden[f"features_{leads}"][idx], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits.numpy(), golden[f"logits_{leads}"][idx], atol=1e-4, rtol=0)


@pytest.mark.parametrize("leads", [12, pytest.param(1, marks=pytest.mark.slow)])  # (1 lead: its golden-input parity stays)
def test_parity_end_to_end_all_50_records(golden, data_dir, leads, request):
    """Our reader + preprocessing + model on all 50 real records equal the published logits/features."""
    model = request.getfixturevalue(f"model{leads}")
    contract = PreprocessContract(leads=("I",)) if leads == 1 else PreprocessContract()
    x = []
    for name in golden["names"]:
        rec = read(data_dir / "cinc2021" / f"{name}.hea")
        w = preprocess(rec.signal, rec.fs, rec.leads, contract, warn=False)
        assert w.shape == (1, leads, 5000)
        x.append(w[0])
    with torch.no_grad():
        feats = model.forward_features(torch.from_numpy(np.stack(x)))
        logits = model.forward_head(feats)
    np.testing.assert_allclose(feats.numpy(), golden[f"features_{leads}"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits.numpy(), golden[f"logits_{leads}"], atol=1e-4, rtol=0)
