"""Issue 11 (hostile input): each finding rebuilt here as a file, read in a forked child with 5 s and
500 MB above the interpreter's own address space; the outcome must be one line of the package's
own error naming the file.  Nothing here reads ../shared."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import CheckpointError, ECGFounderError, RecordReadError

# the readers' heavy imports happen once here, not in every forked child
for _fmt in ("wfdb", "edf", "dicom", "hl7", "muse", "scp", "arrays", "hdf5"):
    __import__(f"ecgfounder.io.{_fmt}")
import defusedxml.ElementTree  # noqa: E402,F401
import h5py  # noqa: E402,F401
import pydicom  # noqa: E402,F401
import pyedflib  # noqa: E402,F401
import wfdb  # noqa: E402,F401

DATA = Path(__file__).resolve().parent.parent / "data"
F = DATA / "formats"
MUSE = F / "muse_xml" / "musePHI_muse_ecg1.xml"
HL7 = F / "hl7_aecg" / "hl7_2003-12_example_aECG.xml"
DICOM = F / "dicom" / "ecgtoolkit_Example.dcm"
SCP = F / "scp_ecg" / "ecgtoolkit_Example.scp"
EXTRA_BYTES = 500 << 20
SECONDS = 5.0


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        kb = int(re.search(r"VmSize:\s+(\d+)", fh.read()).group(1))
    return kb * 1024


def limited(fn, *args, **kw) -> tuple[str, str]:
    """``fn(*args, **kw)`` in a forked child with 5 s and 500 MB more address space:
    ``('ok'|'error'|'foreign'|'memory'|'hang', detail)``; 'error' carries the package's message."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = ("foreign", "?")
        try:
            limit = _vm_bytes() + EXTRA_BYTES
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(int(SECONDS))
            fn(*args, **kw)
            out = ("ok", "")
        except ECGFounderError as exc:
            out = ("error", str(exc))
        except MemoryError:
            out = ("memory", "MemoryError")
        except BaseException as exc:  # noqa: BLE001
            out = ("foreign", f"{type(exc).__name__}: {exc}"[:500])
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + SECONDS + 3
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hang", ""
        time.sleep(0.005)
    data = os.read(r, 1 << 16)
    os.close(r)
    if not data:
        return "memory", "child died"
    return tuple(json.loads(data))


def _read_all(path, **kw):
    for _ in eio.iter_read(path, **kw):
        pass


def clean_error(path: Path, fn=None, *args, **kw) -> str:
    """The one-line package error that reading ``path`` gives, bounded in time and memory."""
    t0 = time.perf_counter()
    kind, msg = limited(fn or _read_all, *(args or (path,)), **kw)
    assert kind == "error", f"{path.name}: {kind} {msg}"
    assert "\n" not in msg and path.name in msg, msg
    assert time.perf_counter() - t0 < SECONDS
    return msg


def _cinc(tmp_path: Path) -> Path:
    for ext in (".hea", ".mat"):
        shutil.copy(DATA / "cinc2021" / f"E07500{ext}", tmp_path / f"E07500{ext}")
    return tmp_path / "E07500.hea"


# ---------------------------------------------------------------- absurd sampling rates (finding 1, 2)
@pytest.mark.parametrize("rate", ["1e-9", "1e308", "1,5", "5e-324", "0.001"])
def test_wfdb_absurd_rate_fast_path_and_wfdb_path(tmp_path, rate):
    hea = _cinc(tmp_path)
    lines = hea.read_text().splitlines()
    head = lines[0].split()
    head[2] = rate
    lines[0] = " ".join(head)
    hea.write_text("\n".join(lines) + "\n")
    assert "sampling rate" in clean_error(hea)  # was read as 1 Hz (wfdb) or 1e-9 (fast path)
    mit = tmp_path / "mit"
    mit.mkdir()
    for ext in (".hea", ".dat"):
        shutil.copy(DATA / "mitdb" / f"100{ext}", mit / f"100{ext}")
    text = (mit / "100.hea").read_text().splitlines()
    head = text[0].split()
    head[2] = rate
    text[0] = " ".join(head)
    (mit / "100.hea").write_text("\n".join(text) + "\n")
    assert "sampling rate" in clean_error(mit / "100.hea")


