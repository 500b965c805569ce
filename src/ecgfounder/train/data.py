"""Training data: the manifest with its patient-level splits, the task's targets, and the window
cache of every usable record.  :func:`prepare_data` is what a run starts from."""

from __future__ import annotations

import io
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._fileio import atomic_path
from ..signal.preprocess import PreprocessContract
from .cache import CacheIndex, RecordRef, WindowCache, _warn_failures
from .config import ConfigError, FinetuneConfig
from .distributed import DistInfo, barrier
from .model import build_model, monitor
from .manifest import RESERVED_COLUMNS, ManifestError, check_duplicates, label_columns, read_manifest, write_manifest
from .splits import assign_splits, check_leakage, group_ids
from .tasks import TaskSpec, build_task

__all__ = ["TrainData", "prepare_data", "manifest_refs", "fill_cache", "check_resume_source"]

logger = logging.getLogger("ecgfounder.train")

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class TrainData:
    """Everything a run reads: the manifest ``df`` (with splits), the task ``spec``, raw targets
    ``y_raw`` (one per manifest row), the window cache ``index``, the manifest rows of each split
    that have cached windows (``rows``), the patient group of every row and the model's contract."""

    df: pd.DataFrame
    spec: TaskSpec
    y_raw: np.ndarray
    index: CacheIndex
    rows: dict[str, np.ndarray]
    groups: np.ndarray
    contract: PreprocessContract


def manifest_refs(df: pd.DataFrame, path_column: str = "path") -> list[RecordRef]:
    """One :class:`RecordRef` per manifest row (``start_s``/``duration_s`` where the columns exist)."""
    n = len(df)
    starts = df["start_s"] if "start_s" in df.columns else [None] * n
    durations = df["duration_s"] if "duration_s" in df.columns else [None] * n
    return [RecordRef(str(p), None if s is None or pd.isna(s) else float(s), None if u is None or pd.isna(u) else float(u))
            for p, s, u in zip(df[path_column], starts, durations)]


def _reserved(cfg: FinetuneConfig) -> tuple[str, ...]:
    d = cfg.data
    return tuple(RESERVED_COLUMNS) + (d.path_column, d.patient_column, d.split_column)


def _split_targets(df: pd.DataFrame, cols: list[str], kind: str) -> np.ndarray | None:
    try:
        if kind == "multiclass" and len(cols) == 1:
            return pd.factorize(df[cols[0]].astype(str))[0]
        return df[cols].to_numpy(dtype=float)
    except (TypeError, ValueError):
        return None


def _fixed_patients(df: pd.DataFrame, cfg: FinetuneConfig) -> tuple[pd.DataFrame, tuple[float, float, float]]:
    """Put ``data.test_patients`` / ``data.val_patients`` in their splits; the fractions of the
    fixed splits become zero for the other patients (renormalised)."""
    d = cfg.data
    fr = list(d.split_fractions)
    if not d.test_patients and not d.val_patients:
        return df, tuple(fr)  # type: ignore[return-value]
    if d.patient_column not in df.columns:
        raise ConfigError(f"data.test_patients/val_patients need the manifest column {d.patient_column!r}.")
    df = df.copy()
    pid = df[d.patient_column].astype(str).str.strip()
    known = set(pid)
    for name, ids, k in (("test", d.test_patients, 2), ("val", d.val_patients, 1)):
        if not ids:
            continue
        missing = sorted(set(map(str, ids)) - known)
        if missing:
            raise ConfigError(f"data.{name}_patients: patient(s) {missing} are not in the manifest; "
                              f"known patients: {sorted(known)[:20]}.")
        if d.split_column not in df.columns:
            df[d.split_column] = np.nan
        df[d.split_column] = df[d.split_column].astype(object)
        rows = pid.isin(set(map(str, ids))).to_numpy()
        given = df.loc[rows, d.split_column].astype(str).str.strip().str.lower()
        moved = given[df.loc[rows, d.split_column].notna() & ~given.isin(("", "nan", "none", name))]
        if len(moved):  # the manifest's own split of these patients, overridden
            was = sorted(set(zip(pid[rows][moved.index], moved)))
            warnings.warn(f"data.{name}_patients puts patient(s) in {name} that the manifest's {d.split_column!r} column "
                          f"puts elsewhere ({', '.join(f'{q}: {s}' for q, s in was[:10])}{', ...' if len(was) > 10 else ''});"
                          f" the setting wins. Clear those cells, or leave the patients out of data.{name}_patients.",
                          stacklevel=3)
        df.loc[rows, d.split_column] = name
        fr[k] = 0.0
    total = sum(fr)
    fr = [1.0, 0.0, 0.0] if total <= 0 else [f / total for f in fr]
    return df, tuple(fr)  # type: ignore[return-value]


