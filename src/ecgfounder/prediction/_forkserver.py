"""Loaded once by the forkserver that starts prediction's worker processes, never by users.

A worker started from a bare interpreter spends seconds before its first record: it imports scipy,
wfdb and the package's reading and preparation modules and loads the compiled kernels of the
quality check and the filter chain (2.8 s to the first record with two workers on the project
machine, 9.7 s for 2,000 records with eight cold workers on a 16-core GPU host, where the model
itself needed 0.2 s).  The forkserver (:func:`ecgfounder.prediction.workers.worker_context`)
imports this module once, and every worker is a fork of it, with all of that already in memory.

It also loads the parent's main script (:func:`load_main`), which CPython's forkserver fails to do
before the fix of gh-126631 (3.13 and 3.14 releases of late 2025).  The warm-up runs one synthetic
10-s 12-lead recording through the quality check and preprocessing, so the compiled kernels are
loaded (or compiled and cached) here, once.  A failure of either is not an error: the workers then
load what they need themselves.
"""

from __future__ import annotations

import json
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # workers run single-threaded
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from ..io import detect  # noqa: E402,F401  (the reader registry)
from ..recording import Recording  # noqa: E402
from ..signal.leads import STANDARD_12  # noqa: E402
from ..signal.preprocess import PreprocessContract  # noqa: E402
from .records import prepare_one  # noqa: E402
from .workers import MAIN_ENV  # noqa: E402


def load_main() -> bool:
    """Import the parent's main script here, once, as the forkserver's ``"__main__"`` preload is
    meant to (and does once CPython has the fix of gh-126631 / gh-137996; before, the path never
    reached the server, so every worker ran the script again: 1.2 s a worker for a script that
    imports torch, on the project machine).  The parent names the script and its ``sys.argv`` in
    ``MAIN_ENV`` (:func:`ecgfounder.prediction.workers.worker_context`).  ``True`` if the script
    is loaded."""
    raw = os.environ.pop(MAIN_ENV, None)
    if not raw:
        return False
    try:
        spec = json.loads(raw)
        path, argv = spec["path"], list(spec["argv"])
    except (ValueError, KeyError, TypeError):
        return False
    if getattr(sys.modules.get("__main__"), "__file__", None) == path:
        return True  # (a CPython whose forkserver loaded it already)
    from multiprocessing import process, spawn

    saved = sys.argv
    sys.argv = argv
    process.current_process()._inheriting = True  # the script's own guard against starting processes
    try:
        spawn.import_main_path(path)
    except BaseException:  # noqa: BLE001 - even a SystemExit: each worker then runs the script itself
        return False
    finally:
        del process.current_process()._inheriting
        sys.argv = saved
    return True


def warm() -> bool:
    """Run one synthetic recording through the quality check and preprocessing; ``True`` if it went
    through (the kernels are then in memory)."""
    try:
        import wfdb  # noqa: F401  (the commonest archive format: its reader's library)
    except ImportError:  # pragma: no cover - a core dependency
        pass
    t = np.arange(5000) / 500.0
    rng = np.random.default_rng(0)
    sig = np.stack([np.sin(2 * np.pi * 1.2 * t) * (0.5 + 0.05 * k) for k in range(12)])
    rec = Recording(sig + rng.normal(0, 0.01, sig.shape), 500.0, tuple(STANDARD_12))
    try:
        res, prep = prepare_one(0, 0, 0, "warm-up", rec, None, PreprocessContract(), {"quality": "warn"})
    except Exception:  # noqa: BLE001 - never stop the forkserver; the workers load lazily instead
        return False
    return prep is not None


MAIN_LOADED = load_main()
WARMED = warm()
