"""Command-line interface: ``ecgfounder SUBCOMMAND ...``.

Each subcommand lives in its own module of this package exposing ``add_parser(subparsers)``,
which registers an ``argparse`` parser whose ``func`` default is ``run(args) -> int``.
The CLI is a thin layer: parsing, calling the library, printing.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from typing import Sequence

__all__ = ["main", "build_parser"]

# Subcommand modules, in the order shown by --help.  A module that is not present is skipped.
SUBCOMMANDS = (
    "predict",
    "embed",
    "info",
    "plot",
    "report",
    "convert",
    "evaluate",
    "finetune",
    "pretrain",
    "export",
    "merge",
    "download",
    "env",
    "serve",
)


def _requested(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if known."""
    for tok in argv:
        if not tok.startswith("-"):
            return tok if tok in SUBCOMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; ``parser.subcommands`` maps each subcommand to its own parser.

    ``only``: register just that subcommand (its module alone is imported: a command answers a
    mistake without waiting for every other command's imports)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="ecgfounder",
        description="ECGFounder: 150 ECG diagnoses, embeddings, evaluation and fine-tuning.",
    )
    parser.add_argument("--version", action="version", version=f"ecgfounder {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.subcommands = sub.choices  # type: ignore[attr-defined]
    for name in SUBCOMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        mod.add_parser(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None):  # noqa: ARG001
    from ._common import flags

    return f"warning: {flags(str(message))}\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_requested(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:  # shown under the usage of the subcommand they were given to, not the top level's
        owner = parser.subcommands.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s" if not args.verbose else "%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # library retry chatter (huggingface_hub's offline retries) is noise here
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
        for name in ("httpx", "httpx2", "urllib3", "filelock"):  # (httpx2: huggingface_hub's client since 2.x)
            logging.getLogger(name).setLevel(logging.ERROR)
    warnings.formatwarning = _format_warning
    # third-party deprecation notices (e.g. wfdb on pandas) are not the user's business
    for cat in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=cat)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..errors import ECGFounderError
    from ._common import flags

    import signal
    import threading

    def terminated(signum: int, frame: object) -> None:  # a scheduler's or `kill`'s SIGTERM: as Ctrl-C
        raise KeyboardInterrupt()

    # (without it the process died at once: no progress saved, no resume message, spool files left)
    previous = signal.signal(signal.SIGTERM, terminated) if threading.current_thread() is threading.main_thread() else None
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # a run that saved its progress says so (once); else one word
        print(flags(" ".join(str(exc).split())) or "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`| head`): not a failure of the files
        try:  # (no second error when the interpreter flushes stdout at exit)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141
    except (ValueError, OSError, ImportError, ECGFounderError) as exc:  # (the package's own: also RuntimeErrors)
        if args.verbose:
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {flags(msg, getattr(exc, 'argument', None), getattr(args, 'flag_names', None))}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
