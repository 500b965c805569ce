"""Seeded mutation fuzz of every reader (benchmarks/fuzz_readers.py): every mutant must be read and
preprocessed, or refused with one line of the package's own error naming the file; any hang,
memory error or foreign exception fails the test.  The suite runs a small seeded sample in this process
(and, marked slow, 1,700 in a subprocess under a 4 GiB address-space limit); the benchmark runs
≥ 5,000 with a forked sandbox per mutant."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "fuzz_readers.py"


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def _fuzz(n: int, seed: int, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--n", str(n), "--seed", str(seed), "--no-fork", "--json"],
                          capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=_limit)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr[-2000:]
    res = json.loads(lines[-1])
    assert res["n"] == n
    return res


def _check(res: dict) -> None:
    t = res["total"]
    assert t["hang"] == t["memory"] == t["message"] == t["other"] == 0, res["failures"]
    assert t["ok"] + t["clean"] == res["n"]
    assert t["ok"] > 0 and t["clean"] > 0  # the mutations both break files and leave some readable


def test_seeded_mutants_of_every_format(tmp_path):
    """In this process (its imports are paid already): 2 mutants of each of the 24 seed formats."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_readers", SCRIPT)
    fz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fz)
    res = fz.run(48, 0, False, 5.0, 0, tmp_path)
    _check(res)
    assert len(res["per_format"]) == 24


@pytest.mark.slow
def test_many_seeded_mutants_of_every_format():
    _check(_fuzz(1700, seed=11, timeout=900))
