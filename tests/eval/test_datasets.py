"""The dataset layer: PTB-XL and CinC 2021 ground truth from the real records, the field parsers,
patients of the CinC PTB-XL records, MIMIC-IV-ECG manifests."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import CINC, HR_RECORDS, header_dx

from ecgfounder.datasets import DatasetError, load_cinc2021, load_label_table, load_ptbxl, mimic_iv_ecg_manifest, parse_dx, parse_scp_codes
from ecgfounder.datasets.cinc2021 import cinc2021_manifest


def test_load_ptbxl(ptbxl_root):
    ls = load_ptbxl(ptbxl_root)
    assert ls.records == tuple(str(int(r[2:])) for r in HR_RECORDS)
    assert all(p.endswith("_hr.hea") for p in ls.paths)
    col = {lab: j for j, lab in enumerate(ls.labels)}
    y = ls.y
    i = ls.records.index("6002")  # HR06002: sinus bradycardia, IRBBB, sinus rhythm
    assert y[i, col["SINUS BRADYCARDIA"]] and y[i, col["INCOMPLETE RIGHT BUNDLE BRANCH BLOCK"]]
    assert y[:, col["SINUS RHYTHM (either wording)"]].all()
    assert y[:, col["SINUS TACHYCARDIA"]].sum() == 1
    assert "NORMAL ECG (either wording)" in ls.labels and not y[:, col["NORMAL ECG (either wording)"]].any()
    assert ls.members["NORMAL ECG (either wording)"] == ("NORMAL ECG", "otherwise normal ecg")
    assert "ABNORMAL ECG" in ls.not_evaluable
    assert set(ls.folds.tolist()) >= {10} and (ls.folds < 10).any()
    assert ls.patients[ls.records.index("6004")] == ls.patients[ls.records.index("6005")]
    assert ls.unknown_codes == {}


def test_ptbxl_min_likelihood(ptbxl_root, tmp_path):
    """Likelihood 0 is PTB-XL's "not given" (every rhythm/form statement): it always counts; a code
    below the threshold is neither a positive nor a negative of its labels."""
    import shutil

    import pandas as pd

    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_root, root)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db.loc[1, "scp_codes"] = "{'NDT': 35.0, 'SR': 0.0}"  # HR06001: a T-wave abnormality at 35 %
    db.to_csv(root / "ptbxl_database.csv", index=False)
    ls = load_ptbxl(root, min_likelihood=50)
    col = {lab: j for j, lab in enumerate(ls.labels)}
    assert ls.y[:, col["SINUS RHYTHM (either wording)"]].all()  # used to be no positive at all
    t = col["NONSPECIFIC T WAVE ABNORMALITY"]
    assert not ls.y[1, t] and not ls.evaluable[1, t]  # used to be a negative
    both = load_ptbxl(root, min_likelihood=35)
    assert both.y[1, t] and both.evaluable[1, t]
    gone = both.evaluable & ~ls.evaluable
    assert gone.sum() == 1 and gone[1, t]  # only that entry is left out


def test_ptbxl_missing_database(tmp_path):
    with pytest.raises(DatasetError, match="ptbxl_database.csv"):
        load_ptbxl(tmp_path)


def test_load_cinc2021(cinc_root):
    ls = load_cinc2021(cinc_root)
    assert len(ls) == 50
    col = {lab: j for j, lab in enumerate(ls.labels)}
    i = ls.records.index("E07509")  # Dx 59118001 (RBBB), 426177001 (sinus bradycardia)
    assert ls.y[i, col["RIGHT BUNDLE BRANCH BLOCK"]] and ls.y[i, col["SINUS BRADYCARDIA"]]
    assert ls.y[i].sum() == 2
    j = ls.records.index("JS20005")  # PAC, RVH, sinus tachycardia, PVC
    got = {lab for lab in ls.labels if ls.y[j, col[lab]]}
    assert got == {"PREMATURE ATRIAL OR SUPRAVENTRICULAR COMPLEXES", "RIGHT VENTRICULAR HYPERTROPHY", "SINUS TACHYCARDIA", "PREMATURE VENTRICULAR COMPLEXES"}


def test_both_routes_agree_on_the_ptbxl_records(ptbxl_root, cinc_root):
    """The HR records labelled via SCP codes (PTB-XL route) and via SNOMED (CinC route) agree."""
    a = load_ptbxl(ptbxl_root)
    b = load_cinc2021(cinc_root)
    common = [lab for lab in a.labels if lab in b.labels]
    assert len(common) >= 25
    ya = a.y[:, [a.labels.index(lab) for lab in common]]
    rows = [b.records.index(r) for r in HR_RECORDS]
    yb = b.y[rows][:, [b.labels.index(lab) for lab in common]]
    assert np.array_equal(ya, yb)
    assert ya.sum() == sum(len(header_dx(CINC / f"{r}.hea")) for r in HR_RECORDS)  # one target per code (SR is one composite)


def test_label_table_rejects_non_binary(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("record,A,B,age\nr1,1,0,61\nr2,0.5,1,70\n")
    with pytest.raises(ValueError, match="0/1"):
        load_label_table(f, labels=["A", "B"])
    ls, _ = load_label_table(f)  # automatic choice: only the 0/1 columns
    assert ls.labels == ("B",) and ls.y[:, 0].tolist() == [False, True]
    f.write_text("record,A\nr1,1\nr1,0\n")
    with pytest.raises(ValueError, match="twice"):
        load_label_table(f)


def test_field_parsers():
    assert parse_dx(" 164889003, 59118001 ,") == ("164889003", "59118001")
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    assert parse_scp_codes("") == {}
    with pytest.raises(DatasetError, match="dict"):
        parse_scp_codes("['NORM']")
    with pytest.raises(DatasetError, match="not a dict literal"):
        parse_scp_codes("__import__('os')")


def test_ptbxl_heart_axis_is_read(ptbxl_root, tmp_path):
    import shutil

    import pandas as pd

    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_root, root)
    db = pd.read_csv(root / "ptbxl_database.csv")
    db["heart_axis"] = ["LAD", "MID", None, "RAD"] + ["MID"] * (len(db) - 4)
    db.to_csv(root / "ptbxl_database.csv", index=False)
    ls = load_ptbxl(root)
    j = ls.labels.index("LEFT AXIS DEVIATION")
    assert ls.y[:, j].tolist()[:3] == [True, False, False] and ls.evaluable[:, j].tolist()[:3] == [True, True, False]


def test_cinc_ptbxl_records_grouped_by_patient(cinc_root, tmp_path):
    import pandas as pd

    db = tmp_path / "ptbxl_database.csv"
    pd.DataFrame({"ecg_id": [6000, 6001, 6002], "patient_id": [7.0, 7.0, 8.0]}).to_csv(db, index=False)
    ls = load_cinc2021(cinc_root, ptbxl_database=db)
    pid = dict(zip(ls.records, ls.patients))
    assert pid["HR06000"] == pid["HR06001"] == "ptbxl:7" and pid["HR06002"] == "ptbxl:8"
    assert pid["HR06003"] == "HR06003" and pid["E07500"] == "E07500"  # no id known: own group
    assert set(ls.sources) == {"HR", "E", "JS"}
    man = cinc2021_manifest(cinc_root, ptbxl_database=db).set_index("record")
    assert man.loc["HR06001", "patient_id"] == "ptbxl:7" and man.loc["E07500", "source"] == "E"


def test_mimic_iv_ecg_manifest(tmp_path):
    import pandas as pd

    pd.DataFrame({"subject_id": [1, 1, 2], "study_id": [10, 11, 12], "file_name": ["10", "11", "12"],
                  "path": ["files/p1/s10/10", "files/p1/s11/11", "files/p2/s12/12"]}).to_csv(tmp_path / "record_list.csv", index=False)
    pd.DataFrame({"study_id": [10, 12], "lvef": [35.0, 60.0]}).to_csv(tmp_path / "lvef.csv", index=False)
    m = mimic_iv_ecg_manifest(tmp_path)
    assert m["record"].tolist() == ["10", "11", "12"] and m["patient_id"].tolist() == ["1", "1", "2"]
    assert m["path"].iloc[0].endswith("files/p1/s10/10.hea")
    j = mimic_iv_ecg_manifest(tmp_path, tmp_path / "lvef.csv")
    assert j["record"].tolist() == ["10", "12"] and j["lvef"].tolist() == [35.0, 60.0]
    with pytest.raises(DatasetError, match="record_list.csv"):
        mimic_iv_ecg_manifest(tmp_path / "nowhere")
