"""Ground truth of labelled datasets, as binary matrices over the 150 labels.

Only labels are read here (database CSV, header comments); signals are read later, one record
at a time, by the prediction stream.

API:

``load_ptbxl(root, sampling=500, min_likelihood=0.0) -> LabelledSet``
    PTB-XL 1.0.x layout: ``root/ptbxl_database.csv`` (``ecg_id, patient_id, scp_codes,
    strat_fold, filename_lr, filename_hr``) and ``root/records500/`` (or ``records100/``).
    ``scp_codes`` is mapped with :func:`ecgfounder.labels.mappings.ptbxl_mapping`; codes whose
    likelihood is below ``min_likelihood`` are ignored (PTB-XL uses 0 for "unknown" on form and
    rhythm statements, so the default keeps every code).
``load_cinc2021(root) -> LabelledSet``
    PhysioNet/CinC Challenge 2021 layout: WFDB headers anywhere below ``root`` whose comments
    hold ``# Dx: code,code``; mapped with :func:`~ecgfounder.labels.mappings.snomed_mapping`.
``load_label_table(path, id_column="record", ...) -> LabelledSet``
    Any CSV/Parquet with one row per record and 0/1 columns.

A :class:`LabelledSet` holds ``records``, ``paths``, ``y (n, L)``, ``labels``, optional
``patients`` and ``folds``, and the per-record source codes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..labels import load_labels
from ..labels.mappings import LabelMapping, parse_scp_codes, ptbxl_mapping, snomed_mapping

__all__ = ["LabelledSet", "load_ptbxl", "load_cinc2021", "load_label_table", "read_table"]


@dataclass(frozen=True)
class LabelledSet:
    """Records with binary ground truth.

    Attributes:
        name: dataset name (``"ptbxl"``, ``"cinc2021"``, a file name).
        records: ``n`` record ids (unique).
        paths: ``n`` record file paths (``None`` entries for label tables without files).
        labels: ``L`` label names (columns of ``y``).
        y: bool ``(n, L)``.
        patients: ``(n,)`` patient ids or ``None``.
        folds: ``(n,)`` integer folds (PTB-XL ``strat_fold``) or ``None``.
        codes: per record, its source codes (SCP or SNOMED), for the report.
        unknown_codes: codes met that the mapping does not know, with record counts.
        not_evaluable: labels of the model that no source code maps to.
    """

    name: str
    records: tuple[str, ...]
    paths: tuple[str | None, ...]
    labels: tuple[str, ...]
    y: np.ndarray
    patients: np.ndarray | None = None
    folds: np.ndarray | None = None
    codes: tuple[tuple[str, ...], ...] = ()
    unknown_codes: dict[str, int] = field(default_factory=dict)
    not_evaluable: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, mask: np.ndarray) -> "LabelledSet":
        """The records where ``mask`` (bool ``(n,)``) is true."""
        m = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(m)
        return LabelledSet(
            name=self.name,
            records=tuple(self.records[i] for i in idx),
            paths=tuple(self.paths[i] for i in idx),
            labels=self.labels,
            y=self.y[idx],
            patients=None if self.patients is None else self.patients[idx],
            folds=None if self.folds is None else self.folds[idx],
            codes=tuple(self.codes[i] for i in idx) if self.codes else (),
            unknown_codes=self.unknown_codes,
            not_evaluable=self.not_evaluable,
        )


def _mapped_columns(mapping: LabelMapping, labels: Sequence[str] | None) -> tuple[list[str], tuple[str, ...]]:
    model_labels = list(load_labels() if labels is None else labels)
    mapped = set(mapping.mapped_labels)
    cols = [lab for lab in model_labels if lab in mapped]
    not_eval = tuple(lab for lab in model_labels if lab not in mapped)
    return cols, not_eval


def load_ptbxl(
    root: str | os.PathLike,
    *,
    sampling: int = 500,
    min_likelihood: float = 0.0,
    labels: Sequence[str] | None = None,
    mapping: LabelMapping | None = None,
) -> LabelledSet:
    """Read PTB-XL's ground truth (see module docstring).

    Args:
        root: folder holding ``ptbxl_database.csv``.
        sampling: 500 (``filename_hr``, ``records500/``) or 100 (``filename_lr``).
        min_likelihood: ignore SCP codes with a lower likelihood (0–100).
        labels: model labels to consider (default the 150); only those some code maps to are
            columns of ``y``, the rest are listed in ``not_evaluable``.
        mapping: replacement mapping table (default the package's).
    """
    root = Path(root)
    db = root / "ptbxl_database.csv"
    if not db.is_file():
        raise FileNotFoundError(f"{db} not found: --root must be the PTB-XL folder holding ptbxl_database.csv and records500/.")
    if sampling not in (100, 500):
        raise ValueError(f"PTB-XL sampling must be 100 or 500 (Hz); got {sampling}.")
    df = pd.read_csv(db, index_col=None)
    col = "filename_hr" if sampling == 500 else "filename_lr"
    need = {"ecg_id", "scp_codes", col}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{db}: missing column(s) {sorted(missing)}; a PTB-XL database CSV has {sorted(need | {'patient_id', 'strat_fold'})}.")
    mapping = mapping or ptbxl_mapping()
    cols, not_eval = _mapped_columns(mapping, labels)
    codes: list[tuple[str, ...]] = []
    for i, raw in enumerate(df["scp_codes"]):
        try:
            d = parse_scp_codes(raw)
        except ValueError as exc:
            raise ValueError(f"{db}: row {i} (ecg_id {df['ecg_id'].iloc[i]}): {exc}") from None
        codes.append(tuple(k for k, v in d.items() if v >= min_likelihood))
    y, unknown = mapping.matrix(codes, cols)
    records = tuple(str(int(x)) if float(x).is_integer() else str(x) for x in df["ecg_id"])
    paths = tuple(str(root / str(f)) + ".hea" for f in df[col])
    patients = df["patient_id"].to_numpy() if "patient_id" in df.columns else None
    folds = df["strat_fold"].to_numpy(dtype=int) if "strat_fold" in df.columns else None
    return LabelledSet(
        name="ptbxl",
        records=records,
        paths=paths,
        labels=tuple(cols),
        y=y,
        patients=patients,
        folds=folds,
        codes=tuple(codes),
        unknown_codes=unknown,
        not_evaluable=not_eval,
    )


_DX = re.compile(r"^\s*#\s*Dx\s*:\s*(.*)$", re.IGNORECASE)


def _header_dx(path: Path) -> tuple[str, ...] | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = _DX.match(line)
                if m:
                    return tuple(c.strip() for c in m.group(1).split(",") if c.strip())
    except OSError:
        return None
    return None


def load_cinc2021(
    root: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    mapping: LabelMapping | None = None,
) -> LabelledSet:
    """Read the SNOMED ``Dx`` codes of every WFDB header below ``root`` (challenge layout).

    Headers without a ``# Dx:`` line are skipped with their count in ``unknown_codes['(no Dx)']``.
    Record ids are the header file names (``HR06000``); they must be unique.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; --root must hold the challenge's .hea/.mat files (any depth).")
    headers = sorted(root.rglob("*.hea"))
    if not headers:
        raise ValueError(f"no WFDB headers (*.hea) below {root}; is this the CinC 2021 training folder?")
    mapping = mapping or snomed_mapping()
    cols, not_eval = _mapped_columns(mapping, labels)
    recs, paths, codes = [], [], []
    no_dx = 0
    for h in headers:
        dx = _header_dx(h)
        if dx is None:
            no_dx += 1
            continue
        recs.append(h.stem)
        paths.append(str(h))
        codes.append(dx)
    dup = pd.Series(recs)[pd.Series(recs).duplicated()]
    if len(dup):
        raise ValueError(f"record names repeat below {root} (e.g. {dup.iloc[0]}); evaluate one database folder at a time.")
    y, unknown = mapping.matrix(codes, cols)
    if no_dx:
        unknown["(no Dx)"] = no_dx
    return LabelledSet(
        name="cinc2021",
        records=tuple(recs),
        paths=tuple(paths),
        labels=tuple(cols),
        y=y,
        codes=tuple(codes),
        unknown_codes=unknown,
        not_evaluable=not_eval,
    )


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet table."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"table {p} not found.")
    suf = p.suffix.lower()
    if suf in (".parquet", ".pq"):
        try:
            return pd.read_parquet(p)
        except ImportError as exc:
            raise ImportError(f"reading {p} needs pyarrow: pip install 'ecgfounder[parquet]' ({exc})") from None
    sep = "\t" if suf in (".tsv", ".tab") else ","
    return pd.read_csv(p, sep=sep)


def load_label_table(
    path: str | os.PathLike,
    *,
    id_column: str = "record",
    labels: Sequence[str] | None = None,
    patient_column: str | None = None,
    exclude: Sequence[str] = (),
) -> tuple[LabelledSet, pd.DataFrame]:
    """A generic label table: one row per record, one 0/1 column per label.

    Args:
        path: CSV/TSV/Parquet file.
        id_column: column of record ids (must be unique).
        labels: label columns to use (default: every other column holding only 0/1 values).
        patient_column: column of patient ids (for a patient-level bootstrap).
        exclude: further non-label columns (e.g. a split column).

    Returns:
        ``(LabelledSet, table)``; the full table is returned for split columns.
    """
    df = read_table(path)
    if id_column not in df.columns:
        raise ValueError(f"{path}: no id column {id_column!r}; columns are {list(df.columns)[:12]}. Pass --id-column.")
    ids = df[id_column].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"{path}: record id {ids[ids.duplicated()].iloc[0]!r} appears twice in column {id_column!r}.")
    skip = {id_column, *(c for c in exclude if c)}
    if patient_column:
        if patient_column not in df.columns:
            raise ValueError(f"{path}: no patient column {patient_column!r}; columns are {list(df.columns)[:12]}.")
        skip.add(patient_column)
    if labels is None:
        # every other column holding only 0/1 values (ids, text, splits and scores are left out)
        labels = []
        for c in df.columns:
            if c in skip:
                continue
            v = pd.to_numeric(df[c], errors="coerce")
            if v.notna().all() and v.isin((0, 1)).all():
                labels.append(c)
        if not labels:
            raise ValueError(f"{path}: no 0/1 label column found (columns: {list(df.columns)[:12]}); name them with --label-columns.")
    labels = [str(c) for c in labels]
    missing = [c for c in labels if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: label column(s) {missing[:5]} not found.")
    vals = df[labels].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(vals, (0.0, 1.0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{path}: label column {labels[c]!r} of record {ids.iloc[r]!r} holds {vals[r, c]!r}; labels must be 0/1 "
            "(drop records with missing labels first)."
        )
    ls = LabelledSet(
        name=Path(path).stem,
        records=tuple(ids),
        paths=tuple(df["path"].astype(str)) if "path" in df.columns else tuple([None] * len(df)),
        labels=tuple(labels),
        y=vals.astype(bool),
        patients=df[patient_column].to_numpy() if patient_column else None,
    )
    return ls, df
