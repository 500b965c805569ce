"""Process-global state a training run touches, captured and restored.

Training seeds the random generators (Python, numpy, torch, CUDA) and may set torch's thread
count, deterministic algorithms and ``torch.backends.cudnn.benchmark``.  A library function must
leave the caller's process as it found it: :func:`preserved_global_state` restores all of them
on exit (normal or not).  :func:`rng_state` / :func:`set_rng_state` are the RNG part in a form
``torch.save(weights_only=True)`` accepts (for resumable checkpoints).
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch

__all__ = ["rng_state", "set_rng_state", "preserved_global_state"]


def rng_state() -> dict[str, Any]:
    """The state of every global random generator (Python, numpy, torch, CUDA when present),
    as tensors and plain values only."""
    np_state = np.random.get_state()
    py = random.getstate()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": [py[0], list(py[1]), py[2]],
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    p = st["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


@contextlib.contextmanager
def preserved_global_state() -> Iterator[None]:
    """Restore on exit the global RNGs, torch's thread count, deterministic-algorithms mode and
    ``torch.backends.cudnn.benchmark`` / ``.deterministic`` as they were on entry."""
    rng = rng_state()
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    bench, cudnn_det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = bench, cudnn_det
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        set_rng_state(rng)
