"""Exception types.  Every error a user can trigger with bad input is an :class:`ECGFounderError`
(and a ``ValueError`` or ``OSError``) whose one-line message names the bad value, the valid
choices and the fix.  Library messages name the library's arguments (``device=``); the command
line translates them to its flags (``--device``)."""

from __future__ import annotations

__all__ = ["ECGFounderError", "RecordReadError", "LeadError", "CheckpointError", "WeightsDownloadError", "SetupError",
           "OutputLockedError", "WorkersCannotStartError", "WorkerDiedError", "one_line"]


class ECGFounderError(Exception):
    """Base class of the package's own errors."""


class RecordReadError(ECGFounderError, ValueError):
    """A file could not be read as an ECG recording.  ``str(err)`` is one line naming the file;
    ``member``: the file inside an archive it is about, if any."""

    member: str | None = None

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(one_line(f"{self.path}: {reason}"))


def one_line(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\x1b``): a file name
    from an archive or a header cannot break the line or send a terminal its escape codes."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class LeadError(ECGFounderError, ValueError):
    """The leads of a recording do not match what the model needs."""


class CheckpointError(ECGFounderError, ValueError):
    """A checkpoint file is unsafe, corrupt, or does not fit the architecture."""


class WeightsDownloadError(ECGFounderError, OSError):
    """Published weights could not be fetched (no network, corrupt download)."""


class SetupError(ECGFounderError, ValueError):
    """A run cannot start as asked (device, inputs, output, options, missing optional package);
    raised before any model is loaded or any file is written.  ``argument`` names the library
    argument at fault (``"device"``, ``"output"``, ...), for front ends to translate."""

    def __init__(self, message: str, argument: str | None = None):
        self.argument = argument
        super().__init__(message)


class OutputLockedError(SetupError):
    """Another running process is writing the same output file."""


class WorkersCannotStartError(ECGFounderError, RuntimeError):
    """Worker processes that read and prepare records die before doing any work (not something one
    input causes: that input is reported as a failed record instead)."""


class WorkerDiedError(ECGFounderError, RuntimeError):
    """A worker process died on a batch of inputs again after the inputs that end a worker when
    read alone were set aside: no single input's doing (memory, most likely); the message names the
    batch and the settings that make batches smaller."""
