"""PLUX OpenSignals (r)evolution text exports (``# OpenSignals Text File Format``) from BITalino.

The header is ``#`` lines: the format line, one JSON line (the device's MAC address → its
settings: ``device``, ``sampling rate``, ``column`` names, ``label`` of the analog channels with
their ``sensor``, ``resolution`` in bits per column, ``date``, ``time``) and ``# EndOfHeader``.
Rows are tab-separated integers: ``nSeq`` (a 4-bit counter), the digital I/O, then the analog
channels as raw ADC counts.

ECG channels (sensor ``ECG``) are converted with the transfer function of BITalino's ECG sensor
datasheet: ECG(V) = (ADC / 2^n − 1/2) × VCC / G, VCC = 3.3 V, G = 1100, n the channel's resolution.
Other devices' sensors (biosignalsplux: other VCC and gain) are refused rather than guessed.  The
file does not say where the electrodes were: the ECG channel is taken as lead I (said in
``meta['leads_assumed']``).  ``nSeq`` steps other than +1 (packets lost over Bluetooth, so the
signal is shorter than the time it covers) are counted in ``meta['lost_samples']``, with a warning.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ._common import check_file, make_recording, note
from .limits import MAX_VALUES, parse_fs

__all__ = ["read_opensignals", "is_opensignals", "MAGIC"]

#: the first line of an OpenSignals text export
MAGIC = "# OpenSignals Text File Format"
_MAX_BYTES = 256 * 1024 * 1024
# device -> (VCC in volts, ECG sensor gain), from the device's ECG sensor datasheet
_ECG_SENSOR = {"bitalino": (3.3, 1100.0)}


def is_opensignals(path: str | Path) -> bool:
    """Whether ``path`` starts as an OpenSignals text export (``False`` for a file that cannot be read)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)).decode("latin-1") == MAGIC
    except OSError:
        return False


def _header(p: Path, text: str) -> tuple[dict, int]:
    """The one device's settings and the offset of the first data row."""
    lines, off = [], 0
    while off < len(text) and text.startswith("#", off):
        end = text.find("\n", off)
        end = len(text) if end < 0 else end
        lines.append(text[off:end].strip())
        off = end + 1
        if lines[-1].lstrip("# ").lower() == "endofheader":
            break
    if not lines or lines[0] != MAGIC:
        raise RecordReadError(p, f"not an OpenSignals text export (its first line is not {MAGIC!r})")
    if len(lines) < 2:
        raise RecordReadError(p, "OpenSignals text export without its device header (the JSON line after its first "
                                 "line): the file is cut or was edited; export it again from OpenSignals")
    try:
        devices = json.loads(lines[1].lstrip("# "))
    except ValueError as exc:
        raise RecordReadError(p, f"OpenSignals header line 2 is not valid JSON ({exc})") from None
    if not isinstance(devices, dict) or len(devices) != 1 or not isinstance(next(iter(devices.values())), dict):
        n = len(devices) if isinstance(devices, dict) else 0
        raise RecordReadError(p, f"OpenSignals header describes {n} devices; only single-device exports are read "
                              "(export each device to its own file)")
    return next(iter(devices.values())), off


def _acquired(dev: dict) -> str | None:
    try:
        y, mo, d = (int(x) for x in str(dev.get("date", "")).split("-"))
        h, mi, s = str(dev.get("time", "")).split(":")
        return _dt.datetime(y, mo, d, int(h), int(mi), int(float(s))).isoformat()
    except (ValueError, TypeError):
        return None


