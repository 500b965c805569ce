"""The signal layer's error type."""

from __future__ import annotations

from ..errors import ECGFounderError

__all__ = ["SignalError"]


class SignalError(ECGFounderError, ValueError):
    """A signal, or a setting of its processing, that cannot be used as given: array shape, rows
    against lead names, length, filter or preprocessing-contract values, model windows."""
