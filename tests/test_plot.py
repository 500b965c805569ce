"""ECG printouts: layout geometry at paper scale, overlay text, formats, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.plot import plot_ecg, save_ecg_plot
from ecgfounder.recording import Recording

DATA = Path(__file__).resolve().parent / "data"
MUSE = DATA / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml"


@pytest.fixture(scope="module")
def muse() -> Recording:
    return eio.read(MUSE)


def _traces(fig):
    ax = fig.axes[0]
    return [ln for ln in ax.lines if len(ln.get_xdata()) > 50]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_12lead_layout_is_at_paper_scale(muse):
    fig = plot_ecg(muse, findings=[("sinus rhythm", 0.91), ("atrial fibrillation", 0.12)])
    traces = _traces(fig)
    assert len(traces) == 13  # 12 segments of 2.5 s + the 10-s rhythm strip
    w_in, h_in = fig.get_size_inches()
    x_mm = w_in * 25.4
    assert x_mm == pytest.approx(10 + 10 + 250 + 10)  # margins + calibration + 10 s at 25 mm/s
    # each 2.5-s segment spans 62.5 mm, the rhythm strip 250 mm (25 mm/s)
    spans = sorted(np.ptp(np.asarray(t.get_xdata())) for t in traces)
    assert spans[0] == pytest.approx(62.5 - 25 / muse.fs, abs=1e-6)
    assert spans[-1] == pytest.approx(250 - 25 / muse.fs, abs=1e-6)
    # 10 mm/mV: the rhythm strip (lead II) has 10× the mV peak-to-peak in millimetres
    rhythm = max(traces, key=lambda t: np.ptp(np.asarray(t.get_xdata())))
    assert np.ptp(rhythm.get_ydata()) == pytest.approx(10 * np.ptp(muse.lead("II")), rel=1e-6)
    texts = _texts(fig)
    for lead in ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V6"):
        assert lead in texts
    assert any("sinus rhythm 0.91" in t for t in texts)
    assert any("Ventricular-paced rhythm" in t for t in texts)  # the file's own statement
    assert any("25 mm/s" in t and "10 mm/mV" in t for t in texts)


@pytest.mark.parametrize("speed, gain", [(25, 10), (50, 10), (12.5, 5)])
def test_the_calibration_pulse_is_1_mv_for_200_ms_at_the_paper_speed_and_gain(muse, speed, gain):
    """The pulse was 5 mm wide at every speed (a 400-ms pulse at 12.5 mm/s looked like 200 ms at 50)."""
    fig = plot_ecg(muse, layout="strips", leads=["II"], speed=speed, gain=gain, paper=None)
    pulse = next(ln for ln in fig.axes[0].lines if len(ln.get_xdata()) == 6)
    x, y = np.asarray(pulse.get_xdata()), np.asarray(pulse.get_ydata())
    assert x[3] - x[2] == pytest.approx(0.2 * speed) and y[2] - y[1] == pytest.approx(gain)
    trace = _traces(fig)[0]
    assert x.max() < np.asarray(trace.get_xdata()).min()  # the pulse ends before the trace starts
    assert fig.get_size_inches()[0] * 25.4 == pytest.approx(20 + max(10, 0.2 * speed + 5) + 10 * speed)


def test_strips_for_single_lead_and_long_records(tmp_path):
    fs = 250.0
    t = np.arange(int(30 * fs)) / fs
    rec = Recording(np.sin(2 * np.pi * t)[None, :], fs, ("II",), {"id": "holter"})
    fig = plot_ecg(rec, start=12.0)
    traces = _traces(fig)
    assert len(traces) == 1
    assert np.ptp(traces[0].get_xdata()) == pytest.approx(250 - 25 / fs)
    assert any("shown 12–22 s" in s for s in _texts(fig))
    with pytest.raises(ValueError, match="start=40"):
        plot_ecg(rec, start=40)
    with pytest.raises(ValueError, match="layout='strips'"):
        plot_ecg(rec, layout="12lead")


@pytest.mark.parametrize("ext", [".png", ".pdf", ".svg"])
def test_save_formats(muse, tmp_path, ext):
    out = save_ecg_plot(muse, tmp_path / f"ecg{ext}")
    head = out.read_bytes()[:8]
    assert {".png": head.startswith(b"\x89PNG"), ".pdf": head.startswith(b"%PDF"),
            ".svg": b"<?xml" in head or b"<svg" in head}[ext]


def test_save_refuses_unknown_extension(muse, tmp_path):
    with pytest.raises(ValueError, match=r"\.png, \.pdf or \.svg"):
        save_ecg_plot(muse, tmp_path / "ecg.jpg")


def test_cli_plot_with_predicted_findings(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")  # noqa: F841
    from ecgfounder.cli import main
    from ecgfounder.models.loading import build_synthetic_checkpoint

    import ecgfounder.plot as plot_mod
    from ecgfounder.labels import load_labels

    seen = {}
    real = plot_mod.save_ecg_sheets

    def spy(rec, path, **kw):
        seen.update(kw)
        return real(rec, path, **kw)

    monkeypatch.setattr(plot_mod, "save_ecg_sheets", spy)
    ckpt = build_synthetic_checkpoint(tmp_path / "synthetic.pth", leads=12)
    out = tmp_path / "ecg.png"
    code = main(["plot", str(MUSE), "-o", str(out), "--predict", "--checkpoint", str(ckpt), "--top", "2"])
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"
    findings = seen["findings"]
    assert len(findings) == 2
    assert all(lab in load_labels() for lab, _ in findings)
    assert 1 >= findings[0][1] >= findings[1][1] >= 0


def test_header_names_snomed_dx_codes():
    from pathlib import Path

    from ecgfounder.io import read
    from ecgfounder.plot import _header_text

    rec = read(Path(__file__).parent / "data" / "cinc2021" / "JS20000.hea")  # Dx 284470004,427084000,...
    _, right = _header_text(rec, None, "")
    assert "premature atrial contraction" in right and "sinus tachycardia" in right
    assert "427084000" not in right


def test_a_nan_gap_breaks_the_trace_instead_of_blanking_it(muse):
    sig = muse.signal.copy()
    ii = muse.leads.index("II")
    sig[ii, 1000:1200] = np.nan  # 0.4 s of lead II missing (2.0-2.4 s at 500 Hz)
    fig = plot_ecg(muse.replace(signal=sig))
    rhythm = max(_traces(fig), key=lambda t: np.ptp(np.asarray(t.get_xdata())))  # the 10-s lead-II strip
    y = np.asarray(rhythm.get_ydata(), dtype=float)
    assert np.isnan(y).sum() == 200 and np.isfinite(y).sum() == y.size - 200  # a gap, the rest drawn


def test_pixels_grid_is_5_mm_and_shading_lies_on_the_shaded_lead_and_seconds(tmp_path):
    from PIL import Image

    from ecgfounder.plot import SHADE_COLOURS
    from ecgfounder.signal.leads import STANDARD_12

    fs, n = 500.0, 5000
    rec = Recording(np.random.default_rng(0).normal(0, 0.05, (12, n)), fs, STANDARD_12, {"id": "x"})
    w = np.zeros(n)
    w[3000:3500] = 1.0  # 6-7 s: in the third column (V1-V3, 5-7.5 s)
    out = save_ecg_plot(rec, tmp_path / "e.png", shading=[("f", {"V2": w})])
    im = np.asarray(Image.open(out).convert("RGB")).astype(int)
    px_mm = 200 / 25.4  # saved at 200 dpi
    major = (abs(im[..., 0] - 0xE3) < 12) & (abs(im[..., 1] - 0x8B) < 12) & (abs(im[..., 2] - 0x8B) < 12)
    cols = np.flatnonzero(major.sum(axis=0) > 0.5 * major.sum(axis=0).max())
    centres = [g.mean() for g in np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)]
    assert np.median(np.diff(centres)) / px_mm == pytest.approx(5.0, abs=0.15)  # 5-mm major grid at true scale
    # shading (SHADE_COLOURS[0], orange, at full weight: about (248, 200, 122) on white) lies only inside
    # V2's box at 6-7 s; nothing else on the grid has that colour (grid: blue = green, trace: dark)
    assert SHADE_COLOURS[0] == "#f39c12"
    top = 10 + 24  # margin + header above the 4 x 40-mm grid
    grid = im[int(top * px_mm):int((top + 160) * px_mm)]
    tint = (grid[..., 0] > 230) & (grid[..., 1] > 170) & (grid[..., 1] < 225) & (grid[..., 2] < 170)
    ys, xs = np.nonzero(tint)
    assert ys.size > 0.5 * (25 * px_mm) * (0.9 * 40 * px_mm)  # most of a 1-s x 36-mm box
    x_mm, y_mm = xs / px_mm - 10, ys / px_mm  # x from the grid's left edge (10-mm margin), y from its top
    assert x_mm.min() > 10 + 6 * 25 - 1 and x_mm.max() < 10 + 7 * 25 + 1  # 6-7 s at 25 mm/s after the calibration
    assert y_mm.min() > 40 and y_mm.max() < 80  # the second of the four 40-mm rows (V2)


def test_plot_errors_are_package_errors_and_a_folder_is_refused(muse, tmp_path):
    from ecgfounder.errors import ECGFounderError

    with pytest.raises(ECGFounderError, match="choose one of"):
        plot_ecg(muse, layout="3x4")
    folder = tmp_path / "ecg.png"
    folder.mkdir()
    with pytest.raises(ECGFounderError, match="is a folder"):
        save_ecg_plot(muse, folder)


def _grid_box(fig) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the drawing's grid lines in page millimetres from the bottom-left."""
    ax = fig.axes[0]
    x0, y0 = ax.get_xlim()[0], ax.get_ylim()[0]
    gx, gy = [], []
    for c in ax.collections:
        for seg in c.get_segments() if hasattr(c, "get_segments") else ():  # grid lines, not shading
            gx += list(seg[:, 0])
            gy += list(seg[:, 1])
    return min(gx) - x0, max(gx) - x0, min(gy) - y0, max(gy) - y0


