"""MIMIC-IV-ECG: ``record_list.csv`` (``subject_id, study_id, file_name, ecg_time, path``) and the
WFDB files.

``mimic_iv_ecg_manifest(root, targets=None, on="study_id", time_column=None, max_days=14)`` → one
row per ECG with ``path`` (the ``.hea`` below ``root``), ``record`` (``study_id``), ``patient_id``
(``subject_id``) and, when ``targets`` (a CSV/Parquet table, e.g. LVEF linked from echo reports)
is given, its columns joined on ``on``; ECGs without a target row are left out, blank target
cells stay blank (not assessed: left out of the loss).  Both sides' ids are compared as the
integers' text (``00123``, ``123.0`` → ``'123'``, :mod:`.ids`); two rows of one id are an error.
``on="subject_id"`` alone gives every ECG of a patient the one target row, whatever the time
between them.

With ``time_column`` (the targets' measurement time, e.g. the echocardiogram's) the join is by
patient and time: each ECG gets its patient's measurement nearest to ``ecg_time`` (a column of
MIMIC-IV-ECG's ``record_list.csv``) within ``max_days`` before or after, and a column
``days_to_target`` (measurement time − ECG time, days); ECGs without one within the window are
left out.  MIMIC-IV modules shift each patient's dates by one offset, so the times compare.
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


def mimic_iv_ecg_manifest(root: str | os.PathLike, targets: str | os.PathLike | None = None, *, on: str = "study_id",
                          time_column: str | None = None, max_days: float = 14.0) -> pd.DataFrame:
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
    if time_column is not None and on != "subject_id":
        raise DatasetError(f"time_column={time_column!r} matches a patient's measurements to their ECGs by time; "
                           "pass on='subject_id'.")
    if time_column is not None and not float(max_days) >= 0:
        raise DatasetError(f"max_days={max_days}: give the largest time between ECG and measurement in days (>= 0).")
    t = read_table(targets, text=(on,))
    if on not in t.columns:
        raise DatasetError(f"{targets}: no column {on!r} to join on; columns are {list(t.columns)[:12]}; pass on='subject_id' or 'study_id'.")
    blank = t[on].isna().to_numpy()
    if blank.any():
        raise DatasetError(f"{targets}: {int(blank.sum())} row(s) have no {on} (first: data row {int(blank.argmax()) + 1}); "
                           "fill or drop those rows.")
    raw = t[on]
    t = t.assign(**{on: integer_ids(raw)})
    if time_column is None:
        what = "ECG" if on == "study_id" else "patient (or join on study_id, or by time with time_column=...)"
        check_unique_ids(t[on], raw, where=targets, column=on, fix=f"keep one target row per {what}.")
    else:
        out = out.assign(_t=_times(df, "ecg_time", rl))
        t = t.assign(_t=_times(t, time_column, targets))
        key = t[on] + " at " + t["_t"].astype(str)
        check_unique_ids(key, key, where=targets, column=f"{on} and {time_column}", fix="keep one measurement per time.")
    extra = [c for c in ("path", "record", "patient_id", "study_id", "subject_id") if c in t.columns and c != on]
    if time_column is None:
        merged = out.merge(t.drop(columns=extra), on=on, how="inner")
    else:
        merged = _nearest(out, t.drop(columns=extra), on, float(max_days))
    if merged.empty and time_column is not None:
        raise DatasetError(f"no ECG of {rl} has a measurement of {targets} of the same {on} within max_days={max_days} "
                           f"days; check {time_column!r} and ecg_time, or widen max_days.")
    if merged.empty:
        raise DatasetError(f"no {on} of {targets} (e.g. {t[on].iloc[0]!r}) is in {rl} (e.g. {out[on].iloc[0]!r}); "
                           f"check that {targets} holds MIMIC-IV-ECG {on}s.")
    return merged.drop(columns=["study_id", "subject_id"]).reset_index(drop=True)


def _times(df: pd.DataFrame, column: str, where: object) -> pd.Series:
    """``df[column]`` as timestamps; a :class:`DatasetError` naming the first value that is not one."""
    if column not in df.columns:
        raise DatasetError(f"{where}: no column {column!r} (a date and time); columns are {list(df.columns)[:12]}.")
    # as UTC without a zone: a zone-marked column and ecg_time's plain times compare (they raised MergeError)
    t = pd.to_datetime(df[column], errors="coerce", utc=True).dt.tz_localize(None)
    bad = t.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise DatasetError(f"{where}: {column} {df[column].iloc[i]!r} (data row {i + 1}) is not a date and time "
                           f"({int(bad.sum())} such row(s)); write them as YYYY-MM-DD HH:MM:SS or drop those rows.")
    return t


def _nearest(ecgs: pd.DataFrame, targets: pd.DataFrame, on: str, max_days: float) -> pd.DataFrame:
    """Each ECG with its patient's target row nearest in time (``_t``) within ``max_days``."""
    left = ecgs.reset_index(names="_row").sort_values("_t", kind="stable")
    right = targets.sort_values("_t", kind="stable").rename(columns={"_t": "_tt"})
    right["_t"] = right["_tt"]
    m = pd.merge_asof(left, right, on="_t", by=on, direction="nearest", tolerance=pd.Timedelta(days=max_days))
    m = m[m["_tt"].notna()].sort_values("_row")
    m["days_to_target"] = (m["_tt"] - m["_t"]).dt.total_seconds() / 86400.0
    return m.drop(columns=["_row", "_t", "_tt"])
