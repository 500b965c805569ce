"""``ecgfounder evaluate``: label tables, and PTB-XL / CinC 2021 end to end with a synthetic model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ecgfounder.cli import main
from ecgfounder.eval.thresholds import choose_thresholds


def _tables(tmp_path, rng, n=240, k=5):
    ids = [f"r{i:04d}" for i in range(n)]
    y = rng.random((n, k)) < rng.uniform(0.1, 0.4, k)
    s = 1 / (1 + np.exp(-(rng.normal(size=(n, k)) + 1.5 * y - 1)))
    names = [f"L{j}" for j in range(k)]
    lab = pd.DataFrame(y.astype(int), columns=names)
    lab.insert(0, "record", ids)
    lab["patient"] = [f"p{i // 2}" for i in range(n)]
    lab["split"] = np.where(np.arange(n) % 3 == 0, "test", "tune")
    pred = pd.DataFrame(s, columns=names)
    pred.insert(0, "record", ids)
    pred.insert(1, "path", [f"/x/{i}.hea" for i in ids])
    pred.insert(2, "n_windows", 1)
    pred = pred.sample(frac=1.0, random_state=0)  # order must not matter
    lab.to_csv(tmp_path / "labels.csv", index=False)
    pred.to_csv(tmp_path / "pred.csv", index=False)
    return y, s, names, lab["split"].to_numpy()


def test_table_with_split_column(tmp_path, rng, capsys):
    y, s, names, split = _tables(tmp_path, rng)
    out = tmp_path / "out"
    rc = main([
        "evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
        "--split-column", "split", "--patient-column", "patient", "--n-boot", "200", "--out", str(out), "--no-plots",
    ])
    assert rc == 0
    assert "macro AUROC" in capsys.readouterr().out
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    test = split == "test"
    tune = split == "tune"
    thr = choose_thresholds(y[tune], s[tune])
    saved = pd.read_csv(out / "thresholds.csv", index_col="label")["threshold"]
    np.testing.assert_allclose(saved[names].to_numpy(), thr, rtol=0, atol=1e-15)
    for j, lab in enumerate(names):
        assert per.loc[lab, "n"] == test.sum()
        assert per.loc[lab, "auroc"] == pytest.approx(skm.roc_auc_score(y[test, j], s[test, j]), abs=1e-6)
        pred = s[test, j] >= thr[j]
        assert per.loc[lab, "sensitivity"] == pytest.approx(skm.recall_score(y[test, j], pred), abs=1e-6)
    settings = (out / "settings.json").read_text()
    assert '"bootstrap_unit": "patient"' in settings
    for f in ("report.md", "report.html", "summary.csv", "categories.csv"):
        assert (out / f).is_file()

    # reuse the thresholds on the same predictions: every labelled record is reported
    out2 = tmp_path / "out2"
    rc = main([
        "evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
        "--thresholds", str(out / "thresholds.csv"), "--n-boot", "0", "--out", str(out2), "--no-plots",
    ])
    assert rc == 0
    per2 = pd.read_csv(out2 / "per_label.csv", index_col="label")
    assert per2["n"].iloc[0] == len(y) - 0  # split column not used: all records
    # the patient column not passed: records of one patient resampled as independent, which is said
    note = "Column 'patient' looks like patient ids, and 120 of its 120 patients have several records"
    assert note in (out2 / "report.md").read_text() and note not in (out / "report.md").read_text()
    assert "--patient-column patient" in capsys.readouterr().err + (out2 / "report.md").read_text()
    np.testing.assert_allclose(per2.loc[names, "threshold"], thr, atol=1e-6)


def test_table_without_split_has_no_thresholded_metrics(tmp_path, rng):
    _tables(tmp_path, rng)
    out = tmp_path / "o"
    assert main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
                 "--label-columns", "L0", "L1", "--n-boot", "50", "--out", str(out), "--no-plots"]) == 0
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    assert list(per.index) == ["L0", "L1"]
    assert per["sensitivity"].isna().all() and per["auroc"].notna().all()
    assert "never chosen on the test records" in (out / "report.md").read_text()


def test_table_errors_are_one_line(tmp_path, rng, capsys):
    _tables(tmp_path, rng)
    rc = main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--id-column", "ecg_id", "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "ecg_id" in err and err.count("\n") == 1


def _cache_auroc_check(out, ls, test_records):
    """per_label AUROC equals scikit-learn on the cached scores of the test records (evaluable
    entries only; a composite target scored as the max of its members' outputs)."""
    cache = next((out / "cache").glob("predictions-*.csv"))
    scores = pd.read_csv(cache)
    scores.index = [p.rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in scores["path"]]
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    checked = 0
    for lab in per.index[per["defined"]]:
        j = ls.labels.index(lab)
        rows = [ls.records.index(r) for r in test_records]
        stems = [ls.paths[i].rsplit("/", 1)[-1].rsplit(".", 1)[0] for i in rows]
        sc = scores.loc[stems, list(ls.members[lab])].to_numpy().max(axis=1)
        m = ls.evaluable[rows, j]
        assert per.loc[lab, "auroc"] == pytest.approx(skm.roc_auc_score(ls.y[rows, j][m], sc[m]), abs=1e-9)
        checked += 1
    return checked


def test_ptbxl_end_to_end_and_cache(ptbxl_root, synthetic_checkpoint, tmp_path, capsys):
    from ecgfounder.datasets import load_ptbxl

    out = tmp_path / "ptbxl"
    base = ["evaluate", "ptbxl", "--root", str(ptbxl_root), "--checkpoint", str(synthetic_checkpoint),
            "--out", str(out), "--batch-size", "8", "--no-progress"]
    assert main(base + ["--n-boot", "50", "--no-plots"]) == 0  # figures: test_report_runner
    cap = capsys.readouterr()
    assert "0 from cache, 10 computed" in cap.err
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    ls = load_ptbxl(ptbxl_root)
    assert list(per.index) == list(ls.labels)  # mapped labels only, model order
    test_records = [r for r, f in zip(ls.records, ls.folds) if f == 10]
    axis = per.index.str.contains("AXIS")  # the fixture has no heart_axis column: axis unknown, never a negative
    assert axis.sum() == 7 and (per.loc[axis, "n"] == 0).all() and (per.loc[~axis, "n"] == len(test_records)).all()
    assert set(per.index[per["defined"]]) == {"NONSPECIFIC ST ABNORMALITY", "SINUS TACHYCARDIA"}
    # SINUS TACHYCARDIA has no positive in the tuning folds: AUROC defined, thresholded metrics not
    assert np.isnan(per.loc["SINUS TACHYCARDIA", "threshold"]) and np.isnan(per.loc["SINUS TACHYCARDIA", "sensitivity"])
    assert _cache_auroc_check(out, ls, test_records) == 2
    md = (out / "report.md").read_text()
    assert "undefined" in md and "Labels not evaluable on this dataset" in md and "2AVB" in md
    assert not (out / "reliability.png").exists() and (out / "calibration.csv").is_file()
    settings = (out / "settings.json").read_text()
    assert '"bootstrap_unit": "patient"' in settings and '"n_groups": 4' in settings  # HR06004/5 share a patient
    st = json.loads(settings)
    assert st["protocol"] == "ours" and st["preprocessing_mode"] == "published" and len(st["model_fingerprint"]) == 64
    import hashlib

    assert st["weights_sha256"] == hashlib.sha256(synthetic_checkpoint.read_bytes()).hexdigest()
    assert st["threshold_source"].startswith("tuning split") and st["package_version"]

    # second run: thresholds from the first, predictions from the cache
    out_thr = out / "thresholds.csv"
    assert main(base + ["--thresholds", str(out_thr), "--n-boot", "0", "--no-plots", "--out", str(tmp_path / "again"),
                        "--cache-dir", str(out / "cache")]) == 0
    assert "5 from cache, 0 computed" in capsys.readouterr().err  # only the 5 test records are needed
    per2 = pd.read_csv(tmp_path / "again" / "per_label.csv", index_col="label")
    np.testing.assert_allclose(per2["auroc"], per["auroc"], equal_nan=True)
    np.testing.assert_allclose(per2["sensitivity"], per["sensitivity"], equal_nan=True)


def test_cinc2021_end_to_end(cinc_root, synthetic_checkpoint, tmp_path, capsys):
    from ecgfounder.datasets import load_cinc2021
    from ecgfounder.eval.splits import stratified_split

    out = tmp_path / "cinc"
    rc = main(["evaluate", "cinc2021", "--root", str(cinc_root), "--checkpoint", str(synthetic_checkpoint),
               "--out", str(out), "--n-boot", "50", "--no-plots", "--no-progress", "--batch-size", "16"])
    assert rc == 0
    assert "50 computed, 0 failed" in capsys.readouterr().err  # all 50 real records
    ls = load_cinc2021(cinc_root)
    test = ~stratified_split(0.5, ls.patients, ls.sources, seed=0)
    test_records = [r for r, t in zip(ls.records, test) if t]
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    assert ((per["n"] + per["n_excluded"]) == len(test_records)).all()
    # bar: one row for the sinus-rhythm finding, its two MUSE wordings listed as members
    assert "SINUS RHYTHM" not in per.index and "NORMAL SINUS RHYTHM" not in per.index
    assert per.loc["SINUS RHYTHM (either wording)", "members"] == "SINUS RHYTHM + NORMAL SINUS RHYTHM"
    src = pd.Series([r.rstrip("0123456789") for r in test_records]).value_counts()
    assert src.to_dict() == {"E": 10, "JS": 10, "HR": 5}  # half of every source database (20, 20, 10 records)
    assert _cache_auroc_check(out, ls, test_records) >= 3
    summ = pd.read_csv(out / "summary.csv", index_col="summary")
    assert summ.loc["macro", "n_labels"] == per["summarised"].sum() < per["defined"].sum()  # rare labels set apart
    assert summ.loc["macro", "n_rare"] == (per["defined"] & ~per["summarised"]).sum()
    assert (per.loc[per["summarised"], "n_pos"] >= 10).all() and (per.loc[per["defined"] & ~per["summarised"], "n_pos"] < 10).all()


def test_ptbxl_published_protocol(ptbxl_root, synthetic_checkpoint, tmp_path, capsys):
    """--protocol published: all records, z-score only, thresholds on the evaluated records, and the
    report's JSON and text say so (bar: the JSON names the preprocessing mode and the protocol)."""
    out = tmp_path / "pub"
    assert main(["evaluate", "ptbxl", "--root", str(ptbxl_root), "--checkpoint", str(synthetic_checkpoint), "--out", str(out),
                 "--protocol", "published", "--no-progress", "--no-cache"]) == 0
    text = capsys.readouterr()
    assert "all 10 records" in text.err and "undefined = 0" in text.out
    st = json.loads((out / "settings.json").read_text())
    assert st["protocol"] == "published" and st["preprocessing_mode"] == "zscore" and st["n_records"] == 10
    assert st["threshold_source"] == "the evaluated records themselves" and st["n_labels"] == 150
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    assert len(per) == 150 and "SINUS RHYTHM" in per.index and "NORMAL SINUS RHYTHM" in per.index  # the script's rows
    assert st["mean_auroc_undefined_as_0"] == pytest.approx(per["auroc"].fillna(0).mean())
    assert "What this protocol does wrong" in (out / "report.md").read_text()


def test_ptbxl_unknown_scp_code_is_said_in_both_protocols(ptbxl_root, synthetic_checkpoint, tmp_path, capsys):
    """An SCP code the mapping does not know used to be named only in a table deep in the report
    (protocol ours) or nowhere (published), its record counted as a negative of every other label."""
    import shutil

    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_root, root)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db.loc[0, "scp_codes"] = "{'FOO': 100.0, 'SR': 0.0}"
    db.to_csv(root / "ptbxl_database.csv", index=False)
    for protocol, says in (("ours", "a negative of no label"), ("published", "as a negative of every label")):
        out = tmp_path / protocol
        assert main(["evaluate", "ptbxl", "--root", str(root), "--checkpoint", str(synthetic_checkpoint), "--out", str(out),
                     "--protocol", protocol, "--limit", "1", "--n-boot", "0", "--no-plots", "--no-progress", "--no-cache"]) == 0
        printed = " ".join(capsys.readouterr().out.split())
        assert "'FOO' (1 record)" in printed and says in printed, printed
        assert "'FOO' (1 record)" in (out / "report.md").read_text()


