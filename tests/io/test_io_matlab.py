"""MATLAB .mat files: a real CPSC 2019 record, a CPSC 2018-style struct, a batch, a WFDB .mat kept
as WFDB's, MATLAB 7.3 (HDF5) files read as the same variables at level 5, and what is refused (a compressed
bomb before it is expanded, a hostile 7.3 file, not MATLAB)."""

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


def test_a_structs_age_follows_the_readers_one_age_rule(tmp_path):
    """A text age ('69') was kept as text, and '300' or 999 as ages: the readers' one rule reads a
    number of years from 0 to 120 and says what it does not read."""
    sig = np.zeros((12, 5000))
    for k, (age, want) in enumerate((("69", 69.0), (" 69 years", 69.0), ("300", None), (999.0, None), ("?", None))):
        f = tmp_path / f"a{k}.mat"
        sio.savemat(f, {"ECG": {"sex": "Male", "age": age, "data": sig, "Fs": 500.0}})
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            rec = eio.read(f)
        assert rec.meta.get("age") == want and rec.meta["sex"] == "M", (age, rec.meta)
        warned = [str(w.message) for w in said if "not an age in years" in str(w.message)]
        assert bool(warned) == (want is None and age != "?"), (age, warned)


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


def _save_73(path: Path, variables: dict) -> None:
    """``variables`` saved as MATLAB -v7.3 lays them out (checked against hdf5storage 0.2.2's MATLAB
    mode): HDF5 after a 512-byte MATLAB header; each array transposed (MATLAB is column-major) with
    its class in ``MATLAB_class``; text as UTF-16 codes of class ``char``; a struct a group."""
    import h5py

    def put(group, name, value):
        if isinstance(value, list):  # a 1 x n cell array of texts: references to variables under '#refs#'
            refs = group.file.require_group("#refs#")
            cells = []
            for k, text in enumerate(value):
                put(refs, f"{name}_{k}", text)
                cells.append(refs[f"{name}_{k}"].ref)
            ds = group.create_dataset(name, data=np.array(cells, dtype=h5py.ref_dtype)[:, None])
            ds.attrs["MATLAB_class"] = np.bytes_(b"cell")
            return
        if isinstance(value, dict):
            sub = group.create_group(name)
            sub.attrs["MATLAB_class"] = np.bytes_(b"struct")
            for k, v in value.items():
                put(sub, k, v)
            return
        if isinstance(value, str):
            ds = group.create_dataset(name, data=np.array([[ord(c) for c in value]], dtype=np.uint16).T)
            ds.attrs["MATLAB_class"], ds.attrs["MATLAB_int_decode"] = np.bytes_(b"char"), 2
            return
        arr = np.asarray(value)
        arr = arr.reshape(1, -1) if arr.ndim < 2 else arr  # (MATLAB has no 0-D or 1-D arrays)
        ds = group.create_dataset(name, data=arr.T)
        ds.attrs["MATLAB_class"] = np.bytes_({"float64": "double", "float32": "single"}.get(arr.dtype.name, arr.dtype.name))

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            put(f, name, value)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(124, b" ") + b"\x00\x02IM")


