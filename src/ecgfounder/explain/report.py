"""The report per record: printout with attribution shading, findings, quality, provenance.

:func:`write_reports` writes, for every record of the inputs, ``DIR/<record>.html`` (self-contained:
the printout is an inlined PNG ``data:`` URI, the style inline, nothing fetched) and
``DIR/<record>.pdf`` (the printout at true scale on a landscape A4 or letter sheet, ``paper=``;
then a page with the text).  A report holds:

* the 3×4 + rhythm printout (:func:`ecgfounder.plot.plot_ecg`; for a record of 1–3 leads longer
  than 10 s, the rhythm printout of 60 s in 10-s strips) with the attribution of the top findings
  shaded behind the traces, and leads a quality check flagged marked (a record longer than the
  printout is shown from the whole second where it shows the most of that shading);
* the findings whose (calibrated, where the weights carry a calibration) probability reaches its
  operating threshold, with the leads holding most of its positive attribution (the evidence for
  it, what is shaded) and the 1-s span holding most of it; where one lead's second of negative
  attribution (evidence against it, not shaded) reaches :data:`AGAINST_RATIO` of the strongest
  lead's second for it, a line saying so, worded alike;
* quality flags (:func:`ecgfounder.signal.quality.assess`; flagged leads marked on the printout);
* the model, the SHA-256 of its weights, its preprocessing contract, the package version, and the
  statement that this is not a medical device.

A record that cannot be read or explained is reported in the results and does not stop the batch.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..recording import Recording

__all__ = ["ReportResult", "write_reports", "NOT_A_DEVICE", "DEFAULT_THRESHOLD", "AGAINST_RATIO"]

NOT_A_DEVICE = ("Not a medical device. Research software; outputs have not been validated for clinical use "
                "and must not be used for diagnosis or treatment.")
DEFAULT_THRESHOLD = 0.5
# a finding's evidence against it is named where one lead's second of it reaches this share of the strongest
# lead's second for it: integrated gradients spread some negative mass over every map (20-40 % of a clear
# planted finding's |attribution| in tests/explain's trained model, none of it concentrated: 2-15 %)
AGAINST_RATIO = 0.5
_CALIB_NAMES = {"temperature": "temperature scaling", "isotonic": "isotonic regression"}


@dataclass(frozen=True)
class ReportResult:
    """One record's outcome: its pages, or the reason it has none."""

    record: str
    path: str
    html: Path | None = None
    pdf: Path | None = None
    error: str | None = None


def weights_hash(model: Any) -> str:
    """SHA-256 of the weights: the checkpoint file's (as recorded when loaded), else of the state
    dict (tensor names and bytes in order)."""
    src = dict(model.source or {})
    known = model.description.sha256 or src.get("sha256")
    if known:
        return str(known)
    f = src.get("file")
    if f and Path(str(f)).is_file():  # (remembered in the cache while the file is unchanged: the load hashed it)
        from ..models.weights import sha256_cached

        return sha256_cached(f)
    from ..models.description import weights_digest

    return weights_digest(model)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _model_name(model: Any) -> str:
    src = dict(model.source or {})
    name = model.description.name or src.get("name") or (Path(str(src["file"])).name if src.get("file") else "unnamed weights")
    cfg = model.config
    n = sum(p.numel() for p in model.parameters())
    size = f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,}"  # (a small fine-tuned or test model: not '0.00 M')
    return f"{name} (Net1D, {size} parameters, {_count(cfg.in_channels, 'lead')}, {_count(cfg.n_classes, 'output')})"


def _contract_text(c: Any) -> str:
    lead_txt = ",".join(c.leads) if len(c.leads) <= 12 else f"{len(c.leads)} leads"
    chain = {"published": f"notch {c.notch_hz:g} Hz (Q {c.notch_q:g}), band-pass {c.band_hz[0]:g}-{c.band_hz[1]:g} Hz "
                          f"(order {c.band_order}), median baseline {c.baseline_window_s:g} s, z-score",
             "zscore": "z-score only", "none": "no filtering or normalisation"}[c.mode]
    return f"{c.fs:g} Hz, {c.n_samples} samples ({c.window_s:g} s) windows, leads {lead_txt}; {c.mode}: {chain}"