def _source_manifest(cfg: FinetuneConfig, out: Path) -> pd.DataFrame:
    d = cfg.data
    if d.preset is not None:
        from .presets import build_preset

        return build_preset(d.preset, d.root, out, d.preset_task, stride_s=d.train_stride_s)[0]
    if d.train_stride_s is not None:
        raise ConfigError("data.train_stride_s applies to presets cut into windows (data.preset=cpsc2021); "
                          "for a manifest, add the overlapping windows as rows with train_only=1.")
    df = read_manifest(d.manifest, path_column=d.path_column, text=(d.patient_column, d.split_column))
    check_duplicates(df, d.path_column)
    return df


def _where(cfg: FinetuneConfig, d: dict[str, Any] | None = None) -> str:
    """The setting the examples come from: ``data.manifest=...`` or ``data.preset=... data.root=...``."""
    d = d if d is not None else {"preset": cfg.data.preset, "root": cfg.data.root, "manifest": cfg.data.manifest}
    return f"data.manifest={d.get('manifest')}" if d.get("preset") is None else \
        f"data.preset={d.get('preset')} data.root={d.get('root')}"


def _carried_paths(cfg: FinetuneConfig, out: Path, saved: pd.DataFrame) -> tuple[list[str] | None, int]:
    """The paths the configured source (``data.manifest``, ``data.root``) gives the run's rows
    ``saved`` where it lists the same examples in the same order (same file names and other
    columns, no column the run lacks; rows ``train_only`` outside the training split left out as
    the run did): ``(paths, len(saved))``; else ``(None, the run's first row that differs)``."""
    d = cfg.data
    buf = io.StringIO()
    _source_manifest(cfg, out).to_csv(buf, index=False)
    buf.seek(0)
    src = pd.read_csv(buf, dtype={d.path_column: str, d.patient_column: str, d.split_column: str})
    if set(src.columns) - set(saved.columns):
        return None, 0  # (a column the run's manifest does not have: other labels)
    cols = [c for c in src.columns if c in saved.columns and c not in (d.path_column, d.split_column)]
    a, b = saved[cols].astype(str).to_numpy(), src[cols].astype(str).to_numpy()
    old, new = saved[d.path_column].tolist(), src[d.path_column].tolist()
    extra = pd.to_numeric(src["train_only"], errors="coerce").fillna(0).to_numpy() > 0 if "train_only" in src else None
    paths: list[str] = []
    for i in range(len(src)):
        j = len(paths)
        if j < len(saved) and Path(old[j]).name == Path(new[i]).name and (a[j] == b[i]).all():
            paths.append(new[i])
        elif j == len(saved) or extra is None or not extra[i]:
            break  # (a row the run did not leave out, or one beyond its rows)
    if len(paths) != len(saved) or (extra is None and len(src) != len(saved)):
        return None, len(paths)
    return paths, len(paths)


def _read_run_manifest(cfg: FinetuneConfig, target: Path) -> pd.DataFrame:
    d = cfg.data
    return pd.read_csv(target, dtype={d.path_column: str, d.patient_column: str, d.split_column: str})


def _take_paths(cfg: FinetuneConfig, saved: pd.DataFrame, paths: list[str], target: Path, why: str) -> None:
    if paths != saved[cfg.data.path_column].tolist():
        write_manifest(saved.assign(**{cfg.data.path_column: paths}), target)
        logger.info("%s: %s now lists the run's records where %s does", why, target, cfg.data.manifest or cfg.data.root)


def check_resume_source(cfg: FinetuneConfig, out: Path, saved_cfg: Any, info: DistInfo) -> None:
    """On resume, before the run folder's ``config.yaml`` takes this run's settings: a source
    (``data.manifest``, a preset's ``data.root``) other than the checkpoint's must list the run's
    examples (its ``manifest.csv``, whose rows and splits the run goes on with; the same examples
    elsewhere, e.g. moved, are then read there).  A source of other examples is refused: the run
    would go on training on its old data while ``config.yaml`` named the new.  (Records gone from
    where the run's manifest lists them are left to :func:`_moved_records`.)"""
    target = out / "manifest.csv"
    was = saved_cfg.get("data") if isinstance(saved_cfg, dict) else None
    d = cfg.data
    if not isinstance(was, dict) or not target.exists() or (was.get("manifest"), was.get("root")) == (d.manifest, d.root):
        return
    saved = _read_run_manifest(cfg, target)
    if not all(os.path.exists(q) for q in saved[d.path_column].unique()):
        return  # records moved: see _moved_records
    paths, row = _carried_paths(cfg, out, saved)
    if paths is None:
        raise ManifestError(
            f"cannot resume under {_where(cfg)}: the run was started with {_where(cfg, was)}, and its rows and splits "
            f"({target}) are what it goes on training with, but the new source does not list the same examples in the "
            f"same order (from the run's row {row} on: other file names, labels, columns or rows). Resume with "
            f"{_where(cfg, was)} (the run folder's config.yaml names it), or start a new run in another output.dir "
            "to train on the new one.")
    if info.is_main:
        _take_paths(cfg, saved, paths, target, f"{_where(cfg)} lists the run's examples")


