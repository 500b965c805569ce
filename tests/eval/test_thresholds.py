"""Threshold rules against brute force over every candidate threshold."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder.eval.thresholds import choose_thresholds, load_thresholds, save_thresholds


def _rates(y, s, t):
    pred = s >= t
    sens = (pred & y).sum() / y.sum()
    spec = (~pred & ~y).sum() / (~y).sum()
    tp = (pred & y).sum()
    f1 = 2 * tp / (2 * tp + (pred & ~y).sum() + (~pred & y).sum())
    return sens, spec, f1


def _labels(rng, n=300, k=6):
    y = rng.random((n, k)) < rng.uniform(0.05, 0.5, k)
    s = np.round(rng.random((n, k)) * 0.7 + 0.3 * y, 2)
    return y, s


def test_youden_is_the_best_threshold(rng):
    y, s = _labels(rng)
    thr = choose_thresholds(y, s, "youden")
    for j in range(y.shape[1]):
        cands = np.unique(s[:, j])
        best = max(sum(_rates(y[:, j], s[:, j], t)[:2]) - 1 for t in cands)
        sens, spec, _ = _rates(y[:, j], s[:, j], thr[j])
        assert sens + spec - 1 == pytest.approx(best, abs=1e-12)
        assert thr[j] in cands  # an observed score


def test_sensitivity_target_highest_threshold_reaching_it(rng):
    y, s = _labels(rng)
    thr = choose_thresholds(y, s, "sensitivity", target=0.9)
    for j in range(y.shape[1]):
        sens, _, _ = _rates(y[:, j], s[:, j], thr[j])
        assert sens >= 0.9
        higher = np.unique(s[:, j])[np.unique(s[:, j]) > thr[j]]
        assert all(_rates(y[:, j], s[:, j], t)[0] < 0.9 for t in higher)


def test_f1_is_the_best_threshold(rng):
    y, s = _labels(rng)
    thr = choose_thresholds(y, s, "f1")
    for j in range(y.shape[1]):
        best = max(_rates(y[:, j], s[:, j], t)[2] for t in np.unique(s[:, j]))
        assert _rates(y[:, j], s[:, j], thr[j])[2] == pytest.approx(best, abs=1e-12)


def test_undefined_labels_get_no_threshold(rng):
    y, s = _labels(rng, k=3)
    y[:, 0] = False
    y[:, 2] = True
    thr = choose_thresholds(y, s)
    assert np.isnan(thr[0]) and np.isnan(thr[2]) and np.isfinite(thr[1])


def test_bad_method_and_target():
    with pytest.raises(ValueError, match="youden"):
        choose_thresholds([0, 1], [0.1, 0.2], method="balanced")
    with pytest.raises(ValueError, match="target"):
        choose_thresholds([0, 1], [0.1, 0.2], method="sensitivity", target=1.5)


def test_save_load_roundtrip(tmp_path, rng):
    y, s = _labels(rng, k=3)
    thr = choose_thresholds(y, s)
    thr[1] = np.nan
    f = save_thresholds(tmp_path / "t.csv", ["A", "B", "C"], thr, method="youden", n_pos=y.sum(0), n_neg=(~y).sum(0))
    got = load_thresholds(f, ["C", "A", "B"])
    assert got["A"] == thr[0] and got["C"] == thr[2] and np.isnan(got["B"])  # exact: 17 digits
    with pytest.raises(ValueError, match="no threshold for 1 label"):
        load_thresholds(f, ["A", "D"])
    with pytest.raises(FileNotFoundError):
        load_thresholds(tmp_path / "missing.csv")


def test_f1_ties_go_to_the_highest_threshold():
    # F1 4/9 at thresholds 2/12 and 6/12: 2·p·r/(p + r) in floats made them differ in the last bit,
    # and the lower threshold (more positive calls) was chosen
    y = np.array([0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    s = np.array([7, 8, 2, 2, 7, 2, 6, 4, 2, 11, 3, 4, 11, 11, 11, 5, 6, 7, 4, 11, 8]) / 12
    assert _rates(y, s, 2 / 12)[2] == pytest.approx(_rates(y, s, 6 / 12)[2], abs=1e-15)
    assert choose_thresholds(y, s, "f1")[0] == 6 / 12


def test_missing_or_non_binary_labels_raise():
    s = np.array([0.1, 0.9, 0.8, 0.7, 0.2, 0.6])
    with pytest.raises(ValueError, match="NaN"):  # was counted as a positive
        choose_thresholds(np.array([0, 1, np.nan, 1, 0, 1]), s)
    with pytest.raises(ValueError, match="binary"):
        choose_thresholds(np.array([0, 1, 2, 1, 0, 1]), s)


def test_evaluable_of_another_shape_raises(rng):
    y, s = _labels(rng, n=6, k=3)
    with pytest.raises(ValueError, match="evaluable must have the shape"):  # was silently reshaped
        choose_thresholds(y, s, evaluable=np.ones((3, 6), dtype=bool))


@pytest.mark.parametrize("tune, test, bad", [([0, 1, 2], [10], "tune_folds 0"), ([1], [10, 11, 12], "test_folds 11,12")])
def test_ptbxl_folds_outside_1_10_are_refused(tune, test, bad):
    """--tune-folds 0,11 selected no record and the report said 'No tuning split or thresholds file was given'."""
    from ecgfounder.eval.errors import EvaluationError
    from ecgfounder.eval.jobs import check_folds

    with pytest.raises(EvaluationError, match=f"{bad}: PTB-XL's strat_fold runs from 1 to 10"):
        check_folds(tune, test)
    check_folds(list(range(1, 10)), [10])
