"""The columns of the tables ``predict`` and ``embed`` write, in order (no heavy imports: a run's
settings name them before the model or the signal code is loaded).  The non-score columns are
:data:`ecgfounder._formats.META_COLUMNS`."""

from __future__ import annotations

from typing import Sequence

from .._formats import META_COLUMNS

__all__ = ["score_columns", "index_columns", "table_columns", "column_kinds", "META_KINDS"]

#: the value kind of each non-score column (a label score column is ``float32``); a table's types
#: come from these, never from its first rows (where ``member`` or ``start_s`` may all be empty)
META_KINDS: dict[str, str] = {"record": "string", "path": "string", "member": "string", "n_windows": "int64",
                              "quality": "string", "quality_leads": "string", "window": "int64", "start_s": "float64"}


def score_columns(labels: Sequence[str], aggregate: str = "mean", *, quality_detail: bool = False) -> list[str]:
    """The columns of a prediction table, in order (see :func:`ecgfounder.prediction.stream.result_rows`)."""
    left_out = ({"window", "start_s"} if aggregate != "none" else set()) | (set() if quality_detail else {"quality_leads"})
    return [c for c in META_COLUMNS if c not in left_out] + list(labels)


def index_columns(aggregate: str = "mean") -> list[str]:
    """The columns of an embeddings index table, in order (see
    :func:`ecgfounder.prediction.stream.index_rows`): a prediction table's without the scores."""
    return score_columns((), aggregate)


def table_columns(kind: str, aggregate: str = "mean", labels: Sequence[str] = (), *, quality_detail: bool = False
                  ) -> list[str]:
    """The columns of the table a run of ``kind`` writes: ``scores`` (:func:`score_columns`) or
    ``index`` (:func:`index_columns`: embeddings)."""
    return score_columns(labels, aggregate, quality_detail=quality_detail) if kind == "scores" else index_columns(aggregate)


def column_kinds(columns: Sequence[str]) -> dict[str, str]:
    """The value kind of each of ``columns`` (a prediction or index table's): :data:`META_KINDS`,
    ``float32`` for every other column (a label's probability)."""
    return {c: META_KINDS.get(c, "float32") for c in columns}
