"""Malformed inputs of the dataset layer: each is read as documented or refused with a
DatasetError naming the file, the row/column and the fix; never silently wrong labels."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from evalhelpers import CINC

from ecgfounder.datasets import (
    DatasetError, cinc2021_manifest, load_cinc2021, load_label_table, load_ptbxl, mimic_iv_ecg_manifest, parse_dx,
    parse_scp_codes, read_table,
)


def _write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


# ------------------------------------------------------------------------- read_table

def test_read_table_separators_and_trailing_commas(tmp_path):
    want = {"record": ["r1", "r2"], "A": [1, 0]}
    assert read_table(_write(tmp_path / "semi.csv", "record;A\nr1;1\nr2;0\n")).to_dict("list") == want
    assert read_table(_write(tmp_path / "bom.csv", "\ufeffrecord,A\nr1,1\nr2,0\n")).to_dict("list") == want
    assert read_table(_write(tmp_path / "t.tsv", "record\tA\nr1\t1\nr2\t0\n")).to_dict("list") == want
    # a trailing comma on each row used to shift every column left (record ids became the labels)
    assert read_table(_write(tmp_path / "trail.csv", "record,A\nr1,1,\nr2,0,\n")).to_dict("list") == want
    with pytest.raises(DatasetError, match="more fields than the header"):
        read_table(_write(tmp_path / "ragged.csv", "record,A\nr1,1,5,6\nr2,0\n"))


@pytest.mark.parametrize("name, content, match", [
    ("empty.csv", b"", "is empty"),
    ("latin1.csv", "record,A\nr\xe9,1\n".encode("latin-1"), "not UTF-8"),
    ("bad.parquet", b"not a parquet file", "not a readable Parquet"),
])
def test_read_table_unreadable_files(tmp_path, name, content, match):
    f = _write(tmp_path / name, content)
    with pytest.raises(DatasetError, match=match) as exc:
        read_table(f)
    assert str(f) in str(exc.value)


def test_read_table_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    f = tmp_path / "l.parquet"
    pd.DataFrame({"record": ["r1", "r2"], "A": [True, False], "B": [0, 1]}).to_parquet(f)
    ls, _ = load_label_table(f)
    assert ls.labels == ("A", "B") and ls.y.tolist() == [[True, False], [False, True]]


# ------------------------------------------------------------------------- load_label_table

def test_label_table_blank_label_cell_is_a_label_not_assessed_not_a_dropped_column(tmp_path):
    """A blank cell is that label not assessed for that record (left out of that label's metrics, as
    fine-tuning's test_predictions.csv writes it): it was refused, making users drop whole records;
    before that, column A was dropped silently and B evaluated alone."""
    f = _write(tmp_path / "l.csv", "record,A,B\nr1,1,0\nr2,,1\n")
    for ls, _ in (load_label_table(f), load_label_table(f, labels=["A", "B"])):
        assert ls.labels == ("A", "B") and ls.y.tolist() == [[True, False], [False, True]]
        assert ls.evaluable.tolist() == [[True, True], [False, True]]
    with pytest.raises(DatasetError, match=r"'A' of record 'r2' \(data row 2\) holds 2; labels must be 0/1, or blank"):
        load_label_table(_write(tmp_path / "two.csv", "record,A\nr1,1\nr2,2\n"), labels=["A"])


def test_label_table_string_labels(tmp_path):
    ls, _ = load_label_table(_write(tmp_path / "tf.csv", 'record,A,B\nr1,True,"1"\nr2,False,"0"\n'))
    assert ls.y.tolist() == [[True, True], [False, False]]
    with pytest.raises(DatasetError, match="holds 'yes'"):  # the message used to say 'nan'
        load_label_table(_write(tmp_path / "yes.csv", "record,A\nr1,yes\nr2,no\n"), labels=["A"])


def test_label_table_rows_ids_and_patients(tmp_path):
    with pytest.raises(DatasetError, match="no rows"):  # used to return an empty set
        load_label_table(_write(tmp_path / "h.csv", "record,A,B\n"))
    with pytest.raises(DatasetError, match=r"no record id in column 'record' \(first: data row 2\)"):
        load_label_table(_write(tmp_path / "i.csv", "record,A\n1,1\n,0\n3,1\n"))  # ids used to become '1.0', nan, '3.0'
    with pytest.raises(DatasetError, match=r"no patient id in column 'pid' \(first: 'r2'\)"):
        load_label_table(_write(tmp_path / "p.csv", "record,pid,A\nr1,p1,1\nr2,,0\n"), patient_column="pid")


# ------------------------------------------------------------------------- PTB-XL

@pytest.mark.parametrize("column, value, match", [
    ("strat_fold", 0, "strat_fold = 0; PTB-XL folds are the integers 1-10"),
    ("strat_fold", 11, "strat_fold = 11"),
    ("strat_fold", np.nan, "strat_fold = None"),
    ("strat_fold", 2.5, "strat_fold = 2.5"),
    ("strat_fold", "x", "strat_fold = 'x'"),
    ("patient_id", np.nan, "patient_id = None; every record needs a patient id"),
    ("ecg_id", 6000, "ecg_id = 6000; ecg_id must be unique"),
    ("ecg_id", np.nan, "ecg_id must be an integer"),
])
def test_ptbxl_database_values_are_checked(ptbxl_root, tmp_path, column, value, match):
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_root, root)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db[column] = db[column].astype(object)
    db.loc[1, column] = value
    db.to_csv(root / "ptbxl_database.csv", index=False)
    with pytest.raises(DatasetError, match=match) as exc:
        load_ptbxl(root)  # fold 0/11/2.5 used to load as is, NaN as fold -2**63, duplicates as two records
    assert "ptbxl_database.csv: data row 2" in str(exc.value)


@pytest.mark.parametrize("value, match", [
    ("{'NORM': 'x'}", r"data row 2 \(ecg_id 6001\): scp_codes field .* not a number"),  # used to say 'row 1'
    ("{}", r"data row 2 \(ecg_id 6001\) has scp_codes = '\{\}', no statement"),  # used to be a negative of every label
    (np.nan, r"data row 2 \(ecg_id 6001\) has scp_codes = nan, no statement"),
    ("{'NORM': 150.0}", r"gives 'NORM' the likelihood 150; PTB-XL likelihoods are 0-100"),
    ("{'IMI': -15.0}", r"gives 'IMI' the likelihood -15"),
])
def test_ptbxl_scp_codes_values_are_checked(ptbxl_root, tmp_path, value, match):
    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_root, root)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db.loc[1, "scp_codes"] = value
    db.to_csv(root / "ptbxl_database.csv", index=False)
    with pytest.raises(DatasetError, match=match) as exc:
        load_ptbxl(root)
    assert "ptbxl_database.csv: data row 2" in str(exc.value)


def test_uncertain_codes_are_left_out_and_unknown_ones_reported():
    from ecgfounder.labels.mappings import ptbxl_mapping

    cols = ["INFERIOR INFARCT", "LATERAL INFARCT", "POSTERIOR INFARCT", "ATRIAL FIBRILLATION"]
    y, ev, unknown = ptbxl_mapping().truth([["AFIB"], ["IMI"], ["AFIB"]], cols, uncertain=[["IPMI", "XYZ"], ["ILMI"], []])
    assert not y[0, :3].any() and ev[0].tolist() == [False, False, False, True]  # XYZ: unknown, could be anything
    assert y[1].tolist() == [True, False, False, False] and ev[1].tolist() == [True, False, True, True]
    assert ev[2].all() and unknown == {"XYZ": 1}
    y, ev, _ = ptbxl_mapping().truth([["AFIB"]], cols, uncertain=[["IPMI"]])
    assert ev[0].tolist() == [False, True, False, True]  # IPMI's candidates only


def test_cinc_ptbxl_patient_without_id_is_its_own_group(tmp_path):
    from ecgfounder.datasets.cinc2021 import record_patients

    db = tmp_path / "ptbxl_database.csv"
    pd.DataFrame({"ecg_id": [6000, 6001, 6002], "patient_id": [np.nan, np.nan, 8.0]}).to_csv(db, index=False)
    got = record_patients(["HR06000", "HR06001", "HR06002"], db).tolist()
    assert got == ["HR06000", "HR06001", "ptbxl:8"]  # both used to be 'ptbxl:nan', one patient


def test_scp_codes_with_non_numeric_likelihood():
    with pytest.raises(DatasetError, match="not a number"):
        parse_scp_codes("{'NORM': 'x'}")
    with pytest.raises(DatasetError, match="not a number"):
        parse_scp_codes("{'NORM': None}")


# ------------------------------------------------------------------------- CinC 2021

def _cinc(tmp_path, dx_line: str | None):
    root = tmp_path / "cinc"
    root.mkdir(parents=True)
    for r in ("E07500", "E07509"):
        shutil.copy(CINC / f"{r}.hea", root)
    lines = [ln for ln in (root / "E07509.hea").read_text().splitlines() if not ln.startswith("# Dx")]
    (root / "E07509.hea").write_text("\n".join(lines + ([dx_line] if dx_line is not None else [])) + "\n")
    return root


@pytest.mark.parametrize("line", ["# Dx: 59118001;426177001", "# Dx: 59118001 426177001"])
def test_cinc_dx_separated_by_semicolons_or_spaces(tmp_path, line):
    assert parse_dx(line.split(":", 1)[1]) == ("59118001", "426177001")
    ls = load_cinc2021(_cinc(tmp_path, line))
    i = ls.records.index("E07509")
    assert {lab for j, lab in enumerate(ls.labels) if ls.y[i, j]} == {"RIGHT BUNDLE BRANCH BLOCK", "SINUS BRADYCARDIA"}
    assert ls.unknown_codes == {}  # used to be one unknown code '59118001;426177001' and no positive


def test_dx_in_words_stays_whole():
    """Other databases write statements, not codes, on the Dx line: white space splits codes only."""
    assert parse_dx(" sinus rhythm, left axis deviation;  PVC ") == ("sinus rhythm", "left axis deviation", "PVC")


@pytest.mark.parametrize("line", [None, "# Dx:"])
def test_cinc_record_without_dx_is_no_negative(tmp_path, line):
    root = _cinc(tmp_path, line)
    ls = load_cinc2021(root)
    assert ls.records == ("E07500",) and ls.unknown_codes == {"(no Dx)": 1}  # '# Dx:' used to give an all-negative record
    with pytest.warns(UserWarning, match="no \\(or an empty\\) '# Dx:' line"):
        man = cinc2021_manifest(root)
    assert man["record"].tolist() == ["E07500"]  # used to be a row with every class 0


def test_cinc_manifest_warns_about_unknown_codes(tmp_path):
    with pytest.warns(UserWarning, match=r"\['RBBB'\] .* are not CinC 2021 SNOMED-CT codes"):
        cinc2021_manifest(_cinc(tmp_path, "# Dx: RBBB"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cinc2021_manifest(_cinc(tmp_path / "ok", "# Dx: 59118001"))


# ------------------------------------------------------------------------- MIMIC-IV-ECG

def test_mimic_targets_join(tmp_path):
    _write(tmp_path / "record_list.csv", "subject_id,study_id,file_name,path\n1,10,10,files/p1/s10/10\n"
           "1,11,11,files/p1/s11/11\n2,12,12,files/p2/s12/12\n")
    t = tmp_path / "t.csv"
    _write(t, "study_id,lvef\n10.0,35\n12.0,60\n")  # ids used to stay '10.0': an empty manifest
    assert mimic_iv_ecg_manifest(tmp_path, t)["record"].tolist() == ["10", "12"]
    _write(t, "study_id,lvef\n10,35\n,50\n")
    with pytest.raises(DatasetError, match=r"no study_id \(first: data row 2\)"):
        mimic_iv_ecg_manifest(tmp_path, t)
    _write(t, "subject_id,lvef\n1,35\n1,60\n")  # used to give each ECG of subject 1 twice
    with pytest.raises(DatasetError, match="subject_id '1' has several rows"):
        mimic_iv_ecg_manifest(tmp_path, t, on="subject_id")
    _write(t, "study_id,lvef\n99,35\n")
    with pytest.raises(DatasetError, match="no study_id of .* is in"):
        mimic_iv_ecg_manifest(tmp_path, t)


def test_unknown_code_makes_no_negative_and_is_said(tmp_path):
    """A Dx code the mapping does not know could mean any label: its record used to be a clean negative
    of every label but the ones its other codes name, with no word outside one table of the report."""
    ls = load_cinc2021(_cinc(tmp_path, "# Dx: 999999,426177001"))
    i, j = ls.records.index("E07509"), ls.labels.index("SINUS BRADYCARDIA")
    assert ls.y[i, j] and ls.evaluable[i, j]  # still a positive where a known code maps
    assert ls.evaluable[i].sum() == 1 and ls.evaluable[ls.records.index("E07500")].sum() > 1
    assert ls.unknown_codes == {"999999": 1}
    assert any("'999999' (1 record)" in n and "negative of no label" in n for n in ls.notes)
    assert load_cinc2021(_cinc(tmp_path / "nodx", None)).notes[0].startswith("1 header(s) have no")


def test_cinc_ptbxl_records_without_database_are_said_to_be_own_patients(tmp_path):
    """Without ptbxl_database.csv each HR record is its own patient: one patient's ECGs could then be
    split between tuning and test records; the evaluation used to say nothing of it."""
    root = tmp_path / "cinc"
    root.mkdir()
    for r in ("E07500", "HR06000", "HR06001"):
        shutil.copy(CINC / f"{r}.hea", root)
    notes = load_cinc2021(root).notes
    assert len(notes) == 1 and notes[0].startswith("2 PTB-XL record(s) (HR...)") and "--ptbxl-database" in notes[0]
    db = tmp_path / "ptbxl_database.csv"
    pd.DataFrame({"ecg_id": [6000, 6001], "patient_id": [7.0, 7.0]}).to_csv(db, index=False)
    ls = load_cinc2021(root, ptbxl_database=db)
    assert ls.notes == () and ls.patients.tolist() == ["E07500", "ptbxl:7", "ptbxl:7"]
    pd.DataFrame({"ecg_id": [6000], "patient_id": [7.0]}).to_csv(db, index=False)
    assert load_cinc2021(root, ptbxl_database=db).notes[0].startswith(f"1 PTB-XL record(s) (HR...) below {root} are each "
                                                                      f"their own patient (not in {db})")


@pytest.mark.parametrize("value", [150.0, -5.0, float("nan")])
def test_ptbxl_min_likelihood_outside_0_100_is_refused(ptbxl_root, value):
    """150 used to make every statement (100 included) uncertain, NaN to drop every stated code, its
    records then negatives; both ran without a word."""
    with pytest.raises(DatasetError, match=rf"min_likelihood={value} is not a PTB-XL likelihood; give a number from 0 to 100"):
        load_ptbxl(ptbxl_root, min_likelihood=value)
