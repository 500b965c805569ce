"""The SCP-ECG and SNOMED-CT mappings to the 150 labels: every row pinned, and each scoring rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgfounder.labels import load_labels
from ecgfounder.labels.composites import COMPOSITES, build_targets, composite_scores, target_truth
from ecgfounder.labels.mappings import (
    CATEGORIES,
    MAPPED_RELATIONS,
    RELATIONS,
    LabelMapping,
    MappingRow,
    label_categories,
    ptbxl_mapping,
    snomed_mapping,
)
from mapping_pins import PTBXL_ROWS, SNOMED_ROWS

LABELS_DIR = Path(__file__).resolve().parents[1] / "data" / "eval" / "labels"


def _rows(mapping):
    return [(r.code, r.label, r.relation, r.candidates) for r in mapping.rows]


def _pinned(rows, mapping):
    out = []
    for code, label, relation, cands in rows:
        expanded = []
        for tok in (t.strip() for t in cands.split(";") if t.strip()):
            if tok.startswith("category:"):
                expanded += [lab for lab, c in label_categories().items() if c == tok.split(":", 1)[1]]
            else:
                expanded.append(tok)
        out.append((code, label, relation, tuple(dict.fromkeys(expanded))))
    return out


@pytest.mark.parametrize("mapping,pins", [(ptbxl_mapping(), PTBXL_ROWS), (snomed_mapping(), SNOMED_ROWS)], ids=["ptbxl", "snomed"])
def test_every_row_is_pinned(mapping, pins):
    """Any change to a row (e.g. LVH → RVH, 63593006 → PVC) fails here, naming the row."""
    got, want = _rows(mapping), _pinned(pins, mapping)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, f"mapping row changed: {g} != pinned {w}"


@pytest.mark.parametrize(
    "mapping,code,labels",
    [
        (ptbxl_mapping(), "LVH", {"LEFT VENTRICULAR HYPERTROPHY"}),
        (ptbxl_mapping(), "RVH", {"RIGHT VENTRICULAR HYPERTROPHY"}),
        (snomed_mapping(), "164873001", {"LEFT VENTRICULAR HYPERTROPHY"}),
        (snomed_mapping(), "63593006", {"PREMATURE SUPRAVENTRICULAR COMPLEXES"}),
        (snomed_mapping(), "427172004", {"PREMATURE VENTRICULAR COMPLEXES"}),
        # every bigeminy is also its premature complexes (supraventricular used to be a negative of them)
        (snomed_mapping(), "251173003", {"IN A PATTERN OF BIGEMINY", "PREMATURE ATRIAL COMPLEXES"}),
        (snomed_mapping(), "251168009", {"IN A PATTERN OF BIGEMINY", "PREMATURE SUPRAVENTRICULAR COMPLEXES"}),
        (snomed_mapping(), "11157007", {"IN A PATTERN OF BIGEMINY", "PREMATURE VENTRICULAR COMPLEXES"}),
        (ptbxl_mapping(), "ILMI", {"INFERIOR INFARCT", "LATERAL INFARCT"}),
        (ptbxl_mapping(), "SR", {"SINUS RHYTHM", "NORMAL SINUS RHYTHM"}),
        (ptbxl_mapping(), "NORM", {"NORMAL ECG", "otherwise normal ecg"}),
    ],
)
def test_key_rows_by_meaning(mapping, code, labels):
    assert set(mapping.labels_for(code)) == labels


def test_every_ptbxl_statement_and_axis_value_is_listed():
    official = set(pd.read_csv(LABELS_DIR / "ptbxl_scp_statements.csv").iloc[:, 0])
    assert len(official) == 71
    codes = set(ptbxl_mapping().codes)
    axis = {c for c in codes if c.startswith("heart_axis:")}
    assert codes - axis == official
    assert axis == {f"heart_axis:{v}" for v in ("LAD", "ALAD", "AXL", "RAD", "ARAD", "AXR", "SUP", "MID", "")}


def test_every_cinc2021_code_is_listed():
    codes = set()
    for f in ("snomed_dx_mapping_scored.csv", "snomed_dx_mapping_unscored.csv"):
        codes |= set(pd.read_csv(LABELS_DIR / f, dtype=str)["SNOMEDCTCode"])
    assert set(snomed_mapping().codes) == codes


@pytest.mark.parametrize("mapping", [ptbxl_mapping(), snomed_mapping()], ids=["ptbxl", "snomed"])
def test_rows_are_well_formed(mapping):
    labels = set(load_labels())
    for r in mapping.rows:
        assert r.relation in RELATIONS and r.rationale.strip(), r.code
        assert (r.label in labels) if r.relation in MAPPED_RELATIONS else r.label == ""
        assert set(r.candidates) <= labels
        if r.relation == "ambiguous":
            assert r.candidates, f"ambiguous {r.code} names no candidate labels"
        if r.relation == "unmapped":
            assert not r.candidates
    assert set(mapping.mapped_labels) | set(mapping.unmappable_labels()) == labels


def test_ambiguous_rows_must_name_candidates():
    with pytest.raises(ValueError, match="names no candidate"):
        LabelMapping("x", (MappingRow("c", "d", "", "ambiguous", "why"),))
    with pytest.raises(ValueError, match="not among the 150"):
        LabelMapping("x", (MappingRow("c", "d", "", "ambiguous", "why", ("NOT A LABEL",)),))


def test_unspecified_infarct_is_not_a_negative_for_any_wall():
    """Bar: a record whose only code is 164865005 is not evaluable for ANTERIOR or INFERIOR INFARCT."""
    cols = ["ANTERIOR INFARCT", "INFERIOR INFARCT", "ATRIAL FIBRILLATION"]
    y, ev, _ = snomed_mapping().truth([["164865005"], ["164865005", "54329005"], ["164889003"]], cols)
    assert not y[0].any() and ev[0].tolist() == [False, False, True]
    assert y[1].tolist() == [True, False, False] and ev[1].tolist() == [True, False, True]  # a positive always counts
    assert ev[2].all()


@pytest.mark.parametrize("mapping,tinv,qwave", [(snomed_mapping(), "59931005", "164917005"), (ptbxl_mapping(), "INVT", "QWAVE")])
def test_t_wave_inversion_and_q_waves_are_no_negatives_of_the_labels_they_could_be(mapping, tinv, qwave):
    """T-wave inversion and abnormal Q waves (CinC 2021: 3,989 and 2,076 records) have no label of their
    own and were unmapped, so their records counted as clean negatives of the T-wave and infarct labels
    a reader would report them as; they are now left out of those labels' negatives only."""
    cols = ["NONSPECIFIC T WAVE ABNORMALITY", "NONSPECIFIC ST AND T WAVE ABNORMALITY", "WITH REPOLARIZATION ABNORMALITY",
            "INFERIOR INFARCT", "ANTERIOR INFARCT", "POSTERIOR INFARCT", "ATRIAL FIBRILLATION"]
    af = mapping.rows[[r.label for r in mapping.rows].index("ATRIAL FIBRILLATION")].code
    y, ev, unknown = mapping.truth([[tinv], [qwave], [tinv, af]], cols)
    assert not unknown and y.tolist()[:2] == [[False] * 7] * 2
    assert ev[0].tolist() == [False, False, False, True, True, True, True]  # T-wave labels: unknown
    assert ev[1].tolist() == [True, True, True, False, False, True, True]  # infarcts with Q waves: unknown
    assert y[2, 6] and ev[2, 6]  # another code's positive still counts


