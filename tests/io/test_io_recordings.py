"""Issue 10 (right values from every vendor's file), reader fixes 1-6, issue 14 items 8 and 10:
each test writes the variant that broke from a shared file (gap + pulse appended, ABP channel
added, compressed, encoding mis-declared, byte count capped, section id damaged, unit byte
non-ASCII, columns in MIMIC-IV-ECG order) and checks the values read."""

from __future__ import annotations

import binascii
import bz2
import gzip
import json
import lzma
import re
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.signal.leads import STANDARD_12

from scpbuild import record  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"
F = DATA / "formats"
MUSE = F / "muse_xml" / "musePHI_muse_ecg1.xml"
HL7 = F / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"
SCP = F / "scp_ecg" / "ecgtoolkit_Example.scp"
CINC = DATA / "cinc2021" / "E07500.hea"


def einthoven_error(rec) -> float:
    """max |II − (I + III)| over the whole signal, as a fraction of II's range."""
    i, ii, iii = rec.lead("I"), rec.lead("II"), rec.lead("III")
    return float(np.nanmax(np.abs(ii - (i + iii))) / np.ptp(ii))


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eio.read(path, **kw)


# ------------------------------------------------------------------ 1. calibration pulse
def _hl7_with_gap_and_pulse(tmp_path: Path) -> Path:
    """The HL7 example with a 0.5-s blank gap and a 0.2-s 1-mV pulse appended to every rhythm lead,
    as an aECG converted from a Philips cart carries them (scale 2.5 µV: 1 mV = 400 digits)."""
    text = HL7.read_text(encoding="utf-8")
    cut = text.index("REPRESENTATIVE_BEAT")
    extra = " " + " ".join(["0"] * 250 + ["400"] * 100)
    head = re.sub(r"(<digits>[^<]*)</digits>", lambda m: m.group(1).rstrip() + extra + " </digits>", text[:cut])
    p = tmp_path / "hl7_with_pulse.xml"
    p.write_text(head + text[cut:], encoding="utf-8")
    return p


def test_hl7_calibration_pulse_is_trimmed_and_einthoven_holds(tmp_path):
    plain = _read(HL7)
    with pytest.warns(UserWarning, match="calibration pulse"):
        rec = eio.read(_hl7_with_gap_and_pulse(tmp_path))
    assert rec.meta["calibration_trimmed"] is True and rec.meta["calibration_pulse_s"] == pytest.approx(10.5)
    assert rec.n_samples == plain.n_samples
    np.testing.assert_array_equal(rec.signal, plain.signal)
    assert einthoven_error(rec) < 0.05
    kept = _read(_hl7_with_gap_and_pulse(tmp_path), trim_calibration=False)
    assert kept.n_samples == plain.n_samples + 350 and einthoven_error(kept) > 0.05


@pytest.mark.parametrize("path", sorted(p for p in F.rglob("*") if p.suffix.lower() in (".xml", ".dcm", ".scp")),
                         ids=lambda p: p.name)
def test_einthoven_holds_over_the_whole_signal_of_every_format(path):
    pytest.importorskip("sierraecg") if "sierra" in str(path) else None
    rec = _read(path)
    assert {"I", "II", "III"} <= set(rec.leads)
    # the Healforce handheld stores I, II and III each measured (gains ~6% apart, 10-bit counts): 0.087
    assert einthoven_error(rec) < (0.1 if "healforce" in path.name else 0.05)


# ------------------------------------------------------------------ 2. non-voltage channels
def test_wfdb_abp_channel_is_not_a_lead(tmp_path):
    import wfdb

    rec = _read(CINC)
    abp = 90 + 30 * np.sin(np.arange(rec.n_samples) / 80.0)
    p_signal = np.column_stack([rec.lead("I"), rec.lead("II"), abp, np.full(rec.n_samples, 97.0)])
    wfdb.wrsamp("abp", fs=500, units=["mV", "mV", "mmHg", "NU"], sig_name=["I", "II", "ABP", "PLETH"],
                p_signal=p_signal, fmt=["16"] * 4, write_dir=str(tmp_path))
    out = _read(tmp_path / "abp.hea")
    assert "ABP" not in out.leads and "PLETH" not in out.leads
    assert out.meta["other_channels"] == ("ABP (mmHg)", "PLETH (NU)")
    assert out.leads == ("I", "II", "III", "aVR", "aVL", "aVF") and out.meta["units"] == "mV"
    np.testing.assert_allclose(out.lead("II"), rec.lead("II"), atol=1e-2)


