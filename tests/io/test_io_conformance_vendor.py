"""Vendor readers against their formats' specifications and other projects' readers, variant by
variant: each variant is built here from a real sample (tests/data/formats) or from the format's
layout, and read back either to the right mV, rate and lead names, or refused with one line that
names the file and the reason (never wrong numbers in silence)."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.io.scp import DEFAULT_HUFFMAN_TABLE, huffman_decode
from ecgfounder.signal.leads import STANDARD_12

from scpbuild import record  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "formats"
MUSE = DATA / "muse_xml" / "musePHI_muse_ecg1.xml"
HL7 = DATA / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"
DCM = DATA / "dicom" / "mortara_eli250_anonymous_ecg.dcm"
SIERRA_103 = DATA / "sierra_xml" / "v1.03_129DYPRG.XML"


def _refused(path: Path, match: str, **kw) -> str:
    with pytest.raises(RecordReadError, match=match) as err:
        eio.read(path, **kw)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    return msg


def _einthoven_goldberger(rec) -> None:
    i, ii = rec.lead("I"), rec.lead("II")
    np.testing.assert_allclose(rec.lead("III"), ii - i, atol=1e-12)
    np.testing.assert_allclose(rec.lead("aVR"), -(i + ii) / 2, atol=1e-12)
    np.testing.assert_allclose(rec.lead("aVL"), i - ii / 2, atol=1e-12)
    np.testing.assert_allclose(rec.lead("aVF"), ii - i / 2, atol=1e-12)


# --------------------------------------------------------------------------------------- GE MUSE


@pytest.fixture(scope="module")
def muse():
    text = MUSE.read_bytes().decode("latin-1")
    cut = text.index("<WaveformType>Rhythm</WaveformType>")
    return text[:cut], text[cut:], eio.read(MUSE)


def _muse_variant(tmp_path, muse, edit, name="variant.xml") -> Path:
    head, rhythm, _ = muse
    f = tmp_path / name
    f.write_bytes((head + edit(rhythm)).encode("latin-1"))
    return f


def test_muse_millivolts_and_another_resolution_give_the_same_mv(tmp_path, muse):
    """LeadAmplitudeUnits MILLIVOLTS with LeadAmplitudeUnitsPerBit in mV; a resolution half as
    large halves every stored lead; the 4 derived leads follow Einthoven/Goldberger."""
    orig = muse[2]
    f = _muse_variant(tmp_path, muse, lambda t: t.replace(
        "<LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>\n         <LeadAmplitudeUnits>MICROVOLTS",
        "<LeadAmplitudeUnitsPerBit>0.00488</LeadAmplitudeUnitsPerBit>\n         <LeadAmplitudeUnits>MILLIVOLTS"))
    rec = eio.read(f)
    assert rec.leads == STANDARD_12 and rec.fs == 500
    np.testing.assert_allclose(rec.signal, orig.signal, atol=1e-12)
    g = _muse_variant(tmp_path, muse, lambda t: t.replace("<LeadAmplitudeUnitsPerBit>4.88<", "<LeadAmplitudeUnitsPerBit>2.44<"),
                      "half.xml")
    half = eio.read(g)
    np.testing.assert_allclose(half.signal, orig.signal / 2, atol=1e-12)
    _einthoven_goldberger(half)
    assert half.meta["derived_leads"] == ("III", "aVR", "aVL", "aVF")


def test_muse_sample_base_and_exponent(tmp_path, muse):
    f = _muse_variant(tmp_path, muse, lambda t: t.replace("<SampleBase>500</SampleBase>", "<SampleBase>50</SampleBase>", 1)
                      .replace("<SampleExponent>0</SampleExponent>", "<SampleExponent>1</SampleExponent>", 1))
    assert eio.read(f).fs == 500.0
    g = _muse_variant(tmp_path, muse, lambda t: t.replace("<SampleBase>500</SampleBase>", "<SampleBase>250</SampleBase>", 1),
                      "250.xml")
    assert eio.read(g).fs == 250.0


def _edit_lead(rhythm: str, lead: str, edit) -> str:
    """``edit`` applied to the ``<LeadData>`` block of ``lead`` in the rhythm waveform text."""
    start = rhythm.index(f"<LeadID>{lead}</LeadID>")
    a = rhythm.rindex("<LeadData>", 0, start)
    b = rhythm.index("</LeadData>", start)
    return rhythm[:a] + edit(rhythm[a:b]) + rhythm[b:]


def test_muse_data_not_matching_their_crc_are_refused(tmp_path, muse):
    """LeadDataCRC32 is the CRC-32 of the decoded bytes (it matches in every real file): a sample
    changed after writing (a corrupt or edited file) was read as if nothing happened."""
    def flip(block):
        m = re.search(r"<WaveFormData>(.*?)</WaveFormData>", block, re.S)
        raw = bytearray(base64.b64decode("".join(m.group(1).split())))
        raw[100] ^= 0x40
        return block[: m.start(1)] + base64.b64encode(bytes(raw)).decode() + block[m.end(1):]

    f = _muse_variant(tmp_path, muse, lambda t: _edit_lead(t, "V1", flip))
    _refused(f, "lead V1: waveform data do not match their LeadDataCRC32")


@pytest.mark.parametrize("tag,value", [("FirstSampleBaseline", "100"), ("LeadOffsetFirstSample", "20"),
                                       ("LeadTimeOffset", "4")])
def test_muse_first_sample_offsets_and_baselines_are_refused(tmp_path, muse, tag, value):
    """Open readers disagree on these (BRAVEHEART adds FirstSampleBaseline to the counts, another
    reader subtracts it; the ECG Toolkit reads LeadOffsetFirstSample as the lead's first sample
    number, BRAVEHEART as bytes of invalid data): they were ignored, shifting or offsetting the lead."""
    f = _muse_variant(tmp_path, muse, lambda t: _edit_lead(
        t, "II", lambda b: re.sub(f"<{tag}>0</{tag}>", f"<{tag}>{value}</{tag}>", b)))
    _refused(f, f"lead II: {tag} {value} is not supported")


@pytest.mark.parametrize("res", ["-4.88", "0"])
def test_muse_non_positive_resolution_is_refused(tmp_path, muse, res):
    """A negative LeadAmplitudeUnitsPerBit was accepted and inverted the lead."""
    f = _muse_variant(tmp_path, muse, lambda t: _edit_lead(
        t, "V2", lambda b: b.replace("<LeadAmplitudeUnitsPerBit>4.88<", f"<LeadAmplitudeUnitsPerBit>{res}<")))
    _refused(f, "lead V2: LeadAmplitudeUnitsPerBit .* not positive")


def test_muse_without_sample_count_reads_the_data_and_flags_lead_off(tmp_path, muse):
    """LeadSampleCountTotal absent: the samples are the decoded data (was refused as 0 samples);
    LeadOff TRUE names the lead in meta['leads_off']."""
    f = _muse_variant(tmp_path, muse, lambda t: re.sub(r"<LeadSampleCountTotal>\d+</LeadSampleCountTotal>", "", t)
                      .replace("<LeadID>V5</LeadID>", "<LeadID>V5</LeadID><LeadOff>TRUE</LeadOff>"))
    rec = eio.read(f)
    np.testing.assert_allclose(rec.signal, muse[2].signal, atol=1e-12)
    assert rec.meta["leads_off"] == ("V5",)


# ------------------------------------------------------------------------------------ HL7 aECG


@pytest.fixture(scope="module")
def hl7():
    return HL7.read_bytes().decode("utf-8"), eio.read(HL7)


def test_hl7_scale_in_millivolts_with_an_origin(tmp_path, hl7):
    """value = origin + scale × digit, origin and scale each in their own unit (uV or mV)."""
    text, orig = hl7
    lead_values = re.compile(r'<origin value="0" unit="uV"/>\s*<scale value="2.5" unit="uV"/>')
    assert len(lead_values.findall(text)) == 24  # 12 rhythm + 12 representative-beat leads
    f = tmp_path / "mv.xml"
    f.write_text(lead_values.sub('<origin value="0.1" unit="mV"/><scale value="0.0025" unit="mV"/>', text), "utf-8")
    rec = eio.read(f)
    assert rec.fs == 500 and set(rec.leads) == set(STANDARD_12)
    np.testing.assert_allclose(rec.signal, orig.signal + 0.1, atol=1e-12)
    g = tmp_path / "mixed.xml"
    g.write_text(lead_values.sub('<origin value="-50" unit="uV"/><scale value="0.0025" unit="mV"/>', text), "utf-8")
    np.testing.assert_allclose(eio.read(g).signal, orig.signal - 0.05, atol=1e-12)


def test_hl7_increment_in_milliseconds(tmp_path, hl7):
    f = tmp_path / "ms.xml"
    f.write_text(hl7[0].replace('<increment value="0.002" unit="s"/>', '<increment value="2" unit="ms"/>', 1), "utf-8")
    assert eio.read(f).fs == pytest.approx(500.0)


def _split_sets(text: str, head_of_second: str | None = None) -> str:
    """The rhythm sequence set split in two: the time sequence and I…aVF, then a copy of the time
    sequence (optionally with another head) and V1…V6."""
    a = text.index("<sequenceSet>")
    b = text.index("</sequenceSet>", a)
    body = text[a + len("<sequenceSet>"): b]
    comps = re.findall(r"<component>\s*<sequence>.*?</sequence>\s*</component>", body, re.S)
    time, leads = comps[0], comps[1:]
    chest = [c for c in leads if re.search(r'MDC_ECG_LEAD_V\d', c)]
    limb = [c for c in leads if c not in chest]
    time2 = time if head_of_second is None else re.sub(r'<head value="[^"]*"', f'<head value="{head_of_second}"', time)
    sets = (f"<sequenceSet>{time}{''.join(limb)}</sequenceSet></component>\n<component>"
            f"<sequenceSet>{time2}{''.join(chest)}</sequenceSet>")
    return text[:a] + sets + text[b + len("</sequenceSet>"):]


def test_hl7_leads_split_over_simultaneous_sequence_sets_are_all_read(tmp_path, hl7):
    """A series may hold several sequence sets; sets with the same time origin and rate hold leads
    recorded together.  Only the first set was read: V1–V6 were missing."""
    text, orig = hl7
    f = tmp_path / "two_sets.xml"
    f.write_text(_split_sets(text), "utf-8")
    rec = eio.read(f)
    assert set(rec.leads) == set(STANDARD_12)
    for lead in STANDARD_12:
        np.testing.assert_array_equal(rec.lead(lead), orig.lead(lead))
    # a set recorded at another time is not merged into the first: named in a warning and meta
    g = tmp_path / "later_set.xml"
    g.write_text(_split_sets(text, head_of_second="20021122091010.000"), "utf-8")
    with pytest.warns(UserWarning, match="V1, V2, V3, V4, V5, V6 are in a sequence set with another time origin"):
        later = eio.read(g)
    assert later.leads == ("I", "II", "III", "aVR", "aVL", "aVF")
    assert later.meta["aecg_sets_skipped"] == ("V1", "V2", "V3", "V4", "V5", "V6")


def test_hl7_representative_beat_is_not_taken_for_rhythm_leads(tmp_path, hl7):
    """The derived (median) series hangs below the rhythm series: its sets are not the rhythm's."""
    text, orig = hl7
    a = text.index("<sequenceSet>")
    b = text.index("</sequenceSet>", a)
    f = tmp_path / "no_rhythm_sets.xml"
    f.write_text(text[:a] + "<sequenceSet></sequenceSet>" + text[b + len("</sequenceSet>"):], "utf-8")
    _refused(f, "RHYTHM: no lead sequences found")
    assert eio.read(HL7, series="representative").signal.shape == (12, 599)


