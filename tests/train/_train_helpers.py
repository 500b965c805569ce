"""Helpers of the fine-tuning tests (a module of its own: ``from conftest import`` would depend on
which directory's conftest pytest imported last)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "train"


class SimulatedInterrupt(RuntimeError):
    """Raised from a step hook to stop a run between optimiser steps, as a kill would."""


SMALL = {"base_filters": 8, "filter_list": [16, 16, 32], "m_blocks_list": [1, 1, 1]}


def base_config(manifest: Path, out: Path, cache: Path, **sections) -> dict:
    cfg = {
        "data": {"manifest": str(manifest), "leads": 1, "cache_dir": str(cache), "cache_workers": 1},
        "model": {"init": "random", "arch": dict(SMALL)},
        "task": {"type": "binary"},
        "strategy": {"name": "full"},
        "optim": {"lr": 3e-3, "scheduler": "cosine"},
        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "progress": False, "early_stopping": 0,
                  "threads": 1},
        "output": {"dir": str(out), "tensorboard": False},
        "eval": {"n_boot": 50},
    }
    for sec, vals in sections.items():
        cfg.setdefault(sec, {}).update(vals)
    return cfg


class FullDisk:
    """``disk.fill()`` makes every later write of this process past ``limit`` bytes fail as on a
    full disk (``RLIMIT_FSIZE``: the write fails with EFBIG, SIGXFSZ ignored) until the ``with``
    block ends."""

    def __init__(self, limit: int = 4096):
        self.limit = limit

    def __enter__(self):
        import resource
        import signal

        self._signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self._rlimit = resource.getrlimit(resource.RLIMIT_FSIZE)
        return self

    def fill(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self._rlimit[1]))

    def __exit__(self, *exc):
        import resource
        import signal

        resource.setrlimit(resource.RLIMIT_FSIZE, self._rlimit)
        signal.signal(signal.SIGXFSZ, self._signal)
