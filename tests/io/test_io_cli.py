"""CLI: info, convert (records and checkpoint routing), and predict over mixed formats."""

from __future__ import annotations

import json
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