def test_csv_rate_comment_1e_minus_9_is_not_1_hz(tmp_path):
    p = tmp_path / "tiny_rate.csv"
    p.write_text("# fs=1e-9\nI,II\n" + "\n".join(f"{k % 7},{k % 5}" for k in range(600)))
    assert "1e-9" in clean_error(p)
    p.write_text("# fs=1,5\nI,II\n" + "\n".join(f"{k % 7},{k % 5}" for k in range(600)))
    assert "1,5" in clean_error(p)


def test_muse_absurd_rate_and_resolution(tmp_path):
    text = MUSE.read_bytes().decode("latin-1")
    p = tmp_path / "rate.xml"
    p.write_bytes(text.replace("<SampleBase>500</SampleBase>", "<SampleBase>0.000001</SampleBase>").encode("latin-1"))
    clean_error(p)
    p2 = tmp_path / "res.xml"
    p2.write_bytes(re.sub(r"<LeadAmplitudeUnitsPerBit>[^<]*", "<LeadAmplitudeUnitsPerBit>1e308",
                          text).encode("latin-1"))
    clean_error(p2)


def test_dicom_rate_1e_minus_6(tmp_path):
    import pydicom

    ds = pydicom.dcmread(str(DICOM))
    ds.WaveformSequence[0].SamplingFrequency = "1e-6"
    p = tmp_path / "slow.dcm"
    ds.save_as(str(p))
    assert "sampling rate" in clean_error(p)


def test_hl7_absurd_digits_and_increment(tmp_path):
    text = HL7.read_text(encoding="utf-8")
    p = tmp_path / "digits.xml"
    p.write_text(re.sub(r"<digits>\s*(\S+)", "<digits>1e308", text, count=3), encoding="utf-8")
    assert "infinite" in clean_error(p)
    p2 = tmp_path / "incr.xml"
    p2.write_text(text.replace('<increment value="0.002" unit="s"/>', '<increment value="1e6" unit="s"/>'),
                  encoding="utf-8")
    clean_error(p2)


def test_edf_physical_minimum_1e400(tmp_path):
    rec = eio.read(DATA / "cinc2021" / "E07500.hea")
    out = eio.write(rec, tmp_path / "phys.edf", "edf")
    raw = bytearray(out.read_bytes())
    n_sig = int(raw[252:256])
    off = 256 + n_sig * (16 + 80 + 8)  # physical minimum of signal 0
    raw[off:off + 8] = b"1e400   "
    out.write_bytes(bytes(raw))
    clean_error(out)


def test_scp_sample_interval_giving_15_hz(tmp_path):
    import binascii

    data = bytearray(SCP.read_bytes())
    # section 6 pointer from the section-0 table: id 6 at entry 6
    sid, length, index = struct.unpack_from("<HII", data, 6 + 16 + 10 * 6)
    assert sid == 6
    struct.pack_into("<H", data, index - 1 + 16 + 2, 65535)  # sample interval in µs
    struct.pack_into("<H", data, 0, binascii.crc_hqx(bytes(data[2:]), 0xFFFF))
    p = tmp_path / "slow.scp"
    p.write_bytes(bytes(data))
    assert "sampling rate" in clean_error(p)


def test_preprocess_refuses_absurd_rates_early():
    from ecgfounder.signal.preprocess import prepare

    x = np.zeros((12, 5000))
    for fs in (1e-6, 1e-9, 5e-324, 1e308, float("nan")):
        msg = clean_error(Path("rec.hea"), prepare, x, fs, eio.read(DATA / "cinc2021" / "E07500.hea").leads,
                          source="rec.hea")
        assert "sampling rate" in msg


