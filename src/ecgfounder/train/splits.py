"""Patient-level train/validation/test splits, and a leakage check that refuses shared patients."""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import ECGFounderError
from .manifest import ManifestError

__all__ = ["SPLITS", "LeakageError", "group_ids", "assign_splits", "check_leakage", "stratify_key"]

SPLITS = ("train", "val", "test")


class LeakageError(ECGFounderError, ValueError):
    """A patient (or record) appears in more than one split."""


def group_ids(df: pd.DataFrame, patient_column: str, path_column: str = "path") -> pd.Series:
    """The grouping unit: the patient id where given, else the record path (rows that are segments
    of one record always stay together).  A row without a patient id joins the patient of its
    record's other rows; a record listed under two patients is refused (:class:`ManifestError`):
    its segments could land in two splits."""
    by_path = df[path_column].astype(str).map(os.path.normpath)  # (sub/../x.hea and ./x.hea are x.hea)
    if patient_column in df.columns:
        pid = df[patient_column].astype(object)
        missing = (pid.isna() | (pid.astype(str).str.strip() == "")).to_numpy()
        if missing.all():
            warnings.warn(
                f"manifest column {patient_column!r} is empty: splitting by record, which leaks if a patient "
                "has several records.",
                stacklevel=2,
            )
        ids = pd.Series(pid.astype(str).to_numpy()[~missing], index=by_path.to_numpy()[~missing])
        per_record = ids.groupby(level=0, sort=False).unique()
        shared = per_record[per_record.map(len) > 1]
        if len(shared):
            path, names = shared.index[0], sorted(shared.iloc[0])
            rows = np.flatnonzero(by_path.to_numpy() == path)[:5].tolist()
            raise ManifestError(
                f"record {path} is listed under {len(names)} patients {names} (rows {rows}; {len(shared)} such "
                f"record(s) in all): its rows could land in different splits. A record belongs to one patient: give "
                f"all its rows the same {patient_column!r}, or drop the rows listed under the wrong patient.")
        owner = by_path.map(per_record.map(lambda a: a[0])).to_numpy(dtype=object)  # NaN: a record without any id
        pid = pd.Series(np.where(missing, owner, pid.astype(str).to_numpy()), index=df.index)
        return pd.Series(np.where(pid.isna(), "record:" + by_path, "patient:" + pid.astype(str)), index=df.index)
    warnings.warn(
        f"the manifest has no {patient_column!r} column: each record is treated as its own patient. "
        "Add patient ids to split by patient.",
        stacklevel=2,
    )
    return "record:" + by_path


def stratify_key(y: np.ndarray | None, task: str) -> np.ndarray | None:
    """One stratification class per row: the class (binary/multi-class), the rarest positive
    label (multi-label), or the target quartile (regression)."""
    if y is None:
        return None
    y = np.asarray(y)
    if task == "regression":
        v = y.reshape(len(y), -1)[:, 0].astype(float)
        edges = np.unique(np.quantile(v, [0.25, 0.5, 0.75]))
        return np.digitize(v, edges)
    if task == "multiclass":
        return y.reshape(len(y), -1).argmax(1) if y.ndim > 1 and y.shape[1] > 1 else y.reshape(-1)
    y2 = y.reshape(len(y), -1).astype(float)
    prevalence = (y2 > 0.5).sum(0) / np.maximum((~np.isnan(y2)).sum(0), 1)  # among the assessed rows (NaN: not assessed)
    order = np.argsort(prevalence)  # rarest first
    key = np.full(len(y2), -1)
    for j in order[::-1]:
        key[y2[:, j] > 0.5] = j
    return key


