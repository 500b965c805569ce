"""Models: the Net1D architecture, its description, output heads, known weights and safe loading."""

from .description import ModelDescription, default_contract, model_fingerprint, model_metadata
from .heads import AGGREGATES, aggregate_windows, scores_from_logits
from .net1d import Net1D, Net1DConfig, net1d_1lead, net1d_12lead

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