def test_edf_non_ascii_unit_in_a_non_ecg_channel(tmp_path):
    import pyedflib

    rec = _read(CINC)
    p = tmp_path / "temp_channel.edf"
    w = pyedflib.EdfWriter(str(p), 3, file_type=pyedflib.FILETYPE_EDFPLUS)
    hdr = lambda lab, dim, lo, hi: {"label": lab, "dimension": dim, "sample_frequency": 500,  # noqa: E731
                                    "physical_min": lo, "physical_max": hi, "digital_min": -32768,
                                    "digital_max": 32767, "transducer": "", "prefilter": ""}
    w.setSignalHeaders([hdr("ECG I", "mV", -5, 5), hdr("ECG II", "mV", -5, 5), hdr("Temp", "XC", 0, 50)])
    w.writeSamples([rec.lead("I"), rec.lead("II"), np.full(rec.n_samples, 37.0)])
    w.close()
    raw = bytearray(p.read_bytes())
    n_sig = int(raw[252:256])  # 4: three signals and the EDF+ annotation channel
    dim = 256 + n_sig * (16 + 80) + 2 * 8
    assert raw[dim:dim + 2] == b"XC"
    raw[dim] = 0xB0  # '°' in latin-1: not ASCII, refused by pyedflib
    p.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="outside ASCII"):
        out = eio.read(p)
    assert out.meta["header_repaired"] and out.meta["other_channels"] == ("Temp (degC)",)
    np.testing.assert_allclose(out.lead("I"), rec.lead("I"), atol=2e-4)


def test_edf_with_only_non_voltage_channels_names_them(tmp_path):
    import pyedflib

    p = tmp_path / "spo2.edf"
    w = pyedflib.EdfWriter(str(p), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": "SpO2", "dimension": "%", "sample_frequency": 100, "physical_min": 0,
                         "physical_max": 100, "digital_min": -32768, "digital_max": 32767, "transducer": "",
                         "prefilter": ""}])
    w.writeSamples([np.full(1000, 97.0)])
    w.close()
    with pytest.raises(eio.read.__globals__["RecordReadError"], match=r"SpO2 \(%\)") as err:
        eio.read(p)
    assert "among []" not in str(err.value) and "spo2.edf" in str(err.value)


# ------------------------------------------------------------------ 3. info --json is strict JSON
def test_info_json_is_strict_json_with_nan_samples(tmp_path, capsys):
    import wfdb

    from ecgfounder.cli import main

    sig = np.random.default_rng(0).standard_normal((2000, 2))
    sig[:, 1] = np.nan  # a lead with no valid sample: peak-to-peak is NaN
    wfdb.wrsamp("nan", fs=500, units=["mV", "mV"], sig_name=["V1", "V2"], p_signal=sig, fmt=["16", "16"],
                adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(tmp_path))
    assert main(["info", "--json", str(tmp_path / "nan.hea")]) == 0
    out = capsys.readouterr().out.strip()

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    d = json.loads(out, parse_constant=refuse)
    assert d["peak_to_peak_mv"][1] is None and d["non_finite_samples"] == 2000


# ------------------------------------------------------------------ 4. lead-off device statement
def test_lead_off_statement_is_flagged(tmp_path):
    text = MUSE.read_bytes().decode("latin-1")
    p = tmp_path / "leads_off.xml"
    p.write_bytes(text.replace("Ventricular-paced rhythm", "All leads off", 1).encode("latin-1"))
    with pytest.warns(UserWarning, match="missing or disconnected leads"):
        rec = eio.read(p)
    assert rec.meta["lead_off_statement"] == "All leads off" and rec.meta["lead_off"] is True
    assert "lead_off_statement" not in _read(MUSE).meta
    p2 = tmp_path / "two_off.xml"
    p2.write_bytes(text.replace("Ventricular-paced rhythm", "Lead(s) unsuitable for analysis: V1, aVL", 1).encode("latin-1"))
    with pytest.warns(UserWarning, match="V1, aVL off"):
        rec2 = eio.read(p2)
    assert rec2.meta["leads_off"] == ("V1", "aVL") and "lead_off" not in rec2.meta


