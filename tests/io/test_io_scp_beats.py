"""SCP-ECG reference-beat subtraction (sections 4 and 5) on records built here from the standard's
layout: a reference beat and a residual are chosen, the residual (signal minus the beat inside each
type 0 QRS zone) goes to section 6 and the beat to section 5, and the read signal must be the
intended one to the last count."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError

from scpbuild import default_huffman, record  # noqa: E402

N = 1000            # residual samples a lead (500 Hz: 2000 µs)
BEAT_MS, FCM = 300, 60   # reference beat: 150 samples at 500 Hz, fiducial at its sample 60 (1-based)
# (type, start, fiducial, end), sample numbers from 1; the type 1 complex keeps its residual as is
ZONES = [(0, 160, 200, 260), (0, 460, 500, 560), (1, 620, 650, 680), (0, 760, 800, 860)]

def _huffman(x: np.ndarray, diff: int) -> bytes:
    """Default-table (section 2 value 19999) encoding of ``x`` after 16-bit first/second differences."""
    x = x.astype(np.int64)
    d = x.copy()
    if diff == 1:
        d[1:] = x[1:] - x[:-1]
    elif diff == 2:
        d[2:] = x[2:] - 2 * x[1:-1] + x[:-2]
    return default_huffman((d + 32768) % 65536 - 32768)


def _raw(x: np.ndarray) -> bytes:
    return ((x.astype(np.int64) + 32768) % 65536 - 32768).astype("<i2").tobytes()


def _encoded(avm: int, interval: int, diff: int, data: list[bytes], bimodal: int = 0) -> bytes:
    return (struct.pack("<HHBB", avm, interval, diff, bimodal) + b"".join(struct.pack("<H", len(d)) for d in data)
            + b"".join(data))


def _section4(zones, beat_ms: int = BEAT_MS, fcm: int = FCM) -> bytes:
    out = struct.pack("<HHH", beat_ms, fcm, len(zones)) + b"".join(struct.pack("<HIII", *z) for z in zones)
    return out + b"".join(struct.pack("<II", s - 4, e + 4) for _, s, _, e in zones)  # protected zones


def _beats_and_residual(n_leads: int):
    rng = np.random.default_rng(7)
    t = np.arange(BEAT_MS * 500 // 1000)
    beat = [np.round(a * np.exp(-0.5 * ((t - FCM + 1) / 4.0) ** 2) - 0.3 * a * np.exp(-0.5 * ((t - 110) / 12.0) ** 2))
            .astype(np.int64) for a in (900, -600, 1500)[:n_leads]]
    residual = [np.cumsum(rng.integers(-3, 4, N)) + rng.integers(-40, 40) for _ in range(n_leads)]
    return beat, residual


def _restore(residual, beat, avm6: int, avm5: int, zones=ZONES):
    """What the record encodes, in nV: the residual plus the beat inside each type 0 zone."""
    out = []
    for res, b in zip(residual, beat):
        x = res * avm6
        for kind, start, fid, end in zones:
            if kind == 0:
                first = FCM - (fid - start)  # beat sample at the zone start, from 1
                x[start - 1: end] += b[first - 1: first - 1 + end - start + 1] * avm5
        out.append(x)
    return out


def _scp(tmp_path: Path, name: str, *, zones=ZONES, avm6=5000, avm5=2500, i6=2000, i5=2000, sections=(4, 5),
         huffman=True, bimodal=0, beat_ms=BEAT_MS, n_leads=3, low_sample=False, fcm=FCM, first=1):
    beat, residual = _beats_and_residual(n_leads)
    if low_sample:  # a sample of -32000 counts under the beat's 900-count peak: residual -32900
        residual[0][199] = -32000 - beat[0][FCM - 1]
    lead_ids = [1, 2, 3][:n_leads]
    s3 = struct.pack("<BB", n_leads, 0x05) + b"".join(struct.pack("<IIB", first, first + N - 1, lid) for lid in lead_ids)
    enc6 = (lambda x: _huffman(x, 2)) if huffman else _raw
    enc5 = (lambda x: _huffman(x, 1)) if huffman else _raw
    bodies = {1: b"\xff\x00\x00", 3: s3,
              4: _section4(zones, beat_ms, fcm),
              5: _encoded(avm5, i5, 1 if huffman else 0, [enc5(b) for b in beat]),
              6: _encoded(avm6, i6, 2 if huffman else 0, [enc6(x) for x in residual], bimodal)}
    if huffman:
        bodies[2] = struct.pack("<H", 19999)
    for sid in (4, 5):
        if sid not in sections:
            del bodies[sid]
    path = tmp_path / name
    path.write_bytes(record(bodies))
    return path, beat, residual


def test_reference_beat_is_added_back_in_each_type_0_zone(tmp_path):
    """Section 5 with its own AVM (2500 nV, first differences) and section 6 (5000 nV, second
    differences), default Huffman table: the signal is the residual plus the beat aligned on each
    fiducial (``fcM`` counted from 1), exact to 2.5 µV; the type 1 complex keeps its residual."""
    path, beat, residual = _scp(tmp_path, "refbeat.scp")
    rec = eio.read(path)
    want = _restore(residual, beat, 5000, 2500)
    for name, x in zip(("I", "II", "V1"), want):
        np.testing.assert_allclose(rec.lead(name), x * 1e-6, rtol=0, atol=1e-12)
    assert rec.meta["original_units"] == "2500 nV/count" and rec.meta["reference_beat_zones"] == 3
    # the beat is there: the restored QRS stands out of the residual by the beat's amplitude
    k = 200 - 1
    assert abs(rec.lead("I")[k] - residual[0][k] * 5e-3) == pytest.approx(beat[0][FCM - 1] * 2.5e-3, abs=1e-9)
    assert rec.lead("I")[650 - 1] == pytest.approx(residual[0][650 - 1] * 5e-3, abs=1e-12)


def test_uncompressed_sections_with_one_avm_wrap_like_16_bit_samples(tmp_path):
    """No Huffman section, raw 16-bit sections 5 and 6 with the same AVM: a residual below the
    16-bit range is stored wrapped (+32636) and the sum wraps back to the -32000 sample."""
    path, beat, residual = _scp(tmp_path, "raw.scp", avm6=1000, avm5=1000, huffman=False, n_leads=2,
                                low_sample=True)
    rec = eio.read(path)
    assert rec.lead("I")[199] == pytest.approx(-32.0, abs=1e-12)
    for name, x in zip(("I", "II"), _restore(residual, beat, 1000, 1000)):
        np.testing.assert_allclose(rec.lead(name), x * 1e-6, rtol=0, atol=1e-12)
    assert rec.meta["original_units"] == "1000 nV/count"


@pytest.mark.parametrize("case, match", [
    ("no5", r"reference-beat subtraction.*section 5 \(reference beat\) is missing"),
    ("no4", r"reference-beat subtraction.*section 4 \(QRS locations\) is missing"),
    ("past_end", r"QRS 4 subtraction zone ends at sample 1003, past the end of the 1000-sample residual"),
    ("past_beat", r"QRS 1 subtraction zone \(samples 100-260, fiducial 200\) reaches past the 150-sample reference"),
    ("overlap", r"subtraction zones 160-260 and one from sample 250 overlap"),
    ("decimated", r"reference beat sampled every 2000 µs \(section 5\) and the residual every 4000 µs"),
    ("bimodal", r"bimodal compression .* not supported"),
    ("fcm", r"reference beat fiducial at sample 151, outside the 150-sample reference beat"),
    ("shifted", r"leads starting at samples \[11\] \(section 3\): decoders disagree"),
])
def test_inconsistent_or_ambiguous_records_are_refused_in_one_line(tmp_path, case, match):
    kw = {"no5": dict(sections=(4,)), "no4": dict(sections=(5,)),
          "past_end": dict(zones=ZONES[:3] + [(0, 943, 983, 1003)]),
          "past_beat": dict(zones=[(0, 100, 200, 260)] + ZONES[1:]),
          "overlap": dict(zones=ZONES[:1] + [(0, 250, 290, 300)] + ZONES[1:]),
          "decimated": dict(i6=4000), "bimodal": dict(bimodal=1), "fcm": dict(fcm=151),
          "shifted": dict(first=11)}[case]
    path, *_ = _scp(tmp_path, f"{case}.scp", **kw)
    with pytest.raises(RecordReadError, match=match) as err:
        eio.read(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))