def _quality(rec: Recording) -> tuple[str, tuple[str, ...]]:
    """(summary text, flagged leads) of :func:`ecgfounder.signal.quality.assess`."""
    from ..signal.quality import assess

    try:
        q = assess(rec)
    except (ValueError, OSError) as exc:
        return f"not assessed ({' '.join(str(exc).split())[:160]})", ()
    flagged = q.flagged_leads()
    return ("good" if q.good else q.summary.replace(";", "; ")), flagged


def _thresholds(labels: Sequence[str], thresholds: Any) -> tuple[np.ndarray, str]:
    if thresholds is None:
        return np.full(len(labels), DEFAULT_THRESHOLD), f"{DEFAULT_THRESHOLD:g} for every label (no operating thresholds given)"
    if isinstance(thresholds, (str, os.PathLike)):
        from ..eval.thresholds import load_thresholds

        ser = load_thresholds(thresholds)
        src = str(thresholds)
    else:
        import pandas as pd

        ser = pd.Series(thresholds, dtype=float)
        src = "given per label"
    thr = np.array([float(ser.get(lab, np.nan)) for lab in labels])
    n_missing = int(np.isnan(thr).sum())
    thr = np.where(np.isnan(thr), DEFAULT_THRESHOLD, thr)
    return thr, src + (f"; {DEFAULT_THRESHOLD:g} for {n_missing} label(s) without one" if n_missing else "")


def _shading(exp: Any, label: str) -> dict[str, np.ndarray]:
    """Per lead weights in [0, 1]: the positive attribution (evidence for ``label``), smoothed over
    40 ms and scaled by its 99th percentile over all leads; below 0.2 of that is left clear."""
    from scipy.ndimage import uniform_filter1d

    a = np.clip(exp[label], 0, None).astype(np.float64)
    a = uniform_filter1d(a, max(1, int(round(0.04 * exp.fs))), axis=-1)
    top = np.percentile(a[a > 0], 99) if np.any(a > 0) else 0.0
    w = np.clip(a / top, 0, 1) if top > 0 else np.zeros_like(a)
    w[w < 0.2] = 0.0
    return {ld: w[i] for i, ld in enumerate(exp.leads)}


def _shown_start(shading: Sequence[tuple[str, Mapping[str, np.ndarray]]], fs: float, n: int,
                 spans: Mapping[str, Sequence[tuple[float, float]]], seconds: float = 10.0) -> float:
    """First second of the 10 s the printout shows: for a longer record, the whole-second start
    at which the printout shows the most shading (of all shaded findings, each lead counted where
    the layout draws it, ``spans``; the earliest on a tie), so that the page shows the leads and
    seconds the model looked at; 0 for records of up to 10 s."""
    from ..signal.leads import canonical_lead

    width = int(round(seconds * fs))
    if n <= width or not shading:
        return 0.0
    starts = np.arange(0, int(np.floor((n - width) / fs)) + 1)  # whole seconds, the 10 s inside the record
    idx = np.rint(starts * fs).astype(int)
    mass = np.zeros(len(starts))
    for _, maps in shading:
        for lead, w in maps.items():
            c = np.concatenate([[0.0], np.cumsum(np.asarray(w, dtype=np.float64)[:n])])
            for a, b in spans.get(canonical_lead(lead), ()):
                lo, hi = np.minimum(idx + int(round(a * fs)), len(c) - 1), np.minimum(idx + int(round(b * fs)), len(c) - 1)
                mass += c[hi] - c[lo]
    return float(starts[int(np.argmax(mass))]) if mass.max() > 0 else 0.0


