"""SCP-ECG (EN 1064 / ISO 11073-91064) files, versions 1.x–3.0.

Supported: section 0 (pointers), 1 (patient/acquisition header), 2 (Huffman tables: the default
table or tables given in the file, with table switching), 3 (lead definitions: each lead placed at
its own sample numbers), 6 (rhythm data: raw, first- or second-difference encoded, 16-bit), 4 and 5
(reference-beat subtraction: the reference beat added back into the residual, see
:mod:`.scp_beats`) and 8 (interpretive statements).  Not supported, with a clear error: bimodal
compression and other decimated residuals (decoders restore them differently), file Huffman codes
whose value bits come with a non-zero base value (decoders disagree on them), and files that break
the standard's layout (0-based pointers, non-CCITT CRCs, vendor packing).

No maintained SCP-ECG package exists on PyPI, so the parser is our own; bit handling uses numpy.
"""

from __future__ import annotations

import binascii
import datetime as _dt
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import age_years, check_file, check_values, make_recording, note
from .scp_beats import add_reference_beat, read_encoded_header, read_qrs_locations

__all__ = ["read_scp", "DEFAULT_HUFFMAN_TABLE", "SCP_LEAD_IDS", "huffman_decode", "section1"]

#: SCP-ECG lead identifiers (section 3; also the numbers of the MDC and DICOM lead codes) -> names.
SCP_LEAD_IDS = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6", 9: "V7",
    10: "V2R", 11: "V3R", 12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R", 16: "X", 17: "Y", 18: "Z",
    19: "CC5", 20: "CM5", 21: "LA", 22: "RA", 23: "LL", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
    65: "-aVR", 66: "V8", 67: "V9", 68: "V8R", 69: "V9R",
}


@dataclass(frozen=True)
class _Code:
    prefix_bits: int   # length of the code word
    total_bits: int    # code word + raw value bits
    mode: int          # 1: a value; 0: switch to table ``base_value``
    base_value: int    # value decoded (or table to switch to)
    code: int          # code word, first transmitted bit as the most significant bit


def _code(prefix: int, total: int, value: int, word: str) -> _Code:
    return _Code(prefix, total, 1, value, int(word, 2))


# The default Huffman table of the standard (section 2 value 19999): 0 → "0", ±1..±8 with
# codes of 3..10 bits, then 8-bit and 16-bit raw values after 10-bit prefixes.
DEFAULT_HUFFMAN_TABLE: tuple[_Code, ...] = (
    _code(1, 1, 0, "0"),
    _code(3, 3, 1, "100"), _code(3, 3, -1, "101"),
    _code(4, 4, 2, "1100"), _code(4, 4, -2, "1101"),
    _code(5, 5, 3, "11100"), _code(5, 5, -3, "11101"),
    _code(6, 6, 4, "111100"), _code(6, 6, -4, "111101"),
    _code(7, 7, 5, "1111100"), _code(7, 7, -5, "1111101"),
    _code(8, 8, 6, "11111100"), _code(8, 8, -6, "11111101"),
    _code(9, 9, 7, "111111100"), _code(9, 9, -7, "111111101"),
    _code(10, 10, 8, "1111111100"), _code(10, 10, -8, "1111111101"),
    _code(10, 18, 0, "1111111110"), _code(10, 26, 0, "1111111111"),
)


def _reverse_bits(x: int, n: int) -> int:
    out = 0
    for _ in range(n):
        out = (out << 1) | (x & 1)
        x >>= 1
    return out


