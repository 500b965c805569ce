"""The one-page report per record: printout with attribution shading, findings, quality, provenance.

:func:`write_reports` writes, for every record of the inputs, ``DIR/<record>.html`` (self-contained:
the printout is an inlined PNG ``data:`` URI, the style inline, nothing fetched) and
``DIR/<record>.pdf`` (one page: the printout with the same text under it).  A page holds:

* the 3×4 + rhythm printout (:func:`ecgfounder.plot.plot_ecg`) with the attribution of the top
  findings shaded behind the traces, and leads a quality check flagged marked;
* the findings whose (calibrated, where the weights carry a calibration) probability reaches its
  operating threshold, with the leads holding most attribution;
* quality flags (:func:`ecgfounder.signal.quality.assess`; flagged leads marked on the printout);
* the model, the SHA-256 of its weights, its preprocessing contract, the package version, and the
  statement that this is not a medical device.

A record that cannot be read or explained is reported in the results and does not stop the batch.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..recording import Recording

__all__ = ["ReportResult", "write_reports", "NOT_A_DEVICE", "DEFAULT_THRESHOLD"]

NOT_A_DEVICE = ("Not a medical device. Research software; outputs have not been validated for clinical use "
                "and must not be used for diagnosis or treatment.")
DEFAULT_THRESHOLD = 0.5


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
    if f and Path(str(f)).is_file():
        from ..models.weights import sha256_file

        return sha256_file(f)
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu").float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _model_name(model: Any) -> str:
    src = dict(model.source or {})
    name = model.description.name or src.get("name") or (Path(str(src["file"])).name if src.get("file") else "unnamed weights")
    cfg = model.config
    return f"{name} (Net1D, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {cfg.in_channels} leads, {cfg.n_classes} outputs)"


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
        f"<td>{f['prob']:.3f}</td><td>{f['raw']:.3f}</td><td>{_num(f['thr'])}</td><td>{e(f['leads'])}</td></tr>"
        for f in findings)
    table = ("<table><tr><th>finding</th><th>probability / value</th><th>raw score</th><th>threshold</th>"
             f"<th>leads (attribution share)</th></tr>{rows}</table>") if findings else "<p>No finding reaches its operating threshold.</p>"
    fact_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    note_html = "".join(f"<li>{e(n)}</li>" for n in notes)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
            f"<p class='warn'>{e(NOT_A_DEVICE)}</p><img alt='ECG printout of {e(title)}' src='{img}'>"
            f"<h2>Findings</h2>{table}<h2>Recording and model</h2><table>{fact_rows}</table>"
            + (f"<h2>Notes</h2><ul class='small'>{note_html}</ul>" if notes else "") + "</body></html>\n")


def _pdf_footer(findings: list[dict], facts: list[tuple[str, str]]) -> str:
    lines = ["Findings (probability / threshold; leads by attribution share):"]
    lines += [f"  {f['label']}: {f['prob']:.3f} / {_num(f['thr'])}; {f['leads']}" for f in findings] or ["  none reaches its operating threshold"]
    lines += [f"{k}: {v}" for k, v in facts]
    lines.append(NOT_A_DEVICE)
    return "\n".join(ln if len(ln) <= 175 else ln[:172] + "..." for ln in lines)


def _one_record(rec: Recording, shown: str, model: Any, ctx: dict, out_dir: Path, stem: str) -> ReportResult:
    from ..plot import SHADE_COLOURS, plot_ecg
    from ..prediction import predict
    from .attribution import explain
    from .calibration import apply_calibration

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what preprocessing noticed comes back in the notes of explain()
        df = predict([rec], model, on_error="raise", **ctx["prep"])
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
    shares = exp.summary(3)
    findings = [dict(label=labels[i], prob=float(prob[i]), raw=float(raw[i]), thr=float(thresholds[i]),
                     colour=SHADE_COLOURS[k] if k < len(SHADE_COLOURS) and i in shown_idx else "#ffffff",
                     leads=", ".join(f"{ld} {s:.0%}" for ld, s in shares.get(labels[i], [])) or "(not shaded)")
                for k, i in enumerate(above[: max(ctx["top"], 10)])]
    q_text, flagged = _quality(rec)
    method_txt = {"ig": f"integrated gradients of the logit, {exp.n_steps} steps, baseline {exp.baseline}",
                  "gradcam": f"Grad-CAM on {exp.layer} (time only, spread over leads)",
                  "guided_gradcam": f"guided Grad-CAM on {exp.layer}"}[ctx["method"]]
    facts = [("record", f"{rec.id or stem}  ({shown})"),
             ("signal", f"{rec.fs:g} Hz, {rec.duration:.1f} s, {len(rec.leads)} leads"),
             ("quality", q_text + (f" (flagged: {', '.join(flagged)})" if flagged and ", ".join(flagged) not in q_text else "")),
             ("model", ctx["model_name"]), ("weights SHA-256", ctx["sha"]), ("preprocessing", ctx["contract"]),
             ("probabilities", ctx["calib_text"]),
             ("operating thresholds", {"regression": "none (regression head: predicted values are shown)",
                                       "multiclass": "none (multi-class head: the most probable class is the finding)"}
              .get(task, ctx["thr_text"])),
             ("attribution", method_txt), ("software", f"ecgfounder {ctx['version']}; report {ctx['when']}")]
    notes += list(exp.notes)
    shading = [(labels[i], _shading(exp, labels[i])) for i in shown_idx]
    title = f"ECG report: {rec.id or stem}"
    kw = dict(shading=shading, flagged_leads=flagged, findings=[(f["label"], f["prob"]) for f in findings[:3]])
    fig = plot_ecg(rec, **kw)
    html_path, pdf_path = out_dir / f"{stem}.html", out_dir / f"{stem}.pdf"
    html_path.write_text(_html_page(title, _png_data_uri(fig), findings, facts, notes), encoding="utf-8")
    page = plot_ecg(rec, footer=_pdf_footer(findings, facts), **kw)
    page.savefig(pdf_path, facecolor="white", metadata={"Title": title, "Creator": f"ecgfounder {ctx['version']}"})
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
) -> list[ReportResult]:
    """Write one HTML and one PDF page per record of ``inputs`` into ``out_dir``.

    Args:
        inputs: files, directories (recursed) or :class:`~ecgfounder.Recording` objects.
        model: a loaded model, a weights name or a checkpoint path.
        top: findings shaded on the printout (the highest above their thresholds).
        thresholds: operating thresholds: a CSV from ``ecgfounder evaluate`` (``thresholds.csv``),
            or ``{label: threshold}``; default 0.5 (stated on the page).
        method, n_steps: attribution (see :func:`ecgfounder.explain`).
        read_kwargs: reading options for files that need them (``fs``, ``leads``, ...).
        lead, fill_missing, device: as in :func:`ecgfounder.predict`.

    Returns one :class:`ReportResult` per record (failed ones with ``error`` set).
    """
    from .. import __version__
    from ..io import find_records, iter_read
    from ..prediction import resolve_model
    from .attribution import contract_of, output_labels
    from .calibration import calibration_of

    net = resolve_model(model)
    labels = output_labels(net)
    calib = calibration_of(net)
    thr, thr_text = _thresholds(labels, thresholds)
    ctx = dict(labels=labels, calibration=calib, thresholds=thr, thr_text=thr_text, top=max(1, int(top)),
               method=method, n_steps=n_steps, prep={"lead": lead, "fill_missing": fill_missing, "device": device},
               model_name=_model_name(net), sha=weights_hash(net), contract=_contract_text(contract_of(net)),
               version=__version__, when=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               calib_text=(f"calibrated ({calib.method} scaling fitted on the {calib.fitted_on.get('split', 'validation')} split, "
                           f"n={calib.fitted_on.get('n', '?')})" if calib else "uncalibrated model scores (the weights carry no calibration)"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: list[ReportResult] = []
    used: set[str] = set()
    items = [inputs] if isinstance(inputs, (str, os.PathLike, Recording)) else list(inputs)
    for item in items:
        sources = [(str(item.meta.get("source") or item.id or "recording"), item)] if isinstance(item, Recording) \
            else [(str(p), p) for p in find_records([item])]
        for shown, src in sources:
            try:
                recs = [src] if isinstance(src, Recording) else iter_read(src, **dict(read_kwargs or {}))
                for rec in recs:
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
