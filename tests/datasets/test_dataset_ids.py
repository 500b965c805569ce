"""Record and patient ids of the dataset tables: leading zeros, ids that pandas upcasts to floats and
joins between tables that write one id two ways never lose or merge records silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgfounder.datasets import DatasetError, load_label_table, load_ptbxl, mimic_iv_ecg_manifest, ptbxl_manifest, read_table
from ecgfounder.datasets.cinc2021 import record_patients
from ecgfounder.datasets.ids import integer_ids
from ecgfounder.datasets.ptbxl import ptbxl_patients


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_integer_ids_write_one_id_one_way():
    got = integer_ids(pd.Series(["00123", "123.0", " 7 ", "HR01", "1.50", "000", None], dtype=object)).tolist()
    assert got == ["123", "123", "7", "HR01", "1.50", "0", None]
    assert integer_ids(pd.Series([1.0, np.nan, 2.5])).tolist() == ["1", None, "2.5"]  # a column upcast by a blank
    assert integer_ids(pd.Series([10, 2])).tolist() == ["10", "2"]


# ------------------------------------------------------------------------- label tables: ids as written

def test_label_table_ids_and_patients_are_read_as_written(tmp_path):
    f = _write(tmp_path / "l.csv", "record,patient,A\n001,007,1\n010,007,0\n1,08,1\n")
    ls, _ = load_label_table(f, patient_column="patient")
    # used to be refused: '001' and '1' were both read as 1 ('record id 1 appears twice'), and
    # without the '1' row the records lost their zeros ('1', '10') and matched no file '001'
    assert ls.records == ("001", "010", "1")
    assert ls.patients.tolist() == ["007", "007", "08"]  # used to be 7, 7, 8


def test_label_table_float_ids_of_a_parquet_table(tmp_path):
    pytest.importorskip("pyarrow")
    pd.DataFrame({"record": [1.0, 10.0], "A": [1, 0]}).to_parquet(tmp_path / "l.parquet")
    assert load_label_table(tmp_path / "l.parquet")[0].records == ("1", "10")  # used to be '1.0', '10.0'
    assert read_table(tmp_path / "l.parquet", text=["record"])["record"].tolist() == ["1", "10"]


def test_evaluate_table_joins_ids_with_leading_zeros(tmp_path):
    """Labels with all-numeric ids and predictions whose id column pandas keeps as text (one id
    is not a number): '001' used to match no label row (the labels became 1, 2, ...)."""
    from ecgfounder.eval.jobs import ReportOptions, evaluate_table

    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(1, 41)]
    y = (np.arange(40) % 2).astype(int)
    pd.DataFrame({"record": ids, "A": y}).to_csv(tmp_path / "labels.csv", index=False)
    scores = np.r_[y * 0.6 + rng.random(40) * 0.5, 0.5]
    pd.DataFrame({"record": ids + ["x1"], "A": scores}).to_csv(tmp_path / "pred.csv", index=False)
    evaluate_table(tmp_path / "pred.csv", tmp_path / "labels.csv",
                   report=ReportOptions(out=tmp_path / "out", n_boot=0, plots=False))
    assert pd.read_csv(tmp_path / "out" / "per_label.csv", index_col="label").loc["A", "n"] == 40


# ------------------------------------------------------------------------- MIMIC-IV-ECG

def _record_list(root, rows: str):
    _write(root / "record_list.csv", "subject_id,study_id,file_name,path\n" + rows)


def test_mimic_record_list_ids_collide_or_are_missing(tmp_path):
    _record_list(tmp_path, "1,10,10,files/p1/s10/10\n1,010,10,files/p1/s10b/10\n")
    with pytest.raises(DatasetError, match=r"study_id '10' \(data row 1\) and '010' \(data row 2\) are the same id '10' once"):
        mimic_iv_ecg_manifest(tmp_path)  # used to give two ECGs one record id '10'
    _record_list(tmp_path, "1,10,10,files/p1/s10/10\n,11,11,files/p1/s11/11\n")
    with pytest.raises(DatasetError, match=r"1 row\(s\) have no subject_id \(first: data row 2\)"):
        mimic_iv_ecg_manifest(tmp_path)  # used to write the patients as '1.0' and 'nan'


def test_mimic_join_across_zero_padding_and_float_ids(tmp_path):
    _record_list(tmp_path, "1,0010,10,files/p1/s10/10\n1,11,11,files/p1/s11/11\n2,12,12,files/p2/s12/12\n")
    t = _write(tmp_path / "t.csv", "subject_id,lvef\n01,35\n2.0,60\n")
    m = mimic_iv_ecg_manifest(tmp_path, t, on="subject_id")
    assert m["record"].tolist() == ["10", "11", "12"] and m["lvef"].tolist() == [35, 35, 60]
    _write(t, "study_id,lvef\n10,35\n0010,50\n")
    with pytest.raises(DatasetError, match=r"study_id '10' \(data row 1\) and '0010' \(data row 2\) are the same id"):
        mimic_iv_ecg_manifest(tmp_path, t)


# ------------------------------------------------------------------------- PTB-XL

def _ptbxl(root, ecg_ids, patients):
    root.mkdir(exist_ok=True)
    n = len(ecg_ids)
    pd.DataFrame({
        "ecg_id": ecg_ids, "patient_id": patients, "scp_codes": ["{'NORM': 100.0, 'SR': 0.0}"] * n,
        "strat_fold": [(i % 10) + 1 for i in range(n)],
        "filename_hr": [f"records500/00000/{i:05d}_hr" for i in range(n)],
        "filename_lr": [f"records100/00000/{i:05d}_lr" for i in range(n)],
    }).to_csv(root / "ptbxl_database.csv", index=False)
    pd.DataFrame({"code": ["NORM", "SR"], "diagnostic": [1.0, np.nan], "rhythm": [np.nan, 1.0],
                  "diagnostic_class": ["NORM", None], "diagnostic_subclass": ["NORM", None]}
                 ).to_csv(root / "scp_statements.csv", index=False)
    return root


def test_ptbxl_patients_are_one_text_in_every_route(tmp_path):
    root = _ptbxl(tmp_path / "p", ["1", "02", "3"], ["7.0", "7.0", "P9"])
    assert load_ptbxl(root).patients.tolist() == ["7", "7", "P9"]  # used to be 7.0, 7.0, 'P9' (mixed types)
    assert ptbxl_manifest(root, "all")["patient_id"].tolist() == ["7", "7", "P9"]  # used to fail: float('P9')
    assert ptbxl_manifest(root, "all")["record"].tolist() == ["1", "2", "3"]
    db = root / "ptbxl_database.csv"
    assert record_patients(["HR00001", "HR00002", "HR00003"], db).tolist() == ["ptbxl:7", "ptbxl:7", "ptbxl:P9"]


def test_ptbxl_patients_refuse_one_ecg_id_written_twice(tmp_path):
    db = _write(tmp_path / "ptbxl_database.csv", "ecg_id,patient_id\n6000,7.0\n6001,7.0\n06000,8.0\n")
    with pytest.raises(DatasetError, match=r"ecg_id '6000' \(data row 1\) and '06000' \(data row 3\) are the same id '6000'"):
        ptbxl_patients(db)  # used to give record HR06000 patient 8 silently (the last row)
