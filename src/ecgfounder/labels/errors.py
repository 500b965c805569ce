"""The label layer's error type."""

from __future__ import annotations

from ..errors import ECGFounderError

__all__ = ["LabelError"]


class LabelError(ECGFounderError, ValueError):
    """An unknown label, or a mapping table or composite that names one."""
