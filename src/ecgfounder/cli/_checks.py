"""Checks shared by subcommands: argparse types (counts, probabilities, reading options), and output
paths that can be written (answered before a model is loaded or a file is read)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable

from .._fileio import unwritable_reason

__all__ = ["count", "probability", "rate", "seconds", "voltage_unit", "check_writable", "usage"]


def usage(message: str) -> Exception:
    """A one-line error for a command-line mistake (printed as ``error: ...``, exit 2)."""
    from ..errors import SetupError

    return SetupError(message)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def count(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}; give an integer >= {least}")
        return value
    return parse


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is not a probability; give a number from 0 to 1")
    return value


def rate(text: str) -> float:
    """An argparse type: a sampling rate in Hz within the readers' plausible range."""
    from ..recording import FS_MAX, FS_MIN

    value = _number(text)
    if not (math.isfinite(value) and FS_MIN <= value <= FS_MAX):
        raise argparse.ArgumentTypeError(f"{text} Hz is not an ECG sampling rate; give one from {FS_MIN:g} to "
                                         f"{FS_MAX:g} (e.g. 500)")
    return value


def seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds; give e.g. 60")
    return value


def voltage_unit(text: str) -> str:
    """An argparse type: an amplitude unit the readers convert to mV."""
    from ..io._common import unit_scale_to_mv

    if unit_scale_to_mv(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a voltage unit; choose mV, uV, V or nV")
    return text


def check_writable(path: Any, flag: str, *, folder: bool = False) -> Path:
    """``path`` (a file, or with ``folder=True`` a folder) can be created: the nearest existing folder
    above it accepts a new file.  Tried for real, as permission bits do not tell (root, read-only mounts)."""
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise usage(f"{flag} {p} is a file; give a folder (it is created if needed).")
    if not folder and p.is_dir():
        raise usage(f"{flag} {p} is a folder; give a file name.")
    _, reason = unwritable_reason(p if folder else p.parent)
    if reason:
        raise usage(f"{flag} {p}: {reason}; choose another path.")
    return p