def _peak_span(a: np.ndarray, fs: float, sign: int = 1) -> tuple[float, float]:
    """The 1-s span (in 0.1-s steps) of a ``(n_leads, n_samples)`` map holding the most positive
    attribution (evidence for, what the printout shades; ``sign=-1``: the most negative, evidence
    against) over all leads: the seconds the model looked at, which the 3×4 layout shows for only
    2.5 s of each lead."""
    total = np.clip(sign * np.asarray(a, dtype=np.float64), 0, None).sum(axis=0)
    n, width = total.size, max(1, int(round(fs)))
    if n <= width:
        return 0.0, n / fs
    c = np.concatenate([[0.0], np.cumsum(total)])
    idx = np.unique(np.r_[np.rint(np.arange(0, (n - width) / fs, 0.1) * fs).astype(int), n - width])
    best = int(idx[int(np.argmax(c[idx + width] - c[idx]))])
    return best / fs, (best + width) / fs


def _strongest_second(part: np.ndarray, fs: float) -> float:
    """The most mass one lead of ``part`` (``(n_leads, n_samples)``, ≥ 0) holds within 1 s."""
    width = min(part.shape[-1], max(1, int(round(fs))))
    c = np.concatenate([np.zeros((len(part), 1)), np.cumsum(part, axis=-1)], axis=-1)
    return float((c[:, width:] - c[:, :-width]).max()) if part.size else 0.0


def _against(a: np.ndarray, leads: Sequence[str], fs: float, k: int = 3) -> tuple[float, list[tuple[str, float]], tuple[float, float]] | None:
    """A finding's evidence against it, where one lead's second of its map's negative part reaches
    :data:`AGAINST_RATIO` of the strongest lead's second of its positive part: ``(the negative part's
    share of the |attribution| mass, the k leads holding most of it with their shares of it, its 1-s
    peak span)``; else ``None``."""
    a = np.asarray(a, dtype=np.float64)
    neg_part = np.clip(-a, 0, None)
    neg, total = neg_part.sum(axis=-1), float(np.abs(a).sum())
    if total <= 0 or neg.sum() <= 0 or \
            _strongest_second(neg_part, fs) < AGAINST_RATIO * _strongest_second(np.clip(a, 0, None), fs):
        return None
    order = np.argsort(-neg, kind="stable")[:k]
    return float(neg.sum() / total), [(str(leads[i]), float(neg[i] / neg.sum())) for i in order], _peak_span(a, fs, -1)


_UNFITTED_MARK = " (not calibrated)"


def _calib_text(cal: Any, unfitted: frozenset[str]) -> str:
    if cal is None:
        return "uncalibrated model scores (the weights carry no calibration)"
    text = (f"calibrated ({_CALIB_NAMES.get(cal.method, cal.method)} fitted on the {cal.fitted_on.get('split', 'validation')} "
            f"split, n={cal.fitted_on.get('n', '?')})")
    if unfitted:
        k = cal.fitted_on.get("min_per_class")
        text += (f"; {len(unfitted)} of {len(cal.labels)} labels left uncalibrated (too few positives or negatives in that "
                 f"split{f', under {k}' if k else ''}): their scores are the model's, marked '{_UNFITTED_MARK.strip()}'")
    return text


def _png_data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = ("body{font-family:DejaVu Sans,Arial,sans-serif;margin:18px;color:#111;max-width:1150px}"
        "h1{font-size:18px;margin:0 0 6px}h2{font-size:14px;margin:14px 0 4px}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #bbb;padding:3px 7px;text-align:left}"
        "th{background:#f2f2f2}img{width:100%;border:1px solid #ddd}.warn{color:#c0392b;font-weight:bold}"
        ".small{font-size:11px;color:#444}.sw{display:inline-block;width:10px;height:10px;margin-right:4px}")