def test_help_says_which_number_is_comparable(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "ptbxl", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0.924" in text and "--protocol" in text and "published" in text


def test_cinc2021_thresholds_from_a_separate_folder(cinc_root, synthetic_model, tmp_path):
    import shutil

    from ecgfounder.eval.jobs import ReportOptions, evaluate_cinc2021

    for part, names in (("tune", ["E07500", "E07501", "HR06000", "JS20000"]), ("test", ["E07502", "HR06001", "JS20001"])):
        (tmp_path / part).mkdir()
        for n in names:
            for ext in (".hea", ".mat"):
                shutil.copy(cinc_root / f"{n}{ext}", tmp_path / part / f"{n}{ext}")
    run = evaluate_cinc2021(tmp_path / "test", synthetic_model, tune_root=tmp_path / "tune",
                            report=ReportOptions(out=tmp_path / "out", n_boot=0, plots=False))
    st = run.result.settings
    assert st["n_records"] == 3 and st["n_tune"] == 4 and st["threshold_source"].startswith(f"folder {tmp_path / 'tune'}")
    assert (tmp_path / "out" / "thresholds.csv").is_file()


def test_cinc2021_tune_root_sharing_records_with_root_is_refused(cinc_root, synthetic_model, tmp_path):
    """The same recordings in --tune-root and --root used to be tuned and reported on, with only a
    note about patients in both splits."""
    import shutil

    from ecgfounder.eval.errors import EvaluationError
    from ecgfounder.eval.jobs import ReportOptions, evaluate_cinc2021

    for part in ("tune", "test"):
        (tmp_path / part).mkdir()
        for n in (["E07500", "E07501"] if part == "tune" else ["E07501"]):
            for ext in (".hea", ".mat"):
                shutil.copy(cinc_root / f"{n}{ext}", tmp_path / part)
    with pytest.raises(EvaluationError, match=r"share 1 record\(s\) \(e.g. E07501\); thresholds must come from other"):
        evaluate_cinc2021(tmp_path / "test", synthetic_model, tune_root=tmp_path / "tune",
                          report=ReportOptions(out=tmp_path / "out", n_boot=0, plots=False))


@pytest.mark.parametrize("value, shown", [("abc", "'abc'"), ("inf", "inf"), ("-inf", "-inf")])
def test_table_score_that_is_not_a_finite_number_is_named(tmp_path, rng, capsys, value, shown):
    # 'abc' gave "error: could not convert string to float: 'abc'" (no file, label, record or fix);
    # inf was dropped silently as a "missing score"
    _tables(tmp_path, rng)
    pred = pd.read_csv(tmp_path / "pred.csv", dtype={"L2": str})
    pred.loc[pred["record"] == "r0007", "L2"] = value
    pred.to_csv(tmp_path / "pred.csv", index=False)
    rc = main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--n-boot", "0", "--no-plots", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"score {shown} of label 'L2' for record 'r0007' is not a finite number" in err and "leave the cell empty" in err


def test_table_notes_unmatched_predictions_and_a_missing_tune_value(tmp_path, rng, capsys):
    _tables(tmp_path, rng)
    pred = pd.read_csv(tmp_path / "pred.csv")
    extra = pred.iloc[:3].assign(record=["x1", "x2", "x3"])
    pd.concat([pred, extra]).to_csv(tmp_path / "pred.csv", index=False)
    out = tmp_path / "o"
    assert main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
                 "--split-column", "split", "--tune-value", "tuning", "--n-boot", "0", "--no-plots", "--out", str(out)]) == 0
    for text in ((out / "report.md").read_text(), capsys.readouterr().out):  # in the report and on the terminal
        text = " ".join(text.split())
        assert "3 prediction row(s) have no record in labels.csv and are ignored" in text
        assert "No record has split == 'tuning' (values: ['test', 'tune'])" in text


