"""Models: the Net1D architecture, its description, output heads, known weights and safe loading.

Names load on first use (``ecgfounder.models.heads`` and ``.description`` are importable without
torch being loaded by this package's initialiser).
"""

from __future__ import annotations

from .._lazy import lazy_names

__all__ = [
    "Net1D",
    "Net1DConfig",
    "net1d_12lead",
    "net1d_1lead",
    "ModelDescription",
    "default_contract",
    "model_fingerprint",
    "model_metadata",
    "AGGREGATES",
    "aggregate_windows",
    "scores_from_logits",
]

_LAZY = {
    "Net1D": "net1d", "Net1DConfig": "net1d", "net1d_12lead": "net1d", "net1d_1lead": "net1d",
    "ModelDescription": "description", "default_contract": "description", "model_fingerprint": "description",
    "model_metadata": "description",
    "AGGREGATES": "heads", "aggregate_windows": "heads", "scores_from_logits": "heads",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
