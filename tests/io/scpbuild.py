"""SCP-ECG records built in tests from the standard's layout (EN 1064): one home for the section
and record framing the SCP tests share (their section bodies are their own)."""

from __future__ import annotations

import binascii
import struct


def section(sid: int, body: bytes) -> bytes:
    """Section ``sid``: its 16-byte header ('SCPECG' mark, CRC-CCITT) and ``body`` padded to an even length."""
    body += b"\x00" * (len(body) % 2)
    rest = struct.pack("<HIBB6s", sid, 16 + len(body), 20, 20, b"SCPECG") + body
    return struct.pack("<H", binascii.crc_hqx(rest, 0xFFFF)) + rest


def record(bodies: dict[int, bytes]) -> bytes:
    """A record of the sections ``{id: body}`` (ids 1-11), with section 0's pointer table (12
    entries, 1-based offsets) and the record's size and CRC."""
    sec0_len, blobs, ptrs = 16 + 10 * 12, [], []
    offset = 6 + sec0_len
    for sid in range(12):
        if sid == 0:
            ptrs.append((0, sec0_len, 7))
        elif sid in bodies:
            blob = section(sid, bodies[sid])
            ptrs.append((sid, len(blob), offset + 1))
            blobs.append(blob)
            offset += len(blob)
        else:
            ptrs.append((sid, 0, 0))
    body = section(0, b"".join(struct.pack("<HII", *p) for p in ptrs)) + b"".join(blobs)
    rest = struct.pack("<I", 6 + len(body)) + body
    return struct.pack("<H", binascii.crc_hqx(rest, 0xFFFF)) + rest


# the standard's default Huffman table (EN 1064, section 2 value 19999), written out here: short
# codes for -8..8, then an 8-bit and a 16-bit escape
_SHORT = {0: "0", 1: "100", -1: "101", 2: "1100", -2: "1101", 3: "11100", -3: "11101", 4: "111100",
          -4: "111101", 5: "1111100", -5: "1111101", 6: "11111100", -6: "11111101", 7: "111111100",
          -7: "111111101", 8: "1111111100", -8: "1111111101"}


def default_huffman(values) -> bytes:
    """``values`` (16-bit integers) coded with the default Huffman table, zero-padded to whole bytes."""
    bits = []
    for v in values:
        v = int(v)
        if v in _SHORT:
            bits.append(_SHORT[v])
        elif -128 <= v < 128:
            bits.append("1111111110" + format(v & 0xFF, "08b"))
        else:
            bits.append("1111111111" + format(v & 0xFFFF, "016b"))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big")
