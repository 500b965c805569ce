"""The manifest: one table row per training example.

Columns (names configurable through :class:`~ecgfounder.train.config.DataConfig`):

``path`` (required)
    A record any :func:`ecgfounder.io.read` reader accepts (WFDB ``.hea``, DICOM, XML, ...).
    Relative paths are taken relative to the manifest's folder.
``patient_id`` (recommended)
    Rows of one patient always land in one split; without it every *record* is its own group.
``split`` (optional)
    ``train``, ``val`` or ``test``; rows left empty are assigned at patient level.
``train_only`` (optional)
    1 for extra training examples (e.g. overlapping windows of a long record): kept only when
    the row's patient lands in the training split, dropped from validation and test.
``start_s``, ``duration_s`` (optional)
    A segment of the record (seconds), e.g. a 10-s window of a Holter; otherwise the whole record
    (cut into 10-s windows by the preprocessing contract).
label columns
    Every other column, or the ones named in ``data.label_columns``: 0/1 for binary and
    multi-label tasks, numbers for regression, class names (one column) or one-hot columns for
    multi-class.  In a binary or multi-label table an empty cell (NaN) means "not assessed": that
    record is neither a positive nor a negative of that label (left out of its loss, weights and
    metrics); the other task types refuse empty targets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .._fileio import atomic_path
from ..datasets.ids import as_text
from ..errors import ECGFounderError

__all__ = ["ManifestError", "read_manifest", "write_manifest", "label_columns", "check_duplicates", "check_numeric",
           "RESERVED_COLUMNS"]

RESERVED_COLUMNS = ("path", "record", "patient_id", "split", "start_s", "duration_s", "source", "fold", "train_only")


class ManifestError(ECGFounderError, ValueError):
    """The manifest table is missing columns or holds unusable values."""


def read_manifest(
    path: str | os.PathLike,
    *,
    path_column: str = "path",
    resolve: bool = True,
    text: Sequence[str] = ("patient_id", "split"),
) -> pd.DataFrame:
    """Read a CSV or Parquet manifest; record paths become absolute (relative to the manifest).
    The path column and the ``text`` columns (patient ids, splits) are read as text as written
    (``'007'`` stays ``'007'``, a Parquet float id ``7.0`` is ``'7'``).

    Returns a DataFrame with a fresh ``RangeIndex``.  Raises :class:`ManifestError` for a missing
    path column or empty table.
    """
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"manifest {p} not found.")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            df = as_text(pd.read_parquet(p), [path_column, *text])
        except ImportError as exc:  # pragma: no cover - pyarrow missing
            raise ManifestError(f"{p}: reading Parquet needs pyarrow (pip install 'ecgfounder[parquet]'): {exc}") from None
    elif suffix in (".csv", ".tsv", ".txt"):
        df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype={c: str for c in (path_column, *text)})
    else:
        raise ManifestError(f"{p}: unknown manifest type {suffix!r}; use .csv, .tsv or .parquet.")
    if path_column not in df.columns:
        raise ManifestError(
            f"{p}: no {path_column!r} column; columns are {list(df.columns)}. "
            "Name the record column 'path' or set data.path_column."
        )
    if df.empty:
        raise ManifestError(f"{p}: the manifest has no rows.")
    df = df.reset_index(drop=True)
    if df[path_column].isna().any():
        bad = df.index[df[path_column].isna()].tolist()[:5]
        raise ManifestError(f"{p}: empty record path in row(s) {bad}.")
    if resolve:
        base = p.resolve().parent
        df[path_column] = [str(q if Path(q).is_absolute() else (base / q)) for q in df[path_column].astype(str)]
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a manifest as CSV or Parquet (by extension), atomically."""
    p = Path(path)
    with atomic_path(p) as tmp:
        if p.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return p


def label_columns(
    df: pd.DataFrame,
    requested: Sequence[str] = (),
    *,
    reserved: Sequence[str] = RESERVED_COLUMNS,
) -> list[str]:
    """The target columns: ``requested`` (checked to exist) or every non-reserved column."""
    if requested:
        missing = [c for c in requested if c not in df.columns]
        if missing:
            raise ManifestError(
                f"label column(s) {missing} not in the manifest; its columns are {list(df.columns)}."
            )
        return list(requested)
    cols = [c for c in df.columns if c not in set(reserved)]
    if not cols:
        raise ManifestError(
            f"the manifest has no label columns (columns: {list(df.columns)}); add one column per target."
        )
    return cols


def check_duplicates(df: pd.DataFrame, path_column: str = "path") -> None:
    """Refuse rows that repeat an example (the same record and segment): a repeated row counts
    twice in training and in the test metrics and their confidence intervals."""
    key = [c for c in (path_column, "start_s", "duration_s") if c in df.columns]
    dup = df.duplicated(key, keep=False).to_numpy()
    if dup.any():
        group = df.groupby(key, dropna=False, sort=False).ngroup().to_numpy()
        rows = np.flatnonzero(group == group[np.argmax(dup)])
        first = df[key].iloc[rows[0]]
        seg = "" if len(key) == 1 else f" ({', '.join(f'{c}={first[c]}' for c in key[1:])})"
        raise ManifestError(
            f"record {first[path_column]}{seg} is listed more than once, in rows {rows.tolist()[:5]} "
            f"({int(dup.sum())} repeated rows in all); each example must be one row: drop the repeated rows "
            "(e.g. pandas drop_duplicates), or give each segment its own start_s.")


def check_numeric(df: pd.DataFrame, cols: Sequence[str], *, binary: bool, task: str = "binary",
                  missing: bool = False) -> np.ndarray:
    """``df[cols]`` as float ``(n_rows, n_cols)``; refuses missing values (unless ``missing``: they
    stay NaN) and, if ``binary``, anything but 0/1.  ``task`` (the ``task.type`` asked for) is
    named in the messages."""
    try:
        y = df[list(cols)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = [c for c in cols if pd.to_numeric(df[c], errors="coerce").isna().ne(df[c].isna()).any()] or list(cols)
        col = df[bad[0]]
        row = int(np.argmax(pd.to_numeric(col, errors="coerce").isna().to_numpy() & col.notna().to_numpy()))
        raise ManifestError(
            f"label column(s) {bad} are not numeric (row {row} holds {col.iloc[row]!r}); task.type={task} needs numbers"
            f"{' (0 or 1)' if binary else ''}. One column of class names is task.type=multiclass; otherwise name the "
            "target columns with data.label_columns.") from None
    if not missing and np.isnan(y).any():
        rows, c = np.nonzero(np.isnan(y))
        raise ManifestError(
            f"missing target values, e.g. row {int(rows[0])} column {cols[int(c[0])]!r} "
            f"({len(rows)} in all); fill them or drop those rows."
        )
    odd = ~np.isin(y, (0.0, 1.0)) & ~np.isnan(y)
    if binary and odd.any():
        rows, c = np.nonzero(odd)
        raise ManifestError(
            f"task.type={task} targets must be 0 or 1; row {int(rows[0])} column {cols[int(c[0])]!r} holds "
            f"{float(y[rows[0], c[0]]):g}. Class numbers in one column are task.type=multiclass, measurements "
            "task.type=regression."
        )
    return y
