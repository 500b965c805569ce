"""Ground truth of the PTB-XL layout and the CinC 2021 layout from the real records."""

from __future__ import annotations

import numpy as np
import pytest

from evalhelpers import CINC, HR_RECORDS, header_dx
from ecgfounder.eval.datasets import load_cinc2021, load_label_table, load_ptbxl


def test_load_ptbxl(ptbxl_root):
    ls = load_ptbxl(ptbxl_root)
    assert ls.records == tuple(str(int(r[2:])) for r in HR_RECORDS)
    assert all(p.endswith("_hr.hea") for p in ls.paths)
    col = {lab: j for j, lab in enumerate(ls.labels)}
    y = ls.y
    i = ls.records.index("6002")  # HR06002: sinus bradycardia, IRBBB, sinus rhythm
    assert y[i, col["SINUS BRADYCARDIA"]] and y[i, col["INCOMPLETE RIGHT BUNDLE BRANCH BLOCK"]]
    assert y[:, col["SINUS RHYTHM"]].all()
    assert y[:, col["SINUS TACHYCARDIA"]].sum() == 1
    assert "NORMAL ECG" in ls.labels and not y[:, col["NORMAL ECG"]].any()
    assert "ABNORMAL ECG" in ls.not_evaluable
    assert set(ls.folds.tolist()) >= {10} and (ls.folds < 10).any()
    assert ls.patients[ls.records.index("6004")] == ls.patients[ls.records.index("6005")]
    assert ls.unknown_codes == {}


def test_ptbxl_min_likelihood_drops_low_codes(ptbxl_root):
    ls = load_ptbxl(ptbxl_root, min_likelihood=50)  # rhythm codes have likelihood 0
    col = {lab: j for j, lab in enumerate(ls.labels)}
    assert not ls.y[:, col["SINUS RHYTHM"]].any()
    assert ls.y[:, col["NONSPECIFIC T WAVE ABNORMALITY"]].sum() == 1


def test_ptbxl_missing_database(tmp_path):
    with pytest.raises(FileNotFoundError, match="ptbxl_database.csv"):
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
    assert got == {"PREMATURE ATRIAL COMPLEXES", "RIGHT VENTRICULAR HYPERTROPHY", "SINUS TACHYCARDIA", "PREMATURE VENTRICULAR COMPLEXES"}


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
    assert ya.sum() == sum(len(header_dx(CINC / f"{r}.hea")) + (1 if "426783006" in header_dx(CINC / f"{r}.hea") else 0) for r in HR_RECORDS)


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