@pytest.mark.parametrize("paper, size", [("a4", (297.0, 210.0)), ("letter", (279.4, 215.9))])
def test_paper_pages_are_the_sheet_with_the_drawing_centred_at_true_scale(muse, paper, size):
    fit = plot_ecg(muse, footer="signal quality: good")
    fig = plot_ecg(muse, footer="signal quality: good", paper=paper)
    assert tuple(np.round(fig.get_size_inches() * 25.4, 1)) == size
    ax, ref = fig.axes[0], fit.axes[0]
    # true scale: the axes span the page in mm, one data unit = one mm, as on the content-sized page
    assert np.diff(ax.get_xlim())[0] == pytest.approx(size[0]) and np.diff(ax.get_ylim())[0] == pytest.approx(size[1])
    assert np.diff(ref.get_xlim())[0] == pytest.approx(fit.get_size_inches()[0] * 25.4)
    left, right, bottom, top = _grid_box(fig)
    assert right - left == pytest.approx(260.0)  # 10 mm of calibration + 10 s at 25 mm/s
    assert top - bottom == pytest.approx(160.0)  # 4 rows of 40 mm
    assert left == pytest.approx(size[0] - right)  # centred across
    assert left >= 5 and bottom >= 5 and size[1] - top >= 5 + 24  # margins, the header above


