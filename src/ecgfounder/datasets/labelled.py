"""Records with binary ground truth over the 150 labels (or any label table).

A :class:`LabelledSet` is what the dataset loaders return and what evaluation consumes:
``y (n, T)`` positives and ``evaluable (n, T)`` — which entries count at all — over ``T``
*targets*.  A target is one model label, or a composite of labels that name one finding
(:mod:`ecgfounder.labels.composites`); ``members`` lists each target's model outputs.

``mapped_truth(mapping, records_codes, labels=None, composites=True)`` builds those arrays
from per-record source codes; ``load_label_table(path, ...)`` reads a 0/1 table; ``read_table``
reads CSV/TSV/Parquet.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..labels import load_labels
from ..labels.composites import build_targets, target_truth
from ..labels.mappings import LabelMapping
from .errors import DatasetError
from .ids import as_text

__all__ = ["LabelledSet", "mapped_truth", "unknown_code_notes", "concat_sets", "load_label_table", "read_table"]


@dataclass(frozen=True)
class LabelledSet:
    """Records with binary ground truth.

    Attributes:
        name: dataset name (``"ptbxl"``, ``"cinc2021"``, a file name).
        records: ``n`` record ids (unique).
        paths: ``n`` record file paths (``None`` entries for label tables without files).
        labels: ``T`` target names (columns of ``y``).
        y: bool ``(n, T)`` positives.
        evaluable: bool ``(n, T)``: false where a record is neither a positive nor a clean
            negative of a target (it carries a code whose candidate labels include it).  Every
            metric, bootstrap and count uses only the evaluable entries.
        members: ``target -> model labels`` scored for it (one label, or a composite's members).
        patients: ``(n,)`` patient ids or ``None``.
        folds: ``(n,)`` integer folds (PTB-XL ``strat_fold``) or ``None``.
        sources: ``(n,)`` source database of each record (CinC 2021 prefix) or ``None``.
        codes: per record, its source codes (SCP or SNOMED), for the report.
        unknown_codes: codes met that the mapping does not know, with record counts.
        not_evaluable: model labels that no source code maps to.
        notes: caveats of the ground truth a report must state (unknown codes, records left
            out, records that are their own patients for want of ids).
    """

    name: str
    records: tuple[str, ...]
    paths: tuple[str | None, ...]
    labels: tuple[str, ...]
    y: np.ndarray
    evaluable: np.ndarray | None = None
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    patients: np.ndarray | None = None
    folds: np.ndarray | None = None
    sources: np.ndarray | None = None
    codes: tuple[tuple[str, ...], ...] = ()
    unknown_codes: dict[str, int] = field(default_factory=dict)
    not_evaluable: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.evaluable is None:
            object.__setattr__(self, "evaluable", np.ones_like(np.asarray(self.y, dtype=bool)))
        if not self.members:
            object.__setattr__(self, "members", {lab: (lab,) for lab in self.labels})
        if self.evaluable.shape != self.y.shape:
            raise DatasetError(f"evaluable mask {self.evaluable.shape} must have the shape of y {self.y.shape}.")

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, mask: np.ndarray) -> "LabelledSet":
        """The records where ``mask`` (bool ``(n,)``) is true."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))

        def take(a):
            return None if a is None else np.asarray(a)[idx]

        return LabelledSet(
            name=self.name, records=tuple(self.records[i] for i in idx), paths=tuple(self.paths[i] for i in idx),
            labels=self.labels, y=self.y[idx], evaluable=self.evaluable[idx], members=self.members,
            patients=take(self.patients), folds=take(self.folds), sources=take(self.sources),
            codes=tuple(self.codes[i] for i in idx) if self.codes else (),
            unknown_codes=self.unknown_codes, not_evaluable=self.not_evaluable, notes=self.notes,
        )

    def composite_targets(self) -> dict[str, tuple[str, ...]]:
        """Targets scored from more than one model output (``name -> members``)."""
        return {t: m for t, m in self.members.items() if len(m) > 1}


def mapped_truth(
    mapping: LabelMapping,
    records_codes: Sequence[Iterable[str]],
    labels: Sequence[str] | None = None,
    *,
    composites: bool = True,
    uncertain: Sequence[Iterable[str]] | None = None,
) -> tuple[dict[str, tuple[str, ...]], np.ndarray, np.ndarray, dict[str, int], tuple[str, ...]]:
    """Ground truth of records from their source codes.

    Args:
        mapping: the code → label table.
        records_codes: for each record, its codes.
        labels: model labels to consider (default the 150).
        composites: merge the wordings of one finding into one target (default).
        uncertain: for each record, codes too uncertain to count (:meth:`LabelMapping.truth`):
            the record is left out of those codes' labels, neither positive nor negative.

    Returns:
        ``(targets, y, evaluable, unknown, not_evaluable)``: ``targets`` maps each column's
        name to its member labels; ``not_evaluable`` lists the labels no code maps to.
    """
    model_labels = list(load_labels() if labels is None else labels)
    mapped = set(mapping.mapped_labels)
    cols = [lab for lab in model_labels if lab in mapped]
    not_eval = tuple(lab for lab in model_labels if lab not in mapped)
    records_codes = [tuple(c) for c in records_codes]
    y, ev, unknown = mapping.truth(records_codes, cols, [tuple(c) for c in uncertain] if uncertain is not None else None)
    targets = build_targets(cols) if composites else {lab: (lab,) for lab in cols}
    yt, et = target_truth(y, ev, cols, targets)
    return targets, yt, et, unknown, not_eval


NO_DX = "(no Dx)"  # unknown_codes key: headers without ground truth, left out


def unknown_code_notes(unknown: Mapping[str, int], what: str = "code", *, as_negatives: bool = False) -> tuple[str, ...]:
    """The report's notes for ``unknown`` (``code -> records``, :meth:`LabelMapping.truth`): which
    codes the mapping does not know, and that their records are negatives of no label (or, with
    ``as_negatives``, for :meth:`LabelMapping.matrix` truths, that they are)."""
    notes = []
    if unknown.get(NO_DX):
        notes.append(f"{unknown[NO_DX]} header(s) have no (or an empty) '# Dx:' line: no ground truth, left out.")
    odd = sorted(((c, n) for c, n in unknown.items() if c != NO_DX), key=lambda kv: (-kv[1], kv[0]))
    if odd:
        shown = ", ".join(f"{c!r} ({n} record{'s' if n > 1 else ''})" for c, n in odd[:5])
        notes.append(f"{len(odd)} {what}(s) unknown to the mapping: {shown}{' ...' if len(odd) > 5 else ''}; "
                     + ("this protocol counts a record carrying one as a negative of every label its other codes do not map to"
                        if as_negatives else "a record carrying one is a positive where its other codes map and a negative of no "
                        "label (see 'Codes unknown to the mapping')") + "; fix the codes or extend the mapping table.")
    return tuple(notes)


def read_table(path: str | os.PathLike, *, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet table.

    A ``.csv``/``.txt`` file whose header holds no comma but semicolons (or tabs) is read with that
    separator.  The first column is never taken as an index, so a trailing separator on each row
    does not shift the columns; a row with more fields than the header is an error.

    ``text``: columns (ids) read as text exactly as written (``'00123'`` stays ``'00123'``, where
    pandas would read 123, or ``123.0`` in a column with a blank cell); blank cells stay missing.
    A Parquet column keeps its stored type, as text (a float column of whole numbers as ``'123'``).
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"table {p} not found; give the path of a CSV, TSV or Parquet file.")
    suf = p.suffix.lower()
    if suf in (".parquet", ".pq"):
        try:
            return as_text(pd.read_parquet(p), text)
        except ImportError as exc:
            raise ImportError(f"reading {p} needs pyarrow: pip install 'ecgfounder[parquet]' ({exc})") from None
        except Exception as exc:  # pyarrow raises its own types for a corrupt or non-Parquet file
            raise DatasetError(f"{p} is not a readable Parquet file ({type(exc).__name__}: {exc}); "
                               "write it with DataFrame.to_parquet or give a CSV/TSV.") from None
    sep = "\t" if suf in (".tsv", ".tab") else ","

    def read(sep: str) -> pd.DataFrame:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                return pd.read_csv(p, sep=sep, index_col=False, dtype={c: str for c in text} or None)
        except pd.errors.EmptyDataError:
            raise DatasetError(f"{p} is empty; a table needs a header row (e.g. 'record,<label>,...') and one row per record.") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{p} is not UTF-8 text ({exc}); save it as UTF-8 CSV.") from None
        except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
            raise DatasetError(f"{p} is not a well-formed {'TSV' if sep == chr(9) else 'CSV'} table (a row has more "
                               f"fields than the header?): {str(exc).strip()[:200]}; fix the rows or the header.") from None

    df = read(sep)
    if sep == "," and df.shape[1] == 1:
        head = str(df.columns[0])
        for alt in (";", "\t"):
            if alt in head:
                return read(alt)
    return df


def _binary_columns(df: pd.DataFrame, skip: set[str]) -> list[str]:
    """Every column outside ``skip`` holding only 0/1 values, blank cells aside (a label not assessed
    for that record), and at least one of them (ids, text, splits, scores left out)."""
    out = []
    for c in df.columns:
        if c in skip:
            continue
        v = pd.to_numeric(df[c], errors="coerce")
        given = df[c].notna()
        if given.any() and v[given].isin((0, 1)).all():
            out.append(str(c))
    return out


def load_label_table(
    path: str | os.PathLike,
    *,
    id_column: str = "record",
    labels: Sequence[str] | None = None,
    patient_column: str | None = None,
    exclude: Sequence[str] = (),
) -> tuple[LabelledSet, pd.DataFrame]:
    """A generic label table: one row per record, one 0/1 column per label, blank where that label
    was not assessed for that record (``evaluable`` false there: left out of that label's metrics).

    Args:
        path: CSV/TSV/Parquet file.
        id_column: column of record ids (must be unique), read as text exactly as written
            (``'00123'`` stays ``'00123'``).
        labels: label columns to use (default: every other column holding only 0/1 values, blanks aside).
        patient_column: column of patient ids (for a patient-level bootstrap), read as text.
        exclude: further non-label columns (e.g. a split column).

    Returns:
        ``(LabelledSet, table)``; the full table is returned for split columns.
    """
    df = read_table(path, text=[c for c in (id_column, patient_column) if c])
    if id_column not in df.columns:
        raise DatasetError(f"{path}: no id column {id_column!r}; columns are {list(df.columns)[:12]}; name it with id_column.")
    if df.empty:
        raise DatasetError(f"{path}: the table has a header ({list(df.columns)[:12]}) but no rows; give one row per record.")
    blank = df[id_column].isna().to_numpy()
    if blank.any():
        raise DatasetError(f"{path}: {int(blank.sum())} row(s) have no record id in column {id_column!r} (first: data row "
                           f"{int(np.argmax(blank)) + 1}); give every row a record id or drop those rows.")
    ids = df[id_column].astype(str)
    if ids.duplicated().any():
        raise DatasetError(f"{path}: record id {ids[ids.duplicated()].iloc[0]!r} appears twice in column {id_column!r}.")
    skip = {id_column, *(c for c in exclude if c)}
    if patient_column:
        if patient_column not in df.columns:
            raise DatasetError(f"{path}: no patient column {patient_column!r}; columns are {list(df.columns)[:12]}.")
        skip.add(patient_column)
        nopat = df[patient_column].isna().to_numpy()
        if nopat.any():
            raise DatasetError(f"{path}: {int(nopat.sum())} record(s) have no patient id in column {patient_column!r} "
                               f"(first: {ids.iloc[int(np.argmax(nopat))]!r}); fill them (e.g. with the record id, making "
                               "the record its own patient) or leave patient_column unset.")
    if labels is None:
        labels = _binary_columns(df, skip)
        if not labels:
            raise DatasetError(f"{path}: no 0/1 label column found (columns: {list(df.columns)[:12]}); name them with labels.")
    labels = [str(c) for c in labels]
    missing = [c for c in labels if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: label column(s) {missing[:5]} not found; columns are {list(df.columns)[:12]}.")
    vals = df[labels].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    assessed = df[labels].notna().to_numpy()  # a blank cell: that label not assessed for that record
    bad = assessed & ~np.isin(vals, (0.0, 1.0))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raw = df[labels[c]].iloc[r]
        raw = repr(raw.item() if hasattr(raw, "item") else raw)
        raise DatasetError(
            f"{path}: label column {labels[c]!r} of record {ids.iloc[r]!r} (data row {r + 1}) holds {raw}; "
            f"labels must be 0/1, or blank where not assessed ({int(bad.sum())} such cell(s)): recode them."
        )
    ls = LabelledSet(
        name=Path(path).stem,
        records=tuple(ids),
        paths=tuple(df["path"].astype(str)) if "path" in df.columns else tuple([None] * len(df)),
        labels=tuple(labels),
        y=assessed & (vals == 1.0),
        evaluable=assessed,
        patients=df[patient_column].to_numpy() if patient_column else None,
    )
    return ls, df


def concat_sets(a: LabelledSet, b: LabelledSet) -> LabelledSet:
    """The records of ``a`` followed by those of ``b`` (same targets required)."""
    if a.labels != b.labels:
        raise DatasetError(f"cannot join {a.name} and {b.name}: their targets differ ({len(a.labels)} vs {len(b.labels)}); "
                           "load both with the same mapping and labels.")

    def cat(x, y, n_x, n_y):
        if x is None and y is None:
            return None
        x = np.asarray(x if x is not None else [None] * n_x, dtype=object)
        y = np.asarray(y if y is not None else [None] * n_y, dtype=object)
        return np.concatenate([x, y])

    return LabelledSet(
        name=a.name, records=a.records + b.records, paths=a.paths + b.paths, labels=a.labels,
        y=np.concatenate([a.y, b.y]), evaluable=np.concatenate([a.evaluable, b.evaluable]), members=a.members,
        patients=cat(a.patients, b.patients, len(a), len(b)), folds=None,
        sources=cat(a.sources, b.sources, len(a), len(b)), codes=a.codes + b.codes,
        unknown_codes={k: a.unknown_codes.get(k, 0) + b.unknown_codes.get(k, 0) for k in {**a.unknown_codes, **b.unknown_codes}},
        not_evaluable=a.not_evaluable, notes=tuple(dict.fromkeys(a.notes + b.notes)),
    )
