"""Vendor formats read from real sample files (tests/data/formats, see its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.signal.leads import STANDARD_12

DATA = Path(__file__).resolve().parent.parent / "data" / "formats"
HL7 = DATA / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"
HL7_2 = DATA / "hl7_aecg" / "cvrg_hl7aecg-Example2.xml"
DCM = DATA / "dicom" / "ecgtoolkit_Example.dcm"
DCM_MORTARA = DATA / "dicom" / "mortara_eli250_anonymous_ecg.dcm"
SCP = DATA / "scp_ecg" / "ecgtoolkit_Example.scp"
SCP_HEALFORCE = DATA / "scp_ecg" / "healforce_prince180d_62.SCP"
MUSE = sorted((DATA / "muse_xml").glob("*.xml"))
SIERRA = sorted((DATA / "sierra_xml").glob("*"))
ALL_FILES = [HL7, HL7_2, DCM, DCM_MORTARA, SCP, *MUSE, *SIERRA]


def _needs(path: Path) -> None:
    if path.parent.name == "sierra_xml":
        pytest.importorskip("sierraecg", reason="XLI decoding uses the sierraecg package")


@pytest.mark.parametrize(
    "path,fmt",
    [(HL7, "hl7_aecg"), (HL7_2, "hl7_aecg"), (DCM, "dicom"), (DCM_MORTARA, "dicom"), (SCP, "scp"),
     (SCP_HEALFORCE, "scp_healforce")]
    + [(m, "muse") for m in MUSE]
    + [(s, "sierra") for s in SIERRA],
    ids=lambda x: getattr(x, "name", x),
)
def test_detect_by_extension_and_content(path, fmt):
    assert eio.detect_format(path) == fmt


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_sample_is_12_lead_with_plausible_amplitudes(path):
    _needs(path)
    rec = eio.read(path)
    assert set(rec.leads) == set(STANDARD_12)
    assert rec.duration == pytest.approx(10.0, abs=1.01)
    assert rec.meta["units"] == "mV"
    # QRS peak-to-peak of at least one lead between 0.1 and 5 mV; none above 10 mV
    p2p = np.ptp(rec.signal, axis=1)
    assert 0.1 < p2p.max() < 10.0
    assert np.median(p2p) > 0.1 and np.median(p2p) < 5.0
    for name in ("I", "II", "V2"):
        assert 0.1 < np.ptp(rec.lead(name)) < 6.0, name


def test_clark_recording_agrees_sample_for_sample_across_hl7_dicom_scp():
    hl7, dcm, scp = eio.read(HL7), eio.read(DCM), eio.read(SCP)
    assert hl7.fs == dcm.fs == scp.fs == 500.0
    # SOURCES.md: first samples of lead I are -2,-2,-2,-2,-3,-4,-3,-5,-5,-4 in 2.5 µV units
    first = np.array([-2, -2, -2, -2, -3, -4, -3, -5, -5, -4]) * 0.0025
    np.testing.assert_allclose(hl7.lead("I")[:10], first, atol=1e-12)
    shared = set(hl7.leads) & set(dcm.leads) & set(scp.leads)
    assert shared == set(STANDARD_12)
    for name in shared:
        a, b, c = hl7.lead(name), dcm.lead(name), scp.lead(name)
        assert a.shape == b.shape == c.shape == (5000,)
        np.testing.assert_allclose(b, a, atol=1e-9, err_msg=f"DICOM vs HL7 lead {name}")
        np.testing.assert_allclose(c, a, atol=1e-9, err_msg=f"SCP vs HL7 lead {name}")
    for rec in (hl7, dcm, scp):
        assert rec.meta["patient_id"] == "SBJ-123"
        assert rec.meta["sex"] == "M"
        assert rec.meta["acquired"] == "2002-11-22T09:10:00"
        assert "ELI250" in rec.meta["device"]


@pytest.mark.parametrize("path", MUSE, ids=lambda p: p.name)
def test_muse_derived_leads_follow_einthoven_goldberger(path):
    rec = eio.read(path)
    assert rec.leads == STANDARD_12
    i, ii = rec.lead("I"), rec.lead("II")
    np.testing.assert_allclose(rec.lead("III"), ii - i, atol=1e-12)
    np.testing.assert_allclose(rec.lead("aVR"), -(i + ii) / 2, atol=1e-12)
    np.testing.assert_allclose(rec.lead("aVL"), i - ii / 2, atol=1e-12)
    np.testing.assert_allclose(rec.lead("aVF"), ii - i / 2, atol=1e-12)
    # stored samples are integer multiples of 4.88 µV
    counts = rec.lead("V1") / 0.00488
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    assert rec.meta["stored_leads"] == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    assert rec.fs == 500.0 and rec.n_samples == 5000


def test_muse_metadata_and_median_beat():
    rec = eio.read(DATA / "muse_xml" / "musePHI_muse_ecg1.xml")
    assert rec.meta["patient_id"] == "JAX01234"
    assert rec.meta["age"] == 60 and rec.meta["sex"] == "M"
    assert rec.meta["device"] == "MAC55"
    assert rec.meta["acquired"] == "2021-05-10T13:15:18"
    assert rec.meta["statements"][0] == "Ventricular-paced rhythm"
    med = eio.read(DATA / "muse_xml" / "musePHI_muse_ecg1.xml", waveform="median")
    assert med.signal.shape == (12, 600)


def test_hl7_second_example_and_representative_beat():
    rec = eio.read(HL7_2)
    assert rec.fs == pytest.approx(1000.0)
    assert rec.signal.shape == (12, 10000)
    assert rec.meta["patient_id"] == "106_ABC"
    beat = eio.read(HL7, series="representative")
    assert beat.signal.shape[1] == 599


def test_dicom_mortara_metadata_and_units():
    rec = eio.read(DCM_MORTARA)
    assert rec.fs == 1000.0 and rec.signal.shape == (12, 10000)
    assert rec.meta["sex"] == "F" and rec.meta["age"] == 42
    assert "RITMO SINUSALE" in rec.meta["statements"]
    # sensitivity 1.25 µV: every sample is a multiple of 0.00125 mV
    c = rec.signal / 0.00125
    np.testing.assert_allclose(c, np.round(c), atol=1e-6)
    # Einthoven holds for the device's own leads within a few counts
    assert np.abs(rec.lead("III") - (rec.lead("II") - rec.lead("I"))).max() < 0.01
    med = eio.read(DCM_MORTARA, group="MEDIAN BEAT")
    assert med.signal.shape == (12, 1200)


@pytest.mark.parametrize("path", SIERRA, ids=lambda p: p.name)
def test_sierra_xli_decodes_to_consistent_leads(path):
    pytest.importorskip("sierraecg")
    rec = eio.read(path)
    assert rec.fs == 500 and 5200 < rec.n_samples < 5350  # 11-s strip less the calibration trailer
    assert rec.meta["calibration_trimmed"] is True
    i, ii = rec.lead("I"), rec.lead("II")
    # III, aVR, aVL, aVF are reconstructed from residuals: they must match the limb-lead identities
    # within the device's rounding (a few 5-µV counts), which fails if the residual step is wrong.
    assert np.abs(rec.lead("III") - (ii - i)).max() <= 0.0101
    assert np.abs(rec.lead("aVR") + (i + ii) / 2).max() <= 0.0101
    assert np.abs(rec.lead("aVF") - (ii - i / 2)).max() <= 0.0101
    assert rec.meta["device"]
    assert rec.meta["statements"]


@pytest.mark.parametrize("path", SIERRA, ids=lambda p: p.name)
def test_sierra_calibration_pulse_is_exactly_one_millivolt(path):
    pytest.importorskip("sierraecg")
    rec = eio.read(path, trim_calibration=False)
    assert rec.signal.shape == (12, 5500)
    start = int(round(rec.meta["calibration_pulse_s"] * rec.fs))
    pulse = rec.signal[:, start: start + 100]
    # the amplitude scale (5 µV/count → mV) is right iff the standardisation pulse reads 1.000 mV
    np.testing.assert_allclose(pulse, 1.0, atol=1e-12)


def test_sierra_matches_reference_library_sample_for_sample():
    sierraecg = pytest.importorskip("sierraecg")
    path = DATA / "sierra_xml" / "v1.04_3191723_ZZDEMOPTONLY_1-04_orig.xml"
    ref = sierraecg.read_file(str(path))
    rec = eio.read(path, trim_calibration=False)
    for lead in ref.leads:
        np.testing.assert_allclose(rec.lead(lead.label), np.asarray(lead.samples, float) * 0.005, atol=1e-9)
    assert rec.meta["patient_id"] == "9999" and rec.meta["sex"] == "M"
    assert rec.meta["age"] == 60  # born 1950-01-01, recorded 2010-01-19


def test_scp_metadata_and_huffman_mode():
    rec = eio.read(SCP)
    assert rec.meta["huffman"] == "default"
    assert rec.meta["difference_encoding"] == 2
    assert rec.meta["birth_date"] == "1953-05-08"


def test_nonconformant_scp_is_refused_with_a_clear_reason():
    # the Healforce variant reads as format "scp_healforce" (test_io_healforce.py), not as a conformant SCP
    with pytest.raises(eio_error()) as err:
        eio.read(SCP_HEALFORCE, format="scp")
    msg = str(err.value)
    assert SCP_HEALFORCE.name in msg and "\n" not in msg
    assert "non-conformant" in msg or "CRC" in msg


def eio_error():
    from ecgfounder.errors import RecordReadError

    return RecordReadError


@pytest.mark.parametrize("unit, years", [("a", 46.0), ("mo", 46 / 12), ("wk", 46 / 52.1775), ("d", 46 / 365.25)])
def test_hl7_reported_age_is_converted_from_its_unit(tmp_path, unit, years):
    # an infant's "Reported Age" is 46 d or 6 mo (UCUM), not 46 or 6 years
    p = tmp_path / "age.xml"
    p.write_bytes(HL7.read_bytes().replace(b'value="46" unit="a"', f'value="46" unit="{unit}"'.encode()))
    assert eio.read(p).meta["age"] == pytest.approx(years)


def test_hl7_reported_age_in_an_unknown_unit_is_not_taken_as_years(tmp_path):
    p = tmp_path / "age.xml"
    p.write_bytes(HL7.read_bytes().replace(b'value="46" unit="a"', b'value="46" unit="furlong"'))
    with pytest.warns(UserWarning, match="unknown unit"):
        rec = eio.read(p)
    assert rec.meta["age"] == 49.0  # from the birth date 1953-05-08 and the recording 2002-11-22


@pytest.mark.parametrize("unit, years", [("MONTHS", 5.0), ("DAYS", 60 / 365.25), ("FORTNIGHTS", None)])
def test_muse_age_units(tmp_path, unit, years):
    # PatientAge 60 in MONTHS is 5 years; in a unit the reader does not know it is not 60 years
    p = tmp_path / "age.xml"
    p.write_bytes(MUSE[0].read_bytes().replace(b"<AgeUnits>YEARS<", f"<AgeUnits>{unit}<".encode()))
    if years is None:
        with pytest.warns(UserWarning, match="unknown AgeUnits"):
            assert "age" not in eio.read(p).meta
    else:
        assert eio.read(p).meta["age"] == pytest.approx(years)


def test_a_sex_the_readers_do_not_know_is_left_out_alike(tmp_path):
    """MUSE's <Gender>UNKNOWN</Gender> and a WFDB '# Sex: Unknown' came through as sex 'UNKNOWN' and
    'Unknown', where DICOM, HL7, SCP, EDF and Sierra give none: one rule (M, F or nothing) for all."""
    import shutil

    muse = MUSE[0].read_bytes()
    assert b"<Gender>MALE</Gender>" in muse
    (tmp_path / "u.xml").write_bytes(muse.replace(b"<Gender>MALE</Gender>", b"<Gender>UNKNOWN</Gender>"))
    (tmp_path / "f.xml").write_bytes(muse.replace(b"<Gender>MALE</Gender>", b"<Gender>female</Gender>"))
    assert eio.read(tmp_path / "u.xml").meta.get("sex") is None and eio.read(tmp_path / "f.xml").meta["sex"] == "F"
    cinc = DATA.parent / "cinc2021" / "E07500"
    shutil.copy(cinc.with_suffix(".mat"), tmp_path / "E07500.mat")
    head = cinc.with_suffix(".hea").read_text()
    assert "# Sex: Male" in head
    (tmp_path / "E07500.hea").write_text(head.replace("# Sex: Male", "# Sex: Unknown"))
    assert eio.read(tmp_path / "E07500.hea").meta.get("sex") is None
