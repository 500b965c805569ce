"""Healforce SCP-ECG variant (Prince 180D): the real file decoded and cross-checked against the
device's own beat detection and heart rate, files built here in its layout, detection, and hostile
files refused in one line."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.io.scp_healforce import VARIANT_NOTE, read_scp_healforce, unpack_12bit
from ecgfounder.signal.preprocess import PreprocessContract, preprocess_recording

from scpbuild import record  # noqa: E402

F = Path(__file__).resolve().parent.parent / "data" / "formats"
REAL = F / "scp_ecg" / "healforce_prince180d_62.SCP"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "formats"
# where the real file keeps what the hostile tests alter (SOURCES.md; offsets counted from 0)
S6_POINTER = 22 + 10 * 4 + 6   # section 0's entry for section 6: its offset
S3_LAST = 178 + 16 + 6         # section 3: the last sample number
S6_COUNT = 488 + 16 + 6        # section 6: the byte count of the packed samples
S6_DATA = 488 + 16 + 8


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eio.read(path, **kw)


@pytest.fixture(scope="module")
def rec():
    return _read(REAL)


# ------------------------------------------------------------------ files built in the layout
def _section(sid: int, body: bytes) -> bytes:
    body += b"\x00" * (len(body) % 2)
    return struct.pack("<HHIBB6s", 0, sid, 16 + len(body), 13, 13, b"") + body


def healforce_record(bodies: dict[int, bytes], pad_to: int | None = 1 << 15) -> bytes:
    """A record as the Prince 180D writes it: 16-bit length after 2 zero bytes, 0-based pointers,
    no 'SCPECG' mark, 0xFF padding to ``pad_to`` bytes."""
    n = len(bodies) + 1
    s0_len = 16 + 10 * n
    ptrs, blobs, off = [(0, s0_len, 6)], [], 6 + s0_len
    for sid, body in sorted(bodies.items()):
        blob = _section(sid, body)
        ptrs.append((sid, len(blob), off))
        blobs.append(blob)
        off += len(blob)
    s0 = struct.pack("<HHIBB6s", 0, 0, s0_len, 13, 13, b"") + b"".join(struct.pack("<HII", *q) for q in ptrs)
    rec = struct.pack("<HHH", 0, 0, off) + s0 + b"".join(blobs)
    return rec + b"\xff" * ((pad_to or 0) - len(rec))


def pack_12bit(values, markers) -> bytes:
    """The inverse of the layout: 12-bit samples (10-bit offset binary, markers in bits 10-11), 4 in
    3 little-endian words, the 4th spread over the words' bits 10-13."""
    twelve = ((np.asarray(values, dtype=np.int64) + 512) & 0x3FF) | (np.asarray(markers, dtype=np.int64) << 10)
    twelve = np.concatenate([twelve, np.zeros(-len(twelve) % 4, dtype=np.int64)]).reshape(-1, 4)
    w = (twelve[:, :3] & 0x3FF) | ((twelve[:, :3] >> 10) << 14)
    for k in range(3):
        w[:, k] |= ((twelve[:, 3] >> (8 - 4 * k)) & 0xF) << 10
    return w.astype("<u2").tobytes()


def built(channels: np.ndarray, *, beats=(), fs=150, avm=9524, first=1, pad_to=1 << 15) -> bytes:
    """A Healforce file of ``channels`` (channels × samples, integer counts) with beat markers."""
    n_ch, n = channels.shape
    marks = np.zeros((n, n_ch), dtype=np.int64)
    marks[list(beats)] = 2
    data = pack_12bit(channels.T.reshape(-1), marks.reshape(-1))
    s1 = b"\x02\x06\x00P-0042" + b"\x19\x04\x00" + struct.pack(">HBB", 2021, 3, 4) + b"\x1a\x03\x00\x0b\x0c\x0d"
    s3 = struct.pack("<BBIIB", n_ch, 4, first, first + n - 1, 5)
    s6 = struct.pack("<HHBBH", avm, fs, 0, 0, len(data)) + data
    return healforce_record({1: s1, 3: s3, 6: s6}, pad_to)


