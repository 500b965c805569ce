"""Metrics and bootstrap against scikit-learn (to 1e-12) and against known statistical behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn import metrics as skm

from ecgfounder.eval.bootstrap import (
    RankMetrics,
    bootstrap_weights,
    percentile_ci,
    weighted_auroc_ap,
    weighted_confusion,
    weighted_micro_auroc_ap,
)
from ecgfounder.eval.metrics import (
    binary_metrics,
    evaluate_multilabel,
    group_summary,
    multilabel_report,
    regression_report,
)

TOL = 1e-12


def _data(rng, n=400, n_labels=12, ties=True):
    prev = rng.uniform(0.03, 0.5, n_labels)
    y = rng.random((n, n_labels)) < prev
    s = rng.random((n, n_labels)) * 0.8 + 0.4 * y * rng.random((n, n_labels))
    if ties:
        s = np.round(s, 2)  # many tied scores
    return y, s


def _sk_binary(y, s, thr):
    pred = s >= thr
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[False, True]).ravel()
    return {
        "auroc": skm.roc_auc_score(y, s),
        "auprc": skm.average_precision_score(y, s),
        "sensitivity": skm.recall_score(y, pred),
        "specificity": tn / (tn + fp),
        "ppv": skm.precision_score(y, pred),
        "npv": tn / (tn + fn),
        "f1": skm.f1_score(y, pred),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


@pytest.mark.parametrize("ties", [True, False])
def test_binary_metrics_equal_sklearn(rng, ties):
    for _ in range(20):
        y, s = _data(rng, n=int(rng.integers(20, 300)), n_labels=1, ties=ties)
        if y.all() or not y.any():
            continue
        thr = float(np.quantile(s, rng.uniform(0.2, 0.8)))
        got = binary_metrics(y[:, 0], s[:, 0], thr)
        want = _sk_binary(y[:, 0], s[:, 0], thr)
        for k, v in want.items():
            assert abs(got[k] - v) <= TOL, (k, got[k], v)
        assert got["prevalence"] == pytest.approx(y.mean(), abs=TOL)


def test_per_label_and_summaries_equal_sklearn(rng):
    y, s = _data(rng, n=500, n_labels=15)
    thr = np.quantile(s, 0.6, axis=0)
    res = evaluate_multilabel(y, s, thresholds=thr, n_boot=0)
    per = res.per_label
    for j in range(y.shape[1]):
        want = _sk_binary(y[:, j], s[:, j], thr[j])
        for k, v in want.items():
            assert abs(per[k].iloc[j] - v) <= TOL, (j, k)
    pred = s >= thr
    summ = res.summary
    for avg in ("macro", "weighted", "micro"):
        assert abs(summ.loc[avg, "auroc"] - skm.roc_auc_score(y, s, average=avg)) <= TOL
        assert abs(summ.loc[avg, "auprc"] - skm.average_precision_score(y, s, average=avg)) <= TOL
        assert abs(summ.loc[avg, "f1"] - skm.f1_score(y, pred, average=avg)) <= TOL
        assert abs(summ.loc[avg, "sensitivity"] - skm.recall_score(y, pred, average=avg)) <= TOL
        assert abs(summ.loc[avg, "ppv"] - skm.precision_score(y, pred, average=avg)) <= TOL


def test_bootstrap_resamples_equal_sklearn_on_resampled_data(rng):
    y, s = _data(rng, n=250, n_labels=6)
    pred = s >= 0.5
    w = next(bootstrap_weights(250, 8, seed=7))
    assert w.shape == (8, 250) and (w.sum(axis=1) == 250).all()
    au, ap = weighted_auroc_ap(y, s, w)
    tp, fp, fn, tn = weighted_confusion(y, pred, w)
    mau, map_ = weighted_micro_auroc_ap(y, s, w)
    for b in range(8):
        idx = np.repeat(np.arange(250), w[b])  # the resampled data set itself
        yb, sb, pb = y[idx], s[idx], pred[idx]
        assert abs(mau[b] - skm.roc_auc_score(yb, sb, average="micro")) <= TOL
        assert abs(map_[b] - skm.average_precision_score(yb, sb, average="micro")) <= TOL
        for j in range(6):
            assert abs(au[b, j] - skm.roc_auc_score(yb[:, j], sb[:, j])) <= TOL
            assert abs(ap[b, j] - skm.average_precision_score(yb[:, j], sb[:, j])) <= TOL
            c = skm.confusion_matrix(yb[:, j], pb[:, j], labels=[False, True]).ravel()
            assert (tn[b, j], fp[b, j], fn[b, j], tp[b, j]) == tuple(float(x) for x in c)


def test_fractional_weights_equal_sklearn_sample_weight(rng):
    y, s = _data(rng, n=120, n_labels=3)
    w = rng.random((2, 120)) * 3
    w[:, :5] = 0.0
    au, ap = weighted_auroc_ap(y, s, w)
    for b in range(2):
        for j in range(3):
            assert au[b, j] == pytest.approx(skm.roc_auc_score(y[:, j], s[:, j], sample_weight=w[b]), abs=1e-12)
            assert ap[b, j] == pytest.approx(skm.average_precision_score(y[:, j], s[:, j], sample_weight=w[b]), abs=1e-12)


def test_bootstrap_is_seeded_and_reproducible(rng):
    y, s = _data(rng, n=200, n_labels=4)
    a = evaluate_multilabel(y, s, thresholds=0.5, n_boot=300, seed=3)
    b = evaluate_multilabel(y, s, thresholds=0.5, n_boot=300, seed=3)
    c = evaluate_multilabel(y, s, thresholds=0.5, n_boot=300, seed=4)
    assert a.per_label.equals(b.per_label) and a.summary.equals(b.summary)
    assert not np.allclose(a.per_label["auprc_lo"], c.per_label["auprc_lo"])  # (auroc_lo may be Newcombe's bound)
    # point estimates do not depend on the bootstrap
    assert np.array_equal(a.per_label["auroc"], c.per_label["auroc"])


def test_bootstrap_resamples_do_not_depend_on_chunk_or_n_boot():
    # the resamples used to come from one stream per block, so a chunk (memory bound) changed them;
    # the old check compared a call with itself
    w1 = np.concatenate(list(bootstrap_weights(200, 50, seed=9)))
    w2 = np.concatenate(list(bootstrap_weights(200, 50, seed=9, chunk=7)))
    assert w1.shape == w2.shape == (50, 200) and np.array_equal(w1, w2)
    assert np.array_equal(w1[:20], np.concatenate(list(bootstrap_weights(200, 20, seed=9, chunk=3))))
    g = np.repeat(np.arange(40), 5)
    assert np.array_equal(np.concatenate(list(bootstrap_weights(200, 30, seed=2, groups=g))),
                          np.concatenate(list(bootstrap_weights(200, 30, seed=2, groups=g, chunk=4))))


def test_patient_bootstrap_resamples_whole_patients(rng):
    groups = np.repeat(np.arange(40), 3)  # 40 patients × 3 records
    w = np.concatenate(list(bootstrap_weights(120, 200, seed=1, groups=groups)))
    per_patient = w.reshape(200, 40, 3)
    assert (per_patient == per_patient[:, :, :1]).all()  # a patient's records share one multiplicity
    assert (per_patient[:, :, 0].sum(axis=1) == 40).all()  # 40 patients drawn per resample


def test_patient_bootstrap_widens_intervals_for_duplicated_records(rng):
    # 60 patients, each recorded 5 times identically: a record bootstrap believes n = 300
    # independent records and is too narrow; the patient bootstrap matches the 60-record one.
    y1 = np.zeros(60, dtype=bool)
    y1[:20] = True
    s1 = rng.normal(size=60) + 1.0 * y1
    y = np.repeat(y1, 5)[:, None]
    s = np.repeat(s1, 5)[:, None]
    groups = np.repeat(np.arange(60), 5)
    rec = evaluate_multilabel(y, s, n_boot=1000, seed=0).per_label.iloc[0]
    pat = evaluate_multilabel(y, s, groups=groups, n_boot=1000, seed=0).per_label.iloc[0]
    single = evaluate_multilabel(y1[:, None], s1[:, None], n_boot=1000, seed=0).per_label.iloc[0]
    w_rec = rec.auroc_hi - rec.auroc_lo
    w_pat = pat.auroc_hi - pat.auroc_lo
    w_one = single.auroc_hi - single.auroc_lo
    assert w_pat > 1.7 * w_rec  # about sqrt(5) wider
    assert w_pat == pytest.approx(w_one, rel=0.2)


def test_ci_coverage_of_true_auroc_close_to_nominal():
    # 400 independent binormal data sets (one per column), true AUROC = Phi(d / sqrt(2)).
    rng = np.random.default_rng(2024)
    n, k, d = 150, 400, 1.0
    true_auc = norm.cdf(d / math.sqrt(2))
    y = np.zeros((n, k), dtype=bool)
    y[:50] = True
    s = rng.normal(size=(n, k)) + d * y
    res = evaluate_multilabel(y, s, n_boot=500, seed=11, micro=False)
    per = res.per_label
    covered = ((per["auroc_lo"] <= true_auc) & (true_auc <= per["auroc_hi"])).mean()
    assert 0.90 <= covered <= 0.99, covered


def test_undefined_labels_are_nan_and_skipped(rng):
    y, s = _data(rng, n=100, n_labels=4)
    y[:, 1] = False  # no positives
    y[:, 2] = True  # no negatives
    res = evaluate_multilabel(y, s, labels=list("abcd"), thresholds=0.5, n_boot=100)
    per = res.per_label
    assert list(per["defined"]) == [True, False, False, True]
    for m in ("auroc", "auprc", "sensitivity", "f1", "ppv", "npv", "auroc_lo", "auroc_hi"):
        assert np.isnan(per.loc["b", m]), m
    assert not np.isnan(per.loc["b", "specificity"])  # false calls can still be counted
    for m in ("auroc", "auprc", "specificity", "ppv", "npv"):
        assert np.isnan(per.loc["c", m]), m
    assert res.summary.loc["macro", "n_labels"] == 2 and res.summary.loc["macro", "n_skipped"] == 2
    d = per["defined"].to_numpy()
    assert abs(res.summary.loc["macro", "auroc"] - skm.roc_auc_score(y[:, d], s[:, d], average="macro")) <= TOL
    assert abs(res.summary.loc["micro", "auroc"] - skm.roc_auc_score(y[:, d], s[:, d], average="micro")) <= TOL
    assert res.undefined_labels() == ["b", "c"]
    table = multilabel_report(y, s, labels=list("abcd"), n_boot=0)
    assert list(table.index[-3:]) == ["[macro]", "[weighted]", "[micro]"]


def test_missing_thresholds_leave_threshold_metrics_undefined(rng):
    y, s = _data(rng, n=100, n_labels=3)
    res = evaluate_multilabel(y, s, thresholds=[0.5, np.nan, 0.5], n_boot=50)
    assert np.isnan(res.per_label["sensitivity"].iloc[1]) and not np.isnan(res.per_label["auroc"].iloc[1])
    assert res.summary.loc["macro", "n_labels_thresholded"] == 2
    pred = s >= 0.5
    want = skm.f1_score(y[:, [0, 2]], pred[:, [0, 2]], average="micro")
    assert abs(res.summary.loc["micro", "f1"] - want) <= TOL


def test_group_summary_uses_defined_labels(rng):
    y, s = _data(rng, n=200, n_labels=4)
    y[:, 3] = False
    res = evaluate_multilabel(y, s, labels=list("abcd"), n_boot=200)
    g = group_summary(res, {"a": "x", "b": "x", "c": "y", "d": "y"})
    assert g.loc["x", "auroc"] == pytest.approx(np.mean(res.per_label["auroc"][["a", "b"]]), abs=TOL)
    assert g.loc["y", "n_defined"] == 1 and g.loc["y", "auroc"] == pytest.approx(res.per_label.loc["c", "auroc"])
    assert g.loc["x", "auroc_lo"] < g.loc["x", "auroc"] < g.loc["x", "auroc_hi"]


def test_percentile_ci_matches_numpy_quantiles(rng):
    v = rng.normal(size=(1000, 3))
    v[::7, 2] = np.nan
    lo, hi, valid = percentile_ci(v, 0.9)
    for j in range(3):
        col = v[:, j][~np.isnan(v[:, j])]
        assert lo[j] == pytest.approx(np.quantile(col, 0.05)) and hi[j] == pytest.approx(np.quantile(col, 0.95))
        assert valid[j] == col.size


def test_regression_report_equals_sklearn(rng):
    y = rng.normal(60, 10, 300)
    yhat = y + rng.normal(1.0, 5, 300)
    rep = regression_report(y, yhat, n_boot=200, seed=0)
    assert abs(rep.loc["mae", "value"] - skm.mean_absolute_error(y, yhat)) <= 1e-10
    assert abs(rep.loc["rmse", "value"] - math.sqrt(skm.mean_squared_error(y, yhat))) <= 1e-10
    assert abs(rep.loc["r2", "value"] - skm.r2_score(y, yhat)) <= 1e-10
    assert abs(rep.loc["bias", "value"] - np.mean(yhat - y)) <= 1e-10
    assert (rep["lo"] < rep["value"]).all() and (rep["value"] < rep["hi"]).all()
    # one resample against scikit-learn on the resampled data
    from ecgfounder.eval.regression import _regression_values

    w = next(bootstrap_weights(300, 3, seed=5))
    vals = _regression_values(w.astype(float), y, yhat)
    idx = np.repeat(np.arange(300), w[1])
    assert vals["r2"][1] == pytest.approx(skm.r2_score(y[idx], yhat[idx]), abs=1e-10)
    assert vals["mae"][1] == pytest.approx(skm.mean_absolute_error(y[idx], yhat[idx]), abs=1e-10)


def test_rank_metrics_reuses_layout_across_weight_blocks(rng):
    y, s = _data(rng, n=300, n_labels=5)
    rm = RankMetrics(y, s, micro=True)
    w = np.concatenate(list(bootstrap_weights(300, 40, seed=2)))
    a1, p1 = rm.labels(w)
    a2, p2 = rm.labels(w[:17])
    assert np.array_equal(a1[:17], a2) and np.array_equal(p1[:17], p2)


@pytest.mark.parametrize(
    "y,s,msg",
    [
        (np.array([[0, 2]]), np.array([[0.1, 0.2]]), "binary"),
        (np.array([[0, 1]]), np.array([[0.1, np.nan]]), "non-finite"),
        (np.zeros((3, 2)), np.zeros((3, 3)), "shape"),
    ],
)
def test_bad_inputs_raise_value_error(y, s, msg):
    with pytest.raises(ValueError, match=msg):
        evaluate_multilabel(y, s, n_boot=0)


@pytest.mark.slow
def test_full_size_bootstrap_under_a_minute():
    """The issue's bar: 150 labels × 2,000 records × 1,000 resamples in under a minute."""
    import time

    rng = np.random.default_rng(0)
    y = rng.random((2000, 150)) < rng.uniform(0.01, 0.3, 150)
    s = rng.random((2000, 150)) + 0.5 * y
    t0 = time.perf_counter()
    res = evaluate_multilabel(y, s, thresholds=0.75, n_boot=1000, seed=0)
    assert time.perf_counter() - t0 < 60
    assert res.per_label["n_boot_valid"].min() == 1000


