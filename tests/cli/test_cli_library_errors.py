"""Library messages on the command line: their argument names (``backend='onnxruntime'``) and their
``(CLI: ...)`` asides printed as the flags, in one line, with the exit codes of before."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder.cli import main
from ecgfounder.cli._common import flags


@pytest.mark.parametrize("library, cli", [
    ("r.hea: lead='V9' (CLI: --lead V9) is not in the recording", "r.hea: --lead V9 is not in the recording"),
    ("fill_missing=True (CLI: --fill-missing) zero-fills missing leads.", "--fill-missing zero-fills missing leads."),
    ("use model='1-lead' (CLI: --weights 1-lead), with lead='II' (CLI: --lead II).",
     "use --weights 1-lead, with --lead II."),
    ("Pass strict=False (CLI: --no-strict) only if you know why.", "Pass --no-strict only if you know why."),
    ("pass leads=['II'] (CLI: --leads II)", "pass --leads II"),
    ("pass fs=... (CLI: --fs) if wrong", "pass --fs if wrong"),
    ("backend='onnxruntime' runs on the CPU only; got device='cuda:1'.", "--backend onnxruntime runs on the CPU only; "
     "got --device cuda:1."),
    ("write it with merge_parts (CLI: ecgfounder merge ...)", "write it with merge_parts (CLI: ecgfounder merge ...)"),
])
def test_flags_prints_the_command_line_form(library, cli):
    assert flags(library) == cli


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, lines
    return lines[0]


def test_graph_backend_on_a_gpu_names_the_flags(monkeypatch, tiny_ckpt12, tmp_path, capsys, data_dir):
    import ecgfounder.prediction.setup as setup

    monkeypatch.setattr(setup, "check_device", lambda device: str(device))  # as on a machine with a GPU
    rec = str(data_dir / "cinc2021" / "HR06000.hea")
    rc = main(["predict", rec, "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "p.csv"), "--device", "cuda",
               "--backend", "onnxruntime"])
    line = _error_line(capsys)
    assert rc == 2 and line.startswith("error: --backend onnxruntime runs on the CPU only; got --device cuda.")
    assert "--backend torch" in line and "--device cpu" in line and "=" not in line


def test_impossible_precision_and_backend_name_the_flags(tiny_ckpt12, tmp_path, capsys, data_dir):
    rec = str(data_dir / "cinc2021" / "HR06000.hea")
    rc = main(["predict", rec, "--checkpoint", str(tiny_ckpt12), "-o", str(tmp_path / "p.csv"), "--precision", "int8",
               "--backend", "torch"])
    line = _error_line(capsys)
    assert rc == 2 and "--precision int8 runs on the onnxruntime or openvino backend, not --backend torch" in line
    assert "=" not in line


def test_missing_leads_of_a_record_print_the_flags(tiny_ckpt12, tmp_path, capsys):
    np.save(tmp_path / "three.npy", np.random.default_rng(0).standard_normal((3, 5000)).astype(np.float32))
    rc = main(["predict", str(tmp_path / "three.npy"), "--checkpoint", str(tiny_ckpt12), "--fs", "500",
               "--leads", "II,V1,V2", "--no-progress"])
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "missing lead(s)" in x)
    assert rc == 1 and "--fill-missing" in line and "--weights 1-lead" in line and "--lead II" in line


def test_per_record_lines_of_a_run_print_the_flags_alone(tiny_ckpt12, tmp_path, capsys):
    """The lines a run writes per failed record (through the prediction library's progress) show
    the flag, not the library argument beside it."""
    np.save(tmp_path / "three.npy", np.random.default_rng(0).standard_normal((3, 5000)).astype(np.float32))
    rc = main(["predict", str(tmp_path / "three.npy"), "--checkpoint", str(tiny_ckpt12), "--fs", "500",
               "--leads", "II,V1,V2", "--no-progress", "-o", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "missing lead(s)" in x)
    assert rc == 1 and "--fill-missing zero-fills" in line and "--weights 1-lead" in line, line
    assert "(CLI:" not in line and "fill_missing=" not in line and "model=" not in line
