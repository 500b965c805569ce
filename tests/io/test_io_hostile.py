"""Hostile input: every case must give a one-line RecordReadError naming the file, promptly,
with bounded memory, and never a traceback from the CLI."""

from __future__ import annotations

import os
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError

DATA = Path(__file__).resolve().parent.parent / "data"
F = DATA / "formats"
VENDOR = {
    "muse": F / "muse_xml" / "musePHI_muse_ecg1.xml",
    "hl7": F / "hl7_aecg" / "hl7_2003-12_example_aECG.xml",
    "dicom": F / "dicom" / "ecgtoolkit_Example.dcm",
    "scp": F / "scp_ecg" / "ecgtoolkit_Example.scp",
    "sierra": F / "sierra_xml" / "v1.03_129DYPRG.XML",
}

MAX_SECONDS = 5.0
MAX_PEAK_BYTES = 200 * 1024 * 1024


def _expect_error(path: Path, **kw) -> str:
    t0 = time.perf_counter()
    with pytest.raises(RecordReadError) as err:
        for _ in eio.iter_read(path, **kw):
            pass
    elapsed = time.perf_counter() - t0
    # second run under tracemalloc (numpy reports its buffers to it): peak allocation is bounded
    tracemalloc.start()
    try:
        with pytest.raises(RecordReadError):
            for _ in eio.iter_read(path, **kw):
                pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert path.name in msg, msg
    assert elapsed < MAX_SECONDS, f"{elapsed:.1f} s for {path.name}"
    assert peak < MAX_PEAK_BYTES, f"peak {peak / 1e6:.0f} MB for {path.name}"
    return msg


def _cinc(tmp_path: Path) -> Path:
    for ext in (".hea", ".mat"):
        shutil.copy(DATA / "cinc2021" / f"E07500{ext}", tmp_path / f"E07500{ext}")
    return tmp_path / "E07500.hea"


