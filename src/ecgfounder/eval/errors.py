"""The evaluation layer's error type."""

from __future__ import annotations

from ..errors import ECGFounderError

__all__ = ["EvaluationError"]


class EvaluationError(ECGFounderError, ValueError):
    """Evaluation inputs that cannot be scored: shapes, splits, thresholds, options."""
