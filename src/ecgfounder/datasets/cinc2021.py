"""PhysioNet/CinC Challenge 2021: WFDB headers (``# Dx: <SNOMED codes>``) anywhere below a folder.

``scan(root)``
    One row per ``.hea``: ``path, record, source, dx`` (``dx`` is ``None`` without a ``Dx`` line).
    ``source`` is the record-name prefix naming the source database (:data:`SOURCES`).
``record_patients(records, ptbxl_database=None)``
    Patient ids: the PTB-XL records (``HR<ecg_id>``) get ``ptbxl:<patient_id>`` from a
    ``ptbxl_database.csv``; every other record is its own patient (the challenge publishes no
    patient ids).
``load_cinc2021(root, ...) -> LabelledSet``
    Ground truth over the 150 labels (mapping ``snomed_to_150.csv``, composites merged,
    ambiguous codes excluded from their candidates' negatives), with sources and patients.
    The source databases did not all assess the same findings (CPSC 2018 labelled 9 classes):
    a record is evaluable for a target only when its source used a code that maps to it
    (package data ``labels/cinc2021_source_counts.csv``, the challenge's code counts per source,
    from github.com/physionetchallenges/evaluation-2021, BSD-2-Clause).
``cinc2021_manifest(root, task="scored", ptbxl_database=None, source_vocabulary=True) -> DataFrame``
    A training manifest over the challenge's scored classes (codes scored as one class merged);
    a class the record's source database never coded is an empty cell (not assessed), not a 0.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..labels.mappings import LabelMapping, snomed_mapping
from .codes import header_dx
from .errors import DatasetError
from .labelled import NO_DX, LabelledSet, mapped_truth, unknown_code_notes
from .ptbxl import DATABASE, ptbxl_patients

__all__ = ["CINC2021_SCORED", "SOURCES", "scan", "source_codes", "record_patients", "find_ptbxl_database", "load_cinc2021",
           "cinc2021_manifest"]

# Scored classes: SNOMED-CT code -> abbreviation; codes scored as one class share a name.
CINC2021_SCORED: dict[str, str] = {
    "164889003": "AF", "164890007": "AFL", "6374002": "BBB", "426627000": "Brady",
    "733534002": "LBBB", "164909002": "LBBB", "713427006": "RBBB", "59118001": "RBBB",
    "270492004": "IAVB", "713426002": "IRBBB", "39732003": "LAD", "445118002": "LAnFB",
    "251146004": "LQRSV", "698252002": "NSIVCB", "426783006": "NSR", "284470004": "PAC",
    "63593006": "PAC", "10370003": "PR", "365413008": "PRWP", "427172004": "PVC", "17338001": "PVC",
    "164947007": "LPR", "111975006": "LQT", "164917005": "QAb", "47665007": "RAD",
    "427393009": "SA", "426177001": "SB", "427084000": "STach", "164934002": "TAb", "59931005": "TInv",
}

SOURCES = {
    "A": "CPSC 2018", "Q": "CPSC 2018 (unused part)", "I": "St Petersburg INCART", "S": "PTB",
    "HR": "PTB-XL", "E": "Georgia 12-lead", "JS": "Chapman-Shaoxing / Ningbo",
}
_PREFIX = re.compile(r"[A-Za-z]+")
# record-name prefix -> columns of cinc2021_source_counts.csv (Chapman-Shaoxing and Ningbo share JS)
_COUNT_COLUMNS = {"A": ("CPSC",), "Q": ("CPSC_Extra",), "I": ("StPetersburg",), "S": ("PTB",), "HR": ("PTB_XL",),
                  "E": ("Georgia",), "JS": ("Chapman_Shaoxing", "Ningbo")}


def source_codes() -> dict[str, frozenset[str]]:
    """``prefix -> SNOMED-CT codes`` that source database used at least once in CinC 2021."""
    from importlib import resources

    with resources.files("ecgfounder.labels").joinpath("cinc2021_source_counts.csv").open(encoding="utf-8") as fh:
        counts = pd.read_csv(fh, dtype={"snomed_code": str}).set_index("snomed_code")
    return {p: frozenset(counts.index[(counts[list(cols)] > 0).any(axis=1)]) for p, cols in _COUNT_COLUMNS.items()}


def _source_vocabulary(sources: Sequence[str], targets: dict[str, tuple[str, ...]], mapping: LabelMapping) -> np.ndarray:
    """bool ``(n, T)``: false where the record's source used no code mapping to a member of the
    target (the finding was not assessed there); true for sources not in :data:`SOURCES`."""
    known = set(mapping.codes)
    assessed = {p: {lab for c in codes if c in known for lab in mapping.labels_for(c)} for p, codes in source_codes().items()}
    rows = {p: np.array([bool(assessed[p] & set(m)) for m in targets.values()]) for p in assessed}
    everything = np.ones(len(targets), dtype=bool)
    return np.array([rows.get(s, everything) for s in sources], dtype=bool).reshape(len(sources), len(targets))


def scan(root: str | os.PathLike) -> pd.DataFrame:
    """Every WFDB header below ``root`` with its ``Dx`` codes (see module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; root must hold the challenge's .hea/.mat files (any depth).")
    headers = sorted(root.rglob("*.hea"))
    if not headers:
        raise DatasetError(f"no WFDB headers (*.hea) below {root}; is this a CinC 2021 training folder?")
    rows = []
    for h in headers:
        m = _PREFIX.match(h.stem)
        rows.append({"path": str(h), "record": h.stem, "source": m.group(0) if m else "", "dx": header_dx(h)})
    df = pd.DataFrame(rows)
    dup = df["record"][df["record"].duplicated()]
    if len(dup):
        raise DatasetError(f"record names repeat below {root} (e.g. {dup.iloc[0]}); use one folder per record name.")
    return df


def find_ptbxl_database(root: str | os.PathLike) -> Path | None:
    """A ``ptbxl_database.csv`` in ``root`` or its parent (where users keep it beside the data)."""
    for d in (Path(root), Path(root).parent):
        if (d / DATABASE).is_file():
            return d / DATABASE
    return None


def record_patients(records: Sequence[str], ptbxl_database: str | os.PathLike | None = None) -> np.ndarray:
    """Patient id per record: ``ptbxl:<patient_id>`` for PTB-XL records found in the database,
    else the record name itself."""
    pts = ptbxl_patients(ptbxl_database) if ptbxl_database else {}
    out = []
    for r in records:
        pid = pts.get(str(int(r[2:]))) if r.startswith("HR") and r[2:].isdigit() else None
        out.append(f"ptbxl:{pid}" if pid is not None else r)
    return np.asarray(out, dtype=object)


def load_cinc2021(
    root: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    mapping: LabelMapping | None = None,
    composites: bool = True,
    ptbxl_database: str | os.PathLike | None = None,
    source_vocabulary: bool = True,
) -> LabelledSet:
    """Ground truth of the CinC 2021 records below ``root``.

    Headers without a ``# Dx:`` line (or with an empty one) are skipped with their count in
    ``unknown_codes['(no Dx)']``.
    ``ptbxl_database``: groups the PTB-XL records by patient (default: a ``ptbxl_database.csv``
    in ``root`` or its parent, if any).
    ``source_vocabulary``: a record is no negative of a target its source database never coded
    (e.g. a CPSC 2018 record for LEFT AXIS DEVIATION); ``False`` counts it as one, as the
    challenge's scoring did.
    """
    df = scan(root)
    has = df["dx"].map(bool)  # None (no Dx line) and () (empty Dx line): no ground truth
    df = df[has].reset_index(drop=True)
    codes = [tuple(d) for d in df["dx"]]
    mapping = mapping or snomed_mapping()
    targets, y, ev, unknown, not_eval = mapped_truth(mapping, codes, labels, composites=composites)
    if source_vocabulary:
        ev = ev & (y | _source_vocabulary(list(df["source"]), targets, mapping))
    if (~has).any():
        unknown[NO_DX] = int((~has).sum())
    db = ptbxl_database or find_ptbxl_database(root)
    notes = unknown_code_notes(unknown, "Dx code")
    patients = record_patients(list(df["record"]), db)
    n_alone = int(((df["source"] == "HR").to_numpy() & (patients == df["record"].to_numpy())).sum())
    if n_alone:
        why = f"not in {db}" if db else "no ptbxl_database.csv given or found"
        notes += (f"{n_alone} PTB-XL record(s) (HR...) below {root} are each their own patient ({why}): a patient's "
                  "records may fall in both the tuning and the test split, and the intervals treat them as independent; "
                  "pass ptbxl_database (CLI: --ptbxl-database) to group them by patient.",)
    return LabelledSet(
        name="cinc2021", records=tuple(df["record"]), paths=tuple(df["path"]), labels=tuple(targets), y=y,
        evaluable=ev, members=targets, patients=patients,
        sources=df["source"].to_numpy(dtype=object), codes=tuple(codes), unknown_codes=unknown, not_evaluable=not_eval,
        notes=notes,
    )


def cinc2021_manifest(root: str | os.PathLike, task: str = "scored", *, ptbxl_database: str | os.PathLike | None = None,
                      source_vocabulary: bool = True) -> pd.DataFrame:
    """One row per ``.hea`` below ``root``; one 0/1 column per scored class present; ``source`` =
    database prefix; ``patient_id`` groups PTB-XL records by patient (see :func:`record_patients`;
    default database: a ``ptbxl_database.csv`` in ``root`` or its parent).

    ``source_vocabulary``: a record's cell is empty (``<NA>``, nullable ``Int64`` columns; not
    assessed) for a class none of whose codes its source database used in CinC 2021
    (:func:`source_codes`), unless the record carries the class; sources not in :data:`SOURCES`
    assessed everything.  ``False``: 0/1 everywhere (int columns), the challenge's convention."""
    if task != "scored":
        raise DatasetError(f"unknown CinC 2021 task {task!r}; choose 'scored'.")
    df = scan(root)
    has = df["dx"].map(bool)
    if not has.all():  # no ground truth: such a record must not become a negative of every class
        warnings.warn(f"{int((~has).sum())} header(s) below {root} have no (or an empty) '# Dx:' line (e.g. "
                      f"{df['path'][~has].iloc[0]}); those records are left out of the manifest.", stacklevel=2)
        df = df[has].reset_index(drop=True)
    known = set(snomed_mapping().codes)
    odd = sorted({c for dx in df["dx"] for c in dx if c not in known})
    if odd:
        warnings.warn(f"Dx codes {odd[:5]}{' ...' if len(odd) > 5 else ''} below {root} are not CinC 2021 SNOMED-CT codes; "
                      "records carrying them count as negatives for every class they do not name.", stacklevel=2)
    sets = [{CINC2021_SCORED[c] for c in dx if c in CINC2021_SCORED} for dx in df["dx"]]
    labels = sorted(set().union(*sets))
    out = df[["path", "record", "source"]].copy()
    db = ptbxl_database or find_ptbxl_database(root)
    if db is None and (df["source"] == "HR").any():
        warnings.warn(f"{int((df['source'] == 'HR').sum())} PTB-XL records (HR...) are treated as their own patients: "
                      f"put ptbxl_database.csv in {root} or its parent to group them by patient.", stacklevel=2)
    out["patient_id"] = record_patients(list(df["record"]), db)
    assessed = _assessed_classes(list(df["source"]), labels) if source_vocabulary else None
    for j, lab in enumerate(labels):
        values = [int(lab in s) for s in sets]
        if assessed is None:
            out[lab] = values
        else:
            out[lab] = pd.array([v if v or ok else None for v, ok in zip(values, assessed[:, j])], dtype="Int64")
    return out


def _assessed_classes(sources: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """bool ``(n, C)``: whether the record's source database used a code of the scored class (true
    for sources not in :data:`SOURCES`)."""
    used = {p: {CINC2021_SCORED[c] for c in codes if c in CINC2021_SCORED} for p, codes in source_codes().items()}
    rows = {p: np.array([c in u for c in classes], dtype=bool) for p, u in used.items()}
    everything = np.ones(len(classes), dtype=bool)
    return np.array([rows.get(s, everything) for s in sources], dtype=bool).reshape(len(sources), len(classes))