def test_hl7_lead_codes_and_scale_without_unit(tmp_path, hl7):
    """MDC_ECG_LEAD_AVRneg is -aVR; a scale without unit is read as µV with a warning."""
    text, orig = hl7
    f = tmp_path / "codes.xml"
    f.write_text(text.replace('"MDC_ECG_LEAD_AVR"', '"MDC_ECG_LEAD_AVRneg"', 1)
                 .replace('<scale value="2.5" unit="uV"/>', '<scale value="2.5"/>'), "utf-8")
    with pytest.warns(UserWarning, match="the scale has no unit; read as µV"):
        rec = eio.read(f)
    assert "-aVR" in rec.leads
    np.testing.assert_allclose(rec.lead("-aVR"), orig.lead("aVR"), atol=1e-12)
    np.testing.assert_allclose(rec.lead("V6"), orig.lead("V6"), atol=1e-12)


# --------------------------------------------------------------------------------------- DICOM


@pytest.fixture(scope="module")
def dcm():
    import pydicom

    ds = pydicom.dcmread(str(DCM))
    g = ds.WaveformSequence[0]
    counts = np.frombuffer(g.WaveformData, "<i2").reshape(g.NumberOfWaveformSamples, g.NumberOfWaveformChannels).T
    return ds, counts.astype(np.int64), eio.read(DCM)


