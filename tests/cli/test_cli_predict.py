"""``ecgfounder predict`` on the command line: bad files never stop a batch, output formats,
arrays read with the rate given (small model with the real 150-label head)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgfounder.cli import main
from ecgfounder.io import read
from ecgfounder.labels import load_labels

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


def test_cli_bad_files_reported_good_rows_identical(folder, tiny_ckpt12, tmp_path, capsys):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    for name in GOOD:
        for ext in (".hea", ".mat"):
            shutil.copy(folder / f"{name}{ext}", clean_dir / f"{name}{ext}")
    shutil.copytree(folder / "ptb", clean_dir / "ptb")
    assert main(["predict", str(clean_dir), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "clean.csv")]) == 0
    capsys.readouterr()

    out = tmp_path / "mixed.parquet"
    emb = tmp_path / "emb.npy"
    rc = main(["predict", str(folder), "--checkpoint", str(tiny_ckpt12), "-o", str(out), "--embeddings", str(emb)])
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
    assert np.load(emb).shape == (len(mixed), 32)  # the small model's 32 features


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_cli_output_formats(suffix, tiny_ckpt12, data_dir, tmp_path, capsys):
    out = tmp_path / f"p{suffix}"
    assert main(["predict", str(data_dir / "cinc2021" / "HR06000.hea"), "--checkpoint", str(tiny_ckpt12), "-o", str(out)]) == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_json(out, lines=True) if suffix == ".jsonl" else pd.read_parquet(out)
    assert df.shape == (1, 155) and df["record"].iloc[0] == "HR06000" and df["quality"].iloc[0] == "good"
    assert not list(tmp_path.glob(".*partial"))
    assert "HR06000:" in capsys.readouterr().out  # readable summary with top findings


def test_cli_refuses_unknown_output_type_before_work(tiny_ckpt12, data_dir, tmp_path, capsys):
    rc = main(["predict", str(data_dir / "cinc2021"), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "x.xlsx")])
    assert rc == 2 and "use one of .csv, .parquet, .jsonl" in capsys.readouterr().err


def test_cli_reads_arrays_with_the_rate_given(tiny_ckpt12, data_dir, tmp_path, capsys):
    """An .npy stores no sampling rate: refused without --fs (none is assumed), equal to WFDB with it."""
    rec = read(data_dir / "cinc2021" / "HR06000.hea")
    np.save(tmp_path / "hr.npy", rec.signal)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "hr.npy"), "--checkpoint", str(tiny_ckpt12), "-o", str(out)]) == 1
    assert "--fs" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "hr.npy"), "--fs", "500", "--checkpoint", str(tiny_ckpt12), "-o", str(out)]) == 0
    ref = tmp_path / "ref.csv"
    assert main(["predict", str(data_dir / "cinc2021" / "HR06000.hea"), "--checkpoint", str(tiny_ckpt12), "-o", str(ref)]) == 0
    labels = list(load_labels())
    np.testing.assert_allclose(pd.read_csv(out)[labels].to_numpy(), pd.read_csv(ref)[labels].to_numpy(), atol=1e-6)


def test_cli_summary_names_the_file_of_a_zip_each_line_is_about(tiny_ckpt12, data_dir, tmp_path, capsys):
    """Two exports named alike in two folders of a zip: their summary lines (and rows) say which file
    each is, not the same record id twice."""
    import zipfile

    muse = (data_dir / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml").read_bytes()
    z = tmp_path / "sites.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("site1/ECG001.xml", muse)
        zf.writestr("site2/ECG001.xml", muse)
    assert main(["predict", str(z), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "p.csv")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "(site" in ln]
    assert [ln.split(": ")[0].split(" ", 1)[1] for ln in lines] == ["(site1/ECG001.xml)", "(site2/ECG001.xml)"]
    assert pd.read_csv(tmp_path / "p.csv")["member"].tolist() == ["site1/ECG001.xml", "site2/ECG001.xml"]


def test_calibration_records_without_int8_is_said_unused(tiny_ckpt12, data_dir, tmp_path, capsys):
    """`--precision fp32 --calibration-records 64` ran without a word: the flag (int8's calibration
    set) was ignored.  Said once, naming the flag and why; left out, or under int8, nothing is said."""
    from ecgfounder.cli import build_parser
    from ecgfounder.cli.predict import job_args

    rec = str(data_dir / "cinc2021" / "E07500.hea")
    argv = ["predict", rec, "--checkpoint", str(tiny_ckpt12), "--no-progress", "--precision", "fp32"]
    assert main([*argv, "-o", str(tmp_path / "a.csv"), "--calibration-records", "64"]) == 0
    err = capsys.readouterr().err
    assert err.count("--calibration-records") == 1, err
    assert ("warning: --calibration-records 64 is not used: --precision fp32 needs no calibration (only int8, or auto "
            "where it chooses int8, calibrates on the first records)") in err, err
    parser = build_parser("predict")
    for extra, said in ((["--precision", "bf16", "--calibration-records", "8"], True), (["--precision", "bf16"], False),
                        (["--precision", "int8", "--calibration-records", "8"], False), ([], False)):
        job = job_args(parser.parse_args(["predict", rec, *extra]))
        assert job["calibration_records"] == (8 if "8" in extra else 16)
        assert ("--calibration-records 8 is not used: --precision bf16" in capsys.readouterr().err) == said, extra
