"""PTB-XL 1.0.x: ``ptbxl_database.csv`` (+ ``scp_statements.csv``) and the ``records500/`` files.

``read_database(root, sampling=500)``
    The database table, checked, with ``path`` (the ``.hea`` of each record), ``codes`` (the
    SCP statements kept, plus ``heart_axis:<value>``) and ``uncertain_codes`` (those whose stated
    likelihood is below ``min_likelihood``) added.
``load_ptbxl(root, ...) -> LabelledSet``
    Ground truth over the 150 labels (mapping ``ptbxl_scp_to_150.csv``, composites merged,
    ambiguous statements excluded from their candidates' negatives), folds and patients.
``ptbxl_manifest(root, task, sampling=500) -> DataFrame``
    A training manifest for the benchmark tasks of Strodthoff et al. (2021): ``all``,
    ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``, ``form``, ``rhythm``; folds 1–8
    train, 9 validation, 10 test (``strat_fold``, patient-respecting by construction).
``ptbxl_patients(database_csv) -> {ecg_id: patient_id}``
    Used to group the PTB-XL records of CinC 2021 (``HR<ecg_id>``) by patient.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..labels.mappings import LabelMapping, ptbxl_mapping
from .codes import parse_scp_codes
from .errors import DatasetError
from .ids import check_unique_ids, integer_ids
from .labelled import LabelledSet, mapped_truth, unknown_code_notes

__all__ = ["PTBXL_TASKS", "read_database", "load_ptbxl", "ptbxl_manifest", "ptbxl_patients"]

PTBXL_TASKS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
DATABASE = "ptbxl_database.csv"


def _codes(df: pd.DataFrame, db: Path, min_likelihood: float) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """``(codes, uncertain)`` per record: the SCP codes kept, plus ``heart_axis:<value>``, and those
    whose stated likelihood is below ``min_likelihood``.  Likelihood 0 means "not given" (every
    form and rhythm statement): such a code is kept whatever the threshold."""
    out: list[tuple[str, ...]] = []
    low: list[tuple[str, ...]] = []
    axis = df["heart_axis"] if "heart_axis" in df.columns else pd.Series([None] * len(df))
    for i, (raw, ax) in enumerate(zip(df["scp_codes"], axis)):
        try:
            d = parse_scp_codes(raw)
        except DatasetError as exc:
            raise DatasetError(f"{db}: data row {i + 1} (ecg_id {df['ecg_id'].iloc[i]}): {exc}") from None
        if not d:  # no statement at all: no ground truth, not a negative of every label
            raise DatasetError(f"{db}: data row {i + 1} (ecg_id {df['ecg_id'].iloc[i]}) has scp_codes = {raw!r}, no statement; "
                               "every PTB-XL record has at least one (e.g. \"{'NORM': 100.0}\"): fix or drop the row.")
        ax = "" if ax is None or (isinstance(ax, float) and np.isnan(ax)) else str(ax).strip()
        out.append(tuple(k for k, v in d.items() if v == 0 or v >= min_likelihood) + (f"heart_axis:{ax}",))
        low.append(tuple(k for k, v in d.items() if 0 < v < min_likelihood))
    return out, low


def read_database(root: str | os.PathLike, sampling: int = 500, *, min_likelihood: float = 0.0) -> pd.DataFrame:
    """``ptbxl_database.csv`` with ``path``, ``codes`` and ``uncertain_codes`` (the statements whose
    likelihood is below ``min_likelihood``, 0 excepted: see :func:`load_ptbxl`) columns added."""
    root = Path(root)
    db = root / DATABASE
    if not db.is_file():
        raise DatasetError(f"{db} not found: root must be the PTB-XL folder holding {DATABASE} and records500/.")
    if sampling not in (100, 500):
        raise DatasetError(f"PTB-XL sampling must be 100 or 500 (Hz); got {sampling}.")
    if not 0.0 <= float(min_likelihood) <= 100.0:  # NaN too: it dropped every stated code, positives and all
        raise DatasetError(f"min_likelihood={min_likelihood} is not a PTB-XL likelihood; give a number from 0 to 100 "
                           "(e.g. 50 keeps the statements stated at 50 or more; 0, the default, keeps all).")
    df = pd.read_csv(db, index_col=None, dtype={"ecg_id": str, "patient_id": str})
    col = "filename_hr" if sampling == 500 else "filename_lr"
    need = {"ecg_id", "scp_codes", col}
    missing = need - set(df.columns)
    if missing:
        raise DatasetError(f"{db}: missing column(s) {sorted(missing)}; a PTB-XL database has {sorted(need | {'patient_id', 'strat_fold'})}.")
    _check_ids(df, db, col)
    df = df.copy()
    df["path"] = [str(root / str(f)) + ".hea" for f in df[col]]
    df["codes"], df["uncertain_codes"] = _codes(df, db, min_likelihood)
    return df


def _check_ids(df: pd.DataFrame, db: Path, file_col: str) -> None:
    """``ecg_id`` unique integers, ``strat_fold`` integers 1-10, no blank ``patient_id`` or file name."""

    def plain(v):
        return None if pd.isna(v) else v.item() if hasattr(v, "item") else v

    def fail(column: str, i: int, value, what: str) -> None:
        raise DatasetError(f"{db}: data row {i + 1} (ecg_id {plain(df['ecg_id'].iloc[i])!r}) has {column} = {plain(value)!r}; {what}")

    ecg = pd.to_numeric(df["ecg_id"], errors="coerce")
    bad = ~(ecg.notna() & (ecg % 1 == 0)).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        fail("ecg_id", i, df["ecg_id"].iloc[i], "ecg_id must be an integer in every row; fix or drop the row.")
    dup = ecg.duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        fail("ecg_id", i, int(ecg.iloc[i]), "ecg_id must be unique (it appears on an earlier row too); drop the duplicate rows.")
    if "strat_fold" in df.columns:
        f = pd.to_numeric(df["strat_fold"], errors="coerce")
        bad = ~(f.notna() & f.isin(range(1, 11))).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            fail("strat_fold", i, df["strat_fold"].iloc[i],
                 f"PTB-XL folds are the integers 1-10 ({int(bad.sum())} row(s) hold something else); fix or drop those rows.")
    if "patient_id" in df.columns:
        bad = df["patient_id"].isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            fail("patient_id", i, None, f"every record needs a patient id ({int(bad.sum())} row(s) have none); fill or drop those rows.")
    bad = df[file_col].isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        fail(file_col, i, None, f"every record needs its file name ({int(bad.sum())} row(s) have none); fill or drop those rows.")


def load_ptbxl(
    root: str | os.PathLike,
    *,
    sampling: int = 500,
    min_likelihood: float = 0.0,
    labels: Sequence[str] | None = None,
    mapping: LabelMapping | None = None,
    composites: bool = True,
) -> LabelledSet:
    """PTB-XL's ground truth over the 150 labels.

    Args:
        root: folder holding ``ptbxl_database.csv``.
        sampling: 500 (``filename_hr``) or 100 (``filename_lr``).
        min_likelihood: SCP codes with a stated likelihood below it (0–100) are not positives,
            and their records are left out of those codes' labels (not negatives either).
            PTB-XL writes 0 for "likelihood not given" (every form and rhythm statement):
            such codes always count.  The default 0 keeps every code.
        labels: model labels to consider (default the 150).
        mapping: replacement mapping table (default the package's).
        composites: merge the wordings of one finding into one target (default).
    """
    df = read_database(root, sampling, min_likelihood=min_likelihood)
    codes = list(df["codes"])
    targets, y, ev, unknown, not_eval = mapped_truth(mapping or ptbxl_mapping(), codes, labels, composites=composites,
                                                     uncertain=list(df["uncertain_codes"]))
    return LabelledSet(
        name="ptbxl", records=tuple(integer_ids(df["ecg_id"])), paths=tuple(df["path"]), labels=tuple(targets), y=y,
        evaluable=ev, members=targets,
        patients=integer_ids(df["patient_id"]).to_numpy() if "patient_id" in df.columns else None,
        folds=df["strat_fold"].to_numpy(dtype=int) if "strat_fold" in df.columns else None,
        codes=tuple(codes), unknown_codes=unknown, not_evaluable=not_eval, notes=unknown_code_notes(unknown, "SCP code"),
    )


def ptbxl_patients(database: str | os.PathLike) -> dict[str, str]:
    """``ecg_id -> patient_id`` (both as the integers' text, :func:`.ids.integer_ids`) from a
    ``ptbxl_database.csv``; two rows of one ``ecg_id`` are an error."""
    df = pd.read_csv(database, usecols=lambda c: c in ("ecg_id", "patient_id"), dtype=str)
    if not {"ecg_id", "patient_id"} <= set(df.columns):
        raise DatasetError(f"{database}: needs columns ecg_id and patient_id to group PTB-XL records by patient.")
    df = df.dropna(subset=["ecg_id", "patient_id"]).reset_index(drop=True)  # no patient id: the record is its own group
    ecg = integer_ids(df["ecg_id"])
    check_unique_ids(ecg, df["ecg_id"], where=database, column="ecg_id",
                     fix="each PTB-XL record has one row; drop the duplicate rows.")
    return dict(zip(ecg, integer_ids(df["patient_id"])))


def _task_mapping(st: pd.DataFrame, task: str) -> dict[str, str]:
    def flag(col: str) -> set[str]:
        return set(st.index[st[col].fillna(0).astype(float) == 1.0]) if col in st.columns else set()

    diag = flag("diagnostic")
    if task == "all":
        return {c: c for c in st.index}
    if task == "diagnostic":
        return {c: c for c in diag}
    if task in ("subdiagnostic", "superdiagnostic"):
        col = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
        return {c: st.loc[c, col] for c in diag if isinstance(st.loc[c, col], str)}
    return {c: c for c in flag(task)}


def ptbxl_manifest(root: str | os.PathLike, task: str = "superdiagnostic", *, sampling: int = 500) -> pd.DataFrame:
    """PTB-XL benchmark manifest (one row per ECG) for ``task`` (see :data:`PTBXL_TASKS`).

    Labels: every SCP statement of the task present in the record's ``scp_codes`` (whatever its
    likelihood, as in the benchmark); sub-/super-diagnostic tasks map diagnostic statements to their
    ``diagnostic_subclass`` / ``diagnostic_class``.  Records with no label of the task are left out.
    """
    root = Path(root)
    if task not in PTBXL_TASKS:
        raise DatasetError(f"unknown PTB-XL task {task!r}; choose one of {list(PTBXL_TASKS)}.")
    st_file = root / "scp_statements.csv"
    if not st_file.is_file():
        raise DatasetError(f"{st_file} not found: root must be the PTB-XL folder (with {DATABASE} and scp_statements.csv).")
    db = read_database(root, sampling)
    need = {"patient_id", "strat_fold"}
    if need - set(db.columns):
        raise DatasetError(f"{root / DATABASE}: missing columns {sorted(need - set(db.columns))}.")
    mapping = _task_mapping(pd.read_csv(st_file, index_col=0), task)
    rows_labels = [{mapping[c] for c in codes if c in mapping} for codes in db["codes"]]
    labels = sorted(set().union(*rows_labels)) if rows_labels else []
    keep = np.array([bool(s) for s in rows_labels])
    out = pd.DataFrame({
        "path": db["path"],
        "record": integer_ids(db["ecg_id"]),
        "patient_id": integer_ids(db["patient_id"]),
        "split": np.where(db["strat_fold"] <= 8, "train", np.where(db["strat_fold"] == 9, "val", "test")),
    })
    for lab in labels:
        out[lab] = [int(lab in s) for s in rows_labels]
    return out[keep].reset_index(drop=True)
