"""Embeddings as a researcher uses them (ecgfounder embed, ecgfounder.embed): equal to the model's
pooled features, rows aligned with an index, described beside the array (weights, preprocessing,
lead, inference path), approximate paths said, mistakes named by the flag given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgfounder.cli import main

TEN_S, FORTY_S = "cinc2021/E07500.hea", "ptbdb/s0010_re.hea"  # 1 and 4 windows


@pytest.fixture(scope="module")
def tiny_ckpt1(tmp_path_factory, tiny1):
    from ecgfounder.models.loading import save_model

    return save_model(tiny1, tmp_path_factory.mktemp("tiny1") / "tiny1.safetensors")


def _features(model, path) -> np.ndarray:
    """The eager model's pooled features of each window of ``path`` (what the published code calls features)."""
    import ecgfounder
    from ecgfounder.signal.preprocess import preprocess_recording

    windows = preprocess_recording(ecgfounder.read(path), model.description.contract).windows
    with torch.no_grad():
        return model.forward_features(torch.from_numpy(windows)).numpy()


@pytest.mark.parametrize("aggregate", ["mean", "none"])
def test_fp32_rows_are_the_models_features_window_by_window_or_their_mean(tiny12, tiny_ckpt12, data_dir, tmp_path,
                                                                           aggregate):
    paths = [data_dir / FORTY_S, data_dir / TEN_S]  # (the order given is the order of the rows)
    out = tmp_path / "e.npy"
    assert main(["embed", *map(str, paths), "--checkpoint", str(tiny_ckpt12), "-o", str(out), "--precision", "fp32",
                 "--aggregate", aggregate, "-q"]) == 0
    feats = [_features(tiny12, p) for p in paths]
    want = np.concatenate(feats if aggregate == "none" else [f.mean(axis=0, keepdims=True) for f in feats])
    got, index = np.load(out), pd.read_csv(tmp_path / "e.csv")
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    rows_of = [len(f) if aggregate == "none" else 1 for f in feats]
    assert index["path"].tolist() == [str(p) for p, n in zip(paths, rows_of) for _ in range(n)]


def test_the_array_is_described_beside_it(tiny1, tiny_ckpt1, data_dir, tmp_path, capsys):
    """Nothing said which weights, preprocessing, lead or inference path made emb.npy: a user could
    not tell later.  A 1-lead model on a 12-lead file: the lead fed is named."""
    from ecgfounder.models.description import model_fingerprint

    bad = tmp_path / "bad.hea"
    bad.write_text("garbage\n")
    out = tmp_path / "emb.npy"
    assert main(["embed", str(data_dir / TEN_S), str(bad), "--checkpoint", str(tiny_ckpt1), "-o", str(out), "-q",
                 "--precision", "fp32"]) == 1  # a record failed
    meta = json.loads((tmp_path / "emb.json").read_text())
    assert meta["array"] == {"file": "emb.npy", "shape": [1, tiny1.num_features], "dtype": "float32"}
    assert meta["index"] == "emb.csv" and meta["aggregate"] == "mean" and meta["rows"].startswith("records: the mean")
    assert meta["model"]["fingerprint"] == model_fingerprint(tiny1) and meta["model"]["source"] == str(tiny_ckpt1)
    assert meta["preprocessing"]["leads"] == ["I"] and meta["lead"] == "I"
    assert meta["inference"]["precision"] == "fp32" and meta["inference"]["exact"] is True
    assert meta["records"] == {"files": 2, "embedded": 1, "failed": 1}
    assert meta["failures"][0][0] == str(bad)


def test_an_approximate_path_is_said_and_recorded(tiny12, tiny_ckpt12, data_dir, tmp_path, capsys, monkeypatch):
    """precision auto (the default) may run bf16 or int8: the embeddings are then close to fp32's,
    not equal, and nothing told the user (a cached auto choice is not even announced)."""
    from ecgfounder.prediction import embed

    monkeypatch.setenv("ECGFOUNDER_AUTO_PATH", "bf16/torch")  # what auto stands for, as if measured
    out = tmp_path / "e.npy"
    assert main(["embed", str(data_dir / TEN_S), "--checkpoint", str(tiny_ckpt12), "-o", str(out)]) == 0
    assert "computed in bf16/torch" in capsys.readouterr().err
    inference = json.loads((tmp_path / "e.json").read_text())["inference"]
    assert inference["precision"] == "bf16" and inference["exact"] is False and "fp32" in inference["note"]
    with pytest.warns(UserWarning, match="precision='fp32'.* gives exact ones"):
        table, _ = embed([data_dir / TEN_S], tiny12)
    assert table.attrs["inference"] == ("bf16", "torch")


