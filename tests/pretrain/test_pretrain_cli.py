"""``ecgfounder pretrain labels | build-store | run``."""

from __future__ import annotations

import json

from ecgfounder.cli import main

from _pt_helpers import DATA, write_long_record


def test_cli_labels(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["pretrain", "labels", str(DATA / "formats" / "sierra_xml"), "--statement", "Possible LVH",
               "--statement", "RITMO SINUSALE", "-o", str(out)])
    cap = capsys.readouterr()
    assert rc == 0 and "LEFT VENTRICULAR HYPERTROPHY (uncertain)" in cap.out
    assert "unmatched (1x): RITMO SINUSALE" in cap.err
    rep = json.loads(out.read_text())
    assert ["RITMO SINUSALE", 1] in rep["unmatched"]


def test_cli_build_store_and_run(tmp_path, capsys, small_store):
    rc = main(["pretrain", "build-store", str(DATA / "cinc2021" / "E07500.hea"), str(DATA / "cinc2021" / "E07501.hea"),
               "-o", str(tmp_path / "s"), "--workers", "1", "--leads", "1"])
    cap = capsys.readouterr()
    assert rc == 0 and json.loads(cap.out)["samples"] == 2 and json.loads(cap.out)["leads"] == ["I"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{store: {small_store.location}, val_store: {small_store.location}}}\nmodel: {{size: tiny}}\n"
                   "train: {batch_size: 4, device: cpu}\n", encoding="utf-8")
    rc = main(["pretrain", "run", str(cfg), "train.max_steps=2", f"train.out={tmp_path / 'run'}"])
    cap = capsys.readouterr()
    assert rc == 0 and cap.out.startswith("steps 2: loss") and "held-out mean AUROC" in cap.out
    assert (tmp_path / "run" / "auroc.csv").exists() and (tmp_path / "run" / "model" / "README.md").exists()
    assert main(["pretrain", "run", str(cfg), "model.size=huge"]) == 2
    assert "model.size='huge' is not valid" in capsys.readouterr().err


def test_cli_build_store_into_a_folder_of_another_build_needs_restart(tmp_path, capsys):
    src = [str(DATA / "cinc2021" / "E07500.hea"), "-o", str(tmp_path / "s"), "--workers", "1", "--leads", "1"]
    assert main(["pretrain", "build-store", *src]) == 0
    capsys.readouterr()
    assert main(["pretrain", "build-store", *src, "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert "dtype 'float16' then, 'float32' now" in err and "pass --restart to discard it" in err
    assert main(["pretrain", "build-store", *src, "--dtype", "float32", "--restart"]) == 0


def test_cli_build_store_counts_the_files_it_could_not_read(tmp_path, capsys):
    """Failures were listed (the first 10) with no count and no word on where the rest are; and the
    exit code was 0, as if every file had been stored: now 1, as predict's, the store still written."""
    bad = []
    for k in range(12):
        (tmp_path / f"bad{k:02d}.xml").write_text("<RestingECG><Waveform>")
        bad.append(str(tmp_path / f"bad{k:02d}.xml"))
    rc = main(["pretrain", "build-store", str(DATA / "cinc2021" / "E07500.hea"), *bad, "-o", str(tmp_path / "s"),
               "--workers", "1", "--leads", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("failed: ") == 10  # the store is built from the good one
    assert (f"12 record file(s) could not be read (the first 10 above); all are listed in {tmp_path / 's' / 'index.json'}"
            " under 'failures'") in err
    assert len(json.loads((tmp_path / "s" / "index.json").read_text())["failures"]) == 12
    assert json.loads((tmp_path / "s" / "index.json").read_text())["n_samples"] == 1  # (written all the same)


def test_cli_build_store_names_the_file_of_each_failure(tmp_path, capsys, monkeypatch):
    """A failure whose message does not name its file (a reader's own exception, a worker that
    crashed) was printed as "failed: <message>" alone: which of the million files?"""
    import ecgfounder.io as io_mod

    good, bad = DATA / "cinc2021" / "E07500.hea", DATA / "cinc2021" / "E07501.hea"
    real = io_mod.read

    def read(path, *a, **k):
        if str(path) == str(bad):
            raise ValueError("unsupported compression")
        return real(path, *a, **k)

    monkeypatch.setattr(io_mod, "read", read)
    rc = main(["pretrain", "build-store", str(good), str(bad), "-o", str(tmp_path / "s"), "--workers", "1", "--leads", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and f"failed: {bad}: unsupported compression\n" in err
    assert json.loads((tmp_path / "s" / "index.json").read_text())["failures"] == [
        {"path": str(bad), "error": "unsupported compression"}]


def test_cli_build_store_exit_code_says_whether_every_file_was_stored(tmp_path, capsys):
    """0 when all were stored; 1 when some failed (the store holds the others) or all did; 2 when
    no record file was found at all."""
    good = str(DATA / "cinc2021" / "E07500.hea")
    bad = tmp_path / "bad.xml"
    bad.write_text("<RestingECG><Waveform>")
    common = ["--workers", "1", "--leads", "1"]
    assert main(["pretrain", "build-store", good, "-o", str(tmp_path / "ok"), *common]) == 0
    assert "could not be read" not in capsys.readouterr().err
    assert main(["pretrain", "build-store", good, str(bad), "-o", str(tmp_path / "some"), *common]) == 1
    cap = capsys.readouterr()
    assert f"failed: {bad}" in cap.err and "1 record file(s) could not be read" in cap.err
    assert json.loads(cap.out)["samples"] == 1 and json.loads(cap.out)["failures"] == 1
    assert main(["pretrain", "build-store", str(bad), "-o", str(tmp_path / "none"), *common]) == 1
    assert json.loads(capsys.readouterr().out)["samples"] == 0
    (tmp_path / "empty").mkdir()
    assert main(["pretrain", "build-store", str(tmp_path / "empty"), "-o", str(tmp_path / "e"), *common]) == 2
    assert "error: no records found" in capsys.readouterr().err


def test_cli_build_store_max_duration_stores_a_record_above_the_limit(tmp_path, capsys, monkeypatch):
    """The failure of a record above the readers' value limit says to pass --max-duration, which
    build-store did not have; with it the record's first S seconds are stored."""
    hea = write_long_record(tmp_path, monkeypatch)
    common = ["--workers", "1", "--leads", "1"]
    assert main(["pretrain", "build-store", str(hea), "-o", str(tmp_path / "a"), *common]) == 1
    err = capsys.readouterr().err
    assert "pass --max-duration SECONDS to read the first part" in err and "max_duration=" not in err
    assert main(["pretrain", "build-store", str(hea), "-o", str(tmp_path / "b"), *common, "--max-duration", "20"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["samples"] == 2 and "failed" not in cap.err  # 20 s in 10-s windows