def _num(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{v:.3f}"


def _html_page(title: str, img: str, findings: list[dict], facts: list[tuple[str, str]], notes: Sequence[str]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td><span class='sw' style='background:{f['colour']}'></span>{e(f['label'])}</td>"
        f"<td>{f['prob']:.3f}{f['mark']}</td><td>{f['raw']:.3f}</td><td>{_num(f['thr'])}</td><td>{e(f['leads'])}"
        + (f"<br>{e(f['against'])}" if f.get("against") else "") + "</td></tr>"
        for f in findings)
    table = ("<table><tr><th>finding</th><th>probability / value</th><th>raw score</th><th>threshold</th>"
             f"<th>leads (share of the evidence for it), seconds</th></tr>{rows}</table>") if findings else "<p>No finding reaches its operating threshold.</p>"
    fact_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    note_html = "".join(f"<li>{e(n)}</li>" for n in notes)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
            f"<p class='warn'>{e(NOT_A_DEVICE)}</p><img alt='ECG printout of {e(title)}' src='{img}'>"
            f"<h2>Findings</h2>{table}<h2>Recording and model</h2><table>{fact_rows}</table>"
            + (f"<h2>Notes</h2><ul class='small'>{note_html}</ul>" if notes else "") + "</body></html>\n")


def _text_page(title: str, text: str, paper: str):
    """The report's second PDF page: ``text`` on a landscape sheet of ``paper``."""
    from matplotlib.figure import Figure

    from ..plot import paper_size

    w, h = paper_size(paper)
    fig = Figure(figsize=(w / 25.4, h / 25.4))
    fig.text(12 / w, 1 - 12 / h, title, fontsize=11, fontweight="bold", va="top", ha="left")
    fig.text(12 / w, 1 - 22 / h, text, fontsize=7.5, va="top", ha="left", family="DejaVu Sans", linespacing=1.45)
    return fig


def _pdf_text(findings: list[dict], facts: list[tuple[str, str]], notes: Sequence[str] = (), score: str = "probability") -> str:
    """The findings, facts and notes of the PDF's last page, a line each (long ones wrapped)."""
    lines = [f"Findings ({score} / threshold; leads by share of the evidence for it, shaded):"]
    lines += [ln for f in findings for ln in (f"  {f['label']}: {f['prob']:.3f}{f['mark']} / {_num(f['thr'])}; {f['leads']}",
                                              *([f"    {f['against']}"] if f.get("against") else ()))] \
        or ["  none reaches its operating threshold"]
    lines += [f"{k}: {v}" for k, v in facts]
    lines += [f"note: {n}" for n in notes]  # what the printout alone does not show (zero-filled leads, padding, ...)
    lines.append(NOT_A_DEVICE)
    return "\n".join(textwrap.fill(ln, 150, subsequent_indent="      ") for ln in lines)


