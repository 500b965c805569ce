"""Prediction: records in, per-label probabilities or embeddings out, from one call to an archive.

Modules (one concept each):

``records``   expand inputs, read, prepare; failures as results; record identity
``workers``   reading and preprocessing in worker processes that die with their parent
``stream``    the streaming batched forward (:func:`iter_predict`) and table rows
``api``       :func:`predict` and :func:`embed` (DataFrames)
``tables``    CSV/Parquet/JSON Lines written atomically (:class:`TableWriter`)
``shards``    splitting a record list; part names
``parts``     shard sidecars and :func:`merge_parts`
``embeddings`` an embeddings array's description (``emb.json``); when its rows are approximate
``setup``     checks before any model loads
``state``     resume state, completion record, output lock
``progress``  bar or periodic log lines
``archive``   :func:`run_archive`: the whole resumable, sharded job

Names load on first use, so that importing a light submodule (e.g. ``setup`` for a quick check)
does not pull in torch or pandas.
"""

from __future__ import annotations

from .._lazy import lazy_names

__all__ = [
    "predict",
    "embed",
    "iter_predict",
    "RecordResult",
    "resolve_model",
    "result_rows",
    "AGGREGATES",
    "outputs_to_scores",
    "run_archive",
    "ArchiveJob",
    "ArchiveReport",
    "merge_parts",
    "TableWriter",
]

_LAZY = {
    "predict": ("api", "predict"),
    "embed": ("api", "embed"),
    "iter_predict": ("stream", "iter_predict"),
    "resolve_model": ("stream", "resolve_model"),
    "result_rows": ("stream", "result_rows"),
    "RecordResult": ("records", "RecordResult"),
    "run_archive": ("archive", "run_archive"),
    "ArchiveJob": ("archive", "ArchiveJob"),
    "ArchiveReport": ("archive", "ArchiveReport"),
    "merge_parts": ("parts", "merge_parts"),
    "TableWriter": ("tables", "TableWriter"),
}
_LAZY.update({
    "AGGREGATES": ("..models.heads", "AGGREGATES"),
    # the former name of scores_from_logits, kept for callers written against it
    "outputs_to_scores": ("..models.heads", "scores_from_logits"),
})

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
