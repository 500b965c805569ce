"""A resume naming the same inputs otherwise than the first run (an absolute path for a relative
one) is refused, rightly (the rows hold the record paths as first named), but was said to be a
change of files: "files were added to, removed from or renamed in the inputs since".  It says now
that the same files were named differently, both names, and how to name them."""

from __future__ import annotations

import re

import pytest

from ecgfounder.errors import SetupError


def _job(inputs: str, tiny_ckpt, **kw):
    from ecgfounder.prediction.archive import ArchiveJob

    return ArchiveJob(inputs=(inputs,), model=str(tiny_ckpt), output="o.csv", workers=0, precision="fp32", **kw)


def test_a_resume_naming_the_inputs_otherwise_says_so(folder_of, tiny_ckpt, tmp_path, monkeypatch, interrupt):
    from ecgfounder.prediction.archive import run_archive

    folder_of(tmp_path / "in", n=2)
    monkeypatch.chdir(tmp_path)
    interrupt(2)
    with pytest.raises(KeyboardInterrupt):
        run_archive(_job("in", tiny_ckpt), progress=False, quiet=True)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    for which in ("interrupted", "finished"):
        with pytest.raises(SetupError, match=re.escape(
                f"the {which} run named the same files differently (inputs 'in' then, '{tmp_path / 'in'}' now): its "
                "rows hold the record paths as first named, so this run's would not line up with them. Name them as it "
                "did (inputs 'in') with resume=True")):
            run_archive(_job(str(tmp_path / "in"), tiny_ckpt, resume=True), progress=False, quiet=True)
        report = run_archive(_job("in", tiny_ckpt, resume=True), progress=False, quiet=True)
        assert report.n_ok == 2 and (which == "finished") == report.already_complete