def _split_groups(groups: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split rows by group into train/val/test with scikit-learn's ``GroupShuffleSplit`` (test
    first, then validation from the rest); fractions are fractions of groups (patients)."""
    from sklearn.model_selection import GroupShuffleSplit

    out = np.array(["train"] * len(groups), dtype=object)
    remaining = np.arange(len(groups))
    f_train, f_val, f_test = fractions
    for name, frac, rest in (("test", f_test, 1.0), ("val", f_val, 1.0 - f_test)):
        g = groups[remaining]
        if frac <= 0 or len(np.unique(g)) < 2:
            continue
        size = min(frac / rest, 1.0)
        splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
        _, held = next(splitter.split(np.zeros(len(remaining)), groups=g))
        if len(np.unique(g[held])) == len(np.unique(g)):
            continue  # keep at least one group for training
        out[remaining[held]] = name
        remaining = np.setdiff1d(remaining, remaining[held])
    return out


def assign_splits(
    df: pd.DataFrame,
    *,
    patient_column: str = "patient_id",
    split_column: str = "split",
    path_column: str = "path",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    y: np.ndarray | None = None,
    task: str = "binary",
    tries: int = 50,
) -> pd.DataFrame:
    """A copy of ``df`` whose ``split_column`` is filled for every row, at patient level.

    Rows that already carry a split keep it, and so do the other rows of their patients.  The
    remaining patients are divided at random (scikit-learn's ``GroupShuffleSplit``; ``fractions``
    are fractions of patients).  For classification the split is re-drawn (seed, seed+1, ...) until
    validation and test each hold positives and negatives of every label with at least 3
    positives, where that is possible; a warning names the seed used if it differs.
    Raises :class:`LeakageError` if the given splits already share a patient.
    """
    out = df.copy()
    groups = group_ids(out, patient_column, path_column).to_numpy()
    if split_column not in out.columns:
        out[split_column] = np.nan
    given = [None if pd.isna(s) or str(s).strip() in ("", "nan", "None") else str(s).strip().lower()
             for s in out[split_column]]
    bad = sorted({s for s in given if s is not None and s not in SPLITS})
    if bad:
        raise ManifestError(f"unknown split name(s) {bad} in column {split_column!r}; use {list(SPLITS)}.")
    out[split_column] = pd.Series(given, index=out.index, dtype=object)
    check_leakage(out.assign(_g=groups), "_g", split_column, ignore_missing=True)
    # patients with a split: propagate to their unlabelled rows
    fixed = {g: s for g, s in zip(groups, given) if s is not None}
    todo = np.array([g not in fixed for g in groups])
    out.loc[~todo, split_column] = [fixed[g] for g in groups[~todo]]
    if todo.any():
        idx = np.flatnonzero(todo)
        chosen = None
        for t in range(max(1, tries)):
            cand = _split_groups(groups[idx], fractions, seed + t)
            if y is None or task == "regression" or _has_both_classes(y[idx], cand, task, fractions):
                chosen = cand
                if t:
                    warnings.warn(f"split seed {seed} left a class absent from validation or test; used seed {seed + t}.", stacklevel=2)
                break
            if chosen is None:
                chosen = cand
        out.loc[idx, split_column] = chosen
    return out


def _has_both_classes(y: np.ndarray, split: np.ndarray, task: str, fractions: Sequence[float]) -> bool:
    y2 = y.reshape(len(y), -1) if task != "multiclass" or np.asarray(y).ndim > 1 else np.eye(int(np.max(y)) + 1)[np.asarray(y, int)]
    possible = (y2 > 0.5).sum(0) >= 3
    for name, frac in zip(("val", "test"), fractions[1:]):
        if frac <= 0:
            continue
        m = split == name
        if not m.any():
            return False
        pos = (y2[m] > 0.5).any(0)
        neg = (y2[m] <= 0.5).any(0)
        if not np.all((pos & neg) | ~possible):
            return False
    return True


def check_leakage(df: pd.DataFrame, group_column: str, split_column: str = "split", *, ignore_missing: bool = False) -> None:
    """Raise :class:`LeakageError` if any group (patient) has rows in more than one split."""
    sub = df[[group_column, split_column]]
    if ignore_missing:
        sub = sub[sub[split_column].notna()]
    n = sub.groupby(group_column)[split_column].nunique()
    shared = n[n > 1]
    if len(shared):
        examples = []
        for g in shared.index[:5]:
            names = sorted(set(sub.loc[sub[group_column] == g, split_column]))
            examples.append(f"{g} in {names}")
        raise LeakageError(
            f"{len(shared)} patient(s) appear in more than one split, e.g. {'; '.join(examples)}. "
            "Every patient's records must be in one split; fix the split column (or clear it to let "
            "ecgfounder assign patient-level splits)."
        )