def _dcm_variant(tmp_path, dcm, edit, name="variant.dcm") -> Path:
    import copy

    ds = copy.deepcopy(dcm[0])
    edit(ds, ds.WaveformSequence[0])
    f = tmp_path / name
    ds.save_as(str(f))
    return f


def test_dicom_correction_factor_baseline_and_mv_units(tmp_path, dcm):
    """physical = sample × ChannelSensitivity × ChannelSensitivityCorrectionFactor + ChannelBaseline,
    in the unit of ChannelSensitivityUnitsSequence."""
    def edit(ds, g):
        for ch in g.ChannelDefinitionSequence:
            ch.ChannelSensitivityCorrectionFactor = "0.5"
            ch.ChannelBaseline = "10"
        mv = g.ChannelDefinitionSequence[0]
        mv.ChannelSensitivity = "0.00125"
        mv.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
        mv.ChannelBaseline = "0.01"

    rec = eio.read(_dcm_variant(tmp_path, dcm, edit))
    np.testing.assert_allclose(rec.signal, dcm[2].signal * 0.5 + 0.010, atol=1e-12)
    assert rec.meta["original_units"] == "mV,uV"


def _recode(g, counts: np.ndarray, dtype: str, interp: str) -> None:
    g.WaveformBitsAllocated = 8 * np.dtype(dtype).itemsize
    g.WaveformSampleInterpretation = interp
    g.WaveformData = np.ascontiguousarray(counts.T.astype(dtype)).tobytes()
    for ch in g.ChannelDefinitionSequence:
        if "WaveformBitsStored" in ch:
            ch.WaveformBitsStored = 8 * np.dtype(dtype).itemsize


