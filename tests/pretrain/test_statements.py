"""Labels from interpretation statements: the vendor files' statements and hand-written hard cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import ecgfounder
from ecgfounder.pretrain.statements import (
    NEGATED, NONE, POSITIVE, UNCERTAIN, LabelReport, RuleError, default_rules, extract_record,
    extract_statement, load_rules,
)

FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
VENDOR_FILES = [
    "muse_xml/musePHI_muse_ecg1.xml", "muse_xml/musePHI_muse_ecg2.xml",
    "hl7_aecg/hl7_2003-12_example_aECG.xml", "hl7_aecg/cvrg_hl7aecg-Example2.xml",
    "dicom/mortara_eli250_anonymous_ecg.dcm", "dicom/ecgtoolkit_Example.dcm", "scp_ecg/ecgtoolkit_Example.scp",
    "sierra_xml/v1.03_129DYPRG.XML", "sierra_xml/v1.04.01_2020-5-18_15-48-11.xml",
    "sierra_xml/v1.04_3191723_ZZDEMOPTONLY_1-04_orig.xml",
]


def _vendor_statements() -> dict[str, list[str]]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in VENDOR_FILES:
            meta = ecgfounder.read(FORMATS / name).meta
            out[name] = list(meta.get("statements") or ()) + list(meta.get("original_statements") or ())
    return out


def test_every_vendor_statement_is_labelled_or_listed():
    rules = default_rules()
    report = LabelReport(rules.labels)
    all_statements = []
    for name, stmts in _vendor_statements().items():
        rec = extract_record(stmts, rules)
        report.add(rec)
        all_statements += stmts
    assert len(all_statements) >= 25
    d = report.to_dict()
    listed = {t for key in ("unmatched", "ignored", "prior") for t, _ in d[key]}
    for s in all_statements:
        r = extract_statement(s, rules)
        assert r.status == "labelled" or s in listed, s
    assert d["n_statements"] == len(all_statements)
    # what the vendor files say, checked label by label
    unmatched = {t for t, _ in d["unmatched"]}
    assert {"RITMO SINUSALE", "ECG NORMALE", "Statement Text(22)"} <= unmatched
    assert any("R-wave progression" in t for t in unmatched)
    assert d["per_label"]["SINUS RHYTHM"]["positive"] == 3  # HL7 Clark + the two Sierra 1.04 files
    assert any(t.startswith("Previous ECG has undetermined rhythm") for t, _ in d["prior"])
    assert any(t.startswith("Confirmed by") for t, _ in d["ignored"])


@pytest.mark.parametrize(
    "statement, expected",
    [
        # vendor statements
        ("Ventricular-paced rhythm", {"VENTRICULAR-PACED RHYTHM": POSITIVE}),
        ("Non-specific intra-ventricular conduction block", {"NONSPECIFIC INTRAVENTRICULAR BLOCK": POSITIVE}),
        ("Lateral infarct , age undetermined", {"LATERAL INFARCT": POSITIVE}),
        ("Nonspecific intraventricular conduction delay QRSd >115mS, not LBBB/RBBB",
         {"NONSPECIFIC INTRAVENTRICULAR CONDUCTION DELAY": POSITIVE, "LEFT BUNDLE BRANCH BLOCK": NEGATED,
          "RIGHT BUNDLE BRANCH BLOCK": NEGATED}),
        ("PROBABLE LEFT VENTRICULAR HYPERTROPHY (RaVL+SV3)xQRSd >280", {"LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("ANTERIOR ST ELEVATION, PROBABLY DUE TO LVH ST >0.20 mV in V1-V4 & LVH",
         {"ANTERIOR INJURY PATTERN": POSITIVE, "LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("Inferior infarct, acute (LCx) ST>0.10mV, II III aVF", {"INFERIOR INFARCT": POSITIVE, "ACUTE": POSITIVE}),
        (">>> Acute MI <<<", {"ACUTE MI": POSITIVE}),
        # hand-written hard cases
        ("Normal sinus rhythm", {"NORMAL SINUS RHYTHM": POSITIVE}),  # longest match, not also SINUS RHYTHM
        ("Marked sinus bradycardia", {"MARKED SINUS BRADYCARDIA": POSITIVE}),
        ("Atrial fibrillation with rapid ventricular response",
         {"ATRIAL FIBRILLATION": POSITIVE, "WITH RAPID VENTRICULAR RESPONSE": POSITIVE}),
        ("No evidence of atrial fibrillation", {"ATRIAL FIBRILLATION": NEGATED}),
        ("Atrial fibrillation is no longer present", {"ATRIAL FIBRILLATION": NEGATED}),
        ("Atrial flutter has resolved", {"ATRIAL FLUTTER": NEGATED}),
        ("Atrial fibrillation is now present", {"ATRIAL FIBRILLATION": POSITIVE}),
        ("Atrial fibrillation has replaced sinus rhythm", {"ATRIAL FIBRILLATION": POSITIVE, "SINUS RHYTHM": NEGATED}),
        ("Sinus rhythm has been replaced by atrial fibrillation",
         {"SINUS RHYTHM": NEGATED, "ATRIAL FIBRILLATION": POSITIVE}),
        ("Cannot rule out anterior infarct", {"ANTERIOR INFARCT": UNCERTAIN}),
        ("Consider left ventricular hypertrophy", {"LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("Possible septal infarct", {"SEPTAL INFARCT": UNCERTAIN}),
        ("Septal infarct, cannot be excluded", {"SEPTAL INFARCT": POSITIVE}),  # the cue is in another clause
        ("Septal infarct cannot be excluded", {"SEPTAL INFARCT": UNCERTAIN}),
        # label phrases that contain cue words stay themselves
        ("ST no longer depressed in inferior leads", {"ST NO LONGER DEPRESSED IN": POSITIVE}),
        ("T wave inversion now evident in lateral leads", {"T WAVE INVERSION NOW EVIDENT IN": POSITIVE}),
        ("Nonspecific T wave abnormality no longer evident in anterior leads",
         {"NONSPECIFIC T WAVE ABNORMALITY NO LONGER EVIDENT IN": POSITIVE}),
        ("ST elevation has replaced ST depression in inferior leads",
         {"ST ELEVATION HAS REPLACED ST DEPRESSION IN": POSITIVE}),
        ("Consider right ventricular involvement in acute inferior infarct",
         {"CONSIDER RIGHT VENTRICULAR INVOLVEMENT IN ACUTE INFERIOR INFARCT": POSITIVE}),
        ("No P-waves found", {"NO P-WAVES FOUND": POSITIVE}),
        ("Sinus rhythm with 1st degree A-V block", {"SINUS RHYTHM": POSITIVE, "WITH 1ST DEGREE AV BLOCK": POSITIVE}),
        ("Sinus rhythm with 1st degree AV block", {"SINUS RHYTHM": POSITIVE, "WITH 1ST DEGREE AV BLOCK": POSITIVE}),
        ("LVH with repolarization abnormality",
         {"LEFT VENTRICULAR HYPERTROPHY": POSITIVE, "WITH REPOLARIZATION ABNORMALITY": POSITIVE}),
    ],
)
def test_statement_states(statement, expected):
    assert extract_statement(statement).states == expected


def test_record_precedence_and_encoding():
    rec = extract_record([
        "Possible atrial fibrillation", "Atrial fibrillation",  # positive beats uncertain
        "Probable LVH", "No evidence of LVH",  # uncertain beats negated
        "Not RBBB",
        "Previous ECG has atrial flutter",  # about the earlier ECG: no label
        "", "Confirmed by X",
    ])
    assert rec.states == {"ATRIAL FIBRILLATION": POSITIVE, "LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN,
                          "RIGHT BUNDLE BRANCH BLOCK": NEGATED}
    labels = default_rules().labels
    v = rec.encode(labels)
    assert v.dtype.name == "int8" and v.shape == (150,)
    assert v[labels.index("ATRIAL FIBRILLATION")] == POSITIVE and v[labels.index("ATRIAL FLUTTER")] == NONE
    assert [r.status for r in rec.statements] == ["labelled"] * 5 + ["prior", "ignored"]


def test_custom_rule_set(tmp_path):
    p = tmp_path / "rules.csv"
    p.write_text("label,pattern,kind\nSINUS,phrase:ritmo sinusale,\nSINUS,phrase:sinus rhythm,\nNORMAL,ecg normale?,\n"
                 ",ecg of .*,ignore\n", encoding="utf-8")
    rules = load_rules(p)
    assert rules.labels == ("SINUS", "NORMAL")
    rec = extract_record(["RITMO SINUSALE", "ECG NORMALE", "nessun ritmo sinusale"], rules)
    # 'nessun' is not an English cue: the rule set is only as multilingual as its patterns
    assert rec.states == {"SINUS": POSITIVE, "NORMAL": POSITIVE}
    auto = load_rules(p, labels=("SINUS", "NORMAL", "PACED"), auto_phrases=True)
    assert extract_statement("Paced", auto).states == {"PACED": POSITIVE}
    bad = tmp_path / "bad.csv"
    bad.write_text("label,pattern\nX,(unclosed\n", encoding="utf-8")
    with pytest.raises(RuleError, match="row 2"):
        load_rules(bad)
    with pytest.raises(RuleError, match="not in the label set"):
        load_rules(p, labels=("SINUS",))


@pytest.mark.parametrize(
    "statement, expected",
    [
        # a wrong label: "Incomplete RBBB" was RIGHT BUNDLE BRANCH BLOCK (the rbbb abbreviation)
        ("Incomplete RBBB", {"INCOMPLETE RIGHT BUNDLE BRANCH BLOCK": POSITIVE}),
        ("IRBBB", {"INCOMPLETE RIGHT BUNDLE BRANCH BLOCK": POSITIVE}),
        ("Incomplete LBBB", {"INCOMPLETE LEFT BUNDLE BRANCH BLOCK": POSITIVE}),
        # a comparison statement's own findings were consumed by the ignore rule up to its end
        ("When compared with ECG of 01-JAN-2020 10:00, atrial fibrillation has replaced sinus rhythm",
         {"ATRIAL FIBRILLATION": POSITIVE, "SINUS RHYTHM": NEGATED}),
        ("Compared to previous tracing atrial flutter is no longer present", {"ATRIAL FLUTTER": NEGATED}),
        # MUSE's own spelling "A-V", "S-A"
        ("Atrial flutter with 2:1 A-V conduction", {"ATRIAL FLUTTER": POSITIVE, "WITH 2:1 AV CONDUCTION": POSITIVE}),
        ("Sinus rhythm with 2nd degree S-A block Mobitz I",
         {"SINUS RHYTHM": POSITIVE, "WITH 2ND DEGREE SA BLOCK MOBITZ I": POSITIVE}),
        # "WITH X" labels stated alone, "... COMPLEXES" labels in the singular
        ("Sinus arrhythmia", {"WITH SINUS ARRHYTHMIA": POSITIVE}),
        ("Marked sinus arrhythmia", {"WITH MARKED SINUS ARRHYTHMIA": POSITIVE}),
        ("A-V dissociation", {"WITH AV DISSOCIATION": POSITIVE}),
        ("Premature ventricular complex", {"PREMATURE VENTRICULAR COMPLEXES": POSITIVE}),
        # frequent synonyms and abbreviations (PTB-XL SCP descriptions, CinC SNOMED names, vendor text)
        ("Sinus rhythm with occasional PVC", {"SINUS RHYTHM": POSITIVE, "PREMATURE VENTRICULAR COMPLEXES": POSITIVE}),
        ("Frequent PVC's", {"PREMATURE VENTRICULAR COMPLEXES": POSITIVE}),
        ("ventricular premature complex", {"PREMATURE VENTRICULAR COMPLEXES": POSITIVE}),
        ("atrial premature complex", {"PREMATURE ATRIAL COMPLEXES": POSITIVE}),
        ("supraventricular premature beats", {"PREMATURE SUPRAVENTRICULAR COMPLEXES": POSITIVE}),
        ("inferior myocardial infarction", {"INFERIOR INFARCT": POSITIVE}),
        ("Old anterior MI", {"ANTERIOR INFARCT": POSITIVE}),
        ("inferoposterior myocardial infarction", {"INFERIOR-POSTERIOR INFARCT": POSITIVE}),
        ("Antero-lateral infarct", {"ANTEROLATERAL INFARCT": POSITIVE}),  # was LATERAL INFARCT
        ("left atrial overload/enlargement", {"LEFT ATRIAL ENLARGEMENT": POSITIVE}),
        ("Right atrial abnormality", {"RIGHT ATRIAL ENLARGEMENT": POSITIVE}),
        ("low QRS voltages in the frontal and horizontal leads", {"LOW VOLTAGE QRS": POSITIVE}),
        ("Nonspecific ST-T abnormality", {"NONSPECIFIC ST AND T WAVE ABNORMALITY": POSITIVE}),
        ("Wolf-Parkinson-White syndrome", {"WOLFF-PARKINSON-WHITE": POSITIVE}),
        ("Prolonged QTc", {"PROLONGED QT": POSITIVE}),
        ("atrioventricular dissociation", {"WITH AV DISSOCIATION": POSITIVE}),
        ("non-specific intraventricular conduction disturbance (block)",
         {"NONSPECIFIC INTRAVENTRICULAR CONDUCTION DELAY": POSITIVE}),
        ("shortened pr interval", {"WITH SHORT PR": POSITIVE}),
        ("fusion beats", {"FUSION COMPLEXES": POSITIVE}),
        ("left atrial hypertrophy", {"LEFT ATRIAL ENLARGEMENT": POSITIVE}),
        ("AF with RVR", {"ATRIAL FIBRILLATION": POSITIVE, "WITH RAPID VENTRICULAR RESPONSE": POSITIVE}),
        ("Consider acute ST elevation MI", {"ACUTE": UNCERTAIN, "ACUTE MI / STEMI": UNCERTAIN}),
        # uncertainty and comparison cues after the finding
        ("LVH not excluded", {"LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("LVH not ruled out", {"LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("Atrial fibrillation likely", {"ATRIAL FIBRILLATION": UNCERTAIN}),
        # a cue opening a later finding is that finding's, not the one before it (both were uncertain)
        ("Sinus rhythm with possible atrial fibrillation", {"SINUS RHYTHM": POSITIVE, "ATRIAL FIBRILLATION": UNCERTAIN}),
        ("Normal sinus rhythm with probable left ventricular hypertrophy",
         {"NORMAL SINUS RHYTHM": POSITIVE, "LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("LVH and RVH possible", {"LEFT VENTRICULAR HYPERTROPHY": UNCERTAIN, "RIGHT VENTRICULAR HYPERTROPHY": UNCERTAIN}),
        ("Sinus rhythm replaced atrial fibrillation", {"SINUS RHYTHM": POSITIVE, "ATRIAL FIBRILLATION": NEGATED}),
    ],
)
def test_statements_the_rules_got_wrong_or_missed(statement, expected):
    """Found on the PTB-XL SCP statements, the CinC 2021 SNOMED names and MUSE wording: each was
    unmatched, or given a wrong label or state."""
    assert extract_statement(statement).states == expected