def test_many_strips_are_lowered_to_fit_a_sheet_and_a_page_grows_past_that(muse):
    from ecgfounder.plot import PAPERS

    eight = plot_ecg(muse, layout="strips", leads=list(muse.leads[:8]), paper="a4")
    assert tuple(np.round(eight.get_size_inches() * 25.4, 1)) == PAPERS["a4"]
    left, right, bottom, top = _grid_box(eight)
    assert 8 * 20 <= top - bottom < 8 * 30  # rows lowered below 30 mm, not below 20
    twelve = plot_ecg(muse, layout="strips", paper="a4")  # 12 rows of 20 mm do not fit 210 mm
    w, h = twelve.get_size_inches() * 25.4
    assert w == pytest.approx(297.0) and h > 210.0
    _, _, b12, t12 = _grid_box(twelve)
    assert t12 - b12 == pytest.approx(12 * 20)


def test_paper_refusals_name_the_value_and_the_fix(muse):
    from ecgfounder.plot import PlotError

    with pytest.raises(PlotError, match=r"paper='a3'; choose one of \('a4', 'letter'\)"):
        plot_ecg(muse, paper="a3")
    with pytest.raises(PlotError, match="speed=50 mm/s .* use speed=25 or paper=None"):
        plot_ecg(muse, speed=50, paper="a4")