def test_table_notes_a_label_column_that_is_not_0_1(tmp_path, rng, capsys):
    # a label column with one typo ('yes') was not taken as a label: silently not evaluated
    _tables(tmp_path, rng)
    lab = pd.read_csv(tmp_path / "labels.csv", dtype={"L3": str})
    lab.loc[5, "L3"] = "yes"
    lab.to_csv(tmp_path / "labels.csv", index=False)
    assert main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
                 "--n-boot", "0", "--no-plots", "--out", str(tmp_path / "o")]) == 0
    assert "note: 1 column(s) of both tables are not 0/1 in labels.csv and are not evaluated: L3;" in capsys.readouterr().out
    rc = main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--label-columns", "L3", "--n-boot", "0", "--no-plots", "--out", str(tmp_path / "o")])
    assert rc == 2 and "holds 'yes'" in capsys.readouterr().err


@pytest.mark.parametrize("change, words", [
    (lambda p: p.rename(columns={"L0": "X0", "L1": "X1", "L2": "X2", "L3": "X3", "L4": "X4"}),
     ["(L0, L1, L2, L3, L4)", "(columns: record, path, n_windows, X0", "name each score column like its label column"]),
    (lambda p: p.assign(record="x" + p["record"]), ["e.g. 'r0000' there, 'xr", "must use the same ids"]),
    (lambda p: p.iloc[:0], ["header but no rows"]),
])
def test_table_mismatches_name_both_sides(tmp_path, rng, capsys, change, words):
    # these said only "no label column ... is a column of ..." / "no record id ... appears in ..."
    _tables(tmp_path, rng)
    change(pd.read_csv(tmp_path / "pred.csv")).to_csv(tmp_path / "pred.csv", index=False)
    rc = main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--n-boot", "0", "--no-plots", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and all(w in err for w in words), err


