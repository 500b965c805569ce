"""explain(): shapes at the input rate, stitching of several windows, mass-preserving rate mapping,
IG completeness, 12-/1-lead models and binary/multi-class/regression heads, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ecgfounder
from ecgfounder.explain.attribution import ExplainError, Explanation, attribute_windows, explain, rebin, stitch
from ecgfounder.models.net1d import Net1D, Net1DConfig
from ecgfounder.recording import Recording
from ecgfounder.signal.leads import STANDARD_12
from ecgfounder.signal.preprocess import PreprocessContract, preprocess_recording

pytest.importorskip("captum")


def _tiny(n_leads: int = 12, n_classes: int = 4, task: str = "multilabel", seed: int = 0) -> Net1D:
    torch.manual_seed(seed)
    m = Net1D(Net1DConfig(in_channels=n_leads, base_filters=8, filter_list=(8, 16), m_blocks_list=(1, 1),
                          kernel_size=8, groups_width=8, n_classes=n_classes))
    m.contract = PreprocessContract(leads=STANDARD_12[:n_leads] if n_leads == 12 else ("I",), mode="zscore")
    m.labels = tuple(f"L{i}" for i in range(n_classes))
    m.task_meta = {"task": task, "target_mean": 50.0, "target_std": 10.0}
    return m.eval()


def _record(fs: float, seconds: float, leads=STANDARD_12, seed: int = 0) -> Recording:
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    t = np.arange(n) / fs
    sig = 0.5 * np.sin(2 * np.pi * 1.2 * t)[None] * rng.uniform(0.5, 1.5, (len(leads), 1)) + rng.normal(0, 0.05, (len(leads), n))
    return Recording(sig, fs, tuple(leads), {"id": "rec"})


def test_500hz_single_window_is_the_model_space_map_and_ig_is_complete():
    m = _tiny()
    rec = _record(500, 10)
    e = explain(rec, m, labels=["L2", 0], n_steps=8)
    assert isinstance(e, Explanation) and e.labels == ("L2", "L0") and e.targets == (2, 0)
    assert e.attributions.shape == (2, 12, 5000) and e.fs == 500 and e.leads == STANDARD_12
    x = preprocess_recording(rec, m.contract, warn=False).windows
    direct, delta = attribute_windows(m, x, [2, 0], n_steps=8)
    np.testing.assert_allclose(e.attributions, direct[0], rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        gap = (m(torch.from_numpy(x)) - m(torch.zeros_like(torch.from_numpy(x))))[0, [2, 0]].numpy()
    # completeness: attributions sum to logit(x) - logit(baseline)
    np.testing.assert_allclose(e.attributions.sum(axis=(1, 2)), gap, rtol=0.02, atol=1e-3)
    shares = e.lead_shares()
    assert shares.shape == (2, 12) and np.allclose(shares.sum(axis=1), 1)
    assert e.baseline and "zeros" in e.baseline and e.n_steps == 8
    np.testing.assert_array_equal(e["L0"], e.attributions[1])


def test_long_record_at_another_rate_is_stitched_and_mapped_back_with_its_mass():
    m = _tiny()
    rec = _record(250, 15.0)  # 2 windows at 500 Hz, the second overlapping the first by 5 s
    e = explain(rec, m, labels=[1], n_steps=4)
    assert e.attributions.shape == (1, 12, rec.n_samples) and e.fs == 250
    x = preprocess_recording(rec, m.contract, warn=False).windows
    assert x.shape[0] == 2
    per_window, _ = attribute_windows(m, x, [1], n_steps=4)
    on_model_timeline = stitch(per_window, 7500)
    np.testing.assert_allclose(e.attributions.sum(axis=-1), on_model_timeline.sum(axis=-1), rtol=1e-4, atol=1e-6)
    # the first 5 s are the first window's map alone, two 500-Hz samples per 250-Hz sample
    np.testing.assert_allclose(e.attributions[0, :, :1250],
                               per_window[0, 0, :, :2500].reshape(12, 1250, 2).sum(-1), rtol=1e-4, atol=1e-6)
    # 5-10 s is covered by both windows: their maps are averaged
    np.testing.assert_allclose(on_model_timeline[0, :, 2500:5000],
                               (per_window[0, 0, :, 2500:] + per_window[1, 0, :, :2500]) / 2, rtol=1e-5, atol=1e-7)


def test_rebin_keeps_mass_up_and_down():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 1000))
    for fs_to, n_to in ((250.0, 500), (1000.0, 2000), (360.0, 720)):
        b = rebin(a, 500.0, fs_to, n_to)
        assert b.shape == (3, n_to)
        np.testing.assert_allclose(b.sum(-1), a.sum(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("task,n_classes", [("binary", 1), ("multiclass", 3), ("regression", 1)])
def test_fine_tuned_heads_and_the_single_lead_model(task, n_classes):
    m = _tiny(n_leads=1, n_classes=n_classes, task=task)
    rec = _record(500, 12.0, leads=("I", "II"))
    e = explain(rec, m, n_steps=4, top=2)
    assert e.attributions.shape == (min(2, n_classes), 1, rec.n_samples) and e.leads == ("I",)
    assert np.isfinite(e.attributions).all() and np.abs(e.attributions).sum() > 0
    if task == "regression":
        assert 0 < e.scores[0] < 200  # de-standardised value (mean 50, sd 10), not a probability
    e2 = explain(rec, m, labels=[0], n_steps=4, lead="II")
    assert e2.leads == ("II",)


def test_grad_cam_variants():
    m = _tiny()
    rec = _record(500, 10)
    g = explain(rec, m, labels=["L1"], method="gradcam")
    assert not g.lead_resolved and g.layer == "stage_list[-1]" and g.n_steps is None
    assert (g.attributions >= 0).all() and np.allclose(g.lead_shares().to_numpy(), 1 / 12)
    g2 = explain(rec, m, labels=["L1"], method="gradcam", layer=-2)
    assert g2.layer == "stage_list[-2]" and not np.allclose(g.attributions, g2.attributions)
    gg = explain(rec, m, labels=["L1"], method="guided_gradcam")
    assert gg.lead_resolved and gg.attributions.shape == (1, 12, 5000)


def test_refusals_name_the_fix():
    m = _tiny()
    rec = _record(500, 10)
    with pytest.raises(ExplainError, match="not an output"):
        explain(rec, m, labels=["no such label"])
    with pytest.raises(ExplainError, match="choose one of"):
        explain(rec, m, method="lime")
    with pytest.raises(ExplainError, match="out of range"):
        explain(rec, m, labels=[9])
    with pytest.raises(ExplainError, match="stages"):
        explain(rec, m, labels=[0], method="gradcam", layer=5)
    with pytest.raises(ExplainError, match="max_windows=2"):
        explain(_record(100, 40), m, labels=[0], max_windows=2)  # 4 windows: bounded work on long files


def test_public_name_is_callable_even_after_the_package_is_imported():
    import ecgfounder.explain.sanity  # noqa: F401  (binds ecgfounder.explain to the package)

    e = ecgfounder.explain(_record(500, 10), _tiny(), labels=[0], n_steps=4)
    assert e.attributions.shape == (1, 12, 5000)
    assert callable(ecgfounder.calibrate)


class _ReadsV2From3To4s(Net1D):
    """A Net1D whose output depends only on lead V2 in seconds 3-4 of each 10-s window."""

    def forward(self, x):
        mask = torch.zeros_like(x)
        mask[:, STANDARD_12.index("V2"), 300:400] = 1.0  # 100-Hz contract
        return super().forward(x * mask)


def test_a_model_reading_only_v2_in_seconds_3_to_4_gets_the_attribution_there():
    torch.manual_seed(0)
    m = _ReadsV2From3To4s(Net1DConfig(in_channels=12, base_filters=8, filter_list=(8, 16), m_blocks_list=(1, 1),
                                      kernel_size=8, groups_width=8, n_classes=2))
    m.contract = PreprocessContract(fs=100.0, n_samples=1000, leads=STANDARD_12, mode="zscore")
    m.labels, m.task_meta = ("a", "b"), {"task": "multilabel"}
    m.eval()
    rec = _record(1000, 20.0)  # two windows at another rate: the evidence is at 3-4 s and 13-14 s
    v2, fs = STANDARD_12.index("V2"), 1000
    for method in ("ig", "guided_gradcam"):
        a = np.abs(explain(rec, m, labels=["a"], method=method, n_steps=8).attributions[0])
        inside = a[v2, 3 * fs:4 * fs].sum() + a[v2, 13 * fs:14 * fs].sum()
        assert inside / a.sum() > 0.99, method
        assert 0.3 < a[v2, 3 * fs:4 * fs].sum() / inside < 0.7, method  # both windows mapped back to their seconds


@pytest.mark.parametrize("method", ["ig", "gradcam", "guided_gradcam"])
def test_zero_filled_missing_leads_get_no_attribution(method):
    m = _tiny()
    full = _record(500, 10)
    keep = [i for i, ld in enumerate(STANDARD_12) if ld not in ("V4", "V5", "V6")]
    rec = Recording(full.signal[keep], 500, tuple(STANDARD_12[i] for i in keep), {"id": "no V4-V6"})
    e = explain(rec, m, labels=[0, 1], method=method, n_steps=4, fill_missing=True)
    assert any("zero-filled" in n for n in e.notes)
    missing = [STANDARD_12.index(x) for x in ("V4", "V5", "V6")]
    assert not e.attributions[:, missing].any()  # not recorded: no evidence there, for any method
    shares = e.lead_shares()
    assert (shares[["V4", "V5", "V6"]].to_numpy() == 0).all() and np.allclose(shares.sum(axis=1), 1)
    assert all(ld not in ("V4", "V5", "V6") for top in e.summary(3).values() for ld, _ in top)


def test_unknown_grad_cam_layer_name_is_refused_with_the_fix():
    with pytest.raises(ExplainError, match=r"layer='nope' is not a module.*stage_list\.1"):
        explain(_record(500, 10), _tiny(), labels=[0], method="gradcam", layer="nope")


@pytest.mark.parametrize("method", ["ig", "gradcam", "guided_gradcam"])
def test_forward_passes_hold_at_most_internal_batch_size_inputs_and_chunking_changes_nothing(method):
    m = _tiny(n_classes=2)
    rec = _record(500, 45.0)  # 5 windows
    sizes = []
    hook = m.register_forward_pre_hook(lambda mod, args: sizes.append(args[0].shape[0]))
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Captum warns when it cannot honour internal_batch_size
            small = explain(rec, m, labels=[0, 1], method=method, n_steps=4, internal_batch_size=2)
    finally:
        hook.remove()
    assert sizes and max(sizes) <= 2, sizes  # memory bounded by internal_batch_size, not by the record's length
    whole = explain(rec, m, labels=[0, 1], method=method, n_steps=4, internal_batch_size=None)
    np.testing.assert_allclose(small.attributions, whole.attributions, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(small.scores, whole.scores, rtol=1e-6)


class _V2Energy(Net1D):
    """Logits = mean square of lead V2 over the window: integrated gradients of it are exactly
    ``x² / n`` on V2 (zero elsewhere), so the map must peak where the recording's V2 does."""

    def forward(self, x):
        return (x[:, STANDARD_12.index("V2")] ** 2).mean(-1, keepdim=True).repeat(1, 2)