@pytest.mark.parametrize(
    "mapping,code,label",
    [
        (snomed_mapping(), "10370003", "VENTRICULAR-PACED RHYTHM"),
        (snomed_mapping(), "6374002", "RIGHT BUNDLE BRANCH BLOCK"),
        (snomed_mapping(), "6374002", "LEFT BUNDLE BRANCH BLOCK"),
        (snomed_mapping(), "426627000", "SINUS BRADYCARDIA"),
        (snomed_mapping(), "429622005", "NONSPECIFIC ST ABNORMALITY"),
        (snomed_mapping(), "282825002", "ATRIAL FIBRILLATION"),
        (ptbxl_mapping(), "HVOLT", "VOLTAGE CRITERIA FOR LEFT VENTRICULAR HYPERTROPHY"),
        (ptbxl_mapping(), "SVARR", "PREMATURE ATRIAL COMPLEXES"),
        (ptbxl_mapping(), "IPMI", "INFERIOR INFARCT"),
        (ptbxl_mapping(), "heart_axis:", "LEFT AXIS DEVIATION"),
    ],
)
def test_issue_codes_exclude_their_candidates(mapping, code, label):
    """The codes the review found counted as negatives are now left out of those labels' negatives."""
    y, ev, _ = mapping.truth([[code]], [label])
    assert not y[0, 0] and not ev[0, 0]