# ------------------------------------------------------------------ 5. one derived-lead policy
def _scp_raw(leads_counts: list[np.ndarray], lead_ids: list[int], avm_nv: int, interval_us: int,
             cap: int | None = None) -> bytes:
    """An SCP-ECG record (sections 0, 1, 3, 6; uncompressed int16 samples) built from the standard's
    layout; ``cap`` writes byte counts no larger than ``cap``, as a writer capping them would."""
    n = len(leads_counts[0])
    data = [np.asarray(x, dtype="<i2").tobytes() for x in leads_counts]
    s3 = struct.pack("<BB", len(lead_ids), 0x04) + b"".join(struct.pack("<IIB", 1, n, i) for i in lead_ids)
    counts = [min(len(d), cap) if cap else len(d) for d in data]
    s6 = struct.pack("<HHBB", avm_nv, interval_us, 0, 0) + b"".join(struct.pack("<H", c) for c in counts)
    s6 += b"".join(data)
    return record({1: b"\xff\x00\x00", 3: s3, 6: s6})


def test_8_lead_scp_and_8_lead_muse_give_the_same_12_leads(tmp_path):
    muse = _read(MUSE)
    assert muse.meta["derived_leads"] == ("III", "aVR", "aVL", "aVF")
    stored = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    counts = [np.round(muse.lead(n) / 0.00488).astype(int) for n in stored]
    p = tmp_path / "eight.scp"
    p.write_bytes(_scp_raw(counts, [1, 2, 3, 4, 5, 6, 7, 8], 4880, 2000))
    scp = _read(p)
    assert scp.leads == muse.leads == STANDARD_12
    assert scp.meta["derived_leads"] == muse.meta["derived_leads"]
    np.testing.assert_allclose(scp.signal, muse.signal, atol=1e-9)


# ------------------------------------------------------------------ 6. refusals that could be reads
@pytest.mark.parametrize("kind", ["gz", "zst", "bz2", "xz"])
def test_compressed_copies_read_identically(tmp_path, kind):
    pack = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "zst": lambda b: __import__("zstandard").ZstdCompressor().compress(b)}[kind]
    for src in (MUSE, SCP):
        dst = tmp_path / f"{src.name}.{kind}"
        dst.write_bytes(pack(src.read_bytes()))
        plain, packed = _read(src), _read(dst)
        np.testing.assert_array_equal(packed.signal, plain.signal)
        assert packed.leads == plain.leads and packed.fs == plain.fs
        assert packed.meta["compression"] == {"gz": "gzip", "zst": "zstd", "bz2": "bzip2", "xz": "xz"}[kind]
        assert packed.meta["source"] == str(dst)
    # a WFDB record whose header and signal file are both compressed
    for ext in (".hea", ".mat"):
        (tmp_path / f"E07500{ext}.{kind}").write_bytes(pack((DATA / "cinc2021" / f"E07500{ext}").read_bytes()))
    np.testing.assert_array_equal(_read(tmp_path / f"E07500.hea.{kind}").signal, _read(CINC).signal)


def test_zip_archive_of_records(tmp_path):
    z = tmp_path / "archive.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for ext in (".hea", ".mat"):
            zf.write(DATA / "cinc2021" / f"E07500{ext}", f"records/E07500{ext}")
        zf.write(MUSE, "records/muse.xml")
    recs = list(eio.iter_read(z))
    assert sorted(r.meta["archive_member"] for r in recs) == ["records/E07500.hea", "records/muse.xml"]
    with zipfile.ZipFile(z, "a") as zf:  # a file not taken for an ECG is named, in the archive's terms
        zf.writestr("records/export.xml", "<report><patient/></report>")
    with pytest.warns(UserWarning, match=r"passed over") as said:
        assert len(list(eio.iter_read(z))) == 2
    assert [str(w.message) for w in said if "passed over" in str(w.message)][0].startswith(
        f"{z}: 1 XML/CSV file(s) passed over, not taken for ECG recordings (") and ": records/export.xml;" in str(said[0].message)
    by = {r.meta["archive_member"]: r for r in recs}
    np.testing.assert_array_equal(by["records/E07500.hea"].signal, _read(CINC).signal)
    assert eio.find_records([tmp_path]) == [z]
    with pytest.raises(eio.read.__globals__["RecordReadError"], match="several recordings"):
        eio.read(z)


