"""The README's Quick start stays true (its test command is what CI runs, its main job works), and
the flags, extras and paths that README.md, docs/reading.md and docs/quality.md name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


DOCS = ("README.md", "docs/reading.md", "docs/quality.md")
NOT_OURS = {"--nproc_per_node"}  # torchrun's


def _options(parser) -> set[str]:
    import argparse

    found = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def test_every_flag_the_docs_name_is_a_flag_of_the_cli_spelled_in_full():
    from ecgfounder.cli import build_parser

    known = _options(build_parser())
    for doc in DOCS:
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]", (ROOT / doc).read_text()))
        assert not named - known - NOT_OURS, (doc, sorted(named - known - NOT_OURS))


def test_extras_table_lists_exactly_the_extras_of_pyproject():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    table = re.search(r"### Extras\n(.*?)\n## ", (ROOT / "README.md").read_text(), re.S).group(1)
    named = {n for row in re.findall(r"^\| `([^|]+)\|", table, re.M) for n in re.findall(r"`?([a-z]+)`?", row)}
    assert named == set(extras)


def test_repository_paths_the_docs_name_exist():
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        paths = set(re.findall(r"\]\(([^)#:]+)\)", text))
        paths |= set(re.findall(r"`((?:tests|benchmarks|docs|examples|ecgfounder)/[\w./-]+)`", text))
        missing = [p for p in paths if not any((base / p).exists() for base in (ROOT / Path(doc).parent, ROOT, ROOT / "src"))]
        assert not missing, (doc, missing)


def test_each_documented_command_line_uses_flags_of_its_own_subcommand():
    import argparse

    from ecgfounder.cli import build_parser

    root = build_parser()
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", (ROOT / doc).read_text(), re.S):
            for line in block.splitlines():
                words = line.split("#")[0].split()
                at = next((i for i, w in enumerate(words) if w == "ecgfounder" or w.endswith("/ecgfounder")), None)
                if at is None:
                    continue
                words, parser = words[at + 1:], root
                for word in words:
                    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
                    if word.startswith("-") or not subs or word not in subs[0].choices:
                        break
                    parser = subs[0].choices[word]
                own = {s for a in parser._actions for s in a.option_strings}
                flags = {w.split("=")[0] for w in words if w.startswith("--")}
                assert flags <= own, (doc, line, sorted(flags - own))
