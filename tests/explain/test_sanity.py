"""Sanity checks that can fail (Adebayo et al. 2018), on a tiny Net1D trained in seconds on records
with a planted finding (see ``synth.py``):

(a) randomising the head, then also the last stage(s), changes the integrated-gradients maps
    (Spearman correlation of the signed maps below 0.5; the correlation of |maps| is printed: it stays
    higher, 0.55-0.69 here, the input-structure effect Adebayo et al. describe for gradient×input
    methods, since |IG| is large wherever |x| is);
(b) ≥ 50 % of the attribution mass of 20 held-out positives lands in the planted lead and second
    (chance: 1/12 × 1/10 ≈ 0.8 %);
(c) deleting the most-attributed segments lowers the score more than deleting random ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("captum")
sys.path.insert(0, str(Path(__file__).parent))

from synth import PLANT_LEAD, PLANT_T, make_records, train_tiny, windows_of  # noqa: E402

from ecgfounder.explain.attribution import attribute_windows, explain  # noqa: E402
from ecgfounder.explain.sanity import deletion_curve, randomised_copy, rank_correlation, region_share  # noqa: E402
from ecgfounder.signal.leads import STANDARD_12  # noqa: E402

N_STEPS = 16  # IG steps in these tests (the library default is 32)


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster than two fighting over a busy machine
    try:
        model = train_tiny(make_records(192, seed=1))
        held_out = make_records(40, seed=2)
        with torch.no_grad():
            logit = model(torch.from_numpy(windows_of(held_out)))[:, 0].numpy()
        positives = [r for r in held_out if r.meta["positive"]]
        yield model, held_out, logit, positives
    finally:
        torch.set_num_threads(threads)


def test_model_learned_the_planted_finding(trained):
    from sklearn.metrics import roc_auc_score

    _, held_out, logit, positives = trained
    y = [r.meta["positive"] for r in held_out]
    assert len(positives) == 20
    assert roc_auc_score(y, logit) > 0.95  # else the checks below would test nothing


def test_planted_signal_draws_the_attribution_mass(trained):
    model, _, _, positives = trained
    lead = STANDARD_12.index(PLANT_LEAD)
    inside = total = 0.0
    shares = []
    for rec in positives:
        e = explain(rec, model, labels=[0], n_steps=N_STEPS)
        a = e.attributions[0]
        assert a.shape == (12, rec.n_samples)  # back at the records' 500 Hz from the 100-Hz model
        i0, i1 = int(PLANT_T[0] * rec.fs), int(PLANT_T[1] * rec.fs)
        shares.append(region_share(a, lead, i0, i1))
        inside += np.abs(a[lead, i0:i1]).sum()
        total += np.abs(a).sum()
    pooled = inside / total
    print(f"planted lead×second share of |IG| mass: pooled {pooled:.3f}, median {np.median(shares):.3f}, "
          f"min {min(shares):.3f} over {len(shares)} held-out positives (chance {1 / 120:.4f})")
    assert pooled >= 0.5
    assert np.median(shares) >= 0.5


def test_randomising_head_then_last_stage_changes_the_maps(trained):
    model, _, _, positives = trained
    x = windows_of(positives[:8])
    base, _ = attribute_windows(model, x, [0], n_steps=N_STEPS)
    report = {}
    for depth, name in ((1, "head"), (2, "head + last stage"), (3, "head + last 2 stages")):
        rnd, _ = attribute_windows(randomised_copy(model, depth, seed=depth), x, [0], n_steps=N_STEPS)
        rho = [rank_correlation(base[k, 0], rnd[k, 0]) for k in range(len(x))]
        signed = [rank_correlation(base[k, 0], rnd[k, 0], absolute=False) for k in range(len(x))]
        report[name] = (float(np.mean(rho)), float(np.mean(signed)))
    print("Spearman trained vs randomised (|maps|, signed):", {k: tuple(round(v, 3) for v in vs) for k, vs in report.items()})
    for name, (rho_abs, rho_signed) in report.items():
        assert rho_signed < 0.5, name
        assert rho_abs < 0.9, name  # magnitudes follow |x| (see the module doc) but must not be unchanged
    # the control: the same model twice gives the same map
    again, _ = attribute_windows(model, x[:1], [0], n_steps=N_STEPS)
    assert rank_correlation(base[0, 0], again[0, 0]) > 0.99


def test_deleting_top_attributed_segments_lowers_the_score_faster(trained):
    model, _, _, positives = trained
    x = windows_of(positives[:12])
    maps, _ = attribute_windows(model, x, [0], n_steps=N_STEPS)
    fractions = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1)
    top = deletion_curve(model, x, maps[:, 0], 0, fractions=fractions, segment=10, order="attribution")
    rnd = np.mean([deletion_curve(model, x, maps[:, 0], 0, fractions=fractions, segment=10, order="random", seed=s)
                   for s in range(3)], axis=0)
    print("deletion curve (mean logit) by fraction", fractions, "top-attributed:", np.round(top, 2), "random:", np.round(rnd, 2))
    assert top[0] == pytest.approx(rnd[0])
    assert (top[1:] < rnd[1:]).all()
    assert np.trapezoid(top, fractions) < np.trapezoid(rnd, fractions)
    assert top[2] < 0 < rnd[2]  # 1 % of the segments taken: the top ones flip the call, random ones do not


def test_randomised_copy_is_seeded_without_touching_the_callers_random_state():
    from ecgfounder.testing import tiny_model

    model = tiny_model(n_classes=3)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = randomised_copy(model, depth=2, seed=5)
    assert torch.equal(torch.rand(4), expected)  # the caller's stream goes on as if nothing had been drawn
    b = randomised_copy(model, depth=2, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # reproducible by its seed
    assert not torch.equal(a.dense.weight, model.dense.weight)
