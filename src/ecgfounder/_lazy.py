"""Names of a package loaded on first use (PEP 562), so that ``ecgfounder --help`` and light
commands start without torch, scipy or pandas.  One helper for every package that does this."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_names"]


def lazy_names(package: str, namespace: dict[str, Any], table: Mapping[str, "str | tuple[str, str]"],
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose module globals are ``namespace``.

    ``table`` maps a public name to ``"module"`` (the attribute of the same name in it) or
    ``("module", "attribute")``; a module without leading dots is a submodule of ``package``.
    A value is imported on first access and then kept in ``namespace``.
    """
    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        spec = table[name]
        module, attr = (spec, name) if isinstance(spec, str) else spec
        value = getattr(importlib.import_module(module if module.startswith(".") else f".{module}", package), attr)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