def _limb_channels(n=1500, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lead1 = np.round(40 * np.sin(2 * np.pi * t / 150) + rng.normal(0, 2, n))
    lead3 = np.round(60 * np.sin(2 * np.pi * t / 150 + 1.0) + rng.normal(0, 2, n))
    return np.stack([lead1, lead1 + lead3, lead3]).astype(np.int64)


# ------------------------------------------------------------------ the real file
def test_real_file_is_detected_and_read_as_three_limb_leads(rec):
    assert eio.detect_format(REAL) == "scp_healforce"
    assert rec.fs == 150.0 and rec.n_samples == 4500  # 3 interleaved channels × 4500 = 13,500 packed samples
    assert rec.leads[:3] == ("I", "II", "III") and rec.meta["derived_leads"] == ("aVR", "aVL", "aVF")
    m = rec.meta
    assert m["format"] == "scp_healforce" and m["variant"] == VARIANT_NOTE and m["leads_assumed"] == "I, II, III"
    assert m["patient_id"] == "00000" and m["acquired"] == "2019-08-08T00:04:10"
    assert m["original_units"] == "9524 nV/count" and m["device_first_sample"] == 283501
    assert np.isfinite(rec.signal).all()


def test_real_file_repacks_to_its_own_bytes():
    """Every bit of section 6 is accounted for: the decoded values and markers pack back to the file."""
    b = REAL.read_bytes()
    count = struct.unpack_from("<H", b, S6_COUNT)[0]
    data = b[S6_DATA: S6_DATA + count]
    values, marks = unpack_12bit(data, 13500)
    assert pack_12bit(values, marks) == data
    assert values.min() >= -512 and values.max() <= 511


def test_real_file_einthoven_holds_for_the_assumed_leads(rec):
    i, ii, iii = rec.lead("I"), rec.lead("II"), rec.lead("III")
    # the device measures the 3 channels separately (gains within ~6%): not exact, far from unrelated
    assert np.std(i + iii - ii) / np.std(ii) < 0.2
    assert np.corrcoef(i + iii, ii)[0, 1] > 0.98


def _r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.signal import find_peaks

    y = np.abs(x - np.median(x))
    peaks, _ = find_peaks(y, height=0.5 * np.percentile(y, 99.9), distance=int(0.3 * fs))
    return peaks


def test_real_file_amplitude_is_a_surface_ecg(rec):
    peaks = _r_peaks(rec.lead("II"), rec.fs)
    r = np.abs(rec.lead("II") - np.median(rec.lead("II")))[peaks]
    assert len(peaks) >= 20 and 0.3 <= np.median(r) <= 3.0 and r.max() <= 3.0


def test_real_file_device_beats_follow_the_r_peaks_at_a_constant_delay(rec):
    """The device marks each beat its QRS detector finds; every R peak of the decoded signal has one
    marker, a constant delay (the detector's) after it."""
    beats = np.asarray(rec.meta["device_beats"])
    peaks = _r_peaks(rec.lead("II"), rec.fs)
    assert len(beats) == len(peaks) == 30
    lag_ms = (beats - peaks) * 1000 / rec.fs
    assert np.all(lag_ms >= 0) and np.all(lag_ms <= 150)
    assert np.ptp(lag_ms) <= 40  # the same beat in both, within 40 ms of a constant delay


def test_real_file_heart_rate_agrees_with_the_devices(rec):
    beats = np.asarray(rec.meta["device_beats"])
    hr = rec.meta["device_heart_rate"]
    assert len(hr) == len(beats)  # section 9 has one entry a beat
    from_markers = 60 * rec.fs / np.mean(np.diff(beats))
    assert abs(from_markers - np.mean(hr)) < 3  # 59.9 and 61.9 bpm (the device's is a running average)


def test_real_file_one_lead_path_end_to_end(rec):
    out = preprocess_recording(rec, PreprocessContract(leads=("I",)))
    assert out.windows.shape == (3, 1, 5000)  # 30 s at 500 Hz in 10-s windows
    assert np.isfinite(out.windows).all() and np.std(out.windows) > 0


# ------------------------------------------------------------------ files built here
def test_built_file_with_three_channels_reads_exactly(tmp_path):
    ch = _limb_channels()
    p = tmp_path / "built.SCP"
    p.write_bytes(built(ch, beats=(100, 250, 400)))
    assert eio.detect_format(p) == "scp_healforce"
    out = _read(p)
    np.testing.assert_allclose(out.signal[:3], ch * 9.524e-3, atol=1e-9)
    assert out.meta["device_beats"] == (100, 250, 400) and out.meta["acquired"] == "2021-03-04T11:12:13"
    assert out.meta["patient_id"] == "P-0042"
    assert _read(p, max_duration=2.0).meta["device_beats"] == (100, 250)  # (only the first 300 samples)


def test_built_file_with_one_channel_is_lead_i_assumed(tmp_path):
    x = np.round(50 * np.sin(np.arange(1501) / 20)).astype(np.int64)[None]  # (not a multiple of 4 samples)
    p = tmp_path / "one.SCP"
    p.write_bytes(built(x))
    with pytest.warns(UserWarning, match="taken as I"):
        out = eio.read(p)
    assert out.leads == ("I",) and out.meta["leads_assumed"] == "I"
    np.testing.assert_allclose(out.signal[0], x[0] * 9.524e-3, atol=1e-9)


def test_three_channels_that_are_not_limb_leads_are_refused(tmp_path):
    rng = np.random.default_rng(3)
    p = tmp_path / "other.SCP"
    p.write_bytes(built(rng.integers(-100, 100, (3, 1500))))
    with pytest.raises(RecordReadError, match="not leads I, II, III"):
        eio.read(p)


# ------------------------------------------------------------------ detection
def _conformant_scp_files() -> list[Path]:
    found = [q for root in (F, SHARED) if root.is_dir() for q in root.rglob("*")
             if q.suffix.lower() == ".scp" and "healforce" not in q.name]
    assert found
    return found


def test_conformant_scp_files_stay_scp(tmp_path):
    for q in _conformant_scp_files():
        assert eio.detect_format(q) == "scp", q
    s3 = struct.pack("<BBIIB", 1, 4, 1, 500, 1)
    s6 = struct.pack("<HHBBH", 1000, 2000, 0, 0, 1000) + bytes(1000)
    rec = record({3: s3, 6: s6})
    p = tmp_path / "built.scp"
    p.write_bytes(rec.replace(b"SCPECG", b"\x00" * 6))  # a conformant record without the mark (SCP 1.x)
    assert eio.detect_format(p) == "scp"
    q = tmp_path / "built"  # (no extension: detected by content)
    q.write_bytes(rec)
    assert eio.detect_format(q) == "scp"


def test_healforce_layout_is_detected_by_content_and_its_padding(tmp_path):
    b = REAL.read_bytes()
    used = struct.unpack_from("<H", b, 4)[0]
    (tmp_path / "noext").write_bytes(b)
    (tmp_path / "unpadded.SCP").write_bytes(b[:used])
    (tmp_path / "odd_padding.SCP").write_bytes(b + b"\xff" * 10)  # neither the record length nor a power of two
    assert eio.detect_format(tmp_path / "noext") == "scp_healforce"
    assert eio.detect_format(tmp_path / "unpadded.SCP") == "scp_healforce"
    assert eio.detect_format(tmp_path / "odd_padding.SCP") == "scp"
    assert _read(tmp_path / "odd_padding.SCP", format="healforce").n_samples == 4500  # (forced by its alias)


def test_forcing_the_variant_on_a_conformant_file_says_why(tmp_path):
    with pytest.raises(RecordReadError, match="not this vendor's layout.*format='scp'"):
        eio.read(F / "scp_ecg" / "ecgtoolkit_Example.scp", format="scp_healforce")


# ------------------------------------------------------------------ hostile files
def _one_line_error(p: Path, **kw) -> str:
    with pytest.raises(RecordReadError) as err:
        _read(p, **kw)
    msg = str(err.value)
    assert p.name in msg and "\n" not in msg
    return msg


def _patched(tmp_path: Path, name: str, offset: int, fmt: str, value: int) -> Path:
    b = bytearray(REAL.read_bytes())
    struct.pack_into(fmt, b, offset, value)
    p = tmp_path / name
    p.write_bytes(bytes(b))
    return p


def test_truncated_file(tmp_path):
    b = REAL.read_bytes()
    for cut in (10, 40, 100, 300, 600, 5000, 20000, 29000):
        p = tmp_path / f"cut{cut}.SCP"
        p.write_bytes(b[:cut])
        _one_line_error(p)  # detected as a conformant SCP (the record length no longer fits): refused there
        msg = _one_line_error(p, format="scp_healforce")
        assert "truncated" in msg or "too short" in msg or "outside" in msg


def test_section_offset_beyond_the_file(tmp_path):
    p = _patched(tmp_path, "far.SCP", S6_POINTER, "<I", 40_000)
    _one_line_error(p)
    assert "section 6 pointer (offset 40000" in _one_line_error(p, format="scp_healforce")


def test_sample_count_that_does_not_fit_the_section(tmp_path):
    p = _patched(tmp_path, "long.SCP", S3_LAST, "<I", 288_010)  # 10 samples more a channel
    assert "4510 samples" in _one_line_error(p) and "holds 20250 bytes" in _one_line_error(p)
    q = _patched(tmp_path, "count.SCP", S6_COUNT, "<H", 0xFFFF)
    assert "declares 65535 bytes of samples" in _one_line_error(q)
    r = _patched(tmp_path, "huge.SCP", S3_LAST, "<I", 0xFFFFFFFF)
    assert "section 3" in _one_line_error(r)


def test_random_header_damage_is_refused_or_read(tmp_path):
    """Mutants of the headers and tables: the reader itself raises nothing but RecordReadError."""
    rng = np.random.default_rng(7)
    b = REAL.read_bytes()
    p = tmp_path / "mutant.SCP"
    for _ in range(300):
        m = bytearray(b)
        for k in rng.integers(0, 520, rng.integers(1, 6)):
            m[k] = int(rng.integers(0, 256))
        p.write_bytes(bytes(m[: int(rng.choice([len(m), rng.integers(0, len(m))]))]))
        try:
            read_scp_healforce(p)
        except RecordReadError as exc:
            assert "\n" not in str(exc) and p.name in str(exc)
