"""ECG printouts with matplotlib: the standard 12-lead paper layout and single-lead strips.

The page is drawn in millimetres at true paper scale (25 mm/s, 10 mm/mV by default) on a
1-mm/5-mm grid, so a PDF or SVG printed at 100 % measures like a cardiograph's output.

* ``layout="12lead"``: 3 rows × 4 columns of 2.5 s (I, II, III | aVR, aVL, aVF | V1–V3 | V4–V6),
  time running on across the columns, plus a 10-s lead-II rhythm strip, each row starting with a
  1-mV calibration pulse.
* ``layout="strips"``: one full-width strip per lead (for non-standard recordings).
* ``layout="rhythm"``: consecutive 10-s strips of 1–3 leads one under another, each labelled with its
  seconds, over ``seconds`` (default 60) and onto further sheets (:func:`plot_pages`): the printout of
  a long single-lead (phone, patch, Holter) recording.

Each lead is drawn relative to its median over the shown window (display only; the recording is
not changed) and stops at the grid's edges; the header, legend and footer are wrapped to the page.
``findings`` (label, probability) pairs, e.g. from :func:`ecgfounder.prediction.predict`, are
printed in the header.

Overlays (used by the per-record report, :mod:`ecgfounder.explain.report`): ``shading`` colours the
background of each lead where an attribution map is high (one colour per finding, intensity =
weight in [0, 1] at the recording's samples), ``flagged_leads`` marks leads a quality check flagged
(red name and frame), and ``footer`` prints lines of text under the grid.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import numpy as np

from .errors import ECGFounderError
from .plot_text import _LABEL_H, _LINE_MM, _RIGHT_AT, cal_width, header_text as _header_text, seconds_text as _s, under_text as _under
from .recording import Recording
from .signal.leads import STANDARD_12, canonical_lead, complete_limb_leads

__all__ = ["plot_ecg", "plot_pages", "save_ecg_plot", "save_ecg_sheets", "save_pdf_pages", "lead_spans", "check_start", "paper_size", "LAYOUTS", "PAPERS",
           "PlotError", "default_layout", "RHYTHM_SECONDS"]

LAYOUTS = ("12lead", "strips", "rhythm")
_GRID_MINOR = "#f4c6c6"
_GRID_MAJOR = "#e38b8b"
_TRACE = "#111111"
_COLUMNS = (("I", "II", "III"), ("aVR", "aVL", "aVF"), ("V1", "V2", "V3"), ("V4", "V5", "V6"))
_MARGIN = 10.0        # mm around the grid
_HEADER = 24.0        # mm above the grid for text
RHYTHM_SECONDS = 60.0  # s: what a rhythm printout shows unless seconds= is given
_RHYTHM_ROW = 25.0    # mm: rhythm strips a sheet holds are counted at this height (6 on A4, then stretched)
_MAX_STRIPS = 120     # rhythm strips in one printout at most (20 A4 sheets of one lead): never a whole Holter
_FLAG = "#c0392b"
SHADE_COLOURS = ("#f39c12", "#2e86c1", "#27ae60", "#8e44ad")  # one per shaded finding
_MIN_MARGIN = 5.0     # mm: the least margin on a sheet of paper (printers leave ~4 mm unprinted)
_MIN_ROW = 20.0       # mm: strips on a sheet are made no lower (±1 mV at 10 mm/mV)
#: landscape sheets (width, height) in mm for ``paper=``
PAPERS = {"a4": (297.0, 210.0), "letter": (279.4, 215.9)}


class PlotError(ECGFounderError, ValueError):
    """A printout that cannot be drawn or saved as asked (layout, leads, start, output path)."""


def check_start(rec: Recording, start: float) -> None:
    """Refuse a ``start`` (seconds) outside ``rec`` (NaN included): before any costly work too."""
    if not 0 <= start < rec.duration:  # (NaN fails too)
        raise PlotError(f"start={start} s is outside the recording (0 to {rec.duration:.2f} s); pick a start within it.")


def _window(rec: Recording, start: float, seconds: float) -> tuple[np.ndarray, float]:
    fs = rec.fs
    check_start(rec, start)
    i0 = int(round(start * fs))
    i1 = min(rec.n_samples, i0 + int(round(seconds * fs)))
    return rec.signal[:, i0:i1], start


def _lead_rows(rec: Recording, sig: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical lead name -> samples (the first of a name given twice), III/aVR/aVL/aVF derived from
    I and II when missing (the readers' rule)."""
    full, names, _ = complete_limb_leads(sig, rec.leads)
    return {name: full[k] for k, name in reversed(list(enumerate(names)))}