def test_strips_past_one_sheet_go_on_more_sheets_of_a_pdf(muse, tmp_path):
    import re

    from ecgfounder.plot import plot_pages

    pages = plot_pages(muse, layout="strips", paper="a4", footer="one line")
    assert len(pages) == 2 and all(tuple(np.round(f.get_size_inches() * 25.4, 1)) == (297.0, 210.0) for f in pages)
    drawn = [[t for t in _texts(f) if t in muse.leads] for f in pages]
    assert sum(drawn, []) == list(muse.leads)  # every lead once, in order
    out = save_ecg_plot(muse, tmp_path / "s.pdf", layout="strips", paper="a4")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", out.read_bytes())) == 2
    assert len(plot_pages(muse, paper="a4")) == 1 and len(plot_pages(muse, layout="strips")) == 1  # 12-lead; no sheet


def test_cli_plot_draws_on_an_a4_sheet_unless_asked_otherwise(tmp_path):
    from PIL import Image

    from ecgfounder.cli import main

    sizes = {}
    for paper in (None, "letter", "fit"):
        out = tmp_path / f"{paper}.png"
        assert main(["plot", str(MUSE), "-o", str(out), "--no-quality"] + (["--paper", paper] if paper else [])) == 0
        sizes[paper] = tuple(round(v / 200 * 25.4) for v in Image.open(out).size)  # saved at 200 dpi, in mm
    assert sizes == {None: (297, 210), "letter": (279, 216), "fit": (280, 204)}


def _rendered(fig, draw: bool = True):
    """(RGB pixels or None, renderer) of ``fig`` drawn by Agg at its own dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    if not draw:
        return None, canvas.get_renderer()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int), canvas.get_renderer()


def test_tall_complexes_stop_at_the_grid_edge_clear_of_the_text_and_the_page_edge(muse):
    sig = muse.signal.copy()
    sig[muse.leads.index("V4"), 4000:4010] += 6.0  # +6 mV in the top row (V4 is shown 7.5-10 s)
    sig[muse.leads.index("II"), 3000:3010] -= 6.0  # -6 mV on the rhythm strip, the bottom row
    fig = plot_ecg(muse.replace(signal=sig), paper="a4", footer="signal quality: good")
    fig.set_dpi(40)
    im, renderer = _rendered(fig)
    h = im.shape[0]
    dark = im.max(axis=-1) < 90  # the trace and the text, not the grid
    for t in fig.axes[0].texts:  # text is allowed where it stands
        b = t.get_window_extent(renderer)
        dark[max(0, int(h - b.y1) - 2):int(h - b.y0) + 2, max(0, int(b.x0) - 2):int(b.x1) + 2] = False
    left, right, bottom, top = _grid_box(fig)  # mm from the bottom-left
    px = 40 / 25.4
    assert not dark[:int(h - top * px) - 1].any()  # nothing drawn above the grid but the header
    assert not dark[int(h - bottom * px) + 2:].any()  # nor below it but the scale and the footer
    assert dark[int(h - top * px) + 2:int(h - bottom * px) - 2].any()  # (the traces are drawn)


def test_lead_labels_stay_readable_where_tall_waves_cross_them(muse):
    """A rhythm strip's label sits where tall R waves pass: it was drawn straight over them."""
    sig = muse.signal.copy()
    sig[muse.leads.index("V2"), :] += 2.0 * np.sin(np.arange(sig.shape[1]) / muse.fs * 2 * np.pi * 8)
    fig = plot_ecg(muse.replace(signal=sig), layout="rhythm", leads=["V2"], paper="a4")
    fig.set_dpi(60)
    label = next(t for t in fig.axes[0].texts if t.get_text().startswith("V2"))
    label.set_color("white")  # (what is dark in the label's box is then the trace under it)
    im, renderer = _rendered(fig)
    b, h = label.get_window_extent(renderer), im.shape[0]
    box = im[int(h - b.y1) + 1:int(h - b.y0) - 1, int(b.x0) + 1:int(b.x1) - 1].max(axis=-1)
    assert box.size and box.min() > 150  # the trace shows faintly under the label, not black across it
    assert (im.max(axis=-1) < 90).any()  # (and black elsewhere)


