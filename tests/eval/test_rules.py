"""Scoring rules: the evaluability mask, the minimum-positives rule, the small-count AUROC interval
(coverage checked by simulation), Youden's tie-break, the published protocol and the CinC split."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from ecgfounder.eval.intervals import newcombe_auroc_interval
from ecgfounder.eval.metrics import evaluate_multilabel
from ecgfounder.eval.published import PUBLISHED_GRID, balanced_accuracy_thresholds, published_ptbxl
from ecgfounder.eval.splits import stratified_split
from ecgfounder.eval.thresholds import choose_thresholds


def _data(rng, n=400, k=4):
    y = rng.random((n, k)) < 0.3
    s = rng.normal(size=(n, k)) + 1.2 * y
    ev = rng.random((n, k)) < 0.8
    return y, s, ev


def test_mask_equals_dropping_the_entries(rng):
    """Every count, metric and bootstrap interval of a label uses its evaluable records only."""
    y, s, ev = _data(rng)
    thr = np.full(y.shape[1], 0.4)
    res = evaluate_multilabel(y, s, thresholds=thr, evaluable=ev, n_boot=0)
    for j in range(y.shape[1]):
        m = ev[:, j] | y[:, j]
        one = evaluate_multilabel(y[m, j], s[m, j], thresholds=0.4, n_boot=0).per_label.iloc[0]
        row = res.per_label.iloc[j]
        assert row["n"] == m.sum() and row["n_excluded"] == (~m).sum() and row["n_neg"] == (m & ~y[:, j]).sum()
        assert row["auroc"] == pytest.approx(skm.roc_auc_score(y[m, j], s[m, j]), abs=1e-12)
        for k in ("auprc", "sensitivity", "specificity", "ppv", "npv", "f1"):
            assert row[k] == pytest.approx(one[k], abs=1e-12)
    # micro pools only the evaluable entries
    mm = ev | y
    assert res.summary.loc["micro", "auroc"] == pytest.approx(skm.roc_auc_score(y[mm], s[mm]), abs=1e-12)
    # a resample: bootstrap values equal the unweighted metric on the resampled evaluable records
    b = evaluate_multilabel(y, s, evaluable=ev, n_boot=5, seed=3)
    b1 = evaluate_multilabel(y[mm[:, 0], 0], s[mm[:, 0], 0], n_boot=0)
    assert b.per_label["auroc"].iloc[0] == pytest.approx(b1.per_label["auroc"].iloc[0])
    # thresholds are chosen on evaluable entries too
    t = choose_thresholds(y, s, evaluable=ev)
    assert t[1] == choose_thresholds(y[mm[:, 1], 1], s[mm[:, 1], 1])[0]


def test_min_positives_sets_rare_labels_apart(rng):
    n = 300
    y = np.zeros((n, 3), dtype=bool)
    y[:60, 0] = True
    y[:9, 1] = True  # 9 positives: rare at the default 10
    y[:10, 2] = True
    s = rng.normal(size=(n, 3)) + y
    res = evaluate_multilabel(y, s, labels=["a", "b", "c"], n_boot=0)
    assert res.per_label["summarised"].tolist() == [True, False, True]
    assert res.rare_labels() == {"b": 9} and res.settings["rare_labels"] == {"b": 9} and res.settings["min_positives"] == 10
    assert res.summary.loc["macro", "n_labels"] == 2 and res.summary.loc["macro", "n_rare"] == 1
    assert res.summary.loc["macro", "auroc"] == pytest.approx(res.per_label["auroc"][["a", "c"]].mean())
    low = evaluate_multilabel(y, s, labels=["a", "b", "c"], n_boot=0, min_positives=5)
    assert low.summary.loc["macro", "n_labels"] == 3


def test_auroc_interval_coverage_at_10_positives():
    """Bar: the 95 % AUROC interval covers the true AUROC in >= 90 % of 300 simulated datasets with
    10 positives (binormal scores, true AUROC 0.9).  The 300 datasets are 300 independent columns
    of one call, so the bootstrap runs once (vectorised)."""
    rng = np.random.default_rng(2024)
    true_auc, n_pos, n_neg, n_sets = 0.9, 10, 190, 300
    y = np.zeros((n_pos + n_neg, n_sets), dtype=bool)
    y[:n_pos] = True
    s = rng.normal(size=y.shape) + norm.ppf(true_auc) * np.sqrt(2) * y
    per = evaluate_multilabel(y, s, n_boot=200, seed=1, micro=False).per_label
    covered = ((per["auroc_lo"] <= true_auc) & (true_auc <= per["auroc_hi"])).mean()
    assert covered >= 0.90, covered
    lo, hi = newcombe_auroc_interval(per["auroc"].to_numpy(), n_pos, n_neg)
    assert (per["auroc_lo"] <= lo + 1e-12).all() and (per["auroc_hi"] >= hi - 1e-12).all()  # union with Newcombe


def test_newcombe_interval_is_sane_at_the_edges():
    lo, hi = newcombe_auroc_interval(np.array([1.0, 0.5, np.nan]), np.array([5, 100, 5]), np.array([50, 100, 5]))
    assert 0.5 < lo[0] < 1.0 and hi[0] == pytest.approx(1.0)  # does not collapse at AUROC = 1
    assert lo[1] < 0.5 < hi[1] and hi[1] - lo[1] < 0.2
    assert np.isnan(lo[2]) and np.isnan(hi[2])


def test_youden_ties_go_to_the_highest_threshold():
    """Two cut points reach the same J: the rule keeps the higher one (fewer positive calls)."""
    y = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    # s >= 0.8: sens 2/3, spec 1 → J = 2/3;  s >= 0.6: sens 1, spec 2/3 → J = 2/3
    assert choose_thresholds(y, s, "youden")[0] == pytest.approx(0.8)


def test_published_thresholds_and_headline_follow_the_script(rng):
    n = 200
    y = np.zeros((n, 3), dtype=bool)
    y[:40, 0] = True
    y[:15, 1] = True  # label 2 has no positive: AUROC 0 in the headline
    s = 1 / (1 + np.exp(-(rng.normal(size=(n, 3)) + 2 * y - 1)))
    thr = balanced_accuracy_thresholds(y, s)
    for j in range(3):  # brute force as in util.find_optimal_thresholds: 'ba > best' keeps the first maximum
        best, best_t = -1, 0.5
        for t in PUBLISHED_GRID:
            ba = skm.balanced_accuracy_score(y[:, j], (s[:, j] > t).astype(int)) if y[:, j].any() else np.mean(~(s[:, j] > t))
            if ba > best:
                best, best_t = ba, t
        assert thr[j] == best_t
    table, summary = published_ptbxl(y, s, ["a", "b", "c"])
    aucs = [skm.roc_auc_score(y[:, j], s[:, j]) for j in range(2)]
    assert summary["mean_auroc_undefined_as_0"] == pytest.approx(sum(aucs) / 3)
    assert summary["mean_auroc_defined"] == pytest.approx(np.mean(aucs)) and summary["n_undefined"] == 1
    pred = np.round(s[:, 0], 5) >= thr[0]
    assert table.loc["a", "sensitivity"] == pytest.approx((pred & y[:, 0]).sum() / 40)


def test_stratified_split_keeps_patients_and_sources():
    groups = np.array(["p1", "p1", "p2", "p3", "p4", "p5", "p6", "p6", "p7", "p8"])
    strata = np.array(["HR", "HR", "HR", "HR", "E", "E", "E", "E", "E", "E"])
    tune = stratified_split(0.5, groups, strata, seed=0)
    for g in set(groups):
        assert len(set(tune[groups == g])) == 1  # a patient is never split
    pats = {s: {g for g, t, st in zip(groups, tune, strata) if st == s and t} for s in ("HR", "E")}
    assert len(pats["HR"]) == 2 and len(pats["E"]) == 2  # half of the 3-4 patients of each source (rounded)


def test_proportion_intervals_keep_coverage_at_10_positives():
    """200 simulated labels, 10 positives each, true sensitivity and specificity 0.9: the
    percentile bootstrap alone gave [1, 1] whenever all 10 were found (coverage 69 %); the union
    with Wilson's score interval covers >= 90 %."""
    rng = np.random.default_rng(0)
    n_labels, n_pos, n_neg = 200, 10, 50
    y = np.zeros((n_pos + n_neg, n_labels), bool)
    y[:n_pos] = True
    s = np.where(y, rng.uniform(0, 1, y.shape), rng.uniform(-0.8, 0.2, y.shape))  # P(s >= 0.1) = 0.9 | 0.1
    per = evaluate_multilabel(y, s, thresholds=np.full(n_labels, 0.1), n_boot=100, min_positives=1, micro=False).per_label
    for m in ("sensitivity", "specificity"):
        assert ((per[f"{m}_lo"] <= 0.9) & (0.9 <= per[f"{m}_hi"])).mean() >= 0.9, m
    all_found = per["tp"] == n_pos
    assert all_found.any() and (per.loc[all_found, "sensitivity_lo"] < 0.75).all()  # Wilson 10/10: 0.72
