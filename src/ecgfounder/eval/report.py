"""Evaluation reports: CSV tables, a Markdown and an HTML page, ROC / PR / reliability plots.

API:

``write_report(out_dir, result, y_true=None, y_score=None, *, categories=None, title="Evaluation",
notes=(), extra_tables=None, plots=True) -> dict[str, Path]``
    Writes into ``out_dir``:

    - ``per_label.csv``: every label with its category, counts, threshold, metrics and bounds;
    - ``summary.csv``: macro / weighted / micro summaries with bounds and label counts;
    - ``categories.csv``: macro summaries per clinical category (bootstrap bounds);
    - ``settings.json``: how the numbers were made (bootstrap, seed, thresholds' origin);
    - ``report.md`` and ``report.html``: the same tables, labels grouped by category, undefined
      values written as "undefined", and the notes;
    - ``roc_<category>.png``, ``pr_<category>.png`` and ``reliability.png`` (reliability diagram,
      before/after calibration) when ``y_true`` and ``y_score`` (the evaluated rows) are given and
      ``plots`` is true; ``calibration.csv`` (ECE per label before/after) whenever they are given.
      Curves use the scores as given; scores outside [0, 1] (e.g. logits) get no ECE and no
      reliability diagram;
    - ``<name>.csv`` for each extra table (e.g. labels that cannot be evaluated).

``format_ci(value, lo, hi)`` formats "0.912 (0.890–0.931)" or "undefined";
``format_threshold(t)`` keeps small thresholds readable ("0.00042", never "0.000").

Categories default to the package's clinical categories of the 150 labels
(:func:`ecgfounder.labels.mappings.label_categories`); other labels are "(ungrouped)".
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._fileio import to_jsonable
from .errors import EvaluationError
from .metrics import CLASSIFICATION_METRICS, EvaluationResult, group_summary

__all__ = ["write_report", "write_published_report", "format_ci", "format_value", "format_threshold"]

_METRIC_NAMES = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv": "PPV",
    "npv": "NPV",
    "f1": "F1",
}
_MAX_CURVES = 8


def format_value(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; NaN/None as "undefined"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "undefined"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.{digits}f}"
    return str(v)


def format_threshold(v: Any) -> str:
    """A threshold with at least 3 decimals and 2 significant digits of its distance to 0 and 1
    (``0.00042``, ``0.99996``, ``0.500``), so that it never reads as ``0.000`` or ``1.000``; NaN as "none"."""
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "none"
    v = float(v)
    d = min(abs(v), abs(1.0 - v))
    digits = 3 if d == 0 or not math.isfinite(d) else max(3, 1 - math.floor(math.log10(d)))
    return f"{v:.{digits}f}"


def format_ci(v: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """``value (lo–hi)``; "undefined" for NaN values; the interval omitted when unknown."""
    s = format_value(v, digits)
    if s == "undefined":
        return s
    if lo is None or hi is None or any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return s
    return f"{s} ({float(lo):.{digits}f}–{float(hi):.{digits}f})"


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_") or "group"


def _unique_slug(name: str, used: set[str]) -> str:
    """``_slug(name)``, with ``_2``, ``_3``, ... appended when another name took it (``used`` gains it)."""
    base = _slug(name)
    slug, k = base, 1
    while slug in used:
        k += 1
        slug = f"{base}_{k}"
    used.add(slug)
    return slug


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        cells = [str(v).replace("|", "\\|").replace("\n", " ") for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, classes="t", na_rep="undefined")


def _label_rows(per: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "label": per.index,
            "n_pos": per["n_pos"].astype(int).to_numpy(),
            "n": per["n"].astype(int).to_numpy(),
            "threshold": [format_threshold(v) for v in per["threshold"]],
        }
    )
    if "summarised" in per:
        why = np.where(per["defined"].to_numpy(dtype=bool), "no (too few positives)", "no (undefined)")
        out.insert(3, "in summaries", np.where(per["summarised"].to_numpy(dtype=bool), "yes", why))
    for m in CLASSIFICATION_METRICS:
        out[_METRIC_NAMES[m]] = [format_ci(v, lo, hi) for v, lo, hi in zip(per[m], per[f"{m}_lo"], per[f"{m}_hi"])]
    return out


def _summary_rows(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for kind, r in summary.iterrows():
        row = {"summary": kind, "labels used": int(r["n_labels"]), "labels skipped (undefined)": int(r["n_skipped"]),
               "labels set apart (rare)": int(r.get("n_rare", 0))}
        for m in CLASSIFICATION_METRICS:
            row[_METRIC_NAMES[m]] = format_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def _category_rows(cat: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for g, r in cat.iterrows():
        row = {"category": g, "labels": int(r["n_labels"]), "summarised": int(r["n_defined"]), "positives": int(r["n_pos"])}
        for m in ("auroc", "auprc", "sensitivity", "specificity", "f1"):
            row[f"macro {_METRIC_NAMES[m]}"] = format_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def _plots(out: Path, per: pd.DataFrame, cats: list[str], y: np.ndarray, s: np.ndarray, ev: np.ndarray) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    files: dict[str, Path] = {}
    labels = list(per.index)
    defined = per["defined"].to_numpy(dtype=bool)
    npos = per["n_pos"].to_numpy()
    rare = defined & ~per["summarised"].to_numpy(dtype=bool) if "summarised" in per else np.zeros_like(defined)
    used: set[str] = set()
    for cat in dict.fromkeys(cats):
        idx = [j for j, c in enumerate(cats) if c == cat and defined[j]]
        if not idx:
            continue
        idx = sorted(idx, key=lambda j: -npos[j])[:_MAX_CURVES]
        fig_r, ax_r = plt.subplots(figsize=(5.5, 5))
        fig_p, ax_p = plt.subplots(figsize=(5.5, 5))
        for j in idx:
            m = ev[:, j]
            note = ", too few positives" if rare[j] else ""
            ls = "--" if rare[j] else "-"
            fpr, tpr, _ = roc_curve(y[m, j], s[m, j])
            ax_r.plot(fpr, tpr, lw=1.3, ls=ls, label=f"{labels[j][:38]} ({per['auroc'].iloc[j]:.3f}, n+={npos[j]}{note})")
            prec, rec, _ = precision_recall_curve(y[m, j], s[m, j])
            ax_p.step(rec, prec, where="post", lw=1.3, ls=ls, label=f"{labels[j][:38]} ({per['auprc'].iloc[j]:.3f}, n+={npos[j]}{note})")
        ax_r.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
        ax_r.set(xlabel="1 − specificity", ylabel="sensitivity", title=f"ROC: {cat}", xlim=(0, 1), ylim=(0, 1.01))
        ax_p.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title=f"Precision–recall: {cat}", xlim=(0, 1), ylim=(0, 1.01))
        for ax in (ax_r, ax_p):
            ax.legend(fontsize=6.5, loc="lower right" if ax is ax_r else "upper right")
            ax.grid(alpha=0.3)
        slug = _unique_slug(cat, used)
        for kind, fig in (("roc", fig_r), ("pr", fig_p)):
            f = out / f"{kind}_{slug}.png"
            fig.tight_layout()
            fig.savefig(f, dpi=110)
            plt.close(fig)
            files[f"{kind}:{cat}"] = f
    return files


def _calibration(out: Path, per: pd.DataFrame, y: np.ndarray, before: np.ndarray, after: np.ndarray | None, ev: np.ndarray,
                 st: Mapping[str, Any], plots: bool) -> tuple[dict[str, Path], list[tuple]]:
    """``calibration.csv`` (ECE per label before/after), ``reliability.png`` (pooled over the
    summarised labels) and the report's calibration section; the ECE and the diagram come from
    :mod:`ecgfounder.explain.calibration` (one home for them)."""
    from ..explain.calibration import expected_calibration_error, plot_reliability

    def ece(p: np.ndarray, j: int) -> float:
        m = ev[:, j]
        return float(expected_calibration_error(y[m, j], p[m, j])[0]) if m.any() else float("nan")

    L = len(per)
    tbl = pd.DataFrame({"label": list(per.index), "n": ev.sum(axis=0).astype(int), "n_pos": (y & ev).sum(axis=0).astype(int),
                        "ece_before": [ece(before, j) for j in range(L)],
                        "ece_after": [ece(after, j) for j in range(L)] if after is not None else np.nan})
    files = {"calibration_table": out / "calibration.csv"}
    tbl.to_csv(files["calibration_table"], index=False, float_format="%.6g")
    k = int(st.get("min_positives", 1))
    cols = per["defined"].to_numpy(dtype=bool) & (tbl["n_pos"].to_numpy() >= k)
    if not cols.any():
        cols = per["defined"].to_numpy(dtype=bool)
    keep = ev[:, cols].ravel()
    pooled = {"before": before, "after": after}
    pooled = {name: float(expected_calibration_error(y[:, cols].ravel()[keep], p[:, cols].ravel()[keep])[0])
              for name, p in pooled.items() if p is not None and cols.any()}
    cal = st.get("calibration")
    if cal:
        fitted = cal.get("fitted_on") or {}
        text = (f"Calibrated: {cal.get('method')} per label ({cal.get('source')}"
                + (f"; fitting split '{fitted.get('split')}', {fitted.get('n')} records, never the reported ones" if fitted else "")
                + "). Operating thresholds are chosen on calibrated tuning scores and every metric uses calibrated scores.")
    else:
        text = ("Not calibrated: the model carries no calibration and none was requested (calibrate='temperature' or "
                "'isotonic' fits one on the tuning split); ECE of the scores as predicted.")
    if pooled:
        text += (f" Expected calibration error (15 equal-width bins) pooled over {int(cols.sum())} label(s): before "
                 f"{pooled['before']:.4f}" + (f", after {pooled['after']:.4f}." if "after" in pooled else "."))
    section: list[tuple] = [("h2", "Calibration"), ("text", text)]
    shown = tbl[cols].sort_values("n_pos", ascending=False).head(20)
    if len(shown):
        shown = shown.assign(ece_before=shown["ece_before"].map(format_value), ece_after=shown["ece_after"].map(format_value))
        section.append(("table", shown if after is not None else shown.drop(columns="ece_after")))  # no 'undefined' after
    if plots and cols.any():
        fig = plot_reliability(y[:, cols].ravel()[keep], before[:, cols].ravel()[keep],
                               None if after is None else after[:, cols].ravel()[keep],
                               title=f"Reliability, reported split ({int(cols.sum())} labels pooled{'' if cal else '; not calibrated'})")
        files["reliability"] = out / "reliability.png"
        fig.savefig(files["reliability"], bbox_inches="tight")  # keeps the histogram's axis label inside the image
        section.append(("img", "reliability.png", "reliability diagram"))
    return files, section


def _write_tables(out: Path, result: EvaluationResult, cats: list[str], extra_tables: Mapping[str, pd.DataFrame]) -> dict[str, Path]:
    """The CSV and JSON files of a report."""
    per = result.per_label
    files: dict[str, Path] = {}
    per_out = per.copy()
    per_out.insert(0, "category", cats)
    per_out.to_csv(out / "per_label.csv", index_label="label", float_format="%.12g")
    files["per_label"] = out / "per_label.csv"
    result.summary.to_csv(out / "summary.csv", index_label="summary", float_format="%.12g")
    files["summary"] = out / "summary.csv"
    group_summary(result, dict(zip(per.index, cats))).to_csv(out / "categories.csv", index_label="category", float_format="%.12g")
    files["categories"] = out / "categories.csv"
    (out / "settings.json").write_text(json.dumps(to_jsonable(dict(result.settings)), indent=2, ensure_ascii=False), encoding="utf-8")
    files["settings"] = out / "settings.json"
    used = {"per_label", "summary", "categories", "calibration", "thresholds"}  # the report's own tables
    for name, df in extra_tables.items():
        f = out / f"{_unique_slug(name, used)}.csv"
        df.to_csv(f, index=False)
        files[f"table:{name}"] = f
    return files


def _info_lines(st: Mapping[str, Any]) -> list[str]:
    """How the numbers were made, one sentence each."""
    lines = []
    if st.get("protocol"):
        lines.append(f"Protocol: {st['protocol']}; preprocessing mode: {st.get('preprocessing_mode', 'n/a')}.")
    lines += [
        f"Records evaluated: {st.get('n_records')}; labels: {st.get('n_labels')} "
        f"({len(st.get('undefined_labels', []))} undefined: no positive or no negative record; "
        f"{len(st.get('rare_labels', {}))} rare: fewer than {st.get('min_positives', '?')} positives, listed apart).",
        f"Intervals: {int(round(100 * float(st.get('ci_level', 0.95))))} % {st.get('ci_method', 'percentile')} bootstrap, "
        f"{st.get('n_boot')} resamples of "
        + (f"the {st['n_groups']} patients" if st.get("bootstrap_unit") == "patient" and st.get("n_groups")
           else f"{st.get('bootstrap_unit', 'record')}s")
        + f" (seed {st.get('seed')}); "
        f"AUROC: {st.get('auroc_ci_method', 'percentile bootstrap')}"
        + (f"; a label's sensitivity, specificity, PPV and NPV: {st['proportion_ci_method']}" if st.get("proportion_ci_method") else "")
        + ".",
        f"Operating thresholds: {st.get('threshold_method', 'n/a')}, from {st.get('threshold_source', 'n/a')}.",
    ]
    if st.get("n_excluded_entries"):
        lines.append(f"{st['n_excluded_entries']} (record, label) entries are not evaluable (an ambiguous code could mean the "
                     "label, the record's source database never assessed it, or its stated likelihood is below the "
                     "threshold) and count neither as positives nor as negatives.")
    if st.get("model_fingerprint"):
        lines.append(f"Weights: {st.get('weights') or 'in memory'} (file SHA-256 {str(st.get('weights_sha256') or 'unknown')[:16]}…, "
                     f"model fingerprint {str(st['model_fingerprint'])[:16]}…); ecgfounder {st.get('package_version', '?')}.")
    return lines


def _sections(result: EvaluationResult, cats: list[str], figs: Mapping[str, Path], extra_tables: Mapping[str, pd.DataFrame]) -> list[tuple]:
    """The page as ``(kind, ...)`` items rendered to Markdown and HTML alike."""
    per, st = result.per_label, result.settings
    cat_df = group_summary(result, dict(zip(per.index, cats)))
    label_tbl = _label_rows(per)
    label_tbl.insert(0, "category", cats)
    out: list[tuple] = [("h2", "Summary"), ("table", _summary_rows(result.summary)),
                        ("h2", "By clinical category (macro over summarised labels)"), ("table", _category_rows(cat_df))]
    out.append(("h2", "Labels"))
    for cat in dict.fromkeys(cats):
        out += [("h3", cat), ("table", label_tbl[label_tbl["category"] == cat].drop(columns="category"))]
        out += [("img", figs[f"{k}:{cat}"].name, f"{k} {cat}") for k in ("roc", "pr") if f"{k}:{cat}" in figs]
    composite = per[per["members"].to_numpy() != per.index.to_numpy()] if "members" in per else per.iloc[:0]
    if len(composite):
        out += [("h2", "Composite targets (one finding, several MUSE wordings; score = max of the members)"),
                ("table", pd.DataFrame({"target": composite.index, "members": composite["members"].to_numpy()}))]
    rare = st.get("rare_labels", {})
    if rare:
        out += [("h2", f"Rare labels (fewer than {st.get('min_positives')} positives: shown above, left out of the summaries)"),
                ("table", pd.DataFrame({"label": list(rare), "positives": list(rare.values())}))]
    undefined = st.get("undefined_labels", [])
    if undefined:
        out += [("h2", "Undefined labels"), ("text", "No positive or no negative record among the evaluated ones; shown as "
                                              "'undefined' and left out of the summaries: " + ", ".join(undefined))]
    for name, df in extra_tables.items():
        out += [("h2", name), ("table", df) if len(df) else ("text", "(none)")]
    return out


def _render_md(title: str, bullets: Sequence[str], sections: list[tuple]) -> str:
    md = [f"# {title}", "", *[f"- {x}" for x in bullets], ""]
    for item in sections:
        kind = item[0]
        if kind in ("h2", "h3"):
            md += [("## " if kind == "h2" else "### ") + item[1], ""]
        elif kind == "table":
            md += [_md_table(item[1]), ""]
        elif kind == "img":
            md += [f"![{item[2]}]({item[1]})", ""]
        else:
            md += [item[1], ""]
    return "\n".join(md) + "\n"


def _render_html(title: str, bullets: Sequence[str], sections: list[tuple]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table.t{border-collapse:collapse;font-size:12px;margin-bottom:1em}"
        "table.t td,table.t th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left}"
        "img{max-width:48%;margin:4px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><ul>", *[f"<li>{html.escape(x)}</li>" for x in bullets], "</ul>",
    ]
    for item in sections:
        kind = item[0]
        if kind in ("h2", "h3"):
            parts.append(f"<{kind}>{html.escape(item[1])}</{kind}>")
        elif kind == "table":
            parts.append(_html_table(item[1]))
        elif kind == "img":
            parts.append(f"<img src='{html.escape(item[1])}' alt='{html.escape(item[2])}'>")
        else:
            parts.append(f"<p>{html.escape(item[1])}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    out_dir: str | os.PathLike,
    result: EvaluationResult,
    y_true: np.ndarray | None = None,
    y_score: np.ndarray | None = None,
    *,
    evaluable: np.ndarray | None = None,
    categories: Mapping[str, str] | None = None,
    title: str = "Evaluation",
    notes: Sequence[str] = (),
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    plots: bool = True,
    y_score_before: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write the report files (see module docstring) and return their paths by name.

    Args:
        out_dir: folder (created).
        result: from :func:`~ecgfounder.eval.metrics.evaluate_multilabel`.
        y_true, y_score: ``(n, L)`` truths and probabilities of the evaluated rows, columns in
            ``result.per_label`` order (needed for the plots only).
        evaluable: ``(n, L)`` mask of the entries that count (default all).
        categories: ``label -> category`` (default: the package's table for the 150 labels;
            a composite target takes its first member's category).
        title: page title.
        notes: sentences shown under the title (data caveats, threshold origin, ...).
        extra_tables: ``name -> DataFrame`` written as ``name.csv`` and shown at the end.
        plots: draw the PNG figures.
        y_score_before: the same rows' scores before calibration when ``result.settings`` records
            a ``calibration`` (``y_score`` then holds the calibrated scores).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per = result.per_label
    cats = _categories(per, categories)
    extra = dict(extra_tables or {})
    files = _write_tables(out, result, cats, extra)
    figs: dict[str, Path] = {}
    cal_section: list[tuple] = []
    if y_true is not None and y_score is not None:
        y = np.asarray(y_true).astype(bool)
        raw = np.asarray(y_score, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != len(per) or raw.shape != y.shape:
            raise EvaluationError(f"y_true {y.shape} and y_score {raw.shape} must both be (n, {len(per)}) for the {len(per)} labels of the result.")
        ev = np.ones_like(y) if evaluable is None else np.asarray(evaluable, dtype=bool) | y
        if plots:  # curves from the scores as given: clipping scores outside [0, 1] would tie them
            figs = _plots(out, per, cats, y, raw, ev)
            files.update(figs)
        calibrated = bool(result.settings.get("calibration"))
        before = raw if y_score_before is None or not calibrated else np.asarray(y_score_before, dtype=np.float64)
        if ((before[ev] < 0) | (before[ev] > 1)).any():  # logits or other scales: an ECE would be meaningless
            cal_section = [("h2", "Calibration"), ("text", "Scores outside [0, 1] (not probabilities, e.g. logits): "
                                                           "no expected calibration error or reliability diagram.")]
        else:
            cal_files, cal_section = _calibration(out, per, y, before, raw if calibrated else None, ev, result.settings, plots)
            files.update(cal_files)
    bullets = [*_info_lines(result.settings), *notes]
    sections = _sections(result, cats, figs, extra)
    at = next((i for i, item in enumerate(sections) if item[:2] == ("h2", "Labels")), len(sections))
    sections[at:at] = cal_section
    (out / "report.md").write_text(_render_md(title, bullets, sections), encoding="utf-8")
    (out / "report.html").write_text(_render_html(title, bullets, sections), encoding="utf-8")
    files["markdown"] = out / "report.md"
    files["html"] = out / "report.html"
    return files


def _categories(per: pd.DataFrame, categories: Mapping[str, str] | None) -> list[str]:
    if categories is None:
        from ..labels.mappings import label_categories

        categories = label_categories()
    out = []
    for lab in per.index:
        first = str(per.at[lab, "members"]).split(" + ")[0] if "members" in per else lab
        out.append(categories.get(lab, categories.get(first, "(ungrouped)")))
    return out


def write_published_report(out_dir: str | os.PathLike, table: pd.DataFrame, settings: Mapping[str, Any], *, title: str) -> dict[str, Path]:
    """Report of the authors' protocol (:mod:`.published`): ``per_label.csv``, ``settings.json``
    and ``report.md`` stating the headline, how it was computed and what the protocol does wrong."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "per_label.csv", index_label="label", float_format="%.12g")
    (out / "settings.json").write_text(json.dumps(to_jsonable(dict(settings)), indent=2, ensure_ascii=False), encoding="utf-8")
    st = settings
    md = [
        f"# {title}", "",
        f"- Protocol: published (the authors' ptbxl_eval.py reproduced); preprocessing mode: {st.get('preprocessing_mode')}.",
        f"- Records: {st.get('n_records')} (all folds); labels: {st.get('n_labels')}, {st.get('n_undefined')} without both classes.",
        f"- Headline as the script computes it (undefined AUROC = 0, mean over all labels): {format_value(st.get('mean_auroc_undefined_as_0'))}.",
        f"- Mean AUROC over the labels with both classes: {format_value(st.get('mean_auroc_defined'))}.",
        f"- Thresholds: {st.get('threshold_method')}, chosen on {st.get('threshold_source')}.",
        f"- Weights SHA-256 {str(st.get('weights_sha256', ''))[:16]}…; ecgfounder {st.get('package_version')}.",
        *[f"- {n}" for n in st.get("notes", [])], "",
        "## What this protocol does wrong", "", *[f"- {x}" for x in st.get("flaws", [])], "",
        "## Labels", "", _md_table(table.reset_index().map(lambda v: format_value(v) if isinstance(v, (float, np.floating)) else v)), "",
    ]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return {"per_label": out / "per_label.csv", "settings": out / "settings.json", "markdown": out / "report.md"}
