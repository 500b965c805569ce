"""The printout's text: the header blocks over the grid and the scale line, shading legend and
footer under it, wrapped to the grid's width in millimetres (:mod:`ecgfounder.plot` draws them)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .recording import Recording

__all__ = ["header_text", "under_text", "seconds_text", "HEADER_LINES"]

_CAL_W = 10.0         # mm of grid before each row, holding the calibration pulse
_LINE_MM = 3.4        # footer line height
_LABEL_H = 5.0        # mm under the grid for the speed/gain line
HEADER_LINES = 6      # lines of each header block (24 mm)
_RIGHT_AT = 0.42      # where the header's right block starts, as a fraction of the grid's width


def seconds_text(x: float) -> str:
    """Seconds into a recording as printed: to the millisecond, no exponent and no trailing zeros
    (``f"{x:g}"`` would print 172800.5 as "172800" and 1036800 as "1.0368e+06": days-long Holters)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _dx_names(codes) -> list[str]:
    """SNOMED-CT diagnosis codes (WFDB ``Dx`` comments of the CinC data) as readable names."""
    from .labels.mappings import snomed_mapping

    names = {r.code: r.description for r in snomed_mapping().rows}
    return [names.get(str(c), str(c)) for c in codes]


def _mm(text: str, size: float) -> float:
    """Width in mm of one line of ``text`` set at ``size`` pt in the default font (DejaVu Sans)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    return text_to_path.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0] * 25.4 / 72


def _wrap(units: Sequence[str], width: float, size: float) -> list[str]:
    """``units`` joined by spaces into lines at most ``width`` mm wide at ``size`` pt: a unit goes
    whole onto the next line when it does not fit; one wider than a line is broken at its spaces,
    then after its commas and semicolons, then anywhere."""
    import re

    toks: list[tuple[str, str]] = []  # (text, glue to the previous token on the same line)
    for u in units:
        for word in ([u] if _mm(u, size) <= width else u.split(" ")):
            glue = " "
            for part in ([word] if _mm(word, size) <= width else [q for q in re.split(r"(?<=[,;])", word) if q]):
                while len(part) > 1 and _mm(part, size) > width:
                    n = next(k for k in range(len(part) - 1, 0, -1) if _mm(part[:k], size) <= width or k == 1)
                    toks.append((part[:n], glue))
                    part, glue = part[n:], ""
                toks.append((part, glue))
                glue = ""
    lines: list[str] = []
    for text, glue in toks:
        if lines and _mm(lines[-1] + glue + text, size) <= width:
            lines[-1] += glue + text
        else:
            lines.append(text)
    return lines


def _cap(lines: list[str], n: int, width: float, size: float) -> list[str]:
    """The first ``n`` of ``lines``, the last one ending in " …" when lines were left out."""
    if len(lines) <= n or n <= 0:
        return lines[:max(n, 0)]
    last = lines[n - 1]
    while last and _mm(last + " …", size) > width:
        last = last[:-1]
    return lines[:n - 1] + [last.rstrip() + " …"]


def header_text(rec: Recording, findings, extra: str, title: str | None = None,
                 width: float = _CAL_W + 250.0) -> tuple[str, str]:
    """(left, right) header blocks of a drawing ``width`` mm wide, each wrapped to its column (the
    right one starts at 0.42 of the width) and at most :data:`HEADER_LINES` lines."""
    m = rec.meta
    left = [title or str(m.get("id") or Path(str(m.get("source", ""))).stem or "ECG")]
    who = []
    if m.get("patient_id"):
        who.append(f"patient {m['patient_id']}")
    if m.get("age") is not None:
        who.append(f"{float(m['age']):g} y")
    if m.get("sex"):
        who.append(str(m["sex"]))
    if who:
        left.append(", ".join(who))
    when = ", ".join(str(m[k]) for k in ("acquired", "device") if m.get(k))
    if when:
        left.append(when)
    stored, derived = len(rec.stored_leads), len(rec.leads) - len(rec.stored_leads)
    count = f"{stored} lead{'s' if stored != 1 else ''}" + (f" (+{derived} derived)" if derived else "")
    left.append(f"{rec.fs:g} Hz, {rec.duration:.1f} s, {count}{extra}")
    r_w, right = width * (1 - _RIGHT_AT), []
    stm = [str(s) for s in (m.get("statements") or _dx_names(m.get("dx") or ()))]
    for prefix, items, sep in (("Predicted: ", [f"{lab} {p:.2f}" for lab, p in findings or ()], ";"),
                               ("File: ", stm, " |")):
        if items:  # each item kept whole on a line where it fits
            units = [prefix + items[0]] + items[1:]
            lines = _wrap([u + sep for u in units[:-1]] + units[-1:], r_w, 7.5)
            right += _cap(lines, HEADER_LINES - len(right), r_w, 7.5)
    l_w = width * _RIGHT_AT - 3 if right else width
    lines = [ln for x in left for ln in _wrap([x], l_w, 8)]
    return "\n".join(_cap(lines, HEADER_LINES, l_w, 8)), "\n".join(right)


def cal_width(speed: float) -> float:
    """Millimetres of grid before each row: the calibration pulse (200 ms wide: 5 mm at 25 mm/s, 10 at
    50) with its margins; :data:`_CAL_W` at 25 mm/s and below."""
    return max(_CAL_W, 0.2 * speed + 5.0)


def under_text(footer: str | None, names: Sequence[str], speed: float, gain: float) -> tuple[str, list, list[str], float]:
    """What goes under the grid: the scale line, the rows of the shading legend (``[(x mm, text),
    ...]`` per row, left of the scale), the footer's lines wrapped to the grid's width, and the
    millimetres they take."""
    scale, width = f"{speed:g} mm/s   {gain:g} mm/mV", cal_width(speed) + 10 * speed
    avail, rows, x = width - _mm(scale, 7) - 5, [], 0.0
    for name in names:
        s = _cap(_wrap(["\u25a0 " + name], avail, 7), 1, avail, 7)[0]
        w = _mm(s, 7)
        if not rows or x + w > avail:
            rows.append([])
            x = 0.0
        rows[-1].append((x, s))
        x += w + 5
    lines = [ln for part in (footer.split("\n") if footer else ()) for ln in _wrap([part], width, 7)]
    return scale, rows, lines, _LABEL_H + max(0, len(rows) - 1) * _LINE_MM + (len(lines) * _LINE_MM + 3 if lines else 0)
