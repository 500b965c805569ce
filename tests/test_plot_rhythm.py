"""The rhythm printout: consecutive 10-s strips of 1-3 leads at true scale, labelled with their
seconds, onto further sheets, bounded; the default for long recordings of few leads on paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgfounder.plot import PlotError, plot_ecg, plot_pages, save_ecg_plot
from ecgfounder.recording import Recording

DATA = Path(__file__).resolve().parent / "data"


def _rec(seconds: float, leads=("II",), fs: float = 100.0) -> Recording:
    t = np.arange(int(seconds * fs)) / fs
    sig = np.stack([np.sin(2 * np.pi * (k + 1) * t) for k in range(len(leads))])
    return Recording(sig, fs, tuple(leads), {"id": "rhythm"})


def _strip_labels(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts if t.get_text().endswith(" s") and "  " in t.get_text()]


def _traces(fig):
    return [ln for ln in fig.axes[0].lines if len(ln.get_xdata()) > 50]


def test_rhythm_strips_are_consecutive_10_s_labelled_with_their_seconds():
    rec = _rec(35.0)
    fig = plot_ecg(rec, layout="rhythm", seconds=30, paper="a4")
    assert _strip_labels(fig) == ["II  0–10 s", "II  10–20 s", "II  20–30 s"]
    traces = _traces(fig)
    assert len(traces) == 3 and all(np.ptp(t.get_xdata()) == pytest.approx(250 - 25 / rec.fs) for t in traces)
    # strip k holds seconds 10k..10k+10 of the lead (drawn relative to its median)
    for k, t in enumerate(traces):
        v = rec.signal[0, k * 1000:(k + 1) * 1000]
        y = np.asarray(t.get_ydata())
        assert np.allclose(y - y.mean(), 10 * (v - v.mean()))
    rest = plot_ecg(rec, layout="rhythm", paper="a4")  # default: 60 s, or to the end
    assert _strip_labels(rest) == ["II  0–10 s", "II  10–20 s", "II  20–30 s", "II  30–35 s"]
    later = plot_ecg(rec, layout="rhythm", start=12.5, seconds=20)
    assert _strip_labels(later) == ["II  12.5–22.5 s", "II  22.5–32.5 s"]


def test_strip_seconds_of_a_days_long_recording_are_printed_in_full():
    """Two days in: 172800.5 s is not rounded to 172800 (nor, on a 12-day patch, written 1.0368e+06)."""
    fs = 4.0  # (a low rate keeps two days of samples small)
    rec = Recording(np.zeros((1, int(172830 * fs))), fs, ("II",), {"id": "patch"})
    fig = plot_ecg(rec, layout="rhythm", start=172800.5, seconds=20)
    assert _strip_labels(fig) == ["II  172800.5–172810.5 s", "II  172810.5–172820.5 s"]
    assert any("shown 172800.5–172820.5 s" in t.get_text() for t in fig.axes[0].texts)
    from ecgfounder.plot_text import seconds_text

    assert [seconds_text(x) for x in (1036800.0, 0.0, 12.5, 1805.5555555)] == ["1036800", "0", "12.5", "1805.556"]


def test_rhythm_printout_is_at_true_scale_on_a4(tmp_path):
    from PIL import Image

    out = save_ecg_plot(_rec(60.0, fs=250.0), tmp_path / "r.png", layout="rhythm", paper="a4")
    im = np.asarray(Image.open(out).convert("RGB")).astype(int)
    px_mm = 200 / 25.4
    assert (round(im.shape[1] / px_mm), round(im.shape[0] / px_mm)) == (297, 210)
    major = (abs(im[..., 0] - 0xE3) < 12) & (abs(im[..., 1] - 0x8B) < 12) & (abs(im[..., 2] - 0x8B) < 12)
    for axis in (0, 1):  # 5-mm squares, across and down
        lines = np.flatnonzero(major.sum(axis=axis) > 0.5 * major.sum(axis=axis).max())
        centres = [g.mean() for g in np.split(lines, np.flatnonzero(np.diff(lines) > 1) + 1)]
        assert np.median(np.diff(centres)) / px_mm == pytest.approx(5.0, abs=0.15)
    fig = plot_ecg(_rec(60.0, fs=250.0), layout="rhythm", paper="a4")
    assert len(_traces(fig)) == 6  # a minute of one lead fills the sheet


def test_rhythm_goes_on_further_sheets_leads_time_aligned_and_is_capped():
    pages = plot_pages(_rec(125.0), layout="rhythm", seconds=125, paper="a4")
    assert [len(_strip_labels(p)) for p in pages] == [6, 6, 1]
    assert _strip_labels(pages[2]) == ["II  120–125 s"]
    assert all(tuple(np.round(p.get_size_inches() * 25.4, 1)) == (297.0, 210.0) for p in pages)
    assert any("sheet 3 of 3" in t.get_text() for t in pages[2].axes[0].texts)

    def row_mm(fig, n):  # the grid's height (its first line collection) over its rows
        return max(y for seg in fig.axes[0].collections[0].get_segments() for _, y in seg) / n

    # the last, shorter sheet's strips as high as the full sheets' (they were 30 mm there, 28.5 here)
    assert row_mm(pages[2], 1) == pytest.approx(row_mm(pages[0], 6), abs=0.01) and row_mm(pages[0], 6) < 30
    two = plot_pages(_rec(40.0, ("II", "V1")), paper="a4")  # each 10 s: both leads, one under the other
    assert [_strip_labels(p) for p in two][0][:4] == ["II  0–10 s", "V1  0–10 s", "II  10–20 s", "V1  10–20 s"]
    assert sum(len(_strip_labels(p)) for p in two) == 8
    holter = _rec(1300.0, fs=20.0)
    assert len(plot_pages(holter, paper="a4")) == 1  # the default minute, not the whole recording
    with pytest.raises(PlotError, match=r"seconds=1300 .*at most 120 .*at most 1200 s"):
        plot_pages(holter, paper="a4", seconds=1300)
    with pytest.raises(PlotError, match=r"seconds=1300 .*at most 120"):
        plot_ecg(holter, layout="rhythm", seconds=1300)
    with pytest.raises(PlotError, match="seconds=20 is for layout='rhythm'"):
        plot_ecg(holter, layout="strips", seconds=20)
    with pytest.raises(PlotError, match="1 to 3 leads, not 4"):
        plot_ecg(_rec(20.0, ("I", "II", "V1", "V2")), layout="rhythm")


def test_shading_is_drawn_in_the_strip_of_its_seconds():
    rec = _rec(35.0)
    w = np.zeros(rec.n_samples)
    w[2200:2300] = 1.0  # 22-23 s: the third strip (20-30 s), 2-3 s into it
    fig = plot_ecg(rec, layout="rhythm", paper="a4", shading=[("f", {"II": w})])
    from matplotlib.collections import PolyCollection

    (shade,) = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    v = np.concatenate([p.vertices for p in shade.get_paths()])
    assert v[:, 0].min() == pytest.approx(10 + 2 * 25) and v[:, 0].max() == pytest.approx(10 + 3 * 25)
    mids = [np.median(t.get_ydata()) for t in _traces(fig)]  # each strip's baseline
    centre = (v[:, 1].min() + v[:, 1].max()) / 2
    assert int(np.argmin([abs(centre - m) for m in mids])) == 2 and abs(centre - mids[2]) < 2


def test_rhythm_is_the_default_for_long_recordings_of_few_leads_on_paper():
    import ecgfounder.io as eio

    assert len(_strip_labels(plot_ecg(_rec(35.0), paper="a4"))) == 4
    assert len(_traces(plot_ecg(_rec(35.0)))) == 1  # no sheet: one 10-s strip, as before
    assert _strip_labels(plot_ecg(_rec(10.0), paper="a4")) == []  # 10 s: one strip per lead, as before
    assert _strip_labels(plot_ecg(_rec(30.0, ("I", "II", "V1", "V2")), paper="a4")) == []
    mit = eio.read(DATA / "mitdb" / "100.hea")  # 2 leads, 60 s
    assert _strip_labels(plot_pages(mit, paper="a4")[0])[:2] == ["II  0–10 s", "V5  0–10 s"]


def test_cli_plot_rhythm_with_seconds(tmp_path, capsys):
    import re

    from ecgfounder.cli import main

    out = tmp_path / "r.pdf"
    args = ["plot", str(DATA / "mitdb" / "100.hea"), "-o", str(out), "--no-quality", "--layout", "rhythm"]
    assert main(args + ["--seconds", "30"]) == 0
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", out.read_bytes())) == 1  # 2 leads x 3 strips: one sheet
    assert main(args + ["--seconds", "50"]) == 0
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", out.read_bytes())) == 2
    assert main(args[:-2] + ["--layout", "strips", "--seconds", "30"]) != 0
    assert "--layout rhythm" in capsys.readouterr().err


def test_header_counts_the_leads_of_the_file_not_those_derived():
    """A 2-lead file (I, II) read as 6 leads said "6 leads" in the printout's header: the limb leads
    derived on reading were counted as recorded."""
    from ecgfounder.plot_text import header_text

    rng = np.random.default_rng(0)
    two = Recording(signal=rng.normal(0, 0.1, (6, 1000)), fs=100.0, leads=("I", "II", "III", "aVR", "aVL", "aVF"),
                    meta={"derived_leads": ["III", "aVR", "aVL", "aVF"]})
    assert "100 Hz, 10.0 s, 2 leads (+4 derived)" in header_text(two, None, "")[0]
    one = Recording(signal=rng.normal(0, 0.1, (1, 1000)), fs=100.0, leads=("II",))
    assert "100 Hz, 10.0 s, 1 lead" in header_text(one, None, "")[0]


def test_png_of_more_sheets_than_one_is_one_a4_image_a_sheet(tmp_path, capsys):
    from PIL import Image

    from ecgfounder.cli import main

    out = tmp_path / "r.png"
    args = ["plot", str(DATA / "mitdb" / "100.hea"), "-o", str(out), "--no-quality", "--layout", "rhythm"]
    assert main(args + ["--seconds", "50"]) == 0  # 2 leads x 5 strips: two sheets
    sheets = [out, tmp_path / "r-2.png"]
    assert capsys.readouterr().out.split() == [str(p) for p in sheets]
    px_mm = 200 / 25.4
    for p in sheets:  # each a landscape A4 at 200 dpi, not one image two sheets tall
        w, h = Image.open(p).size
        assert (round(w / px_mm), round(h / px_mm)) == (297, 210)
    assert not (tmp_path / "r-3.png").exists()
    assert main(args + ["--seconds", "50", "--paper", "fit"]) == 0  # no paper: one drawing, however tall
    assert capsys.readouterr().out.split() == [str(out)]
    assert not (tmp_path / "r-2.png").exists()  # the earlier run's second sheet is not left beside it


def test_a_rerun_with_fewer_sheets_removes_only_the_earlier_runs_extra_sheets(tmp_path):
    """Rerun on a shorter recording to the same output, af-3.svg of the earlier run stayed beside the
    new sheets: a reader saw a stale sheet.  Only the earlier run's sheets go: a file of the sheet
    name that no plot wrote, and every other name, stay."""
    from ecgfounder.plot import save_ecg_sheets

    out = tmp_path / "af.svg"
    kw = {"layout": "rhythm", "paper": "a4"}
    assert save_ecg_sheets(_rec(130.0, fs=20.0), out, seconds=130, **kw) == [out] + [
        tmp_path / f"af-{k}.svg" for k in (2, 3)]
    others = ["af-03.svg", "af-2.png", "af-3.svg.bak", "afib-2.svg", "af-x.svg", "af-5.svg"]
    for name in others:
        (tmp_path / name).write_text("<svg/>")
    assert save_ecg_sheets(_rec(30.0, fs=20.0), out, **kw) == [out]
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted(others + ["af.svg"])
    save_ecg_sheets(_rec(130.0, fs=20.0), out, seconds=130, **kw)
    (tmp_path / "af-4.svg").write_text("<svg/>")  # the user's own file beyond the sheets: kept
    (tmp_path / "af-3.svg").write_text("<svg>edited by hand</svg>")  # no longer the plot's sheet: kept
    assert save_ecg_sheets(_rec(30.0, fs=20.0), out, **kw) == [out]
    assert not (tmp_path / "af-2.svg").exists()
    assert (tmp_path / "af-3.svg").read_text() == "<svg>edited by hand</svg>" and (tmp_path / "af-4.svg").exists()


def test_a_plot_to_a_name_like_a_sheet_is_not_another_plots_sheet(tmp_path, monkeypatch):
    """af-2.svg plotted on its own (another recording) was removed by a later one-sheet plot to af.svg:
    any plot's mark was taken for af.svg's.  A sheet is removed only if marked as that sheet of a plot
    to that output; a file that cannot be read is kept, and the plot still succeeds."""
    import builtins

    from ecgfounder import plot

    kw = {"layout": "rhythm", "paper": "a4"}
    other = plot.save_ecg_sheets(_rec(30.0, fs=20.0), tmp_path / "af-2.svg", **kw)[0]
    mine = other.read_bytes()
    assert plot.save_ecg_sheets(_rec(30.0, fs=20.0), tmp_path / "af.svg", **kw) == [tmp_path / "af.svg"]
    assert other.read_bytes() == mine
    plot.save_ecg_sheets(_rec(130.0, fs=20.0), tmp_path / "b.svg", seconds=130, **kw)  # b-2.svg, b-3.svg
    real_open = builtins.open

    def unreadable(f, *a, **k):
        if Path(f).name == "b-2.svg":
            raise PermissionError(13, "Permission denied")
        return real_open(f, *a, **k)

    monkeypatch.setattr(plot, "open", unreadable, raising=False)
    assert plot.save_ecg_sheets(_rec(30.0, fs=20.0), tmp_path / "b.svg", **kw) == [tmp_path / "b.svg"]
    assert (tmp_path / "b-2.svg").exists() and (tmp_path / "b-3.svg").exists()  # (the run ends at b-2)
