"""Every file the package reads or ships beside its modules is in the wheel: the editable install
the tests run under finds any file of the source tree, a wheel only those pyproject's package-data
names (the labels' licence notes were left out: a BSD-2 notice must go with the counts it covers)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "ecgfounder"


def test_every_data_file_of_the_package_is_named_by_package_data():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ecgfounder"]
    data = [p.relative_to(PKG).as_posix() for p in PKG.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "no data files found: the test looks in the wrong place"
    left_out = [f for f in data if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not left_out, f"not in [tool.setuptools.package-data]: {left_out}"
    assert "labels/LICENSE-evaluation-2021.txt" in data and "labels/SOURCES.md" in data