def test_bursts_map_back_to_their_seconds_across_window_edges_at_another_rate():
    m = _V2Energy(Net1DConfig(in_channels=12, base_filters=8, filter_list=(8,), m_blocks_list=(1,), kernel_size=8,
                              groups_width=8, n_classes=2))
    m.contract = PreprocessContract(leads=STANDARD_12, mode="zscore")
    m.labels, m.task_meta = ("a", "b"), {"task": "multilabel"}
    fs, at = 257.0, (0.3, 9.98, 12.5, 22.2)  # windows at 0, 10 and 15.3 s (the last aligned to the end)
    n = int(round(25.3 * fs))
    t = np.arange(n) / fs
    sig = np.random.default_rng(0).normal(0, 0.05, (12, n))
    for s in at:
        sig[STANDARD_12.index("V2")] += 2 * np.exp(-0.5 * ((t - s) / 0.01) ** 2)
    a = explain(Recording(sig, fs, STANDARD_12, {"id": "bursts"}), m.eval(), labels=[0], n_steps=4).attributions[0]
    v2 = a[STANDARD_12.index("V2")]
    assert np.abs(v2).sum() / np.abs(a).sum() > 0.999
    for s in at:
        near = slice(int((s - 0.2) * fs), int((s + 0.2) * fs))
        assert abs((near.start + np.argmax(v2[near])) / fs - s) <= 1.5 / fs, s