def test_members_named_alike_in_two_folders_are_two_records_and_no_member_leaves_its_folder(tmp_path):
    """Exports named alike in two folders (site1/ECG001.xml, site2/ECG001.xml) are two recordings,
    each named by its path in the archive (the second was dropped without a word: the archive's
    folders were flattened); a member's path cannot lead out of the extraction folder."""
    z = tmp_path / "sites.zip"
    other = _read(MUSE)
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("site1/ECG001.xml", MUSE.read_bytes())
        zf.writestr("site2/ECG001.xml", MUSE.read_bytes())
        zf.writestr("../../escaped/ECG002.xml", MUSE.read_bytes())
        zf.writestr("/root/ECG003.xml", MUSE.read_bytes())
        zf.writestr("__MACOSX/site1/._ECG001.xml", b"mac")
        zf.writestr("site1/.hidden.xml", MUSE.read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = list(eio.iter_read(z))
    assert sorted(r.meta["archive_member"] for r in recs) == [
        "escaped/ECG002.xml", "root/ECG003.xml", "site1/ECG001.xml", "site2/ECG001.xml"]
    assert all(np.array_equal(r.signal, other.signal) for r in recs)
    assert not (tmp_path.parent / "escaped").exists() and not Path("/root/ECG003.xml").exists()


def test_a_member_that_cannot_be_extracted_is_one_failure_not_the_archives(tmp_path):
    """An encrypted member, or one whose name the disk refuses (a folder name over 255 bytes), failed
    the whole archive (the error showing the server's temporary folder): each is now a failure of
    its own, named in the archive, and the other members are read."""
    z = tmp_path / "mixed.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.xml", MUSE.read_bytes())
        zf.writestr("x" * 300 + "/long.xml", MUSE.read_bytes())
        zf.writestr("secret.xml", MUSE.read_bytes())
    raw = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        off = zf.getinfo("secret.xml").header_offset
    raw[off + 6] |= 1  # the encryption flag, in the local header and the central directory
    for k in range(len(raw) - 4):
        if raw[k:k + 4] == b"PK\x01\x02" and raw[k + 46:k + 46 + len(b"secret.xml")] == b"secret.xml":
            raw[k + 8] |= 1
    z.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = list(eio.iter_read(z, errors="yield"))
    from ecgfounder.recording import Recording

    recs = [g for g in got if isinstance(g, Recording)]
    errs = {g.member: str(g) for g in got if not isinstance(g, Recording)}
    assert [r.meta["archive_member"] for r in recs] == ["a.xml"]
    assert set(errs) == {"x" * 300 + "/long.xml", "secret.xml"}
    assert "encrypted (password-protected)" in errs["secret.xml"] and "File name too long" in errs["x" * 300 + "/long.xml"]
    assert all(str(z) in e and "ecgfounder-" not in e.replace(str(z), "") for e in errs.values())


def test_files_of_one_path_in_a_zip_are_read_once_and_said(tmp_path):
    """A second entry of one path (or one that differs only in case: one file on a case-insensitive
    disk) was passed over without a word; now a warning names them."""
    z = tmp_path / "twice.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (zipfile's own "Duplicate name")
        with zipfile.ZipFile(z, "w") as zf:
            for name in ("a.xml", "A.XML", "a.xml"):
                zf.writestr(name, MUSE.read_bytes())
    with pytest.warns(UserWarning, match=r"twice.zip: 2 file\(s\) of the zip archive passed over, the same path as a "
                                         r"file before them .*: A.XML, a.xml; give each in an archive of its own"):
        assert [r.meta["archive_member"] for r in eio.iter_read(z)] == ["a.xml"]


def test_a_member_of_corrupt_data_is_one_failure_not_the_archives(tmp_path):
    z = tmp_path / "k.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.xml", MUSE.read_bytes())
        zf.writestr("broken.xml", MUSE.read_bytes())
    raw = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        start = zf.getinfo("broken.xml").header_offset + 30 + len("broken.xml")
    raw[start + 100:start + 400] = bytes(b ^ 0x5A for b in raw[start + 100:start + 400])
    z.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = list(eio.iter_read(z, errors="yield"))
    assert [g.meta["archive_member"] for g in got if not isinstance(g, RecordReadError)] == ["a.xml"]
    (err,) = [g for g in got if isinstance(g, RecordReadError)]
    assert err.member == "broken.xml" and "broken.xml in the zip archive: cannot be extracted: corrupt zip data" in str(err)


