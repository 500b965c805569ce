"""MIMIC-IV-ECG: ``record_list.csv`` (``subject_id, study_id, file_name, path``) and the WFDB files.

``mimic_iv_ecg_manifest(root, targets=None, on="study_id")`` → one row per ECG with ``path``
(the ``.hea`` below ``root``), ``record`` (``study_id``), ``patient_id`` (``subject_id``) and,
when ``targets`` (a CSV/Parquet table, e.g. LVEF linked from echo reports) is given, its columns
joined on ``on``; ECGs without a target row are left out.  The database publishes no targets of
its own beyond the machine reports, so fine-tuning labels always come from such a table.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .errors import DatasetError
from .labelled import read_table

__all__ = ["mimic_iv_ecg_manifest"]

RECORD_LIST = "record_list.csv"


def mimic_iv_ecg_manifest(root: str | os.PathLike, targets: str | os.PathLike | None = None, *, on: str = "study_id") -> pd.DataFrame:
    """Manifest of the MIMIC-IV-ECG records below ``root`` (see module docstring)."""
    root = Path(root)
    rl = root / RECORD_LIST
    if not rl.is_file():
        raise DatasetError(f"{rl} not found: root must be the MIMIC-IV-ECG folder holding {RECORD_LIST} and files/.")
    df = pd.read_csv(rl)
    need = {"subject_id", "study_id", "path"}
    if need - set(df.columns):
        raise DatasetError(f"{rl}: missing column(s) {sorted(need - set(df.columns))}; expected {sorted(need)}.")
    out = pd.DataFrame({
        "path": [str(root / f"{p}.hea") for p in df["path"]],
        "record": df["study_id"].astype(str),
        "patient_id": df["subject_id"].astype(str),
        "study_id": df["study_id"].astype(str),
        "subject_id": df["subject_id"].astype(str),
    })
    if targets is None:
        return out.drop(columns=["study_id", "subject_id"])
    if on not in ("study_id", "subject_id"):
        raise DatasetError(f"on={on!r}: join on 'study_id' (one ECG) or 'subject_id' (one patient).")
    t = read_table(targets)
    if on not in t.columns:
        raise DatasetError(f"{targets}: no column {on!r} to join on; columns are {list(t.columns)[:12]}; pass on='subject_id' or 'study_id'.")
    blank = t[on].isna().to_numpy()
    if blank.any():
        raise DatasetError(f"{targets}: {int(blank.sum())} row(s) have no {on} (first: data row {int(blank.argmax()) + 1}); "
                           "fill or drop those rows.")
    t = t.assign(**{on: _id_strings(t[on])})
    if t[on].duplicated().any():
        what = "ECG" if on == "study_id" else "patient (or join on study_id)"
        raise DatasetError(f"{targets}: {on} {t[on][t[on].duplicated()].iloc[0]!r} has several rows; keep one target row per {what}.")
    extra = [c for c in ("path", "record", "patient_id", "study_id", "subject_id") if c in t.columns and c != on]
    merged = out.merge(t.drop(columns=extra), on=on, how="inner")
    if merged.empty:
        raise DatasetError(f"no {on} of {targets} (e.g. {t[on].iloc[0]!r}) is in {rl} (e.g. {out[on].iloc[0]!r}); "
                           f"check that {targets} holds MIMIC-IV-ECG {on}s.")
    return merged.drop(columns=["study_id", "subject_id"]).reset_index(drop=True)


def _id_strings(col: pd.Series) -> pd.Series:
    """Ids as strings, with whole floats (``10.0``, as pandas reads an integer column holding blanks) as ``10``."""
    num = pd.to_numeric(col, errors="coerce")
    whole = num.notna() & (num % 1 == 0)
    return col.astype(str).where(~whole, num.round().astype("Int64").astype(str))