@pytest.mark.parametrize("dtype,interp", [("i1", "SB"), ("u1", "UB"), ("u2", "US"), ("i4", "SL")])
def test_dicom_8_16_32_bit_signed_and_unsigned_samples(tmp_path, dcm, dtype, interp):
    """8-bit samples at 16 times the sensitivity; unsigned samples offset by half their range with
    the ChannelBaseline taking it back."""
    counts = dcm[1]
    shift, step = (0, 16) if dtype in ("i1", "u1") else (0, 1)
    stored = np.clip(np.round(counts / step), -128, 127).astype(np.int64) if step > 1 else counts
    if dtype.startswith("u"):
        shift = 1 << (8 * np.dtype(dtype).itemsize - 1)

    def edit(ds, g):
        _recode(g, stored + shift, dtype, interp)
        for ch in g.ChannelDefinitionSequence:
            ch.ChannelSensitivity = str(1.25 * step)
            ch.ChannelBaseline = str(-shift * 1.25 * step)

    rec = eio.read(_dcm_variant(tmp_path, dcm, edit))
    np.testing.assert_allclose(rec.signal, stored * 1.25 * step / 1000.0, atol=1e-9)


@pytest.mark.parametrize("bits,interp,match", [(8, "MB", "mu-law/A-law"), (8, "AB", "mu-law/A-law"),
                                               (16, "SB", "not a valid combination")])
def test_dicom_companded_or_mismatched_samples_are_refused(tmp_path, dcm, bits, interp, match):
    """mu-law/A-law (MB/AB) samples were scaled as if linear (pydicom returns the codes)."""
    def edit(ds, g):
        _recode(g, dcm[1] & 0x7F, "u1" if bits == 8 else "i2", interp)

    _refused(_dcm_variant(tmp_path, dcm, edit), f"WaveformSampleInterpretation '{interp}'.*{match}")


def test_dicom_big_endian_transfer_syntax(tmp_path, dcm):
    """Explicit VR Big Endian stores OW words big-endian; pydicom hands them over unswapped and
    decoded them as little-endian (every sample wrong)."""
    import copy

    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRBigEndian

    ds = copy.deepcopy(dcm[0])
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    g = ds.WaveformSequence[0]
    g.WaveformData = np.frombuffer(g.WaveformData, "<i2").astype(">i2").tobytes()
    f = tmp_path / "big.dcm"
    dcmwrite(str(f), ds, little_endian=False, implicit_vr=False, force_encoding=True)
    rec = eio.read(f)
    np.testing.assert_allclose(rec.signal, dcm[2].signal, atol=1e-12)


