"""The archive job: resumable and sharded prediction, merge, lock, finished runs, setup errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_RECORDS = 40  # enough for three shards and interruptions at the 31st and 37th record


def _cli(argv: list[str]) -> int:
    from ecgfounder.cli import predict as cli_predict, merge as cli_merge

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_predict.add_parser(sub)
    cli_merge.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path, lines=True)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a["path"].tolist() == b["path"].tolist()
    assert a["quality"].fillna("").tolist() == b["quality"].fillna("").tolist()
    num = a.columns[5:]  # (record, path, member, n_windows, quality, then the labels)
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), atol=1e-5)


@pytest.fixture(scope="module")
def full_run(records, tiny_ckpt, tmp_path_factory) -> Path:
    """A folder holding the plain run over every record (full.csv, full.npy and its full.json): what
    the interrupted and resumed, and the sharded and merged, runs must equal."""
    d = tmp_path_factory.mktemp("full")
    assert _cli(["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0", "-o",
                 str(d / "full.csv"), "--embeddings", str(d / "full.npy")]) == 1  # one bad record
    return d


@pytest.mark.parametrize("suffix,workers", [pytest.param(".csv", "1", marks=pytest.mark.slow), (".jsonl", "0")])
def test_interrupted_run_resumes_without_loss_or_duplicates(records, tiny_ckpt, full_run, tmp_path, monkeypatch, suffix,
                                                            workers):
    import importlib

    pred = importlib.import_module("ecgfounder.prediction.stream")

    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", workers, "--batch-size", "8"]
    full = full_run / "full.csv"

    out = tmp_path / f"out{suffix}"
    real = pred.result_rows
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 37:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pred, "result_rows", flaky)
    with pytest.raises(KeyboardInterrupt):
        _cli(base + ["-o", str(out), "--embeddings", str(tmp_path / "out.npy")])
    monkeypatch.setattr(pred, "result_rows", real)
    partial = tmp_path / f".out{suffix}.partial"
    state = tmp_path / f".out{suffix}.state.json"
    assert partial.exists() and state.exists() and not out.exists()
    with open(partial, "a", encoding="utf-8") as f:  # a torn last line, as after kill -9
        f.write("r9999,half a row")
    assert json.loads(state.read_text())["done"] > 0
    assert _cli(base + ["-o", str(out), "--embeddings", str(tmp_path / "out.npy"), "--resume"]) == 1
    assert not partial.exists() and not state.exists()
    a, b = _table(full), _table(out)
    assert len(b) == N_RECORDS - 1 and b["path"].is_unique
    _same(a, b)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.load(full_run / "full.npy"), atol=1e-5)


def test_shards_merge_to_the_unsharded_run(records, tiny_ckpt, full_run, tmp_path):
    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0"]
    full = full_run / "full.csv"
    for i in range(3):
        _cli(base + ["-o", str(tmp_path / "p.csv"), "--embeddings", str(tmp_path / "p.npy"), "--shard", f"{i}/3"])
    parts = sorted(str(p) for p in tmp_path.glob("p.shard-*-of-00003.csv"))
    assert len(parts) == 3
    with pytest.raises(ValueError, match="missing shard"):
        _cli(["merge", parts[0], parts[2], "-o", str(tmp_path / "bad.csv")])
    with pytest.raises(ValueError, match="twice"):
        _cli(["merge", parts[0], parts[0], parts[1], parts[2], "-o", str(tmp_path / "bad.csv")])
    assert _cli(["merge", *parts[::-1], "-o", str(tmp_path / "m.csv"), "--embeddings", str(tmp_path / "m.npy")]) == 0
    _same(_table(full), _table(tmp_path / "m.csv"))
    np.testing.assert_allclose(np.load(tmp_path / "m.npy"), np.load(full_run / "full.npy"), atol=1e-5)
    # the merged array is described as the unsharded one is (emb.json), and parts of other paths refused
    merged, whole = (json.loads(p.read_text()) for p in (tmp_path / "m.json", full_run / "full.json"))
    assert merged["array"]["shape"] == whole["array"]["shape"] and merged["records"] == whole["records"]
    assert merged["inference"] == whole["inference"] and merged["failures"] == whole["failures"]
    emb_json = sorted(tmp_path.glob("p.shard-*-of-00003.json"))
    assert len(emb_json) == 3
    other = json.loads(emb_json[1].read_text())
    other["inference"].update(precision="int8", backend="openvino")  # a shard run where auto took int8
    emb_json[1].write_text(json.dumps(other))
    with pytest.raises(ValueError, match="other inference paths .*int8/openvino"):
        _cli(["merge", *parts, "-o", str(tmp_path / "m2.csv"), "--embeddings", str(tmp_path / "m2.npy")])
    assert not (tmp_path / "m2.csv").exists()  # refused before the table was written
    emb_json[1].write_text('{"inference": {}}')  # cut by hand: one error naming it, no traceback
    with pytest.raises(ValueError, match=f"{emb_json[1].name}: not the description its run wrote"):
        _cli(["merge", *parts, "-o", str(tmp_path / "m2.csv"), "--embeddings", str(tmp_path / "m2.npy")])
    # a part cut short is detected
    lines = Path(parts[1]).read_text().splitlines(keepends=True)
    Path(parts[1]).write_text("".join(lines[:-2]))
    with pytest.raises(ValueError, match="rows"):
        _cli(["merge", *parts, "-o", str(tmp_path / "bad.csv")])


def test_resume_refuses_a_different_command(records, tiny_ckpt, tmp_path, monkeypatch):
    import importlib

    pred = importlib.import_module("ecgfounder.prediction.stream")

    out = tmp_path / "o.csv"
    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0", "-o", str(out)]

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pred, "result_rows", boom)
    with pytest.raises(KeyboardInterrupt):
        _cli(base)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="aggregate"):
        _cli(base + ["--resume", "--aggregate", "max"])


def test_per_window_rows_carry_their_start_and_an_older_partial_table_is_not_appended_to(
        records, tiny_ckpt, tmp_path, monkeypatch):
    """Rows of one window say where it starts (start_s, as embed's index); a partial per-window table
    written before that column existed (its state without it) is refused on --resume, not given rows
    of another width."""
    import importlib

    import pandas as pd

    from ecgfounder.prediction.state import state_path

    full = tmp_path / "full.csv"
    _cli(["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0", "-o", str(full),
          "--aggregate", "none"])
    df = pd.read_csv(full)
    assert list(df.columns[:7]) == ["record", "path", "member", "n_windows", "quality", "window", "start_s"]
    assert (df["start_s"] == 0).all()  # (4-s records: one window each; longer ones: tests/prediction/test_api.py)
    pred = importlib.import_module("ecgfounder.prediction.stream")
    out = tmp_path / "o.csv"
    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0", "-o", str(out),
            "--aggregate", "none"]
    real, seen = pred.result_rows, []

    def boom(*a, **k):
        if seen:
            raise KeyboardInterrupt
        seen.append(1)
        return real(*a, **k)

    monkeypatch.setattr(pred, "result_rows", boom)
    with pytest.raises(KeyboardInterrupt):
        _cli(base)
    monkeypatch.undo()
    st = state_path(out)
    state = json.loads(st.read_text())
    state["settings"]["columns"].remove("start_s")  # as the version before start_s wrote it
    st.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="columns"):
        _cli(base + ["--resume"])


def test_interrupt_reports_what_was_saved_once_and_resume_finds_it(interrupt, records, tiny_ckpt, tmp_path, monkeypatch, capsys):
    """The count printed at Ctrl-C is the count the resume finds; 'interrupted' is said once."""
    from ecgfounder.cli import main

    out = tmp_path / "o.csv"
    argv = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "--workers", "0", "-o", str(out), "--no-progress"]
    interrupt(31)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("interrupted") == 1 and "--resume" in err
    said = int(err.split("interrupted after ")[1].split(" ")[0])
    monkeypatch.undo()
    assert main(argv + ["--resume", "-q"]) == 1  # the bad record still fails
    assert capsys.readouterr().err.count(f"{said} of {N_RECORDS} record file(s) already done") == 0  # -q: silent
    assert len(_table(out)) == N_RECORDS - 1 and _table(out)["path"].is_unique
    state = json.loads((tmp_path / ".o.csv.done.json").read_text())
    assert state["n_ok"] == N_RECORDS - 1
    # and with messages: the resume states the same number as the interruption did
    out2 = tmp_path / "o2.csv"
    argv2 = argv[:-3] + ["-o", str(out2), "--no-progress"]
    interrupt(31)
    main(argv2)
    said2 = int(capsys.readouterr().err.split("interrupted after ")[1].split(" ")[0])
    monkeypatch.undo()
    main(argv2 + ["--resume"])
    assert f"resuming {out2}: {said2} of {N_RECORDS} record file(s) already done" in capsys.readouterr().err


def test_resume_of_a_finished_run_recomputes_nothing(records, tiny_ckpt, tmp_path, monkeypatch, capsys):
    import time

    import ecgfounder.models.loading as loading
    from ecgfounder.cli import main

    out = tmp_path / "f.csv"
    argv = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "--workers", "0", "-o", str(out), "-q"]
    assert main(argv) == 1
    before = out.read_bytes()
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model was loaded again"))
    t0 = time.perf_counter()
    rc = main(argv[:-1] + ["--resume"])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 1 and "is complete" in err and out.read_bytes() == before and took < 5.0
    # a changed input set, contract or model is refused, naming what changed
    assert main(argv[:-1] + ["--resume", "--mode", "zscore"]) == 2
    assert "mode" in capsys.readouterr().err
    extra = tmp_path / "extra.hea"
    extra.write_text((records / "r0001.hea").read_text())
    assert main(argv[:2] + [str(extra)] + argv[2:-1] + ["--resume"]) == 2
    assert "inputs_sha256" in capsys.readouterr().err


def test_changed_model_refused_on_resume(interrupt, records, tiny_ckpt, tmp_path, monkeypatch, capsys):
    import shutil

    from ecgfounder.cli import main

    other = tmp_path / "other.safetensors"
    shutil.copy(tiny_ckpt, other)
    out = tmp_path / "m.csv"
    argv = ["predict", str(records), "--workers", "0", "-o", str(out), "-q"]
    interrupt(5)
    assert main(argv + ["--checkpoint", str(tiny_ckpt)]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert main(argv + ["--checkpoint", str(other), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "differs from this one in model" in err and "Traceback" not in err


def test_progress_counts_windows_and_prints_plain_lines_off_a_terminal(tiny_ckpt, data_dir, tmp_path):
    """One long record: the window count moves while the record count waits; not a terminal: plain lines."""
    import io

    from ecgfounder.prediction.archive import ArchiveJob, run_archive
    from ecgfounder.prediction.progress import Progress

    stream = io.StringIO()
    seen = []
    real = Progress.add_windows

    def spy(self, n):
        real(self, n)
        seen.append((self.records, self.windows))

    Progress.add_windows = spy
    try:
        job = ArchiveJob(inputs=(str(data_dir / "ptbdb" / "s0010_re.hea"),), model=str(tiny_ckpt), batch_size=1,
                         workers=0, output=str(tmp_path / "e.csv"), embeddings=str(tmp_path / "e.npy"), kind="index")
        import ecgfounder.prediction.archive as archive

        real_init = Progress.__init__

        def fast_init(self, *a, **k):
            real_init(self, *a, **{**k, "every_s": 0.0})

        Progress.__init__ = fast_init
        try:
            report = run_archive(job, stream=stream)
        finally:
            Progress.__init__ = real_init
    finally:
        Progress.add_windows = real
    assert report.n_ok == 1 and archive is not None
    assert seen[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)]  # 4 windows, before the record is counted
    lines = stream.getvalue().splitlines()
    assert any(x.startswith("embed: 0/1 records, 2 windows") and "windows/s" in x for x in lines), lines


def test_quiet_summary_failures_once_and_lead_named_as_given(tiny_ckpt, data_dir, tmp_path, capsys):
    from ecgfounder.cli import main
    from ecgfounder.models.loading import load_model, save_model
    from ecgfounder.testing import tiny_model

    bad = tmp_path / "bad.hea"
    bad.write_text("garbage\n")
    good = str(data_dir / "cinc2021" / "HR06000.hea")
    assert main(["predict", good, str(bad), "--checkpoint", str(tiny_ckpt), "-q"]) == 1
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.count("bad.hea") == 1 and "predicted" not in cap.err
    assert main(["predict", good, str(bad), "--checkpoint", str(tiny_ckpt), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("bad.hea") == 1 and "1 failed (listed above)" in err
    one = save_model(tiny_model(1), tmp_path / "one.safetensors")
    assert load_model(one).contract.leads == ("I",)
    assert main(["predict", str(data_dir / "mitdb" / "100.hea"), "--checkpoint", str(one), "--lead", "MLII",
                 "--no-progress"]) == 0
    warn = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning")]
    assert len(warn) == 1 and "MLII" in warn[0] and "lead I" in warn[0]


def test_interrupt_before_any_record_says_there_is_nothing_to_keep(interrupt, records, tiny_ckpt, tmp_path, capsys):
    """Ctrl-C on the first record said 'interrupted after 0 of N record file(s), saved in ...'s partial
    file': nothing was saved.  It says so, and the same command starts over."""
    from ecgfounder.cli import main

    argv = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "--workers", "0", "-o", str(tmp_path / "o.csv"),
            "--no-progress"]
    interrupt(1)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"interrupted before any of the {N_RECORDS} record file(s) was done; nothing to keep" in err
    assert "saved in" not in err and err.count("interrupted") == 1


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_keeps_autos_line_to_itself(quiet, data_dir, tiny_ckpt, tmp_path, monkeypatch, capsys):
    """predict -q ("errors only") still printed auto's one-line choice when it measured one."""
    from ecgfounder.cli import main
    from ecgfounder.runtime import auto

    real = auto.choose_path
    monkeypatch.setattr(auto, "choose_path", lambda *a, **k: real(*a, **{**k, "seconds": 0.02}))  # (quick timings)
    monkeypatch.delenv("ECGFOUNDER_AUTO_PATH", raising=False)
    monkeypatch.setenv("ECGFOUNDER_CACHE", str(tmp_path / "cache"))
    argv = ["predict", str(data_dir / "cinc2021" / "E07500.hea"), "--checkpoint", str(tiny_ckpt), "--backend", "torch",
            "--workers", "0", "-o", str(tmp_path / "o.csv"), "--no-progress", "--batch-size", "1"]  # (a full batch: measured)
    assert main(argv + (["-q"] if quiet else [])) == 0
    err = capsys.readouterr().err
    assert ("ecgfounder auto: " in err) is not quiet, err


