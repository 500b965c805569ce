"""``ecgfounder pretrain``: an ECGFounder-style model from scratch on your own archive.

    ecgfounder pretrain labels FILES... [--statement TEXT] [--rules CSV] [-o report.json]
    ecgfounder pretrain build-store SOURCES... -o STORE [--workers N] [--rules CSV] [--leads 12|1] [--max-duration S]
                                    [--restart]     (exit 1 if any file failed; the store holds the others)
    ecgfounder pretrain run CONFIG.yaml [key=value ...]       (also under torchrun)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._checks import check_writable, count, seconds, usage
from ._common import flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pretrain", help="pre-train a model from scratch: labels, shard store, training",
                              description=__doc__.replace("``", ""), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="pretrain_command", metavar="ACTION")
    lab = sub.add_parser("labels", help="labels extracted from the statements of records (and loose statements)")
    lab.add_argument("sources", nargs="*", help="ECG files, folders, or a manifest CSV (path[,statements])")
    lab.add_argument("--statement", action="append", default=[], help="a statement to label (repeatable)")
    lab.add_argument("--rules", help="rules CSV (label,pattern[,kind]); default: the 150 ECGFounder labels")
    lab.add_argument("-o", "--output", help="write the full report (JSON) here")
    b = sub.add_parser("build-store", help="write the sharded WebDataset store of preprocessed windows + labels",
                       description="Write the sharded WebDataset store of preprocessed windows + labels. A record "
                       "file that cannot be read is reported and skipped; the exit code is 1 if any failed.")
    b.add_argument("sources", nargs="+", help="ECG files, folders, or a manifest CSV (path[,statements])")
    b.add_argument("-o", "--output", required=True, help="store folder")
    b.add_argument("--rules", help="rules CSV (label,pattern[,kind]); default: the 150 ECGFounder labels")
    b.add_argument("--workers", type=count(0), default=0, help="writer processes (0: one per CPU core)")
    b.add_argument("--leads", type=int, choices=(12, 1), default=12, help="store 12 leads (default; a 1-lead model can "
                   "train from them with the lead augmentation) or lead I")
    b.add_argument("--records-per-chunk", type=count(1), default=256, help="records per unit of work (default 256)")
    b.add_argument("--shard-size", type=count(1), default=2048, help="windows per shard at most (default 2048)")
    b.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="sample type (default float16)")
    b.add_argument("--max-duration", type=seconds, metavar="S", help="store only the first S seconds of each record "
                   "(records above the readers' size limit, e.g. 24-h Holters; default: whole records)")
    b.add_argument("--restart", action="store_true", help="discard what an earlier build wrote in the store folder and "
                   "start over (a rerun of the same build resumes it instead)")
    r = sub.add_parser("run", help="train as configured (see docs/pretrain.md)")
    r.add_argument("config", help="YAML configuration")
    r.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.max_steps=100 model.size=small")
    for q, name in ((lab, "labels"), (b, "build-store"), (r, "run")):
        q.set_defaults(func=run, pretrain_command=name)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def _rules(path):
    if not path:
        return None
    from ..pretrain.statements import load_rules

    return load_rules(path)


def run(args: argparse.Namespace) -> int:
    cmd = args.pretrain_command
    if cmd == "labels":
        from ..pretrain.store import label_sources

        if not args.sources and not args.statement:
            raise usage("nothing to label: give ECG files, folders or a manifest, or --statement TEXT.")
        if args.output:
            check_writable(args.output, "-o/--output")
        rows, report = label_sources(args.sources, _rules(args.rules), statements=args.statement)
        if args.sources and not any(row["source"] != "<statements>" for row in rows):
            raise usage(f"no ECG records found in {', '.join(args.sources)}; give files or folders holding them.")
        for row in rows:
            text = row["error"] and f"error: {row['error']}" or ", ".join(f"{k} ({v})" for k, v in row["labels"].items())
            print(f"{row['source']}\t{text or '-'}")
        d = report.to_dict()
        for t, n in d["unmatched"]:
            print(f"unmatched ({n}x): {t}", file=sys.stderr)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                json.dump(d, fh, indent=1)
        print(f"{d['n_statements']} statements: {d['status']}", file=sys.stderr)
        failed = sum(1 for row in rows if row["error"])
        if failed:  # reported in the table above; the exit code says so, as for info and predict
            print(f"error: {failed} of {len(rows)} sources could not be read", file=sys.stderr)
        return 1 if failed else 0
    if cmd == "build-store":
        from ..pretrain.store import build_store, describe
        from ..signal.preprocess import PreprocessContract, lead_set

        check_writable(args.output, "-o/--output", folder=True)
        src = args.sources[0] if len(args.sources) == 1 else args.sources
        info = build_store(src, args.output, contract=PreprocessContract(leads=lead_set(args.leads)), rules=_rules(args.rules),
                           workers=args.workers, records_per_chunk=args.records_per_chunk, shard_size=args.shard_size,
                           dtype=args.dtype, max_duration=args.max_duration, restart=args.restart)
        for path, err in info.failures[:10]:  # (not every error names its file: a reader's own, a crashed worker)
            err = flags(err)  # (a reader's hint in the command line's terms: max_duration=S is --max-duration S)
            print(f"failed: {err if err.startswith(path) else f'{path}: {err}'}", file=sys.stderr)
        if info.failures:  # (the store is built from the others; the exit code says some failed, as for predict)
            print(f"{len(info.failures)} record file(s) could not be read" + (" (the first 10 above)" if len(info.failures) > 10
                  else "") + f"; all are listed in {Path(args.output) / 'index.json'} under 'failures'", file=sys.stderr)
        print(json.dumps(describe(info)))
        return 1 if info.failures or not info.n_samples else 0
    from ..pretrain.config import load_pretrain_config
    from ..pretrain.loop import pretrain

    res = pretrain(load_pretrain_config(args.config, args.overrides))
    if res.rank:  # under torchrun only rank 0 reports
        return 0
    if res.history:
        print(f"steps {res.steps}: loss {res.history[0]['loss']:.4f} -> {res.history[-1]['loss']:.4f}")
    if res.report:
        print(f"held-out mean AUROC {res.report['mean_auroc']:.4f} over {res.report['n_labels_defined']} labels")
    if res.model_path:
        print(f"model: {res.model_path}", file=sys.stderr)
    return 0