def test_the_index_carries_each_records_quality(tiny12, tiny_ckpt12, data_dir, tmp_path):
    """The quality gate assessed every record, but embed's index dropped the flags (predict keeps them)."""
    from ecgfounder.prediction import embed

    assert main(["embed", str(data_dir / TEN_S), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "e.npy"),
                 "-q", "--aggregate", "none"]) == 0
    index = pd.read_csv(tmp_path / "e.csv")
    assert list(index.columns) == ["record", "path", "member", "n_windows", "quality", "window", "start_s"]
    assert index["quality"].tolist() == ["good"]
    table, _ = embed([data_dir / TEN_S], tiny12, quality="off")
    assert list(table.columns) == ["record", "path", "member", "n_windows", "quality"] and table["quality"].tolist() == [""]


def test_window_rows_carry_their_start_in_the_recording(tiny12, tiny_ckpt12, data_dir, tmp_path):
    """A row per window said only its number: joining it to the recording's timeline meant
    re-deriving the cut (the last window is aligned to the record's end, overlapping the one
    before).  start_s is the window's first second; window still joins predict's per-window rows."""
    import ecgfounder
    from ecgfounder.prediction import embed

    rec = ecgfounder.read(data_dir / FORTY_S)
    duration, span = rec.n_samples / rec.fs, tiny12.description.contract.window_s
    n = int(np.ceil(duration / span))
    want = [k * span for k in range(n - 1)] + [duration - span]  # sequential, the last one ending with the record
    assert main(["embed", str(data_dir / FORTY_S), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "e.npy"),
                 "-q", "--aggregate", "none", "--precision", "fp32"]) == 0
    index = pd.read_csv(tmp_path / "e.csv")
    assert index["window"].tolist() == list(range(n))
    np.testing.assert_allclose(index["start_s"], want, rtol=0, atol=1e-9)
    table, _ = embed([data_dir / FORTY_S, data_dir / TEN_S], tiny12, aggregate="none", precision="fp32")
    np.testing.assert_allclose(table["start_s"], want + [0.0], rtol=0, atol=1e-9)
    assert "start_s" in json.loads((tmp_path / "e.json").read_text())["rows"]


def test_a_resumed_run_is_described_as_the_uninterrupted_one(tiny_ckpt12, data_dir, tmp_path, monkeypatch):
    """The description of a run interrupted, moved (inputs and output named relatively) and resumed is
    the uninterrupted run's: no field keeps what only the first session saw, the failures included."""
    import importlib
    import shutil

    stream = importlib.import_module("ecgfounder.prediction.stream")
    recs = tmp_path / "a" / "recs"
    recs.mkdir(parents=True)
    for name in ("E07500.hea", "E07500.mat", "E07502.hea", "E07502.mat"):
        shutil.copy(data_dir / "cinc2021" / name, recs / name)
    (recs / "E07501.hea").write_text("garbage\n")
    monkeypatch.chdir(tmp_path / "a")
    args = ["embed", "recs", "--checkpoint", str(tiny_ckpt12), "-q", "--precision", "fp32", "--workers", "0",
            "--resume"]
    assert main(args + ["-o", "full/e.npy"]) == 1
    real = stream.index_rows

    def ctrl_c_at_the_third_file(res, *a):
        if res.input_index == 2:
            raise KeyboardInterrupt
        return real(res, *a)

    monkeypatch.setattr(stream, "index_rows", ctrl_c_at_the_third_file)
    assert main(args + ["-o", "out/e.npy"]) == 130  # the second file's failure saved with the first file's row
    monkeypatch.setattr(stream, "index_rows", real)
    assert json.loads(Path("out/.e.csv.state.json").read_text())["done"] == 2
    shutil.move(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path / "b")
    assert main(args + ["-o", "out/e.npy"]) == 1
    full, resumed = (json.loads(Path(f"{d}/e.json").read_text()) for d in ("full", "out"))
    assert resumed == full and resumed["failures"][0][0] == str(Path("recs/E07501.hea"))
    assert pd.read_csv("out/e.csv").equals(pd.read_csv("full/e.csv"))


def test_output_named_as_given_and_index_beside_it(tiny_ckpt12, data_dir, tmp_path, capsys):
    """-o in a folder that cannot be written was reported as '--index .../e.csv' (a name the user never
    gave); -o E.NPY put the index in 'E.NPY.csv'."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = [str(data_dir / TEN_S), "--checkpoint", str(tiny_ckpt12), "-q"]
    assert main(["embed", *args, "-o", str(blocker / "e.npy")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --output {blocker / 'e.npy'}: ")
    assert main(["embed", *args, "-o", str(tmp_path / "E.NPY")]) == 0
    assert (tmp_path / "E.csv").exists() and (tmp_path / "E.json").exists()


def test_a_stale_description_never_sits_beside_new_rows(tmp_path, monkeypatch):
    """If publishing the array fails, the previous run's description is already gone."""
    from ecgfounder.prediction import embeddings

    (tmp_path / "e.json").write_text('{"model": "the previous weights"}')
    partial = tmp_path / ".e.npy.partial.f32"
    np.ones((2, 3), np.float32).tofile(partial)

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(embeddings, "copy_rows_npy", fail)
    with pytest.raises(OSError, match="disk full"):
        embeddings.finish_embeddings(partial, tmp_path / "e.npy", {"array": {"shape": [2, 3]}})
    assert not (tmp_path / "e.json").exists()