def test_a_bad_member_of_an_archive_costs_no_other_member(tmp_path):
    """The reading of a zip stopped at its first unreadable member: the members after it were lost
    without a word.  Every readable member is read; then one error names each bad one."""
    bad = b"<RestingECG><Waveform>"
    z = tmp_path / "mixed.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in [("a.xml", MUSE.read_bytes()), ("b.xml", bad), ("c.xml", MUSE.read_bytes()), ("d.xml", bad)]:
            zf.writestr(name, data)
    got = []
    with pytest.raises(RecordReadError) as err:
        for rec in eio.iter_read(z):
            got.append(rec.meta["archive_member"])
    assert got == ["a.xml", "c.xml"]
    said = str(err.value)
    assert said.startswith(f"{z}: 2 of its files could not be read (the others were): b.xml in the zip archive: ")
    assert "; d.xml in the zip archive: " in said and "\n" not in said
    with zipfile.ZipFile(z, "w") as zf:  # many bad ones: the first five named
        zf.writestr("a.xml", MUSE.read_bytes())
        for k in range(8):
            zf.writestr(f"bad{k}.xml", bad)
    with pytest.raises(RecordReadError, match=r"8 of its files .*bad4\.xml.*; and 3 more$"):
        list(eio.iter_read(z))


def test_zip_archive_under_a_vendor_extension(tmp_path):
    """A zip of ECG files named by its exporter (``.ecgz``, no extension) was taken for NumPy's .npz
    by its first bytes and failed on its first member; it is read as an archive, and a real .npz
    under an unknown name still as arrays."""
    for name in ("export.ecgz", "export"):
        z = tmp_path / name
        with zipfile.ZipFile(z, "w") as zf:
            zf.write(MUSE, "a.xml")
            zf.write(MUSE, "b.xml")
        recs = list(eio.iter_read(z))
        assert [r.meta["archive_member"] for r in recs] == ["a.xml", "b.xml"]
        assert all(r.meta["format"] == "muse" and r.meta["compression"] == "zip" for r in recs)
        np.testing.assert_array_equal(recs[1].signal, _read(MUSE).signal)
        with pytest.raises(RecordReadError, match="unknown ECG file type"):  # not "npz"
            eio.detect_format(z)
    arrays = tmp_path / "batch.bin"
    with open(arrays, "wb") as fh:
        np.savez(fh, x=np.zeros((2, 12, 5000), np.float32))
    assert eio.detect_format(arrays) == "npz"
    assert len(list(eio.iter_read(arrays, fs=500, leads=list(STANDARD_12)))) == 2


def test_xml_declaring_utf16_with_utf8_bytes(tmp_path):
    text = HL7.read_text(encoding="utf-8")
    p = tmp_path / "says_utf16.xml"
    p.write_bytes(text.replace('encoding="utf-8"', 'encoding="UTF-16"', 1).encode("utf-8"))
    with pytest.warns(UserWarning, match="declaration says utf-16"):
        rec = eio.read(p)
    assert rec.meta["encoding_fixed"] == "declared utf-16, read as utf-8"
    np.testing.assert_array_equal(rec.signal, _read(HL7).signal)


def test_scp_with_capped_byte_counts(tmp_path):
    muse = _read(MUSE)
    stored = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    counts = [np.round(muse.lead(n) / 0.00488).astype(int) for n in stored]
    p = tmp_path / "capped.scp"
    p.write_bytes(_scp_raw(counts, [1, 2, 3, 4, 5, 6, 7, 8], 4880, 2000, cap=6000))  # 10,000 bytes a lead
    with pytest.warns(UserWarning, match="byte counts"):
        rec = eio.read(p)
    assert rec.meta["scp_byte_counts_ignored"] is True
    np.testing.assert_allclose(rec.signal, muse.signal, atol=1e-9)


def test_scp_with_damaged_section_1_id(tmp_path):
    data = bytearray(SCP.read_bytes())
    sid, length, index = struct.unpack_from("<HII", data, 6 + 16 + 10 * 1)
    assert sid == 1 and length > 0
    struct.pack_into("<H", data, index - 1 + 2, 0x4D4D)  # the anonymiser overwrote the id
    struct.pack_into("<H", data, 0, binascii.crc_hqx(bytes(data[2:]), 0xFFFF))
    p = tmp_path / "anonymised.scp"
    p.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged header id"):
        rec = eio.read(p)
    assert rec.meta["scp_damaged_sections"] == (1,)
    np.testing.assert_array_equal(rec.signal, _read(SCP).signal)
    # section 6 damaged: refused, and the message says so instead of blaming the pointers
    sid, length, index = struct.unpack_from("<HII", data, 6 + 16 + 10 * 6)
    struct.pack_into("<H", data, index - 1 + 2, 0x4D4D)
    struct.pack_into("<H", data, 0, binascii.crc_hqx(bytes(data[2:]), 0xFFFF))
    p.write_bytes(bytes(data))
    with pytest.raises(eio.read.__globals__["RecordReadError"], match="damaged section header"):
        eio.read(p)