def test_header_legend_and_footer_fit_the_page_without_overlapping():
    from ecgfounder.signal.leads import STANDARD_12

    long = ["RSR' OR QR PATTERN IN V1 SUGGESTS RIGHT VENTRICULAR CONDUCTION DELAY",
            "INVERTED T WAVES HAVE REPLACED NONSPECIFIC T WAVE ABNORMALITY IN",
            "CONSIDER RIGHT VENTRICULAR INVOLVEMENT IN ACUTE INFERIOR INFARCT", "WITH 2ND DEGREE SA BLOCK MOBITZ II"]
    meta = {"id": "record_" + "x" * 70, "patient_id": "P" * 30, "age": 60, "sex": "M", "acquired": "2021-05-10T13:15:18",
            "device": "a cardiograph with a long model name", "statements": ["Sinus rhythm with fusion complexes"] * 8}
    rec = Recording(np.random.default_rng(0).normal(0, 0.1, (12, 5000)), 500.0, STANDARD_12, meta)
    w = np.ones(5000)
    quality = "; ".join(f"{k}:{','.join(STANDARD_12)}" for k in ("flat", "noise", "powerline", "baseline", "clipping"))
    for paper in (None, "a4"):
        fig = plot_ecg(rec, findings=[(lab, 0.6) for lab in long * 3], shading=[(lab, {"II": w}) for lab in long],
                       footer=f"signal quality: {quality}\nsecond line", paper=paper)
        _, renderer = _rendered(fig, draw=False)
        page = fig.bbox
        boxes = {t.get_text(): t.get_window_extent(renderer) for t in fig.axes[0].texts if t.get_text()}
        for s, b in boxes.items():
            assert page.x0 <= b.x0 and b.x1 <= page.x1 and page.y0 <= b.y0 and b.y1 <= page.y1, s
        names = list(boxes)
        clash = [(a[:30], b[:30]) for i, a in enumerate(names) for b in names[i + 1:] if boxes[a].overlaps(boxes[b])]
        assert not clash
        y_mm = 25.4 / fig.dpi  # page mm per pixel
        _, _, bottom, top = _grid_box(fig)
        header = [b for s, b in boxes.items() if "Predicted:" in s or s.startswith("record_")]
        assert len(header) == 2 and all(b.y0 * y_mm >= top for b in header)  # the header stays above the grid
        under = [b for s, b in boxes.items() if s.startswith("\u25a0") or "signal quality" in s]
        assert len(under) == 5 and all(b.y1 * y_mm <= bottom for b in under)  # legend and footer below it


def test_the_sheets_of_a_printout_are_numbered(muse):
    from ecgfounder.plot import plot_pages

    pages = plot_pages(muse, layout="strips", paper="a4")
    heads = [" ".join(_texts(f)) for f in pages]
    assert len(pages) == 2 and "sheet 1 of 2" in heads[0] and "sheet 2 of 2" in heads[1]
    assert "sheet" not in " ".join(_texts(plot_pages(muse, paper="a4")[0]))


def test_header_lines_break_between_findings_and_statements_not_inside_them():
    from ecgfounder.plot import _header_text
    from ecgfounder.signal.leads import STANDARD_12

    stm = ["premature atrial contraction", "sinus tachycardia", "left ventricular high voltage", "t wave abnormal",
           "premature ventricular contractions"]
    found = [("VENTRICULAR-PACED COMPLEXES", 0.61), ("JUNCTIONAL RHYTHM", 0.61), ("ST NO LONGER DEPRESSED IN", 0.61)]
    rec = Recording(np.zeros((12, 5000)), 500.0, STANDARD_12, {"id": "x", "statements": stm})
    lines = _header_text(rec, found, "")[1].split("\n")
    assert 2 < len(lines) <= 6
    for item in stm + [f"{lab} {p:.2f}" for lab, p in found]:
        assert any(item in ln for ln in lines), (item, lines)


