"""The dataset layer's error type."""

from __future__ import annotations

from ..errors import ECGFounderError

__all__ = ["DatasetError"]


class DatasetError(ECGFounderError, ValueError):
    """A dataset folder or table is missing files or columns, or holds unusable values."""