def _moved_records(cfg: FinetuneConfig, out: Path, target: Path) -> None:
    """When resuming, records that ``target`` (the run's manifest) lists where they no longer are,
    but that the configured source lists elsewhere (see :func:`_carried_paths`) are taken from
    there: ``target`` is rewritten with their new paths, its rows and splits kept.  A source of
    other examples is refused."""
    d = cfg.data
    saved = _read_run_manifest(cfg, target)
    if all(os.path.exists(q) for q in saved[d.path_column].unique()):
        return
    try:
        paths, row = _carried_paths(cfg, out, saved)
    except (ManifestError, ConfigError, OSError):
        return  # the source is gone too: the records are reported as failures
    if paths is None:
        missing = next(q for q in saved[d.path_column] if not os.path.exists(q))
        raise ManifestError(
            f"cannot resume: the run's {target} lists records that are gone (e.g. {missing}), and {_where(cfg)} does "
            f"not list the same examples in the same order (from the run's row {row} on: other file names, labels "
            "or rows), so the run's rows and splits cannot be carried over. Put the records back where the run's "
            "manifest lists them, or start a new run in another output.dir.")
    _take_paths(cfg, saved, paths, target, "the run's records moved")


def _resolved_manifest(cfg: FinetuneConfig, out: Path, info: DistInfo, resume: bool) -> pd.DataFrame:
    """The manifest with a split on every row, written once to ``out/manifest.csv`` (by the main
    process; reused when resuming, with the paths of records moved since, see :func:`_moved_records`)
    and read back by every process."""
    d = cfg.data
    target = out / "manifest.csv"
    if info.is_main and resume and target.exists():
        _moved_records(cfg, out, target)
    if info.is_main and not (resume and target.exists()):
        df = _source_manifest(cfg, out)
        cols = label_columns(df, d.label_columns, reserved=_reserved(cfg))
        y = _split_targets(df, cols, cfg.task.type)
        df, fractions = _fixed_patients(df, cfg)
        df = assign_splits(df, patient_column=d.patient_column, split_column=d.split_column, path_column=d.path_column,
                           fractions=fractions, seed=d.split_seed, y=y, task=cfg.task.type)
        if "train_only" in df.columns:
            extra = pd.to_numeric(df["train_only"], errors="coerce").fillna(0).to_numpy() > 0
            df = df[~extra | (df[d.split_column].astype(str).to_numpy() == "train")].reset_index(drop=True)
        write_manifest(df, target)
    barrier(info)
    return _read_run_manifest(cfg, target)


def _label_set(cfg: FinetuneConfig, df: pd.DataFrame, train: np.ndarray) -> list[str]:
    """The label columns, without multi-label labels under ``data.min_positives`` training positives
    (a label no training row assesses stays, for :func:`build_task` to refuse by name)."""
    d = cfg.data
    cols = label_columns(df, d.label_columns, reserved=_reserved(cfg))
    if cfg.task.type == "multilabel" and d.min_positives > 0:
        y = df.loc[train, cols].apply(pd.to_numeric, errors="coerce")
        pos = y.fillna(0).sum()
        rare = [c for c in cols if pos[c] < d.min_positives and y[c].notna().any()]
        if rare and len(rare) < len(cols):
            warnings.warn(f"label(s) {rare} have fewer than data.min_positives={d.min_positives} training positives "
                          "and are left out.", stacklevel=3)
            cols = [c for c in cols if c not in rare]
    return cols


def _window_index(cfg: FinetuneConfig, refs: list[RecordRef], contract: PreprocessContract, info: DistInfo,
                  out: Path) -> CacheIndex:
    """The window cache of ``refs``: filled by the main process, read by the others; unreadable
    records are listed in ``out/failed.csv``."""
    d = cfg.data
    cache = WindowCache(d.cache_dir, contract, lead=d.lead, format=d.format)
    if d.lead and info.is_main and tuple(contract.leads) != (d.lead,):
        logger.info("feeding lead %s of the records to the model's input %s", d.lead, contract.leads[0])
    if info.is_main:
        t0 = time.perf_counter()
        index = cache.build(refs, workers=d.cache_workers, progress=cfg.train.progress)
        logger.info("window cache %s ready in %.1f s (%d examples)", cache.root, time.perf_counter() - t0, len(refs))
    barrier(info)
    if not info.is_main:
        index = cache.index(refs)
    if index.failed and info.is_main:
        _warn_failures(index, refs)
        with atomic_path(out / "failed.csv") as tmp:
            pd.DataFrame([{"path": refs[i].path, "start_s": refs[i].start_s, "reason": why}
                          for i, why in index.failed.items()]).to_csv(tmp, index=False)
    return index