def read_opensignals(path: str | Path, **_: Any) -> Recording:
    """Read an OpenSignals text export of a BITalino; its ECG channel(s) in mV."""
    p = Path(path)
    check_file(p, max_bytes=_MAX_BYTES)
    text = p.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
    dev, off = _header(p, text)
    device = str(dev.get("device", "")).strip().lower()
    columns, labels = list(dev.get("column") or []), list(dev.get("label") or [])
    sensors, bits = list(dev.get("sensor") or []), list(dev.get("resolution") or [])
    if not columns or len(bits) != len(columns) or len(sensors) != len(labels):
        raise RecordReadError(p, f"OpenSignals header: {len(columns)} columns with {len(bits)} resolutions, "
                              f"{len(labels)} channel labels with {len(sensors)} sensors (they must pair up)")
    ecg = [lab for lab, s in zip(labels, sensors) if str(s).upper().startswith("ECG")]
    if not ecg:
        raise RecordReadError(p, f"no ECG channel in this OpenSignals export (sensors: {', '.join(map(str, sensors))})")
    if device not in _ECG_SENSOR:
        raise RecordReadError(p, f"OpenSignals export of a {dev.get('device')!r} device: the transfer function of its "
                              f"ECG sensor is known for {', '.join(_ECG_SENSOR)} only; export the signal in mV from "
                              "OpenSignals and read it as CSV (format='csv', units='mV')")
    missing = [lab for lab in ecg if lab not in columns]
    if missing:
        raise RecordReadError(p, f"OpenSignals header names channel(s) {', '.join(missing)} missing from its "
                              f"columns {columns}")
    fs = parse_fs(p, str(dev.get("sampling rate", "")), "OpenSignals sampling rate")
    n_rows = text.count("\n", off) + 1
    if n_rows * len(columns) > MAX_VALUES:
        raise RecordReadError(p, f"{n_rows} rows of {len(columns)} columns, above the limit of {MAX_VALUES} values")
    rows = (line.rstrip() for line in text[off:].split("\n") if line.strip())
    try:
        arr = np.loadtxt(rows, delimiter="\t", ndmin=2, dtype=np.int64)
    except ValueError as exc:
        raise RecordReadError(p, f"OpenSignals data row: {str(exc).strip().splitlines()[0]}") from None
    if arr.size == 0 or arr.shape[1] != len(columns):
        raise RecordReadError(p, f"OpenSignals data rows have {arr.shape[1] if arr.size else 0} values, the header "
                              f"names {len(columns)} columns")
    vcc, gain = _ECG_SENSOR[device]
    sig = []
    for lab in ecg:
        k = columns.index(lab)
        n_bits = int(bits[k])
        if not 1 <= n_bits <= 24 or arr[:, k].min() < 0 or arr[:, k].max() >= 2**n_bits:
            raise RecordReadError(p, f"channel {lab}: values {arr[:, k].min()}..{arr[:, k].max()} do not fit its "
                                  f"{n_bits}-bit resolution (a corrupt export?)")
        sig.append((arr[:, k] / 2.0**n_bits - 0.5) * vcc / gain * 1000.0)
    lost = 0
    if "nSeq" in columns:
        seq, period = arr[:, columns.index("nSeq")], 2 ** int(bits[columns.index("nSeq")])
        lost = int(((np.diff(seq) - 1) % period).sum())
    if lost:
        note("lost_samples", lost, f"{p}: the nSeq counter skips {lost} sample(s) (packets lost in transmission): "
             "the signal is shorter than the time it covers and its timing is off after each gap")
    leads = ["I"] if len(ecg) == 1 else [f"ECG {lab}" for lab in ecg]
    if len(ecg) == 1:
        note("leads_assumed", "I", f"{p}: an OpenSignals export names no lead; its ECG channel {ecg[0]} is taken "
             "as lead I")
    meta = {"device": f"{dev.get('device')} {dev.get('firmware version', '')}".strip(),
            "device_id": dev.get("device name"), "acquired": _acquired(dev),
            "channels": tuple(ecg), "original_units": f"ADC counts ({device} ECG sensor, VCC {vcc:g} V, gain {gain:g})",
            "leads_assumed": "I" if len(ecg) == 1 else None}
    return make_recording(p, np.stack(sig), fs, leads, meta, fmt="opensignals")
