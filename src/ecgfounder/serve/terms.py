"""Library messages in the terms of a request.

The library names its own arguments, with the command line's flag beside them
(``pass fs=... (CLI: --fs)``).  A client of the service or an agent calling the MCP tool can pass
neither: it sets query parameters, JSON fields or tool arguments.  :class:`Terms` writes such a hint
as what the request can set (``pass the query parameter fs=...``) and leaves out the hints it cannot
follow (``fill_missing=True (CLI: --fill-missing) ...``, ``use ecgfounder.io.iter_read()``), as the
command line translates the same messages to its flags (``cli._common.flags``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Terms", "WFDB_BESIDE", "one_line", "say", "said"]

# the WFDB reader's fix for a signal file not beside its header (said for files on a disk)
WFDB_BESIDE = "WFDB reads it from the header's folder; put the two files side by side"

_VALUE = r"""'[^']*'|"[^"]*"|\[[^\]]*\]|\([^)]*\)|\.\.\.|[\w.:+-]+"""
# an argument the library asks for: "pass fs=500", "name=PLACEHOLDER", or any "name=value (CLI: --flag ...)"
_ARG = re.compile(rf"(?P<verb>\b[Pp]ass\s+)?\b(?P<name>[a-z][a-z_]*)=(?P<value>{_VALUE})?(?P<cli>\s*\(CLI:[^)]*\))?")
_PLACEHOLDER = re.compile(r"\.\.\.|\[\.\.\.\]|[A-Z][A-Z_]+")  # "fs=...", "leads=[...]", "max_duration=SECONDS"
_BARE = re.compile(r"\s*\((?P<name>[a-z][a-z_]*)=\)")  # "check the units (units=)"
_CLI = re.compile(r"\s*\([^()]*\bCLI\b[^()]*\)")  # "(CLI: --fs)", "(the CLI reads every one)"
_API = re.compile(r"\becgfounder\.[\w.]+\(")  # "use ecgfounder.io.iter_read()"
_SEGMENT = re.compile(r"(?<=[.;])(?<!\.\.)\s+(?!\()")  # clauses and sentences ("fs=..." ends neither)


@dataclass(frozen=True)
class Terms:
    """How one kind of request sets the library's arguments.

    Attributes:
        where: the words before a name, e.g. ``"the query parameter"``, ``"the argument"``.
        names: the library arguments such a request sets (under the same names).
        csv_lists: list values are written comma-separated (a query string: ``leads=I,II``),
            else as JSON (``leads=["I", "II"]``).
        rewrites: ``(library words, the request's words)``: a fix said for files on a disk (``put the
            two files side by side``) as such a request gives the files.
        elsewhere: the terms of the library arguments such a request sets in another place (an
            inline JSON signal's ``lead``: a query parameter, not a field of the body).
    """

    where: str
    names: frozenset[str]
    csv_lists: bool = False
    rewrites: tuple[tuple[str, str], ...] = ()
    elsewhere: "Terms | None" = None

    def _owner(self, name: str) -> "Terms | None":
        """The terms (these, or :attr:`elsewhere`) in which the request sets ``name``; ``None``: it cannot."""
        if name in self.names:
            return self
        return self.elsewhere._owner(name) if self.elsewhere is not None else None

    def __call__(self, message: str, argument: str | None = None) -> str:
        """``message`` (one line) in these terms; ``argument``: the library argument at fault
        (:attr:`ecgfounder.errors.SetupError.argument`), named first when the request sets it."""
        for said, fix in self.rewrites:
            message = message.replace(said, fix)
        kept = []
        for i, segment in enumerate(_SEGMENT.split(message)):
            unusable = False

            def arg(m: re.Match) -> str:
                nonlocal unusable
                asked = m["verb"] or m["cli"] or _PLACEHOLDER.fullmatch(m["value"] or "")
                if not asked:  # a value described ("units='x' is not ..."), not asked for
                    return m[0]
                owner = self._owner(m["name"])
                if owner is None:
                    unusable = True
                    return m[0]
                return (m["verb"] or "") + owner._render(m["name"], m["value"] or "")

            def bare(m: re.Match) -> str:
                owner = self._owner(m["name"])
                return f" ({owner.where} {m['name']})" if owner is not None else ""

            segment = _ARG.sub(arg, segment)
            segment = _BARE.sub(bare, segment)
            if i and (unusable or _API.search(segment)):  # a hint this request cannot follow
                continue
            kept.append(_CLI.sub("", segment))
        text = " ".join(kept).strip()
        if text.endswith((";", ",")):
            text = text[:-1] + "."
        owner = self._owner(argument) if argument else None
        if owner is not None and f"{argument}=" not in message:
            text = f"{owner.where} {argument}: {text}"
        return text

    def _render(self, name: str, value: str) -> str:
        if value.startswith(("[", "(")):  # lists are lead names: "[...]" is written as I, II, ...
            items = re.findall(r"""'([^']*)'|"([^"]*)"|(\.\.\.)""", value)
            items = [a or b or c for a, b, c in items] or ["I", "II", "..."]
            if items == ["..."]:
                items = ["I", "II", "..."]
            if self.csv_lists:
                value = ",".join(items)
            else:
                value = "[" + ", ".join(x if x == "..." else f'"{x}"' for x in items) + "]"
        elif len(value) > 1 and value[0] == value[-1] == "'":  # a string: bare in a query, JSON's quotes else
            value = value[1:-1] if self.csv_lists else f'"{value[1:-1]}"'
        return f"{self.where} {name}={value}"


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its type where it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def say(exc: BaseException, terms: Terms | None, hide: str | None = None, shown: str = "") -> str:
    """The library's message of ``exc`` on one line, as :func:`said` says it."""
    return said(one_line(exc), terms, hide, shown, getattr(exc, "argument", None))


def said(text: str, terms: Terms | None, hide: str | None, shown: str, argument: str | None = None) -> str:
    """``text`` with ``hide`` (a temporary path) written as ``shown``, in the request's ``terms``
    where given (``argument``: the library argument it is about)."""
    text = text.replace(hide, shown) if hide else text
    return terms(text, argument) if terms else text
