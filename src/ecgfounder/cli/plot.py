"""``ecgfounder plot``: an ECG file drawn as a cardiograph printout (PNG, PDF or SVG)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._checks import check_writable, count, usage
from ._common import add_read_args, read_options

__all__ = ["add_parser", "run", "top_findings"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="draw an ECG as a 12-lead printout or rhythm strips",
        description="Draw an ECG at paper scale (25 mm/s, 10 mm/mV, millimetre grid): the standard 3×4 "
        "12-lead layout with a lead-II rhythm strip, one strip per lead, or a rhythm printout (consecutive 10-s "
        "strips of 1-3 leads over --seconds, on as many sheets as needed; the default for a recording of up to 3 "
        "leads longer than 10 s). --predict adds the model's top findings.",
    )
    p.add_argument("path", metavar="FILE", help="an ECG file (any supported format)")
    p.add_argument("-o", "--output", metavar="FILE", help="ecg.png, .pdf or .svg (default: FILE stem + .png beside it), "
                   "replaced if it exists; a PNG or SVG of several sheets is ecg.png, ecg-2.png, ..., and the further "
                   "sheets an earlier plot to it left are removed")
    p.add_argument("--layout", choices=("12lead", "strips", "rhythm"),
                   help="default: 12lead when the 12 leads can be shown, rhythm for up to 3 leads longer than 10 s "
                   "on a sheet, strips otherwise")
    p.add_argument("--lead", action="append", metavar="NAME", help="strips/rhythm: lead(s) to draw (repeatable); "
                   "with --predict and a single-lead model, the first is also the lead fed to it (default I)")
    p.add_argument("--rhythm-lead", default="II", metavar="NAME", help="lead of the 10-s rhythm strip (default II)")
    p.add_argument("--start", type=float, default=0.0, metavar="S",
                   help="first second shown (10 s are shown; rhythm: --seconds)")
    p.add_argument("--seconds", type=float, metavar="S",
                   help="rhythm layout: seconds shown from --start (default 60; at most 120 strips of 10 s)")
    p.add_argument("--index", type=int, metavar="N", help="which recording of a batch file (HDF5/npz/npy)")
    p.add_argument("--title", help="title replacing the record id")
    p.add_argument("--paper", choices=("a4", "letter", "fit"), default="a4",
                   help="a landscape A4 (default) or letter sheet, the drawing centred at true scale; fit: a page "
                   "the size of the drawing")
    p.add_argument("--no-quality", action="store_true",
                   help="do not run the signal-quality check (default: flagged leads are marked, the flags shown)")
    g = p.add_argument_group("findings")
    g.add_argument("--predict", action="store_true", help="run the model and print its top findings on the plot")
    g.add_argument("--top", type=count(1), default=3, metavar="K", help="findings shown with --predict (default 3)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--weights", default="12-lead", metavar="NAME", help="published weights for --predict")
    src.add_argument("--checkpoint", metavar="FILE", help="a local checkpoint for --predict")
    add_read_args(p)
    p.set_defaults(func=run)


def top_findings(recording, model, k: int = 3, lead: str | None = None) -> list[tuple[str, float]]:
    """The ``k`` highest-scoring labels of ``model`` for ``recording`` (the exact fp32 torch path: one record
    is not worth measuring the faster ones, ~30 s on first use): calibrated probabilities where
    the weights carry a calibration (as ``report`` prints them); ``lead``: the lead fed to a
    single-lead model (ignored for a model of more leads)."""
    from ..explain.calibration import calibration_of
    from ..prediction import predict

    one = model.config.in_channels == 1
    df = predict([recording], model=model, on_error="raise", calibrated=calibration_of(model) is not None, precision="fp32",
                 backend="torch", **({"lead": lead} if one and lead else {}))
    if df.empty:
        return []
    labels = list(model.labels)
    row = df.iloc[0][labels].astype(float)
    top = row.sort_values(ascending=False).head(k)
    return [(str(lab), float(v)) for lab, v in top.items()]


def run(args: argparse.Namespace) -> int:
    from ..io import read
    from ..plot import check_start, save_ecg_sheets

    if not args.predict and (args.checkpoint or args.weights != "12-lead"):
        raise usage(f"{'--checkpoint' if args.checkpoint else '--weights'} chooses the model of --predict; add "
                    "--predict to print its findings on the plot, or leave the model out.")
    src = Path(args.path)
    if src.is_dir():
        raise usage(f"{src} is a folder; plot draws one ECG file: give one of its files (ecgfounder report draws "
                    "every record of a folder).")
    out = check_writable(args.output or src.with_suffix(".png"), "--output")
    kw = read_options(args)
    if args.index is not None:
        kw["index"] = args.index
    rec = read(src, **kw)
    check_start(rec, args.start)  # before a model is loaded (--predict)
    findings = None
    if args.predict:
        from ..models.loading import load_model

        model = load_model(args.checkpoint or args.weights)
        findings = top_findings(rec, model, args.top, (args.lead or [None])[0])
    flagged, footer = (), None
    if not args.no_quality:
        from ..signal.quality import assess

        report = assess(rec)
        flagged, footer = report.flagged_leads(), f"signal quality: {report.summary}"
    paths = save_ecg_sheets(rec, out, layout=args.layout, leads=args.lead, rhythm_lead=args.rhythm_lead,
                            start=args.start, findings=findings, title=args.title, flagged_leads=flagged,
                            footer=footer, paper=None if args.paper == "fit" else args.paper, seconds=args.seconds)
    print("\n".join(map(str, paths)))
    return 0
