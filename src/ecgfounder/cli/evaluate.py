"""``ecgfounder evaluate``: metrics with intervals on PTB-XL, CinC 2021 or any label table.

Subcommands::

    ecgfounder evaluate ptbxl    --root DIR [--protocol ours|published] [--thresholds FILE]
    ecgfounder evaluate cinc2021 --root DIR [--tune-root DIR | --thresholds FILE] [--ptbxl-database CSV]
    ecgfounder evaluate table    --predictions P --labels L [--split-column COL | --tune-fraction F | --thresholds FILE]

Operating thresholds are never chosen on the reported records (except under --protocol
published, which reproduces the authors' script and says so).  Predictions are streamed and
cached in OUT/cache, keyed by the weights' hash and the record path.  The library function
behind each subcommand is in :mod:`ecgfounder.eval.jobs`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._checks import check_writable
from ._common import add_model_args, model_from_args, progress, say

__all__ = ["add_parser", "run", "parse_folds"]

# library argument names → the flags that set them (for error messages)
_FLAGS = {"mode": "--mode", "protocol": "--protocol", "tune_folds": "--tune-folds", "test_folds": "--test-folds", "limit": "--limit", "min_positives": "--min-positives",
          "n_boot": "--n-boot", "id_column": "--id-column", "seed": "--seed",
          "calibrate": "--calibrate", "save_calibrated": "--save-calibrated"}


def parse_folds(text: str) -> list[int]:
    """``"1-9"`` → [1..9]; ``"1,3,5-6"`` → [1, 3, 5, 6]."""
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b or a)
            if hi < lo:
                raise ValueError
        except ValueError:
            raise ValueError(f"bad fold list {text!r}: use numbers and ranges like '1-9' or '1,2,5-8'.") from None
        out.extend(range(lo, hi + 1))
    return sorted(set(out))


def _add_common(p: argparse.ArgumentParser, default_out: str) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("-o", "--out", default=default_out, metavar="DIR", help=f"report folder (default: {default_out})")
    g.add_argument("--thresholds", metavar="FILE", help="operating thresholds from a previous run (its thresholds.csv); no tuning split is used")
    g.add_argument("--threshold-method", choices=("youden", "sensitivity", "f1"), default="youden",
                   help="rule for choosing thresholds on the tuning split (default: youden)")
    g.add_argument("--target-sensitivity", type=float, default=0.9, metavar="S", help="sensitivity for --threshold-method sensitivity (default 0.9)")
    g.add_argument("--n-boot", type=int, default=1000, metavar="B", help="bootstrap resamples (default 1000)")
    g.add_argument("--seed", type=int, default=0, help="bootstrap and split seed (default 0)")
    g.add_argument("--ci-level", type=float, default=0.95, help="interval level (default 0.95)")
    g.add_argument("--min-positives", type=int, default=10, metavar="K",
                   help="labels with fewer positives are reported but left out of the macro/micro summaries (default 10)")
    g.add_argument("--no-plots", action="store_true", help="skip the ROC / PR / reliability figures")
    g.add_argument("--calibrate", choices=("temperature", "isotonic"),
                   help="fit a per-label calibration on the tuning split (never the reported one) unless the model carries one; "
                        "thresholds are then chosen on calibrated scores and the report shows ECE before/after")


def _add_predict(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    g = p.add_argument_group("prediction")
    g.add_argument("--batch-size", type=int, default=32, metavar="N", help="windows per forward pass (default 32)")
    g.add_argument("--mode", choices=("published", "zscore", "none"), help="override the weights' preprocessing mode")
    g.add_argument("--aggregate", choices=("mean", "max"), default="mean", help="combine the 10-s windows of a record")
    g.add_argument("--cache-dir", metavar="DIR", help="prediction cache (default: OUT/cache)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the prediction cache")
    g.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N records of each split (quick checks)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--save-calibrated", metavar="PATH", help="with --calibrate: save the model with its calibration "
                   "(.safetensors) for `predict --calibrated`")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..eval.jobs import COMPARABILITY

    p = sub.add_parser("evaluate", help="evaluate on PTB-XL, CinC 2021 or a label table (metrics, CIs, report)",
                       description=__doc__.split("\n\n")[0].replace("``", "") + " " + COMPARABILITY)
    s = p.add_subparsers(dest="dataset", metavar="DATASET")
    q = s.add_parser("ptbxl", help="PTB-XL 1.0.x folder (ptbxl_database.csv, records500/)",
                     description="Evaluate on PTB-XL: SCP statements and heart_axis mapped to the 150 labels "
                     "(package table ptbxl_scp_to_150.csv). " + COMPARABILITY)
    q.add_argument("--root", required=True, metavar="DIR", help="PTB-XL folder holding ptbxl_database.csv")
    q.add_argument("--protocol", choices=("ours", "published"), default="ours",
                   help="ours (default): thresholds from --tune-folds, report --test-folds; published: the authors' "
                        "ptbxl_eval.py reproduced (z-score only, all records, thresholds tuned on them, undefined AUROC = 0)")
    q.add_argument("--sampling", type=int, choices=(500, 100), default=500, help="record set to read (default 500 Hz)")
    q.add_argument("--tune-folds", default="1-9", metavar="FOLDS", help="strat_fold values choosing thresholds (default 1-9)")
    q.add_argument("--test-folds", default="10", metavar="FOLDS", help="strat_fold values reported (default 10)")
    q.add_argument("--min-likelihood", type=float, default=0.0, help="SCP codes stated below this likelihood (0-100) are left out of their labels, neither "
                   "positive nor negative; 0, PTB-XL's 'not given', always counts (default 0 keeps all)")
    q.add_argument("--bootstrap-unit", choices=("patient", "record"), default="patient", help="resample patients (default) or records")
    _add_common(q, "eval-ptbxl")
    _add_predict(q)
    c = s.add_parser("cinc2021", help="PhysioNet/CinC 2021 folder (WFDB headers with # Dx: SNOMED codes)",
                     description="Evaluate on CinC 2021 data: SNOMED-CT Dx codes mapped to the 150 labels (snomed_to_150.csv). "
                     "Thresholds from --thresholds, else --tune-root, else a part of --root drawn by patient within each source database.")
    c.add_argument("--root", required=True, metavar="DIR", help="folder with the .hea/.mat files (searched recursively)")
    c.add_argument("--tune-fraction", type=float, default=0.5, metavar="F", help="fraction of patients choosing the thresholds (default 0.5)")
    c.add_argument("--tune-root", metavar="DIR", help="a separate CinC folder whose records choose the thresholds")
    c.add_argument("--ptbxl-database", metavar="CSV",
                   help="ptbxl_database.csv: groups the PTB-XL (HR) records by patient (default: one found in --root or its parent)")
    _add_common(c, "eval-cinc2021")
    _add_predict(c)
    t = s.add_parser("table", help="any dataset: a predictions table and a labels table",
                     description="Evaluate predictions (e.g. `ecgfounder predict -o P.csv`) against a label table with one 0/1 "
                     "column per label; rows are matched by the id column.")
    t.add_argument("--predictions", required=True, metavar="FILE", help="CSV/Parquet: id column + one probability column per label")
    t.add_argument("--labels", required=True, metavar="FILE", help="CSV/Parquet: id column + one 0/1 column per label")
    t.add_argument("--id-column", default="record", help="column matching the two tables (default: record)")
    t.add_argument("--label-columns", nargs="+", metavar="NAME", help="labels to evaluate (default: every 0/1 column present in both)")
    t.add_argument("--patient-column", metavar="COL", help="patient ids in the label table: patient-level bootstrap and split")
    t.add_argument("--split-column", metavar="COL", help="column of the label table naming each record's split")
    t.add_argument("--tune-value", default="tune", help="value of --split-column choosing thresholds (default: tune)")
    t.add_argument("--test-value", default="test", help="value of --split-column reported (default: test)")
    t.add_argument("--tune-fraction", type=float, default=0.0, metavar="F",
                   help="without --split-column/--thresholds: random fraction choosing thresholds (default 0 = no thresholds)")
    _add_common(t, "eval-table")
    for sp in (q, c, t):
        sp.set_defaults(func=run, flag_names=_FLAGS)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _options(args: argparse.Namespace):
    from ..eval.jobs import PredictOptions, ReportOptions

    report = ReportOptions(out=Path(args.out), thresholds=args.thresholds, threshold_method=args.threshold_method,
                           target_sensitivity=args.target_sensitivity, n_boot=args.n_boot, seed=args.seed,
                           ci_level=args.ci_level, plots=not args.no_plots, min_positives=args.min_positives,
                           calibrate=args.calibrate, save_calibrated=getattr(args, "save_calibrated", None))
    if args.dataset == "table":
        return report, None
    predict = PredictOptions(batch_size=args.batch_size, mode=args.mode, aggregate=args.aggregate, device=args.device,
                             cache_dir=args.cache_dir, use_cache=not args.no_cache, limit=args.limit,
                             weights=args.checkpoint or args.weights)
    return report, predict


def _call(args: argparse.Namespace):
    from ..eval import jobs

    report, predict = _options(args)
    if args.dataset == "table":
        return jobs.evaluate_table(args.predictions, args.labels, report=report, id_column=args.id_column,
                                   label_columns=args.label_columns, patient_column=args.patient_column,
                                   split_column=args.split_column, tune_value=args.tune_value, test_value=args.test_value,
                                   tune_fraction=args.tune_fraction)
    with progress(None, "predict", not args.no_progress and sys.stderr.isatty()) as bar:
        common = dict(report=report, predict=predict, log=say, progress=bar.update)
        if args.dataset == "ptbxl":
            return jobs.evaluate_ptbxl(args.root, model_from_args(args), protocol=args.protocol, sampling=args.sampling,
                                       tune_folds=parse_folds(args.tune_folds), test_folds=parse_folds(args.test_folds),
                                       min_likelihood=args.min_likelihood, bootstrap_unit=args.bootstrap_unit, **common)
        return jobs.evaluate_cinc2021(args.root, model_from_args(args), tune_fraction=args.tune_fraction,
                                      tune_root=args.tune_root, ptbxl_database=args.ptbxl_database, **common)


def _check(args: argparse.Namespace) -> None:
    """The mistakes found without reading a record or loading a model."""
    if args.n_boot < 0:
        raise ValueError(f"--n-boot must be >= 0; got {args.n_boot}.")
    if not 0 < args.ci_level < 1:
        raise ValueError(f"--ci-level must be between 0 and 1 (e.g. 0.95); got {args.ci_level}.")
    if not 0 < args.target_sensitivity <= 1:
        raise ValueError(f"--target-sensitivity must be above 0 and at most 1 (e.g. 0.9); got {args.target_sensitivity}.")
    least = 0 if args.dataset == "table" or args.thresholds or getattr(args, "tune_root", None) else 1e-9  # 0: none
    if not least <= getattr(args, "tune_fraction", 0.5) < 1:
        raise ValueError(f"--tune-fraction must be {'at least' if least == 0 else 'above'} 0 and below 1 (e.g. 0.5); "
                         f"got {args.tune_fraction}.")
    if getattr(args, "save_calibrated", None) and not args.calibrate:
        raise ValueError("--save-calibrated saves a calibration this run fits: add --calibrate temperature (or isotonic).")
    for flag in ("predictions", "labels"):
        if args.dataset == "table" and not Path(getattr(args, flag)).is_file():
            raise ValueError(f"--{flag} {getattr(args, flag)}: no such file; give a CSV or Parquet table.")
    check_writable(args.out, "-o/--out", folder=True)
    if args.dataset == "ptbxl":  # before the model loads
        from ..eval.jobs import check_folds

        check_folds(parse_folds(args.tune_folds), parse_folds(args.test_folds))


def run(args: argparse.Namespace) -> int:
    _check(args)
    outcome = _call(args)  # (the library's argument names in its errors: written as flags by main, _FLAGS)
    for line in outcome.lines:
        print(line)
    return 1 if outcome.errors else 0
