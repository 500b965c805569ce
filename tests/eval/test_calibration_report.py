"""Calibration in ``evaluate``: fitted on the tuning split only, ECE before/after, reliability diagram."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecgfounder.cli import main


def _miscalibrated_tables(tmp_path, rng, n=900, k=4, scale=4.0):
    """Truths drawn from calibrated probabilities; the predictions are those probabilities with
    their logits multiplied by ``scale`` (overconfident), so a temperature of ~``scale`` undoes it."""
    ids = [f"r{i:04d}" for i in range(n)]
    z = rng.normal(size=(n, k)) * 1.2 - 0.8
    y = rng.random((n, k)) < 1 / (1 + np.exp(-z))
    names = [f"L{j}" for j in range(k)]
    lab = pd.DataFrame(y.astype(int), columns=names)
    lab.insert(0, "record", ids)
    lab["split"] = np.where(np.arange(n) % 3 == 0, "test", "tune")
    pred = pd.DataFrame(1 / (1 + np.exp(-scale * z)), columns=names)
    pred.insert(0, "record", ids)
    lab.to_csv(tmp_path / "labels.csv", index=False)
    pred.to_csv(tmp_path / "pred.csv", index=False)
    return names


def _table_args(tmp_path, out, *extra):
    return ["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
            "--split-column", "split", "--n-boot", "0", "--out", str(out), *extra]


def test_temperature_calibration_lowers_ece_on_the_reported_split(tmp_path, rng, capsys):
    from ecgfounder.eval.thresholds import choose_thresholds
    from ecgfounder.explain.calibration import Calibration, apply_calibration, expected_calibration_error

    names = _miscalibrated_tables(tmp_path, rng)
    out = tmp_path / "cal"
    assert main(_table_args(tmp_path, out, "--calibrate", "temperature")) == 0
    st = json.loads((out / "settings.json").read_text())
    assert st["calibration"]["method"] == "temperature" and st["calibration"]["source"].startswith("fitted on the tuning split")
    assert st["calibration"]["fitted_on"]["split"] == "tune" and st["calibration"]["fitted_on"]["n"] == 600  # tuning rows only
    cal = Calibration.from_dict(json.loads((out / "calibration.json").read_text()))
    assert all(3.0 < t < 5.5 for t in cal.temperatures)  # the ×4 logit scaling is found again
    tbl = pd.read_csv(out / "calibration.csv")
    assert list(tbl["label"]) == names and (tbl["n"] == 300).all()
    assert (tbl["ece_after"] < tbl["ece_before"] / 2).all(), tbl
    # the ECE of calibration.csv is that of the reported rows, recomputed here independently of the report
    lab, pred = pd.read_csv(tmp_path / "labels.csv"), pd.read_csv(tmp_path / "pred.csv")
    test = (lab["split"] == "test").to_numpy()
    y, s = lab[names].to_numpy()[test], pred[names].to_numpy()[test]
    assert tbl["ece_before"].to_numpy() == pytest.approx(expected_calibration_error(y, s), abs=1e-5)
    assert tbl["ece_after"].to_numpy() == pytest.approx(expected_calibration_error(y, apply_calibration(s, cal)), abs=1e-5)
    # operating thresholds were chosen on the calibrated tuning scores
    thr = pd.read_csv(out / "thresholds.csv")
    tune_s = apply_calibration(pred[names].to_numpy()[~test], cal)
    assert thr["threshold"].to_numpy() == pytest.approx(choose_thresholds(lab[names].to_numpy()[~test].astype(bool), tune_s), abs=1e-9)
    assert (out / "reliability.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "## Calibration" in md and "Calibrated: temperature" in md and "![reliability diagram](reliability.png)" in md
    print(f"ECE before {tbl['ece_before'].round(4).tolist()} after {tbl['ece_after'].round(4).tolist()}")


def test_not_calibrated_report_and_refusals(tmp_path, rng, capsys):
    from ecgfounder.eval.calibrating import evaluation_calibration
    from ecgfounder.explain.calibration import CalibrationError

    names = _miscalibrated_tables(tmp_path, rng, n=300)
    out = tmp_path / "plain"
    assert main(_table_args(tmp_path, out)) == 0
    assert json.loads((out / "settings.json").read_text())["calibration"] is None
    assert not (out / "calibration.json").exists() and (out / "reliability.png").is_file()
    tbl = pd.read_csv(out / "calibration.csv")
    assert tbl["ece_before"].notna().all() and tbl["ece_after"].isna().all()
    md = (out / "report.md").read_text()
    assert "Not calibrated" in md
    cal_section = md.split("## Calibration")[1].split("\n## ")[0]  # no 'ece_after: undefined' column: nothing was calibrated
    assert "| label | n | n_pos | ece_before |" in cal_section and "ece_after" not in cal_section
    # fitting never sees a reported record: the library refuses the overlap
    y = (rng.random((40, len(names))) < 0.3).astype(float)
    s = rng.random((40, len(names)))
    test = np.arange(40) >= 30
    with pytest.raises(CalibrationError, match="belong to the reported split"):
        evaluation_calibration("temperature", labels=names, y=y, scores=s, records=[f"r{i}" for i in range(40)],
                               tune=np.ones(40, dtype=bool), test=test)
    # no tuning split (thresholds from a file): nothing to fit on; one line naming the flag
    capsys.readouterr()
    rc = main(_table_args(tmp_path, tmp_path / "x", "--calibrate", "isotonic", "--thresholds", str(out / "thresholds.csv")))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1 and "--calibrate" in err and "tuning split" in err


def test_cinc_calibration_saved_with_the_weights_and_reused(cinc_root, ptbxl_root, synthetic_model, tmp_path):
    from ecgfounder.eval.jobs import PredictOptions, ReportOptions, evaluate_cinc2021
    from ecgfounder.explain.calibration import calibration_of
    from ecgfounder.models.loading import load_model

    saved = tmp_path / "calibrated.safetensors"
    predict = PredictOptions(limit=10, batch_size=20, use_cache=False)
    run = evaluate_cinc2021(cinc_root, synthetic_model, predict=predict, tune_fraction=0.5,
                            report=ReportOptions(out=tmp_path / "a", n_boot=0, plots=False, calibrate="isotonic", min_positives=3,
                                                save_calibrated=str(saved)))
    st = run.result.settings["calibration"]
    assert st["method"] == "isotonic" and st["fitted_on"]["n"] == 10 and st["fitted_on"]["labels_fitted"] >= 1
    assert calibration_of(synthetic_model) is None  # the evaluated model is left as it was
    stored = calibration_of(load_model(saved))
    assert stored is not None and stored.method == "isotonic" and len(stored.labels) == 150
    tbl = pd.read_csv(tmp_path / "a" / "calibration.csv")
    assert tbl["ece_after"].notna().any() and not (tmp_path / "a" / "reliability.png").exists()
    # a model carrying a calibration is evaluated through it, with no --calibrate (here on PTB-XL)
    from ecgfounder.eval.jobs import evaluate_ptbxl

    run2 = evaluate_ptbxl(ptbxl_root, load_model(saved), predict=PredictOptions(batch_size=10, use_cache=False),
                          report=ReportOptions(out=tmp_path / "b", n_boot=0, plots=False))
    st2 = run2.result.settings["calibration"]
    assert st2["source"] == "stored with the weights" and st2["method"] == "isotonic" and st2["fitted_on"]["split"] == "tune"
    b = pd.read_csv(tmp_path / "b" / "calibration.csv")
    assert (b["ece_after"].notna() == (b["n"] > 0)).all() and (b["ece_after"] != b["ece_before"]).any()
    assert "Calibrated: isotonic" in (tmp_path / "b" / "report.md").read_text()


def test_a_datasets_entries_not_evaluable_are_left_out_of_the_calibration_fit():
    """A target not evaluable for a record (its codes leave it open) counted as a negative when the
    calibration of its output was fitted; it is left out, as from every metric."""
    from ecgfounder.datasets import LabelledSet
    from ecgfounder.eval.jobs import _output_truth

    ls = LabelledSet(name="d", records=("a", "b", "c"), paths=(None,) * 3, labels=("T", "C"),
                     y=np.array([[1, 0], [0, 1], [0, 0]], bool), evaluable=np.array([[1, 1], [0, 1], [1, 1]], bool),
                     members={"C": ("X", "Y")})
    y = _output_truth(ls, ["T", "X", "Y", "Z"], np.arange(3))
    np.testing.assert_array_equal(y, [[1, 0, 0, 0], [np.nan, 0, 0, 0], [0, 0, 0, 0]])