def test_ci_level_outside_0_1_raises_even_without_resamples(rng):
    # ci_level=95 (percent) with n_boot=0 gave the AUROC interval [auroc, auroc] (zero width)
    y, s = _data(rng, n=100, n_labels=2)
    with pytest.raises(ValueError, match=r"ci_level must be between 0 and 1.*got 95"):
        evaluate_multilabel(y, s, n_boot=0, ci_level=95)


@pytest.mark.parametrize("missing", [None, np.nan])
def test_missing_patient_ids_raise_instead_of_forming_one_patient(rng, missing):
    # object ids with None/NaN (a joined set without patients, blank cells) were cast to "None"/"nan":
    # all those records became one patient of the cluster bootstrap
    y, s = _data(rng, n=60, n_labels=1)
    groups = np.array([f"p{i}" for i in range(60)], dtype=object)
    groups[30:] = missing
    with pytest.raises(ValueError, match="30 missing patient id"):
        evaluate_multilabel(y, s, groups=groups, n_boot=10)
    with pytest.raises(ValueError, match="missing patient id"):
        regression_report(s[:, 0], s[:, 0] + 0.1, n_boot=10, groups=groups)


def test_regression_r2_equals_sklearn_for_large_mean_small_spread(rng):
    # one-pass Σy² − n·ȳ² cancelled: 0.76489 instead of scikit-learn's 0.76491 here
    y = 1e5 + rng.normal(0, 0.1, 500)
    yhat = y + rng.normal(0, 0.05, 500)
    rep = regression_report(y, yhat, n_boot=0)
    assert abs(rep.loc["r2", "value"] - skm.r2_score(y, yhat)) <= 1e-10
    assert np.isnan(regression_report(np.full(5, 0.1), np.arange(5.0), n_boot=20).loc["r2"][["value", "lo", "hi"]]).all()


