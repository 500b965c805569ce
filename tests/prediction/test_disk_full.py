"""A disk that fills up mid-run: the error names the output, the rows saved are kept and said, and
``--resume`` (once there is room) finishes the run without a lost or repeated row."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest



def _run(inputs: Path, tiny_ckpt: Path, out: Path, **kw):
    from ecgfounder.prediction.archive import ArchiveJob, run_archive

    stream = kw.pop("stream", io.StringIO())
    job = ArchiveJob(inputs=(str(inputs),), model=str(tiny_ckpt), output=str(out), workers=0, precision="fp32", **kw)
    return run_archive(job, progress=False, stream=stream)


class _FullDisk:
    """A text file on a disk with room for ``room`` characters: past it, every flush fails (ENOSPC)
    and the characters stay buffered, so closing the file fails too, as on a full disk."""

    def __init__(self, fh, room: int):
        self.fh, self.room, self.pending = fh, room, ""

    def write(self, text: str) -> int:
        self.pending += text
        return len(text)

    def flush(self) -> None:
        if self.fh.tell() + len(self.pending) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.fh.write(self.pending)
        self.pending = ""
        self.fh.flush()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.fh.close()

    @property
    def closed(self) -> bool:
        return self.fh.closed


def test_a_full_disk_names_the_output_keeps_the_saved_rows_and_resume_finishes(folder_of, tiny_ckpt, tmp_path,
                                                                              monkeypatch):
    import ecgfounder.prediction.tables as tables

    src = folder_of(tmp_path / "in", 5)
    _run(src, tiny_ckpt, tmp_path / "full.csv")
    room = int((tmp_path / "full.csv").stat().st_size * 0.6)  # the disk fills at the third or fourth record
    monkeypatch.setattr(tables, "open", lambda *a, **k: _FullDisk(open(*a, **k), room), raising=False)
    said = io.StringIO()
    out = tmp_path / "out.csv"
    with pytest.raises(OSError) as info:
        _run(src, tiny_ckpt, out, stream=said)
    assert str(out) in str(info.value) and "No space left on device" in str(info.value)  # (was: only '[Errno 28] ...')
    assert "stopped after" in said.getvalue() and "resume" in said.getvalue()
    monkeypatch.undo()
    report = _run(src, tiny_ckpt, out, resume=True)
    assert report.resumed_from > 0 and report.n_ok == 5
    a, b = pd.read_csv(tmp_path / "full.csv"), pd.read_csv(out)
    assert b["path"].tolist() == a["path"].tolist()
    np.testing.assert_allclose(b.iloc[:, 5:].to_numpy(float), a.iloc[:, 5:].to_numpy(float), atol=1e-6)
