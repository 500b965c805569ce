"""Calibration: ECE falls on a miscalibrated set (held out from the fit), the reported split is
refused, and the fitted maps travel with the weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgfounder.explain.calibration import (
    CalibrationError,
    apply_calibration,
    calibrate,
    calibration_of,
    calibration_table,
    expected_calibration_error,
    plot_reliability,
)


def _overconfident(n: int, n_labels: int, seed: int):
    """Truth drawn from p; the 'model' reports sigmoid(3 logit p) (too sure) and, for the second
    label, p shifted up (biased)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, size=(n, n_labels))
    y = (rng.uniform(size=p.shape) < p).astype(int)
    z = np.log(p / (1 - p))
    s = 1 / (1 + np.exp(-3 * z))
    s[:, 1] = 1 / (1 + np.exp(-(z[:, 1] + 1.5)))
    return y, s


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_ece_falls_on_held_out_records(method):
    y_val, s_val = _overconfident(3000, 3, seed=1)
    y_test, s_test = _overconfident(3000, 3, seed=2)
    cal = calibrate(y_val, s_val, labels=["a", "b", "c"], method=method, split="val")
    before = expected_calibration_error(y_test, s_test)
    after = expected_calibration_error(y_test, apply_calibration(s_test, cal))
    assert (before > 0.05).all()                  # miscalibrated to begin with
    assert (after < before).all(), (before, after)
    # over-confidence (labels a, c) is what temperature scaling fixes; isotonic also fixes the bias (b)
    fixed = [0, 1, 2] if method == "isotonic" else [0, 2]
    assert (after[fixed] < 0.5 * before[fixed]).all(), (before, after)
    assert (after[fixed] < 0.04).all(), after
    if method == "temperature":
        assert cal.temperatures[0] == pytest.approx(3.0, rel=0.15)  # the planted over-confidence
    assert np.all(np.array(cal.ece_after) < np.array(cal.ece_before))


def test_fitting_refuses_the_reported_split():
    y, s = _overconfident(200, 2, seed=3)
    for split in ("test", "reported", "holdout"):
        with pytest.raises(CalibrationError, match="validation split only"):
            calibrate(y, s, split=split)
    table = pd.DataFrame(s, columns=["a", "b"]).assign(record=[f"r{i}" for i in range(200)])
    with pytest.raises(CalibrationError, match="belong to the reported split"):
        calibrate(y, table, split="val", reported_records=["r5", "zzz"])
    with pytest.raises(CalibrationError, match="probabilities"):
        calibrate(y, s * 3, split="val")
    with pytest.raises(CalibrationError, match="method"):
        calibrate(y, s, split="val", method="platt")


def test_stored_with_the_weights_and_applied_to_tables(tmp_path):
    from ecgfounder.models.loading import load_model, save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    model = Net1D(Net1DConfig(base_filters=16, filter_list=(16,), m_blocks_list=(1,), n_classes=2))
    model.labels = ("a", "b")
    y, s = _overconfident(500, 2, seed=4)
    cal = calibrate(y, pd.DataFrame(s, columns=["a", "b"]), split="validation", model=model)
    assert calibration_of(model) == cal
    back = calibration_of(load_model(save_model(model, tmp_path / "m.safetensors")))
    assert back is not None and back.labels == ("a", "b") and back.temperatures == pytest.approx(cal.temperatures)
    table = pd.DataFrame({"record": ["x", "y"], "a": [0.9, 0.2], "b": [0.5, 0.99]})
    out = apply_calibration(table, back)
    assert list(out.columns) == list(table.columns) and out["record"].tolist() == ["x", "y"]
    assert np.allclose(out[["a", "b"]].to_numpy(), apply_calibration(table[["a", "b"]].to_numpy(), cal))
    with pytest.raises(CalibrationError, match="2 labels"):
        apply_calibration(np.zeros((2, 3)), cal)