# ---------------------------------------------------------------- HDF5 (findings 1, 3)
def test_hdf5_external_storage_reading_etc_passwd_is_refused(tmp_path):
    import h5py

    p = tmp_path / "external.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("signal", shape=(12, 100), dtype="u1", external=[("/etc/passwd", 0, 1200)])
        f.attrs["fs"] = 500.0
    msg = clean_error(p)
    assert "external storage" in msg and "root:" not in msg


def test_hdf5_virtual_dataset_and_external_link_are_refused(tmp_path):
    import h5py

    src = tmp_path / "other.h5"
    with h5py.File(src, "w") as f:
        f["x"] = np.ones((12, 5000), np.float32)
    layout = h5py.VirtualLayout(shape=(12, 5000), dtype=np.float32)
    layout[:] = h5py.VirtualSource(str(src), "x", shape=(12, 5000))
    v = tmp_path / "virtual.h5"
    with h5py.File(v, "w") as f:
        f.create_virtual_dataset("signal", layout)
        f.attrs["fs"] = 500.0
    assert "virtual" in clean_error(v)
    link = tmp_path / "link.h5"
    with h5py.File(link, "w") as f:
        f["signal"] = h5py.ExternalLink(str(src), "x")
        f.attrs["fs"] = 500.0
    assert "link" in clean_error(link)
    assert "link" in clean_error(link, _read_all, link, dataset="signal")


def test_hdf5_deep_nesting_sparse_and_gzip_bombs(tmp_path):
    import h5py

    deep = tmp_path / "deep.h5"
    with h5py.File(deep, "w") as f:
        g = f
        for k in range(200):
            g = g.create_group(f"g{k}")
        g["signal"] = np.zeros((12, 5000), np.float32)
    assert "nested" in clean_error(deep, _read_all, deep, fs=500)
    sparse = tmp_path / "sparse.h5"
    with h5py.File(sparse, "w") as f:
        f.create_dataset("signal", shape=(10**9, 12), dtype="f4", chunks=(4096, 12))
        f.attrs["fs"] = 500.0
    clean_error(sparse)
    gz = tmp_path / "gzip.h5"
    with h5py.File(gz, "w") as f:
        d = f.create_dataset("signal", shape=(12, 20_000_000), dtype="f4", chunks=(12, 100_000), compression="gzip")
        d[:, :100_000] = 0.0
        f.attrs["fs"] = 500.0
    clean_error(gz)


# ---------------------------------------------------------------- npz deflate bombs (finding 1)
def test_npz_deflate_bomb_is_refused_before_decompressing(tmp_path):
    p = tmp_path / "bomb.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (12, 700_000)}  # 67 MB of zeros
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("signal.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            zeros = bytes(12 * 8 * 10_000)
            for _ in range(70):
                fh.write(zeros)
    assert p.stat().st_size < 400_000
    assert "bomb" in clean_error(p)


def test_npz_header_declaring_more_than_the_member_holds(tmp_path):
    p = tmp_path / "liar.npz"
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (12, 10**8)})
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("signal.npy", buf.getvalue() + bytes(1000))
    assert "declares shape" in clean_error(p)


# ---------------------------------------------------------------- XML (finding 1)
def _muse_with(tmp_path: Path, name: str, insert: str) -> Path:
    text = MUSE.read_bytes().decode("latin-1")
    i = text.index("<PatientDemographics>")
    p = tmp_path / name
    p.write_bytes((text[:i] + insert + text[i:]).encode("latin-1"))
    return p


def test_xml_huge_attribute_nesting_siblings_and_text(tmp_path):
    assert "attribute" in clean_error(_muse_with(tmp_path, "attr.xml", '<X a="' + "A" * 20_000_000 + '"/>'))
    assert "nested" in clean_error(_muse_with(tmp_path, "deep.xml", "<a>" * 100_000))
    assert "elements" in clean_error(_muse_with(tmp_path, "deeper.xml", "<a>" * 1_000_000))
    assert "elements" in clean_error(_muse_with(tmp_path, "wide.xml", "<a/>" * 1_000_000))
    text = HL7.read_text(encoding="utf-8")
    p = tmp_path / "zeros.xml"
    p.write_text(text.replace("<digits>", "<digits>" + "0 " * 10_000_000, 1), encoding="utf-8")
    assert "text" in clean_error(p)


