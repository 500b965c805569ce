"""An explicitly chosen int8/OpenVINO path, checked against fp32 at the batches it serves.

``auto`` takes a path only after checking it at the batch it will serve (:mod:`ecgfounder.runtime.
auto`): OpenVINO compiles a batch size seen twice for that size, and its int8 kernels once gave
rows 20+ of a batch of 40 off by 0.04 on a small model that agreed on 8 windows.  A path named
explicitly (``precision='int8', backend='openvino'``; CLI ``--precision int8 --backend openvino``)
gets the same check on the batches on which OpenVINO compiles: the first batch (its dynamic-shape
model) and the second batch of each of the first two batch sizes seen twice (its fixed-size models,
:func:`~ecgfounder.runtime.openvino.openvino_session`) compare up to :data:`ROWS` rows spread over
the batch (one in every part OpenVINO's streams run) with the fp32 eager forward of the caller's
model.  A path off by more than :data:`BOUNDS` raises :class:`PathDisagreesError` naming the path,
the batch and the agreement measured; that batch's outputs are not returned, and the path
serves no batch after it (a batch run beside a check waits for its verdict).  (It is
:func:`~ecgfounder.runtime.runners.make_runner` that checks; ``build_runner``, auto's building
block, does not: auto checks its paths itself.)

The bounds are auto's probability bound (0.01) with a cosine bound meant for broken kernels, not
for auto's choice between accurate paths (0.99 against 0.999): int8 keeps a cosine of 0.9985 on
a 20-k-parameter model (both back-ends alike) and 0.99925 on the released architecture (synthetic
weights, 16 real windows of calibration; max |Δprob| 1.5e-3 and 5.7e-3).

Cost: one fp32 forward of at most 8 windows per checked batch, at most 3 batches (2 in a run of
one batch size).  Measured on the released architecture (synthetic weights), 2 busy cores, batch
32: 0.9-2.3 s a check (the process's first fp32 forward is the dearer; 0.13 s once warm), 2.5-4.5 s
a run, beside the 2.7-4.6 s OpenVINO's own compilations take on those two batches (a batch then
runs in 0.4-0.7 s).  The int8 path is not run again.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from ..errors import ECGFounderError
from .auto import Bounds, agreement

__all__ = ["CHECKED_PATHS", "BOUNDS", "ROWS", "PathDisagreesError", "check_rows", "check_served"]

CHECKED_PATHS = (("int8", "openvino"),)
BOUNDS = Bounds(min_cosine=0.99)
ROWS = 8


class PathDisagreesError(ECGFounderError, RuntimeError):
    """An explicitly chosen inference path disagrees with fp32 at a batch it serves."""

    argument = "precision"


def check_rows(n: int, rows: int = ROWS) -> np.ndarray:
    """The rows of a batch of ``n`` that are checked: ``rows`` spread evenly, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, rows)).round().astype(int)) if n else np.zeros(0, int)


def check_served(runner: Any, reference: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], *,
                 bounds: Bounds = BOUNDS, rows: int = ROWS) -> Any:
    """``runner`` (a :class:`~ecgfounder.runtime.runners.Runner`) with its batches checked against
    ``reference`` (the fp32 eager forward) as the module documentation says; returns it."""
    fn, seen, lock = runner.fn, {}, threading.Condition()
    fixed: list[int] = []  # the batch sizes checked on their second batch
    state = {"checking": 0, "failed": ""}  # checks under way; the message of a path found to disagree
    path = f"precision={runner.precision!r} with backend={runner.backend!r}"

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with lock:  # a path found to disagree serves nothing more (the service goes on after an error)
            if state["failed"]:
                raise PathDisagreesError(state["failed"])
        scores, feats = fn(x)
        n = len(scores)
        with lock:
            due = n > 0 and (not seen or (seen.get(n) == 1 and len(fixed) < 2))
            if n:
                seen[n] = seen.get(n, 0) + 1
            if due and seen[n] == 2:
                fixed.append(n)
            if due:
                state["checking"] += 1
            else:  # a batch run beside a check (other threads) waits for its verdict
                lock.wait_for(lambda: not state["checking"])
                if state["failed"]:
                    raise PathDisagreesError(state["failed"])
        if due:
            try:
                idx = check_rows(n, rows)
                ref_s, ref_f = reference(np.ascontiguousarray(np.asarray(x, dtype=np.float32)[idx]))
                dp, cos = agreement(scores[idx], feats[idx], np.asarray(ref_s, np.float64),
                                    np.asarray(ref_f, np.float64))
                if not (dp <= bounds.max_dprob and cos >= bounds.min_cosine):  # (NaN fails too)
                    state["failed"] = (
                        f"{path} disagrees with fp32 at batch {n} on this machine: max |Δprob| {dp:.3g} (bound "
                        f"{bounds.max_dprob:g}), min embedding cosine {cos:.4f} (bound {bounds.min_cosine:g}) on "
                        f"{len(idx)} of its windows run again in fp32; its results were not used. Use precision='fp32', "
                        "or precision='auto', which measures the paths on this machine and takes only those that agree.")
                    raise PathDisagreesError(state["failed"])
            finally:
                with lock:
                    state["checking"] -= 1
                    lock.notify_all()
        return scores, feats

    runner.fn = run
    runner.detail = "; ".join(filter(None, [runner.detail, "checked against fp32 at the first batches it serves"]))
    return runner
