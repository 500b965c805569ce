"""GE CardioSoft XML and ISHNE Holter: files written here in each schema (from the public format
descriptions, carrying a real CinC 2021 signal, never participant data) read back exactly."""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

import numpy as np
import pytest

import ecgfounder
from ecgfounder.errors import RecordReadError
from ecgfounder.io.detect import detect_format, find_records

DATA = Path(__file__).resolve().parents[1] / "data"
REC = DATA / "cinc2021" / "HR06000.hea"
STANDARD = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@pytest.fixture(scope="module")
def rec():
    return ecgfounder.read(REC)


def _counts(rec, leads, res_uv):
    return {ld: np.round(rec.lead(ld) * 1000.0 / res_uv).astype(int) for ld in leads}


def write_cardiosoft(path: Path, rec, *, leads=STANDARD, res_uv=5.0, exercise=False, lead_names=None,
                     full=None) -> dict:
    counts = _counts(rec, leads, res_uv)
    names = lead_names or leads
    wave = "\n".join(
        f'    <WaveformData lead="{nm}">{",".join(map(str, counts[ld]))}</WaveformData>' for ld, nm in zip(leads, names)
    )
    strip = (f'<StripData><NumberOfLeads>{len(leads)}</NumberOfLeads><SampleRate units="Hz">{int(rec.fs)}</SampleRate>'
             f'<ChannelSampleCountTotal>{rec.n_samples}</ChannelSampleCountTotal>'
             f'<Resolution units="uVperLsb">{res_uv}</Resolution>\n{wave}\n</StripData>')
    if exercise:
        strip = f"<Strip>{strip}</Strip><Strip>{strip}</Strip>"
    extra = ""
    if full is not None:
        inter = np.stack([counts[ld] for ld in leads], axis=1).ravel()
        extra = (f'<FullDisclosure><NumberOfChannels>{len(leads)}</NumberOfChannels>'
                 f'<SampleRate units="Hz">{int(rec.fs)}</SampleRate><Resolution units="uVperLsb">{res_uv}</Resolution>'
                 f'<LeadOrder>{",".join(names)}</LeadOrder><FullDisclosureData>\n\t'
                 + ",".join(map(str, inter)) + "\n</FullDisclosureData></FullDisclosure>")
    xml = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<CardiologyXML>\n'
        f"<ObservationType>{'ExerciseECG' if exercise else 'RestECG'}</ObservationType>\n"
        "<ObservationDateTime><Hour>9</Hour><Minute>5</Minute><Second>7</Second><Day>3</Day><Month>12</Month>"
        "<Year>2026</Year></ObservationDateTime>\n"
        '<PatientInfo><PID>TEST-0001</PID><Age units="years">63</Age><Gender>FEMALE</Gender></PatientInfo>\n'
        "<Interpretation><Diagnosis><DiagnosisText>Sinus rhythm</DiagnosisText><DiagnosisText>Left axis deviation"
        "</DiagnosisText></Diagnosis><Conclusion><ConclusionText>Abnormal ECG</ConclusionText></Conclusion>"
        f"</Interpretation>\n{strip}\n{extra}\n</CardiologyXML>\n"
    )
    path.write_bytes(xml.encode("latin-1"))
    return counts


def test_cardiosoft_resting_reads_the_written_counts(tmp_path, rec):
    f = tmp_path / "1000001_20205_2_0.xml"
    counts = write_cardiosoft(f, rec)
    assert detect_format(f) == "cardiosoft" and find_records([tmp_path]) == [f]
    got = ecgfounder.read(f)
    assert got.leads == STANDARD and got.fs == rec.fs and got.meta["format"] == "cardiosoft"
    for ld in STANDARD:
        np.testing.assert_allclose(got.lead(ld), counts[ld] * 0.005, atol=1e-12)
    np.testing.assert_allclose(got.signal, rec.signal, atol=0.0025 + 1e-9)  # half a 5-µV step
    assert got.meta["sex"] == "F" and got.meta["age"] == 63.0 and got.meta["patient_id"] == "TEST-0001"
    assert got.meta["acquired"] == "2026-12-03T09:05:07"
    assert got.meta["statements"] == ("Sinus rhythm", "Left axis deviation", "Abnormal ECG")