def huffman_decode(data: bytes, n_samples: int, tables: list[tuple[_Code, ...]], *, source: str = "",
                   return_bits: bool = False) -> "np.ndarray | tuple[np.ndarray, int]":
    """Decode ``n_samples`` values from a Huffman-coded byte string (bits MSB first).

    ``tables[0]`` is the initial table; codes with ``mode == 0`` switch tables.  Raises
    ``ValueError`` if the data end before ``n_samples`` values or hold an invalid code.  With
    ``return_bits`` the number of bits used is returned too.
    """
    min_bits = min((c.total_bits for t in tables for c in t if c.mode != 0), default=1)
    if n_samples * min_bits > 8 * len(data):
        raise ValueError(f"{source}{n_samples} samples declared, but {len(data)} bytes hold at most "
                         f"{8 * len(data) // max(1, min_bits)} (truncated)")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.int64)
    n_bits = bits.size
    width = 32
    padded = np.concatenate([bits, np.zeros(width, dtype=np.int64)])
    # window[p] = the next 32 bits starting at bit p, as an integer (vectorised)
    window = np.zeros(n_bits + 1, dtype=np.int64)
    for j in range(width):
        window |= padded[j: j + n_bits + 1] << (width - 1 - j)
    luts = []
    for table in tables:
        kmax = max(c.prefix_bits for c in table)
        if kmax > 16:
            raise ValueError(f"Huffman code words longer than 16 bits are not supported ({kmax})")
        lut = np.full(1 << kmax, -1, dtype=np.int64)
        for idx, c in enumerate(table):
            lo = c.code << (kmax - c.prefix_bits)
            lut[lo: lo + (1 << (kmax - c.prefix_bits))] = idx
        luts.append((kmax, lut, table))
    out = np.empty(n_samples, dtype=np.int64)
    pos = 0
    t = 0
    kmax, lut, table = luts[0]
    win = window.tolist()
    i = 0
    while i < n_samples:
        if pos >= n_bits:
            raise ValueError(f"{source}Huffman data end after {i} of {n_samples} samples (truncated)")
        w = win[pos]
        idx = int(lut[(w >> (width - kmax)) & ((1 << kmax) - 1)])
        if idx < 0:
            raise ValueError(f"{source}invalid Huffman code at bit {pos}")
        c = table[idx]
        if c.mode == 0:
            t = c.base_value - 1
            if not 0 <= t < len(luts):
                raise ValueError(f"{source}Huffman code switches to table {c.base_value}, which does not exist")
            kmax, lut, table = luts[t]
            pos += c.prefix_bits
            continue
        extra = c.total_bits - c.prefix_bits
        if extra:
            if pos + c.total_bits > n_bits:
                raise ValueError(f"{source}Huffman data end inside a value (truncated)")
            v = (w >> (width - c.total_bits)) & ((1 << extra) - 1)
            if v >= 1 << (extra - 1):
                v -= 1 << extra
            out[i] = v
        else:
            out[i] = c.base_value
        pos += c.total_bits
        i += 1
    return (out, pos) if return_bits else out


def _undiff(d: np.ndarray, order: int) -> np.ndarray:
    """Undo first (``x[n] = d[n] + x[n-1]``) or second (``x[n] = d[n] + 2x[n-1] − x[n-2]``) differences."""
    if order == 0 or d.size == 0:
        return d
    if order == 1:
        return np.cumsum(d)
    if d.size < 2:
        return d
    steps = np.cumsum(np.concatenate([[d[1] - d[0]], d[2:]]))
    return np.concatenate([[d[0]], d[0] + np.cumsum(steps)])


class _Scp:
    def __init__(self, p: Path, data: bytes):
        self.p, self.b = p, data
        self.damaged: list[int] = []

    def fail(self, reason: str) -> RecordReadError:
        return RecordReadError(self.p, reason)

    def sections(self) -> dict[int, tuple[int, int]]:
        b = self.b
        if len(b) < 6 + 16 + 10:
            raise self.fail(f"file is {len(b)} bytes, too short for an SCP-ECG record (truncated)")
        crc, size = struct.unpack_from("<HI", b, 0)
        tag = "" if b[16:22] == b"SCPECG" else ("; its section 0 header lacks the 'SCPECG' mark, so it is a non-conformant "
                                                 "vendor variant (a Healforce handheld's file reads with format='scp_healforce' (CLI: --format scp_healforce))")
        if size != len(b):
            what = "truncated" if size > len(b) and not tag else "not a conformant SCP-ECG record"
            raise self.fail(f"record header declares {size} bytes but the file has {len(b)} ({what}){tag}")
        if binascii.crc_hqx(b[2:], 0xFFFF) != crc:
            raise self.fail("record CRC mismatch (corrupt file, or a non-conformant vendor SCP variant)")
        sid, slen = struct.unpack_from("<HI", b, 8)
        if sid != 0 or slen < 16 or 6 + slen > len(b):
            raise self.fail("section 0 (pointer table) missing or corrupt")
        out: dict[int, tuple[int, int]] = {}
        for off in range(6 + 16, 6 + slen - 9, 10):
            s, length, index = struct.unpack_from("<HII", b, off)
            if length == 0:
                continue
            start = index - 1  # pointers count bytes from 1
            if index < 1 or start + length > len(b):
                raise self.fail(f"section {s} pointer ({index}, {length} bytes) points outside the file")
            out[s] = (start, length)
        for s, (start, length) in out.items():
            if length < 16:
                raise self.fail(f"section {s} is {length} bytes, shorter than its 16-byte header")
            hid = struct.unpack_from("<H", b, start + 2)[0]
            if hid != s:
                if s in (2, 3, 6):  # the signal cannot be trusted without these
                    raise self.fail(f"the header of section {s} (at byte {start + 1}) carries section id {hid}: "
                                    "a damaged section header")
                self.damaged.append(s)
        for s in self.damaged:
            del out[s]
        if self.damaged:
            note("scp_damaged_sections", tuple(self.damaged),
                 f"{self.p}: SCP section(s) {', '.join(map(str, self.damaged))} have a damaged header id "
                 "(an anonymiser?); read without them (no patient/acquisition data)")
        return out

    def body(self, secs, s: int) -> bytes:
        start, length = secs[s]
        return self.b[start + 16: start + length]


