"""The SCP-ECG and SNOMED-CT mappings to the 150 labels, and the label categories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ecgfounder.labels import load_labels
from ecgfounder.labels.mappings import (
    CATEGORIES,
    MAPPED_RELATIONS,
    RELATIONS,
    label_categories,
    parse_scp_codes,
    ptbxl_mapping,
    snomed_mapping,
)

LABELS_DIR = Path(__file__).resolve().parents[1] / "data" / "eval" / "labels"


@pytest.mark.parametrize(
    "code,labels",
    [
        ("AFIB", {"ATRIAL FIBRILLATION"}),
        ("CRBBB", {"RIGHT BUNDLE BRANCH BLOCK"}),
        ("CLBBB", {"LEFT BUNDLE BRANCH BLOCK"}),
        ("NORM", {"NORMAL ECG"}),
        ("SBRAD", {"SINUS BRADYCARDIA"}),
        ("STACH", {"SINUS TACHYCARDIA"}),
        ("1AVB", {"WITH 1ST DEGREE AV BLOCK"}),
        ("IRBBB", {"INCOMPLETE RIGHT BUNDLE BRANCH BLOCK"}),
        ("3AVB", {"WITH COMPLETE HEART BLOCK"}),
        ("ILMI", {"INFERIOR INFARCT", "LATERAL INFARCT"}),
        ("SR", {"SINUS RHYTHM", "NORMAL SINUS RHYTHM"}),
        ("2AVB", set()),  # type unknown: ambiguous, not guessed
        ("PACE", set()),  # pacing mode unknown
    ],
)
def test_ptbxl_known_cases(code, labels):
    assert set(ptbxl_mapping().labels_for(code)) == labels


@pytest.mark.parametrize(
    "code,labels",
    [
        ("164889003", {"ATRIAL FIBRILLATION"}),
        ("59118001", {"RIGHT BUNDLE BRANCH BLOCK"}),
        ("713427006", {"RIGHT BUNDLE BRANCH BLOCK"}),
        ("426177001", {"SINUS BRADYCARDIA"}),
        ("427084000", {"SINUS TACHYCARDIA"}),
        ("164909002", {"LEFT BUNDLE BRANCH BLOCK"}),
        ("733534002", {"LEFT BUNDLE BRANCH BLOCK"}),
        ("270492004", {"WITH 1ST DEGREE AV BLOCK"}),
        ("314208002", {"ATRIAL FIBRILLATION", "WITH RAPID VENTRICULAR RESPONSE"}),
        ("6374002", set()),  # bundle branch block, side unknown
        ("426627000", set()),  # bradycardia, origin unknown
    ],
)
def test_snomed_known_cases(code, labels):
    assert set(snomed_mapping().labels_for(code)) == labels


def test_every_ptbxl_statement_is_listed():
    official = set(pd.read_csv(LABELS_DIR / "ptbxl_scp_statements.csv").iloc[:, 0])
    assert len(official) == 71
    assert set(ptbxl_mapping().codes) == official


def test_every_cinc2021_code_is_listed():
    codes = set()
    for f in ("snomed_dx_mapping_scored.csv", "snomed_dx_mapping_unscored.csv"):
        codes |= set(pd.read_csv(LABELS_DIR / f, dtype=str)["SNOMEDCTCode"])
    assert set(snomed_mapping().codes) == codes


@pytest.mark.parametrize("mapping", [ptbxl_mapping(), snomed_mapping()], ids=["ptbxl", "snomed"])
def test_rows_are_well_formed(mapping):
    labels = set(load_labels())
    for r in mapping.rows:
        assert r.relation in RELATIONS
        assert r.rationale.strip(), f"{r.code} has no rationale"
        if r.relation in MAPPED_RELATIONS:
            assert r.label in labels
        else:
            assert r.label == ""
    # unmapped codes are listed explicitly with their reasons
    left = mapping.unmapped_codes()
    assert left and all(r.relation in ("ambiguous", "unmapped") for r in left)
    assert set(mapping.mapped_labels) | set(mapping.unmappable_labels()) == labels


def test_unknown_codes_are_reported_not_dropped():
    y, unknown = ptbxl_mapping().matrix([["AFIB", "XYZ"], ["SR"], ["XYZ"]], ["ATRIAL FIBRILLATION", "SINUS RHYTHM"])
    assert y.tolist() == [[True, False], [False, True], [False, False]]
    assert unknown == {"XYZ": 2}


def test_every_label_has_a_category():
    cats = label_categories()
    assert list(cats) == list(load_labels())
    assert set(cats.values()) <= set(CATEGORIES)
    assert cats["ATRIAL FIBRILLATION"] == "rhythm"
    assert cats["RIGHT BUNDLE BRANCH BLOCK"] == "conduction"
    assert cats["LEFT VENTRICULAR HYPERTROPHY"] == "hypertrophy/enlargement"
    assert cats["INFERIOR INFARCT"] == "ischaemia/infarction"
    assert cats["ELECTRONIC VENTRICULAR PACEMAKER"] == "pacing"
    assert cats["PREMATURE VENTRICULAR COMPLEXES"] == "ectopy"
    assert cats["LEFT AXIS DEVIATION"] == "axis"


def test_parse_scp_codes():
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    assert parse_scp_codes("") == {}
    with pytest.raises(ValueError, match="dict"):
        parse_scp_codes("['NORM']")
    with pytest.raises(ValueError, match="not a dict literal"):
        parse_scp_codes("__import__('os')")