def _warn_undefined_val_auroc(cfg: FinetuneConfig, labels: tuple[str, ...], y_val: np.ndarray) -> None:
    """Warn about labels whose validation AUROC is undefined (no positive or no negative among the
    validation records that assessed them); when none is defined, a ``val_auroc`` monitor can
    neither pick the best epoch nor stop early."""
    pos = np.nansum(y_val, axis=0)
    seen = (~np.isnan(y_val)).sum(0)
    empty = [c for c, p, n in zip(labels, pos, seen) if p == 0 or p == n]
    if not empty:
        return
    msg = f"label(s) {empty} have no positive or no negative validation example: their validation AUROC is undefined"
    if len(empty) == len(labels) and monitor(cfg)[0] == "val_auroc":
        msg += ("; train.monitor=val_auroc cannot choose the best epoch or stop early (the last weights are kept). "
                "Use train.monitor=val_loss, or put positive and negative examples in the validation split.")
    else:
        msg += " and is left out of the validation AUROC."
    warnings.warn(msg, stacklevel=3)


def prepare_data(cfg: FinetuneConfig, out: Path, info: DistInfo, contract: PreprocessContract, resume: bool) -> TrainData:
    """Manifest → splits (leakage checked) → task → window cache → usable rows of each split."""
    d = cfg.data
    df = _resolved_manifest(cfg, out, info, resume)
    groups = group_ids(df, d.patient_column, d.path_column).to_numpy()
    check_leakage(df.assign(_g=groups), "_g", d.split_column)
    split = df[d.split_column].astype(str).to_numpy()
    cols = _label_set(cfg, df, split == "train")
    spec, y_raw = build_task(cfg.task.type, df, cols, split == "train", class_weighting=cfg.task.class_weighting,
                             standardize=cfg.task.standardize_targets)
    index = _window_index(cfg, manifest_refs(df, d.path_column), contract, info, out)
    ok = np.array([index.ok(i) for i in range(len(df))])
    if not ok.any():
        raise ManifestError(f"none of the {len(df)} manifest records could be prepared; see {out / 'failed.csv'}.")
    rows = {s: np.flatnonzero((split == s) & ok) for s in SPLIT_NAMES}
    if len(rows["train"]) == 0:
        raise ManifestError("no usable training records (split 'train' is empty after dropping unreadable records).")
    if info.is_main and spec.kind in ("binary", "multilabel") and len(rows["val"]):
        _warn_undefined_val_auroc(cfg, spec.labels, np.asarray(y_raw, float)[rows["val"]].reshape(len(rows["val"]), -1))
    if info.is_main and spec.kind in ("binary", "multilabel") and np.isnan(y_raw).any():
        logger.info("%d of %d (record, label) targets are empty (not assessed): left out of the loss, weights and "
                    "metrics", int(np.isnan(y_raw).sum()), y_raw.size)
    if info.is_main:
        logger.info("examples: train %d, val %d, test %d; outputs: %s", *(len(rows[s]) for s in SPLIT_NAMES),
                    ", ".join(spec.labels[:10]) + (" ..." if len(spec.labels) > 10 else ""))
    return TrainData(df, spec, y_raw, index, rows, groups, contract)


def fill_cache(cfg: FinetuneConfig) -> tuple[CacheIndex, int]:
    """Only preprocess the records of ``data.manifest`` into the window cache (what ``finetune
    cache`` does); returns ``(index, number of records)``."""
    if cfg.data.manifest is None:
        raise ConfigError("filling the cache needs data.manifest (build one with a dataset preset first).")
    df = read_manifest(cfg.data.manifest, path_column=cfg.data.path_column)  # (paths only: the cache needs no ids)
    model = build_model(cfg)  # (after the manifest is found: the start weights may be a download)
    refs = manifest_refs(df, cfg.data.path_column)
    cache = WindowCache(cfg.data.cache_dir, model.contract, lead=cfg.data.lead, format=cfg.data.format)
    return cache.build(refs, workers=cfg.data.cache_workers, progress=cfg.train.progress), len(refs)
