"""Evaluation reports: CSV tables, a Markdown and an HTML page, ROC / PR / calibration plots.

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
    - ``roc_<category>.png``, ``pr_<category>.png`` and ``calibration.png`` when ``y_true`` and
      ``y_score`` (the evaluated rows) are given and ``plots`` is true;
    - ``<name>.csv`` for each extra table (e.g. labels that cannot be evaluated).

``format_ci(value, lo, hi)`` formats "0.912 (0.890–0.931)" or "undefined".

Categories default to the package's clinical categories of the 150 labels
(:func:`ecgfounder.labels.mappings.label_categories`); other labels are "(ungrouped)".
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .metrics import CLASSIFICATION_METRICS, EvaluationResult, group_summary

__all__ = ["write_report", "format_ci", "format_value"]

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


def format_ci(v: Any, lo: Any, hi: Any, digits: int = 3) -> str:
    """``value (lo–hi)``; "undefined" for NaN values; the interval omitted when unknown."""
    s = format_value(v, digits)
    if s == "undefined":
        return s
    if lo is None or hi is None or any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return s
    return f"{s} ({float(lo):.{digits}f}–{float(hi):.{digits}f})"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "group"


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
            "threshold": [format_value(v, 3) if not (isinstance(v, float) and math.isnan(v)) else "none" for v in per["threshold"]],
        }
    )
    for m in CLASSIFICATION_METRICS:
        out[_METRIC_NAMES[m]] = [format_ci(v, lo, hi) for v, lo, hi in zip(per[m], per[f"{m}_lo"], per[f"{m}_hi"])]
    return out


def _summary_rows(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for kind, r in summary.iterrows():
        row = {"summary": kind, "labels used": int(r["n_labels"]), "labels skipped (undefined)": int(r["n_skipped"])}
        for m in CLASSIFICATION_METRICS:
            row[_METRIC_NAMES[m]] = format_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def _category_rows(cat: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for g, r in cat.iterrows():
        row = {"category": g, "labels": int(r["n_labels"]), "defined": int(r["n_defined"]), "positives": int(r["n_pos"])}
        for m in ("auroc", "auprc", "sensitivity", "specificity", "f1"):
            row[f"macro {_METRIC_NAMES[m]}"] = format_ci(r[m], r[f"{m}_lo"], r[f"{m}_hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def _plots(out: Path, per: pd.DataFrame, cats: list[str], y: np.ndarray, s: np.ndarray) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    files: dict[str, Path] = {}
    labels = list(per.index)
    defined = per["defined"].to_numpy(dtype=bool)
    npos = per["n_pos"].to_numpy()
    for cat in dict.fromkeys(cats):
        idx = [j for j, c in enumerate(cats) if c == cat and defined[j]]
        if not idx:
            continue
        idx = sorted(idx, key=lambda j: -npos[j])[:_MAX_CURVES]
        fig_r, ax_r = plt.subplots(figsize=(5.5, 5))
        fig_p, ax_p = plt.subplots(figsize=(5.5, 5))
        for j in idx:
            fpr, tpr, _ = roc_curve(y[:, j], s[:, j])
            ax_r.plot(fpr, tpr, lw=1.3, label=f"{labels[j][:38]} ({per['auroc'].iloc[j]:.3f}, n+={npos[j]})")
            prec, rec, _ = precision_recall_curve(y[:, j], s[:, j])
            ax_p.step(rec, prec, where="post", lw=1.3, label=f"{labels[j][:38]} ({per['auprc'].iloc[j]:.3f})")
        ax_r.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
        ax_r.set(xlabel="1 − specificity", ylabel="sensitivity", title=f"ROC: {cat}", xlim=(0, 1), ylim=(0, 1.01))
        ax_p.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title=f"Precision–recall: {cat}", xlim=(0, 1), ylim=(0, 1.01))
        for ax in (ax_r, ax_p):
            ax.legend(fontsize=6.5, loc="lower right" if ax is ax_r else "upper right")
            ax.grid(alpha=0.3)
        for kind, fig in (("roc", fig_r), ("pr", fig_p)):
            f = out / f"{kind}_{_slug(cat)}.png"
            fig.tight_layout()
            fig.savefig(f, dpi=110)
            plt.close(fig)
            files[f"{kind}:{cat}"] = f
    # calibration: pooled over defined labels, and per category with enough positives
    if defined.any():
        fig, ax = plt.subplots(figsize=(5.5, 5))
        yy = y[:, defined].ravel()
        ss = np.clip(s[:, defined].ravel(), 0.0, 1.0)
        frac, mean = calibration_curve(yy, ss, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, "o-", lw=1.8, c="k", label=f"all defined labels ({int(defined.sum())})")
        for cat in dict.fromkeys(cats):
            cols = np.array([c == cat for c in cats]) & defined
            if cols.sum() == 0 or y[:, cols].sum() < 20:
                continue
            fr, mn = calibration_curve(y[:, cols].ravel(), np.clip(s[:, cols].ravel(), 0, 1), n_bins=10, strategy="quantile")
            ax.plot(mn, fr, ".-", lw=1, label=cat)
        ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
        ax.set(xlabel="mean predicted probability (decile bins)", ylabel="observed frequency", title="Calibration", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        f = out / "calibration.png"
        fig.tight_layout()
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files["calibration"] = f
    return files


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if math.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_report(
    out_dir: str | os.PathLike,
    result: EvaluationResult,
    y_true: np.ndarray | None = None,
    y_score: np.ndarray | None = None,
    *,
    categories: Mapping[str, str] | None = None,
    title: str = "Evaluation",
    notes: Sequence[str] = (),
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the report files (see module docstring) and return their paths by name.

    Args:
        out_dir: folder (created).
        result: from :func:`~ecgfounder.eval.metrics.evaluate_multilabel`.
        y_true, y_score: ``(n, L)`` truths and probabilities of the evaluated rows, columns in
            ``result.per_label`` order (needed for the plots only).
        categories: ``label -> category`` (default: the package's table for the 150 labels).
        title: page title.
        notes: sentences shown under the title (data caveats, threshold origin, ...).
        extra_tables: ``name -> DataFrame`` written as ``name.csv`` and shown at the end.
        plots: draw the PNG figures.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per = result.per_label
    if categories is None:
        from ..labels.mappings import label_categories

        categories = label_categories()
    cats = [categories.get(lab, "(ungrouped)") for lab in per.index]
    files: dict[str, Path] = {}

    per_out = per.copy()
    per_out.insert(0, "category", cats)
    per_out.to_csv(out / "per_label.csv", index_label="label", float_format="%.12g")
    files["per_label"] = out / "per_label.csv"
    result.summary.to_csv(out / "summary.csv", index_label="summary", float_format="%.12g")
    files["summary"] = out / "summary.csv"
    cat_df = group_summary(result, dict(zip(per.index, cats)))
    cat_df.to_csv(out / "categories.csv", index_label="category", float_format="%.12g")
    files["categories"] = out / "categories.csv"
    settings = dict(result.settings)
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=_json_default, ensure_ascii=False), encoding="utf-8")
    files["settings"] = out / "settings.json"
    for name, df in (extra_tables or {}).items():
        f = out / f"{_slug(name)}.csv"
        df.to_csv(f, index=False)
        files[f"table:{name}"] = f

    figs: dict[str, Path] = {}
    if plots and y_true is not None and y_score is not None:
        y = np.asarray(y_true).astype(bool)
        s = np.asarray(y_score, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != len(per) or s.shape != y.shape:
            raise ValueError(f"y_true {y.shape} and y_score {s.shape} must both be (n, {len(per)}) for the {len(per)} labels of the result.")
        figs = _plots(out, per, cats, y, s)
        files.update(figs)

    # ---- text ----
    st = settings
    unit = st.get("bootstrap_unit", "record")
    lines_info = [
        f"Records evaluated: {st.get('n_records')}; labels: {st.get('n_labels')} "
        f"({len(st.get('undefined_labels', []))} undefined: no positive or no negative record).",
        f"Intervals: {int(round(100 * float(st.get('ci_level', 0.95))))} % {st.get('ci_method', 'percentile')} bootstrap, "
        f"{st.get('n_boot')} resamples of {unit}s (seed {st.get('seed')}).",
        f"Operating thresholds: {st.get('threshold_method', 'n/a')}, from {st.get('threshold_source', 'n/a')}.",
    ]
    summ_tbl = _summary_rows(result.summary)
    cat_tbl = _category_rows(cat_df)
    label_tbl = _label_rows(per)
    label_tbl.insert(0, "category", cats)

    md = [f"# {title}", ""]
    md += [f"- {x}" for x in lines_info] + [f"- {x}" for x in notes] + [""]
    md += ["## Summary", "", _md_table(summ_tbl), ""]
    md += ["## By clinical category (macro over defined labels)", "", _md_table(cat_tbl), ""]
    if "calibration" in figs:
        md += ["![calibration](calibration.png)", ""]
    html_parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table.t{border-collapse:collapse;font-size:12px;margin-bottom:1em}"
        "table.t td,table.t th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left}"
        "img{max-width:48%;margin:4px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><ul>",
        *[f"<li>{html.escape(x)}</li>" for x in [*lines_info, *notes]],
        "</ul><h2>Summary</h2>",
        _html_table(summ_tbl),
        "<h2>By clinical category (macro over defined labels)</h2>",
        _html_table(cat_tbl),
    ]
    if "calibration" in figs:
        html_parts.append("<img src='calibration.png' alt='calibration'>")
    md += ["## Labels", ""]
    html_parts.append("<h2>Labels</h2>")
    for cat in dict.fromkeys(cats):
        sub = label_tbl[label_tbl["category"] == cat].drop(columns="category")
        md += [f"### {cat}", "", _md_table(sub), ""]
        html_parts += [f"<h3>{html.escape(cat)}</h3>", _html_table(sub)]
        for kind in ("roc", "pr"):
            f = figs.get(f"{kind}:{cat}")
            if f is not None:
                md.append(f"![{kind} {cat}]({f.name})")
                html_parts.append(f"<img src='{html.escape(f.name)}' alt='{kind} {html.escape(cat)}'>")
        md.append("")
    undefined = st.get("undefined_labels", [])
    if undefined:
        md += ["## Undefined labels", "", "No positive or no negative record among the evaluated ones; shown as 'undefined' and left out of the summaries:", "", ", ".join(undefined), ""]
        html_parts += ["<h2>Undefined labels</h2><p>", html.escape(", ".join(undefined)), "</p>"]
    for name, df in (extra_tables or {}).items():
        md += [f"## {name}", "", _md_table(df) if len(df) else "(none)", ""]
        html_parts += [f"<h2>{html.escape(name)}</h2>", _html_table(df) if len(df) else "<p>(none)</p>"]
    html_parts.append("</body></html>")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "report.html").write_text("\n".join(html_parts), encoding="utf-8")
    files["markdown"] = out / "report.md"
    files["html"] = out / "report.html"
    return files
