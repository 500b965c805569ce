"""Argument groups and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_model_args", "model_from_args", "say", "progress"]


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--weights", default="12-lead", metavar="NAME",
                     help="published weights to download from the Hugging Face Hub: 12-lead (default) or 1-lead")
    src.add_argument("--checkpoint", metavar="FILE",
                     help="a local checkpoint: the published .pth, or a .safetensors written by ecgfounder")
    g.add_argument("--no-strict", action="store_true", help="accept state dicts whose keys differ from the architecture")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")


def model_from_args(args: argparse.Namespace) -> Any:
    from ..models.loading import load_model

    return load_model(args.checkpoint or args.weights, strict=not args.no_strict)


def say(msg: str) -> None:
    print(msg, file=sys.stderr)


def progress(total: int | None, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rec", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, leave=False)
