"""Writing a recording to WFDB and EDF/BDF and reading it back: what survives (values within the
format's stated step, lead names, rate, metadata), and what the format cannot hold is said with a
warning, never changed silently.  wfdb's pandas deprecation notices stay out of the user's sight."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgfounder.errors import SetupError
from ecgfounder.io import write
from ecgfounder.io.edf import RATE_TOLERANCE, read_edf
from ecgfounder.io.wfdb import read_wfdb
from ecgfounder.recording import Recording

CINC = Path(__file__).resolve().parents[1] / "data" / "cinc2021"

META = {"patient_id": "0042", "age": 63.0, "sex": "F", "acquired": "2021-03-04T05:06:07.250000", "birth_date": "1958-01-02",
        "device": "MAC 5500", "dx": ("426783006", "59118001"),
        "statements": ("sinus rhythm", "a statement longer than the forty characters of one EDF annotation")}
KEPT = ("patient_id", "age", "sex", "acquired", "birth_date", "device", "dx", "statements")


def _signal(n: int = 2500, fs: float = 250.0) -> np.ndarray:
    t = np.arange(n) / fs
    return np.stack([
        np.sin(2 * np.pi * t),                    # an ordinary 1-mV lead
        np.full(n, 0.3),                          # a flat lead
        300.0 * np.sin(2 * np.pi * 0.5 * t),      # a lead with a huge (lead-off) range
        4e-4 * np.sin(2 * np.pi * 3 * t),         # a lead of 0.4 µV
    ])


LEADS = ("I", "V4R", "-aVR", "V1")


def _within_step(got: np.ndarray, want: np.ndarray, levels: int) -> None:
    """Each lead within half a quantisation step of its own min-max range (1 % for the outward
    rounding of the stated range)."""
    for g, w in zip(got, want):
        ok = np.isfinite(w)
        span = max(np.ptp(w[ok]), 2e-3 if np.ptp(w[ok]) == 0 else 0.0)
        assert np.max(np.abs(g[ok] - w[ok])) <= 0.5 * span / levels * 1.01 + 1e-12


@pytest.mark.parametrize("fs", [257.0, 128.0001])
def test_wfdb_round_trip(tmp_path, fs):
    sig = _signal()
    sig[0, 100:110] = np.nan
    rec = Recording(sig, fs, LEADS, META)
    got = read_wfdb(write(rec, tmp_path / "r.hea"))
    assert got.leads == LEADS and got.fs == fs and got.n_samples == sig.shape[1]
    assert np.array_equal(np.isnan(got.signal), np.isnan(sig))
    # one gain for all leads made the step of every lead 300 mV / 32000 (9 µV), and a lead beyond
    # 32000 mV got gain 0 (read back as 200): each lead now has its own range
    _within_step(got.signal, sig, 65533)
    assert {k: got.meta.get(k) for k in KEPT} == {k: META[k] for k in KEPT}  # id, patient, start used to be lost
    assert got.meta["id"] == "r"


def test_wfdb_all_nan_and_infinite_samples(tmp_path):
    sig = np.vstack([_signal()[:1], np.full((1, 2500), np.nan), 60000.0 * _signal()[:1]])
    sig[0, 5] = np.inf
    with pytest.warns(UserWarning, match=r"1 infinite sample\(s\) written as WFDB's invalid sample"):
        got = read_wfdb(write(Recording(sig, 500.0, ("I", "II", "V1"), {}), tmp_path / "x.hea"))  # wfdb refused inf
    assert np.isnan(got.signal[1]).all() and np.isnan(got.signal[0, 5])
    assert np.nanmax(np.abs(got.signal[2] - sig[2])) <= 0.5 * 120000.0 / 65533 * 1.01  # gain 0 before


def test_wfdb_record_name_must_be_plain(tmp_path):
    rec = Recording(_signal(), 250.0, LEADS, {})
    with pytest.raises(SetupError, match=r"a WFDB record name holds only .* \(got 'a\.b'\); give a file name like a_b\.hea"):
        write(rec, tmp_path / "a.b.hea")  # wfdb's bare Exception("Record name must not contain '.'")


def test_edf_round_trip(tmp_path):
    sig = _signal()
    statements = tuple(f"statement number {i}" for i in range(14))  # more than the file's 10 data records
    rec = Recording(sig, 250.0, LEADS, {**META, "statements": statements + META["statements"]})
    for fmt, levels in (("edf", 65535), ("bdf", 16777215)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing lost: no warning (pyedflib's 8-character notices neither)
            got = read_edf(write(rec, tmp_path / f"r.{fmt}", fmt))
        assert got.leads == LEADS and got.fs == 250.0 and got.n_samples == sig.shape[1]
        # the physical range used to be rounded to 1 µV (a 0.4-µV lead got a 2.8-µV range) and
        # cut to 8 characters by pyedflib after quantisation (-299.999 read as -299.99)
        _within_step(got.signal, sig, levels)
        # birth date used to come back as '02 jan 1958', the start without its 0.25 s, Dx codes
        # as statements, and statements beyond one per data record were dropped
        assert {k: got.meta.get(k) for k in KEPT} == {**{k: META[k] for k in KEPT}, "statements": rec.meta["statements"]}


def test_edf_rate_without_a_whole_record_is_not_padded(tmp_path):
    rec = Recording(_signal(2500, 257.0), 257.0, LEADS, {})
    with pytest.warns(UserWarning, match=r"257 Hz is read back as 256.99990\d Hz"):
        got = read_edf(write(rec, tmp_path / "r.edf"))
    assert got.n_samples == 2500  # used to be 2570: 70 samples of mid-range appended
    assert abs(got.fs - 257.0) / 257.0 <= RATE_TOLERANCE
    _within_step(got.signal, rec.signal, 65535)
    third = Recording(_signal(2500, 1000 / 3), 1000 / 3, LEADS, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_edf(write(third, tmp_path / "t.edf")).fs == 1000 / 3  # an exact layout: 1000 samples in 3 s


def test_edf_padding_when_no_record_size_divides_the_samples(tmp_path):
    n = 15427  # a prime, over 60 s at 257 Hz: no data record of 1 ms-60 s holds a divisor of it
    sig = np.sin(np.arange(n) / 40.0)[None, :]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_edf(write(Recording(sig, 257.0, ("II",), {}), tmp_path / "p.edf"))
    assert any(re.search(r"\d+ sample\(s\) of 0 mV appended at the end", str(w.message)) for w in caught)
    assert n < got.n_samples <= n + 257 and abs(got.fs - 257.0) / 257.0 <= RATE_TOLERANCE
    _within_step(got.signal[:, :n], sig, 65535)
    assert np.abs(got.signal[0, n:]).max() <= 2.0 / 65535


def test_edf_missing_samples_and_unknown_start(tmp_path):
    sig = _signal()
    sig[0, 10:20] = np.nan
    sig[1, :] = np.nan
    with pytest.warns(UserWarning, match=r"missing sample: 2510 NaN/inf sample\(s\) of lead\(s\) I, V4R written as 0 mV"):
        got = read_edf(write(Recording(sig, 250.0, LEADS, {}), tmp_path / "n.edf"))
    assert np.abs(got.signal[0, 10:20]).max() < 1e-4  # used to be the lead's minimum, -1 mV
    assert np.abs(got.signal[1]).max() < 1e-4
    assert "acquired" not in got.meta  # used to be the time of writing
    with pytest.raises(SetupError, match=r"big.edf: lead I reaches -1.99984e\+08 mV; .* fields hold -9999999 to 99999999 mV"):
        write(Recording(2e8 * _signal()[:1], 250.0, ("I",), {}), tmp_path / "big.edf")  # used to be cut to 8 characters


# ------------------------------------------------------------------------- wfdb's pandas notices

@pytest.mark.slow  # (reads every example record for warnings; keeps the default run under 2 min)
def test_reading_records_shows_no_wfdb_deprecation(tmp_path):
    """wfdb's import (and rdann, wrsamp) call pandas with ``inplace=True``, deprecated in pandas 3.1:
    a warning on reading a record, made an error here."""
    import wfdb

    wfdb.wrsamp("f212", fs=250, units=["mV"], sig_name=["II"], p_signal=_signal(500)[:1].T, fmt=["212"],
                write_dir=str(tmp_path))  # format 212: read by wfdb.rdrecord, not the fast path
    code = ("import sys; from ecgfounder.io import read, write; "
            "r = read(sys.argv[1]); read(sys.argv[2]); write(r, sys.argv[3])")
    run = subprocess.run([sys.executable, "-W", "error:The inplace keyword:DeprecationWarning", "-c", code,
                          str(CINC / "E07500.hea"), str(tmp_path / "f212.hea"), str(tmp_path / "w.hea")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_wfdb_annotations_and_writing_show_no_deprecation(tmp_path):
    import wfdb

    from ecgfounder.datasets.cpsc import af_episodes, beat_samples

    wfdb.wrsamp("data_1_1", fs=200, units=["mV"], sig_name=["I"], p_signal=_signal(2000, 200.0)[:1].T, fmt=["16"],
                write_dir=str(tmp_path))
    wfdb.wrann("data_1_1", "atr", np.array([10, 200, 400, 900]), symbol=["+", "N", "N", "+"],
               aux_note=["(AFIB", "", "", "(N"], write_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert af_episodes(tmp_path / "data_1_1")[0] == [(10, 900)]
        assert beat_samples(tmp_path / "data_1_1").tolist() == [200, 400]
        write(Recording(_signal(), 250.0, LEADS, {}), tmp_path / "w.hea")
    assert not [str(w.message) for w in caught if "inplace" in str(w.message)]


def test_statements_keep_their_commas_through_wfdb(tmp_path):
    """Writing WFDB turned the commas inside a statement into semicolons ("Doe, John" became "Doe;
    John"): the statements were one comma-separated comment.  Each is now a comment line of its own,
    read back as written; a comma-separated "Statements:" line (CinC) is still read as a list."""
    import numpy as np

    from ecgfounder.io import read, write
    from ecgfounder.recording import Recording

    said = ("Sinus rhythm", "When compared with ECG of 10-MAY-2021 14:14, no change", "Confirmed by Doe, John")
    rec = Recording(signal=np.zeros((2, 1000)), fs=500.0, leads=("I", "II"), meta={"statements": said})
    back = read(write(rec, tmp_path / "s.hea", "wfdb"))
    assert back.meta["statements"] == said
    hea = tmp_path / "s.hea"
    hea.write_text(hea.read_text().split("# Statement")[0] + "# Statements: Sinus rhythm, LVH\n")
    assert read(hea).meta["statements"] == ("Sinus rhythm", "LVH")
