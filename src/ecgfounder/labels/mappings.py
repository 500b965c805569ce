"""Mappings from dataset label vocabularies to the 150 ECGFounder labels, and label categories.

Package data (one row per source code × target label, each with its rationale):

- ``ptbxl_scp_to_150.csv``: the 71 PTB-XL SCP-ECG statements and the 9 values of PTB-XL's
  ``heart_axis`` column (codes ``heart_axis:<value>``; columns ``scp_code, scp_description, label,
  relation, candidates, rationale``);
- ``snomed_to_150.csv``: the 133 SNOMED-CT codes of the PhysioNet/CinC Challenge 2021
  (columns ``snomed_code, snomed_name, label, relation, candidates, rationale``);
- ``label_categories.csv``: a clinical category for each of the 150 labels;
- ``cinc2021_source_counts.csv``: how often each source database of CinC 2021 used each code
  (read by :mod:`ecgfounder.datasets.cinc2021`: a finding a source never coded is not evaluable there).

``relation`` is one of:

``equivalent``   the same statement;
``narrower``     the source code is a special case of the label (its records are positives);
``approximate``  the closest label, defined by somewhat different criteria;
``ambiguous``    several labels could apply and the source does not say which: **not mapped**;
``unmapped``     no label corresponds: **not mapped**.

``candidates`` (``; ``-separated labels, or ``category:<name>`` for every label of a category)
names the labels a code *could* mean without being a positive for them: every ambiguous code
names them, and a mapped code may too (a multi-wall infarct for the single-wall labels).  A
record carrying such a code is excluded from those labels' negatives
(:meth:`LabelMapping.truth` returns the ``evaluable`` mask); it stays a positive where another
of its codes maps to the label.

A source code may map to several labels (e.g. PTB-XL ``ILMI`` → INFERIOR INFARCT and LATERAL
INFARCT).  Codes not in the table at all are reported by :meth:`LabelMapping.targets` /
:meth:`LabelMapping.matrix`, never dropped silently, and a record carrying one is a negative of no
label in :meth:`LabelMapping.truth` (the code could mean any of them; the record stays a positive
where its other codes map).  Labels that no code maps to
(:meth:`LabelMapping.unmappable_labels`) cannot be evaluated on that dataset.

API: ``ptbxl_mapping()``, ``snomed_mapping()`` → :class:`LabelMapping`;
``label_categories()`` → ``{label: category}``; ``CATEGORIES``.  Source fields are parsed in
:mod:`ecgfounder.datasets` (``parse_scp_codes``, ``parse_dx``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import Iterable, Sequence

import numpy as np

from . import load_labels
from .errors import LabelError

__all__ = [
    "RELATIONS",
    "MAPPED_RELATIONS",
    "CATEGORIES",
    "MappingRow",
    "LabelMapping",
    "ptbxl_mapping",
    "snomed_mapping",
    "label_categories",
]

RELATIONS = ("equivalent", "narrower", "approximate", "ambiguous", "unmapped")
MAPPED_RELATIONS = ("equivalent", "narrower", "approximate")
CATEGORIES = (
    "rhythm",
    "conduction",
    "ectopy",
    "axis",
    "hypertrophy/enlargement",
    "ischaemia/infarction",
    "ST-T/morphology",
    "pacing",
    "serial comparison",
    "other/global",
)


@dataclass(frozen=True)
class MappingRow:
    """One row of a mapping table: ``code`` → ``label`` (empty when not mapped)."""

    code: str
    description: str
    label: str
    relation: str
    rationale: str
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelMapping:
    """A source vocabulary (PTB-XL SCP codes or SNOMED-CT) mapped to the 150 labels.

    Attributes:
        name: ``"ptbxl_scp"`` or ``"snomed"`` (or a user name).
        rows: every row of the table, in file order.
    """

    name: str
    rows: tuple[MappingRow, ...]

    def __post_init__(self) -> None:
        valid = set(load_labels())
        for r in self.rows:
            if r.relation not in RELATIONS:
                raise LabelError(f"mapping {self.name}: code {r.code!r} has relation {r.relation!r}; valid: {RELATIONS}.")
            if r.relation in MAPPED_RELATIONS and r.label not in valid:
                raise LabelError(f"mapping {self.name}: code {r.code!r} maps to {r.label!r}, which is not one of the 150 labels.")
            if r.relation not in MAPPED_RELATIONS and r.label:
                raise LabelError(f"mapping {self.name}: code {r.code!r} is {r.relation} but names label {r.label!r}; leave it empty.")
            bad = [c for c in r.candidates if c not in valid]
            if bad:
                raise LabelError(f"mapping {self.name}: code {r.code!r} names candidate(s) {bad} that are not among the 150 labels.")
            if r.relation == "ambiguous" and not r.candidates:
                raise LabelError(f"mapping {self.name}: ambiguous code {r.code!r} names no candidate labels; list the labels it could mean.")

    @property
    def codes(self) -> tuple[str, ...]:
        """Every source code the table knows (mapped or not), in file order."""
        return tuple(dict.fromkeys(r.code for r in self.rows))

    @cached_property
    def _index(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for r in self.rows:
            out.setdefault(r.code, [])
            if r.relation in MAPPED_RELATIONS:
                out[r.code].append(r.label)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def _candidates(self) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for r in self.rows:
            out.setdefault(r.code, set()).update(r.candidates)
        return {k: frozenset(v) for k, v in out.items()}

    def candidates_for(self, code: str) -> frozenset[str]:
        """Labels a code could mean without being a positive for them; ``KeyError`` if unknown."""
        return self._candidates[str(code).strip()]

    def labels_for(self, code: str) -> tuple[str, ...]:
        """Target labels of one code (empty for ambiguous/unmapped); ``KeyError`` if unknown."""
        return self._index[str(code).strip()]

    def targets(self, codes: Iterable[str]) -> tuple[set[str], set[str]]:
        """``(labels, unknown_codes)`` for the codes of one record."""
        idx = self._index
        labels: set[str] = set()
        unknown: set[str] = set()
        for c in codes:
            c = str(c).strip()
            if not c:
                continue
            if c in idx:
                labels.update(idx[c])
            else:
                unknown.add(c)
        return labels, unknown

    @property
    def mapped_labels(self) -> tuple[str, ...]:
        """Labels at least one code maps to, in model (neuron) order."""
        hit = {r.label for r in self.rows if r.relation in MAPPED_RELATIONS}
        return tuple(lab for lab in load_labels() if lab in hit)

    def unmappable_labels(self) -> tuple[str, ...]:
        """Labels no code maps to: they cannot be evaluated on this vocabulary."""
        hit = set(self.mapped_labels)
        return tuple(lab for lab in load_labels() if lab not in hit)

    def unmapped_codes(self) -> tuple[MappingRow, ...]:
        """Rows of codes left unmapped (``ambiguous`` or ``unmapped``), with their reasons."""
        mapped = {r.code for r in self.rows if r.relation in MAPPED_RELATIONS}
        return tuple(r for r in self.rows if r.code not in mapped)

    def matrix(
        self, records_codes: Sequence[Iterable[str]], labels: Sequence[str] | None = None
    ) -> tuple[np.ndarray, dict[str, int]]:
        """Binary targets for many records.

        Args:
            records_codes: for each record, its source codes.
            labels: columns of the result (default :attr:`mapped_labels`).

        Returns:
            ``(y, unknown)``: ``y`` bool ``(n_records, len(labels))``; ``unknown`` counts the
            codes met that the table does not know (``code -> number of records``).
        """
        labels = list(self.mapped_labels if labels is None else labels)
        col = {lab: j for j, lab in enumerate(labels)}
        y = np.zeros((len(records_codes), len(labels)), dtype=bool)
        unknown: dict[str, int] = {}
        for i, codes in enumerate(records_codes):
            labs, unk = self.targets(codes)
            for lab in labs:
                j = col.get(lab)
                if j is not None:
                    y[i, j] = True
            for c in unk:
                unknown[c] = unknown.get(c, 0) + 1
        return y, unknown

    def truth(
        self, records_codes: Sequence[Iterable[str]], labels: Sequence[str] | None = None,
        uncertain: Sequence[Iterable[str]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Binary targets and the per-label evaluability mask for many records.

        ``uncertain``: per record, codes stated with too low a confidence (PTB-XL likelihood below
        a threshold): neither positives nor negatives for their labels and candidates.

        Returns:
            ``(y, evaluable, unknown)``: ``y`` and ``evaluable`` bool ``(n_records, len(labels))``;
            ``evaluable[i, j]`` is false when record ``i`` is not a positive for label ``j`` but
            carries a code naming ``j`` among its candidates, an uncertain code that maps to
            ``j`` or names it, or a code the table does not know (it must not count as a negative).
        """
        labels = list(self.mapped_labels if labels is None else labels)
        y, unknown = self.matrix(records_codes, labels)
        col = {lab: j for j, lab in enumerate(labels)}
        excluded = np.zeros_like(y)
        cand, idx = self._candidates, self._index
        for i, codes in enumerate(records_codes):
            hit = [lab for c in codes for lab in cand.get(str(c).strip(), ())]
            odd = any(str(c).strip() and str(c).strip() not in idx for c in codes)
            for c in (uncertain[i] if uncertain is not None else ()):
                c = str(c).strip()
                if c and c not in idx:
                    unknown[c] = unknown.get(c, 0) + 1
                    odd = True
                hit += [*idx.get(c, ()), *cand.get(c, ())]
            if odd:  # a code of unknown meaning: the record is no negative of any label
                excluded[i] = True
                continue
            for lab in hit:
                j = col.get(lab)
                if j is not None:
                    excluded[i, j] = True
        return y, y | ~excluded, unknown

    def to_frame(self):
        """The table as a pandas DataFrame (columns ``code, description, label, relation, rationale``)."""
        import pandas as pd

        return pd.DataFrame([{**r.__dict__, "candidates": "; ".join(r.candidates)} for r in self.rows])


