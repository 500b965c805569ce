"""A run stopped while it finishes (its embeddings published, its table not yet; its completion
record not yet written; its table published, its state not yet removed) is continued or found
finished by ``--resume``, never refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest



def _run(inputs: Path, tiny_ckpt: Path, out: Path, **kw):
    from ecgfounder.prediction.archive import ArchiveJob, run_archive

    job = ArchiveJob(inputs=(str(inputs),), model=str(tiny_ckpt), output=str(out), embeddings=str(out.with_suffix(".npy")),
                     workers=0, precision="fp32", **kw)
    return run_archive(job, progress=False, quiet=True)


def _stop_once(monkeypatch, module, name: str, when=lambda *a: True) -> None:
    """The first call of ``module.name`` that ``when`` accepts raises ``KeyboardInterrupt`` (Ctrl-C there)."""
    real, fired = getattr(module, name), []

    def stop(*a, **k):
        if not fired and when(*a):
            fired.append(a)
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, name, stop)


@pytest.mark.parametrize("where", ["table publish", "completion record", "state removal"])
def test_a_run_stopped_while_it_finishes_is_resumed(folder_of, tiny_ckpt, tmp_path, monkeypatch, where):
    import ecgfounder.prediction.archive as archive
    import ecgfounder.prediction.tables as tables

    src = folder_of(tmp_path / "in")
    full = _run(src, tiny_ckpt, tmp_path / "full.csv")
    assert full.n_ok == 4
    out = tmp_path / "out.csv"
    clock = iter(range(0, 10**6, 10))  # every record boundary saved (a long run's state, not the first second's)
    monkeypatch.setattr(archive, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    if where == "table publish":  # the embeddings are published, the table not yet
        _stop_once(monkeypatch, tables, "publish")
    elif where == "completion record":  # the rows are all written, the completion record not yet
        _stop_once(monkeypatch, archive, "write_json", lambda p, *a: ".done.json" in str(p))
    else:  # the table is published, its resume state not yet removed
        _stop_once(monkeypatch, Path, "unlink", lambda p, *a: p.name.endswith(".state.json"))
    with pytest.raises(KeyboardInterrupt):
        _run(src, tiny_ckpt, out)
    monkeypatch.undo()
    assert archive.read_json(archive.state_path(out))["done"] >= 3
    again = _run(src, tiny_ckpt, out, resume=True)  # (refused before: "the partial output is shorter ...")
    assert again.n_ok == 4 and not again.failures
    a, b = pd.read_csv(tmp_path / "full.csv"), pd.read_csv(out)
    assert b["path"].tolist() == a["path"].tolist()
    np.testing.assert_allclose(b.iloc[:, 5:].to_numpy(float), a.iloc[:, 5:].to_numpy(float), atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.load(tmp_path / "full.npy"), atol=1e-6)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out."))
    assert left == [".out.csv.done.json"]  # no state, partial table or partial embeddings left behind
    assert _run(src, tiny_ckpt, out, resume=True).already_complete


def test_resume_of_a_finished_run_names_a_failed_file_once(folder_of, tiny_ckpt, tmp_path, capsys):
    from ecgfounder.cli import main

    src = folder_of(tmp_path / "in")
    (src / "r0001.hea").write_text("garbage\n")
    out = tmp_path / "f.csv"
    argv = ["predict", str(src), "--checkpoint", str(tiny_ckpt), "--workers", "0", "--precision", "fp32",
            "--no-progress", "-o", str(out)]
    assert main(argv) == 1
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 1
    line = next(x for x in capsys.readouterr().err.splitlines() if "is complete" in x)
    assert line.count("r0001.hea") == 1, line  # (was 'e.g. PATH: PATH: why')


def test_ctrl_c_while_the_embeddings_are_copied_keeps_every_record(folder_of, tiny_ckpt, tmp_path, monkeypatch):
    """Ctrl-C while a large embeddings array was copied into place said only "interrupted", and its
    resume computed again every record after the last saved state (up to a second of records)."""
    import ecgfounder.prediction.embeddings as embeddings
    import ecgfounder.prediction.stream as stream
    from ecgfounder.prediction.archive import RunInterrupted

    src = folder_of(tmp_path / "in", n=2)
    out = tmp_path / "out.csv"

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(embeddings, "copy_rows_npy", stop)
    with pytest.raises(KeyboardInterrupt) as info:  # (not RunInterrupted here: a bare one would end the session)
        _run(src, tiny_ckpt, out)
    assert isinstance(info.value, RunInterrupted) and str(info.value) == (
        f"interrupted while finishing: all 2 record file(s) are done, kept in {tmp_path / '.out.csv.partial'} and "
        f"{tmp_path / '.out.npy.partial.f32'}, with the resume state; continue with the same command and resume=True: "
        "it finishes them without computing them again")
    monkeypatch.undo()

    def computed(*a, **k):
        raise AssertionError("a record was computed again")

    monkeypatch.setattr(stream, "result_rows", computed)
    again = _run(src, tiny_ckpt, out, resume=True)
    assert again.resumed_from == 2 and again.n_ok == 2 and not again.failures
    assert pd.read_csv(out)["record"].tolist() == ["r0000", "r0001"] and np.load(tmp_path / "out.npy").shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")) == [".out.csv.done.json"]