# ---------------------------------------------------------------- SCP (finding 1)
def test_scp_lead_end_offset_20_million(tmp_path):
    import binascii

    data = bytearray(SCP.read_bytes())
    sid, length, index = struct.unpack_from("<HII", data, 6 + 16 + 10 * 3)
    assert sid == 3
    struct.pack_into("<I", data, index - 1 + 16 + 2 + 4, 20_000_000)  # lead 0 end sample
    struct.pack_into("<H", data, 0, binascii.crc_hqx(bytes(data[2:]), 0xFFFF))
    p = tmp_path / "long_lead.scp"
    p.write_bytes(bytes(data))
    clean_error(p)


# ---------------------------------------------------------------- compressed inputs are bounded too
def test_gzip_and_zip_bombs(tmp_path):
    import gzip

    p = tmp_path / "bomb.xml.gz"
    with gzip.open(p, "wb", compresslevel=1) as fh:
        zeros = bytes(1 << 20)
        for _ in range(64):
            fh.write(zeros)
    assert "bomb" in clean_error(p)
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x.csv", "w") as fh:
            for _ in range(64):
                fh.write(zeros)
    assert "bomb" in clean_error(z)
    fake = tmp_path / "fake.hea.gz"
    fake.write_bytes(b"not gzip at all")
    assert "not gzip" in clean_error(fake)


# ---------------------------------------------------------------- checkpoints (finding 4)
def _tiny_model():
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    m = Net1D(Net1DConfig(in_channels=12, base_filters=8, filter_list=(16, 16), m_blocks_list=(1, 1),
                          groups_width=8, n_classes=150))
    m.labels, m.contract, m.task_meta, m.source = None, None, {}, {}
    return m


def _load_error(path: Path) -> str:
    from ecgfounder.models.loading import load_model

    msg = clean_error(path, load_model, path)
    return msg


def _safetensors_with_meta(src: Path, dst: Path, meta_text: str) -> Path:
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(src)), str(dst), metadata={"ecgfounder": meta_text})
    return dst


def test_checkpoint_prefix_metadata_contract_nan_and_bombs(tmp_path):
    import torch

    from ecgfounder.models.loading import save_model

    good = save_model(_tiny_model(), tmp_path / "good.safetensors")
    meta = json.loads((tmp_path / "good.json").read_text())
    pth = tmp_path / "ckpt.pth"
    torch.save({"state_dict": _tiny_model().state_dict()}, pth)
    prefix = tmp_path / "prefix.pth"
    prefix.write_bytes(pth.read_bytes()[:12_000])
    assert "checkpoint" in _load_error(prefix)
    assert "JSON" in _load_error(_safetensors_with_meta(good, tmp_path / "notjson.safetensors", "{not json"))
    assert "list" in _load_error(_safetensors_with_meta(good, tmp_path / "list.safetensors", "[1, 2]"))
    m = dict(meta, config=dict(meta["config"], wings=3))
    assert "unknown keys" in _load_error(_safetensors_with_meta(good, tmp_path / "key.safetensors", json.dumps(m)))
    m = dict(meta, config=dict(meta["config"], filter_list=[16384, 16384], base_filters=4096, kernel_size=1024))
    _load_error(_safetensors_with_meta(good, tmp_path / "tb.safetensors", json.dumps(m)))
    from ecgfounder.signal.preprocess import PreprocessContract

    m = dict(meta, contract=dict(PreprocessContract().to_dict(), n_samples=10**10))
    assert "contract" in _load_error(_safetensors_with_meta(good, tmp_path / "contract.safetensors", json.dumps(m)))
    bad = _tiny_model()
    with torch.no_grad():
        next(bad.parameters()).fill_(float("nan"))
    nan = save_model(bad, tmp_path / "nan.safetensors")
    assert "NaN" in _load_error(nan)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("archive/data/0", "w") as fh:
            zeros = bytes(1 << 20)
            for _ in range(40):
                fh.write(zeros)
    assert "bomb" in _load_error(bomb)


