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
    real = plot_mod.save_ecg_plot

    def spy(rec, path, **kw):
        seen.update(kw)
        return real(rec, path, **kw)

    monkeypatch.setattr(plot_mod, "save_ecg_plot", spy)
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
