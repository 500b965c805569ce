"""``--precision auto`` resumed where auto chooses another path (another machine of a cluster, a
cleared cache): the resumed rows come from the path the interrupted run took, never a mix."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_a_resumed_auto_run_keeps_the_path_it_took(interrupt, records, tiny_ckpt, tmp_path, monkeypatch):
    from ecgfounder.prediction.archive import ArchiveJob, run_archive

    def job(out, **kw):
        return ArchiveJob(inputs=(str(records),), model=str(tiny_ckpt), output=str(out), workers=0,
                          precision="auto", batch_size=4, **kw)

    monkeypatch.setenv("ECGFOUNDER_AUTO_PATH", "bf16/torch")  # the machine the run started on chose bf16
    whole = run_archive(job(tmp_path / "bf16.csv"), progress=False, quiet=True)
    assert whole.inference == ("bf16", "torch")
    interrupt(21)
    try:
        run_archive(job(tmp_path / "o.csv"), progress=False, quiet=True)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    monkeypatch.setenv("ECGFOUNDER_AUTO_PATH", "fp32/torch")  # the one it resumes on chooses fp32
    report = run_archive(job(tmp_path / "o.csv", resume=True), progress=False, quiet=True)
    assert report.resumed_from > 10 and report.inference == ("bf16", "torch")
    a, b = pd.read_csv(tmp_path / "bf16.csv"), pd.read_csv(tmp_path / "o.csv")
    assert b["path"].tolist() == a["path"].tolist()
    # every row as the bf16 run wrote it (fp32 rows differ from bf16's by ~1e-3)
    np.testing.assert_allclose(b.iloc[:, 5:].to_numpy(float), a.iloc[:, 5:].to_numpy(float), atol=1e-6)