def _grid(ax, x0: float, x1: float, y0: float, y1: float) -> None:
    from matplotlib.collections import LineCollection

    def lines(step: float):
        xs = np.arange(x0, x1 + 1e-6, step)
        ys = np.arange(y0, y1 + 1e-6, step)
        return [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]

    ax.add_collection(LineCollection(lines(1.0), colors=_GRID_MINOR, linewidths=0.25, zorder=0))
    ax.add_collection(LineCollection(lines(5.0), colors=_GRID_MAJOR, linewidths=0.6, zorder=1))


def _cal_pulse(ax, x: float, y: float, gain: float, speed: float) -> None:
    """A 1-mV, 200-ms standardisation pulse (at 25 mm/s and 10 mm/mV: 5 mm wide, 10 mm tall)."""
    w = 0.2 * speed
    xs = [x + 1, x + 2.5, x + 2.5, x + 2.5 + w, x + 2.5 + w, x + cal_width(speed) - 1]
    ys = [y, y, y + gain, y + gain, y, y]
    ax.plot(xs, ys, color=_TRACE, linewidth=0.8, zorder=3)


def _trace(ax, x0: float, y0: float, v: np.ndarray, fs: float, speed: float, gain: float, clip: float) -> None:
    finite = np.isfinite(v)
    if not finite.any():
        return
    base = float(np.median(v[finite]))  # NaN samples (gaps) break the line; they must not blank the whole trace
    y = np.clip((v - base) * gain, -clip, clip)
    x = x0 + np.arange(v.size) / fs * speed
    ax.plot(x, y0 + y, color=_TRACE, linewidth=0.6, zorder=3, solid_joinstyle="round")