def test_cardiosoft_exercise_three_leads_strips_and_full_disclosure(tmp_path, rec):
    f = tmp_path / "1000001_6025_0_0.xml"
    counts = write_cardiosoft(f, rec, leads=("I", "II", "III"), res_uv=10.0, exercise=True,
                              lead_names=("I", "2", "3"), full=True)
    strip = ecgfounder.read(f)
    assert strip.leads[:3] == ("I", "II", "III") and strip.meta["observation"] == "ExerciseECG"
    np.testing.assert_allclose(strip.lead("II"), counts["II"] * 0.01, atol=1e-12)
    full = ecgfounder.read(f, waveform="full")
    np.testing.assert_array_equal(full.signal[:3], strip.signal[:3])
    assert ecgfounder.read(f, strip=1).signal.shape == strip.signal.shape
    with pytest.raises(RecordReadError, match="strip=5 but the file holds 2 strips"):
        ecgfounder.read(f, strip=5)
    with pytest.raises(RecordReadError, match="no median waveform"):
        ecgfounder.read(f, waveform="median")


@pytest.mark.parametrize("mutate, message", [
    (lambda x: x.replace(b'units="uVperLsb">5.0<', b'units="uVperLsb">0<'), "no valid Resolution"),
    (lambda x: x.replace(b'units="uVperLsb"', b'units="furlongs"'), "unknown Resolution unit"),
    (lambda x: x.replace(b'<SampleRate units="Hz">500<', b'<SampleRate units="Hz">abc<'), "no valid SampleRate"),
    (lambda x: x.replace(b'lead="V1">', b'lead="V1">1,2,x9,', 1), "is not a sample value"),
    (lambda x: x.replace(b"</CardiologyXML>", b""), "malformed XML"),
])
def test_cardiosoft_bad_files_give_one_line_naming_the_file(tmp_path, rec, mutate, message):
    f = tmp_path / "bad.xml"
    write_cardiosoft(f, rec)
    f.write_bytes(mutate(f.read_bytes()))
    with pytest.raises(RecordReadError, match=message) as err:
        ecgfounder.read(f)
    assert str(err.value).startswith(str(f)) and "\n" not in str(err.value)


def write_ishne(path: Path, signal_mv: np.ndarray, fs: int, specs, *, res_nv=2500, quality=None, crc=True) -> np.ndarray:
    n_leads, n = signal_mv.shape
    counts = np.round(signal_mv * 1e6 / res_nv).astype("<i2")
    var = b"recorded for the ecgfounder tests"
    hdr = bytearray(512)
    struct.pack_into("<iiiih", hdr, 0, len(var), n, 522, 522 + len(var), 1)
    hdr[98:118] = b"TEST-HOLTER".ljust(20, b"\x00")
    struct.pack_into("<hh3h3h3h3hh", hdr, 118, 1, 0, 12, 5, 1950, 3, 12, 2026, 3, 12, 2026, 8, 30, 0, n_leads)
    struct.pack_into("<12h", hdr, 148, *(list(specs) + [-9] * (12 - n_leads)))
    struct.pack_into("<12h", hdr, 172, *((quality or [1] * n_leads) + [-9] * (12 - n_leads)))
    struct.pack_into("<12h", hdr, 196, *([res_nv] * n_leads + [-9] * (12 - n_leads)))
    struct.pack_into("<h", hdr, 220, 0)
    struct.pack_into("<h", hdr, 262, fs)
    body = bytes(hdr) + var
    c = binascii.crc_hqx(body, 0xFFFF) ^ (0 if crc else 0x5A5A)
    path.write_bytes(b"ISHNE1.0" + struct.pack("<H", c) + body + counts.T.tobytes())
    return counts


