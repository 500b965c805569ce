"""Names several layers need, in one light module: the record formats written and checkpoint
suffixes (the CLI builds its parser from them without importing the readers, writers or torch), and
the columns of prediction tables that are not scores (the tables' writers and their readers), and
how a truth column is named beside its scores."""

from __future__ import annotations

__all__ = ["WRITE_FORMATS", "CHECKPOINT_SUFFIXES", "META_COLUMNS", "TARGET_PREFIX"]

#: the record formats :func:`ecgfounder.io.write` writes, and their files' suffixes
WRITE_FORMATS: dict[str, str] = {"wfdb": ".hea", "npz": ".npz", "edf": ".edf", "bdf": ".bdf"}

#: suffixes of checkpoint files (torch pickles) that convert to safetensors
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".ckpt")

#: the columns of prediction and embeddings tables that are not label scores, in table order
#: (``member``: a recording's file inside a zip archive, its path there, empty otherwise;
#: ``quality_leads`` with ``quality_detail``; ``window`` and ``start_s`` in rows of one window)
META_COLUMNS: tuple[str, ...] = ("record", "path", "member", "n_windows", "quality", "quality_leads", "window",
                                 "start_s")

#: the prefix of a truth column beside its score column in fine-tuning's ``test_predictions.csv``
#: (``target:AF`` beside ``AF``), which ``evaluate table`` takes as the label column of ``AF``
TARGET_PREFIX = "target:"