def _shade_boxes(x0: float, lo: float, hi: float, w: np.ndarray | None, fs: float, speed: float) -> list[tuple]:
    """Rectangles ``(vertices, level)`` from ``lo`` to ``hi`` (mm) of background shading where ``w``
    (values in [0, 1], one per sample) is high: 10-ms bins (their maximum) in four levels, runs merged."""
    if w is None or w.size == 0 or not np.any(w > 0):
        return []
    step = max(1, int(round(0.01 * fs)))
    n = -(-w.size // step)
    binned = np.zeros(n * step)
    binned[:w.size] = np.clip(w, 0.0, 1.0)
    q = np.ceil(binned.reshape(n, step).max(axis=1) * 4).astype(int)
    cut = np.flatnonzero(np.diff(q)) + 1
    out = []
    for a, b in zip(np.r_[0, cut], np.r_[cut, n]):
        if q[a]:
            xa, xb = x0 + a * step / fs * speed, x0 + min(b * step, w.size) / fs * speed
            out.append((((xa, lo), (xb, lo), (xb, hi), (xa, hi)), int(q[a])))
    return out


def _flag(ax, x0: float, y0: float, width: float, half: float) -> None:
    xs = [x0 + 0.4, x0 + width - 0.4, x0 + width - 0.4, x0 + 0.4, x0 + 0.4]
    ys = [y0 - half, y0 - half, y0 + half, y0 + half, y0 - half]
    ax.plot(xs, ys, color=_FLAG, linewidth=0.7, linestyle="--", zorder=4)


def _sheet_text(below: float) -> float:
    """Millimetres of a sheet's height not for the rows: margins, the header, ``below``."""
    return 2 * _MIN_MARGIN + _HEADER + below


def paper_size(paper: str) -> tuple[float, float]:
    """(width, height) in mm of the landscape sheet ``paper`` names; refuses another name."""
    if paper not in PAPERS:
        raise PlotError(f"paper={paper!r}; choose one of {tuple(PAPERS)} (landscape sheets), or None for a page "
                        "sized to the drawing.")
    return PAPERS[paper]


def _strips_per_sheet(avail: float, n_leads: int) -> int:
    """Rhythm strips of each of ``n_leads`` leads in ``avail`` mm of rows (counted at :data:`_RHYTHM_ROW`)."""
    return max(1, int(avail // (n_leads * _RHYTHM_ROW)))


def _page(paper: str | None, grid_w: float, n_rows: int, row_h: float, below: float,
          speed: float, group: int = 0) -> tuple[float, float, float, float, tuple[float, float]]:
    """(row height, side margin, top margin, bottom margin, (page width, height)) in mm, ``below``
    being the text under the grid: the page sized to the drawing (``paper=None``), or a landscape
    sheet of ``paper`` with the drawing centred, strips made lower (down to :data:`_MIN_ROW`) where
    their rows would not fit."""
    if paper is None:
        bottom = _MIN_MARGIN + below
        return row_h, _MARGIN, _MARGIN, bottom, (grid_w + 2 * _MARGIN, _MARGIN + _HEADER + n_rows * row_h + bottom)
    page_w, page_h = paper_size(paper)
    if grid_w + 2 * _MIN_MARGIN > page_w:
        raise PlotError(f"10 s at speed={speed:g} mm/s ({grid_w:g} mm with the calibration pulse) do not fit the "
                        f"{page_w:g}-mm width of a {paper} sheet; use speed=25 or paper=None.")
    fixed = _sheet_text(below)  # (group: a rhythm sheet of a longer printout, rows as high as a full sheet's)
    full = group * _strips_per_sheet(page_h - fixed, group) if group else 0
    row_h = max(_MIN_ROW, min(row_h, (page_h - fixed) / max(n_rows, full)))
    page_h = max(page_h, fixed + n_rows * row_h)  # more strips than a sheet holds: the page grows (documented)
    extra = (page_h - fixed - n_rows * row_h) / 2
    return row_h, (page_w - grid_w) / 2, _MIN_MARGIN + extra, _MIN_MARGIN + below + extra, (page_w, page_h)


def default_layout(recording: Recording, paper: str | None = None) -> str:
    """The layout :func:`plot_ecg` draws unless told: ``"12lead"`` when I, II and V1–V6 are present,
    ``"rhythm"`` for a recording of at most 3 leads (leads derived on reading not counted) longer than
    10 s on a sheet of ``paper``, ``"strips"`` otherwise."""
    names = {canonical_lead(x) for x in recording.leads}
    if {"I", "II"} <= names and {"V1", "V2", "V3", "V4", "V5", "V6"} <= names:
        return "12lead"
    return "rhythm" if paper and len(recording.stored_leads) <= 3 and recording.duration > 10.0 + 1e-9 else "strips"


def _rhythm_seconds(rec: Recording, start: float, seconds: float | None, n_leads: int) -> float:
    """Seconds a rhythm printout shows from ``start``: ``seconds`` (default 60) or to the recording's
    end; refused when not positive or when its strips would pass :data:`_MAX_STRIPS`."""
    check_start(rec, start)
    if seconds is None:
        seconds = RHYTHM_SECONDS
    if not seconds > 0 or not np.isfinite(seconds):  # (NaN fails too)
        raise PlotError(f"seconds={seconds} (CLI: --seconds {seconds}) must be a positive number of seconds; "
                        f"leave it out for {RHYTHM_SECONDS:g} s.")
    shown = min(float(seconds), rec.duration - start)
    strips = int(np.ceil(shown / 10 - 1e-9)) * n_leads
    if strips > _MAX_STRIPS:
        most = _MAX_STRIPS // n_leads * 10
        raise PlotError(f"seconds={seconds:g} (CLI: --seconds {seconds:g}) of {n_leads} lead(s) make {strips} strips "
                        f"of 10 s; a rhythm printout holds at most {_MAX_STRIPS} (20 A4 sheets): ask for at most "
                        f"{most} s, from a later start for a later part of the recording.")
    return shown


def _shown_leads(recording: Recording, layout: str, leads: Sequence[str] | None) -> Sequence[str]:
    """The leads a strips or rhythm layout draws: ``leads``, else all (rhythm: those stored in the file)."""
    return leads or (recording.stored_leads if layout == "rhythm" else recording.leads)


def lead_spans(recording: Recording, layout: str | None = None, rhythm_lead: str = "II",
               leads: Sequence[str] | None = None, seconds: float = 10.0) -> dict[str, list[tuple[float, float]]]:
    """Where :func:`plot_ecg` draws each lead: canonical lead name -> ``[(from, to), ...]`` seconds
    after ``start`` (the 3×4 layout shows each lead for 2.5 s, the rhythm lead for all 10; the rhythm
    layout each lead for all ``seconds``)."""
    layout = layout or default_layout(recording)
    if layout == "12lead":
        seg = seconds / 4
        spans = {name: [(c * seg, (c + 1) * seg)] for c, col in enumerate(_COLUMNS) for name in col}
        spans.setdefault(canonical_lead(rhythm_lead), []).append((0.0, seconds))
        return spans
    return {canonical_lead(x): [(0.0, seconds)]
            for x in _shown_leads(recording, layout, leads)}


def plot_ecg(
    recording: Recording,
    *,
    layout: str | None = None,
    leads: Sequence[str] | None = None,
    rhythm_lead: str = "II",
    start: float = 0.0,
    findings: Sequence[tuple[str, float]] | None = None,
    speed: float = 25.0,
    gain: float = 10.0,
    title: str | None = None,
    shading: Sequence[tuple[str, Mapping[str, np.ndarray]]] | None = None,
    flagged_leads: Sequence[str] = (),
    footer: str | None = None,
    paper: str | None = None,
    sheet: tuple[int, int] | None = None,
    seconds: float | None = None,
):
    """Draw ``recording`` as an ECG printout; returns the matplotlib ``Figure``.

    Args:
        recording: signal in mV, any rate.
        layout: ``"12lead"`` (3×4 + rhythm strip), ``"strips"`` (one 10-s strip per lead) or
            ``"rhythm"`` (consecutive 10-s strips, labelled with their seconds; for several leads the
            leads of each 10 s lie one under another, time-aligned as on a multichannel Holter strip,
            so that a beat can be read across leads); default: :func:`default_layout`.
        leads: for ``"strips"`` and ``"rhythm"``, the leads to draw (default: all; rhythm: those stored
            in the file, at most 3).
        rhythm_lead: lead of the full-length strip under the 12-lead grid.
        start: first second shown.
        seconds: ``"rhythm"`` only: seconds shown from ``start`` (default 60, or to the recording's
            end), at most 120 strips of 10 s; :func:`plot_pages` puts them on as many sheets as needed.
        findings: ``[(label, probability), ...]`` to print in the header (e.g. the model's top 3).
        speed: paper speed in mm/s.  gain: amplitude scale in mm/mV.
        title: replaces the record id in the header.
        shading: ``[(finding, {lead: weights}), ...]``: per finding (up to 4, coloured
            :data:`SHADE_COLOURS` in order) and lead, weights in [0, 1] on the recording's samples, drawn
            behind the trace; several findings each in a band of the row (first on top): none hides another.
        flagged_leads: leads to mark as flagged by a quality check (red name, dashed frame).
        footer: text printed under the grid (the page grows to hold it).
        paper: ``"a4"`` or ``"letter"`` (:data:`PAPERS`): a landscape sheet of that size, the drawing
            centred on it at the same true scale, so a PDF printed at 100 % fills the paper it names;
            strips are drawn lower (down to 20 mm a row) to fit, and a page of more strips than that
            holds grows taller than the sheet.  ``None`` (default): a page sized to the drawing.
        sheet: ``(k, n)``: printed in the header as "sheet k of n" (:func:`plot_pages` sets it).
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    layout = layout or default_layout(recording, paper)
    if layout not in LAYOUTS:
        raise PlotError(f"layout={layout!r}; choose one of {LAYOUTS}.")
    if layout != "rhythm" and seconds is not None:
        raise PlotError(f"seconds={seconds:g} is for layout='rhythm' (CLI: --layout rhythm); the {layout} layout "
                        "shows 10 s: leave seconds out.")
    sel = [canonical_lead(x) for x in _shown_leads(recording, layout, leads)]
    if layout == "rhythm" and len(sel) > 3:
        raise PlotError(f"layout='rhythm' draws 1 to 3 leads, not {len(sel)}; choose them with leads= "
                        "(CLI: --lead NAME), or use layout='strips'.")
    seconds = _rhythm_seconds(recording, start, seconds, len(sel)) if layout == "rhythm" else 10.0
    sig, t0 = _window(recording, start, seconds)
    fs = recording.fs
    i0 = int(round(t0 * fs))
    shades = [(name, colour, {canonical_lead(k): np.asarray(v, float)[i0:i0 + sig.shape[1]] for k, v in maps.items()})
              for (name, maps), colour in zip(shading or (), SHADE_COLOURS)]
    flagged = {canonical_lead(x) for x in flagged_leads}
    shown = sig.shape[1] / fs
    width, cal = 10.0 * speed, cal_width(speed)
    rows = _lead_rows(recording, sig)
    if layout == "12lead":
        missing = [x for x in STANDARD_12 if x not in rows]
        if missing:
            raise PlotError(
                f"the 12-lead layout needs leads {missing} (the recording has {list(recording.leads)}); "
                "use layout='strips' (CLI: --layout strips)."
            )
        rl = canonical_lead(rhythm_lead)
        if rl not in rows:
            raise PlotError(f"rhythm lead {rhythm_lead!r} is not in the recording; it has {list(recording.leads)}.")
        n_rows, row_h = 4, 40.0
    else:
        for x in sel:
            if x not in rows:
                raise PlotError(f"lead {x!r} is not in the recording; it has {list(recording.leads)}.")
        n_rows, row_h = len(sel), 30.0 if len(sel) > 3 else 40.0
        if layout == "rhythm":  # strip k: seconds 10k..10k+10 of every lead, the leads one under another
            strips = [(k, name) for k in range(int(np.ceil(shown / 10 - 1e-9))) for name in sel]
            n_rows, row_h = len(strips), 30.0
    grid_w = cal + width
    scale, legend, foot, below = _under(footer, [name for name, _, _ in shades], speed, gain)
    row_h, side, top, bottom, (page_w, page_h) = _page(paper, grid_w, n_rows, row_h, below, speed,
                                                       len(sel) if layout == "rhythm" and sheet else 0)
    if layout == "rhythm" and paper:  # a sheet of fewer strips (the last) starts at the top, as the others
        top, bottom = _MIN_MARGIN, bottom + top - _MIN_MARGIN
    grid_h = n_rows * row_h
    fig = Figure(figsize=(page_w / 25.4, page_h / 25.4), dpi=150)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-side, grid_w + side)
    ax.set_ylim(-bottom, grid_h + _HEADER + top)
    ax.set_aspect("equal")
    ax.axis("off")
    _grid(ax, 0, grid_w, 0, grid_h)
    clip = row_h * 0.95
    label_kw = dict(fontsize=8, fontweight="bold", zorder=4, va="bottom", ha="left",  # (over tall waves: readable)
                    bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none", alpha=0.75))

    def baseline(r: int) -> float:
        return grid_h - (r + 0.5) * row_h

    boxes: list[list[tuple]] = [[] for _ in shades]

    def overlay(name: str, x0: float, y0: float, a: int, b: int | None, span: float) -> None:
        for k, (_, _, maps) in enumerate(shades):  # finding k: band k of the row, top down (legend order)
            w, hi = maps.get(name), y0 + row_h * 0.45 * (1 - 2 * k / len(shades))
            boxes[k] += _shade_boxes(x0, hi - row_h * 0.9 / len(shades), hi, None if w is None else w[a:b], fs, speed)
        if name in flagged:
            _flag(ax, x0, y0, span, row_h * 0.45)

    def lead_label(x: float, y: float, name: str, after: str = "") -> None:  # after: a rhythm strip's seconds
        bad = name in flagged
        ax.text(x, y, name + after + (" (flagged)" if bad else ""), **{**label_kw, "color": _FLAG if bad else _TRACE})

    if layout == "12lead":
        seg = seconds / 4
        n_seg = int(round(seg * fs))
        for c, col in enumerate(_COLUMNS):
            x0 = cal + c * seg * speed
            for r, name in enumerate(col):
                v = rows[name][c * n_seg:(c + 1) * n_seg]
                overlay(name, x0, baseline(r), c * n_seg, (c + 1) * n_seg, seg * speed)
                _trace(ax, x0, baseline(r), v, fs, speed, gain, clip)
                lead_label(x0 + 1.5, baseline(r) + 0.28 * row_h, name)
                if c:
                    ax.plot([x0, x0], [baseline(r) - 3, baseline(r) + 3], color=_TRACE, linewidth=0.8, zorder=3)
        for r in range(4):
            _cal_pulse(ax, 0, baseline(r), gain, speed)
        overlay(rl, cal, baseline(3), 0, None, width)
        _trace(ax, cal, baseline(3), rows[rl], fs, speed, gain, clip)
        lead_label(cal + 1.5, baseline(3) + 0.28 * row_h, rl)
    elif layout == "rhythm":
        n10 = int(round(10 * fs))
        for r, (k, name) in enumerate(strips):
            a, b = k * n10, min((k + 1) * n10, sig.shape[1])
            _cal_pulse(ax, 0, baseline(r), gain, speed)
            overlay(name, cal, baseline(r), a, b, (b - a) / fs * speed)
            _trace(ax, cal, baseline(r), rows[name][a:b], fs, speed, gain, clip)
            lead_label(cal + 1.5, baseline(r) + 0.3 * row_h, name, f"  {_s(t0 + a / fs)}–{_s(t0 + b / fs)} s")
    else:
        for r, name in enumerate(sel):
            _cal_pulse(ax, 0, baseline(r), gain, speed)
            overlay(name, cal, baseline(r), 0, None, width)
            _trace(ax, cal, baseline(r), rows[name], fs, speed, gain, clip)
            lead_label(cal + 1.5, baseline(r) + 0.3 * row_h, name)
    from matplotlib.patches import Rectangle

    frame = Rectangle((0, 0), grid_w, grid_h, transform=ax.transData)
    for line in ax.lines:  # a tall complex stops at the grid's edge, off the header, footer and page edge
        line.set_clip_path(frame)
    extra = f", shown {_s(t0)}–{_s(t0 + shown)} s" if (t0 > 0 or recording.duration > seconds + 1e-9) else ""
    extra += f", sheet {sheet[0]} of {sheet[1]}" if sheet else ""
    left, right = _header_text(recording, findings, extra, title, grid_w)
    top = grid_h + _HEADER - 2
    ax.text(0, top, left, fontsize=8, va="top", ha="left", zorder=4)
    if right:
        ax.text(grid_w * _RIGHT_AT, top, right, fontsize=7.5, va="top", ha="left", zorder=4)
    ax.text(grid_w, -2, scale, fontsize=7, va="top", ha="right", zorder=4)
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb

    for (_, colour, _), found in zip(shades, boxes):  # one vector collection per finding: crisp and cheap
        if found:
            rgba = [(*to_rgb(colour), 0.14 * level) for _, level in found]
            ax.add_collection(PolyCollection([v for v, _ in found], facecolors=rgba, linewidths=0, zorder=2))
    colours = iter(colour for _, colour, _ in shades)
    for k, row in enumerate(legend):
        for x, text in row:
            ax.text(x, -2 - k * _LINE_MM, text, color=next(colours), fontsize=7, va="top", ha="left", zorder=4)
    if foot:
        ax.text(0, -_LABEL_H - 1 - max(0, len(legend) - 1) * _LINE_MM, "\n".join(foot), fontsize=7, va="top",
                ha="left", zorder=4, linespacing=1.35)
    return fig


def save_ecg_plot(recording: Recording, path: str | os.PathLike, **kwargs) -> Path:
    """:func:`plot_ecg` saved to ``path`` (.png, .pdf or .svg, by extension); returns the path (of the
    first sheet: see :func:`save_ecg_sheets`, which this calls)."""
    return save_ecg_sheets(recording, path, **kwargs)[0]


def save_ecg_sheets(recording: Recording, path: str | os.PathLike, **kwargs) -> list[Path]:
    """:func:`plot_ecg` saved to ``path`` (.png, .pdf or .svg, by extension) on as many sheets of
    ``paper`` as :func:`plot_pages` draws: a PDF holds them as its pages; a PNG or SVG is one image a
    sheet, the first at ``path`` and sheet k at ``<stem>-k<ext>`` (an image is not a sheet of paper
    if it grows taller than one); the further sheets an earlier, longer plot to ``path`` left are
    removed (:func:`_remove_stale_sheets`).  Returns the paths written, in sheet order."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".png", ".pdf", ".svg"):
        raise PlotError(f"cannot save a plot as {ext or '(no extension)'!r} ({p}); use a .png, .pdf or .svg path.")
    if p.is_dir():
        raise PlotError(f"{p} is a folder; give a file path ending in .png, .pdf or .svg (e.g. {p / 'ecg.png'}).")
    p.parent.mkdir(parents=True, exist_ok=True)
    figures = plot_pages(recording, **kwargs) if kwargs.get("paper") else [plot_ecg(recording, **kwargs)]
    if ext == ".pdf":
        save_pdf_pages(figures, p)
        return [p]
    paths = [p] + [p.with_name(f"{p.stem}-{k}{p.suffix}") for k in range(2, len(figures) + 1)]
    for k, (fig, out) in enumerate(zip(figures, paths), 1):
        fig.savefig(out, dpi=200 if ext == ".png" else None, facecolor="white",
                    metadata={"Description": _sheet_mark(p, k)})
    _remove_stale_sheets(p, len(paths))
    return paths


def _sheet_mark(p: Path, k: int) -> str:
    """What sheet ``k`` of a plot to ``p`` carries in its metadata (what a later plot may remove): the
    output's name percent-encoded (ASCII: the same bytes in a PNG text chunk and in SVG) and quoted."""
    return f'ecgfounder ECG sheet {k} of "{quote(p.name, safe="")}"'


def _remove_stale_sheets(p: Path, n: int) -> None:
    """Remove ``<stem>-k<ext>`` for k = n+1, n+2, ... while each is a file marked as sheet k of a plot
    to ``p`` (:func:`_sheet_mark`): a sheet run has no gaps, so the first other file or name ends it; a
    file no plot to ``p`` wrote (another recording's plot to ``<stem>-k<ext>``, one unreadable) stays."""
    k = n + 1
    while (q := p.with_name(f"{p.stem}-{k}{p.suffix}")).is_file() and not q.is_symlink():
        try:
            with open(q, "rb") as f:  # (the mark sits in the first kilobytes: PNG text chunk, SVG metadata)
                if _sheet_mark(p, k).encode() not in f.read(1 << 16):
                    return
        except OSError:  # (not known to be a sheet: kept)
            return
        try:
            q.unlink()
        except OSError as exc:
            raise PlotError(f"{q}: sheet {k} of an earlier plot to {p.name}, beyond this one's {n}, cannot be "
                            f"removed ({exc.strerror or exc}); remove it by hand.") from None
        k += 1


def plot_pages(recording: Recording, **kwargs) -> list:
    """:func:`plot_ecg` as sheets of ``paper``: more strips than one sheet holds (rows of at least
    20 mm; rhythm strips: 6 of one lead on A4) go on as many sheets as they need, each with the header
    ("sheet k of n") and ``footer``; one figure otherwise (and for ``paper=None``)."""
    paper, layout = kwargs.get("paper"), kwargs.get("layout") or default_layout(recording, kwargs.get("paper"))
    if paper is None or layout not in ("strips", "rhythm"):
        return [plot_ecg(recording, **kwargs)]
    sel = list(_shown_leads(recording, layout, kwargs.get("leads")))
    names = [name for name, _ in (kwargs.get("shading") or ())][:len(SHADE_COLOURS)]
    below = _under(kwargs.get("footer"), names, kwargs.get("speed", 25.0), kwargs.get("gain", 10.0))[3]
    avail = paper_size(paper)[1] - _sheet_text(below)
    if layout == "rhythm" and len(sel) <= 3:  # (more leads: plot_ecg refuses them)
        start = kwargs.get("start", 0.0)
        shown = _rhythm_seconds(recording, start, kwargs.get("seconds"), len(sel))
        per_s = 10 * _strips_per_sheet(avail, len(sel))  # seconds a sheet holds
        firsts = np.arange(0, shown - 1e-9, per_s)
        return [plot_ecg(recording, **{**kwargs, "layout": "rhythm", "start": start + a,
                                       "seconds": min(per_s, shown - a),
                                       "sheet": (i + 1, len(firsts)) if len(firsts) > 1 else None})
                for i, a in enumerate(firsts)]
    per = max(1, int(avail // _MIN_ROW))
    starts = range(0, len(sel), per)
    return [plot_ecg(recording, **{**kwargs, "layout": "strips", "leads": sel[k:k + per],
                                   "sheet": (i + 1, len(starts)) if len(starts) > 1 else None})
            for i, k in enumerate(starts)]


def save_pdf_pages(figures: Sequence, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """``figures`` as the pages of one PDF file."""
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path, metadata=dict(metadata or {})) as pdf:
        for fig in figures:
            pdf.savefig(fig, facecolor="white")
