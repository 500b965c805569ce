"""Run logs: the per-epoch ``log.csv``, TensorBoard events (``tb/``) and the log lines."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from .._fileio import atomic_path

__all__ = ["RunLog"]

logger = logging.getLogger("ecgfounder.train")


class RunLog:
    """Writes what a run reports, on the main process only (``enabled=False`` elsewhere)."""

    def __init__(self, out: Path, *, enabled: bool, tensorboard: bool, global_step: int = 0):
        self.out, self.enabled = out, enabled
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # a resumed run hides the events after its checkpoint's step, not those of that step
                self.writer = SummaryWriter(str(out / "tb"), purge_step=global_step + 1 if global_step else None)
            except ImportError:
                warnings.warn("tensorboard is not installed (pip install 'ecgfounder[train]'); TensorBoard logs skipped.",
                              stacklevel=3)

    def step(self, global_step: int, loss: float, lr: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, global_step)
            self.writer.add_scalar("train/lr", lr, global_step)

    def epoch(self, history: list[dict[str, Any]], val_metrics: dict[str, float], train_loss: float, global_step: int) -> None:
        """Log the last row of ``history`` and rewrite ``log.csv`` (atomically)."""
        if not self.enabled:
            return
        row = history[-1]
        logger.info("epoch %d: %s", row["epoch"], ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                           for k, v in row.items() if k != "epoch"))
        with atomic_path(self.out / "log.csv") as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
        if self.writer is not None:
            for k, v in val_metrics.items():
                self.writer.add_scalar(f"val/{k[4:]}", v, global_step)
            self.writer.add_scalar("train/epoch_loss", train_loss, global_step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
