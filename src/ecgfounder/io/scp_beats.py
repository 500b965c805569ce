"""SCP-ECG reference-beat subtraction: sections 4 (QRS locations) and 5 (reference beat).

With the section 3 flag set, section 6 holds the residual left after the type 0 reference beat of
section 5 was subtracted inside each type 0 QRS subtraction zone of section 4; the beat is added
back here.  Rules, as the ECG Toolkit (SCPSection4.AddMedians) and OpenECG/BioSig (scp-decode
DoAdd) decode them: sample numbers count from 1, zones run from their start to their end sample
inclusive, the beat sample at the zone fiducial is ``fcM`` (1-based; PixelMed takes it as 0-based,
one sample later), only type 0 zones are restored (PixelMed adds the beat to every zone), and
with different amplitude multipliers the sum is exact (OpenECG, in nV; the ECG Toolkit rescales to
the finer one; PixelMed ignores the difference).  A zone outside the residual or the beat, or
overlapping another, is refused: decoders then clip, skip or read out of bounds.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import RecordReadError

__all__ = ["QrsLocations", "read_qrs_locations", "read_encoded_header", "add_reference_beat"]

Fail = Callable[[str], RecordReadError]


@dataclass(frozen=True)
class QrsLocations:
    """Section 4: reference beat length (ms), its fiducial sample ``fcm`` (1-based) and, for each
    QRS complex, ``(beat type, start, fiducial, end)`` sample numbers of its subtraction zone."""

    length_ms: int
    fcm: int
    zones: tuple[tuple[int, int, int, int], ...]


def read_qrs_locations(body: bytes, fail: Fail) -> QrsLocations:
    """Parse section 4 (the protected zones after the subtraction zones matter only to bimodal
    compression, which is not supported, and are absent in version 1.x files)."""
    if len(body) < 6:
        raise fail("section 4 (QRS locations) is truncated")
    length_ms, fcm, n = struct.unpack_from("<HHH", body)
    if len(body) < 6 + 14 * n:
        raise fail(f"section 4 declares {n} QRS complexes but holds {len(body)} bytes (truncated)")
    zones = tuple(struct.unpack_from("<HIII", body, 6 + 14 * k) for k in range(n))
    return QrsLocations(length_ms, fcm, zones)


def read_encoded_header(body: bytes, sid: int, n_leads: int, fail: Fail
                        ) -> tuple[int, int, int, int, tuple[int, ...], int]:
    """Header of section 5 or 6 (same layout): ``(AVM nV, sample interval µs, difference
    encoding, bimodal byte, byte counts per lead, offset of the lead data)``."""
    if len(body) < 6 + 2 * n_leads:
        raise fail(f"section {sid} is truncated")
    avm, interval, diff, bimodal = struct.unpack_from("<HHBB", body)
    if avm == 0 or interval == 0:
        raise fail(f"section {sid}: invalid amplitude multiplier ({avm} nV) or sample interval ({interval} µs)")
    if diff not in (0, 1, 2):
        raise fail(f"section {sid}: unknown difference encoding {diff}")
    counts = struct.unpack_from(f"<{n_leads}H", body, 6)
    off = 6 + 2 * n_leads
    if off + sum(counts) > len(body):
        raise fail(f"section {sid} declares {sum(counts)} data bytes but holds {len(body) - off} (truncated)")
    return avm, interval, diff, bimodal, counts, off


def add_reference_beat(residual: list[np.ndarray], beat: list[np.ndarray], avm_residual: int, avm_beat: int,
                       qrs: QrsLocations, fail: Fail) -> tuple[list[np.ndarray], int]:
    """Residual (section 6 counts, every lead from sample 1) plus the reference beat (section 5
    counts) in each type 0 zone; returns the leads and their unit in nV (the two multipliers'
    greatest common divisor, so the sum is exact)."""
    n_beat = min(b.size for b in beat)
    if not 1 <= qrs.fcm <= n_beat:
        raise fail(f"section 4: reference beat fiducial at sample {qrs.fcm}, outside the {n_beat}-sample "
                   "reference beat of section 5")
    n_res = min(x.size for x in residual)
    spans = []
    for k, (kind, start, fid, end) in enumerate(qrs.zones, 1):
        if kind != 0:
            continue
        if not 1 <= start <= end:
            raise fail(f"section 4: QRS {k} subtraction zone runs from sample {start} to {end} (not an interval "
                       "counted from sample 1)")
        if end > n_res:
            raise fail(f"section 4: QRS {k} subtraction zone ends at sample {end}, past the end of the "
                       f"{n_res}-sample residual in section 6")
        first = qrs.fcm - (fid - start)  # beat sample (1-based) aligned with the zone start
        if first < 1 or first + (end - start) > n_beat:
            raise fail(f"section 4: QRS {k} subtraction zone (samples {start}-{end}, fiducial {fid}) reaches past "
                       f"the {n_beat}-sample reference beat (fiducial at sample {qrs.fcm})")
        spans.append((start, end, first))
    spans.sort()
    for (s0, e0, _), (s1, _, _) in zip(spans, spans[1:]):
        if s1 <= e0:
            raise fail(f"section 4: subtraction zones {s0}-{e0} and one from sample {s1} overlap")
    unit = math.gcd(avm_residual, avm_beat)
    k_res, k_beat = avm_residual // unit, avm_beat // unit
    out = []
    for x, b in zip(residual, beat):
        y = x.astype(np.int64) * k_res
        for start, end, first in spans:
            y[start - 1: end] += b[first - 1: first + end - start].astype(np.int64) * k_beat
        if avm_residual == avm_beat:
            # the restored count is the 16-bit sample the encoder subtracted from, and the ECG
            # Toolkit and PixelMed add in 16-bit arithmetic: wrap as they do (OpenECG does not)
            y = (y + 32768) % 65536 - 32768
        out.append(y)
    return out, unit
