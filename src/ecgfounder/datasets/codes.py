"""The one parser of each dataset label field: WFDB ``Dx:`` comments and PTB-XL ``scp_codes``.

``parse_dx(value)``
    ``"164889003,59118001"`` (the text after ``Dx:``) → ``("164889003", "59118001")``.
``header_dx(path)``
    The ``Dx`` codes of a WFDB header file (``# Dx: ...`` comment), or ``None`` when it has no
    such line or cannot be read.  Reads the header text only (no signal, no wfdb call).
``parse_scp_codes(text)``
    PTB-XL's ``scp_codes`` field ``"{'NORM': 100.0, 'SR': 0.0}"`` → ``{code: likelihood}``.
"""

from __future__ import annotations

import ast
import os
import re
from typing import Mapping

from .errors import DatasetError

__all__ = ["parse_dx", "header_dx", "parse_scp_codes", "DX_LINE"]

DX_LINE = re.compile(r"^\s*#?\s*Dx\s*:\s*(.*)$", re.IGNORECASE)
_MAX_HEADER_BYTES = 1 << 20  # a WFDB header is a few hundred bytes; refuse to read huge files


def parse_dx(value: str) -> tuple[str, ...]:
    """Codes of a ``Dx`` value (comma-separated, blanks dropped, order kept).

    Semicolons also separate codes, and so does white space between numeric codes (SNOMED-CT
    codes hold neither), so a ``Dx: 164889003; 59118001`` line is not read as one unknown code;
    a statement in words (``Dx: sinus rhythm``, other databases) stays whole.
    """
    out: list[str] = []
    for part in re.split(r"[,;]", str(value)):
        words = part.split()
        out.extend(words if len(words) > 1 and all(w.isdigit() for w in words) else ([" ".join(words)] if words else []))
    return tuple(out)


def header_dx(path: str | os.PathLike) -> tuple[str, ...] | None:
    """``Dx`` codes of a WFDB header (``None``: no ``Dx`` line, unreadable or oversized file)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(_MAX_HEADER_BYTES)
    except OSError:
        return None
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            m = DX_LINE.match(line)
            if m:
                return parse_dx(m.group(1))
    return None


def parse_scp_codes(text: str | Mapping[str, float]) -> dict[str, float]:
    """Parse PTB-XL's ``scp_codes`` field, e.g. ``"{'NORM': 100.0, 'SR': 0.0}"``.

    Returns ``code -> likelihood`` (0–100; 0 means "not given", as for every form/rhythm
    statement); a likelihood outside 0–100 is an error.
    Only Python literals are accepted (``ast.literal_eval``), never code.
    """
    if isinstance(text, Mapping):
        val, s = dict(text), repr(dict(text))
    else:
        s = str(text).strip()
        if not s or s.lower() == "nan":
            return {}
        try:
            val = ast.literal_eval(s)
        except (ValueError, SyntaxError) as exc:
            raise DatasetError(f"scp_codes field {s[:60]!r} is not a dict literal like \"{{'NORM': 100.0}}\": {exc}") from None
        if not isinstance(val, dict):
            raise DatasetError(f"scp_codes field {s[:60]!r} is a {type(val).__name__}, expected a dict like \"{{'NORM': 100.0}}\".")
    try:
        out = {str(k).strip(): float(v) for k, v in val.items()}
    except (TypeError, ValueError):
        raise DatasetError(f"scp_codes field {s[:60]!r} has a likelihood that is not a number; "
                           "expected code: likelihood (0-100) pairs like \"{'NORM': 100.0}\".") from None
    for k, v in out.items():
        if not 0.0 <= v <= 100.0:  # NaN fails too
            raise DatasetError(f"scp_codes field {s[:60]!r} gives {k!r} the likelihood {v:g}; PTB-XL likelihoods "
                               "are 0-100 (0: not given): fix the value or drop the code.")
    return out