@pytest.mark.parametrize("shard", [None, (0, 2)])
def test_a_job_under_one_batch_skips_auto_measurement_unless_it_is_a_shard(records, tiny_ckpt, tmp_path, monkeypatch,
                                                                           shard):
    """A small unsharded job runs the exact path without measuring every path first; a shard of a job
    measures (the merge refuses parts of two inference paths)."""
    import ecgfounder.runtime.auto as auto
    from ecgfounder.prediction.archive import ArchiveJob, run_archive

    monkeypatch.delenv("ECGFOUNDER_AUTO_PATH", raising=False)  # (the suite pins auto)
    seen, real = [], auto.choose_path

    def spy(*a, **k):
        seen.append(k["whole_job"])
        return real(*a, **{**k, "seconds": 0.0, "rounds": 1})

    monkeypatch.setattr(auto, "choose_path", spy)
    files = [str(records / f"r{i:04d}.hea") for i in range(4)]
    job = ArchiveJob(inputs=tuple(files), model=str(tiny_ckpt), batch_size=32, workers=0, output=str(tmp_path / "p.csv"),
                     shard=shard, backend="torch")  # (torch's paths only: a quick measurement)
    report = run_archive(job, progress=False)
    assert report.n_ok == (4 if shard is None else 2)
    assert seen == [shard is None]
    if shard is None:
        assert report.inference == ("fp32", "torch")