def _one_record(rec: Recording, shown: str, model: Any, ctx: dict, out_dir: Path, stem: str) -> ReportResult:
    from ..plot import RHYTHM_SECONDS, SHADE_COLOURS, default_layout, lead_spans, plot_ecg, plot_pages, save_pdf_pages
    from ..signal.leads import canonical_lead
    from ..plot_text import seconds_text
    from ..prediction import predict
    from .attribution import check_length, contract_of, explain
    from .calibration import apply_calibration

    check_length(rec, contract_of(model))  # (before the prediction: a Holter file is refused at once)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what preprocessing noticed comes back in the notes of explain()
        # fp32 torch: the exact path the attribution runs too; no first-use measurement of the faster ones (~30 s)
        df = predict([rec], model, on_error="raise", precision="fp32", backend="torch", **ctx["prep"])
    labels = ctx["labels"]
    raw = df[list(labels)].to_numpy(dtype=np.float64)[0]
    prob = apply_calibration(raw, ctx["calibration"]) if ctx["calibration"] is not None else raw
    task = dict(model.task_meta or {}).get("task", "multilabel")
    if task == "regression":  # a value per output, no threshold
        above, thresholds = list(range(len(labels))), np.full(len(labels), np.nan)
    elif task == "multiclass":  # the most probable class is the finding
        above, thresholds = [int(np.argmax(prob))], np.full(len(labels), np.nan)
    else:
        thresholds = ctx["thresholds"]
        above = [int(i) for i in np.argsort(-prob, kind="stable") if prob[i] >= thresholds[i]]
    shown_idx = above[: ctx["top"]]
    notes = []
    if not shown_idx:
        shown_idx = [int(np.argmax(prob))]
        notes.append(f"no finding reaches its threshold; the shading shows the highest-scoring label "
                     f"({labels[shown_idx[0]]}) for reference")
    exp = explain(rec, model, labels=shown_idx, method=ctx["method"], n_steps=ctx["n_steps"], **ctx["prep"])
    shares = exp.summary(3, positive_only=True)  # evidence for the finding: what the printout shades
    spans = {lab: _peak_span(exp[lab], exp.fs) for lab in exp.labels}
    against = {lab: _against(exp[lab], exp.leads, exp.fs) for lab in exp.labels}
    shading = [(labels[i], _shading(exp, labels[i])) for i in shown_idx[:len(SHADE_COLOURS)]]  # (a colour each)
    layout = default_layout(rec, ctx["paper"])  # a long record of 1-3 leads: the rhythm printout
    seconds = RHYTHM_SECONDS if layout == "rhythm" else 10.0  # (rhythm: the most shaded minute)
    drawn = lead_spans(rec, layout, seconds=seconds)
    start = _shown_start(shading, rec.fs, rec.n_samples, drawn, seconds)
    end = min(start + seconds, rec.duration)

    def leads_and_span(top_leads: Sequence[tuple[str, float]], span: tuple[float, float]) -> str:
        leads = (", ".join(f"{ld} {s:.0%}" for ld, s in top_leads if s >= 0.005) or "no lead") if exp.lead_resolved \
            else "leads not resolved (Grad-CAM)"  # its time map is spread evenly: equal shares name no lead
        a, b = span  # (the printout shows start-end s: say where the peak is not on it)
        off = "" if start - 1e-6 <= a and b <= end + 1e-6 else " partly" if a < end and b > start else " not"
        if off:
            return leads + f"; most in {a:.1f}-{b:.1f} s ({off[1:]} on the printout of {seconds_text(start)}-{seconds_text(end)} s)"
        first = top_leads[0][0] if exp.lead_resolved and top_leads else None  # the lead named first: drawn then?
        segs = [(start + x, min(start + y, end)) for x, y in drawn.get(canonical_lead(first), ())] if first else []
        elsewhere = segs and not any(x < b and y > a for x, y in segs)
        return leads + f"; most in {a:.1f}-{b:.1f} s" + (
            f" ({first} is drawn at {', '.join(f'{seconds_text(x)}-{seconds_text(y)}' for x, y in segs)} s)" if elsewhere else "")

    def where(lab: str) -> str:
        if lab not in shares:
            return "(not shaded)"
        if not any(s > 0 for _, s in shares[lab]):
            return "no evidence for it in the map (its attribution is all against it)"
        return leads_and_span(shares[lab], spans[lab])

    def where_against(lab: str) -> str:  # the evidence against a finding, worded as its evidence for
        if lab not in against or against[lab] is None:
            return ""
        part, top_leads, span = against[lab]
        return f"evidence against ({part:.0%} of the attribution mass): {leads_and_span(top_leads, span)}"

    findings = [dict(label=labels[i], prob=float(prob[i]), raw=float(raw[i]), thr=float(thresholds[i]),
                     mark=_UNFITTED_MARK if labels[i] in ctx["unfitted"] else "",
                     colour=SHADE_COLOURS[k] if k < len(SHADE_COLOURS) and i in shown_idx else "#ffffff",
                     leads=where(labels[i]), against=where_against(labels[i]))
                for k, i in enumerate(above[: max(ctx["top"], 10)])]
    q_text, flagged = _quality(rec)
    method_txt = {"ig": f"integrated gradients of the logit, {exp.n_steps} steps, baseline {exp.baseline}",
                  "gradcam": f"Grad-CAM on {exp.layer} (time only, spread over leads)",
                  "guided_gradcam": f"guided Grad-CAM on {exp.layer}"}[ctx["method"]]
    facts = [("record", f"{rec.id or stem}  ({shown})"),
             ("signal", f"{rec.fs:g} Hz, {rec.duration:.1f} s, {_count(len(rec.leads), 'lead')}"),
             ("quality", q_text + (f" (flagged: {', '.join(flagged)})" if flagged and ", ".join(flagged) not in q_text else "")),
             ("model", ctx["model_name"]), ("weights SHA-256", ctx["sha"]), ("preprocessing", ctx["contract"]),
             ("probabilities", ctx["calib_text"]),
             ("operating thresholds", {"regression": "none (regression head: predicted values are shown)",
                                       "multiclass": "none (multi-class head: the most probable class is the finding)"}
              .get(task, ctx["thr_text"])),
             ("attribution", method_txt), ("software", f"ecgfounder {ctx['version']}; report {ctx['when']}")]
    notes += list(exp.notes)
    if len(shown_idx) > len(SHADE_COLOURS):
        notes.append(f"the printout shades {len(SHADE_COLOURS)} findings at most: "
                     f"{', '.join(labels[i] for i in shown_idx[len(SHADE_COLOURS):])} not shaded (their leads are listed)")
    derived = [str(x) for x in (rec.meta.get("derived_leads") or ())]
    if derived:
        notes.append(f"lead(s) {', '.join(derived)} derived from I and II (not stored in the file)")
    if rec.meta.get("truncated_from_s"):  # (--max-duration: the file is longer than what was read)
        notes.append(f"only the first {rec.duration:.1f} s of the {float(rec.meta['truncated_from_s']):.1f}-s recording "
                     "were read (max_duration); the findings are of that part")
    if rec.duration > seconds:
        notes.append(f"the printout shows {seconds_text(start)}-{seconds_text(end)} s of the {rec.duration:.1f}-s record"
                     + (", where it shows the most of the shaded attribution" if start > 0 else ""))
    title = f"ECG report: {rec.id or stem}"
    # the header lists the findings --top asks for, as the shading legend does (the header caps its lines)
    kw = dict(shading=shading, flagged_leads=flagged, findings=[(f["label"] + f["mark"], f["prob"]) for f in findings[:ctx["top"]]],
              start=start, layout=layout, **({"seconds": seconds} if layout == "rhythm" else {}))
    fig = plot_ecg(rec, **kw)
    html_path, pdf_path = out_dir / f"{stem}.html", out_dir / f"{stem}.pdf"
    html_path.write_text(_html_page(title, _png_data_uri(fig), findings, facts, notes), encoding="utf-8")
    score = {"regression": "predicted value"}.get(task, "uncalibrated probability" if ctx["calibration"] is None else
                                                  "calibrated probability" + (" (where not marked otherwise)"
                                                                              if any(f["mark"] for f in findings) else ""))
    sheets = plot_pages(rec, paper=ctx["paper"], footer=f"{score.capitalize()}, threshold and the leads of each "
                        f"finding, the recording, the model and notes: last page.\n{NOT_A_DEVICE}", **kw)
    text = _text_page(title, _pdf_text(findings, facts, notes, score), ctx["paper"])
    save_pdf_pages([*sheets, text], pdf_path, {"Title": title, "Creator": f"ecgfounder {ctx['version']}"})
    return ReportResult(rec.id or stem, shown, html_path, pdf_path)


