"""`info` shows the signal-quality flags; `plot` marks the flagged leads."""

from __future__ import annotations

import json

import numpy as np

import ecgfounder
from ecgfounder.cli import main


def test_info_shows_quality(data_dir, capsys):
    assert main(["info", str(data_dir / "cinc2021" / "JS20004.hea"), str(data_dir / "cinc2021" / "HR06000.hea")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "quality flat:V2,V4,V6" in lines[0] and "quality good" in lines[1]
    assert main(["info", "--json", str(data_dir / "cinc2021" / "JS20004.hea")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["quality"] == "flat:V2,V4,V6" and d["quality_leads"] == {"V2": ["flat"], "V4": ["flat"], "V6": ["flat"]}
    assert main(["info", "--json", "--no-quality", str(data_dir / "cinc2021" / "JS20004.hea")]) == 0
    assert "quality" not in json.loads(capsys.readouterr().out)


def test_plot_marks_flagged_leads(data_dir, tmp_path, monkeypatch):
    rec = ecgfounder.read(data_dir / "cinc2021" / "HR06000.hea")
    sig = rec.signal.copy()
    sig[rec.leads.index("V3")] = 0.0
    f = tmp_path / "zeroV3.npz"
    np.savez(f, signal=sig, fs=rec.fs, leads=np.array(rec.leads))
    seen = {}
    import ecgfounder.plot as plot

    real = plot.plot_ecg

    def spy(recording, **kw):
        seen.update(kw)
        return real(recording, **kw)

    monkeypatch.setattr(plot, "plot_ecg", spy)
    out = tmp_path / "p.png"
    assert main(["plot", str(f), "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert tuple(seen["flagged_leads"]) == ("V3",) and seen["footer"] == "signal quality: flat:V3"