def test_dicom_unlabelled_median_group_before_the_rhythm(tmp_path, dcm):
    """Without a RHYTHM label the first ORIGINAL group is the rhythm (the median beat is DERIVED);
    the first group (a 1.2-s median beat) was read as the recording."""
    def edit(ds, g):
        rhythm, median = ds.WaveformSequence
        for item in (rhythm, median):
            del item.MultiplexGroupLabel
        ds.WaveformSequence = [median, rhythm]

    f = _dcm_variant(tmp_path, dcm, edit)
    rec = eio.read(f)
    assert rec.signal.shape == (12, 10000)
    np.testing.assert_allclose(rec.signal, dcm[2].signal, atol=1e-12)
    assert eio.read(f, group=0).signal.shape == (12, 1200)

    def labelled(ds, g):
        ds.WaveformSequence = [ds.WaveformSequence[1], ds.WaveformSequence[0]]

    assert eio.read(_dcm_variant(tmp_path, dcm, labelled, "labelled.dcm")).signal.shape == (12, 10000)


def test_dicom_lead_names_from_mdc_and_scpecg_codes(tmp_path, dcm):
    """Lead codes (SCPECG 5.6.3-9-N, MDC 2:N: CID 3001) name the channel; code meanings such as
    'aVR, augmented voltage, right' were taken whole (the lead lost, then re-derived)."""
    def edit(ds, g):
        for k, ch in enumerate(g.ChannelDefinitionSequence):
            src = ch.ChannelSourceSequence[0]
            n = int(src.CodeValue.rsplit("-", 1)[1])
            if k % 3 == 0:
                src.CodeValue, src.CodingSchemeDesignator = f"2:{n}", "MDC"
            src.CodeMeaning = ""
        last = g.ChannelDefinitionSequence[4].ChannelSourceSequence[0]  # aVL: meaning only
        last.CodeValue, last.CodeMeaning = "unknown", "aVL, augmented voltage, left"

    rec = eio.read(_dcm_variant(tmp_path, dcm, edit))
    assert rec.leads == dcm[2].leads == STANDARD_12
    assert "derived_leads" not in rec.meta
    np.testing.assert_allclose(rec.signal, dcm[2].signal, atol=1e-12)


def test_dicom_padding_value_marks_missing_samples(tmp_path, dcm):
    """Samples equal to the Waveform Padding Value (channels not recorded simultaneously) are
    missing (NaN, counted in meta); they were read as -40.96 mV."""
    counts = dcm[1].copy()
    counts[6, :2500] = -32768

    def edit(ds, g):
        g.WaveformData = np.ascontiguousarray(counts.T.astype("<i2")).tobytes()
        g.add_new((0x5400, 0x100A), "OW", struct.pack("<h", -32768))  # Waveform Padding Value

    with pytest.warns(UserWarning, match="2500 missing"):
        rec = eio.read(_dcm_variant(tmp_path, dcm, edit))
    assert np.isnan(rec.lead("V1")[:2500]).all() and rec.meta["non_finite_samples"] == 2500
    np.testing.assert_allclose(rec.lead("V1")[2500:], dcm[2].lead("V1")[2500:], atol=1e-12)


def test_dicom_missing_units_warn_and_zero_sensitivity_is_refused(tmp_path, dcm):
    def no_units(ds, g):
        for ch in g.ChannelDefinitionSequence:
            del ch.ChannelSensitivityUnitsSequence

    with pytest.warns(UserWarning, match="without ChannelSensitivityUnitsSequence"):
        rec = eio.read(_dcm_variant(tmp_path, dcm, no_units))
    np.testing.assert_allclose(rec.signal, dcm[2].signal, atol=1e-12)

    def zero(ds, g):
        g.ChannelDefinitionSequence[1].ChannelSensitivity = "0"

    _refused(_dcm_variant(tmp_path, dcm, zero, "zero.dcm"), "channel II: ChannelSensitivity 0")


# ------------------------------------------------------------------------------- Philips Sierra


