"""A demanding user's mistakes, command by command (second CLI audit): each refused at once in one
line naming the flag as typed (exit 2), before a model loads or a file is written; no output
overwrites an input; library messages read in the command line's terms."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ecgfounder.cli import main


def _line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err and "Errno" not in err, err
    return lines[0]


def test_setup_errors_name_the_flag_not_the_library_argument(tiny_ckpt12, data_dir, tmp_path, capsys):
    """'device 'gpu' is not a torch device', 'give output', and embed's 'embeddings x.csv' (its -o)."""
    rec = str(data_dir / "cinc2021" / "E07500.hea")
    ck = ["--checkpoint", str(tiny_ckpt12)]
    cases = [
        (["predict", rec, *ck, "--device", "gpu"], "error: --device gpu is not a torch device"),
        (["predict", rec, *ck, "--resume"], "give --output (.csv or .jsonl)"),
        (["embed", rec, *ck, "-o", str(tmp_path / "e.csv")], f"error: --output {tmp_path / 'e.csv'}: unknown file type"),
        (["embed", rec, *ck, "-o", str(tmp_path / "e.npy"), "--index", str(tmp_path / "i.xlsx")],
         f"error: --index {tmp_path / 'i.xlsx'}: unknown table type"),
    ]
    for argv, said in cases:
        assert main(argv) == 2, argv
        assert said in _line(capsys.readouterr().err), argv
    assert list(tmp_path.iterdir()) == []