def write_reports(
    inputs: Iterable[Any],
    model: Any = "12-lead",
    out_dir: str | os.PathLike = "reports",
    *,
    top: int = 3,
    thresholds: Any = None,
    method: str = "ig",
    n_steps: int = 32,
    read_kwargs: Mapping[str, Any] | None = None,
    lead: str | None = None,
    fill_missing: bool = False,
    device: str = "cpu",
    paper: str = "a4",
) -> list[ReportResult]:
    """Write one HTML page and one PDF per record of ``inputs`` into ``out_dir``: the PDF's first
    page is the printout on a landscape sheet of ``paper`` at true scale (``"a4"`` or ``"letter"``:
    printed at 100 % it measures like a cardiograph's; strips of more leads than a sheet holds take
    more sheets), the last the findings, the recording, the model and the notes.

    Args:
        inputs: files, directories (recursed) or :class:`~ecgfounder.Recording` objects.
        model: a loaded model, a weights name or a checkpoint path.
        top: findings shaded on the printout (the highest above their thresholds).
        thresholds: operating thresholds: a CSV from ``ecgfounder evaluate`` (``thresholds.csv``),
            or ``{label: threshold}``; default 0.5 (stated on the page).
        method, n_steps: attribution (see :func:`ecgfounder.explain`).
        read_kwargs: reading options for files that need them (``fs``, ``leads``, ...).
        lead, fill_missing, device: as in :func:`ecgfounder.predict`.
        paper: the sheet of the PDF's pages (:data:`ecgfounder.plot.PAPERS`).

    Returns one :class:`ReportResult` per record (failed ones with ``error`` set).
    """
    from .. import __version__
    from ..io import find_records, iter_read
    from ..prediction import resolve_model
    from .attribution import ExplainError, check_options, contract_of, output_labels
    from ..plot import paper_size
    from .calibration import calibration_of

    check_options(method, n_steps)  # refused once, not once per record
    paper_size(paper)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExplainError(f"out_dir={str(out)!r} is a file; the reports (RECORD.html and RECORD.pdf) go into a folder: "
                           "pass a folder path (it is created if needed).")
    if out.suffix.lower() in (".pdf", ".html", ".htm", ".png", ".svg") and not out.is_dir():
        raise ExplainError(f"out_dir={str(out)!r} looks like a file name; write_reports writes RECORD.html and RECORD.pdf "
                           f"into a folder: pass a folder path such as {str(out.with_suffix(''))!r}.")
    net = resolve_model(model)
    labels = output_labels(net)
    calib = calibration_of(net)
    unfitted = frozenset() if calib is None else calib.unchanged
    thr, thr_text = _thresholds(labels, thresholds)
    ctx = dict(labels=labels, calibration=calib, thresholds=thr, thr_text=thr_text, top=max(1, int(top)),
               method=method, n_steps=n_steps, paper=paper, prep={"lead": lead, "fill_missing": fill_missing, "device": device},
               model_name=_model_name(net), sha=weights_hash(net), contract=_contract_text(contract_of(net)),
               version=__version__, when=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               unfitted=unfitted, calib_text=_calib_text(calib, unfitted))
    out.mkdir(parents=True, exist_ok=True)
    results: list[ReportResult] = []
    used: set[str] = set()
    items = [inputs] if isinstance(inputs, (str, os.PathLike, Recording)) else list(inputs)
    for item in items:
        sources = [(str(item.meta.get("source") or item.id or "recording"), item)] if isinstance(item, Recording) \
            else [(str(p), p) for p in find_records([item])]
        for shown, src in sources:
            try:
                recs = [src] if isinstance(src, Recording) else iter_read(src, errors="yield", **dict(read_kwargs or {}))
                for rec in recs:
                    if not isinstance(rec, Recording):  # an archive's file that cannot be read: a failure of its own
                        results.append(ReportResult(Path(rec.member or shown).stem, shown, error=" ".join(str(rec).split())))
                        continue
                    base = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (rec.id or Path(shown).stem)) or "record"
                    stem, k = base, 1
                    while stem in used:
                        k += 1
                        stem = f"{base}_{k}"
                    used.add(stem)
                    results.append(_one_record(rec, shown, net, ctx, out, stem))
            except (ValueError, OSError) as exc:
                results.append(ReportResult(Path(shown).stem, shown, error=" ".join(str(exc).split())))
    return results