def test_one_bad_rate_among_good_records_is_a_clean_early_error(tmp_path):
    """The batch half of the bar: the 1e-6 Hz record fails at read time with the package's error
    (the prediction loop then reports it as one failed file)."""
    good = []
    for k in range(5):
        for ext in (".hea", ".mat"):
            shutil.copy(DATA / "cinc2021" / f"E0750{k}{ext}", tmp_path / f"E0750{k}{ext}")
        good.append(tmp_path / f"E0750{k}.hea")
    bad = tmp_path / "E07509.hea"
    for ext in (".hea", ".mat"):
        shutil.copy(DATA / "cinc2021" / f"E07509{ext}", tmp_path / f"E07509{ext}")
    lines = bad.read_text().splitlines()
    head = lines[0].split()
    head[2] = "1e-6"
    lines[0] = " ".join(head)
    bad.write_text("\n".join(lines) + "\n")
    assert all(eio.read(g).fs == 500 for g in good)
    t0 = time.perf_counter()
    with pytest.raises(RecordReadError) as err:
        eio.read(bad)
    assert time.perf_counter() - t0 < 0.5 and "E07509.hea" in str(err.value)
    assert isinstance(err.value, ECGFounderError) and not isinstance(err.value, CheckpointError)


# ---------------------------------------------------------------- audit: bounded work (second pass)
def test_archives_inside_an_archive_share_its_decompression_budget(tmp_path, monkeypatch):
    """Each archive inside a zip got a fresh budget: members multiplied the bytes expanded (and a
    273-byte triple gzip expanded 200 MB).  Two 200-KB members under a 300-KB limit: refused."""
    import gzip
    import io as _io

    import ecgfounder.io.compressed as comp

    monkeypatch.setattr(comp, "decompressed_limit", lambda n: 300_000)
    buf = _io.BytesIO()
    np.save(buf, np.zeros((1, 50_000), dtype=np.float32))  # 200 KB
    member = gzip.compress(buf.getvalue())
    z = tmp_path / "nested.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.npy.gz", member)
        zf.writestr("b.npy.gz", member)
    with pytest.raises(RecordReadError, match="decompression bomb") as err:
        list(eio.iter_read(z, fs=500, leads=["II"]))
    assert "nested.zip" in str(err.value) and "b.npy.gz" in str(err.value)


def _scp_record(n_leads: int, n_samples: int, bytes_per_lead: int) -> bytes:
    """A conformant SCP-ECG record (sections 0, 2 default Huffman table, 3, 6) of zero bits."""
    import binascii

    def section(sid: int, body: bytes) -> bytes:
        sec = bytearray(struct.pack("<HHIBB6s", 0, sid, 16 + len(body), 20, 20, b"SCPECG") + body)
        struct.pack_into("<H", sec, 0, binascii.crc_hqx(bytes(sec[2:]), 0xFFFF))
        return bytes(sec)

    secs = {
        2: section(2, struct.pack("<H", 19999)),
        3: section(3, bytes([n_leads, 0x04]) + b"".join(struct.pack("<IIB", 1, n_samples, 1 + k % 8)
                                                         for k in range(n_leads))),
        6: section(6, struct.pack("<HHBB", 5000, 2000, 0, 0) + struct.pack(f"<{n_leads}H", *[bytes_per_lead] * n_leads)
                   + bytes(bytes_per_lead * n_leads)),
    }
    s0len, pos, ptrs, body = 16 + 10 * 12, 6 + 16 + 10 * 12 + 1, b"", b""
    for sid in range(12):
        if sid == 0:
            ptrs += struct.pack("<HII", 0, s0len, 7)
        elif sid in secs:
            ptrs += struct.pack("<HII", sid, len(secs[sid]), pos)
            pos += len(secs[sid])
            body += secs[sid]
        else:
            ptrs += struct.pack("<HII", sid, 0, 0)
    rec = bytearray(struct.pack("<HI", 0, 6 + 16 + len(ptrs) + len(body)) + section(0, ptrs) + body)
    struct.pack_into("<H", rec, 0, binascii.crc_hqx(bytes(rec[2:]), 0xFFFF))
    return bytes(rec)


