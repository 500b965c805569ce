"""``ecgfounder finetune``: fine-tune or linear-probe on a downstream task.

    ecgfounder finetune run CONFIG.yaml [key=value ...]      train (also under torchrun)
    ecgfounder finetune show CONFIG.yaml [key=value ...]     print the resolved configuration
    ecgfounder finetune manifest PRESET ROOT -o OUT.csv      build a manifest for a known dataset
    ecgfounder finetune cache CONFIG.yaml [key=value ...]    only fill the window cache
    ecgfounder finetune examples                             list the example configurations
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._checks import check_writable, usage

__all__ = ["add_parser", "run"]


def _example_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "configs"


def _resolve_config(name: str) -> str:
    p = Path(name)
    if p.exists():
        return str(p)
    cand = _example_dir() / (name if name.endswith(".yaml") else f"{name}.yaml")
    if cand.exists():
        return str(cand)
    from ..train.config import ConfigError

    raise ConfigError(f"configuration {name!r} not found (a YAML file, or one of: "
                     f"{', '.join(sorted(q.stem for q in _example_dir().glob('*.yaml')))}).")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune or linear-probe on a downstream task",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="finetune_command", metavar="ACTION")
    for name, helptext in (("run", "train as configured"), ("show", "print the resolved configuration"),
                           ("cache", "only preprocess records into the window cache")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("config", help="YAML file, or the name of an example configuration (see 'examples')")
        q.add_argument("overrides", nargs="*", metavar="key=value", help="overrides, e.g. train.epochs=3 optim.lr=1e-4")
        q.set_defaults(func=run, finetune_command=name)
    m = sub.add_parser("manifest", help="build a manifest for a known dataset")
    m.add_argument("preset", choices=["ptbxl", "cinc2021", "cpsc2021", "cpsc2019"])
    m.add_argument("root", help="the dataset folder")
    m.add_argument("-o", "--output", required=True, help="manifest file to write (.csv or .parquet)")
    m.add_argument("--task", default=None, help="preset task (PTB-XL: all, diagnostic, subdiagnostic, superdiagnostic, form, rhythm)")
    m.set_defaults(func=run, finetune_command="manifest")
    e = sub.add_parser("examples", help="list the example configurations shipped with the package")
    e.set_defaults(func=run, finetune_command="examples")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def run(args: argparse.Namespace) -> int:
    cmd = args.finetune_command
    if cmd == "examples":
        for q in sorted(_example_dir().glob("*.yaml")):
            first = next((ln[1:].strip() for ln in q.read_text(encoding="utf-8").splitlines() if ln.startswith("#")), "")
            print(f"{q.stem:28s} {first}")
        return 0
    if cmd == "manifest":
        from ..train.manifest import write_manifest
        from ..train.presets import build_preset

        out = Path(args.output)
        if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise usage(f"-o/--output {out}: a manifest is a .csv or .parquet file; give one of those.")
        if not Path(args.root).is_dir():
            raise usage(f"ROOT {args.root}: no such folder; give the {args.preset} dataset folder.")
        check_writable(out, "-o/--output")
        df, info = build_preset(args.preset, args.root, out.parent, args.task)
        write_manifest(df, out)
        print(f"{out}: task {info['preset_task']} ({info['task']}); {info['summary']}", file=sys.stderr)
        return 0
    from ..train.config import load_config

    cfg = load_config(_resolve_config(args.config), args.overrides)
    if cmd == "show":
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    if cmd == "cache":
        from ..train.data import fill_cache

        idx, n = fill_cache(cfg)
        print(f"{idx.root}: {n - len(idx.failed)} cached, {len(idx.failed)} failed", file=sys.stderr)
        return 0 if len(idx.failed) < n else 1
    from ..train.loop import finetune

    res = finetune(cfg)
    if res.test_metrics:
        print(" ".join(f"{k}={v:.4f}" for k, v in res.test_metrics.items()))
    print(f"model: {res.model_path}", file=sys.stderr)
    return 0