@pytest.mark.parametrize("name", sorted(VENDOR))
def test_truncated_vendor_files(tmp_path, name):
    if name == "sierra":
        pytest.importorskip("sierraecg")
    src = VENDOR[name]
    data = src.read_bytes()
    dst = tmp_path / f"trunc{src.suffix}"
    dst.write_bytes(data[: len(data) // 2])
    _expect_error(dst)


def test_truncated_wfdb_signal_file(tmp_path):
    hea = _cinc(tmp_path)
    mat = tmp_path / "E07500.mat"
    mat.write_bytes(mat.read_bytes()[:5000])
    assert "truncated" in _expect_error(hea)


def test_truncated_edf(tmp_path):
    rec = eio.read(DATA / "cinc2021" / "E07500.hea")
    out = eio.write(rec, tmp_path / "x.edf", "edf")
    out.write_bytes(out.read_bytes()[:20000])
    assert "truncated" in _expect_error(out)


def test_truncated_npy_and_hdf5(tmp_path):
    import h5py

    np.save(tmp_path / "a.npy", np.zeros((12, 5000)))
    p = tmp_path / "a.npy"
    p.write_bytes(p.read_bytes()[:3000])
    _expect_error(p, fs=500)
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["tracings"] = np.zeros((4, 4096, 12), np.float32)
    h = tmp_path / "b.h5"
    h.write_bytes(h.read_bytes()[:4000])
    _expect_error(h)


def test_bad_base64_in_muse(tmp_path):
    text = VENDOR["muse"].read_bytes().decode("latin-1")
    start = text.index("<WaveFormData>", text.index("<WaveformType>Rhythm")) + len("<WaveFormData>")
    bad = text[:start] + "\n@@@###$$$" + text[start + 10:]
    p = tmp_path / "bad_b64.xml"
    p.write_bytes(bad.encode("latin-1"))
    assert "base64" in _expect_error(p)


def test_bad_base64_in_sierra(tmp_path):
    text = VENDOR["sierra"].read_text(encoding="utf-8")
    start = text.index(">", text.index("<parsedwaveforms")) + 1
    p = tmp_path / "bad_b64_sierra.xml"
    p.write_text(text[:start] + "%%%%" + text[start + 4:], encoding="utf-8")
    assert "base64" in _expect_error(p)


@pytest.mark.parametrize("root", ["RestingECG", "AnnotatedECG", "restingecgdata"])
def test_xml_entity_bomb(tmp_path, root):
    ents = ['<!ENTITY a0 "lolololololololololo">'] + [
        f'<!ENTITY a{k} "{("&a" + str(k - 1) + ";") * 10}">' for k in range(1, 10)
    ]
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE {root} [\n{chr(10).join(ents)}\n]>\n<{root}>&a9;</{root}>\n'
    p = tmp_path / "bomb.xml"
    p.write_text(doc)
    msg = _expect_error(p)
    assert "unsafe XML" in msg or "not a known ECG dialect" in msg


def test_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    doc = (f'<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY x SYSTEM "file://{secret}">]>'
           "<RestingECG><PatientDemographics><PatientID>&x;</PatientID></PatientDemographics></RestingECG>")
    p = tmp_path / "xxe.xml"
    p.write_text(doc)
    msg = _expect_error(p)
    assert "s3cr3t" not in msg


def test_wfdb_header_declaring_1e12_samples(tmp_path):
    hea = _cinc(tmp_path)
    lines = hea.read_text().splitlines()
    lines[0] = "E07500 12 500 1000000000000"
    hea.write_text("\n".join(lines) + "\n")
    msg = _expect_error(hea)
    assert "1000000000000" in msg


def test_edf_header_declaring_1e12_samples(tmp_path):
    rec = eio.read(DATA / "cinc2021" / "E07500.hea")
    out = eio.write(rec, tmp_path / "big.edf", "edf")
    raw = bytearray(out.read_bytes())
    raw[236:244] = b"99999999"  # number of data records
    n_sig = int(raw[252:256])
    off = 256 + 216 * n_sig
    raw[off:off + 8] = b"99999999"  # samples per record of signal 0
    out.write_bytes(bytes(raw))
    _expect_error(out)


def test_muse_lead_declaring_1e12_samples(tmp_path):
    text = VENDOR["muse"].read_bytes().decode("latin-1")
    text = text.replace("<LeadSampleCountTotal>5000</LeadSampleCountTotal>",
                        "<LeadSampleCountTotal>1000000000000</LeadSampleCountTotal>", 1)
    p = tmp_path / "huge.xml"
    p.write_bytes(text.encode("latin-1"))
    msg = _expect_error(p)
    # the data are not there: the count is wrong, and reading a part (max_duration=) would not help
    assert "LeadSampleCountTotal" in msg and "max_duration" not in msg, msg


def test_muse_absurd_sample_exponent_names_the_field(tmp_path):
    text = VENDOR["muse"].read_bytes()
    i = text.index(b"<WaveformType>Rhythm")  # the strip read by default
    p = tmp_path / "exp.xml"
    p.write_bytes(text[:i] + text[i:].replace(b"<SampleExponent>0<", b"<SampleExponent>400<", 1))
    assert "SampleExponent 400" in _expect_error(p)


def test_dicom_declaring_1e12_samples(tmp_path):
    import pydicom

    ds = pydicom.dcmread(str(VENDOR["dicom"]))
    ds.WaveformSequence[0].NumberOfWaveformSamples = 4_000_000_000 - 1  # UL maximum region
    p = tmp_path / "huge.dcm"
    ds.save_as(str(p))
    msg = _expect_error(p)
    # the samples are not in the file: a corrupt count, not a long record max_duration= would cut
    assert "but the file has" in msg and "max_duration" not in msg, msg


def test_sierra_absurd_duration_does_not_offer_max_duration(tmp_path):
    # a vendor XML is read whole: max_duration= would give the same refusal again
    text = VENDOR["sierra"].read_bytes()
    p = tmp_path / "long.xml"
    p.write_bytes(text.replace(b'durationperchannel="11000"', b'durationperchannel="999999999"', 1))
    msg = _expect_error(p)
    assert "above the limit" in msg and "pass max_duration" not in msg, msg


def test_npy_header_declaring_1e12_samples(tmp_path):
    p = tmp_path / "huge.npy"
    with open(p, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (12, 10**12)})
        fh.write(b"\x00" * 64)
    assert "limit" in _expect_error(p, fs=500)


def test_scp_declaring_huge_lead(tmp_path):
    import binascii
    import struct

    data = bytearray(VENDOR["scp"].read_bytes())
    # section 3 starts at byte 329 (1-based) in this file: lead 0 end sample -> 2**31
    s3 = 329 - 1 + 16
    struct.pack_into("<I", data, s3 + 2 + 4, 2**31)
    # fix the section and record CRCs so that only the size is wrong
    length = struct.unpack_from("<I", data, 329 - 1 + 4)[0]
    struct.pack_into("<H", data, 329 - 1, binascii.crc_hqx(bytes(data[329 - 1 + 2: 329 - 1 + length]), 0xFFFF))
    struct.pack_into("<H", data, 0, binascii.crc_hqx(bytes(data[2:]), 0xFFFF))
    p = tmp_path / "huge.scp"
    p.write_bytes(bytes(data))
    assert "pass max_duration" not in _expect_error(p)  # an SCP record is decoded whole: it would not help


def test_dicom_without_waveform(tmp_path):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture image
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "img.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "X"
    ds.save_as(str(tmp_path / "img.dcm"), enforce_file_format=True)
    assert pydicom.dcmread(str(tmp_path / "img.dcm")).PatientID == "X"
    assert "no waveform" in _expect_error(tmp_path / "img.dcm")


EXTS = [".xml", ".dcm", ".scp", ".edf", ".bdf", ".hea", ".npy", ".npz", ".h5", ".csv", ".tsv", ".SCP",
        ".gz", ".zst", ".bz2", ".xz", ".zip", ".hea.gz"]


@pytest.mark.parametrize("ext", EXTS)
def test_zero_length_file(tmp_path, ext):
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    assert "empty" in _expect_error(p, fs=500)


@pytest.mark.parametrize("ext", EXTS)
def test_binary_junk_with_known_extension(tmp_path, ext):
    rng = np.random.default_rng(0)
    p = tmp_path / f"junk{ext}"
    p.write_bytes(rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    _expect_error(p, fs=500)


def test_missing_file_and_directory(tmp_path):
    _expect_error(tmp_path / "nope.xml")
    d = tmp_path / "dir.edf"
    d.mkdir()
    _expect_error(d)


def test_hostile_files_never_stop_the_cli_batch(tmp_path, capsys):
    from ecgfounder.cli import main

    good = tmp_path / "good.scp"
    shutil.copy(VENDOR["scp"], good)
    (tmp_path / "empty.xml").write_bytes(b"")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(os.urandom(5000))
    code = main(["info", str(tmp_path / "empty.xml"), str(good), str(junk)])
    out, err = capsys.readouterr()
    assert code != 0
    assert "good.scp" in out and "12 leads" in out
    assert "Traceback" not in out + err
    assert err.count("empty.xml") == 1 and err.count("junk.dcm") == 1
    for line in err.strip().splitlines():
        assert line.startswith("error: ")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_refused_not_waited_on(tmp_path):
    """Opening a FIFO waits until a writer comes: a pipe named like a record (or a header's signal
    file) hung a whole predict run. Refused at once, in a thread the test does not wait on for ever."""
    import shutil
    import threading

    from ecgfounder.errors import RecordReadError

    for name in ("x.edf", "y.mat", "z.xml"):
        os.mkfifo(tmp_path / name)
    shutil.copy(DATA / "cinc2021" / "E07500.hea", tmp_path / "q.hea")
    (tmp_path / "q.hea").write_text((tmp_path / "q.hea").read_text().replace("E07500.mat", "q.mat"))
    os.mkfifo(tmp_path / "q.mat")
    said: dict[str, str] = {}

    def read_all() -> None:
        for name in ("x.edf", "y.mat", "z.xml", "q.hea"):
            try:
                eio.read(tmp_path / name)
            except RecordReadError as exc:
                said[name] = str(exc)

    t = threading.Thread(target=read_all, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), f"a read waited on a named pipe (answered so far: {sorted(said)})"
    assert all("not a regular file" in said.get(n, "") for n in ("x.edf", "y.mat", "z.xml", "q.hea")), said
