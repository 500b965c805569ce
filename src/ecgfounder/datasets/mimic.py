"""MIMIC-IV-ECG: ``record_list.csv`` (``subject_id, study_id, file_name, path``) and the WFDB files.

``mimic_iv_ecg_manifest(root, targets=None, on="study_id")`` → one row per ECG with ``path``
(the ``.hea`` below ``root``), ``record`` (``study_id``), ``patient_id`` (``subject_id``) and,
when ``targets`` (a CSV/Parquet table, e.g. LVEF linked from echo reports) is given, its columns
joined on ``on``; ECGs without a target row are left out.  Both sides' ids are compared as the
integers' text (``00123``, ``123.0`` → ``'123'``, :mod:`.ids`); two rows of one id are an error.
The database publishes no targets of its own beyond the machine reports, so fine-tuning labels
always come from such a table.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .errors import DatasetError
from .ids import check_unique_ids, integer_ids
from .labelled import read_table

__all__ = ["mimic_iv_ecg_manifest"]

RECORD_LIST = "record_list.csv"


def mimic_iv_ecg_manifest(root: str | os.PathLike, targets: str | os.PathLike | None = None, *, on: str = "study_id") -> pd.DataFrame:
    """Manifest of the MIMIC-IV-ECG records below ``root`` (see module docstring)."""
    root = Path(root)
    rl = root / RECORD_LIST
    if not rl.is_file():
        raise DatasetError(f"{rl} not found: root must be the MIMIC-IV-ECG folder holding {RECORD_LIST} and files/.")
    df = read_table(rl, text=("subject_id", "study_id", "path"))
    need = {"subject_id", "study_id", "path"}
    if need - set(df.columns):
        raise DatasetError(f"{rl}: missing column(s) {sorted(need - set(df.columns))}; expected {sorted(need)}.")
    for col in ("study_id", "subject_id", "path"):
        blank = df[col].isna().to_numpy()
        if blank.any():
            raise DatasetError(f"{rl}: {int(blank.sum())} row(s) have no {col} (first: data row {int(blank.argmax()) + 1}); "
                               "fill or drop those rows.")
    study, subject = integer_ids(df["study_id"]), integer_ids(df["subject_id"])
    check_unique_ids(study, df["study_id"], where=rl, column="study_id", fix="keep one row per ECG.")
    out = pd.DataFrame({
        "path": [str(root / f"{p}.hea") for p in df["path"]],
        "record": study, "patient_id": subject, "study_id": study, "subject_id": subject,
    })
    if targets is None:
        return out.drop(columns=["study_id", "subject_id"])
    if on not in ("study_id", "subject_id"):
        raise DatasetError(f"on={on!r}: join on 'study_id' (one ECG) or 'subject_id' (one patient).")
    t = read_table(targets, text=(on,))
    if on not in t.columns:
        raise DatasetError(f"{targets}: no column {on!r} to join on; columns are {list(t.columns)[:12]}; pass on='subject_id' or 'study_id'.")
    blank = t[on].isna().to_numpy()
    if blank.any():
        raise DatasetError(f"{targets}: {int(blank.sum())} row(s) have no {on} (first: data row {int(blank.argmax()) + 1}); "
                           "fill or drop those rows.")
    raw = t[on]
    t = t.assign(**{on: integer_ids(raw)})
    what = "ECG" if on == "study_id" else "patient (or join on study_id)"
    check_unique_ids(t[on], raw, where=targets, column=on, fix=f"keep one target row per {what}.")
    extra = [c for c in ("path", "record", "patient_id", "study_id", "subject_id") if c in t.columns and c != on]
    merged = out.merge(t.drop(columns=extra), on=on, how="inner")
    if merged.empty:
        raise DatasetError(f"no {on} of {targets} (e.g. {t[on].iloc[0]!r}) is in {rl} (e.g. {out[on].iloc[0]!r}); "
                           f"check that {targets} holds MIMIC-IV-ECG {on}s.")
    return merged.drop(columns=["study_id", "subject_id"]).reset_index(drop=True)
