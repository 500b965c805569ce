"""MATLAB .mat files: a real CPSC 2019 record, a CPSC 2018-style struct, a batch, a WFDB .mat kept
as WFDB's, and what is refused (a compressed bomb before it is expanded, MATLAB 7.3, not MATLAB)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.signal.leads import STANDARD_12

DATA = Path(__file__).resolve().parent.parent / "data"
CPSC2019 = DATA / "cpsc2019" / "data_00014.mat"


def _limb_consistent(rng: np.random.Generator) -> np.ndarray:
    sig = rng.standard_normal((12, 2000)) * 0.2
    i, ii = sig[0], sig[1]
    sig[2], sig[3], sig[4], sig[5] = ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2
    return sig


def test_a_cpsc_2019_record_reads_as_its_ecg_vector():
    """CPSC 2019 ships its records as MATLAB files of one 'ecg' vector: refused before as an unknown
    file type."""
    rec = eio.read(CPSC2019, fs=500, leads=["II"])
    want = sio.loadmat(CPSC2019)["ecg"].ravel()
    assert rec.signal.shape == (1, 5000) and rec.fs == 500 and rec.leads == ("II",)
    assert np.array_equal(rec.signal[0], want) and rec.meta["matlab_variable"] == "ecg"
    with pytest.raises(RecordReadError, match=r"sampling rate unknown.*fs="):
        eio.read(CPSC2019, leads=["II"])
    with pytest.raises(RecordReadError, match=r"1 channel and no lead name"):
        eio.read(CPSC2019, fs=500)


def test_a_struct_gives_its_signal_field_rate_and_patient(tmp_path):
    """A CPSC 2018-style struct (ECG.data, ECG.age, ECG.sex), compressed as MATLAB saves by default."""
    sig = _limb_consistent(np.random.default_rng(1))
    f = tmp_path / "A0001.mat"
    sio.savemat(f, {"ECG": {"sex": "Female", "age": 61.0, "data": sig, "Fs": 500.0}}, do_compression=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (12 unnamed channels: the order inferred, said in a warning)
        rec = eio.read(f)
    assert rec.fs == 500 and rec.leads == STANDARD_12 and np.array_equal(rec.signal, sig)
    assert rec.meta["age"] == 61.0 and rec.meta["sex"] == "F" and rec.meta["matlab_variable"] == "ECG.data"


def test_a_batch_a_rate_variable_and_the_choice_of_variable(tmp_path):
    rng = np.random.default_rng(2)
    batch = np.stack([_limb_consistent(rng).T for _ in range(3)])  # (n, samples, leads)
    f = tmp_path / "b.mat"
    sio.savemat(f, {"X": batch, "fs": 400, "note": "a string"})
    got = list(eio.iter_read(f, leads=list(STANDARD_12)))
    assert [g.meta["id"] for g in got] == ["b#0", "b#1", "b#2"] and all(g.fs == 400 for g in got)
    assert np.array_equal(got[1].signal, batch[1].T)
    two = tmp_path / "two.mat"
    sio.savemat(two, {"a": batch[0], "b": batch[1]})
    with pytest.raises(RecordReadError, match=r"cannot tell which variable holds the signal among a, b; pass key="):
        eio.read(two, fs=500, leads=list(STANDARD_12))
    assert np.array_equal(eio.read(two, fs=500, leads=list(STANDARD_12), key="b").signal, batch[1].T)


def test_a_wfdb_mat_stays_wfdb_and_a_plain_mat_is_found_beside_it(tmp_path):
    for f in ("E07500.hea", "E07500.mat"):
        shutil.copy(DATA / "cinc2021" / f, tmp_path / f)
    shutil.copy(CPSC2019, tmp_path / "data_00014.mat")
    assert [Path(p).name for p in eio.find_records([tmp_path])] == ["E07500.hea", "data_00014.mat"]
    assert eio.read(tmp_path / "E07500.mat").meta["format"] == "wfdb"
    (tmp_path / "E07500.hea").unlink()  # its 'val' in ADC units: read as mV it would be 1000 times too large
    with pytest.raises(RecordReadError, match=r"'val' is a WFDB signal in ADC units.*put E07500.hea beside it"):
        eio.read(tmp_path / "E07500.mat", fs=500)


def test_a_compressed_bomb_is_refused_before_it_is_expanded(tmp_path, monkeypatch):
    """scipy expands a compressed variable whole (a 2-MB file declaring 2 GB of zeros took 300 MB
    only to list its variables): the file's compressed variables are expanded under the limit first."""
    import ecgfounder.io.matlab as mat

    monkeypatch.setattr(mat, "decompressed_limit", lambda n: 4 << 20)
    f = tmp_path / "bomb.mat"
    sio.savemat(f, {"ecg": np.zeros((12, 100_000))}, do_compression=True)  # 9.6 MB of zeros, ~10 KB
    assert f.stat().st_size < 100_000
    with pytest.raises(RecordReadError, match=r"expand beyond 4194304 bytes.*decompression bomb"):
        eio.read(f, fs=500)


def test_matlab_73_and_other_files_are_refused_saying_what_they_are(tmp_path):
    import h5py

    v73, sig = tmp_path / "v73.mat", np.random.default_rng(3).standard_normal((3, 2000))
    with h5py.File(v73, "w", userblock_size=512) as f:  # as MATLAB writes -v7.3: HDF5 after a 512-byte header
        f.create_dataset("ecg", data=sig)  # (a 2000x3 MATLAB matrix, column-major)
    with open(v73, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(124, b" ") + b"\x00\x02IM")
    with pytest.raises(RecordReadError, match=r"MATLAB 7.3 file, which is HDF5 inside: read it as HDF5"):
        eio.read(v73, fs=500)
    rec = eio.read(v73, format="hdf5", dataset="ecg", fs=500, leads=["V1", "V2", "V3"])  # (refused at byte 0 before)
    assert np.array_equal(rec.signal, sig)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a MATLAB file at all " * 20)
    with pytest.raises(RecordReadError, match=r"not a MATLAB \.mat file"):
        eio.read(junk, fs=500)
    cut = tmp_path / "cut.mat"
    sio.savemat(cut, {"ecg": np.ones((1, 5000))})
    cut.write_bytes(cut.read_bytes()[:2000])
    with pytest.raises(RecordReadError, match=r"truncated"):
        eio.read(cut, fs=500, leads=["II"])


def test_the_command_line_picks_the_variable_with_key(tmp_path, capsys):
    """The reader's fix ('pass key=NAME') had no flag on the command line."""
    from ecgfounder.cli import main

    rng = np.random.default_rng(4)
    f = tmp_path / "two.mat"
    sio.savemat(f, {"a": _limb_consistent(rng), "b": _limb_consistent(rng)})
    assert main(["info", str(f), "--fs", "500"]) != 0
    assert "pass --key NAME" in capsys.readouterr().err
    assert main(["info", str(f), "--fs", "500", "--key", "b", "--leads", ",".join(STANDARD_12)]) == 0
    assert "matlab, 12 leads" in capsys.readouterr().out