def test_scp_long_huffman_record_is_refused_before_decoding(tmp_path):
    """32 leads × 524,280 one-bit samples (a 2-MB file, within the 100-M-value limit) kept the
    Python Huffman decoder busy for seconds (190 such leads in 12 MB: 35 s and 2.4 GB)."""
    p = tmp_path / "long.scp"
    p.write_bytes(_scp_record(32, 65535 * 8, 65535))
    assert "limit of 10000000 values" in clean_error(p)
    small = tmp_path / "small.scp"  # the same layout at resting-ECG size still reads
    small.write_bytes(_scp_record(12, 5000, 625))
    assert eio.read(small).signal.shape == (12, 5000)


def test_sierra_xli_chunks_beyond_the_declared_leads_are_not_decoded(tmp_path):
    """Every XLI chunk was decoded, also those past the declared leads: the 24-KB waveform of the
    v1.03 sample repeated 80 times (a 2.6-MB file) took over 5 s; now as fast as the original."""
    import base64

    pytest.importorskip("sierraecg")
    src = (F / "sierra_xml" / "v1.03_129DYPRG.XML").read_bytes()
    m = re.search(rb"(<parsedwaveforms[^>]*>)(.*?)(</parsedwaveforms>)", src, re.S)
    raw = base64.b64decode(re.sub(rb"\s+", b"", m.group(2)))
    p = tmp_path / "many_chunks.xml"
    p.write_bytes(src[:m.start(2)] + base64.b64encode(raw * 80) + src[m.end(2):])
    kind, msg = limited(_read_all, p)
    assert kind == "ok", (kind, msg)
    assert np.array_equal(eio.read(p).signal, eio.read(F / "sierra_xml" / "v1.03_129DYPRG.XML").signal)


def test_sierra_xli_lzw_chunk_expanding_600_fold_is_refused(tmp_path):
    """10-bit LZW codes can each repeat a 767-byte string: this 25-KB chunk decodes to 15 MB, byte
    by byte in Python (8 s before the error); a chunk decoding to more than twice the declared
    samples is now refused as soon as it does."""
    import base64

    pytest.importorskip("sierraecg")
    codes = [0] + list(range(256, 1023)) + [1022] * 20_000
    bits = "".join(format(c, "010b") for c in codes)
    bits += "0" * (-len(bits) % 8)
    chunk = int(bits, 2).to_bytes(len(bits) // 8, "big")
    raw = b"".join(struct.pack("<iHh", len(chunk), 0, 0) + chunk for _ in range(12))
    src = (F / "sierra_xml" / "v1.03_129DYPRG.XML").read_bytes()
    m = re.search(rb"(<parsedwaveforms[^>]*>)(.*?)(</parsedwaveforms>)", src, re.S)
    p = tmp_path / "lzw_bomb.xml"
    p.write_bytes(src[:m.start(2)] + base64.b64encode(raw) + src[m.end(2):])
    assert "decodes to more than" in clean_error(p)


def test_csv_of_short_rows_is_not_held_as_a_list_of_lines(tmp_path):
    """A 256-MB CSV of 3-byte rows needed over 3 GB (a Python string per line, twice) and a 40-MB
    single row of 20 M columns 26 s and 3 GB; now rows are parsed one at a time and columns bounded."""
    import tracemalloc

    p = tmp_path / "short_rows.csv"
    p.write_bytes(b"# fs=500\nII\n" + b"12\n" * 150_000)  # 450 KB
    tracemalloc.start()
    try:
        rec = eio.read(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rec.signal.shape == (1, 150_000) and rec.signal[0, -1] == 12
    assert peak < 8 << 20, f"peak {peak / 1e6:.0f} MB for a 450-KB file"
    wide = tmp_path / "wide.csv"
    wide.write_bytes(b"# fs=500\n" + b",".join([b"1"] * 5000) + b"\n")
    assert "5000 columns (limit" in clean_error(wide)
