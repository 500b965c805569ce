"""What a reader of the evaluation report sees: file names, rare labels marked, counts named."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ecgfounder.eval.metrics import evaluate_multilabel
from ecgfounder.eval.report import write_report


def _data(rng, n=120):
    y = rng.random((n, 4)) < 0.3
    s = np.clip(rng.random((n, 4)) * 0.8 + 0.2 * y, 0, 1)
    return y, s


@pytest.mark.slow  # (file names of every category; keeps the default run under 2 min)
def test_category_and_table_names_never_share_a_file(tmp_path, rng):
    # '/' and '&' (and non-ASCII letters) used to collapse to one slug: the second category's
    # ROC/PR plots overwrote the first's, and an extra table named "per label" replaced per_label.csv
    labels = ["a", "b", "c", "d"]
    cats = {"a": "Rhythm/Conduction", "b": "Rhythm & Conduction", "c": "心律", "d": "节律"}
    y, s = _data(rng)
    res = evaluate_multilabel(y, s, labels, thresholds=0.5, n_boot=0, min_positives=1)
    files = write_report(tmp_path, res, y, s, categories=cats, extra_tables={"per label": pd.DataFrame({"x": [1]})})
    rocs = [files[f"roc:{c}"] for c in cats.values()]
    assert len({f.name for f in rocs}) == 4 and all(f.name.isascii() for f in rocs)
    assert files["roc:Rhythm/Conduction"].name == "roc_rhythm_conduction.png"  # unchanged where no clash
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(set(re.findall(r"<img src='(roc_[^']+)'", html))) == 4
    assert "x" not in pd.read_csv(tmp_path / "per_label.csv").columns
    assert files["table:per label"].name != "per_label.csv"


def test_rows_say_why_a_label_is_left_out_and_patients_are_counted(tmp_path, rng):
    y, s = _data(rng)
    y[:, 2] = False
    y[:3, 2] = True  # 3 positives: rare
    y[:, 3] = False  # no positives: undefined
    groups = np.repeat(np.arange(60), 2)
    res = evaluate_multilabel(y, s, ["ok", "fine", "rare one", "empty"], thresholds=0.5, groups=groups, n_boot=20)
    write_report(tmp_path, res, plots=False)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    row: dict[str, str] = {}
    for ln in md.splitlines():
        if ln.startswith("| "):
            row.setdefault(ln.split(" | ")[0][2:], ln)  # the label table comes before the rare list
    assert "| no (too few positives) |" in row["rare one"] and "| no (undefined) |" in row["empty"]
    assert "| yes |" in row["ok"]
    assert "resamples of the 60 patients" in md
    assert "| category | labels | summarised | positives |" in md  # counts summarised labels, not "defined" ones


def test_small_thresholds_are_not_printed_as_zero(tmp_path, rng):
    # a rare label's Youden threshold of 0.00042 was printed "0.000" (reads as: every record called positive)
    y, s = _data(rng)
    res = evaluate_multilabel(y, s * 0.002, ["a", "b", "c", "d"], thresholds=[0.00042, 0.0013, 0.5, np.nan], n_boot=0)
    write_report(tmp_path, res, plots=False)
    rows = {ln.split(" | ")[0][2:]: ln.split(" | ") for ln in (tmp_path / "report.md").read_text().splitlines()
            if ln.startswith("| ")}
    thr_col = rows["label"].index("threshold")
    assert [rows[k][thr_col] for k in "abcd"] == ["0.00042", "0.0013", "0.500", "none"]
    from ecgfounder.eval.report import format_threshold

    assert format_threshold(0.99996) == "0.999960" and format_threshold(0.123456) == "0.123"


def test_curves_use_scores_as_given_and_logits_get_no_ece(tmp_path, rng, monkeypatch):
    # scores outside [0, 1] (logits) were clipped before the ROC/PR curves were drawn: the ties made
    # the drawn curve's area differ from the AUROC in its legend, and an ECE was computed on them
    import sklearn.metrics as skm

    areas = []
    real = skm.roc_curve

    def recording(y, s, *a, **k):
        fpr, tpr, thr = real(y, s, *a, **k)
        areas.append(float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))
        return fpr, tpr, thr

    monkeypatch.setattr(skm, "roc_curve", recording)
    y, s = _data(rng)
    logits = np.log(s + 1e-3) - np.log(1 - s + 1e-3) + 2.0 * y
    res = evaluate_multilabel(y, logits, ["a", "b", "c", "d"], n_boot=0, min_positives=1)
    files = write_report(tmp_path, res, y, logits, categories={k: "one" for k in "abcd"})
    assert sorted(areas) == pytest.approx(sorted(res.per_label["auroc"]), abs=1e-12)
    assert "calibration_table" not in files and "reliability" not in files
    assert "Scores outside [0, 1]" in (tmp_path / "report.md").read_text()
