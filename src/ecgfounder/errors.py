"""Exception types.  Every error a user can trigger with bad input is a ``ValueError`` subclass
whose message names the bad value, the valid choices and the fix."""

from __future__ import annotations

__all__ = ["ECGFounderError", "RecordReadError", "LeadError", "CheckpointError", "WeightsDownloadError"]


class ECGFounderError(Exception):
    """Base class of the package's own errors."""


class RecordReadError(ECGFounderError, ValueError):
    """A file could not be read as an ECG recording.  ``str(err)`` is one line naming the file."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LeadError(ECGFounderError, ValueError):
    """The leads of a recording do not match what the model needs."""


class CheckpointError(ECGFounderError, ValueError):
    """A checkpoint file is unsafe, corrupt, or does not fit the architecture."""


class WeightsDownloadError(ECGFounderError, OSError):
    """Published weights could not be fetched (no network, corrupt download)."""
