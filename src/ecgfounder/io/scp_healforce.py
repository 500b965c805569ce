"""Healforce SCP-ECG files (Prince 180D handheld and its PC software): a non-conformant variant.

The layout follows the reverse-engineered description of github.com/KaibinBao/healforcescpecg
(MIT; read, not copied), checked on a real Prince 180D file (tests/data/formats/scp_ecg):

* record header: CRC (not CRC-CCITT), then 2 zero bytes and a 16-bit record length; the file is
  padded (0xFF on the sample) up to a power of two; no 'SCPECG' mark in the section headers;
* section 0 pointers count bytes from 0 (the standard counts from 1);
* section 1: tags 2 (patient id), 25 (date, big-endian year), 26 (time);
* section 3: the number of channels and the sample numbers of the first and last sample of this
  page of a longer recording (a channel count, not one entry per lead);
* section 6: the amplitude multiplier (nV), the rate **in Hz** where the standard has the sample
  interval in µs, one byte count, then every channel interleaved in one stream of 12-bit samples,
  4 packed into 3 little-endian 16-bit words: a 10-bit offset-binary value and 2 marker bits (the
  device's beat detection) each.  The 4th sample's 12 bits are the bits 10-13 of the 3 words;
* section 9: vendor events, among them the device's averaged heart rate at each beat.

On the sample file the 3 channels are leads I, II, III (II = I + III within 12%), the markers
follow each R peak of lead II by 93 ms (the device's detector delay) and give the heart rate of
section 9.
Channel names are not stored: 1 channel is taken as lead I, 3 as I, II, III (checked by
Einthoven's law); ``meta['leads_assumed']`` says so.  Section 3's one lead byte is not an SCP lead
id (5, V3, on the sample's limb leads): it is kept as ``meta['device_lead_code']``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import check_file, make_recording, note, read_length
from .limits import check_fs
from .scp import section1

__all__ = ["read_scp_healforce", "looks_like_healforce", "unpack_12bit", "VARIANT_NOTE"]

VARIANT_NOTE = "Healforce SCP-ECG variant, decoded per the reverse-engineered layout"
# the record length is a 16-bit field; a padded file is at most the next power of two
_MAX_BYTES = 1 << 16
_MAX_SECTIONS = 64
# 1-100 µV a count (the sample file: 9524 nV, 105 counts a mV); outside it the field is not a gain
_AVM_NV = (1000, 100_000)
# the largest |I + III - II| (its standard deviation) as a fraction of the largest lead's, for 3
# channels to be taken as I, II, III (the sample file: 0.12)
_EINTHOVEN_MAX = 0.5
_LEADS = {1: ("I",), 3: ("I", "II", "III")}


def _pointers(b: bytes, size: int) -> dict[int, tuple[int, int]] | str:
    """``{section: (offset, length)}`` of a Healforce record's section 0 (0-based offsets, every
    section inside the first ``size`` bytes), or why ``b`` is not laid out so."""
    if len(b) < 6 + 16 + 10:
        return f"{len(b)} bytes, too short for a record header and section 0"
    if b[16:22] == b"SCPECG" or b[2:4] != b"\x00\x00":
        return "a conformant SCP-ECG record header ('SCPECG' mark or 32-bit record length)"
    sid, slen = struct.unpack_from("<HI", b, 8)
    n = (slen - 16) // 10
    if sid != 0 or slen < 26 or (slen - 16) % 10 or n > _MAX_SECTIONS or 6 + slen > min(len(b), size):
        return f"no section 0 pointer table at byte 6 (section id {sid}, {slen} bytes)"
    out: dict[int, tuple[int, int]] = {}
    for k in range(n):
        s, length, off = struct.unpack_from("<HII", b, 22 + 10 * k)
        if length == 0:
            continue
        if s in out or s > 1023:
            return f"section 0 lists section {s} {'twice' if s in out else '(no such section)'}"
        if off < 6 or off + length > size:
            return f"section {s} pointer (offset {off}, {length} bytes) points outside the {size}-byte record"
        out[s] = (off, length)
    if out.get(0) != (6, slen):
        return "section 0 does not point to itself at byte 6 (0-based pointers)"
    if 3 not in out or 6 not in out:
        return f"section {3 if 3 not in out else 6} ({'channels' if 3 not in out else 'samples'}) is missing"
    return out


def looks_like_healforce(head: bytes, file_size: int) -> bool:
    """Whether a file of ``file_size`` bytes starting with ``head`` has the Healforce layout: its
    16-bit record length is the file's size (or the file is padded to a power of two above it), no
    'SCPECG' mark, and a section 0 whose 0-based pointers place sections 3 and 6 inside the record."""
    if len(head) < 6:
        return False
    used = struct.unpack_from("<H", head, 4)[0]
    padded = file_size & (file_size - 1) == 0 and used < file_size
    if used < 32 or not (used == file_size or padded):
        return False
    return isinstance(_pointers(head, used), dict)


def _fail(p: Path, reason: str) -> RecordReadError:
    return RecordReadError(p, f"Healforce SCP-ECG: {reason}")


def _sections(p: Path, b: bytes) -> dict[int, bytes]:
    """Each section's bytes (its 16-byte header first), bounded by both the pointer's length and the
    section header's own (they differ for section 6 on the sample file)."""
    if len(b) < 32:
        raise _fail(p, f"file is {len(b)} bytes, too short for a record (truncated)")
    used = struct.unpack_from("<H", b, 4)[0]
    if used > len(b):
        raise _fail(p, f"record header declares {used} bytes but the file has {len(b)} (truncated)")
    ptrs = _pointers(b, used)
    if isinstance(ptrs, str):
        raise _fail(p, f"not this vendor's layout: {ptrs} (a conformant SCP-ECG file reads with format='scp')")
    out: dict[int, bytes] = {}
    for s, (off, length) in ptrs.items():
        if length < 16:
            raise _fail(p, f"section {s} is {length} bytes, shorter than its 16-byte header")
        hid, hlen = struct.unpack_from("<HI", b, off + 2)
        if hid != s or hlen < 16:
            raise _fail(p, f"the header of section {s} (at byte {off}) carries section id {hid} and length {hlen}: "
                           "a damaged section")
        out[s] = b[off: off + min(length, hlen)]
    return out


