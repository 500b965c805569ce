"""Age and sex as each reader takes them from what a file states: WFDB header comments (CinC's
``Age:``/``Sex:``, MIT-BIH's unlabelled ``# 69 M ...``), DICOM's PatientAge and PatientBirthDate,
EDF+'s patient field; one age rule (``_common.age_years``, ``stated_or_birth_age``) for all."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio

DATA = Path(__file__).resolve().parent.parent / "data"


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = eio.read(path, **kw)
    return rec, [str(w.message) for w in caught]


def _wfdb(tmp_path: Path, comments: list[str], name: str = "rec") -> Path:
    import wfdb

    d = np.random.default_rng(0).integers(-300, 300, size=(360, 2)).astype(np.int16)
    wfdb.wrsamp(name, fs=360, units=["mV"] * 2, sig_name=["MLII", "V5"], d_signal=d, fmt=["16"] * 2,
                adc_gain=[200.0] * 2, baseline=[0] * 2, comments=comments, write_dir=str(tmp_path))
    return tmp_path / f"{name}.hea"


def test_mitbih_leading_age_and_sex_comment_is_read():
    """MIT-BIH headers state age and sex unlabelled on their first comment line ('# 69 M 1085 1629
    x1'): record 100 was read with neither."""
    rec, said = _read(DATA / "mitdb" / "100.hea", max_duration=1)  # (its first comment is wfdb-python's '# unnecessary comment')
    assert rec.meta["age"] == 69.0 and rec.meta["sex"] == "M" and not said


@pytest.mark.parametrize("comments, want", [
    (["69 M 1085 1629 x1", "Aldomet, Inderal"], {"age": 69.0, "sex": "M"}),
    (["-1 F 1525 1629 x1"], {"sex": "F"}),  # age unknown, sex read
    (["? M 1085"], {"sex": "M"}),
    (["Aldomet, Inderal", "12 M ..."], {"age": 12.0, "sex": "M"}),  # words alone before it are passed over
    (["130 M 1085"], {}),  # not an age: not the form
    (["69 male 1085"], {}),  # second token not M/F
    (["Holter 24 h", "69 M"], {}),  # only the first line with a digit is the candidate
    (["Age: 60", "Sex: Female", "69 M 1085"], {"age": 60.0, "sex": "F"}),  # labelled comments win
    (["Age: 51  Sex: M"], {"age": 51.0, "sex": "M"}),  # both on one line
    (["Statement: patient age: 5"], {}),  # inside another comment: not an age
    (["Age: NaN", "Sex: Unknown"], {}),  # CinC's unknowns: neither nan nor None in meta
])
def test_wfdb_comment_age_and_sex_forms(tmp_path, comments, want):
    rec, said = _read(_wfdb(tmp_path, comments))
    assert {k: rec.meta[k] for k in ("age", "sex") if k in rec.meta} == want
    assert not said


def test_wfdb_comment_age_that_is_no_age_is_warned_not_read(tmp_path):
    """'Age: 300' (PTB-XL's code for over 89) and 'Age: inf' were read as 300 and inf years."""
    for text in ("300", "inf", "69 months"):
        rec, said = _read(_wfdb(tmp_path, [f"Age: {text}", "Sex: Male"], name="a" + str(len(text))))
        assert "age" not in rec.meta and rec.meta["sex"] == "M" and rec.meta["age_not_read"] == text
        assert any(f"'Age: {text}'" in m and "not an age in years" in m for m in said), said
    for k, text in enumerate(("69 years", "69y", "69 Yrs")):  # an age in years, saying so: read
        rec, said = _read(_wfdb(tmp_path, [f"Age: {text}", "Sex: Male"], name=f"y{k}"))
        assert rec.meta["age"] == 69 and "age_not_read" not in rec.meta and not said


def test_wfdb_stated_age_and_birth_date_follow_the_one_rule(tmp_path):
    """A header's 'Age:' and 'Birth date:' that disagree on the record line's date: the stated age is
    kept, said (as HL7, Sierra and DICOM do); a birth date alone gives the age."""
    hea = _wfdb(tmp_path, ["Age: 40", "Birth date: 1950-06-01"])
    hea.write_text(hea.read_text().replace("rec 2 360 360", "rec 2 360 360 10:00:00 01/03/2000", 1))
    rec, said = _read(hea)
    assert rec.meta["age"] == 40.0 and rec.meta["age_from_birth_date"] == 49.0
    assert any("header's age 40 years and the birth date 1950-06-01 (49 years" in m for m in said), said
    hea.write_text(hea.read_text().replace("# Age: 40\n", ""))
    rec, said = _read(hea)
    assert rec.meta["age"] == 49.0 and not said


# --------------------------------------------------------------------------------------- DICOM


def _dicom(tmp_path: Path, name: str, **fields) -> Path:
    import pydicom

    ds = pydicom.dcmread(str(DATA / "formats" / "dicom" / "mortara_eli250_anonymous_ecg.dcm"))
    for key, value in fields.items():  # (PatientAge 042Y, born 1971-01-23, acquired 2013-01-25)
        if value is None:
            delattr(ds, key)
        else:
            with warnings.catch_warnings():  # (pydicom's 'Invalid value for VR AS' for '069': the point)
                warnings.simplefilter("ignore", UserWarning)
                setattr(ds, key, value)
    ds.save_as(str(tmp_path / name))
    return tmp_path / name


def test_dicom_age_from_the_birth_date_when_no_patient_age(tmp_path):
    """DICOM read only PatientAge: the ECG Toolkit example (no PatientAge, born 1953-05-08, acquired
    2002-11-22) came back without an age; a file with only a StudyDate too."""
    rec, said = _read(DATA / "formats" / "dicom" / "ecgtoolkit_Example.dcm")
    assert rec.meta["age"] == 49.0 and not said
    f = _dicom(tmp_path, "study.dcm", PatientAge=None, AcquisitionDateTime=None, ContentDate=None, ContentTime=None)
    rec, said = _read(f)
    assert rec.meta["age"] == 42.0 and "acquired" not in rec.meta and not said


def test_dicom_patient_age_and_birth_date_that_disagree_keep_the_stated_age_and_say_so(tmp_path):
    rec, said = _read(_dicom(tmp_path, "same.dcm"))
    assert rec.meta["age"] == 42.0 and "age_from_birth_date" not in rec.meta and not said
    with pytest.warns(UserWarning, match=r"the PatientAge 30 years and the birth date 1971-01-23 \(42 years on the "
                      r"acquisition date 2013-01-25\) disagree; the PatientAge is used"):
        rec = eio.read(_dicom(tmp_path, "differ.dcm", PatientAge="030Y"))
    assert rec.meta["age"] == 30.0 and rec.meta["age_from_birth_date"] == 42.0


@pytest.mark.parametrize("text, want", [("006M", 0.5), ("069", 69.0), ("150Y", None)])
def test_dicom_patient_age_units_and_bounds(tmp_path, text, want):
    """'069' (no unit letter, not conformant) was read as 6 years; '150Y' as 150."""
    rec, said = _read(_dicom(tmp_path, "a.dcm", PatientAge=text, PatientBirthDate=None))
    assert rec.meta.get("age") == want
    assert (rec.meta.get("age_not_read") == text and any("PatientAge '150Y'" in m for m in said)) if want is None else not said


# --------------------------------------------------------------------------------------- EDF


def _edf(tmp_path: Path, name: str, labels=("ECG MLII", "ECG V5"), additional: str = "", birth=None) -> Path:
    import datetime as dt

    import pyedflib

    p = tmp_path / name
    w = pyedflib.EdfWriter(str(p), len(labels), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders([{"label": lab, "dimension": "uV", "sample_frequency": 250, "physical_min": -5000,
                             "physical_max": 5000, "digital_min": -32768, "digital_max": 32767, "transducer": "",
                             "prefilter": ""} for lab in labels])
        if additional:
            w.setPatientAdditional(additional)
        if birth:
            w.setBirthdate(birth)
        w.setStartdatetime(dt.datetime(2000, 3, 1, 10))
        w.writeSamples([np.linspace(-1000, 1000, 250) for _ in labels])
    finally:
        w.close()
    return p


def test_edf_modified_lead_label_is_named_in_meta_as_in_wfdb(tmp_path):
    """EDF turned 'ECG MLII' into II itself: meta['lead_names_from'] (set for WFDB's MLII) was missing."""
    rec, said = _read(_edf(tmp_path, "ml.edf", labels=("ECG MLII", "EKG V5", "ECG1")))
    assert rec.leads == ("II", "V5", "ECG1") and rec.meta["lead_names_from"] == {"II": "MLII"} and not said
    rec, _ = _read(_edf(tmp_path, "std.edf", labels=("ECG II", "Lead V5")))
    assert rec.leads == ("II", "V5") and "lead_names_from" not in rec.meta


def test_edf_stated_age_and_birth_date_follow_the_one_rule(tmp_path):
    """An EDF+ patient field stating age=40 and a birth date giving 49 on the start date: the birth
    date's 49 was taken without a word (the other readers keep the stated age and say so)."""
    import datetime as dt

    born = dt.date(1950, 6, 1)
    with pytest.warns(UserWarning, match=r"patient field's age 40 years and the birth date 1950-06-01 \(49 years on "
                      r"the acquisition date 2000-03-01\) disagree"):
        rec = eio.read(_edf(tmp_path, "both.edf", additional="age=40", birth=born))
    assert rec.meta["age"] == 40.0 and rec.meta["age_from_birth_date"] == 49.0
    rec, said = _read(_edf(tmp_path, "birth.edf", birth=born))
    assert rec.meta["age"] == 49.0 and not said
    rec, said = _read(_edf(tmp_path, "code.edf", additional="Age:_300", birth=born))  # not an age: the birth date's
    assert rec.meta["age"] == 49.0 and rec.meta["age_not_read"] == "300" and any("'300'" in m for m in said)
