"""``ecgfounder report``: one self-contained HTML page and one PDF page per ECG record."""

from __future__ import annotations

import argparse

from ._checks import check_writable, count, usage
from ._common import add_model_args, add_read_args, flags, model_from_args, read_options, say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML page + PDF report per ECG (printout, findings, attribution, provenance)",
        description="For every record: the 12-lead printout with the attribution of the top findings shaded, "
        "findings above their operating thresholds (calibrated probabilities where the weights carry a "
        "calibration), quality flags, the model, its weights hash and preprocessing, and the package version. "
        "HTML pages are self-contained (no external resources); the PDF has the printout at true scale on an A4 "
        "or letter sheet, then a page of text. Not a medical device.",
    )
    p.add_argument("paths", nargs="+", metavar="ECG", help="ECG files or directories (recursed)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for RECORD.html and RECORD.pdf (created if needed; "
                   "files of those names replaced)")
    p.add_argument("--top", type=count(1), default=3, metavar="K", help="findings shaded on the printout (default 3)")
    p.add_argument("--thresholds", metavar="CSV",
                   help="operating thresholds (thresholds.csv from ecgfounder evaluate); default 0.5 for every label")
    p.add_argument("--method", choices=("ig", "gradcam", "guided_gradcam"), default="ig",
                   help="attribution: integrated gradients (default), Grad-CAM or guided Grad-CAM")
    p.add_argument("--steps", type=count(2), default=32, metavar="N", help="integrated-gradients steps (default 32)")
    p.add_argument("--lead", metavar="NAME", help="single-lead models: the lead of the recording to use")
    p.add_argument("--fill-missing", action="store_true", help="zero-fill missing precordial leads instead of skipping")
    p.add_argument("--paper", choices=("a4", "letter"), default="a4", help="PDF sheet, landscape (default a4)")
    add_model_args(p)
    add_read_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..explain.report import write_reports
    from ..io import find_records
    from ..prediction.setup import check_inputs

    check_inputs(args.paths)  # a mistyped path: one line before the model loads, as predict
    files = find_records(args.paths)
    if not files:
        raise usage(f"no ECG records found in {', '.join(args.paths)}; give files or folders holding them.")
    check_writable(args.output, "--output", folder=True)
    results = write_reports(files, model_from_args(args), args.output, top=args.top, thresholds=args.thresholds,
                            method=args.method, n_steps=args.steps, read_kwargs=read_options(args), lead=args.lead,
                            fill_missing=args.fill_missing, device=args.device, paper=args.paper)
    failed = [r for r in results if r.error]
    for r in results:
        if r.error:
            say(f"error: {flags(r.error if r.error.startswith(r.path) else f'{r.path}: {r.error}')}")
        else:
            print(f"{r.html}\n{r.pdf}")
    say(f"{len(results) - len(failed)} report(s) written to {args.output}" + (f"; {len(failed)} record(s) failed" if failed else ""))
    return 1 if failed else 0  # (as predict, info and embed: a record that failed is an error of the run)
