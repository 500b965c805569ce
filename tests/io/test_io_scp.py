"""SCP-ECG: Huffman decoding (default table and tables given in section 2) on files built here
byte by byte from the standard's layout, plus the real Clark file."""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.io.scp import DEFAULT_HUFFMAN_TABLE, huffman_decode

from scpbuild import default_huffman, record  # noqa: E402

F = Path(__file__).resolve().parent.parent / "data" / "formats"

# a file-given table set: table 1 with a switch to table 2, which switches back
TABLE1 = [  # (prefix bits, total bits, mode, base value, code as transmitted)
    (1, 1, 1, 0, "0"), (2, 2, 1, 1, "10"), (3, 3, 1, -1, "110"), (4, 4, 0, 2, "1110"), (4, 20, 1, 0, "1111"),
]
TABLE2 = [(1, 1, 1, 5, "0"), (1, 1, 0, 1, "1")]


def _scp_file(leads_data: list[bytes], n: int, lead_ids: list[int], *, diff: int, tables: bytes | None,
              avm: int = 1000, interval: int = 2000, section1: bytes = b"") -> bytes:
    s3 = struct.pack("<BB", len(lead_ids), 0x04) + b"".join(struct.pack("<IIB", 1, n, lid) for lid in lead_ids)
    s6 = struct.pack("<HHBB", avm, interval, diff, 0) + b"".join(struct.pack("<H", len(d)) for d in leads_data)
    s6 += b"".join(leads_data)
    bodies = {1: section1 or b"\xff\x00\x00", 3: s3, 6: s6}
    if tables is not None:
        bodies[2] = tables
    return record(bodies)


def _tables_section(tables) -> bytes:
    out = struct.pack("<H", len(tables))
    for t in tables:
        out += struct.pack("<H", len(t))
        for p, tot, mode, base, code in t:
            stored = int(code[::-1], 2)  # the standard stores code words bit-reversed
            out += struct.pack("<BBBhI", p, tot, mode, base, stored)
    return out


def test_default_table_round_trip_with_escapes():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.integers(-8, 9, 3000), rng.integers(-120, 120, 50), rng.integers(-30000, 30000, 20)])
    rng.shuffle(vals)
    data = default_huffman(vals)  # (the table written out independently of the package's)
    out = huffman_decode(data, vals.size, [DEFAULT_HUFFMAN_TABLE])
    np.testing.assert_array_equal(out, vals)
    with pytest.raises(ValueError, match="truncated"):
        huffman_decode(data[: len(data) // 2], vals.size, [DEFAULT_HUFFMAN_TABLE])


def test_file_with_huffman_tables_in_section_2_and_first_differences(tmp_path):
    rng = np.random.default_rng(1)
    n = 1000
    x = np.cumsum(rng.integers(-1, 2, n)) + 40  # signal in AVM units
    x[500] = 3000
    d = np.diff(np.concatenate([[0], x]))  # first differences, d[0] = x[0]
    # table switch: encode part of the data through table 2 ("5" values)
    d[100:110] = 5
    x = np.cumsum(d)
    bits = []
    codes1 = {0: "0", 1: "10", -1: "110"}
    for k, v in enumerate(d):
        v = int(v)
        if v == 5:
            bits.append("1110" + "0" + "1")  # switch to table 2, value 5, switch back
        elif v in codes1:
            bits.append(codes1[v])
        else:
            bits.append("1111" + format(v & 0xFFFF, "016b"))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    data = int(s, 2).to_bytes(len(s) // 8, "big")
    raw = _scp_file([data, data], n, [1, 2], diff=1, tables=_tables_section([TABLE1, TABLE2]), avm=2500,
                    interval=1000)
    path = tmp_path / "custom.scp"
    path.write_bytes(raw)
    rec = eio.read(path)
    assert rec.leads[:2] == ("I", "II") and rec.fs == 1000 and rec.meta["derived_leads"] == ("III", "aVR", "aVL", "aVF")
    assert rec.meta["huffman"] == "file"
    np.testing.assert_allclose(rec.lead("I"), x * 0.0025, atol=1e-12)


def test_uncompressed_file_and_unsupported_features(tmp_path):
    x = (np.arange(500) % 50 - 25).astype("<i2")
    raw = _scp_file([x.tobytes()], 500, [61], diff=0, tables=None)
    (tmp_path / "raw.scp").write_bytes(raw)
    rec = eio.read(tmp_path / "raw.scp")
    assert rec.leads == ("III",) and rec.fs == 500
    np.testing.assert_allclose(rec.signal[0], x * 0.001)
    # bimodal compression flag -> clear refusal
    bad = bytearray(raw)
    i = bytes(bad).index(struct.pack("<HHBB", 1000, 2000, 0, 0))
    bad[i + 5] = 1
    (tmp_path / "bimodal.scp").write_bytes(_recrc(bytes(bad)))
    with pytest.raises(RecordReadError, match="bimodal compression"):
        eio.read(tmp_path / "bimodal.scp")
    # any flipped byte breaks the CRC
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    (tmp_path / "flip.scp").write_bytes(bytes(flipped))
    with pytest.raises(RecordReadError, match="CRC"):
        eio.read(tmp_path / "flip.scp")


def _recrc(b: bytes) -> bytes:
    return struct.pack("<H", binascii.crc_hqx(b[2:], 0xFFFF)) + b[2:]


def test_clark_scp_decodes_all_60000_huffman_samples():
    rec = eio.read(F / "scp_ecg" / "ecgtoolkit_Example.scp")
    counts = rec.signal / 0.0025
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert rec.signal.shape == (12, 5000)
    # Einthoven on the device's stored leads (each stored independently in the file)
    assert np.abs(rec.lead("III") - (rec.lead("II") - rec.lead("I"))).max() <= 0.0051