# ------------------------------------------------------------------ issue 14 item 8: headerless order
def test_headerless_12_columns_in_mimic_order_are_recognised(tmp_path):
    rec = _read(CINC)
    mimic = rec.signal[[0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]]  # aVF before aVL
    np.save(tmp_path / "mimic.npy", mimic)
    with pytest.warns(UserWarning, match="MIMIC-IV-ECG order"):
        out = eio.read(tmp_path / "mimic.npy", fs=500)
    assert out.meta["leads_assumed"] == "mimic"
    np.testing.assert_array_equal(out.lead("aVL"), rec.lead("aVL"))
    np.testing.assert_array_equal(out.lead("aVF"), rec.lead("aVF"))
    (tmp_path / "std.csv").write_text("# fs=500\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in rec.signal.T))
    with pytest.warns(UserWarning, match="standard order"):
        std = eio.read(tmp_path / "std.csv")
    assert std.meta["leads_assumed"] == "standard" and std.leads == STANDARD_12


# ------------------------------------------------------------------ issue 14 item 10: exports
def test_edf_export_keeps_length_age_and_statements(tmp_path):
    rec = _read(MUSE)
    rec = rec.replace(signal=np.concatenate([rec.signal, rec.signal[:, :150]], axis=1))  # 10.3 s
    back = _read(eio.write(rec, tmp_path / "x.edf", "edf"))
    assert back.n_samples == rec.n_samples and back.fs == rec.fs
    assert back.meta["age"] == rec.meta["age"] and back.meta["sex"] == rec.meta["sex"]
    assert back.meta["statements"] == rec.meta["statements"]
    wf = _read(eio.write(rec, tmp_path / "y.hea", "wfdb"))
    assert wf.meta["age"] == rec.meta["age"] and wf.meta["sex"] == rec.meta["sex"]
    assert len(wf.meta["statements"]) == len(rec.meta["statements"])


# ------------------------------------------------------------------ max_duration (long records)
def test_max_duration_reads_the_first_part(tmp_path):
    rec = _read(CINC)
    for path in (CINC, eio.write(rec, tmp_path / "x.edf", "edf")):
        part = _read(path, max_duration=2.0)
        assert part.n_samples == 1000
        np.testing.assert_allclose(part.signal, _read(path).signal[:, :1000])
    np.save(tmp_path / "x.npy", rec.signal)
    assert _read(tmp_path / "x.npy", fs=500, max_duration=3).n_samples == 1500


def test_numbered_channels_are_not_taken_for_a_lead_stored_twice():
    """Columns numbered 0, 1, 2, ... are channel numbers (lead selection's rule): column "1" is not
    lead I, so a recording that also names lead I keeps all its columns (one was dropped as a
    second lead I)."""
    from ecgfounder.io import policy
    from ecgfounder.recording import Recording

    sig = np.random.default_rng(1).standard_normal((3, 1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "stored more than once"
        rec = policy.finish("x.npy", Recording(sig, 500.0, ("0", "1", "I")), [])
    assert rec.leads == ("0", "1", "I") and "duplicate_leads" not in rec.meta
    np.testing.assert_array_equal(rec.signal, sig)
    with pytest.warns(UserWarning, match=r"lead\(s\) I stored more than once \(identical signals\)"):
        twice = policy.finish("x.npy", Recording(sig[[0, 0, 1]], 500.0, ("I", "lead I", "II")), [])
    assert twice.leads[:2] == ("I", "II") and twice.meta["duplicate_leads"] == ("I",)  # (III, aVR... derived)


@pytest.mark.parametrize("layout", [["V1", "II", "V1", "I"], ["V1", "V1", "V2"]])
def test_a_lead_stored_twice_keeps_the_first_and_says_so(tmp_path, layout):
    """A second channel of the same lead used to vanish without a word when limb leads were derived
    (and stay, unused, when they were not): now the first is kept and the reader says so."""
    import wfdb

    rng = np.random.default_rng(0)
    sig = rng.standard_normal((2000, len(layout)))
    unique = [f"{name}_{k}" for k, name in enumerate(layout)]  # wfdb writes unique names only
    wfdb.wrsamp("dup", fs=500, units=["mV"] * len(layout), sig_name=unique, p_signal=sig, fmt=["16"] * len(layout),
                write_dir=str(tmp_path))
    hea = tmp_path / "dup.hea"
    text = hea.read_text()
    for u, name in zip(unique, layout):
        text = text.replace(f" {u}\n", f" {name}\n")
    hea.write_text(text)
    with pytest.warns(UserWarning, match=r"lead\(s\) V1 stored more than once \(different signals\); the first of each is kept"):
        rec = eio.read(tmp_path / "dup.hea")
    assert rec.leads.count("V1") == 1 and rec.meta["duplicate_leads"] == ("V1",)
    ref = wfdb.rdrecord(str(tmp_path / "dup")).p_signal
    np.testing.assert_array_equal(rec.lead("V1"), ref[:, 0])  # the first V1


def test_an_archive_gives_each_unreadable_file_its_place_with_errors_yield(tmp_path):
    """``errors="raise"`` named at most five bad members ("and 3 more": the others unnamed) after all
    the readable ones.  ``errors="yield"`` gives each bad member's own error in its place (its name in
    ``member``), also inside a nested archive and for a member archive that cannot be opened; and
    ``read(index=k)`` counts the bad members too, as a batch's numbering does."""
    bad = b"<RestingECG><Waveform>"
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("x.xml", MUSE.read_bytes())
        zf.writestr("y.xml", bad)
    z = tmp_path / "mixed.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.xml", MUSE.read_bytes())
        for k in range(7):
            zf.writestr(f"bad{k}.xml", bad)
        zf.write(inner, "inner.zip")
        zf.writestr("broken.zip", b"PK\x03\x04 not really")
        zf.writestr("z.xml", MUSE.read_bytes())
    got = list(eio.iter_read(z, errors="yield"))
    kinds = [(type(g).__name__, g.member if isinstance(g, RecordReadError) else g.meta["archive_member"]) for g in got]
    assert kinds == ([("Recording", "a.xml")] + [("RecordReadError", f"bad{k}.xml") for k in range(7)]
                     + [("RecordReadError", "broken.zip"), ("Recording", "inner.zip"), ("RecordReadError", "y.xml"),
                        ("Recording", "z.xml")])  # (members in name order)
    assert all(str(e).startswith(f"{z}: ") and "\n" not in str(e) for e in got if isinstance(e, RecordReadError))
    assert str(got[10]).startswith(f"{z}: inner.zip in the zip archive: y.xml in the zip archive: ")
    assert str(got[8]).startswith(f"{z}: broken.zip in the zip archive: ")
    with pytest.raises(RecordReadError, match=r"9 of its files .*; and 4 more$"):  # raise: after the readable ones
        list(eio.iter_read(z))
    assert eio.read(z, index=11).meta["archive_member"] == "z.xml"
    with pytest.raises(RecordReadError, match=r"bad6\.xml in the zip archive"):
        eio.read(z, index=7)
    with pytest.raises(RecordReadError, match="no recording 12 in the file"):
        eio.read(z, index=12)
    torn = tmp_path / "torn.xml"  # a single file: its error, yielded once
    torn.write_bytes(bad)
    assert [type(g).__name__ for g in eio.iter_read(torn, errors="yield")] == ["RecordReadError"]
    with pytest.raises(eio.read.__globals__["SetupError"], match="errors='skip' is not one of"):
        next(eio.iter_read(torn, errors="skip"))


def test_a_rate_leads_or_units_given_for_a_file_that_stores_its_own_is_said_unused(tmp_path):
    """--fs/--leads given for a WFDB or MUSE file were dropped without a word (a user who gave the
    wrong file a rate never learned it was not used).  A value that differs from the file's is said
    unused (not refused: a mixed folder needs it for its CSV files), in the command line's terms."""
    from ecgfounder.cli._common import flags

    with pytest.warns(UserWarning, match=r"fs=250 \(it stores 500 Hz\) not used: a wfdb file stores its own rate"):
        rec = eio.read(CINC, fs=250)
    assert rec.fs == 500 and rec.meta["unused_options"] == ("fs=250 (it stores 500 Hz)",)
    with pytest.warns(UserWarning, match=r"leads=I,II \(it stores I,II,V1,V2,V3,V4,V5,V6\) not used: a muse file"):
        eio.read(MUSE, leads=["I", "II"])
    with pytest.warns(UserWarning, match=r"units=uV \(it stores mV\) not used"):  # (was read in mV without a word)
        assert eio.read(CINC, units="uV").signal.max() == eio.read(CINC).signal.max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "unused_options" not in eio.read(CINC, fs=500, leads=list(STANDARD_12)).meta  # the same: nothing said
        assert "unused_options" not in eio.read(CINC, units="millivolt").meta
        assert "unused_options" not in eio.read(MUSE, units="uV").meta  # (it stores µV)
        csv = tmp_path / "x.csv"
        csv.write_text("I,II\n" + "\n".join(f"{k % 7},{k % 5}" for k in range(2000)))
        assert eio.read(csv, fs=250).fs == 250  # used
    said = flags("x.hea: fs=250 (it stores 500 Hz) and leads=I,II (it stores I,II,III) not used")
    assert said == "x.hea: --fs 250 (it stores 500 Hz) and --leads I,II (it stores I,II,III) not used"


def test_an_absurd_stored_rate_advises_fs_only_where_fs_is_used(tmp_path):
    """A WFDB header's rate of 10 Hz was refused with "pass --fs if the file's rate is wrong", but a
    WFDB file ignores fs=: the advice is given only where the rate can be passed (CSV, arrays)."""
    import shutil

    for suffix in (".hea", ".mat"):
        shutil.copy(CINC.with_suffix(suffix), tmp_path / f"E07500{suffix}")
    hea = tmp_path / "E07500.hea"
    lines = hea.read_text().splitlines()
    first = lines[0].split()
    first[2] = "10"
    hea.write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
    with pytest.raises(RecordReadError) as err:
        eio.read(hea, fs=500)
    assert "10 Hz is outside the plausible ECG range" in str(err.value) and "fs=" not in str(err.value)
    csv = tmp_path / "x.csv"
    csv.write_text("# fs=5\nI,II\n" + "\n".join(f"{k % 7},{k % 5}" for k in range(3000)))
    with pytest.raises(RecordReadError, match=r"5 Hz is outside .*pass fs=\.\.\. \(CLI: --fs\)"):
        eio.read(csv)
    assert eio.read(csv, fs=500).fs == 500


def test_warnings_and_errors_of_an_archive_name_the_archive_not_its_temporary_copy(tmp_path):
    """A zip member's warnings named the private temporary folder it was expanded into
    (/tmp/ecgfounder-p93c3nmu/x.csv: ...), a path the user never gave and that is gone after reading."""
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("x.csv", "I,II\n" + "\n".join("nan,1" if k == 5 else f"{k % 7},{k % 5}" for k in range(3000)))
        zf.writestr("lone.hea", CINC.read_text())  # its signal file is not in the archive
    with pytest.warns(UserWarning) as caught:
        got = list(eio.iter_read(z, fs=500, errors="yield"))
    said = [str(w.message) for w in caught if "NaN" in str(w.message)]
    assert said and said[0].startswith(f"{z}: x.csv: 1 missing (NaN) sample(s)"), said
    assert all("ecgfounder-" not in str(w.message) for w in caught)
    bad = [g for g in got if isinstance(g, RecordReadError)]
    assert len(bad) == 1 and str(bad[0]).startswith(f"{z}: lone.hea in the zip archive: ") and "ecgfounder-" not in str(bad[0])


def test_a_ptb_headers_ecg_date_is_when_it_was_acquired(tmp_path):
    """PTB keeps the day of the ECG in a comment ('ECG date: 01/10/1990'), not on the record line:
    the printout's header had no date.  Day first, the convention of the record line's base date
    (the record's infarction was on 29-Sep-90); the record line's date and time win over it."""
    import shutil

    assert eio.read(DATA / "ptbdb" / "s0010_re.hea").meta["acquired"] == "1990-10-01"
    for f in ("E07500.hea", "E07500.mat"):
        shutil.copy(DATA / "cinc2021" / f, tmp_path / f)
    hea = tmp_path / "E07500.hea"
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(lines + ["# ECG date: 31/02/1990"]) + "\n")  # (no such day: not a date)
    assert "acquired" not in eio.read(hea).meta
    hea.write_text("\n".join([lines[0] + " 08:30:00 02/10/1990", *lines[1:], "# ECG date: 01/10/1990"]) + "\n")
    assert eio.read(hea).meta["acquired"] == "1990-10-02T08:30:00"