def _sierra_variant(tmp_path, counts: np.ndarray, attrs: str, data: str, *, offset: str = "0") -> Path:
    text = SIERRA_103.read_bytes().decode("utf-8")
    text = re.sub(r"<parsedwaveforms[^>]*>.*?</parsedwaveforms>",
                  f"<parsedwaveforms {attrs} durationperchannel=\"{counts.shape[1] * 2}\">{data}</parsedwaveforms>",
                  text, flags=re.S)
    text = text.replace("<signaloffset>0</signaloffset>", f"<signaloffset>{offset}</signaloffset>")
    f = tmp_path / "sierra.xml"
    f.write_bytes(text.encode("utf-8"))
    return f


@pytest.fixture(scope="module")
def clark_counts():
    rec = eio.read(HL7)
    return np.round(np.stack([rec.lead(n) for n in STANDARD_12]) / 0.005).astype(np.int64)


def test_sierra_uncompressed_and_plain_text_waveforms(tmp_path, clark_counts):
    """What sierra-ecg-tools writes when it decompresses a file: compressflag="False" with
    compressmethod="XLI" kept, Base64 or Plain (text) data, III…aVF no longer residuals.  Both were
    refused ('XLI' not supported, 'Plain' not supported)."""
    b64 = base64.b64encode(clark_counts.astype("<i2").tobytes()).decode()
    flags = 'compressflag="False" compressmethod="XLI"'
    for attrs, data in ((f'{flags} dataencoding="Base64"', b64),
                        (f'{flags} dataencoding="Plain"', "\n".join(" ".join(map(str, row)) for row in clark_counts))):
        rec = eio.read(_sierra_variant(tmp_path, clark_counts, attrs, data))
        assert rec.leads == STANDARD_12 and rec.fs == 500 and "derived_leads" not in rec.meta
        np.testing.assert_allclose(rec.signal, clark_counts * 0.005, atol=1e-12)


def test_sierra_signal_offset_is_refused(tmp_path, clark_counts):
    """<signaloffset> was ignored (every sample off by it, in an undocumented direction)."""
    b64 = base64.b64encode(clark_counts.astype("<i2").tobytes()).decode()
    f = _sierra_variant(tmp_path, clark_counts, 'compressflag="False" dataencoding="Base64"', b64, offset="1024")
    _refused(f, "signal offset 1024.*only offset 0, signed 16-bit")


# --------------------------------------------------------------------------------------- SCP-ECG


def _scp(leads: list[tuple[int, int, int, bytes]], *, diff: int, tables: bytes | None, avm: int = 1000,
         interval: int = 2000, flags: int = 0x04) -> bytes:
    """An SCP-ECG record (standard layout) with ``(lead id, first sample, last sample, data)`` leads."""
    s3 = struct.pack("<BB", len(leads), flags) + b"".join(struct.pack("<IIB", a, b, lid) for lid, a, b, _ in leads)
    s6 = struct.pack("<HHBB", avm, interval, diff, 0) + b"".join(struct.pack("<H", len(d)) for *_, d in leads)
    bodies = {1: b"\xff\x00\x00", 3: s3, 6: s6 + b"".join(d for *_, d in leads)}
    if tables is not None:
        bodies[2] = tables
    return record(bodies)


# the worked example of the standard (EN 1064 annex, default Huffman table, second differences), as
# PixelMed's SCP-ECG decoder tests it (one byte corrected, one padding byte added)
EXAMPLE = bytes([0xFF, 0x83, 0x7F, 0xE0, 0xE6, 0xF1, 0x53, 0x65, 0x59, 0xB6, 0x5B, 0x96, 0x4B, 0x96, 0x00])
EXAMPLE_SAMPLES = [13, 14, 15, 14, 16, 18, 19, 20, 22, 22, 23, 23, 23, 22, 22, 20, 17, 15, 12, 8, 6, 3, 1, 0, -2, -2,
                   -3, -3]


