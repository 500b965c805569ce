"""Manifest builders for known datasets, for fine-tuning.

``build_preset(name, root, out_dir, task=None) -> (manifest DataFrame, defaults)`` where
``defaults`` suggests the task type.  The datasets themselves (labels, patients, splits) are read
by :mod:`ecgfounder.datasets`, the layer evaluation uses too; this module picks the builder,
checks the preset's task and translates dataset errors into :class:`ManifestError` (whose
messages name the configuration keys):

* ``ptbxl``: :func:`ecgfounder.datasets.ptbxl.ptbxl_manifest` (benchmark tasks, folds 1–8 / 9 / 10);
* ``cinc2021``: :func:`ecgfounder.datasets.cinc2021.cinc2021_manifest` (scored classes, empty
  where the record's source database never assessed the class; the PTB-XL records grouped by
  patient when a ``ptbxl_database.csv`` lies in ``data.root`` or its parent, every other record
  its own group);
* ``cpsc2021`` / ``cpsc2019``: :mod:`ecgfounder.datasets.cpsc`.

``defaults["summary"]`` (:func:`manifest_summary`) says how many rows, records and patients the
manifest holds and the balance of each label.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..datasets import cinc2021 as _cinc
from ..datasets import cpsc as _cpsc
from ..datasets import ptbxl as _ptbxl
from ..datasets.cinc2021 import CINC2021_SCORED
from ..datasets.cpsc import af_episodes, beat_samples, heart_rate_bpm
from ..datasets.errors import DatasetError
from ..datasets.ptbxl import PTBXL_TASKS
from .manifest import RESERVED_COLUMNS, ManifestError

__all__ = [
    "build_preset",
    "manifest_summary",
    "ptbxl_manifest",
    "cinc2021_manifest",
    "cpsc2021_manifest",
    "cpsc2019_manifest",
    "af_episodes",
    "beat_samples",
    "heart_rate_bpm",
    "PTBXL_TASKS",
    "CINC2021_SCORED",
    "PRESET_TASKS",
]


def _manifest_errors(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
    """Raise the dataset layer's errors as :class:`ManifestError`, naming ``data.root``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> pd.DataFrame:
        try:
            return fn(*args, **kwargs)
        except DatasetError as exc:
            msg = str(exc).replace("root must", "data.root must").replace("stride_s=", "data.train_stride_s=")
            raise ManifestError(msg) from None

    return wrapper


ptbxl_manifest = _manifest_errors(_ptbxl.ptbxl_manifest)
cinc2021_manifest = _manifest_errors(_cinc.cinc2021_manifest)
cpsc2021_manifest = _manifest_errors(_cpsc.cpsc2021_manifest)
cpsc2019_manifest = _manifest_errors(_cpsc.cpsc2019_manifest)

PRESET_TASKS: dict[str, tuple[str, ...]] = {
    "ptbxl": PTBXL_TASKS,
    "cinc2021": ("scored",),
    "cpsc2021": ("af", "hr"),
    "cpsc2019": ("heart_rate",),
}

PRESET_TASK_TYPE = {"ptbxl": "multilabel", "cinc2021": "multilabel", "cpsc2021": "binary", "cpsc2019": "regression"}
# task type per (preset, preset task) where it differs from PRESET_TASK_TYPE
PRESET_SUBTASK_TYPE = {("cpsc2021", "hr"): "regression"}


def build_preset(name: str, root: str | Path, out_dir: str | Path, task: str | None = None, *,
                 stride_s: float | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``(manifest, {"task": task type, "preset_task": task})`` for a known dataset.

    ``stride_s``: extra training windows every ``stride_s`` seconds (presets cut into windows:
    ``cpsc2021``); refused for the others."""
    if name not in PRESET_TASKS:
        raise ManifestError(f"unknown preset {name!r}; choose one of {sorted(PRESET_TASKS)}.")
    task = task or ("superdiagnostic" if name == "ptbxl" else PRESET_TASKS[name][0])
    if task not in PRESET_TASKS[name]:
        raise ManifestError(f"preset {name} has no task {task!r}; choose one of {list(PRESET_TASKS[name])}.")
    if not Path(root).exists():
        raise ManifestError(f"dataset folder {root} not found (data.root).")
    if stride_s is not None and name != "cpsc2021":
        raise ManifestError(f"data.train_stride_s applies to presets cut into windows (cpsc2021), not {name}; "
                            "leave it unset.")
    if name == "ptbxl":
        df = ptbxl_manifest(root, task)
    elif name == "cinc2021":
        df = cinc2021_manifest(root, task)
    elif name == "cpsc2021":
        df = cpsc2021_manifest(root, task, stride_s=stride_s)
    else:
        df = cpsc2019_manifest(root, out_dir, task)
    if df.empty:
        raise ManifestError(f"preset {name} found no usable records below {root}.")
    kind = PRESET_SUBTASK_TYPE.get((name, task), PRESET_TASK_TYPE[name])
    return df, {"task": kind, "preset_task": task, "summary": manifest_summary(df, kind)}


def manifest_summary(df: pd.DataFrame, task: str) -> str:
    """One line: rows, records, patients and, per label column, the positives among the rows that
    assess it (classification) or mean, SD and range (regression).  Rows with ``train_only = 1``
    (extra training windows) are counted apart and left out of the balance."""
    extra = pd.to_numeric(df.get("train_only", pd.Series(0, index=df.index)), errors="coerce").fillna(0).to_numpy() > 0
    d = df[~extra]
    parts = [f"{len(d)} rows of {d['path'].nunique()} records"]
    if "patient_id" in d.columns:
        parts[0] += f", {d['patient_id'].nunique()} patients"
    if extra.any():
        parts[0] += f" (+ {int(extra.sum())} extra training windows)"
    for c in (c for c in d.columns if c not in RESERVED_COLUMNS):
        v = pd.to_numeric(d[c], errors="coerce").dropna()
        if v.empty:
            continue
        if task == "regression":
            parts.append(f"{c}: mean {v.mean():.1f}, SD {v.std():.1f}, {v.min():.1f}-{v.max():.1f} (n = {len(v)})")
        else:
            parts.append(f"{c}: {int((v > 0.5).sum())} of {len(v)} positive ({100 * (v > 0.5).mean():.1f} %)")
    return "; ".join(parts)
