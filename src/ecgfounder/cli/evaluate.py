"""``ecgfounder evaluate``: metrics with bootstrap intervals on PTB-XL, CinC 2021 or any label table.

Subcommands::

    ecgfounder evaluate ptbxl    --root DIR [--tune-folds 1-9 --test-folds 10 | --thresholds FILE]
    ecgfounder evaluate cinc2021 --root DIR [--tune-fraction 0.5 | --thresholds FILE]
    ecgfounder evaluate table    --predictions P --labels L [--split-column COL | --tune-fraction F | --thresholds FILE]

Operating thresholds are never chosen on the records being reported: they come from a tuning
split (PTB-XL folds 1–9 by default, a random half of CinC records, a split column or fraction of
a table) or from a thresholds file of a previous run (``OUT/thresholds.csv``).
Predictions are streamed and cached in ``OUT/cache`` (keyed by the weights' hash and the record
path), so a rerun only predicts what is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ._common import add_model_args, model_from_args, progress, say

__all__ = ["add_parser", "run", "parse_folds"]

log = logging.getLogger(__name__)


def parse_folds(text: str) -> list[int]:
    """``"1-9"`` → [1..9]; ``"1,3,5-6"`` → [1, 3, 5, 6]."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"bad fold list {text!r}: use numbers and ranges like '1-9' or '1,2,5-8'.") from None
    return sorted(set(out))


def _add_common(p: argparse.ArgumentParser, default_out: str) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("-o", "--out", default=default_out, metavar="DIR", help=f"report folder (default: {default_out})")
    g.add_argument("--thresholds", metavar="FILE", help="operating thresholds from a previous run (its thresholds.csv); no tuning split is used")
    g.add_argument("--threshold-method", choices=("youden", "sensitivity", "f1"), default="youden",
                   help="rule for choosing thresholds on the tuning split (default: youden)")
    g.add_argument("--target-sensitivity", type=float, default=0.9, metavar="S",
                   help="sensitivity to reach with --threshold-method sensitivity (default 0.9)")
    g.add_argument("--n-boot", type=int, default=1000, metavar="B", help="bootstrap resamples (default 1000)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap and split seed (default 0)")
    g.add_argument("--ci-level", type=float, default=0.95, help="interval level (default 0.95)")
    g.add_argument("--no-plots", action="store_true", help="skip the ROC / PR / calibration figures")