def section1(body: bytes, year: str = "<H") -> dict:
    """The patient and acquisition fields of a section 1 ``body`` (tags; ``year``: the struct format
    of a date's year, little-endian in the standard, big-endian in Healforce's variant)."""
    meta: dict[str, Any] = {}
    off = 0
    date = time = None
    last = first = None
    while off + 3 <= len(body):
        tag, ln = body[off], struct.unpack_from("<H", body, off + 1)[0]
        val = body[off + 3: off + 3 + ln]
        off += 3 + ln
        if tag == 255:
            break

        def txt(v=val):
            return v.split(b"\x00", 1)[0].decode("latin-1").strip() or None

        if tag == 0:
            last = txt()
        elif tag == 1:
            first = txt()
        elif tag == 2:
            meta["patient_id"] = txt()
        elif tag == 4 and len(val) >= 3:
            age, unit = struct.unpack_from("<H", val)[0], val[2]
            div = {1: 1.0, 2: 12.0, 3: 52.18, 4: 365.25, 5: 8766.0}.get(unit)
            if age and div and age_years(age / div, None, "section 1's age") is not None:
                meta["age"] = age / div
        elif tag == 5 and len(val) >= 4:
            y, m, d = struct.unpack_from(year, val)[0], val[2], val[3]
            try:
                meta["birth_date"] = _dt.date(y, m, d).isoformat()
            except ValueError:
                pass
        elif tag == 8 and len(val) >= 1:
            meta["sex"] = {1: "M", 2: "F"}.get(val[0])
        elif tag == 14 and len(val) >= 36:
            model = val[8:14].split(b"\x00", 1)[0].decode("latin-1").strip()
            strings = [s.decode("latin-1").strip() for s in val[36:].split(b"\x00")]
            trade = next((s for s in reversed(strings) if s), "")
            meta["device"] = " ".join(x for x in (trade, model) if x) or None
        elif tag == 25 and len(val) >= 4:
            date = (struct.unpack_from(year, val)[0], val[2], val[3])
        elif tag == 26 and len(val) >= 3:
            time = (val[0], val[1], val[2])
        elif tag in (13, 30):
            t = txt()
            if t:
                meta.setdefault("free_text", []).append(t)
    if last or first:
        meta["patient_name"] = ", ".join(x for x in (last, first) if x)
    if date:
        try:
            d = _dt.datetime(date[0], date[1], date[2], *(time or (0, 0, 0)))
            meta["acquired"] = d.isoformat() if time else d.date().isoformat()
        except ValueError:
            pass
    if "free_text" in meta:
        meta["free_text"] = tuple(meta["free_text"])
    return meta


def _section2(r: _Scp, body: bytes) -> list[tuple[_Code, ...]]:
    if len(body) < 2:
        raise r.fail("section 2 (Huffman tables) is truncated")
    n_tables = struct.unpack_from("<H", body)[0]
    if n_tables == 19999:
        return [DEFAULT_HUFFMAN_TABLE]
    tables, off = [], 2
    for _ in range(n_tables):
        if off + 2 > len(body):
            raise r.fail("section 2 (Huffman tables) is truncated")
        n_codes = struct.unpack_from("<H", body, off)[0]
        off += 2
        codes = []
        for _ in range(n_codes):
            if off + 9 > len(body):
                raise r.fail("section 2 (Huffman tables) is truncated")
            pb, tb, mode = body[off], body[off + 1], body[off + 2]
            base, word = struct.unpack_from("<hI", body, off + 3)
            off += 9
            if not 1 <= pb <= 16 or tb < pb or tb - pb > 16:
                raise r.fail(f"section 2: invalid Huffman code ({pb} prefix bits, {tb} total bits)")
            if mode != 0 and tb > pb and base != 0:
                # the value follows the prefix; open decoders disagree on whether the base value is added
                raise r.fail(f"section 2: Huffman code with {tb - pb} value bits and base value {base} is not "
                             "supported (only base value 0, as in the standard's default table, is unambiguous)")
            # the standard stores code words bit-reversed (first transmitted bit in bit 0)
            codes.append(_Code(pb, tb, mode, base, _reverse_bits(word, pb)))
        if not codes:
            raise r.fail("section 2: empty Huffman table")
        tables.append(tuple(codes))
    if not tables:
        raise r.fail("section 2 declares no Huffman tables")
    return tables


