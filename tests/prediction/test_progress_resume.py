"""After ``--resume``, the progress lines time only the records this run does: the records done
before are counted, not taken as done in the first second (which gave an ETA of seconds)."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace


def test_resumed_records_are_counted_not_timed(interrupt, records, tiny_ckpt, tmp_path, monkeypatch):
    import ecgfounder.prediction.archive as archive
    import ecgfounder.prediction.progress as progress
    from ecgfounder.prediction.archive import ArchiveJob, run_archive

    job = ArchiveJob(inputs=(str(records),), model=str(tiny_ckpt), output=str(tmp_path / "o.csv"), workers=0,
                     precision="fp32", batch_size=4)
    interrupt(31)
    try:
        run_archive(job, progress=False, quiet=True)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    clock = iter(range(10**6))  # a second per reading of the clock
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    real = progress.Progress
    monkeypatch.setattr(archive, "Progress", lambda *a, **k: real(*a, **{**k, "every_s": 0.0}))  # a line per tick
    said = io.StringIO()
    report = run_archive(ArchiveJob(**{**job.__dict__, "resume": True}), progress=True, stream=said)
    done_before = report.resumed_from
    assert done_before > 20
    lines = [x for x in said.getvalue().splitlines() if x.startswith("predict: ")]
    assert lines
    for line in lines:
        m = re.match(r"predict: (\d+)/(\d+) records, .* ETA (\d+):(\d\d):(\d\d)", line)
        if m:
            done, total = int(m[1]), int(m[2])
            eta = int(m[3]) * 3600 + int(m[4]) * 60 + int(m[5])
            # at least a second per record left: each record of this run took >= 1 s of the fake clock
            assert eta >= total - done, line
