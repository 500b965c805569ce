"""What a reader changed or passed over is said in the recording's ``meta`` (and, where data are
lost or chosen, in a warning): a modified lead read as the standard one (WFDB's MLII), a DICOM
median-beat group cut short by a truncated file, a lead stored twice, a stated age and a birth date
that disagree."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError

FORMATS = Path(__file__).resolve().parent.parent / "data" / "formats"


def _quiet_read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = eio.read(path, **kw)
    return rec, [str(w.message) for w in caught]


def test_a_modified_lead_read_as_the_standard_one_is_named_in_meta(tmp_path):
    """MIT-BIH's MLII (modified lead II, torso electrodes) is read as II: nothing said so."""
    counts = np.random.default_rng(0).integers(-500, 500, size=(720, 3), dtype="<i2")
    counts.tofile(tmp_path / "rec.dat")  # (a WFDB format-16 record, written as wfdb.wrsamp writes it)
    (tmp_path / "rec.hea").write_text("rec 3 360 720\n" + "".join(
        f"rec.dat 16 200/mV 16 0 0 0 0 {name}\n" for name in ("MLII", "V5", "aVR")))
    rec, _ = _quiet_read(tmp_path / "rec.hea")
    assert rec.leads[:2] == ("II", "V5") and np.array_equal(rec.lead("II"), counts[:, 0] / 200)
    assert rec.meta["lead_names_from"] == {"II": "MLII"}  # (V5, aVR: the file's own names)
    (tmp_path / "rec.hea").write_text("rec 3 360 720\n" + "".join(
        f"rec.dat 16 200/mV 16 0 0 0 0 {name}\n" for name in ("II", "v5", "avr")))
    assert "lead_names_from" not in _quiet_read(tmp_path / "rec.hea")[0].meta  # a spelling is no rename
    # a CSV's header (the array readers named their leads before make_recording saw the file's names)
    np.savetxt(tmp_path / "rec.csv", counts / 200, delimiter=",", header="MLII,V5,aVR", comments="")
    rec, _ = _quiet_read(tmp_path / "rec.csv", fs=360)
    assert rec.leads[:2] == ("II", "V5") and rec.meta["lead_names_from"] == {"II": "MLII"}


def test_a_dicom_cut_inside_its_median_beat_group_reads_its_rhythm_and_says_so(tmp_path):
    """A file ending inside the second (median-beat) waveform group read without a word; the rhythm
    group before it is whole and is still read (a cut rhythm group is refused)."""
    import pydicom

    src = FORMATS / "dicom" / "ecgtoolkit_Example.dcm"  # (defined-length sequences: pydicom reads a cut file)
    data, whole = src.read_bytes(), eio.read(src)
    median = bytes(pydicom.dcmread(str(src)).WaveformSequence[1].WaveformData)
    start = data.index(median[:64])
    for end, have in ((start + len(median) // 2, len(median) // 2), (start - 4, 0)):
        cut = tmp_path / f"cut{end}.dcm"
        cut.write_bytes(data[:end])
        with pytest.warns(UserWarning, match=rf"truncated file: it ends inside waveform group 1 \(MEDIAN BEAT; {have} "
                          rf"of {len(median)} bytes.*not read; group 0 \(RHYTHM\) is whole and read"):
            rec = eio.read(cut)
        assert rec.meta["incomplete_groups"] == ("MEDIAN BEAT",) and rec.meta["multiplex_group"] == "RHYTHM"
        np.testing.assert_array_equal(rec.signal, whole.signal)
    assert "incomplete_groups" not in whole.meta
    with pytest.raises(RecordReadError, match=r"group 1 holds \d+ bytes of waveform data, 14400 declared"):
        eio.read(cut, group="MEDIAN BEAT")


def test_a_muse_lead_stored_twice_says_which_copy_is_kept_and_whether_they_differ(tmp_path):
    """Two leads stored twice, one an identical copy and one a different signal: the warning called
    both 'different' (one word for all), and meta did not say which differed."""
    import re

    src = FORMATS / "muse_xml" / "musePHI_muse_ecg1.xml"
    text = src.read_bytes().decode("latin-1")
    rhythm = text.index("<WaveformType>Rhythm</WaveformType>")
    blocks = {re.search(r"<LeadID>(\w+)</LeadID>", m.group(0)).group(1): m
              for m in re.finditer(r"<LeadData>.*?</LeadData>", text[rhythm:], re.S)}
    again = blocks["I"].group(0) + blocks["V1"].group(0).replace("<LeadID>V1</LeadID>", "<LeadID>II</LeadID>")
    end = rhythm + blocks["V6"].end()
    f = tmp_path / "twice.xml"
    f.write_bytes((text[:end] + again + text[end:]).encode("latin-1"))
    whole = eio.read(src)
    with pytest.warns(UserWarning, match=r"lead\(s\) I stored more than once \(identical signals\); lead\(s\) II stored "
                      r"more than once \(different signals\); the first of each is kept"):
        rec = eio.read(f)
    assert rec.meta["duplicate_leads"] == ("I", "II") and rec.meta["duplicate_leads_differ"] == ("II",)
    assert rec.leads == whole.leads
    np.testing.assert_array_equal(rec.lead("II"), whole.lead("II"))  # the first copy, not V1's samples


def test_an_hl7_reported_age_that_disagrees_with_the_birth_date_is_kept_and_said(tmp_path):
    """The HL7 example reports age 46 (LOINC 21612-7) and a birth date giving 49 on its acquisition
    date: 46 was taken without a word.  The stated age is the age (the rule of every reader: the
    age the file records for this ECG), with a warning naming both and the other in meta."""
    src = FORMATS / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"
    with pytest.warns(UserWarning, match=r"the reported age 46 years and the birth date 1953-05-08 \(49 years on the "
                      r"acquisition date 2002-11-22\) disagree; the reported age is used"):
        rec = eio.read(src)
    assert rec.meta["age"] == 46.0 and rec.meta["age_from_birth_date"] == 49.0
    data = src.read_bytes()
    agree = tmp_path / "agree.xml"
    agree.write_bytes(data.replace(b'<birthTime value="19530508"/>', b'<birthTime value="19560508"/>'))
    rec, said = _quiet_read(agree)
    assert rec.meta["age"] == 46.0 and "age_from_birth_date" not in rec.meta and not any("age" in m for m in said)
    unstated = tmp_path / "unstated.xml"
    unstated.write_bytes(data.replace(b'code="21612-7"', b'code="00000-0"'))
    rec, said = _quiet_read(unstated)
    assert rec.meta["age"] == 49.0 and "age_from_birth_date" not in rec.meta and not any("age" in m for m in said)