def _section9_heart_rates(section: bytes) -> tuple[int, ...]:
    """The device's averaged heart rate (bpm) at each beat, from section 9 (``section``: with its
    header, as the offsets count); empty when the section is not in the known layout."""
    if len(section) < 0x138 or struct.unpack_from("<IH", section, 0x10) != (0x20000, 0x200):
        return ()
    out = []
    for off in range(0x134, len(section) - 3, 4):
        if section[off] == 0xFF:
            break
        out.append(int(section[off]))
    return tuple(out)


def unpack_12bit(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values, markers)`` of the first ``n`` 12-bit samples of ``data`` (4 in each 3 little-endian
    16-bit words): values signed (10-bit offset binary − 512), markers 0-3 (2: a beat, 1: a beat the device marked irregular)."""
    groups = -(-n // 4)
    w = np.frombuffer(data, dtype="<u2", count=3 * groups).astype(np.int32).reshape(groups, 3)
    twelve = np.empty((groups, 4), dtype=np.int32)
    twelve[:, :3] = (w & 0x3FF) | ((w >> 14) << 10)  # the 3 words' own markers sit in their bits 14-15
    nib = (w >> 10) & 0xF
    twelve[:, 3] = (nib[:, 0] << 8) | (nib[:, 1] << 4) | nib[:, 2]
    twelve = twelve.reshape(-1)[:n]
    return (twelve & 0x3FF) - 512, twelve >> 10


def _channels(p: Path, s3: bytes, s6: bytes) -> tuple[np.ndarray, np.ndarray, int, int, float, int]:
    """``(counts, markers, first sample number, lead code, fs, nV a count)``: counts and markers
    channels × samples."""
    if len(s3) < 11:
        raise _fail(p, f"section 3 holds {len(s3)} bytes, fewer than its channel count and sample span (11)")
    n_ch = s3[0]
    first, last, code = struct.unpack_from("<IIB", s3, 2)
    if n_ch not in _LEADS:
        raise _fail(p, f"section 3 declares {n_ch} channels; only 1 (lead I) or 3 (I, II, III) are known for "
                       "this variant")
    if last < first:
        raise _fail(p, f"section 3: the last sample ({last}) comes before the first ({first})")
    span = last - first + 1
    if len(s6) < 8:
        raise _fail(p, f"section 6 holds {len(s6)} bytes, fewer than its 8-byte header (truncated)")
    avm, rate, diff, bimodal, count = struct.unpack_from("<HHBBH", s6)
    if diff or bimodal:
        raise _fail(p, f"section 6 declares difference encoding {diff} and bimodal compression {bimodal}; this "
                       "variant's packed samples have neither (not a known Healforce file)")
    fs = check_fs(p, rate, "section 6 rate (Hz in this variant)")
    if not _AVM_NV[0] <= avm <= _AVM_NV[1]:
        raise _fail(p, f"section 6 amplitude multiplier {avm} nV is outside {_AVM_NV[0]}-{_AVM_NV[1]} nV a count "
                       "(the Prince 180D writes 9524)")
    total = n_ch * span  # (tied below to the 16-bit byte count: at most 43,690 samples are decoded)
    need = 6 * (-(-total // 4))
    if count > len(s6) - 8:
        raise _fail(p, f"section 6 declares {count} bytes of samples but holds {len(s6) - 8} (truncated)")
    if not need <= count < need + 6:
        raise _fail(p, f"section 3 declares {n_ch} channel(s) × {span} samples ({need} bytes of 12-bit samples) but "
                       f"section 6 holds {count} bytes of them")
    values, marks = unpack_12bit(s6[8: 8 + count], total)
    return values.reshape(span, n_ch).T, marks.reshape(span, n_ch).T, first, code, fs, avm


def _check_einthoven(p: Path, sig: np.ndarray) -> None:
    """Refuse 3 channels that are not leads I, II, III (II = I + III)."""
    scale = float(np.max(np.std(sig, axis=1)))
    if scale == 0:
        return
    rel = float(np.std(sig[0] + sig[2] - sig[1])) / scale
    if rel > _EINTHOVEN_MAX:
        raise _fail(p, f"its 3 channels are not leads I, II, III as on the Prince 180D (channel 2 differs from "
                       f"channel 1 + channel 3 by {100 * rel:.0f}% of the signal); their lead names are unknown")


def read_scp_healforce(path: str | Path, *, max_duration: float | None = None, **_: Any) -> Recording:
    """Read a Healforce SCP-ECG file; signal in mV (leads × samples)."""
    p = Path(path)
    check_file(p, min_bytes=32, max_bytes=_MAX_BYTES)
    b = p.read_bytes()
    secs = _sections(p, b)
    counts, marks, first, code, fs, avm = _channels(p, secs[3][16:], secs[6][16:])
    leads = _LEADS[counts.shape[0]]
    sig = counts * (avm * 1e-6)
    if len(leads) == 3:
        _check_einthoven(p, sig)
    beats = np.flatnonzero(np.any(marks & 2, axis=0))
    marked = np.flatnonzero(np.any(marks & 1, axis=0))
    keep = read_length(sig.shape[1], fs, max_duration)
    note("leads_assumed", ", ".join(leads), f"{p}: a Healforce file names no leads; its {len(leads)} channel(s) "
         f"taken as {', '.join(leads)}" + (" (II = I + III holds)" if len(leads) == 3 else ""))
    meta: dict[str, Any] = section1(secs[1][16:], year=">H") if 1 in secs else {}  # (a big-endian year)
    meta.update({
        "variant": VARIANT_NOTE,
        "leads_assumed": ", ".join(leads),
        "device_beats": tuple(int(k) for k in beats if k < keep),
        "device_marked_beats": tuple(int(k) for k in marked if k < keep),
        "device_heart_rate": _section9_heart_rates(secs[9]) if 9 in secs else (),
        "device_first_sample": int(first),
        "device_lead_code": int(code),
        "original_units": f"{avm} nV/count",
    })
    return make_recording(p, sig, fs, leads, meta, fmt="scp_healforce")
