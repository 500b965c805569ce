"""First-hour mistakes found in a CLI audit: each answered in one line naming the flag and the
fix (exit 2), and outputs landing where the user asked."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder.cli import main


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("to,suffix", [("edf", ".edf"), ("npz", ".npz")])
def test_convert_into_an_existing_folder_writes_inside_it(tmp_path, capsys, to, suffix):
    np.save(tmp_path / "a.npy", np.zeros((12, 500)))
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["convert", str(tmp_path / "a.npy"), "--fs", "500", "--to", to, "-o", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / f"a{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "out"]  # no out.edf beside the folder
    assert (folder / f"a{suffix}").is_file()


def test_convert_batch_onto_an_existing_file_names_the_fix(tmp_path, capsys):
    np.save(tmp_path / "b.npy", np.zeros((2, 12, 500)))
    target = tmp_path / "taken.edf"
    target.write_bytes(b"keep")
    rc = main(["convert", str(tmp_path / "b.npy"), "--fs", "500", "--to", "edf", "-o", str(target)])
    line = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert rc == 2 and len(line) == 1 and "-o" in line[0] and "folder" in line[0] and "Errno" not in line[0]
    assert target.read_bytes() == b"keep"



def test_convert_keeps_an_existing_output_and_converts_the_others(tmp_path, capsys):
    """`convert archive/ --to edf -o edf/` a second time after a record was added: the first output
    that existed stopped the run (exit 2), the records after it not converted, the rest unsaid."""
    src, out = tmp_path / "archive", tmp_path / "edf"
    src.mkdir()
    for i, name in enumerate(["a", "b", "c"]):
        np.save(src / f"{name}.npy", np.full((12, 500), 0.1 * i))
    out.mkdir()
    (out / "b.edf").write_bytes(b"keep")
    rc = main(["convert", str(src), "--fs", "500", "--to", "edf", "-o", str(out)])
    got = capsys.readouterr()
    errors = [ln for ln in got.err.splitlines() if ln.startswith("error")]
    assert rc == 1 and got.out.split() == [str(out / "a.edf"), str(out / "c.edf")], got
    assert errors[0] == (f"error: {src / 'b.npy'}: output {out / 'b.edf'} exists; give another file or folder with "
                         "-o/--output, or add --overwrite to replace it.") and len(errors) == 2, errors
    assert (out / "b.edf").read_bytes() == b"keep" and (out / "c.edf").is_file()

@pytest.mark.parametrize("flag,value,shown", [("--max-duration", "-3", "argument --max-duration: -3 is not a positive"),
                                              ("--units", "parsec", "argument --units: 'parsec' is not a voltage unit"),
                                              ("--fs", "0", "argument --fs: 0 Hz is not an ECG sampling rate")])
def test_info_refuses_bad_reading_options_before_reading(tmp_path, capsys, flag, value, shown):
    """A value no file can use is a usage error (exit 2) naming the flag, not one failure per file
    (--max-duration -3 failed every record; --fs 0 read as 'outside the plausible range (a corrupt header?)')."""
    np.save(tmp_path / "a.npy", np.zeros((12, 500)))
    with pytest.raises(SystemExit) as e:
        main(["info", str(tmp_path / "a.npy"), "--fs", "500", "--no-quality", flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and shown in err and "Traceback" not in err and str(tmp_path) not in err


def test_bounds_on_arguments_are_named_as_flags(tiny_ckpt12, data_dir, tmp_path, capsys):
    rec = str(data_dir / "cinc2021" / "E07500.hea")
    assert main(["predict", rec, "--checkpoint", str(tiny_ckpt12), "--batch-size", "0",
                 "-o", str(tmp_path / "p.csv")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--batch-size must be" in line and "batch_size" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,shown", [
    (["--port", "99999"], "--port 99999"),
    (["--threshold", "2"], "error: --threshold must"),
    (["--max-upload-mb", "-5"], "--max-upload-mb -5 "),
    (["--max-upload-mb", "nan"], "--max-upload-mb nan"),
])
def test_serve_limits_answer_in_the_flags_terms(tmp_path, capsys, argv, shown):
    pytest.importorskip("fastapi")
    rc = main(["serve", "--checkpoint", str(tmp_path / "none.pth"), *argv])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2 and shown in line and "----" not in line and "5242880" not in line


@pytest.mark.parametrize("start,shown", [("nan", "--start nan"), ("-5", "--start -5"), ("10", "--start 10")])
def test_plot_start_outside_the_record(data_dir, tmp_path, capsys, start, shown):
    out = tmp_path / "e.png"
    rc = main(["plot", str(data_dir / "cinc2021" / "E07500.hea"), "-o", str(out), "--no-quality", "--start", start])
    line = _one_error_line(capsys.readouterr().err)
    assert rc == 2 and shown in line and "start=" not in line and not out.exists()


def test_convert_into_the_inputs_own_folder_is_refused(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", signal=np.zeros((12, 500)), fs=500.0)
    before = (tmp_path / "a.npz").read_bytes()
    assert main(["convert", str(tmp_path / "a.npz"), "--to", "npz", "-o", str(tmp_path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "overwrite the input" in line and "another" in line
    assert (tmp_path / "a.npz").read_bytes() == before


def test_pretrain_labels_exit_code_says_a_source_failed(tmp_path, data_dir, capsys):
    good = str(data_dir / "formats" / "sierra_xml" / "v1.03_129DYPRG.XML")
    rc = main(["pretrain", "labels", good, str(tmp_path / "nope.xml")])
    cap = capsys.readouterr()
    assert rc == 1 and "nope.xml" in cap.out and "1 of 2 sources could not be read" in cap.err
    assert main(["pretrain", "labels", good]) == 0


@pytest.mark.parametrize("argv,said", [(["--top", "-1"], "--top: -1 is below 1"),
                                       (["--threshold", "nan"], "--threshold: nan is not a probability"),
                                       (["--threshold", "2"], "--threshold: 2 is not a probability"),
                                       (["--calibration-records", "-4"], "--calibration-records: -4 is below 1")])
def test_predict_display_and_calibration_options_are_checked(capsys, argv, said):
    """--top -1 listed 149 findings and --threshold nan showed none; both were accepted."""
    with pytest.raises(SystemExit) as e:
        main(["predict", "x.hea", *argv])
    assert e.value.code == 2 and said in capsys.readouterr().err


def test_library_refuses_too_few_calibration_records(tmp_path):
    from ecgfounder.errors import SetupError
    from ecgfounder.prediction.archive import ArchiveJob, run_archive

    with pytest.raises(SetupError, match="calibration_records must be >= 1; got 0"):
        run_archive(ArchiveJob(inputs=(str(tmp_path),), model="x", output=str(tmp_path / "o.csv"), calibration_records=0))


def test_resume_of_a_finished_run_with_failures_names_them(tmp_path, capsys, tiny_ckpt12, data_dir):
    """A finished run asked to resume exits 1 when it had failures: it now says which, not only
    'nothing to do'."""
    import shutil

    for ext in (".hea", ".mat"):
        shutil.copy(data_dir / "cinc2021" / f"HR06000{ext}", tmp_path / f"HR06000{ext}")
    (tmp_path / "broken.hea").write_text("not a header\n")
    argv = ["predict", str(tmp_path), "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "out.csv"), "--resume",
            "--no-progress"]
    assert main(argv) == 1
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "is complete (1 record(s); 1 record(s) failed in it, e.g. " in err and "broken.hea" in err


def test_info_on_a_folder_without_ecgs_names_it_as_typed(tmp_path, capsys):
    """The message showed the argument list's Python form: "no ECG files found in ['/x/empty']"."""
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 2
    assert _one_error_line(capsys.readouterr().err) == (f"error: no ECG files found in {tmp_path / 'empty'}; give "
                                                        "files or folders holding them.")


def test_every_command_says_what_it_does_under_help():
    """`ecgfounder env --help` showed the usage line alone."""
    from ecgfounder.cli import build_parser

    commands = build_parser(None).subcommands
    assert {name for name, sub in commands.items() if not (sub.description or "").strip()} == set()