def test_negative_seed_names_the_flag(tmp_path, rng, capsys):
    # numpy's "expected non-negative integer" reached the terminal without naming --seed
    from ecgfounder.eval.metrics import evaluate_multilabel
    from ecgfounder.eval.splits import random_split

    _tables(tmp_path, rng)
    rc = main(["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--labels", str(tmp_path / "labels.csv"),
               "--seed", "-1", "--n-boot", "5", "--no-plots", "--out", str(tmp_path / "o")])
    assert rc == 2 and capsys.readouterr().err == "error: --seed must be a whole number >= 0; got -1.\n"
    with pytest.raises(ValueError, match=r"seed must be a whole number >= 0; got 0\.5"):
        random_split(10, 0.5, seed=0.5)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0; got -2"):
        evaluate_multilabel(np.eye(4, dtype=bool), np.eye(4), n_boot=3, seed=-2)


def test_library_argument_names_become_flags_without_touching_prose(tmp_path, capsys):
    """evaluate wrote flags over its errors by plain text replacement ("mode " anywhere became
    "--mode "); the names are now written as name=value in the library and made flags by the shared
    translation, which leaves other words alone."""
    from ecgfounder.cli._common import flags
    from ecgfounder.cli.evaluate import _FLAGS

    assert main(["evaluate", "ptbxl", "--root", str(tmp_path), "--tune-folds", "1-9", "--test-folds", "9",
                 "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == ("error: --tune-folds 1,2,3,4,5,6,7,8,9 and --test-folds 9 overlap; "
                                               "thresholds must come from other folds.")
    said = flags("the limit of the mode of the protocol: protocol='ours'", None, _FLAGS)
    assert said == "the limit of the mode of the protocol: --protocol ours"


def test_fine_tunings_test_predictions_evaluate_as_both_tables(tmp_path, rng, capsys):
    """finetune's test_predictions.csv holds the truths (target:X, blank where X was not assessed) beside
    the scores (X): evaluate table refused its blank cells, and no target:X column matched a score."""
    n = 120
    y = (rng.random((n, 2)) < 0.3).astype(float)
    s = 1 / (1 + np.exp(-(rng.normal(size=(n, 2)) + 2 * y - 1)))
    y[::4, 1] = np.nan  # B not assessed for every fourth record
    table = pd.DataFrame({"record": [f"r{i}" for i in range(n)], "path": [f"/x/r{i}.hea" for i in range(n)],
                          "patient": [f"p{i // 3}" for i in range(n)], "target:A": y[:, 0], "target:B": y[:, 1],
                          "A": s[:, 0], "B": s[:, 1]})
    f = tmp_path / "test_predictions.csv"
    table.to_csv(f, index=False)
    out = tmp_path / "out"
    assert main(["evaluate", "table", "--predictions", str(f), "--labels", str(f), "--patient-column", "patient",
                 "--n-boot", "50", "--out", str(out), "--no-plots"]) == 0
    per = pd.read_csv(out / "per_label.csv", index_col="label")
    assert list(per.index) == ["A", "B"]
    seen = ~np.isnan(y[:, 1])
    assert per.loc["A", "n"] == n and per.loc["B", "n"] == seen.sum()
    assert per.loc["A", "auroc"] == pytest.approx(skm.roc_auc_score(y[:, 0], s[:, 0]), abs=1e-9)
    assert per.loc["B", "auroc"] == pytest.approx(skm.roc_auc_score(y[seen, 1], s[seen, 1]), abs=1e-9)
    md = (out / "report.md").read_text()
    assert "30 blank label cell(s)" in md and "not 0/1" not in md  # (the score columns are not 'not evaluated')


def test_table_given_the_predictions_as_labels_is_refused(tmp_path, rng, capsys):
    """The predictions file given as --labels took n_windows (all 1) for a label, evaluated nothing and
    exited 0.  (One file for both is right for fine-tuning's test_predictions.csv, whose target:X
    columns are the labels.)"""
    _tables(tmp_path, rng)
    args = ["evaluate", "table", "--predictions", str(tmp_path / "pred.csv"), "--n-boot", "0", "--no-plots"]
    assert main([*args, "--labels", str(tmp_path / "pred.csv"), "--out", str(tmp_path / "a")]) == 2
    assert "no 0/1 label column found" in capsys.readouterr().err
