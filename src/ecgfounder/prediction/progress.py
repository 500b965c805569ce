"""Progress of a long run, for a person at a terminal and for a log file.

On a terminal: a ``tqdm`` bar counting records, with the windows done and their rate beside it
(a 30-min Holter record moves the window count while the record count waits).  Elsewhere
(batch jobs, ``2> log``): one plain line every ``every_s`` seconds, e.g.
``predict: 120/300 records, 1,532 windows, 41.2 windows/s, ETA 0:01:07``, and one at the end.
Messages (warnings, errors) go through :meth:`Progress.write` so they do not tear the bar.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["Progress"]


def _eta(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Records and windows done, shown as a bar (terminal) or periodic lines (not a terminal).

    Args:
        total: records expected (``None``: unknown).
        desc: what is running (``"predict"``, ``"embed"``).
        enabled: show progress at all.
        quiet: hide :meth:`note` lines too (errors written with :meth:`write` still show).
        stream: where to write (default ``sys.stderr``, looked up when used).
        bar: force the bar on or off (default: whether ``stream`` is a terminal).
        every_s: seconds between plain lines.
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True, stream: IO[str] | None = None,
                 bar: bool | None = None, every_s: float = 30.0, initial: int = 0, quiet: bool = False):
        self.total, self.desc, self.enabled, self.every_s, self.quiet = total, desc, enabled, every_s, quiet
        self._stream = stream
        self.records = initial
        self._start_records = initial
        self.windows = 0
        self._t0 = self._last = time.monotonic()
        out = self.stream
        use_bar = enabled and (bar if bar is not None else bool(getattr(out, "isatty", lambda: False)()))
        self._bar: Any = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="rec", file=out, dynamic_ncols=True,
                             mininterval=0.5, leave=False)

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    def line(self) -> str:
        """``desc: done/total records, windows, rate, ETA``."""
        dt = max(time.monotonic() - self._t0, 1e-9)
        rate_w = self.windows / dt
        rate_r = (self.records - self._start_records) / dt
        total = f"/{self.total}" if self.total is not None else ""
        text = f"{self.desc}: {self.records}{total} records, {self.windows:,} windows, {rate_w:.1f} windows/s"
        if self.total is not None and rate_r > 0 and self.records < self.total:
            text += f", ETA {_eta((self.total - self.records) / rate_r)}"
        return text

    def _tick(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.windows:,} windows")
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def add_windows(self, n: int) -> None:
        self.windows += int(n)
        self._tick()

    def add_records(self, n: int = 1) -> None:
        self.records += int(n)
        if self._bar is not None:
            self._bar.update(n)
        self._tick()

    def resumed(self, n: int) -> None:
        """``n`` records done by an earlier run (``--resume``): counted, but not in this run's rate
        (taken as done in this run's first second, they made the ETA a few seconds)."""
        self.records += int(n)
        self._start_records += int(n)
        if self._bar is not None:  # (not update(n): tqdm would take them into its rate)
            b = self._bar
            b.initial, b.n, b.last_print_n = b.initial + int(n), b.n + int(n), b.last_print_n + int(n)
            b.refresh()

    def write(self, message: str) -> None:
        """Print one message line without tearing the bar (always shown, even when disabled)."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        """An informational line (resuming, calibrating ...): shown unless ``quiet``."""
        if not self.quiet:
            self.write(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and time.monotonic() - self._t0 >= self.every_s:
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