def test_maps_land_on_the_recording_s_seconds_at_a_rate_resampled_by_an_approximate_ratio(monkeypatch):
    """499.7 Hz is resampled by 1001/1000 (the model-rate samples run at 500.2 Hz): mapped back as if at
    500 Hz, what the model looked at in the last window of 205 s landed 0.08 s (40 samples) late."""
    import ecgfounder.explain.attribution as attribution

    def marked(model, windows, targets, **kw):  # each window's attribution: one spike, at its sample 2500
        out = np.zeros((len(windows), len(targets)) + windows.shape[1:], dtype=np.float32)
        out[..., 2500] = 1.0
        return out, None

    monkeypatch.setattr(attribution, "attribute_windows", marked)
    m, fs = _tiny(n_leads=1), 499.7
    rec = _record(fs, 205, leads=("I",))
    e = explain(rec, m, labels=["L0"], max_windows=40)
    got = np.flatnonzero(e.attributions[0, 0] > 0.5 * e.attributions[0, 0].max())
    peaks = got[np.r_[True, np.diff(got) > 1]]  # the first sample of each spike's bins
    n_model = -(-rec.n_samples * 1001 // 1000)
    starts = np.r_[np.arange(0, n_model - 5000, 5000), n_model - 5000]  # (the windows: the last ends with the record)
    want = (starts + 2500) * 1000 / 1001  # model sample j is recording sample j * 1000 / 1001
    assert len(peaks) == len(want) and np.abs(peaks - want).max() <= 2