def test_regression_negative_n_boot_raises():
    with pytest.raises(ValueError, match="n_boot must be >= 0"):
        regression_report([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], n_boot=-1)


def test_patient_ids_are_checked_without_resamples(rng):
    # with n_boot=0 five ids for 60 records (or all-missing ids) were accepted and settings said
    # "bootstrap_unit: patient, n_groups: 5"
    y, s = _data(rng, n=60, n_labels=1)
    with pytest.raises(ValueError, match=r"one id per record: expected shape \(60,\), got \(5,\)"):
        evaluate_multilabel(y, s, groups=np.arange(5), n_boot=0)
    with pytest.raises(ValueError, match="60 missing patient id"):
        evaluate_multilabel(y, s, groups=np.full(60, None, dtype=object), n_boot=0)
    assert evaluate_multilabel(y, s, groups=np.arange(60) // 3, n_boot=0).settings["n_groups"] == 20


def test_one_patient_gives_no_interval_and_few_patients_a_note():
    """Every record of one patient: resampling that patient draws the same set every time, which
    gave zero-width intervals ('0.750 (0.750–0.750)') read as perfect precision; now undefined."""
    rng = np.random.default_rng(3)
    y = rng.random((60, 2)) < 0.4
    s = y + rng.normal(size=(60, 2))
    one = evaluate_multilabel(y, s, groups=np.zeros(60), thresholds=[0.5, 0.5], n_boot=50, min_positives=1)
    bounds = [c for c in one.per_label.columns if c.endswith(("_lo", "_hi"))]
    assert len(bounds) == 14 and one.per_label[bounds].isna().all().all()
    assert one.summary[bounds].isna().all().all()
    assert np.isfinite(one.per_label[["auroc", "sensitivity", "f1"]].to_numpy()).all()  # point estimates kept
    assert "one patient" in one.settings["interval_note"]
    reg = regression_report(s[:, 0], s[:, 1], n_boot=50, groups=["p"] * 60)
    assert reg[["lo", "hi"]].isna().all().all() and reg["value"].notna().all()
    few = evaluate_multilabel(y, s, groups=np.arange(60) % 4, thresholds=[0.5, 0.5], n_boot=50, min_positives=1)
    assert few.per_label[bounds].notna().all().all()
    assert "Only 4 patients" in few.settings["interval_note"]
    many = evaluate_multilabel(y, s, groups=np.arange(60) % 20, n_boot=50, min_positives=1)
    assert many.settings["interval_note"] is None


def test_a_summary_of_one_label_has_that_labels_interval():
    """One label in the summaries (or in a category): macro, weighted and micro equal that label's
    values, and now carry its interval (with Newcombe's / Wilson's part), not a narrower one."""
    rng = np.random.default_rng(5)
    y = rng.random((80, 2)) < 0.25
    y[:, 1] = False
    y[:3, 1] = True  # rare: left out of the summaries
    s = y + rng.normal(size=(80, 2))
    res = evaluate_multilabel(y, s, ["A", "B"], thresholds=[0.5, 0.5], n_boot=100, min_positives=10)
    row = res.per_label.loc["A"]
    for kind in ("macro", "weighted", "micro"):
        for m in ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "f1"):
            assert res.summary.loc[kind, m] == pytest.approx(row[m], abs=1e-12), (kind, m)
            assert (res.summary.loc[kind, f"{m}_lo"], res.summary.loc[kind, f"{m}_hi"]) == (row[f"{m}_lo"], row[f"{m}_hi"])
    cat = group_summary(res, {"A": "rhythm", "B": "rhythm"})
    assert (cat.loc["rhythm", "auroc_lo"], cat.loc["rhythm", "auroc_hi"]) == (row["auroc_lo"], row["auroc_hi"])
