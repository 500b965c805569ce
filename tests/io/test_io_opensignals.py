"""PLUX OpenSignals text exports (BITalino): raw ADC counts become mV through the ECG sensor's
transfer function, never read as if they were mV."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError

# the header of a real BITalino export (pyhrv's SampleECG.txt, /work/shared/data/formats/opensignals_txt)
_DEVICE = {"sensor": ["ECG"], "device name": "20:16:02:26:60:88", "column": ["nSeq", "I1", "I2", "O1", "O2", "A2"],
           "time": "7:3:47.29", "channels": [2], "date": "2016-6-11", "firmware version": "5.1",
           "device": "bitalino", "sampling rate": 1000, "label": ["A2"], "resolution": [4, 1, 1, 1, 1, 10]}


def _export(path, adc, *, device=None, seq=None):
    dev = dict(_DEVICE, **(device or {}))
    seq = np.arange(len(adc)) % 16 if seq is None else seq
    rows = "".join(f"{s}\t1\t1\t0\t0\t{a}\t\n" for s, a in zip(seq, adc))  # (each row ends with a tab)
    path.write_text("# OpenSignals Text File Format\n# " + json.dumps({dev["device name"]: dev})
                    + "\n# EndOfHeader\n" + rows)
    return path


def test_bitalino_counts_become_millivolts_by_the_datasheet_transfer_function(tmp_path):
    # ECG(V) = (ADC / 2^10 - 1/2) * 3.3 V / 1100: 512 -> 0 mV, 0 -> -1.5 mV, 768 -> 0.75 mV
    adc = np.tile([512, 0, 768, 1023], 250)
    rec = eio.read(_export(tmp_path / "ecg.txt", adc))  # found by its first line, not its extension
    assert rec.meta["format"] == "opensignals" and rec.fs == 1000.0 and rec.signal.shape == (1, 1000)
    np.testing.assert_allclose(rec.signal[0, :4], [0.0, -1.5, 0.75, (1023 / 1024 - 0.5) * 3.0])
    assert rec.leads == ("I",) and rec.meta["leads_assumed"] == "I"
    assert rec.meta["acquired"] == "2016-06-11T07:03:47"
    assert eio.find_records([tmp_path]) == [tmp_path / "ecg.txt"]


def test_lost_packets_are_counted_and_said(tmp_path):
    seq = np.delete(np.arange(120) % 16, [10, 11, 12, 50])  # 4 samples lost over Bluetooth
    with pytest.warns(UserWarning, match="skips 4 sample"):
        rec = eio.read(_export(tmp_path / "gap.txt", np.full(seq.size, 512), seq=seq))
    assert rec.meta["lost_samples"] == 4


def test_other_devices_are_refused_not_guessed(tmp_path):
    p = _export(tmp_path / "plux.txt", np.full(100, 512), device={"device": "biosignalsplux", "resolution": [4] * 6})
    with pytest.raises(RecordReadError, match="'biosignalsplux' device.*format='csv', units='mV'"):
        eio.read(p)
    cut = tmp_path / "cut.txt"  # its format line alone: said so, not called another format
    cut.write_text("# OpenSignals Text File Format\n")
    with pytest.raises(RecordReadError, match="OpenSignals text export without its device header"):
        eio.read(cut)


def test_forced_as_csv_the_counts_are_not_taken_for_millivolts(tmp_path):
    p = _export(tmp_path / "ecg.txt", np.full(100, 496))
    with pytest.raises(RecordReadError, match="format='opensignals'"):
        eio.read(p, format="txt", fs=1000, leads=["nSeq", "I1", "I2", "O1", "O2", "I"])
