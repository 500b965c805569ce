"""File-name suffixes several layers need, in one light module (the CLI builds its parser from them
without importing the readers, writers or torch)."""

from __future__ import annotations

__all__ = ["WRITE_FORMATS", "CHECKPOINT_SUFFIXES"]

#: the record formats :func:`ecgfounder.io.write` writes, and their files' suffixes
WRITE_FORMATS: dict[str, str] = {"wfdb": ".hea", "npz": ".npz", "edf": ".edf", "bdf": ".bdf"}

#: suffixes of checkpoint files (torch pickles) that convert to safetensors
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".ckpt")