def test_per_record_lines_and_warnings_use_the_flags(tiny_ckpt12, data_dir, tmp_path, capsys):
    from ecgfounder.cli import _format_warning

    shutil.copy(data_dir / "cinc2021" / "E07500.hea", tmp_path)
    shutil.copy(data_dir / "cinc2021" / "E07500.mat", tmp_path)
    (tmp_path / "odd.xml").write_text("<?xml version='1.0'?><notanecg/>")
    rc = main(["predict", str(tmp_path / "E07500.hea"), str(tmp_path / "odd.xml"), "--checkpoint", str(tiny_ckpt12),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "odd.xml" in err and "pass --format" in err and "format=" not in err
    shown = _format_warning("a.npy: 12 unnamed channels; pass leads=[...] (CLI: --leads) if not", UserWarning, "f", 1)
    assert shown == "warning: a.npy: 12 unnamed channels; pass --leads if not\n"


def test_calibrated_refusal_names_the_evaluate_flags(tiny_ckpt12, data_dir, capsys):
    rc = main(["predict", str(data_dir / "cinc2021" / "E07500.hea"), "--checkpoint", str(tiny_ckpt12), "--calibrated",
               "--no-progress"])
    line = _line(capsys.readouterr().err)
    assert rc == 2 and "--calibrate temperature and --save-calibrated PATH" in line and "calibrate=" not in line


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tiny_ckpt12, data_dir, tmp_path, capsys):
    """-o under a file (as under a read-only folder): one line naming the flag, not '[Errno 20] ...'
    after the model was loaded or every record processed."""
    rec = str(data_dir / "cinc2021" / "E07500.hea")
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    ck = ["--checkpoint", str(tiny_ckpt12)]
    cases = [
        (["plot", rec, "-o", str(blocker / "x.png")], "--output"),
        (["convert", rec, "--to", "npz", "-o", str(blocker / "x.npz")], "-o/--output"),
        (["report", rec, *ck, "-o", str(blocker / "rep")], "--output"),
        (["report", rec, *ck, "-o", str(blocker)], "--output"),
        (["export", *ck, "-o", str(blocker / "m.pt")], "-o/--output"),
        (["pretrain", "labels", rec, "-o", str(blocker / "l.json")], "-o/--output"),
        (["pretrain", "build-store", rec, "-o", str(blocker)], "-o/--output"),
        (["finetune", "manifest", "cinc2021", str(data_dir / "train" / "cinc2021"), "-o", str(blocker / "m.csv")],
         "-o/--output"),
    ]
    for argv, flag in cases:
        assert main(argv) == 2, argv
        line = _line(capsys.readouterr().err)
        assert line.startswith(f"error: {flag} {blocker}") and ("not a folder" in line or "give a folder" in line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and blocker.read_text() == "keep"


def test_report_of_a_folder_without_records_is_an_error(tiny_ckpt12, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["report", str(tmp_path / "empty"), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "out")])
    assert rc == 2 and "no ECG records found in" in _line(capsys.readouterr().err)  # was: '0 report(s) written', 0
    assert not (tmp_path / "out").exists()


def test_report_of_a_missing_path_is_refused_before_the_model_loads(data_dir, tmp_path, capsys):
    """A mistyped path was reported after the model had loaded, as a 'warning' (exit 1), with the
    output folder made empty; predict refuses it at once (exit 2)."""
    rec, out = str(data_dir / "cinc2021" / "E07500.hea"), tmp_path / "out"
    rc = main(["report", rec, str(tmp_path / "nope.hea"), "--checkpoint", str(tmp_path / "never-loaded.pth"), "-o", str(out)])
    line = _line(capsys.readouterr().err)
    assert rc == 2 and line == f"error: input {tmp_path / 'nope.hea'}: no such file or folder; check the path.", line
    assert not out.exists()


@pytest.mark.parametrize("argv,said", [(["plot", "x.hea", "--top", "-1"], "argument --top: -1 is below 1"),
                                       (["plot", "x.hea", "--top", "0"], "argument --top: 0 is below 1"),
                                       (["report", "x.hea", "-o", "d", "--top", "0"], "argument --top: 0 is below 1"),
                                       (["report", "x.hea", "-o", "d", "--steps", "1"], "argument --steps: 1 is below 2"),
                                       (["pretrain", "build-store", "x", "-o", "s", "--workers", "-1"],
                                        "argument --workers: -1 is below 0"),
                                       (["pretrain", "build-store", "x", "-o", "s", "--shard-size", "0"],
                                        "argument --shard-size: 0 is below 1")])
def test_counts_are_checked_as_they_are_parsed(capsys, argv, said):
    """plot --top -1 drew 149 findings; report --steps 0 was refused as 'n_steps=0' after loading the model."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and said in capsys.readouterr().err


def test_plot_model_flags_without_predict_are_refused(data_dir, tmp_path, capsys):
    out = tmp_path / "e.png"
    rc = main(["plot", str(data_dir / "cinc2021" / "E07500.hea"), "-o", str(out), "--checkpoint", "m.pth"])
    assert rc == 2 and "add --predict" in _line(capsys.readouterr().err) and not out.exists()


def test_convert_refuses_contradicting_target_and_output(data_dir, tiny_ckpt12, tmp_path, capsys):
    rec = str(data_dir / "cinc2021" / "E07500.hea")
    assert main(["convert", rec, "--to", "npz", "-o", str(tmp_path / "x.edf")]) == 2  # wrote x.npz instead
    assert "ends in .edf, but --to npz writes a .npz file" in _line(capsys.readouterr().err)
    (tmp_path / "c.pth").write_bytes(b"not loaded")
    assert main(["convert", str(tmp_path / "c.pth"), "--to", "edf"]) == 2  # converted to safetensors regardless
    assert "checkpoint, which converts to safetensors only" in _line(capsys.readouterr().err)
    assert main(["convert", str(tmp_path / "c.pth"), "-o", str(tmp_path / "c.edf")]) == 2
    assert _line(capsys.readouterr().err) == (f"error: -o/--output {tmp_path / 'c.edf'} ends in .edf, but checkpoint "
                                              f"conversion writes a .safetensors file; give {tmp_path / 'c.safetensors'} instead.")
    assert main(["convert", rec, "--to", "safetensors"]) == 2  # was: 'refused to load. Its pickle holds ...'
    assert "is an ECG record: choose --to wfdb" in _line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pth"]
    folder = tmp_path / "models"
    folder.mkdir()
    assert main(["convert", str(tiny_ckpt12), "--to", "safetensors", "-o", str(folder)]) == 0
    assert (folder / "tiny12.safetensors").is_file() and not (tmp_path / "models.safetensors").exists()


def test_export_refuses_a_format_its_output_contradicts(tiny_ckpt12, tmp_path, capsys):
    ck = ["--checkpoint", str(tiny_ckpt12)]
    assert main(["export", *ck, "-o", str(tmp_path / "m.onnx"), "--format", "torchscript"]) == 2
    assert "--format torchscript does not match -o" in _line(capsys.readouterr().err)
    assert main(["export", *ck, "-o", str(tmp_path / "m.pt"), "--calibrate", str(tmp_path)]) == 2  # was ignored
    assert "add --int8" in _line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def shard_parts(tmp_path_factory, tiny_ckpt12, data_dir):
    d = tmp_path_factory.mktemp("parts")
    for i in (0, 1):
        assert main(["predict", str(data_dir / "cinc2021" / "E07500.hea"), str(data_dir / "cinc2021" / "E07501.hea"),
                     "--checkpoint", str(tiny_ckpt12), "-o", str(d / "p.csv"), "--embeddings", str(d / "e.npy"),
                     "--shard", f"{i}/2", "-q"]) == 0
    return d, sorted(str(p) for p in d.glob("p.shard-*.csv"))


def test_merge_never_writes_over_a_part(shard_parts, tmp_path, capsys):
    """-o PART destroyed that part; --embeddings equal to -o wrote the array over the table."""
    d, parts = shard_parts
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    cases = [([*parts, "-o", parts[0]], "-o/--output"),
             ([*parts, "-o", str(tmp_path / "all.csv"), "--embeddings", str(d / "e.shard-00000-of-00002.npy")],
              "--embeddings"),
             ([*parts, "-o", str(tmp_path / "all.csv"), "--embeddings", str(tmp_path / "all.csv")], "--embeddings"),
             ([str(d), "-o", str(tmp_path / "all.csv")], "PART")]
    for argv, flag in cases:
        assert main(["merge", *argv]) == 2, argv
        assert _line(capsys.readouterr().err).startswith(f"error: {flag} "), argv
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before and list(tmp_path.iterdir()) == []
    assert main(["merge", *parts, "-o", str(tmp_path / "all.csv"), "--embeddings", str(tmp_path / "all.npy")]) == 0
    assert np.load(tmp_path / "all.npy").shape[0] == 2


def test_evaluate_answers_flag_mistakes_before_predicting(tiny_ckpt12, data_dir, tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("record,A\nr1,1\n")
    tab = ["evaluate", "table", "--predictions", str(table), "--labels", str(table)]
    cases = [
        (["evaluate", "table", "--predictions", str(table), "--labels", str(tmp_path / "no.csv")], "error: --labels "),
        ([*tab, "-o", str(table)], "error: -o/--out "),
        ([*tab, "--tune-fraction", "1.5", "-o", str(tmp_path / "ev")], "error: --tune-fraction must"),
        ([*tab, "--target-sensitivity", "2", "-o", str(tmp_path / "ev")], "error: --target-sensitivity must"),
        (["evaluate", "cinc2021", "--root", str(data_dir / "cinc2021"), "--checkpoint", str(tiny_ckpt12),
          "-o", str(tmp_path / "ev"), "--save-calibrated", str(tmp_path / "m.safetensors")], "add --calibrate"),
    ]
    for argv, said in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert said in _line(err) and "predictions:" not in err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_serve_refuses_before_it_says_it_listens(monkeypatch, tiny_ckpt12, tmp_path, capsys):
    """--device gpu ended in a torch traceback; a missing --thresholds file or checkpoint came after
    'ecgfounder serve: ... on http://...'; --mcp-dir without --mcp was ignored."""
    pytest.importorskip("fastapi")
    import ecgfounder.serve as serve

    started = []
    monkeypatch.setattr(serve, "run_server", lambda *a, **k: started.append("http"))
    monkeypatch.setattr(serve, "run_mcp", lambda *a, **k: started.append("mcp"))
    ck = ["--checkpoint", str(tiny_ckpt12)]
    cases = [([*ck, "--device", "gpu"], "error: --device gpu is not a torch device"),
             (["--checkpoint", str(tmp_path / "none.pth")], "not found"),
             ([*ck, "--thresholds", str(tmp_path / "t.csv")], "error: --thresholds "),
             ([*ck, "--mcp-dir", str(tmp_path)], "add --mcp"),
             ([*ck, "--mcp", "--mcp-dir", str(tmp_path / "nope")], "error: --mcp-dir ")]
    for argv, said in cases:
        assert main(["serve", *argv]) == 2, argv
        assert said in _line(capsys.readouterr().err), argv
    assert started == []


def test_small_commands_refuse_what_they_cannot_do(data_dir, tmp_path, capsys):
    out = tmp_path / "m.xlsx"
    rc = main(["finetune", "manifest", "cinc2021", str(data_dir / "train" / "cinc2021"), "-o", str(out)])
    assert rc == 2 and ".csv or .parquet" in _line(capsys.readouterr().err) and not out.exists()  # was: CSV in .xlsx
    assert main(["pretrain", "labels"]) == 2  # was: '0 statements: {}', exit 0
    assert "nothing to label" in _line(capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert main(["pretrain", "labels", str(tmp_path / "empty")]) == 2
    assert "no ECG records found" in _line(capsys.readouterr().err)


def test_download_error_names_the_flag(capsys):
    assert main(["download", "24-lead"]) == 2
    line = _line(capsys.readouterr().err)
    assert "--checkpoint FILE" in line and "model=path" not in line and "(CLI:" not in line


def test_plot_index_of_a_file_of_one_recording_names_the_flag(data_dir, tmp_path, capsys):
    """'index= applies to batch files' named the library's argument, with no value and no fix."""
    assert main(["plot", str(data_dir / "cinc2021" / "E07500.hea"), "--index", "2", "-o", str(tmp_path / "x.png")]) == 2
    line = _line(capsys.readouterr().err)
    assert line.endswith("E07500.hea: --index 2 picks a recording of a batch file (npy, npz, hdf5, matlab); this is a wfdb "
                         "file of one: leave --index out."), line
    assert not (tmp_path / "x.png").exists()


def test_an_input_named_as_the_output_is_refused_not_overwritten(tiny_ckpt12, data_dir, tmp_path, capsys):
    """`predict ecg.csv rec.hea -o ecg.csv`: the ECG file named as an input was taken for the run's own
    output, left out, and replaced by the predictions (exit 0); alone, it was 'no ECG records found'."""
    import ecgfounder

    rec = ecgfounder.read(data_dir / "cinc2021" / "E07500.hea")
    ecg = tmp_path / "ecg.csv"
    ecg.write_text("I,II\n" + "".join(f"{a:.3f},{b:.3f}\n" for a, b in rec.signal[:2, :2500].T))
    arr = tmp_path / "ecg.npy"
    np.save(arr, rec.signal.T)
    before = {f: f.read_bytes() for f in (ecg, arr)}
    other = str(data_dir / "cinc2021" / "E07500.hea")
    for argv, flag, f in [(["predict", str(ecg), other, "-o", str(ecg)], "--output", ecg),
                          (["predict", str(arr), "-o", str(tmp_path / "p.csv"), "--embeddings", str(arr)], "--embeddings", arr),
                          (["embed", str(ecg), "-o", str(tmp_path / "e.npy"), "--index", str(ecg)], "--index", ecg),
                          (["embed", str(arr), "-o", str(arr)], "--output", arr)]:
        assert main([*argv, "--fs", "500", "--checkpoint", str(tiny_ckpt12), "--no-progress"]) == 2, argv
        line = _line(capsys.readouterr().err)
        assert f"error: {flag} {f} is the input {f}" in line and "give another" in line, line
        assert all(g.read_bytes() == b for g, b in before.items())


def test_an_unknown_weights_name_lists_every_kind_of_source(data_dir, capsys):
    """`--weights 2-lead` named the two known names alone: not the Hub form, nor the flag for a file."""
    rc = main(["predict", str(data_dir / "cinc2021" / "E07500.hea"), "--weights", "2-lead"])
    line = _line(capsys.readouterr().err)
    assert rc == 2 and line.startswith("error: unknown weights '2-lead'") and "12-lead or 1-lead" in line, line
    assert "hf://owner/name" in line and "--checkpoint FILE" in line and "model=" not in line, line


def test_plot_of_a_folder_says_it_draws_one_file(data_dir, capsys):
    """'is a directory, not a record file' named no way forward."""
    folder = data_dir / "cinc2021"
    assert main(["plot", str(folder)]) == 2
    line = _line(capsys.readouterr().err)
    assert line.startswith(f"error: {folder} is a folder; plot draws one ECG file") and "ecgfounder report" in line, line


def test_quiet_prints_no_warnings_of_reading(data_dir, tiny_ckpt12, tmp_path, capsys):
    """-q ("errors only") still printed the readers' warnings: an XML passed over in a folder, a
    NumPy file's lead order taken as standard."""
    import warnings

    import ecgfounder

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    np.save(src / "a.npy", ecgfounder.read(data_dir / "cinc2021" / "E07500.hea").signal.T)
    (src / "odd.xml").write_text("<?xml version='1.0'?><notanecg/>")
    for cmd, out, quiet in (("predict", "p.csv", []), ("predict", "q.csv", ["-q"]), ("embed", "e.npy", ["-q"])):
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            rc = main([cmd, str(src), "--fs", "500", "--checkpoint", str(tiny_ckpt12), "-o", str(dst / out), *quiet])
        got = capsys.readouterr()
        said = sorted({str(w.message).split(": ", 1)[1][:20] for w in shown})
        assert rc == 0 and said == ([] if quiet else ["1 XML/CSV file(s) pa", "12 unnamed channels "]), (cmd, quiet, said)
        assert not quiet or got.err == got.out == "", got
    (src / "bad.edf").write_bytes(b"x")  # errors are still said
    assert main(["predict", str(src), "--fs", "500", "--checkpoint", str(tiny_ckpt12), "-q"]) == 1
    assert _line(capsys.readouterr().err).startswith(f"error: {src / 'bad.edf'}: ")