def test_multiclass_temperature_and_reliability_figure(tmp_path):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2000, 3)) * 2
    p_true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = (rng.uniform(size=(2000, 1)) > p_true.cumsum(1)).sum(1)  # one draw per row from p_true
    sharp = np.exp(2.5 * logits) / np.exp(2.5 * logits).sum(1, keepdims=True)
    cal = calibrate(y, sharp, task="multiclass", split="val")
    assert cal.temperatures[0] == pytest.approx(2.5, rel=0.15)
    onehot = np.eye(3)[y]
    after = apply_calibration(sharp, cal)
    assert np.allclose(after.sum(1), 1)
    tab = calibration_table(onehot, sharp, after, ["x", "y", "z"])
    assert (tab["ece_after"] < tab["ece_before"]).all()
    fig = plot_reliability(onehot, sharp, after, title="3 classes")
    fig.savefig(tmp_path / "rel.png")
    assert (tmp_path / "rel.png").stat().st_size > 5000
    assert any("ECE" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_ece_equals_the_weighted_gap_of_sklearns_curve():
    """ECE = sum over non-empty bins of (n_b / n) |frac_pos_b - mean_p_b|: the bins of
    sklearn.calibration.calibration_curve (uniform strategy), weighted by their counts."""
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    p = rng.uniform(0.001, 0.999, 4000)   # off the inner bin edges (the two put an edge in different bins)
    y = (rng.uniform(size=p.size) < p ** 1.5).astype(int)
    frac, mean_p = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts = np.bincount(np.minimum((p * 10).astype(int), 9), minlength=10)
    counts = counts[counts > 0]
    expected = float(np.sum(counts / p.size * np.abs(frac - mean_p)))
    assert expected_calibration_error(y, p, n_bins=10)[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("prob, match", [
    ([0.2, np.nan, 0.7], "finite and in \\[0, 1\\]; found nan"),
    ([0.2, 1.5, 0.7], "found 1.5"),
    ([0.2, -0.1, 0.7], "found -0.1"),
    ([0.2, 0.7], "shape"),
])
def test_ece_refuses_what_is_not_a_probability(prob, match):
    with pytest.raises(CalibrationError, match=match):
        expected_calibration_error([0, 1, 1], prob)


def test_ece_refuses_missing_truth_and_bad_bins():
    with pytest.raises(CalibrationError, match="0/1; found nan"):
        expected_calibration_error([0, np.nan, 1], [0.1, 0.5, 0.9])
    with pytest.raises(CalibrationError, match="n_bins must be a positive integer; got 0"):
        expected_calibration_error([0, 1, 1], [0.1, 0.5, 0.9], n_bins=0)


def test_truth_table_rows_are_matched_to_the_scores_by_record():
    y, s = _overconfident(300, 2, seed=6)
    recs = [f"r{i}" for i in range(300)]
    scores = pd.DataFrame(s, columns=["a", "b"]).assign(record=recs)
    truth = pd.DataFrame(y, columns=["a", "b"]).assign(record=recs).iloc[::-1]  # another row order (a labels file)
    aligned = calibrate(y, scores, split="val")
    assert calibrate(truth, scores, split="val").temperatures == pytest.approx(aligned.temperatures)
    iso = calibrate(truth[["record", "b", "a"]], scores, split="val", method="isotonic")  # columns by name, too
    assert iso.knots == calibrate(y, scores, split="val", method="isotonic").knots
    with pytest.raises(CalibrationError, match=r"1 record\(s\) of the scores have no row in y_true \(e.g. \['r0'\]\)"):
        calibrate(truth.iloc[:-1], scores, split="val")
    with pytest.raises(CalibrationError, match=r"no column for label\(s\) \['b'\]"):
        calibrate(truth[["record", "a"]].assign(c=0), scores, split="val")


@pytest.mark.parametrize("aggregate, detail", [("mean", True), ("none", False), ("none", True)])
def test_every_column_of_a_prediction_table_that_is_not_a_score_is_left_out(aggregate, detail):
    """A table as predict writes it (--quality-detail: quality_leads; per window: window, start_s)
    calibrates on its label columns alone (quality_leads was taken for a label: a ValueError)."""
    from ecgfounder.prediction.stream import score_columns

    y, s = _overconfident(300, 2, seed=7)
    cols = score_columns(["a", "b"], aggregate, quality_detail=detail)
    meta = {"record": [f"r{i}" for i in range(300)], "path": "x.hea", "member": "", "n_windows": 1, "quality": "good",
            "quality_leads": "", "window": 0, "start_s": 0.0}
    table = pd.DataFrame({**meta, "a": s[:, 0], "b": s[:, 1]})[cols]
    assert calibrate(y, table, split="val").labels == ("a", "b")


@pytest.mark.parametrize("y, task, match", [
    (np.zeros(40, int), "multiclass", "of class 'x': a temperature cannot be fitted on one class"),
    (np.arange(40) % 4, "multiclass", "class index 3 is not one of 0-2"),
    (np.r_[np.arange(39) % 3, np.nan], "multiclass", "1 missing \\(NaN\\)"),
    (np.zeros((40, 3)), "multilabel", "no label has both positives and negatives among the 40 records"),
    (np.where(np.arange(120).reshape(40, 3) == 7, 2.0, np.arange(120).reshape(40, 3) % 2), "multilabel",
     "must be 0/1 per label \\(NaN where not assessed\\); found 2"),
])
def test_degenerate_truths_are_refused_with_the_fix(y, task, match):
    p = np.random.default_rng(0).dirichlet([1, 1, 1], 40)
    with pytest.raises(CalibrationError, match=match):
        calibrate(y, p, labels=["x", "y", "z"], task=task, split="val")


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_a_label_not_assessed_for_some_records_is_fitted_on_the_others(method):
    """NaN truths (a label not assessed for a record, as fine-tuning and label tables with blank cells
    have them) were refused, making users leave out whole records; each label is fitted, and its ECE
    measured, on the records it was assessed for, as if the others were not there."""
    y, s = _overconfident(400, 2, seed=11)
    y = y.astype(float)
    y[::3, 1] = np.nan
    got = calibrate(y, s, labels=["a", "b"], method=method, split="val")
    seen = ~np.isnan(y[:, 1])
    a = calibrate(y[:, :1], s[:, :1], labels=["a"], method=method, split="val")
    b = calibrate(y[seen, 1:], s[seen, 1:], labels=["b"], method=method, split="val")
    assert (got.temperatures or got.knots)[0] == (a.temperatures or a.knots)[0]
    assert (got.temperatures or got.knots)[1] == (b.temperatures or b.knots)[0]
    assert got.ece_before == pytest.approx(a.ece_before + b.ece_before, abs=0)
    assert got.fitted_on["n_pos"] == [a.fitted_on["n_pos"][0], b.fitted_on["n_pos"][0]]


def test_multiclass_truth_as_a_column_of_indices_is_not_read_as_one_hot():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(1500, 3)) * 2
    p_true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = (rng.uniform(size=(1500, 1)) > p_true.cumsum(1)).sum(1)
    sharp = np.exp(2.0 * logits) / np.exp(2.0 * logits).sum(1, keepdims=True)
    flat = calibrate(y, sharp, task="multiclass", split="val").temperatures
    assert calibrate(y[:, None], sharp, task="multiclass", split="val").temperatures == pytest.approx(flat)
    assert calibrate(pd.DataFrame({"class": y}), sharp, task="multiclass", split="val").temperatures == pytest.approx(flat)


def test_calibration_is_bound_to_the_weights_it_was_fitted_for(tmp_path):
    import torch

    from ecgfounder.explain.calibration import attach_calibration
    from ecgfounder.models.loading import load_model, save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    def net(seed):
        torch.manual_seed(seed)
        m = Net1D(Net1DConfig(base_filters=8, filter_list=(8,), m_blocks_list=(1,), kernel_size=8, groups_width=8, n_classes=2))
        m.labels = ("a", "b")
        return m

    y, s = _overconfident(200, 2, seed=8)
    a, b = net(0), net(1)  # same labels, other weights
    cal = calibrate(y, s, split="val", model=a)
    assert calibration_of(load_model(save_model(a, tmp_path / "a.safetensors"))) == cal  # travels with its weights
    with pytest.raises(CalibrationError, match="fitted for weights .* not these"):
        attach_calibration(b, cal)
    b.load_state_dict(a.state_dict())
    attach_calibration(b, cal)  # the same weights: accepted
    with torch.no_grad():
        a.dense.weight.add_(0.01)  # trained further after calibrating
    with pytest.raises(CalibrationError, match="fitted for other weights .* fit a new one"):
        calibration_of(load_model(save_model(a, tmp_path / "a2.safetensors")))
    a.labels = ("b", "a")
    with pytest.raises(CalibrationError, match="covers labels \\['a', 'b'\\]"):
        calibration_of(a)


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
def test_a_label_with_too_few_positives_is_left_uncalibrated_and_said(method):
    """Fitted on 2 positives of 500, a temperature ran to its bound (20: every score pulled to 0.5)
    and an isotonic map sent a score of 0.9 to 0.01, silently; such a label is left as the model
    gives it, named in a warning and in fitted_on, and a split where no label has enough is refused."""
    y, s = _overconfident(500, 2, seed=12)
    y[:, 1] = 0
    y[:2, 1] = 1  # 2 positives
    with pytest.warns(UserWarning, match=r"1 label\(s\) left uncalibrated, fewer than 10 positives .*\['b'\]"):
        cal = calibrate(y, s, labels=["a", "b"], method=method, split="val")
    assert cal.fitted_on["unfitted"] == ["b"] and cal.fitted_on["n_pos"] == [int(y[:, 0].sum()), 2]
    out = apply_calibration(np.array([[0.9, 0.9], [0.2, 0.2]]), cal)
    assert out[:, 1] == pytest.approx([0.9, 0.2], abs=1e-12) and abs(out[0, 0] - 0.9) > 0.01  # 'a' fitted, 'b' not
    assert cal.ece_after[1] == cal.ece_before[1]
    with pytest.raises(CalibrationError, match=r"no label has 10 positives and 10 negatives among the 500 records "
                                               r"\(the most: 'b', 2 positive\(s\) of 500\).*min_per_class=N"):
        calibrate(y[:, 1:], s[:, 1:], labels=["b"], method=method, split="val")
    assert calibrate(y[:, 1:], s[:, 1:], labels=["b"], method=method, split="val", min_per_class=2).fitted_on["unfitted"] == []
    with pytest.raises(CalibrationError, match="min_per_class=0: give a positive integer"):
        calibrate(y, s, labels=["a", "b"], method=method, split="val", min_per_class=0)
