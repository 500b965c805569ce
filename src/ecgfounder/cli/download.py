"""``ecgfounder download``: fetch published weights into the Hugging Face cache (verified)."""

from __future__ import annotations

import argparse
import sys

from ._common import flags

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="download published weights (12-lead SHA-256 checked; 1-lead has no published hash)",
                       description="Download published ECGFounder weights from the Hugging Face Hub into its "
                       "standard cache (honours HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE) and print the path.")
    p.add_argument("names", nargs="*", default=["12-lead"], metavar="NAME", help="12-lead (default) and/or 1-lead")
    p.add_argument("--cache-dir", help="cache folder (default: the Hugging Face cache)")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.weights import download_all

    results = download_all(args.names, cache_dir=args.cache_dir, force=args.force)
    for name, path, error in results:
        if path is not None:
            print(path)
        else:
            print(f"error: {name}: {flags(' '.join(str(error).split()))}", file=sys.stderr)
    failed = [name for name, path, _ in results if path is None]
    if failed and len(results) > 1:
        print(f"{len(failed)} of {len(results)} download(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 2 if failed else 0
