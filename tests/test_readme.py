"""The README's Quick start stays true: its test command is what CI runs, and its main job works."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", text, re.S)
    assert block, "README must open with a Quick start code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    cmds = _quick_start()
    assert len(cmds) == 2
    assert "ecgfounder predict examples/ecg" in cmds[0]
    assert "pytest" in cmds[1]
    assert cmds[1] in (ROOT / ".ci" / "run").read_text()


def test_main_job_runs_on_bundled_examples_with_a_local_checkpoint(ckpt12, tmp_path, capsys):
    from ecgfounder.cli import main

    out = tmp_path / "predictions.csv"
    assert main(["predict", str(ROOT / "examples" / "ecg"), "--checkpoint", str(ckpt12), "-o", str(out)]) == 0
    assert out.read_text().count("\n") == 5  # header + 4 records