def test_ishne_reads_the_written_counts_and_metadata(tmp_path, rec):
    sig = np.tile(rec.signal[[0, 1, 7]], (1, 6))  # one minute of I, II, V2
    f = tmp_path / "holter.ecg"
    counts = write_ishne(f, sig, 500, [5, 6, 12], quality=[1, 1, 5])
    assert detect_format(f) == "ishne"
    got = ecgfounder.read(f)
    # the one derived-lead policy (io/policy.py) adds III, aVR, aVL, aVF computed from I and II
    assert got.leads == ("I", "II", "III", "aVR", "aVL", "aVF", "V2") and got.fs == 500.0
    assert got.n_samples == sig.shape[1] and got.meta["derived_leads"] == ("III", "aVR", "aVL", "aVF")
    stored = got.signal[[0, 1, 6]]
    np.testing.assert_allclose(stored, counts * 2.5e-3, atol=1e-12)
    m = got.meta
    assert m["crc_ok"] is True and m["sex"] == "M" and m["patient_id"] == "TEST-HOLTER"
    assert m["acquired"] == "2026-12-03T08:30:00" and m["birth_date"] == "1950-05-12"
    assert m["leads_off"] == ("V2",) and m["lead_quality"]["I"] == "good"
    # a bounded window straight from the file
    part = ecgfounder.read(f, start=10, max_duration=20)
    assert part.n_samples == 20 * 500 and part.meta["start_s"] == 10.0
    np.testing.assert_array_equal(part.signal, got.signal[:, 5000:15000])
    # no extension: found by its magic bytes
    g = tmp_path / "holter_noext"
    g.write_bytes(f.read_bytes())
    assert detect_format(g) == "ishne"


def test_ishne_bad_crc_is_read_with_a_warning(tmp_path, rec):
    f = tmp_path / "badcrc.ecg"
    write_ishne(f, rec.signal[:2], 500, [5, 6], crc=False)
    with pytest.warns(UserWarning, match="checksum"):
        got = ecgfounder.read(f)
    assert got.meta["crc_ok"] is False and got.leads[:2] == ("I", "II")


@pytest.mark.parametrize("offset, value, fmt, message", [
    (156, 40, "<h", "declares 40 leads"),
    (272, 0, "<h", "sampling rate of 0 Hz"),
    (22, 10**9, "<i", "lies outside"),
    (206, -5, "<h", "must be positive"),
    (0, 0x5858, "<H", "not an ISHNE Holter file"),
])
def test_ishne_hostile_headers_give_one_line(tmp_path, rec, offset, value, fmt, message):
    f = tmp_path / "bad.ecg"
    write_ishne(f, rec.signal[:2], 500, [5, 6])
    raw = bytearray(f.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    f.write_bytes(bytes(raw))
    with pytest.raises(RecordReadError, match=message) as err:
        ecgfounder.read(f)
    assert "\n" not in str(err.value)


def test_ishne_truncated_and_empty(tmp_path, rec):
    f = tmp_path / "short.ecg"
    write_ishne(f, rec.signal[:2], 500, [5, 6])
    full = f.read_bytes()
    f.write_bytes(full[:600])  # 555 header bytes + 11 samples of 2 leads
    with pytest.warns(UserWarning, match="holds 11 samples per lead of the 5000"):
        got = ecgfounder.read(f)
    assert got.n_samples == 11 and got.meta["file_truncated"] is True
    f.write_bytes(full[:555])
    with pytest.raises(RecordReadError, match="no samples"):
        ecgfounder.read(f)
    f.write_bytes(b"ISHNE1.0" + b"\x00" * 20)
    with pytest.raises(RecordReadError, match="too short"):
        ecgfounder.read(f)
