"""CLI: info, convert (records and checkpoint routing), and predict over mixed formats."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
F = DATA / "formats"
SCP = F / "scp_ecg" / "ecgtoolkit_Example.scp"
MUSE = F / "muse_xml" / "musePHI_muse_ecg1.xml"


def test_info_json_lines(capsys):
    code = main(["info", "--json", str(SCP), str(MUSE), str(DATA / "cinc2021" / "E07500.hea")])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 3
    rows = [json.loads(x) for x in out]
    assert rows[0]["format"] == "scp" and rows[0]["fs"] == 500 and rows[0]["n_samples"] == 5000
    assert rows[0]["patient_id"] == "SBJ-123" and rows[0]["units"] == "mV"
    assert rows[1]["format"] == "muse" and rows[1]["age"] == 60 and len(rows[1]["leads"]) == 12
    assert rows[2]["format"] == "wfdb" and rows[2]["dx"]


def test_info_batch_file_lists_first_three(tmp_path, capsys):
    import h5py

    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        f["tracings"] = np.zeros((5, 4096, 12), np.float32)
    assert main(["info", str(tmp_path / "b.hdf5")]) == 0
    out = capsys.readouterr().out
    assert out.count("400 Hz") == 3 and "--all" in out
    assert main(["info", "--all", str(tmp_path / "b.hdf5")]) == 0
    assert capsys.readouterr().out.count("400 Hz") == 5


@pytest.mark.parametrize("to,suffix", [("wfdb", ".hea"), ("npz", ".npz"), ("edf", ".edf")])
def test_convert_record_round_trip(tmp_path, capsys, to, suffix):
    src = tmp_path / "clark.scp"
    shutil.copy(SCP, src)
    assert main(["convert", str(src), "--to", to]) == 0
    out = tmp_path / f"clark{suffix}"
    assert capsys.readouterr().out.strip() == str(out)
    a, b = eio.read(src), eio.read(out)
    assert b.leads == a.leads and b.fs == a.fs
    # 2.5-µV source resolution survives every target within its own quantisation
    tol = {"npz": 1e-12, "wfdb": 0.5 / np.floor(32000 / np.abs(a.signal).max()) + 1e-9, "edf": 5e-5}[to]
    assert np.abs(b.signal - a.signal).max() <= tol


def test_convert_batch_and_errors(tmp_path, capsys):
    import h5py

    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["tracings"] = np.random.default_rng(0).normal(size=(2, 4096, 12)).astype(np.float32)
        f["exam_id"] = np.array([7, 8])
    assert main(["convert", str(tmp_path / "b.h5"), "--to", "npz", "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["7.npz", "8.npz"]
    assert eio.read(tmp_path / "out" / "8.npz").fs == 400
    assert main(["convert", str(SCP)]) == 2
    assert "--to is required" in capsys.readouterr().err


def test_convert_routes_checkpoints_to_safetensors(tmp_path, capsys):
    pytest.importorskip("torch")
    from ecgfounder.models.net1d import Net1DConfig
    from ecgfounder.testing import TINY_CONFIG, build_synthetic_checkpoint

    ckpt = build_synthetic_checkpoint(tmp_path / "w.pth", leads=1, config=Net1DConfig(in_channels=1, **TINY_CONFIG))
    assert main(["convert", str(ckpt), "-o", str(tmp_path / "w.safetensors")]) == 0
    assert (tmp_path / "w.safetensors").exists()
    before = (tmp_path / "w.safetensors").read_bytes()  # converted again: kept unless --overwrite
    assert main(["convert", str(ckpt)]) == 2
    assert "w.safetensors exists; give another file or folder with -o/--output, or add --overwrite" in capsys.readouterr().err
    assert (tmp_path / "w.safetensors").read_bytes() == before
    assert main(["convert", str(ckpt), "--overwrite"]) == 0


def test_predict_accepts_mixed_formats_in_one_run(tmp_path):
    pytest.importorskip("torch")
    from ecgfounder.models.loading import load_model
    from ecgfounder.models.net1d import Net1DConfig
    from ecgfounder.prediction import predict
    from ecgfounder.testing import TINY_CONFIG, build_synthetic_checkpoint

    model = load_model(build_synthetic_checkpoint(tmp_path / "w.pth", leads=12, config=Net1DConfig(**TINY_CONFIG)))
    rec = eio.read(DATA / "cinc2021" / "E07500.hea")
    edf = eio.write(rec, tmp_path / "E07500.edf", "edf")
    files = [F / "hl7_aecg" / "hl7_2003-12_example_aECG.xml", F / "dicom" / "ecgtoolkit_Example.dcm", SCP, MUSE, edf]
    df = predict(files, model=model, batch_size=8)
    assert list(df["path"]) == [str(p) for p in files]
    probs = df[list(model.labels)].to_numpy()
    assert np.all((probs >= 0) & (probs <= 1))
    # the same recording in three formats gives the same prediction
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-5)
    np.testing.assert_allclose(probs[0], probs[2], atol=1e-5)


def test_convert_to_wfdb_makes_valid_record_names(tmp_path):
    """WFDB record names hold no '.': an input named rec.v2.xml, and batch ids like HR.001, give
    rec_v2.hea and HR_001.hea instead of a refusal; other targets keep the dots."""
    import h5py

    src = tmp_path / "rec.v2.xml"
    shutil.copy(MUSE, src)
    assert main(["convert", str(src), "--to", "wfdb"]) == 0
    assert (tmp_path / "rec_v2.hea").exists()
    np.testing.assert_allclose(eio.read(tmp_path / "rec_v2.hea").signal, eio.read(MUSE).signal, atol=0.01)
    assert main(["convert", str(src), "--to", "npz"]) == 0 and (tmp_path / "rec.v2.npz").exists()
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["tracings"] = np.random.default_rng(0).normal(size=(2, 4096, 12)).astype(np.float32)
        f["exam_id"] = np.array([b"HR.001", b"HR.002"])
    assert main(["convert", str(tmp_path / "b.h5"), "--to", "wfdb", "-o", str(tmp_path / "w")]) == 0
    assert sorted(p.name for p in (tmp_path / "w").glob("*.hea")) == ["HR_001.hea", "HR_002.hea"]


def test_convert_to_a_new_folder_named_with_a_slash(tmp_path, capsys):
    """`convert x.xml --to wfdb -o out/` (a folder not yet made) wrote out.hea beside it."""
    out = tmp_path / "out"
    assert main(["convert", str(MUSE), "--to", "wfdb", "-o", f"{out}/"]) == 0
    assert (out / "musePHI_muse_ecg1.hea").is_file() and not (tmp_path / "out.hea").exists()


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error: ")]


def test_convert_keeps_an_existing_output_unless_asked(tmp_path, capsys):
    """An existing a.edf beside a.npy was replaced without a word."""
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(12, 500)))
    (tmp_path / "a.edf").write_bytes(b"keep")
    argv = ["convert", str(tmp_path / "a.npy"), "--fs", "500", "--to", "edf"]
    assert main(argv) == 2
    assert _errors(capsys.readouterr().err) == [f"error: output {tmp_path / 'a.edf'} exists; give another file or "
                                                "folder with -o/--output, or add --overwrite to replace it."]
    assert (tmp_path / "a.edf").read_bytes() == b"keep"
    assert main([*argv, "--overwrite"]) == 0 and eio.read(tmp_path / "a.edf").n_samples == 500


def test_convert_never_writes_over_its_input_under_another_name(tmp_path, capsys):
    """`-o E07500.dat` wrote E07500.hea over the input header (the check compared .dat with .hea);
    an output hard-linked to the input rewrote it (path equality misses links: os.path.samefile)."""
    for ext in (".hea", ".mat"):
        shutil.copy(DATA / "cinc2021" / f"E07500{ext}", tmp_path / f"E07500{ext}")
    src = tmp_path / "E07500.hea"
    before = src.read_bytes()
    (tmp_path / "o").mkdir()
    os.link(src, tmp_path / "o" / "E07500.hea")
    np.save(tmp_path / "b.npy", np.zeros((12, 500)))
    (tmp_path / "link.npz").symlink_to(tmp_path / "b.npy")
    for argv in ([str(src), "--to", "wfdb", "-o", str(tmp_path / "E07500.dat")],
                 [str(src), "--to", "wfdb", "-o", str(tmp_path / "o"), "--overwrite"],
                 [str(tmp_path / "b.npy"), "--fs", "500", "--to", "npz", "-o", str(tmp_path / "link.npz"), "--overwrite"]):
        assert main(["convert", *argv]) == 2, argv
        err = _errors(capsys.readouterr().err)
        assert len(err) == 1 and "would overwrite the input" in err[0] and "-o/--output" in err[0], err
    assert src.read_bytes() == before and np.load(tmp_path / "b.npy").shape == (12, 500)


def test_convert_several_inputs_into_a_folder(tmp_path, capsys):
    """`convert a b c -o out/` was an argparse error (one FILE only): an archive took one command per
    file.  An unreadable input costs none of the others (exit 1); two inputs of one name are refused
    before anything is written."""
    rng = np.random.default_rng(0)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("in/a.npy", "in/sub/b.npy", "c.npy"):
        np.save(tmp_path / name, rng.normal(size=(12, 500)))
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    out = tmp_path / "out ü"
    rc = main(["convert", str(tmp_path / "in"), str(tmp_path / "c.npy"), str(tmp_path / "bad.npy"), "--fs", "500",
               "--to", "wfdb", "-o", f"{out}/"])
    cap = capsys.readouterr()
    assert rc == 1 and sorted(p.name for p in out.glob("*.hea")) == ["a.hea", "b.hea", "c.hea"]
    assert cap.out.splitlines() == [str(out / f"{x}.hea") for x in "abc"]
    err = _errors(cap.err)
    assert len(err) == 2 and err[0].startswith(f"error: {tmp_path / 'bad.npy'}: ") and "1 of 4 files" in err[1], err
    np.save(tmp_path / "empty.npy", np.zeros((0, 500, 12)))  # alone: StopIteration, a traceback
    assert main(["convert", str(tmp_path / "empty.npy"), "--fs", "500", "--to", "npz"]) == 2
    assert _errors(capsys.readouterr().err) == [f"error: {tmp_path / 'empty.npy'}: no recordings in the file, nothing "
                                                "to convert"]
    np.save(tmp_path / "in" / "c.npy", np.zeros((12, 500)))
    assert main(["convert", str(tmp_path / "in"), str(tmp_path / "c.npy"), "--fs", "500", "--to", "npz",
                 "-o", str(tmp_path / "o2")]) == 2
    assert "c.npy would both be written to" in _errors(capsys.readouterr().err)[0]
    assert not (tmp_path / "o2").exists()


def test_convert_batch_ids_that_repeat_are_all_written(tmp_path, capsys):
    """Ids HR.001, HR_001 and HR.001 all became HR_001.hea: two recordings lost, '3 recordings' said."""
    import h5py

    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["tracings"] = np.random.default_rng(0).normal(size=(3, 4096, 12)).astype(np.float32)
        f["exam_id"] = np.array([b"HR.001", b"HR_001", b"HR.001"])
    assert main(["convert", str(tmp_path / "b.h5"), "--to", "wfdb", "-o", str(tmp_path / "w")]) == 0
    assert sorted(p.name for p in (tmp_path / "w").glob("*.hea")) == ["HR_001.hea", "HR_001_1.hea", "HR_001_2.hea"]
    assert "2 whose id was met before written as ID_N" in capsys.readouterr().out
    with h5py.File(tmp_path / "b.h5") as f:
        np.testing.assert_allclose(eio.read(tmp_path / "w" / "HR_001_2.hea").lead("V1"), f["tracings"][2, :, 6], atol=1e-3)


def test_info_counts_one_lead_as_one_lead(capsys):
    assert main(["info", str(DATA / "cpsc2019" / "data_00014.mat"), "--fs", "500", "--leads", "II"]) == 0
    assert "matlab, 1 lead (II), 500 Hz" in capsys.readouterr().out


def test_an_index_past_a_batch_file_says_how_many_it_holds(tmp_path):
    import h5py

    from ecgfounder.errors import RecordReadError

    np.save(tmp_path / "b.npy", np.zeros((5, 12, 1000), np.float32))
    with h5py.File(tmp_path / "b.hdf5", "w") as f:
        f["tracings"] = np.zeros((3, 4096, 12), np.float32)
    with pytest.raises(RecordReadError, match=r"no recording 7 in the file \(it holds 5: 0 to 4\)$"):
        eio.read(tmp_path / "b.npy", fs=500, index=7)
    with pytest.raises(RecordReadError, match=r"no recording 3 in the file \(it holds 3: 0 to 2\)$"):
        eio.read(tmp_path / "b.hdf5", index=3)


def test_a_record_read_in_part_says_how_long_the_file_is(tmp_path):
    """Readers that read only the first max_duration seconds (WFDB, EDF, HDF5, NumPy, CSV) kept no
    trace of it, where a record cut after reading carries meta['truncated_from_s']."""
    wfdb = Path(__file__).resolve().parent.parent.parent / "examples" / "ecg" / "E07500.hea"
    assert eio.read(wfdb, max_duration=6).meta["truncated_from_s"] == 10.0
    assert "truncated_from_s" not in eio.read(wfdb, max_duration=60).meta
    np.save(tmp_path / "a.npy", np.zeros((2, 5000), np.float32))
    rec = eio.read(tmp_path / "a.npy", fs=500, leads=["I", "II"], max_duration=2)
    assert rec.duration == 2 and rec.meta["truncated_from_s"] == 10.0
