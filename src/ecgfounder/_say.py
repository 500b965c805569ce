"""Where the package's one-line announcements go by default (no heavy imports: the prediction API
names it as a default without importing the runtimes)."""

from __future__ import annotations

import sys

__all__ = ["to_stderr"]


def to_stderr(line: str) -> None:
    """The default way a measured choice is announced: one line on stderr."""
    print(line, file=sys.stderr, flush=True)
