"""Mappings from dataset label vocabularies to the 150 ECGFounder labels, and label categories.

Package data (one row per source code × target label, each with its rationale):

- ``ptbxl_scp_to_150.csv``: the 71 PTB-XL SCP-ECG statements (columns ``scp_code,
  scp_description, label, relation, rationale``);
- ``snomed_to_150.csv``: the 133 SNOMED-CT codes of the PhysioNet/CinC Challenge 2021
  (columns ``snomed_code, snomed_name, label, relation, rationale``);
- ``label_categories.csv``: a clinical category for each of the 150 labels.

``relation`` is one of:

``equivalent``   the same statement;
``narrower``     the source code is a special case of the label (its records are positives);
``approximate``  the closest label, defined by somewhat different criteria;
``ambiguous``    several labels could apply and the source does not say which: **not mapped**;
``unmapped``     no label corresponds: **not mapped**.

A source code may map to several labels (e.g. PTB-XL ``ILMI`` → INFERIOR INFARCT and LATERAL
INFARCT).  Codes not in the table at all are reported by :meth:`LabelMapping.targets` /
:meth:`LabelMapping.matrix`, never dropped silently.  Labels that no code maps to
(:meth:`LabelMapping.unmappable_labels`) cannot be evaluated on that dataset.

API: ``ptbxl_mapping()``, ``snomed_mapping()`` → :class:`LabelMapping`;
``label_categories()`` → ``{label: category}``; ``CATEGORIES``; ``parse_scp_codes(text)``.
"""

from __future__ import annotations

import ast
import csv
import io
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import Iterable, Mapping, Sequence

import numpy as np

from . import load_labels

__all__ = [
    "RELATIONS",
    "MAPPED_RELATIONS",
    "CATEGORIES",
    "MappingRow",
    "LabelMapping",
    "ptbxl_mapping",
    "snomed_mapping",
    "label_categories",
    "parse_scp_codes",
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
                raise ValueError(f"mapping {self.name}: code {r.code!r} has relation {r.relation!r}; valid: {RELATIONS}.")
            if r.relation in MAPPED_RELATIONS and r.label not in valid:
                raise ValueError(f"mapping {self.name}: code {r.code!r} maps to {r.label!r}, which is not one of the 150 labels.")
            if r.relation not in MAPPED_RELATIONS and r.label:
                raise ValueError(f"mapping {self.name}: code {r.code!r} is {r.relation} but names label {r.label!r}; leave it empty.")

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

    def to_frame(self):
        """The table as a pandas DataFrame (columns ``code, description, label, relation, rationale``)."""
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.rows])


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@lru_cache(maxsize=None)
def ptbxl_mapping() -> LabelMapping:
    """PTB-XL SCP-ECG statement codes → 150 labels (``ptbxl_scp_to_150.csv``)."""
    rows = tuple(
        MappingRow(r["scp_code"].strip(), r["scp_description"], r["label"].strip(), r["relation"].strip(), r["rationale"])
        for r in _read_csv("ptbxl_scp_to_150.csv")
    )
    return LabelMapping("ptbxl_scp", rows)


@lru_cache(maxsize=None)
def snomed_mapping() -> LabelMapping:
    """SNOMED-CT codes of the CinC 2021 challenge → 150 labels (``snomed_to_150.csv``)."""
    rows = tuple(
        MappingRow(r["snomed_code"].strip(), r["snomed_name"], r["label"].strip(), r["relation"].strip(), r["rationale"])
        for r in _read_csv("snomed_to_150.csv")
    )
    return LabelMapping("snomed", rows)


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


def parse_scp_codes(text: str | Mapping[str, float]) -> dict[str, float]:
    """Parse PTB-XL's ``scp_codes`` field, e.g. ``"{'NORM': 100.0, 'SR': 0.0}"``.

    Returns ``code -> likelihood`` (0–100; 0 means "unknown" for form/rhythm statements).
    Only Python literals are accepted (``ast.literal_eval``), never code.
    """
    if isinstance(text, Mapping):
        return {str(k): float(v) for k, v in text.items()}
    s = str(text).strip()
    if not s or s.lower() == "nan":
        return {}
    try:
        val = ast.literal_eval(s)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"scp_codes field {s[:60]!r} is not a dict literal like \"{{'NORM': 100.0}}\": {exc}") from None
    if not isinstance(val, dict):
        raise ValueError(f"scp_codes field {s[:60]!r} is a {type(val).__name__}, expected a dict like \"{{'NORM': 100.0}}\".")
    return {str(k).strip(): float(v) for k, v in val.items()}
