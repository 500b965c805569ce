"""Report files, cached streaming predictions and the tuning/test orchestration."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from ecgfounder.eval.metrics import evaluate_multilabel
from ecgfounder.eval.report import format_ci, write_report
from ecgfounder.eval.runner import cached_predictions, run_evaluation
from ecgfounder.eval.splits import random_split, stratified_split
from ecgfounder.labels import load_labels
from evalhelpers import CINC


def test_format_ci():
    assert format_ci(0.91234, 0.9, 0.93) == "0.912 (0.900–0.930)"
    assert format_ci(float("nan"), 0.1, 0.2) == "undefined"
    assert format_ci(0.5, float("nan"), float("nan")) == "0.500"


def test_write_report_files_and_undefined(tmp_path, rng):
    labels = list(load_labels()[:12])
    y = rng.random((300, 12)) < 0.2
    y[:, 4] = False
    s = np.clip(rng.random((300, 12)) * 0.8 + 0.2 * y, 0, 1)
    ev = rng.random((300, 12)) < 0.9  # curves and calibration use the evaluable entries only
    res = evaluate_multilabel(y, s, labels, thresholds=0.5, n_boot=100, evaluable=ev)
    files = write_report(tmp_path, res, y, s, evaluable=ev, title="T", notes=["a note"],
                         extra_tables={"Extra": pd.DataFrame({"a": [1]})})
    for name in ("per_label", "summary", "categories", "settings", "markdown", "html", "reliability", "calibration_table"):
        assert files[name].is_file(), name
    assert any(k.startswith("roc:") for k in files) and any(k.startswith("pr:") for k in files)
    md = (tmp_path / "report.md").read_text()
    assert "a note" in md and "## Extra" in md and "### rhythm" in md
    assert labels[4] in md.split("## Undefined labels")[1]
    row = [ln for ln in md.splitlines() if ln.startswith(f"| {labels[4]} |")][0]
    assert "undefined" in row
    per = pd.read_csv(tmp_path / "per_label.csv", index_col="label")
    assert per.loc[labels[1], "category"] == "rhythm"
    assert np.isnan(per.loc[labels[4], "auroc"])
    html = (tmp_path / "report.html").read_text()
    assert "<img src='reliability.png'" in html and "a note" in html


def test_run_evaluation_never_tunes_on_test(rng, tmp_path):
    y = rng.random((200, 3)) < 0.3
    s = rng.random((200, 3)) + 0.3 * y
    tune = random_split(200, 0.5, seed=1)
    with pytest.raises(ValueError, match="both the tuning and the test"):
        run_evaluation(y, s, ["a", "b", "c"], None, tune=tune, test=np.ones(200, bool), n_boot=0)
    res = run_evaluation(y, s, ["a", "b", "c"], tmp_path, tune=tune, n_boot=0, plots=False)
    assert res.settings["n_records"] == int((~tune).sum())
    assert res.settings["threshold_source"].startswith("tuning split (100")
    assert (tmp_path / "thresholds.csv").is_file()


def test_random_split_keeps_patients_together():
    groups = np.repeat(np.arange(50), 4)
    m = random_split(200, 0.3, seed=0, groups=groups)
    assert (m.reshape(50, 4) == m.reshape(50, 4)[:, :1]).all()
    assert m.reshape(50, 4)[:, 0].sum() == 15


def test_cached_predictions_stream_cache_and_failures(tmp_path, synthetic_model):
    src = tmp_path / "recs"
    src.mkdir()
    for r in ("HR06000", "E07500"):
        shutil.copy(CINC / f"{r}.hea", src)
        shutil.copy(CINC / f"{r}.mat", src)
    (src / "BAD.hea").write_text("BAD 12 500 5000\n")  # header without signal lines
    paths = [str(src / "HR06000.hea"), str(src / "BAD.hea"), str(src / "E07500.hea")]
    cache = tmp_path / "cache"
    p1 = cached_predictions(paths, synthetic_model, cache, batch_size=4)
    assert p1.ok.tolist() == [True, False, True]
    assert list(p1.errors) == [paths[1]] and p1.n_predicted == 2 and p1.n_cached == 0
    assert np.isnan(p1.scores[1]).all() and np.isfinite(p1.scores[[0, 2]]).all()
    assert p1.scores.shape == (3, 150) and ((p1.scores >= 0) & (p1.scores <= 1))[[0, 2]].all()
    p2 = cached_predictions(paths[::-1], synthetic_model, cache)
    assert p2.n_cached == 2 and p2.n_predicted == 0 and p2.ok.tolist() == [True, False, True]
    np.testing.assert_array_equal(p2.scores[[2, 0]], p1.scores[[0, 2]])  # exact round trip
    cached = pd.read_csv(p1.cache_file)
    assert len(cached) == 2 and p1.cache_file.name.startswith("predictions-")


def test_run_evaluation_refuses_missing_labels(rng):
    # NaN (missing) labels were cast to True: counted as positives of the test split
    y = (rng.random((60, 1)) < 0.4).astype(float)
    y[:10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_evaluation(y, rng.random((60, 1)), ["a"], None, n_boot=0)


@pytest.mark.parametrize("missing", [None, np.nan])
def test_random_split_refuses_missing_patient_ids(missing):
    # records without a patient id all became one patient "None"/"nan", sent whole to one split
    groups = np.array([f"p{i}" for i in range(40)], dtype=object)
    groups[20:] = missing
    with pytest.raises(ValueError, match="20 missing patient id"):
        random_split(40, 0.5, seed=0, groups=groups)
    with pytest.raises(ValueError, match="missing patient id"):
        stratified_split(0.5, groups, np.zeros(40), seed=0)


def test_run_evaluation_notes_patients_in_both_splits(rng, tmp_path):
    # records of one patient in the tuning and the test split: the thresholds saw the patient, silently
    y = rng.random((120, 2)) < 0.3
    s = rng.random((120, 2)) + 0.3 * y
    groups = np.arange(120) // 2
    tune = np.arange(120) % 2 == 0  # every patient has one record in each split
    res = run_evaluation(y, s, ["a", "b"], tmp_path, tune=tune, groups=groups, n_boot=0, plots=False)
    assert res.settings["n_patients_in_tune_and_test"] == 60
    assert "60 patient(s) have records in both the tuning and the test split" in (tmp_path / "report.md").read_text()
    whole = random_split(120, 0.5, seed=0, groups=groups)
    assert run_evaluation(y, s, ["a", "b"], None, tune=whole, groups=groups, n_boot=0).settings["n_patients_in_tune_and_test"] == 0
    with pytest.raises(ValueError, match="one id per record"):
        run_evaluation(y, s, ["a", "b"], None, tune=tune, groups=groups[:7], n_boot=0)


def test_report_says_why_a_single_test_patient_has_no_interval(rng, tmp_path):
    y = rng.random((80, 2)) < 0.4
    s = np.clip(0.3 * y + 0.7 * rng.random((80, 2)), 0, 1)
    groups = np.where(np.arange(80) < 40, np.arange(80) % 10, 99)  # tuning: 10 patients; test: patient 99 alone
    tune = np.arange(80) < 40
    res = run_evaluation(y, s, ["A", "B"], tmp_path, tune=tune, groups=groups, n_boot=30, plots=False, min_positives=1)
    assert res.per_label[["auroc_lo", "auroc_hi", "f1_lo", "f1_hi"]].isna().all().all()
    assert any("one patient" in n for n in res.settings["notes"])
    row = [ln for ln in (tmp_path / "report.md").read_text().splitlines() if ln.startswith("| A |")][0]
    assert "–" not in row  # point estimates only, no 'x (x–x)'


def test_the_weights_file_of_a_report_is_hashed_once_while_unchanged(tmp_path, monkeypatch):
    """Every evaluation read the whole weights file for the report's SHA-256 (~1 s for the published
    12-lead file); an unchanged file is now answered from the package's hash cache."""
    import hashlib
    import os
    import time
    from types import SimpleNamespace

    import ecgfounder.models.weights as weights
    from ecgfounder.eval.runner import weights_sha256

    wfile = tmp_path / "w.safetensors"
    wfile.write_bytes(b"weights" * 1000)
    os.utime(wfile, (time.time() - 60, time.time() - 60))  # (a file written just now is not remembered yet)
    reads, real = [], weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p, *a, **k: reads.append(p) or real(p, *a, **k))
    model = SimpleNamespace(description=SimpleNamespace(sha256=None), source={"file": str(wfile)})
    assert weights_sha256(model) == weights_sha256(model) == hashlib.sha256(wfile.read_bytes()).hexdigest()
    assert len(reads) == 1