def _section8(body: bytes) -> tuple[str, ...]:
    if len(body) < 9:
        return ()
    n = body[8]
    off, out = 9, []
    for _ in range(n):
        if off + 3 > len(body):
            break
        ln = struct.unpack_from("<H", body, off + 1)[0]
        t = body[off + 3: off + 3 + ln].split(b"\x00", 1)[0].decode("latin-1").strip()
        off += 3 + ln
        if t:
            out.append(t)
    return tuple(out)


_MAX_SCP_BYTES = 16 * 1024 * 1024
# Huffman data are decoded one value at a time (~0.35 µs each): 100 M values (the package-wide
# limit, reachable within 16 MB at one bit a value) took 35 s and 2.4 GB; 10 M take a few seconds
_MAX_SCP_VALUES = 10_000_000


def _decode_leads(r: _Scp, s6: bytes, off: int, byte_counts, leads, lengths, tables, diff: int, *,
                  sequential: bool) -> list[np.ndarray]:
    """Sample counts of every lead; ``sequential``: each lead starts at the byte after the
    previous one's data, whatever the declared byte counts say."""
    rows = []
    for k in range(len(leads)):
        n = lengths[k]
        end = len(s6) if sequential else off + byte_counts[k]
        chunk = s6[off:end]
        if tables is None:
            if len(chunk) < 2 * n:
                raise r.fail(f"lead {leads[k]}: {len(chunk)} bytes for {n} samples (truncated)")
            d = np.frombuffer(chunk[: 2 * n], dtype="<i2").astype(np.int64)
            used = 2 * n
        else:
            if sequential:
                chunk = chunk[: min(max(byte_counts[k], n * 26 // 8 + 8), 512 * 1024)]  # ≤ 26 bits a sample
            try:
                d, bits = huffman_decode(chunk, n, tables, source=f"lead {leads[k]}: ", return_bits=True)
            except ValueError as exc:
                raise r.fail(str(exc)) from None
            used = (bits + 7) // 8
        off += used if sequential else byte_counts[k]
        # samples are 16-bit: decoders that undo the differences in 16-bit arithmetic (the reference
        # implementations) wrap around, and so do encoders; wrapping the result gives the same values
        rows.append((_undiff(d, diff) + 32768) % 65536 - 32768)
    return rows


def _add_reference_beat(r: _Scp, secs, rows, leads, starts, tables, avm: int, interval: int):
    """Rows with the section 5 reference beat added back (section 3 flag), their unit in nV and
    the number of QRS zones restored."""
    what = "reference-beat subtraction (section 3 flag: section 6 holds a residual)"
    for need, name in ((4, "QRS locations"), (5, "reference beat")):
        if need not in secs:
            raise r.fail(f"{what}, but section {need} ({name}) is missing, so the signal cannot be restored")
    if any(s != 1 for s in starts):
        raise r.fail(f"{what} with leads starting at samples {sorted(set(starts))} (section 3): decoders disagree on "
                     "whether section 4 counts samples per lead; only leads starting at sample 1 are supported")
    qrs = read_qrs_locations(r.body(secs, 4), r.fail)
    s5 = r.body(secs, 5)
    avm5, interval5, diff5, _, counts5, off5 = read_encoded_header(s5, 5, len(leads), r.fail)
    if interval5 != interval:
        raise r.fail(f"{what} with the reference beat sampled every {interval5} µs (section 5) and the residual "
                     f"every {interval} µs (section 6): a decimated residual, which decoders restore differently; "
                     "not supported")
    n5 = qrs.length_ms * 1000 // interval5
    if n5 < 1 or n5 * len(leads) > _MAX_SCP_VALUES:
        raise r.fail(f"section 4 gives a {qrs.length_ms}-ms reference beat ({n5} samples a lead), outside 1 sample "
                     f"to {_MAX_SCP_VALUES // len(leads)}")
    beat = _decode_leads(r, s5, off5, counts5, [f"{x} (section 5 reference beat)" for x in leads],
                         [n5] * len(leads), tables, diff5, sequential=False)
    rows, unit = add_reference_beat(rows, beat, avm, avm5, qrs, r.fail)
    return rows, unit, sum(1 for z in qrs.zones if z[0] == 0)


def read_scp(path: str | Path, **_: Any) -> Recording:
    """Read an SCP-ECG file's rhythm data (section 6); signal in mV (leads × samples)."""
    p = Path(path)
    check_file(p, min_bytes=32, max_bytes=_MAX_SCP_BYTES)
    r = _Scp(p, p.read_bytes())
    secs = r.sections()
    for need in (3, 6):
        if need not in secs:
            what = "lead definitions" if need == 3 else "rhythm data"
            raise r.fail(f"section {need} ({what}) is missing; only files with rhythm data are supported")
    s3 = r.body(secs, 3)
    if len(s3) < 2:
        raise r.fail("section 3 is truncated")
    n_leads, flags = s3[0], s3[1]
    if len(s3) < 2 + 9 * n_leads or n_leads == 0:
        raise r.fail(f"section 3 declares {n_leads} leads but holds {len(s3)} bytes")
    leads, lengths, starts = [], [], []
    for k in range(n_leads):
        start, end, lid = struct.unpack_from("<IIB", s3, 2 + 9 * k)
        if end < start:
            raise r.fail(f"section 3: lead {k} ends (sample {end}) before it starts ({start})")
        leads.append(SCP_LEAD_IDS.get(lid, f"lead{lid}"))
        lengths.append(end - start + 1)
        starts.append(start)
    first = min(starts)
    n_samples = max(s + n for s, n in zip(starts, lengths)) - first
    check_values(p, n_leads, n_samples, "section 3", partial=False)
    if n_leads * n_samples > _MAX_SCP_VALUES:
        raise r.fail(f"section 3 declares {n_leads} leads × {n_samples} samples, above the limit of {_MAX_SCP_VALUES} "
                     "values for SCP-ECG (resting ECGs of seconds to minutes; the Huffman decoder runs in Python)")
    s6 = r.body(secs, 6)
    avm, interval, diff, bimodal, byte_counts, off = read_encoded_header(s6, 6, n_leads, r.fail)
    if bimodal:
        raise r.fail("bimodal compression (section 6: the residual decimated outside protected zones) is not "
                     "supported: PixelMed, the ECG Toolkit and OpenECG restore the samples in different ways")
    tables = _section2(r, r.body(secs, 2)) if 2 in secs else None
    try:
        rows = _decode_leads(r, s6, off, byte_counts, leads, lengths, tables, diff, sequential=False)
    except RecordReadError:
        if len(s6) - off <= sum(byte_counts):
            raise
        # bytes beyond the declared counts: a writer capped a count (uint16) or miscounted; the
        # leads' data follow each other byte-aligned, so decode them in sequence
        rows = _decode_leads(r, s6, off, byte_counts, leads, lengths, tables, diff, sequential=True)
        note("scp_byte_counts_ignored", True, f"{p}: SCP section 6 byte counts are smaller than the lead data "
             "(capped by the writer?); leads decoded one after the other")
    unit, n_zones = avm, None
    if flags & 0x01:
        rows, unit, n_zones = _add_reference_beat(r, secs, rows, leads, starts, tables, avm, interval)
    # each lead at its own sample numbers (section 3): leads not recorded simultaneously (a 3-channel
    # cart's groups of leads one after the other) are NaN where they were not recorded
    sig = np.full((n_leads, n_samples), np.nan)
    for k, x in enumerate(rows):
        sig[k, starts[k] - first: starts[k] - first + len(x)] = x * (unit * 1e-6)
    if any(s != first or n != n_samples for s, n in zip(starts, lengths)):
        note("scp_lead_spans", tuple(zip(leads, starts, lengths)), f"{p}: SCP leads cover different sample spans "
             "(not recorded simultaneously); each is placed at its own samples, NaN elsewhere")
    meta = section1(r.body(secs, 1)) if 1 in secs else {}
    if 8 in secs:
        meta["statements"] = _section8(r.body(secs, 8))
    meta["huffman"] = "none" if tables is None else ("default" if tables == [DEFAULT_HUFFMAN_TABLE] else "file")
    meta["difference_encoding"] = diff
    meta["original_units"] = f"{unit} nV/count"
    meta["reference_beat_zones"] = n_zones
    return make_recording(p, sig, 1e6 / interval, leads, meta, fmt="scp")