def _add_predict(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    g = p.add_argument_group("prediction")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--mode", choices=("published", "zscore", "none"), help="override the weights' preprocessing mode")
    g.add_argument("--aggregate", choices=("mean", "max"), default="mean", help="combine the 10-s windows of a record")
    g.add_argument("--cache-dir", metavar="DIR", help="prediction cache (default: OUT/cache)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the prediction cache")
    g.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N records of each split (quick checks)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate on PTB-XL, CinC 2021 or a label table (metrics, CIs, report)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    s = p.add_subparsers(dest="dataset", metavar="DATASET")

    q = s.add_parser("ptbxl", help="PTB-XL 1.0.x folder (ptbxl_database.csv, records500/)",
                     description="Evaluate on PTB-XL: SCP-ECG statements are mapped to the 150 labels "
                     "(package table ptbxl_scp_to_150.csv); thresholds from folds 1-9, report on fold 10.")
    q.add_argument("--root", required=True, metavar="DIR", help="PTB-XL folder holding ptbxl_database.csv")
    q.add_argument("--sampling", type=int, choices=(500, 100), default=500, help="record set to read (default 500 Hz)")
    q.add_argument("--tune-folds", default="1-9", metavar="FOLDS", help="strat_fold values choosing thresholds (default 1-9)")
    q.add_argument("--test-folds", default="10", metavar="FOLDS", help="strat_fold values reported (default 10)")
    q.add_argument("--min-likelihood", type=float, default=0.0, help="ignore SCP codes below this likelihood (0-100; default 0 keeps all)")
    q.add_argument("--bootstrap-unit", choices=("patient", "record"), default="patient", help="resample patients (default) or records")
    _add_common(q, "eval-ptbxl")
    _add_predict(q)
    q.set_defaults(func=run)

    c = s.add_parser("cinc2021", help="PhysioNet/CinC 2021 folder (WFDB headers with # Dx: SNOMED codes)",
                     description="Evaluate on CinC 2021 data: SNOMED-CT Dx codes are mapped to the 150 labels "
                     "(package table snomed_to_150.csv); thresholds from a random tuning part unless --thresholds.")
    c.add_argument("--root", required=True, metavar="DIR", help="folder with the .hea/.mat files (searched recursively)")
    c.add_argument("--tune-fraction", type=float, default=0.5, metavar="F",
                   help="fraction of records (random, seeded) that choose the thresholds (default 0.5)")
    _add_common(c, "eval-cinc2021")
    _add_predict(c)
    c.set_defaults(func=run)

    t = s.add_parser("table", help="any dataset: a predictions table and a labels table",
                     description="Evaluate predictions (e.g. from `ecgfounder predict -o P.csv`) against a label table "
                     "with one 0/1 column per label; rows are matched by the id column.")
    t.add_argument("--predictions", required=True, metavar="FILE", help="CSV/Parquet: id column + one probability column per label")
    t.add_argument("--labels", required=True, metavar="FILE", help="CSV/Parquet: id column + one 0/1 column per label")
    t.add_argument("--id-column", default="record", help="column matching the two tables (default: record)")
    t.add_argument("--label-columns", nargs="+", metavar="NAME", help="labels to evaluate (default: every label column present in both)")
    t.add_argument("--patient-column", metavar="COL", help="patient ids in the label table: patient-level bootstrap and split")
    t.add_argument("--split-column", metavar="COL", help="column of the label table naming each record's split")
    t.add_argument("--tune-value", default="tune", help="value of --split-column choosing thresholds (default: tune)")
    t.add_argument("--test-value", default="test", help="value of --split-column reported (default: test)")
    t.add_argument("--tune-fraction", type=float, default=0.0, metavar="F",
                   help="without --split-column/--thresholds: random fraction choosing thresholds (default 0 = no thresholds)")
    _add_common(t, "eval-table")
    t.set_defaults(func=run)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


# ---------------------------------------------------------------- helpers


def _thresholds(args: argparse.Namespace, labels) -> Any:
    if not args.thresholds:
        return None
    from ..eval.thresholds import load_thresholds

    return load_thresholds(args.thresholds, labels)


def _predict(args: argparse.Namespace, paths: list[str], model) -> Any:
    from ..eval.runner import cached_predictions

    cache = None if args.no_cache else (args.cache_dir or str(Path(args.out) / "cache"))
    show = not args.no_progress and sys.stderr.isatty()
    with progress(len(paths), "predict", show) as bar:
        preds = cached_predictions(
            paths, model, cache, batch_size=args.batch_size, mode=args.mode, aggregate=args.aggregate,
            device=args.device, progress=bar.update,
        )
    say(f"predictions: {preds.n_cached} from cache, {preds.n_predicted} computed, {len(preds.errors)} failed"
        + (f" (cache {preds.cache_file})" if preds.cache_file else ""))
    for path, err in list(preds.errors.items())[:10]:
        say(f"warning: {err if err.startswith(path) else f'{path}: {err}'}")
    return preds


def _limit(mask: np.ndarray, n: int | None) -> np.ndarray:
    if n is None:
        return mask
    if n < 1:
        raise ValueError(f"--limit must be a positive number of records; got {n}.")
    out = np.zeros_like(mask)
    out[np.flatnonzero(mask)[:n]] = True
    return out


def _align_model(ls, model) -> list[int]:
    mlabels = list(model.labels or ())
    pos = {lab: i for i, lab in enumerate(mlabels)}
    missing = [lab for lab in ls.labels if lab not in pos]
    if len(missing) == len(ls.labels):
        raise ValueError(
            f"none of the dataset's {len(ls.labels)} mapped labels is an output of the model "
            f"(model outputs e.g. {mlabels[:3]}); evaluate a 150-label ECGFounder model or use `evaluate table`."
        )
    return [pos.get(lab, -1) for lab in ls.labels]


def _print_summary(result, out: Path) -> None:
    from ..eval.report import format_ci

    s = result.summary
    for kind in ("macro", "micro"):
        r = s.loc[kind]
        print(
            f"{kind:5s} AUROC {format_ci(r['auroc'], r['auroc_lo'], r['auroc_hi'])}  "
            f"AUPRC {format_ci(r['auprc'], r['auprc_lo'], r['auprc_hi'])}  "
            f"F1 {format_ci(r['f1'], r['f1_lo'], r['f1_hi'])}  ({int(r['n_labels'])} labels, {int(r['n_skipped'])} undefined)"
        )
    print(f"report: {out / 'report.md'} (also report.html, per_label.csv, summary.csv)")


def _dataset_tables(ls, used_labels) -> dict[str, Any]:
    import pandas as pd

    from ..labels.mappings import ptbxl_mapping, snomed_mapping

    mapping = ptbxl_mapping() if ls.name == "ptbxl" else snomed_mapping()
    tables = {
        "Labels not evaluable on this dataset": pd.DataFrame({"label": list(ls.not_evaluable), "reason": "no source code maps to it"}),
        "Source codes not mapped": pd.DataFrame(
            [{"code": r.code, "description": r.description, "relation": r.relation, "rationale": r.rationale} for r in mapping.unmapped_codes()]
        ),
    }
    if ls.unknown_codes:
        tables["Codes unknown to the mapping"] = pd.DataFrame(
            sorted(ls.unknown_codes.items(), key=lambda kv: -kv[1]), columns=["code", "records"]
        )
    return tables


def _run_dataset(args: argparse.Namespace, ls, tune: np.ndarray, test: np.ndarray, groups, title: str) -> int:
    import pandas as pd

    from ..eval.runner import run_evaluation

    out = Path(args.out)
    model = model_from_args(args)
    cols = _align_model(ls, model)
    keep = [j for j, c in enumerate(cols) if c >= 0]
    labels = [ls.labels[j] for j in keep]
    thr = _thresholds(args, labels)
    if thr is not None:
        tune = np.zeros_like(tune)
    tune = _limit(tune, args.limit)
    test = _limit(test, args.limit)
    need = np.flatnonzero(tune | test)
    preds = _predict(args, [ls.paths[i] for i in need], model)
    scores = np.full((len(ls), len(labels)), np.nan)
    ok = np.zeros(len(ls), dtype=bool)
    scores[need] = preds.scores[:, [cols[j] for j in keep]]
    ok[need] = preds.ok
    notes = []
    if (~ok[need]).any():
        notes.append(f"{int((~ok[need]).sum())} record(s) could not be predicted and are left out (see 'Failed records').")
    if args.limit:
        notes.append(f"--limit {args.limit}: only the first records of each split were used; not a full evaluation.")
    tables = _dataset_tables(ls, labels)
    if preds.errors:
        tables["Failed records"] = pd.DataFrame(sorted(preds.errors.items()), columns=["path", "reason"])
    y = ls.y[:, keep]
    rows = ok & (tune | test)
    result = run_evaluation(
        y[rows], scores[rows], labels, out, test=test[rows], tune=tune[rows], thresholds=thr,
        method=args.threshold_method, target=args.target_sensitivity,
        groups=None if groups is None else np.asarray(groups)[rows],
        n_boot=args.n_boot, seed=args.seed, ci_level=args.ci_level, title=title, notes=notes,
        extra_tables=tables, plots=not args.no_plots, threshold_source=args.thresholds,
    )
    _print_summary(result, out)
    return 1 if preds.errors else 0


def _run_ptbxl(args: argparse.Namespace) -> int:
    from ..eval.datasets import load_ptbxl

    ls = load_ptbxl(args.root, sampling=args.sampling, min_likelihood=args.min_likelihood)
    if ls.folds is None:
        raise ValueError(f"{args.root}/ptbxl_database.csv has no strat_fold column; PTB-XL folds are needed to split tuning and test records.")
    tune_f, test_f = parse_folds(args.tune_folds), parse_folds(args.test_folds)
    if set(tune_f) & set(test_f):
        raise ValueError(f"--tune-folds {args.tune_folds} and --test-folds {args.test_folds} overlap; thresholds must come from other folds.")
    tune = np.isin(ls.folds, tune_f)
    test = np.isin(ls.folds, test_f)
    if not test.any():
        raise ValueError(f"no record in test folds {test_f}; folds present: {sorted(set(ls.folds.tolist()))}.")
    groups = ls.patients if args.bootstrap_unit == "patient" else None
    say(f"PTB-XL: {len(ls)} records, {len(ls.labels)} of 150 labels mapped; tuning folds {args.tune_folds} "
        f"({int(tune.sum())}), test folds {args.test_folds} ({int(test.sum())})")
    return _run_dataset(args, ls, tune, test, groups, f"ECGFounder on PTB-XL (folds {args.test_folds})")


def _run_cinc(args: argparse.Namespace) -> int:
    from ..eval.datasets import load_cinc2021
    from ..eval.runner import random_split

    ls = load_cinc2021(args.root)
    if args.thresholds:
        tune = np.zeros(len(ls), dtype=bool)
    else:
        tune = random_split(len(ls), args.tune_fraction, seed=args.seed)
    test = ~tune
    say(f"CinC 2021: {len(ls)} records, {len(ls.labels)} of 150 labels mapped; "
        f"{int(tune.sum())} tuning, {int(test.sum())} test records")
    return _run_dataset(args, ls, tune, test, None, f"ECGFounder on CinC 2021 data ({Path(args.root).name})")


def _run_table(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..eval.datasets import load_label_table, read_table
    from ..eval.runner import random_split, run_evaluation

    pred = read_table(args.predictions)
    if args.id_column not in pred.columns:
        raise ValueError(f"{args.predictions}: no id column {args.id_column!r}; columns are {list(pred.columns)[:12]}. Pass --id-column.")
    ls, table = load_label_table(
        args.labels, id_column=args.id_column, labels=args.label_columns,
        patient_column=args.patient_column, exclude=[args.split_column] if args.split_column else [],
    )
    pred = pred.assign(**{args.id_column: pred[args.id_column].astype(str)})
    if pred[args.id_column].duplicated().any():
        raise ValueError(f"{args.predictions}: record {pred[args.id_column][pred[args.id_column].duplicated()].iloc[0]!r} has several rows; aggregate windows first.")
    labels = [lab for lab in ls.labels if lab in pred.columns]
    dropped = [lab for lab in ls.labels if lab not in pred.columns]
    if not labels:
        raise ValueError(f"no label column of {args.labels} is a column of {args.predictions}; label columns must be named alike.")
    pidx = pd.Index(pred[args.id_column])
    where = pidx.get_indexer(list(ls.records))
    have = where >= 0
    if not have.any():
        raise ValueError(f"no record id of {args.labels} appears in {args.predictions} (column {args.id_column!r}).")
    jcols = [ls.labels.index(lab) for lab in labels]
    y = ls.y[have][:, jcols]
    s = pred.iloc[where[have]][labels].to_numpy(dtype=np.float64)
    finite = np.isfinite(s).all(axis=1)
    notes = []
    if (~have).any():
        notes.append(f"{int((~have).sum())} labelled record(s) have no prediction and are left out.")
    if (~finite).any():
        notes.append(f"{int((~finite).sum())} record(s) with missing scores are left out.")
    if dropped:
        notes.append(f"{len(dropped)} label column(s) have no prediction column and are not evaluated: {', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}.")
    y, s = y[finite], s[finite]
    groups = None if ls.patients is None else ls.patients[have][finite]
    thr = _thresholds(args, labels)
    n = len(y)
    if thr is not None:
        tune = np.zeros(n, dtype=bool)
        test = np.ones(n, dtype=bool)
    elif args.split_column:
        if args.split_column not in table.columns:
            raise ValueError(f"{args.labels}: no split column {args.split_column!r}; columns are {list(table.columns)[:12]}.")
        split = table[args.split_column].astype(str).to_numpy()[have][finite]
        tune = split == str(args.tune_value)
        test = split == str(args.test_value)
        if not test.any():
            raise ValueError(f"no record has {args.split_column} == {args.test_value!r}; values present: {sorted(set(split))[:10]}.")
    elif args.tune_fraction > 0:
        tune = random_split(n, args.tune_fraction, seed=args.seed, groups=groups)
        test = ~tune
    else:
        tune = np.zeros(n, dtype=bool)
        test = np.ones(n, dtype=bool)
    out = Path(args.out)
    result = run_evaluation(
        y, s, labels, out, test=test, tune=tune, thresholds=thr, method=args.threshold_method,
        target=args.target_sensitivity, groups=groups, n_boot=args.n_boot, seed=args.seed,
        ci_level=args.ci_level, title=f"Evaluation of {Path(args.predictions).name} against {Path(args.labels).name}",
        notes=notes, plots=not args.no_plots, threshold_source=args.thresholds,
    )
    _print_summary(result, out)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.n_boot < 0:
        raise ValueError(f"--n-boot must be >= 0; got {args.n_boot}.")
    if not 0 < args.ci_level < 1:
        raise ValueError(f"--ci-level must be between 0 and 1 (e.g. 0.95); got {args.ci_level}.")
    if args.dataset == "ptbxl":
        return _run_ptbxl(args)
    if args.dataset == "cinc2021":
        return _run_cinc(args)
    if args.dataset == "table":
        return _run_table(args)
    raise ValueError(f"unknown dataset {args.dataset!r}; choose ptbxl, cinc2021 or table.")