def _read_csv(name: str) -> list[dict[str, str]]:
    return _parse_csv(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"), name)


def _parse_csv(text: str, name: str) -> list[dict[str, str]]:
    """Rows of a package table; a row with more fields than the header (an unquoted comma, whose
    tail csv.DictReader would silently set aside) is a :class:`LabelError`."""
    rows = list(csv.DictReader(io.StringIO(text)))
    for i, r in enumerate(rows):
        if None in r:
            raise LabelError(f"{name}: data row {i + 1} ({next(iter(r.values()))!r}) has {len(r) - 1 + len(r[None])} fields, "
                             f"the header {len(r) - 1}; quote the field holding a comma.")
    return rows


def _candidates(text: str | None) -> tuple[str, ...]:
    """``"A; B; category:pacing"`` → labels (categories expanded, model order kept, no repeats)."""
    out: list[str] = []
    for tok in (t.strip() for t in (text or "").split(";")):
        if tok.startswith("category:"):
            cat = tok.split(":", 1)[1].strip()
            if cat not in CATEGORIES:
                raise LabelError(f"candidate {tok!r} names unknown category {cat!r}; known: {CATEGORIES}.")
            out += [lab for lab, c in _categories() if c == cat]
        elif tok:
            out.append(tok)
    return tuple(dict.fromkeys(out))


def _rows(name: str, code: str, description: str) -> tuple[MappingRow, ...]:
    return tuple(
        MappingRow(r[code].strip(), r[description], r["label"].strip(), r["relation"].strip(), r["rationale"],
                   _candidates(r.get("candidates")))
        for r in _read_csv(name)
    )


@lru_cache(maxsize=None)
def ptbxl_mapping() -> LabelMapping:
    """PTB-XL SCP-ECG statement codes → 150 labels (``ptbxl_scp_to_150.csv``)."""
    return LabelMapping("ptbxl_scp", _rows("ptbxl_scp_to_150.csv", "scp_code", "scp_description"))


@lru_cache(maxsize=None)
def snomed_mapping() -> LabelMapping:
    """SNOMED-CT codes of the CinC 2021 challenge → 150 labels (``snomed_to_150.csv``)."""
    return LabelMapping("snomed", _rows("snomed_to_150.csv", "snomed_code", "snomed_name"))


@lru_cache(maxsize=None)
def _categories() -> tuple[tuple[str, str], ...]:
    rows = _read_csv("label_categories.csv")
    labels = load_labels()
    got = tuple((r["label"], r["category"]) for r in rows)
    if tuple(lab for lab, _ in got) != labels:
        raise RuntimeError("package data label_categories.csv does not list the 150 labels in model order")
    bad = [c for _, c in got if c not in CATEGORIES]
    if bad:
        raise RuntimeError(f"label_categories.csv uses unknown categories {sorted(set(bad))}; known: {CATEGORIES}")
    return got


def label_categories() -> dict[str, str]:
    """Clinical category of each of the 150 labels (``label -> category``, model order)."""
    return dict(_categories())