def test_scp_standard_example_avm_and_sample_interval(tmp_path):
    """The standard's own example through a whole record, with AVM 5000 nV and a 4000-µs interval."""
    d = huffman_decode(EXAMPLE, 28, [DEFAULT_HUFFMAN_TABLE])
    assert d[:2].tolist() == [13, 14]
    f = tmp_path / "example.scp"
    f.write_bytes(_scp([(1, 1, 28, EXAMPLE), (2, 1, 28, EXAMPLE)], diff=2, tables=struct.pack("<H", 19999),
                       avm=5000, interval=4000))
    rec = eio.read(f)
    assert rec.fs == 250.0 and rec.leads[:2] == ("I", "II")
    np.testing.assert_allclose(rec.lead("I"), np.array(EXAMPLE_SAMPLES) * 0.005, atol=1e-12)
    assert rec.meta["original_units"] == "5000 nV/count"


def test_scp_differences_wrap_around_16_bits(tmp_path):
    """Samples are 16-bit and encoders difference them in 16-bit arithmetic: a jump from +20000 to
    -20000 is stored as the wrapped difference +25536 and decoded as 45536 (+45.5 mV)."""
    x = np.array([20000, -20000, 20000, 0, -32000, 32000] * 50, dtype=np.int64)
    first = np.concatenate([[x[0]], np.diff(x)])
    second = np.concatenate([x[:2], x[2:] - 2 * x[1:-1] + x[:-2]])
    for diff, d in ((1, first), (2, second)):
        raw = d.astype(np.int64).astype("<i2").tobytes()  # 16-bit wrap
        f = tmp_path / f"wrap{diff}.scp"
        f.write_bytes(_scp([(1, 1, x.size, raw), (2, 1, x.size, raw)], diff=diff, tables=None))
        np.testing.assert_allclose(eio.read(f).lead("I"), x * 0.001, atol=1e-12)


def test_scp_leads_recorded_one_group_after_another(tmp_path):
    """Section 3 gives each lead its first and last sample number: a 3-channel cart records I, II,
    III, then V1, V2, V3.  The later leads were placed at sample 0 and the rest zero-filled."""
    a = np.arange(500, dtype=np.int64) % 40 - 20
    b = (np.arange(500, dtype=np.int64) * 3) % 50 - 25
    raw_a, raw_b = a.astype("<i2").tobytes(), b.astype("<i2").tobytes()
    f = tmp_path / "groups.scp"
    f.write_bytes(_scp([(1, 1, 500, raw_a), (2, 1, 500, raw_a), (3, 501, 1000, raw_b), (4, 501, 1000, raw_b)],
                       diff=0, tables=None, flags=0x00))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = eio.read(f)
    said = " ".join(str(w.message) for w in caught)
    assert "not recorded simultaneously" in said and "2000 missing (NaN) sample(s)" in said
    assert rec.n_samples == 1000
    np.testing.assert_allclose(rec.lead("I")[:500], a * 0.001, atol=1e-12)
    assert np.isnan(rec.lead("I")[500:]).all() and np.isnan(rec.lead("V1")[:500]).all()
    np.testing.assert_allclose(rec.lead("V1")[500:], b * 0.001, atol=1e-12)


def test_scp_ambiguous_or_unsupported_encodings_are_refused(tmp_path):
    """A file table code with value bits and a non-zero base value (PixelMed ignores the base, the
    ECG Toolkit adds it: it was silently ignored); reference-beat subtraction flagged without its
    sections 4 and 5 (the decoding itself: tests/io/test_io_scp_beats.py); bimodal compression."""
    table = [(1, 1, 1, 0, "0"), (2, 10, 1, 100, "10"), (2, 2, 1, 1, "11")]
    tables = struct.pack("<HH", 1, len(table)) + b"".join(
        struct.pack("<BBBhI", p, t, m, v, int(c[::-1], 2)) for p, t, m, v, c in table)
    data = bytes([0b10000001, 0b01100000])  # "10"+"00000101" = 5 (or 105), then "11" = 1, "0" = 0
    f = tmp_path / "base.scp"
    f.write_bytes(_scp([(1, 1, 3, data)], diff=0, tables=tables))
    _refused(f, "Huffman code with 8 value bits and base value 100 is not supported")
    raw = (np.arange(100) % 7).astype("<i2").tobytes()
    g = tmp_path / "refbeat.scp"
    g.write_bytes(_scp([(1, 1, 100, raw)], diff=0, tables=None, flags=0x05))
    _refused(g, "reference-beat subtraction")


# ----------------------------------------------------------------------------------------- ISHNE


