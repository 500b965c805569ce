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
    # MIT-BIH's MLII is read as II: the line says so (as meta['lead_names_from'] does), with its age and sex
    assert main(["info", "--no-quality", str(data_dir / "mitdb" / "100.hea")]) == 0
    assert "2 leads (II from MLII,V5), 360 Hz, 60 s, mV; age 69; sex M" in capsys.readouterr().out


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


def test_hub_references_pass_the_setup_check_and_bad_ones_are_named():
    import pytest

    from ecgfounder.errors import SetupError
    from ecgfounder.prediction.setup import check_weights

    check_weights("hf://owner/name")
    check_weights("hf://owner/name@v1")
    with pytest.raises(SetupError, match="hf://"):
        check_weights("hf://")


def test_max_duration_reads_the_first_seconds(tiny_ckpt12, data_dir, tmp_path):
    import pandas as pd

    out = tmp_path / "p.csv"
    rec = str(data_dir / "ptbdb" / "s0010_re.hea")  # 38.4 s: 4 windows when read whole
    assert main(["predict", rec, "--checkpoint", str(tiny_ckpt12), "-o", str(out), "--max-duration", "12",
                 "--no-progress", "--precision", "fp32"]) == 0
    assert pd.read_csv(out)["n_windows"].tolist() == [2]


def test_info_names_each_bad_file_of_an_archive_in_its_place(data_dir, tmp_path, capsys):
    """`info` on a zip printed its readable recordings and then one error for all its bad files (the
    first five named); each bad file now has its own error line, and the exit status says one failed."""
    import zipfile

    muse = (data_dir / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml").read_bytes()
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, data in [("a.xml", muse)] + [(f"bad{k}.xml", b"<RestingECG><Waveform>") for k in range(6)]:
            zf.writestr(name, data)
    assert main(["info", "--all", "--no-quality", str(z)]) == 1
    out = capsys.readouterr()
    errors = out.err.splitlines()
    assert len(out.out.splitlines()) == 1 and len(errors) == 6
    assert all(e.startswith(f"error: {z}: bad{k}.xml in the zip archive: malformed XML") for k, e in enumerate(errors))


def test_a_closed_stdout_is_not_blamed_on_the_files(data_dir, monkeypatch, capsys):
    """`ecgfounder info DIR | head` reported each file after the pipe closed as unreadable ("[Errno 32]
    Broken pipe", "3 of 4 files could not be read"); it ends quietly with the shell's 141."""
    import io

    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", Closed())
    assert main(["info", "--no-quality", str(data_dir / "cinc2021" / "E07500.hea"), str(data_dir / "cinc2021" / "E07501.hea")]) == 141
    assert capsys.readouterr().err == ""