def test_inconsistencies_resolved_one_way():
    sn, pt = snomed_mapping(), ptbxl_mapping()
    assert sn.labels_for("251223006") == sn.labels_for("67751000119106") == ("RIGHT ATRIAL ENLARGEMENT",)  # tall P = RA high voltage
    assert sn.labels_for("282825002") == ()  # paroxysmal AF: a diagnosis, not a tracing
    assert pt.labels_for("heart_axis:LAD") == ("LEFT AXIS DEVIATION",) and pt.labels_for("heart_axis:MID") == ()
    pac = next(c for c in COMPOSITES if "PREMATURE ATRIAL COMPLEXES" in c.members)
    assert set(sn.labels_for("284470004")) | set(sn.labels_for("63593006")) <= set(pac.members)  # one CinC class, one target
    for multi in ("IPMI", "IPLMI", "ASMI", "ALMI"):  # multi-wall rule: single walls are candidates
        assert pt.candidates_for(multi) and not set(pt.candidates_for(multi)) & set(pt.labels_for(multi))


def test_composites_are_disjoint_and_scored_by_max():
    members = [m for c in COMPOSITES for m in c.members]
    assert len(members) == len(set(members)) and set(members) <= set(load_labels())
    labels = ["SINUS RHYTHM", "ATRIAL FIBRILLATION", "NORMAL SINUS RHYTHM"]
    targets = build_targets(labels)
    assert targets == {"SINUS RHYTHM (either wording)": ("SINUS RHYTHM", "NORMAL SINUS RHYTHM"), "ATRIAL FIBRILLATION": ("ATRIAL FIBRILLATION",)}
    s = np.array([[0.2, 0.5, 0.9], [0.7, 0.1, 0.3]])
    assert composite_scores(s, labels, targets).tolist() == [[0.9, 0.5], [0.7, 0.1]]
    y = np.array([[True, False, True], [False, False, False]])
    ev = np.array([[True, True, True], [True, True, False]])
    yt, et = target_truth(y, ev, labels, targets)
    assert yt.tolist() == [[True, False], [False, False]] and et.tolist() == [[True, True], [False, True]]


def test_unknown_codes_are_reported_not_dropped():
    y, unknown = ptbxl_mapping().matrix([["AFIB", "XYZ"], ["SR"], ["XYZ"]], ["ATRIAL FIBRILLATION", "SINUS RHYTHM"])
    assert y.tolist() == [[True, False], [False, True], [False, False]]
    assert unknown == {"XYZ": 2}


def test_every_label_has_a_category():
    cats = label_categories()
    assert list(cats) == list(load_labels())
    assert set(cats.values()) <= set(CATEGORIES)
    assert cats["ATRIAL FIBRILLATION"] == "rhythm" and cats["RIGHT BUNDLE BRANCH BLOCK"] == "conduction"
    assert cats["INFERIOR INFARCT"] == "ischaemia/infarction" and cats["ELECTRONIC VENTRICULAR PACEMAKER"] == "pacing"


def test_rows_with_an_unquoted_comma_are_refused_not_cut():
    """57054005's rationale held an unquoted comma: csv.DictReader set its tail aside (key None) and
    the row loaded with half a rationale; a ragged row is now refused."""
    from ecgfounder.labels.errors import LabelError
    from ecgfounder.labels.mappings import _parse_csv

    (row,) = [r for r in snomed_mapping().rows if r.code == "57054005" and r.label == "ACUTE MI / STEMI"]
    assert row.rationale.endswith("(MUSE may word an acute infarct by them).")
    with pytest.raises(LabelError, match=r"t.csv: data row 1 \('X'\) has 3 fields, the header 2; quote the field"):
        _parse_csv("code,rationale\nX,a, b\n", "t.csv")