def _ishne(path: Path, counts: np.ndarray, fs: int, specs, res_nv, *, declared: int | None = None,
           trailer: bytes = b"") -> None:
    n_leads, n = counts.shape
    hdr = bytearray(512)  # the header after the magic and the CRC (offsets 10…521)
    struct.pack_into("<iiiih", hdr, 0, 0, n if declared is None else declared, 522, 522, 1)
    struct.pack_into("<h", hdr, 146, n_leads)
    struct.pack_into("<12h", hdr, 148, *(list(specs) + [-9] * (12 - n_leads)))
    struct.pack_into("<12h", hdr, 172, *([1] * n_leads + [-9] * (12 - n_leads)))
    struct.pack_into("<12h", hdr, 196, *(list(res_nv) + [-9] * (12 - n_leads)))
    struct.pack_into("<h", hdr, 262, fs)
    crc = binascii.crc_hqx(bytes(hdr), 0xFFFF)
    path.write_bytes(b"ISHNE1.0" + struct.pack("<H", crc) + bytes(hdr) + counts.T.astype("<i2").tobytes() + trailer)


def test_ishne_twelve_leads_with_their_own_resolutions(tmp_path, clark_counts):
    res = [2500, 5000, 1000, 1250, 2500, 2500, 3750, 2500, 2500, 2500, 2500, 10000]
    f = tmp_path / "twelve.ecg"
    _ishne(f, clark_counts, 500, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], res)
    rec = eio.read(f)
    assert rec.leads == STANDARD_12 and rec.fs == 500 and "derived_leads" not in rec.meta
    np.testing.assert_allclose(rec.signal, clark_counts * np.array(res)[:, None] * 1e-6, atol=1e-12)


def test_ishne_bytes_beyond_the_declared_samples_are_not_read(tmp_path, clark_counts):
    """The header declares the samples per lead: bytes after them (a writer's trailer) were read as
    more samples."""
    f = tmp_path / "trailer.ecg"
    _ishne(f, clark_counts[:2], 500, [5, 6], [2500, 2500], trailer=b"\x7f" * 4000)
    with pytest.warns(UserWarning, match="1000 samples per lead beyond the 5000 its header declares"):
        rec = eio.read(f)
    assert rec.n_samples == 5000
    np.testing.assert_allclose(rec.signal[:2], clark_counts[:2] * 0.0025, atol=1e-12)
    _einthoven_goldberger(rec)
    with warnings.catch_warnings():  # a header declaring more than the file holds: what is there, flagged
        warnings.simplefilter("ignore")
        _ishne(f, clark_counts[:2], 500, [5, 6], [2500, 2500], declared=6000)
        assert eio.read(f).meta["file_truncated"] is True


# ------------------------------------------------------------------------- GE CardioSoft (UK Biobank)


def test_cardiosoft_median_beat_and_millivolt_resolution(tmp_path, clark_counts):
    """RestingECGMeasurements/MedianSamples (UK Biobank field 20205) with its own rate and
    resolution; a Resolution in mVperLsb."""
    def block(tag, counts, fs, res, unit):
        leads = "".join(f'<WaveformData lead="{n}">{",".join(map(str, c))}</WaveformData>'
                        for n, c in zip(STANDARD_12, counts))
        return (f'<{tag}><NumberOfLeads>12</NumberOfLeads><SampleRate units="Hz">{fs}</SampleRate>'
                f'<Resolution units="{unit}">{res}</Resolution>{leads}</{tag}>')

    median = clark_counts[:, 1000:1600]
    xml = ("<CardiologyXML><ObservationType>RestECG</ObservationType>"
           f"<RestingECGMeasurements>{block('MedianSamples', median, 1000, 0.001, 'mVperLsb')}</RestingECGMeasurements>"
           f"{block('StripData', clark_counts, 500, 5, 'uVperLsb')}</CardiologyXML>")
    f = tmp_path / "ukb.xml"
    f.write_text(xml, "latin-1")
    strip = eio.read(f, format="cardiosoft")
    assert strip.leads == STANDARD_12 and strip.fs == 500
    np.testing.assert_allclose(strip.signal, clark_counts * 0.005, atol=1e-12)
    beat = eio.read(f, format="cardiosoft", waveform="median")
    assert beat.fs == 1000 and beat.signal.shape == (12, 600)
    np.testing.assert_allclose(beat.signal, median * 0.001, atol=1e-12)
