"""Sanity checks for attribution maps that can fail (Adebayo et al. 2018, "Sanity checks for
saliency maps"; deletion curves after Samek et al. 2017 / Petsiuk et al. 2018).

* :func:`randomised_copy`: the model with its head, then its last stages, re-initialised
  (cascading randomisation, top down).  Maps of a method that explains the model must change:
  :func:`rank_correlation` between trained and randomised maps should be low.
* :func:`region_share`: the share of attribution mass inside a lead × time region (the
  planted-signal test: a feature planted there should draw most of the mass).
* :func:`deletion_curve`: the model's score as the most-attributed segments are removed (set to the
  baseline), against removing random segments; a faithful map lowers the score faster.

All work in the model's input space (windows as :func:`ecgfounder.preprocess` makes them).
"""

from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch

from ..models.net1d import Net1D
from .attribution import ExplainError

__all__ = ["randomised_copy", "rank_correlation", "region_share", "deletion_curve"]


def randomised_copy(model: Net1D, depth: int = 1, seed: int = 0) -> Net1D:
    """A copy of ``model`` whose top ``depth`` parts are re-initialised: ``1`` the head (``dense``),
    ``2`` the head and the last stage, ``3`` also the stage before, and so on (cascading, as in
    Adebayo et al.).  Re-initialisation is each layer's own ``reset_parameters`` (PyTorch's default)."""
    n_stages = len(model.stage_list)
    if not 1 <= depth <= n_stages + 1:
        raise ExplainError(f"depth={depth}: choose 1 (head) to {n_stages + 1} (head and all {n_stages} stages).")
    out = copy.deepcopy(model)
    parts: list[torch.nn.Module] = [out.dense] + [out.stage_list[-k] for k in range(1, depth)]
    with torch.random.fork_rng(devices=[]):  # seeded here, the caller's random state left as it was
        torch.manual_seed(seed)
        for part in parts:
            for m in part.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
    return out.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> float:
    """Spearman rank correlation of two maps of one shape (``absolute``: of their magnitudes, the
    comparison Adebayo et al. report for signed methods)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ExplainError(f"maps of different sizes ({a.size} vs {b.size}) cannot be compared.")
    if absolute:
        a, b = np.abs(a), np.abs(b)
    return float(spearmanr(a, b).statistic)


def region_share(attribution: np.ndarray, lead: int, start: int, stop: int) -> float:
    """Share of ``|attribution|`` mass of a ``(n_leads, n_samples)`` map in row ``lead``, samples
    ``start:stop``."""
    a = np.abs(np.asarray(attribution, np.float64))
    tot = a.sum()
    return float(a[lead, start:stop].sum() / tot) if tot > 0 else 0.0


def _segment_order(attr: np.ndarray, segment: int, order: str, rng: np.random.Generator) -> np.ndarray:
    n_leads, length = attr.shape
    n_seg = -(-length // segment)
    pad = np.zeros((n_leads, n_seg * segment))
    pad[:, :length] = attr
    mass = pad.reshape(n_leads, n_seg, segment).sum(axis=2).ravel()  # signed: evidence for the label
    if order == "attribution":
        return np.argsort(-mass, kind="stable")
    return rng.permutation(mass.size)


def deletion_curve(
    model: Net1D,
    windows: np.ndarray,
    attributions: np.ndarray,
    target: int,
    *,
    fractions: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2),
    segment: int = 25,
    order: str = "attribution",
    seed: int = 0,
) -> np.ndarray:
    """Mean logit of ``target`` over ``windows`` after deleting a growing fraction of segments.

    Args:
        windows: ``(n, n_leads, n_samples)`` model input.
        attributions: ``(n, n_leads, n_samples)`` maps of ``target`` for those windows.
        fractions: shares of all ``n_leads × ceil(n_samples / segment)`` segments to delete.
        segment: segment length in samples (per lead).
        order: ``"attribution"`` (largest summed attribution first) or ``"random"``.

    Deleted segments are set to the IG baseline (0 in the normalised input space).
    Returns ``(len(fractions),)`` mean logits.
    """
    if order not in ("attribution", "random"):
        raise ExplainError(f"order={order!r}; choose 'attribution' or 'random'.")
    x = np.asarray(windows, np.float32)
    a = np.asarray(attributions, np.float64)
    if a.shape != x.shape:
        raise ExplainError(f"attributions {a.shape} and windows {x.shape} must have one shape.")
    rng = np.random.default_rng(seed)
    n, n_leads, length = x.shape
    n_seg = -(-length // segment)
    batch = []
    for k in range(n):
        ranks = _segment_order(a[k], segment, order, rng)
        for f in fractions:
            y = x[k].copy()
            for s in ranks[: int(round(f * n_leads * n_seg))]:
                lead, j = divmod(int(s), n_seg)
                y[lead, j * segment:(j + 1) * segment] = 0.0
            batch.append(y)
    model = model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(torch.from_numpy(np.stack(batch[i:i + 64])))[:, target]
                            for i in range(0, len(batch), 64)]).numpy()
    return logits.reshape(n, len(fractions)).mean(axis=0)
