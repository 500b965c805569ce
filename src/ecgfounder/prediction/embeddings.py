"""What an embeddings array carries beside it, and what is said when its rows are approximate.

Beside ``emb.npy`` (float32 ``(rows, num_features)``) a run writes ``emb.json``: the weights
(published name and file hash where known, content fingerprint), the preprocessing contract and
the lead fed, how windows became rows, the inference path that ran (``auto`` resolved) and
whether it is exact, the counts and the failed records.  It is removed before the array is
replaced and written after it, so it never describes other rows than the array beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .parts import copy_rows_npy, meta_path

__all__ = ["runner_path", "inference_note", "embeddings_meta", "finish_embeddings"]

_ROWS = {"mean": "records: the mean of each record's 10-s window embeddings",
         "max": "records: the elementwise maximum of each record's 10-s window embeddings",
         "none": "windows: one row per 10-s window (columns 'window' of the index, its number in the record, "
                  "and 'start_s', its first second in the recording)"}


def _source(model: Any) -> str | None:
    """A checkpoint file's absolute path, or the weights' name (``12-lead``, ``hf://...``)."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    return str(Path(model).resolve()) if Path(model).is_file() else str(model)


def runner_path(runner: Any, requested: tuple[str, str | None]) -> tuple[str, str]:
    """``(precision, backend)`` a runner ran (an ``auto`` runner's choice once it measured);
    ``requested`` where it does not say (a plain function, or ``auto`` before any batch)."""
    got = (getattr(runner, "precision", None), getattr(runner, "backend", None))
    if None in got or "auto" in got:
        return str(requested[0]), str(requested[1] or "auto")
    return str(got[0]), str(got[1])


def inference_note(precision: str, backend: str) -> str | None:
    """One line saying that embeddings of a path other than fp32 are approximate; ``None`` for fp32
    (and for ``auto`` not resolved: no batch ran, or the runner was the caller's own function)."""
    if precision in ("fp32", "auto"):
        return None
    from ..runtime.auto import Bounds

    return (f"the embeddings were computed in {precision}/{backend}: close to, not equal to, fp32's (precision='auto' "
            f"only takes a path whose embeddings keep a cosine >= {Bounds.min_cosine:g} with fp32's on the windows "
            "it measures); precision='fp32' (CLI: --precision fp32) gives exact ones.")


def embeddings_meta(model: Any, run: Any, requested: Sequence[str]) -> dict[str, Any]:
    """The description of the embeddings ``run`` (an archive run: its job, report, files, rows and
    runner) wrote with ``model``, asked for ``requested`` ``(precision, backend)``."""
    from .. import __version__
    from ..models.description import model_fingerprint

    job, report, d = run.job, run.report, model.description
    contract = d.contract.with_mode(job.mode) if d.contract is not None else None
    precision, backend = runner_path(run.runner, requested)
    return {
        "format": "ecgfounder embeddings", "version": 1, "ecgfounder": __version__,
        "array": {"file": Path(run.emb).name, "shape": [run.emb_rows, int(model.num_features)], "dtype": "float32"},
        "index": Path(run.out).name if run.out else None,
        "rows": _ROWS[job.aggregate], "aggregate": job.aggregate,
        "model": {"name": d.name, "revision": d.revision, "sha256": d.sha256, "fingerprint": model_fingerprint(model),
                  "source": _source(job.model),
                  "num_features": int(model.num_features), "in_channels": int(model.config.in_channels)},
        "preprocessing": contract.to_dict() if contract is not None else None,
        "lead": (job.lead or contract.leads[0]) if contract is not None and len(contract.leads) == 1 else None,
        "inference": {"precision": precision, "backend": backend, "exact": precision == "fp32",
                      "device": str(getattr(run.runner, "device", job.device)), "requested": list(requested),
                      "note": inference_note(precision, backend)},
        "records": {"files": len(run.files), "embedded": report.n_ok, "failed": len(report.failures)},
        "failures": [list(f) for f in report.failures],
    }


def finish_embeddings(partial: Path, out: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Publish the float32 rows of ``partial`` (shape ``meta["array"]["shape"]``) as ``out``
    (``.npy``, atomically, in bounded memory), then ``meta`` beside it (:func:`meta_path`).
    ``partial`` is kept: the run removes it once its table is published too (a run stopped before
    that continues from it)."""
    from .._fileio import write_json

    rows, dim = meta["array"]["shape"]
    meta_path(out).unlink(missing_ok=True)  # (a stale description never sits beside new rows)
    src = np.memmap(partial, dtype=np.float32, mode="r", shape=(rows, dim)) if rows else np.zeros((0, dim), np.float32)
    copy_rows_npy([src], out, dim=dim)
    del src
    write_json(meta_path(out), meta)
