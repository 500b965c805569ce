"""Optional dependencies: import them on use, with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` telling how to install it.

    ``extra`` is the ecgfounder extra that provides it; ``what`` names the feature that needs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{what} needs the optional package {module.split('.')[0]!r}; install it with "
            f"pip install 'ecgfounder[{extra}]'"
        ) from None