def test_a_matlab_73_file_reads_as_the_same_variables_saved_at_level_5(tmp_path):
    """MATLAB's -v7.3 (HDF5) saves were refused ('read it as HDF5'), and read as HDF5 a batch came out
    with its axes reversed; they now read as the same variables saved at level 5 do."""
    sig = _limb_consistent(np.random.default_rng(4))
    struct = {"ECG": {"sex": "Female", "age": 61.0, "data": sig, "Fs": 500.0}}
    _save_73(tmp_path / "s73.mat", struct)
    sio.savemat(tmp_path / "s5.mat", struct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (12 unnamed channels: the order inferred, said in a warning)
        new, old = eio.read(tmp_path / "s73.mat"), eio.read(tmp_path / "s5.mat")
    assert np.array_equal(new.signal, sig) and np.array_equal(new.signal, old.signal)
    assert (new.fs, new.leads) == (old.fs, old.leads) == (500.0, STANDARD_12)
    for k in ("age", "sex", "matlab_variable"):
        assert new.meta[k] == old.meta[k]
    rng = np.random.default_rng(5)
    batch = np.stack([_limb_consistent(rng).T for _ in range(3)])  # (n, samples, leads): stored (leads, samples, n)
    _save_73(tmp_path / "b73", {"X": batch, "fs": np.float64(400), "note": "a string", "n": np.int16(3)})
    got = list(eio.iter_read(tmp_path / "b73", leads=list(STANDARD_12)))  # (no extension: found by its header)
    assert [g.meta["id"] for g in got] == ["b73#0", "b73#1", "b73#2"] and all(g.fs == 400 for g in got)
    assert all(np.array_equal(g.signal, b.T) for g, b in zip(got, batch))
    _save_73(tmp_path / "two.mat", {"a": batch[0], "b": batch[1]})
    with pytest.raises(RecordReadError, match=r"cannot tell which variable holds the signal among a, b; pass key="):
        eio.read(tmp_path / "two.mat", fs=500, leads=list(STANDARD_12))
    assert np.array_equal(eio.read(tmp_path / "two.mat", fs=500, leads=list(STANDARD_12), key="b").signal, batch[1].T)


def test_lead_names_stored_beside_the_signal_name_its_rows(tmp_path):
    """A cell array of lead names ('leads', 'labels', ...) beside the signal, or a struct's field of
    them, names its rows (they were taken for the standard order, with a warning, or refused)."""
    sig = np.random.default_rng(6).standard_normal((12, 3000))
    order = ["V1", "V2", "V3", "V4", "V5", "V6", "I", "II", "III", "aVR", "aVL", "aVF"]
    cell = np.empty((1, 12), dtype=object)
    cell[0, :] = order
    sio.savemat(tmp_path / "c5.mat", {"ecg": sig, "fs": 500.0, "leads": cell})
    _save_73(tmp_path / "c73.mat", {"ecg": sig, "fs": 500.0, "leads": order})
    chars = np.array([x.ljust(3) for x in reversed(order)])  # a char matrix, a row a lead
    sio.savemat(tmp_path / "s5.mat", {"ECG": {"data": sig[::-1], "Fs": 500.0, "lead_names": chars}})
    _save_73(tmp_path / "s73.mat", {"ECG": {"data": sig, "fs": 500.0, "labels": order}})
    for name in ("c5.mat", "c73.mat", "s5.mat", "s73.mat"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no lead order inferred)
            rec = eio.read(tmp_path / name)
        assert set(rec.leads) == set(STANDARD_12), name
        assert np.array_equal(rec.lead("V1"), sig[0]) and np.array_equal(rec.lead("aVF"), sig[11]), name
    got = eio.read(tmp_path / "c73.mat", leads=["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"])
    assert np.array_equal(got.signal[0], sig[0])  # the caller's names, not the file's, where both are given
    sio.savemat(tmp_path / "few.mat", {"ecg": sig[:2], "fs": 500.0, "leads": cell[:, :3]})
    with pytest.raises(RecordReadError, match=r"the file names 3 leads \(V1, V2, V3\), but its signal 'ecg' has "
                                              r"shape \(2, 3000\); pass leads="):
        eio.read(tmp_path / "few.mat")


def test_a_hostile_matlab_73_file_is_refused_in_one_line(tmp_path, monkeypatch):
    import h5py

    import ecgfounder.io.matlab as mat

    _save_73(tmp_path / "big.mat", {"ecg": np.zeros((12, 5000))})
    monkeypatch.setattr(mat, "MAX_VALUES", 10_000)
    with pytest.raises(RecordReadError, match=r"variable 'ecg' of shape \(12, 5000\) is above the limit of 10000"):
        eio.read(tmp_path / "big.mat", fs=500)
    monkeypatch.undo()
    bomb = tmp_path / "bomb.mat"  # 10^9 values declared, a few kilobytes stored
    _save_73(bomb, {"fs": 500.0})
    with h5py.File(bomb, "a") as f:
        d = f.create_dataset("ecg", shape=(100_000, 10_000), chunks=(1000, 12), compression="gzip", dtype="f8")
        d[:1000, :12] = 0.0
        d.attrs["MATLAB_class"] = np.bytes_(b"double")
    with pytest.raises(RecordReadError, match=r"above the limit"):
        eio.read(bomb, leads=["II"])
    cell = tmp_path / "cell.mat"
    _save_73(cell, {"ECG": {"data": 1.0, "fs": 500.0}})
    with h5py.File(cell, "a") as f:
        del f["ECG/data"]
        f["ECG"].create_dataset("data", shape=(1, 1), dtype=h5py.ref_dtype).attrs["MATLAB_class"] = np.bytes_(b"cell")
    with pytest.raises(RecordReadError, match=r"field 'data' of struct 'ECG' is not a numeric array \(cell\)"):
        eio.read(cell, leads=["II"])
    loop = tmp_path / "loop.mat"  # a cell of lead names whose cells are the cell itself
    _save_73(loop, {"ecg": np.zeros((2, 3000)), "fs": 500.0})
    with h5py.File(loop, "a") as f:
        d = f.create_dataset("leads", shape=(2, 1), dtype=h5py.ref_dtype)
        d.attrs["MATLAB_class"], d[0, 0], d[1, 0] = np.bytes_(b"cell"), d.ref, d.ref
    with pytest.raises(RecordReadError, match=r"2 channels and no lead names; pass leads="):
        eio.read(loop)
    cut = tmp_path / "cut.mat"
    cut.write_bytes((tmp_path / "big.mat").read_bytes()[:1500])
    with pytest.raises(RecordReadError, match=r"cannot open HDF5 file"):
        eio.read(cut, fs=500)


def test_other_files_are_refused_saying_what_they_are(tmp_path):
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


def test_struct_arrays_and_cell_arrays_read_each_element_as_a_recording(tmp_path):
    """A 1 x 3 struct (ECG(k).data) or a cell of 3 matrices was refused as 'cannot tell which variable
    holds the signal among none'; each element is now a recording, in MATLAB's order."""
    rng = np.random.default_rng(5)
    sigs = [rng.standard_normal((2, 600 + 100 * k)) for k in range(3)]
    st = np.zeros((1, 3), dtype=[("data", object), ("fs", object), ("age", object)])
    cell = np.empty((1, 3), dtype=object)
    for k, sig in enumerate(sigs):
        st[0, k]["data"], st[0, k]["fs"], st[0, k]["age"], cell[0, k] = sig, 250.0 * (k + 1), 50.0 + k, sig
    sio.savemat(tmp_path / "st.mat", {"ECG": st})
    sio.savemat(tmp_path / "cell.mat", {"recs": cell, "fs": 500.0})
    got = list(eio.iter_read(tmp_path / "st.mat", leads=["I", "II"]))
    assert [g.id for g in got] == ["st#0", "st#1", "st#2"] and [g.fs for g in got] == [250.0, 500.0, 750.0]
    assert [g.meta["matlab_variable"] for g in got] == ["ECG(1).data", "ECG(2).data", "ECG(3).data"]
    assert got[2].meta["age"] == 52.0 and all(np.array_equal(g.signal[:2], s) for g, s in zip(got, sigs))
    got = list(eio.iter_read(tmp_path / "cell.mat", leads=["I", "II"]))
    assert [(g.id, g.fs, g.meta["matlab_variable"]) for g in got] == [("cell#0", 500.0, "recs{1}"),
                                                                      ("cell#1", 500.0, "recs{2}"),
                                                                      ("cell#2", 500.0, "recs{3}")]
    assert np.array_equal(got[1].signal[:2], sigs[1])
    one = eio.read(tmp_path / "cell.mat", leads=["I", "II"], index=2)
    assert one.id == "cell#2" and np.array_equal(one.signal[:2], sigs[2])
    with pytest.raises(RecordReadError, match=r"holds a batch of recordings; use ecgfounder.io.iter_read"):
        eio.read(tmp_path / "cell.mat", leads=["I", "II"])
    cell[0, 1] = "a note"
    sio.savemat(tmp_path / "mixed.mat", {"recs": cell, "fs": 500.0})
    with pytest.raises(RecordReadError, match=r"MATLAB variable 'recs\{2\}' is not a numeric array \(str\)"):
        list(eio.iter_read(tmp_path / "mixed.mat", leads=["I", "II"]))


def test_complex_signals_and_matlab_73_cell_arrays_are_refused_saying_why(tmp_path):
    """A complex array was 'not a numeric array (ndarray)'; a 7.3 cell of signals 'among none'."""
    import h5py

    sig = np.ones((2, 500))
    sio.savemat(tmp_path / "c.mat", {"ecg": sig + 1j})
    with pytest.raises(RecordReadError, match=r"'ecg' of shape \(2, 500\) holds complex numbers.*save real\(x\)"):
        eio.read(tmp_path / "c.mat", fs=500, leads=["I", "II"])
    _save_73(tmp_path / "c73.mat", {"fs": 500.0})
    with h5py.File(tmp_path / "c73.mat", "a") as f:
        z = np.zeros((500, 2), dtype=[("real", "<f8"), ("imag", "<f8")])  # (as MATLAB stores complex data)
        z["real"], z["imag"] = 1.0, 1.0
        f.create_dataset("ecg", data=z).attrs["MATLAB_class"] = np.bytes_(b"double")
        refs = f.require_group("#refs#")
        cells = [refs.create_dataset(f"e{k}", data=sig.T).ref for k in range(2)]
        f.create_dataset("recs", data=np.array(cells, dtype=h5py.ref_dtype)[:, None]).attrs["MATLAB_class"] = \
            np.bytes_(b"cell")
    with pytest.raises(RecordReadError, match=r"'ecg' of shape \(2, 500\) holds complex numbers"):
        eio.read(tmp_path / "c73.mat", leads=["I", "II"], key="ecg")
    with pytest.raises(RecordReadError, match=r"MATLAB 7.3 cell array 'recs' of shape \(1, 2\).*save it with -v7"):
        eio.read(tmp_path / "c73.mat", leads=["I", "II"], key="recs")