def test_findings_shading_the_same_lead_and_seconds_each_keep_a_band_of_their_own():
    """Three findings that looked at the same second of lead I: each shades its own band of the row,
    the first on top (the legend's order), so the later ones do not paint over the first."""
    from matplotlib.collections import PolyCollection
    from matplotlib.transforms import Bbox

    from ecgfounder.signal.leads import STANDARD_12

    rec = Recording(np.zeros((12, 5000)), 500.0, STANDARD_12, {"id": "x"})
    w = np.zeros(5000)
    w[500:1000] = 1.0  # 1-2 s: lead I in the first column
    fig = plot_ecg(rec, shading=[(f"f{k}", {"I": w}) for k in range(3)])
    shades = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    boxes = [Bbox.union([Bbox.from_extents(*p.vertices.min(0), *p.vertices.max(0)) for p in c.get_paths()])
             for c in shades]
    assert len(boxes) == 3
    for i in range(3):
        for j in range(i + 1, 3):  # no area in common: at most a shared edge
            inter = Bbox.intersection(boxes[i], boxes[j])
            assert inter is None or inter.height < 1e-9 or inter.width < 1e-9, (i, j)
    assert boxes[0].y0 > boxes[1].y0 > boxes[2].y0  # the first finding on top
    row_h = 40.0  # the 3x4 layout; lead I is the top row, the shading 90 % of it around the baseline
    assert boxes[0].y1 == pytest.approx(4 * row_h - 0.05 * row_h) and boxes[2].y0 == pytest.approx(3 * row_h + 0.05 * row_h)
    assert all(b.height == pytest.approx(0.9 * row_h / 3) for b in boxes)


def test_cli_plot_predicts_with_a_single_lead_model_on_the_lead_drawn(tmp_path, tiny1, monkeypatch):
    """MIT-BIH 100 has II and V5, no lead I: the error's advice (--lead II) is what plot takes."""
    pytest.importorskip("torch")
    from ecgfounder.cli import main
    from ecgfounder.models.loading import save_model
    import ecgfounder.plot as plot_mod
    from ecgfounder.prediction import predict

    seen, real = {}, plot_mod.save_ecg_sheets
    monkeypatch.setattr(plot_mod, "save_ecg_sheets", lambda rec, path, **kw: seen.update(kw, rec=rec) or real(rec, path, **kw))
    ckpt = save_model(tiny1, tmp_path / "tiny1.safetensors")
    out = tmp_path / "m.png"
    code = main(["plot", str(DATA / "mitdb" / "100.hea"), "-o", str(out), "--predict", "--checkpoint", str(ckpt),
                 "--lead", "II", "--seconds", "10", "--top", "1"])
    assert code == 0 and out.is_file()
    ((label, p),) = seen["findings"]
    want = predict([seen["rec"]], tiny1, lead="II", on_error="raise")
    assert p == pytest.approx(float(want[label].iloc[0]), abs=1e-3)


def test_cli_plot_prints_the_calibrated_probabilities_the_weights_carry(tmp_path, monkeypatch):
    """As the report does: the weights carry a calibration, so the printout's findings are calibrated."""
    pytest.importorskip("torch")
    from ecgfounder.cli import main
    from ecgfounder.explain.calibration import Calibration, attach_calibration
    from ecgfounder.models.loading import load_model, save_model
    import ecgfounder.plot as plot_mod
    from ecgfounder.prediction import predict
    from ecgfounder.testing import tiny_model

    model = tiny_model(12, seed=3)
    attach_calibration(model, Calibration("temperature", tuple(model.labels), temperatures=(5.0,) * len(model.labels),
                                          fitted_on={"split": "val", "n": 50}))
    ckpt = save_model(model, tmp_path / "calibrated.safetensors")
    seen, real = {}, plot_mod.save_ecg_sheets
    monkeypatch.setattr(plot_mod, "save_ecg_sheets", lambda rec, path, **kw: seen.update(kw, rec=rec) or real(rec, path, **kw))
    assert main(["plot", str(MUSE), "-o", str(tmp_path / "e.png"), "--predict", "--checkpoint", str(ckpt), "--top", "2"]) == 0
    net = load_model(ckpt)
    cal = predict([seen["rec"]], net, calibrated=True, on_error="raise")
    raw = predict([seen["rec"]], net, on_error="raise")
    for label, p in seen["findings"]:
        assert p == pytest.approx(float(cal[label].iloc[0]), abs=1e-3)
        assert abs(p - float(raw[label].iloc[0])) > 0.01  # (the calibration moves them: T = 5)
