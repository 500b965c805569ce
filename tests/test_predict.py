"""Prediction API and CLI: one row per record, named columns, and bad files that never stop a batch."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgfounder.cli import main
from ecgfounder.io import read
from ecgfounder.labels import load_labels
from ecgfounder.prediction import embed, predict

GOOD = ["HR06000", "E07500", "JS20000", "JS20001"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_dir):
    """Good records plus every kind of bad file, side by side."""
    d = tmp_path_factory.mktemp("mixed")
    for name in GOOD:
        for ext in (".hea", ".mat"):
            shutil.copy(data_dir / "cinc2021" / f"{name}{ext}", d / f"{name}{ext}")
    shutil.copytree(data_dir / "ptbdb", d / "ptb")
    src = data_dir / "cinc2021"
    # corrupt header
    (d / "bad_header.hea").write_text("this is not a wfdb header\n\x00\x01garbage 12 abc\n")
    # missing signal file
    shutil.copy(src / "HR06001.hea", d / "HR06001.hea")
    # truncated signal file
    shutil.copy(src / "HR06002.hea", d / "HR06002.hea")
    (d / "HR06002.mat").write_bytes((src / "HR06002.mat").read_bytes()[:3000])
    # unknown lead names
    rec = read(src / "HR06003.hea")
    sig = rec.signal
    wfdb.wrsamp("weird_leads", fs=500, units=["mV"] * 12, sig_name=[f"X{i}" for i in range(12)], p_signal=sig.T,
                fmt=["16"] * 12, write_dir=str(d))
    # a 2-s record and one with NaNs (WFDB stores NaN as the invalid sample value)
    wfdb.wrsamp("short2s", fs=500, units=["mV"] * 12, sig_name=list(rec.leads), p_signal=sig[:, :1000].T,
                fmt=["16"] * 12, write_dir=str(d))
    nan = sig.T.copy()
    nan[200:260, 4] = np.nan
    wfdb.wrsamp("with_nan", fs=500, units=["mV"] * 12, sig_name=list(rec.leads), p_signal=nan,
                fmt=["16"] * 12, write_dir=str(d))
    return d


def test_predict_api_rows_and_columns(model12, data_dir):
    df = predict([data_dir / "cinc2021", data_dir / "ptbdb"], model12)
    labels = load_labels()
    assert len(df) == 51 and list(df.columns[3:]) == list(labels) and len(labels) == 150
    assert df["record"].tolist()[:3] == ["E07500", "E07501", "E07502"]
    ptb = df.set_index("record").loc["s0010_re"]
    assert ptb["n_windows"] == 4
    probs = df[list(labels)].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()


def test_long_record_is_mean_of_its_windows(model12, data_dir):
    rec = data_dir / "ptbdb" / "s0010_re.hea"
    per = predict([rec], model12, aggregate="none")
    agg = predict([rec], model12)
    assert per["window"].tolist() == [0, 1, 2, 3]
    labels = list(load_labels())
    np.testing.assert_allclose(per[labels].mean().to_numpy(), agg[labels].iloc[0].to_numpy(), atol=1e-6)


def test_batching_does_not_change_results(model12, data_dir):
    paths = [data_dir / "cinc2021" / f"{n}.hea" for n in GOOD] + [data_dir / "ptbdb" / "s0010_re.hea"]
    a = predict(paths, model12, batch_size=3)
    b = predict(paths, model12, batch_size=32)
    pd.testing.assert_frame_equal(a, b, atol=1e-5, check_exact=False)


def test_two_lead_record_refused_for_12_lead_model(model12, data_dir):
    with pytest.raises(ValueError, match=r"missing lead\(s\) I, III, aVR, aVL, aVF, V1, V2, V3, V4, V6"):
        predict([data_dir / "mitdb" / "100.hea"], model12, on_error="raise")


def test_single_lead_model_takes_named_lead_with_warning(model1, data_dir):
    rec = data_dir / "mitdb" / "100.hea"
    with pytest.raises(ValueError, match="missing lead"):
        predict([rec], model1, on_error="raise")
    with pytest.warns(UserWarning, match="feeding lead II to a model trained on lead I"):
        df = predict([rec], model1, lead="MLII")
    assert len(df) == 1 and df["n_windows"].iloc[0] == 6


def test_embed_aligned(model12, data_dir):
    paths = [data_dir / "cinc2021" / f"{n}.hea" for n in GOOD]
    table, feats = embed(paths, model12)
    assert feats.shape == (4, 1024) and feats.dtype == np.float32
    assert table["record"].tolist() == GOOD


def test_cli_bad_files_reported_good_rows_identical(folder, ckpt12, tmp_path, capsys):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    for name in GOOD:
        for ext in (".hea", ".mat"):
            shutil.copy(folder / f"{name}{ext}", clean_dir / f"{name}{ext}")
    shutil.copytree(folder / "ptb", clean_dir / "ptb")
    assert main(["predict", str(clean_dir), "--checkpoint", str(ckpt12), "-o", str(tmp_path / "clean.csv")]) == 0
    capsys.readouterr()

    out = tmp_path / "mixed.parquet"
    emb = tmp_path / "emb.npy"
    rc = main(["predict", str(folder), "--checkpoint", str(ckpt12), "-o", str(out), "--embeddings", str(emb)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    reasons = [line for line in err.splitlines() if line.startswith("error: ")]
    expect = {"bad_header.hea": "header", "HR06001.hea": "missing", "HR06002.hea": "", "weird_leads.hea": "missing lead"}
    for fname, word in expect.items():
        hits = [r for r in reasons if fname in r]
        assert len(hits) == 1, (fname, reasons)
        assert word in hits[0].lower()
    assert len(reasons) == 4
    assert any("short2s" in line and "zero-padded" in line for line in err.splitlines() if line.startswith("warning"))
    assert any("with_nan" in line and "NaN" in line for line in err.splitlines() if line.startswith("warning"))

    mixed = pd.read_parquet(out)
    clean = pd.read_csv(tmp_path / "clean.csv")
    assert sorted(mixed["record"]) == sorted(GOOD + ["s0010_re", "short2s", "with_nan"])
    labels = list(load_labels())
    m = mixed.set_index("record").loc[clean["record"], labels].to_numpy()
    np.testing.assert_allclose(m, clean[labels].to_numpy(), atol=1e-6)
    assert np.load(emb).shape == (len(mixed), 1024)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_cli_output_formats(suffix, ckpt12, data_dir, tmp_path, capsys):
    out = tmp_path / f"p{suffix}"
    assert main(["predict", str(data_dir / "cinc2021" / "HR06000.hea"), "--checkpoint", str(ckpt12), "-o", str(out)]) == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_json(out, lines=True) if suffix == ".jsonl" else pd.read_parquet(out)
    assert df.shape == (1, 153) and df["record"].iloc[0] == "HR06000"
    assert not list(tmp_path.glob(".*partial"))
    assert "HR06000:" in capsys.readouterr().out  # readable summary with top findings


def test_cli_refuses_unknown_output_type_before_work(ckpt12, data_dir, tmp_path, capsys):
    rc = main(["predict", str(data_dir / "cinc2021"), "--checkpoint", str(ckpt12), "-o", str(tmp_path / "x.xlsx")])
    assert rc == 2 and "use one of .csv, .parquet, .jsonl" in capsys.readouterr().err


def test_cli_reads_arrays_with_the_rate_given(ckpt12, data_dir, tmp_path, capsys):
    """An .npy stores no sampling rate: refused without --fs (none is assumed), equal to WFDB with it."""
    rec = read(data_dir / "cinc2021" / "HR06000.hea")
    np.save(tmp_path / "hr.npy", rec.signal)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "hr.npy"), "--checkpoint", str(ckpt12), "-o", str(out)]) == 1
    assert "--fs" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "hr.npy"), "--fs", "500", "--checkpoint", str(ckpt12), "-o", str(out)]) == 0
    ref = tmp_path / "ref.csv"
    assert main(["predict", str(data_dir / "cinc2021" / "HR06000.hea"), "--checkpoint", str(ckpt12), "-o", str(ref)]) == 0
    labels = list(load_labels())
    np.testing.assert_allclose(pd.read_csv(out)[labels].to_numpy(), pd.read_csv(ref)[labels].to_numpy(), atol=1e-6)
