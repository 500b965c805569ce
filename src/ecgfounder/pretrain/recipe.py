"""The pre-training recipe: label policy, losses, lead augmentation, lead masking, schedule,
EMA and model-size presets.  Each paper choice is an option with our documented reading.

**Label policy** (:func:`targets`): the store keeps label *states* (positive, none, negated,
uncertain).  Positive → target 1; none and negated → 0; uncertain → ``uncertain`` policy:
``mask`` (weight 0: the label says nothing for this record; default), ``positive``, ``negative``
or ``soft`` (target 0.5).

**PU-style asymmetric loss** (:func:`asymmetric_loss`).  The paper's training used "a
positive-unlabeled style loss (γ = 1.5)", formula unpublished.  Our reading: a statement that is
not written is *unlabelled*, not negative (cardiologists do not list every absent finding), so the
negative term is the asymmetric loss of Ridnik et al. (ICCV 2021) with focusing ``γ− = gamma``
(1.5), probability shift ``clip`` (0.05) and ``γ+ = 0``::

    L = −y·log p − (1 − y)·p_m^γ·log(1 − p_m),    p_m = max(p − clip, 0)

Easy unlabelled negatives (p < clip) cost nothing; the gradient for a confidently predicted
unlabelled label (likely a missing positive) is damped.  Labels *explicitly negated* in a
statement ("no evidence of AF") are known negatives and keep the plain BCE negative term.
``loss="bce"`` is ordinary binary cross-entropy.  Ablated in ``docs/pretrain.md``.

**Single-lead lead augmentation** (:func:`select_lead`): the single-lead model saw lead I or, with
probability ``p`` (0.5), one of aVL, −aVR, II, −III, aVF, −aVF chosen uniformly (our reading of
"a lead of a similar axis", sign-flipped where the axis is opposite).  The selected lead is
z-scored again on its own, which equals preprocessing that lead alone (the chain is linear per
lead and the z-score affine), so training input matches the single-lead contract.

**Random lead masking** (:func:`mask_leads`): each lead is zeroed with probability ``p`` (at least
one lead kept) and the kept leads are z-scored together again, exactly what
:func:`ecgfounder.preprocess` does with ``fill_missing`` for a record lacking those leads.

All randomness comes from :func:`ecgfounder.train.augment.augment_rng` seeded with ``(seed, epoch,
example)``: a resumed or distributed run sees the same augmented inputs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.net1d import Net1DConfig
from ..train.augment import augment_rng
from ..train.model import warmup_cosine  # (one schedule formula for fine-tuning and pre-training)
from .statements import NEGATED, POSITIVE, UNCERTAIN

__all__ = [
    "UNCERTAIN_POLICIES", "LOSSES", "SIZE_PRESETS", "SINGLE_LEAD_ALTERNATIVES",
    "targets", "asymmetric_loss", "bce_loss", "select_lead", "mask_leads", "transform_batch",
    "warmup_cosine", "size_preset",
]

UNCERTAIN_POLICIES = ("mask", "positive", "negative", "soft")
LOSSES = ("asymmetric", "bce")
# (lead, sign) alternatives to lead I for the single-lead model
SINGLE_LEAD_ALTERNATIVES: tuple[tuple[str, float], ...] = (
    ("aVL", 1.0), ("aVR", -1.0), ("II", 1.0), ("III", -1.0), ("aVF", 1.0), ("aVF", -1.0),
)

# Net1D sizes.  base = the released 30.8 M configuration; small ≈ 8.6 M; large ≈ 67 M (between the
# 30.8 M release and the 76.3 M "primary model" a secondary summary mentions); tiny for tests.
SIZE_PRESETS: dict[str, dict] = {
    "tiny": {"base_filters": 16, "filter_list": (16, 32, 32, 64), "m_blocks_list": (1, 1, 1, 1)},
    "small": {"base_filters": 32, "filter_list": (32, 80, 80, 208, 208, 512, 512)},
    "base": {},
    "large": {"base_filters": 96, "filter_list": (96, 240, 240, 608, 608, 1536, 1536)},
}


def size_preset(name: str, *, in_channels: int, n_classes: int, **overrides) -> Net1DConfig:
    """The :class:`Net1DConfig` of a size preset (``tiny``, ``small``, ``base``, ``large``)."""
    if name not in SIZE_PRESETS:
        raise ValueError(f"model.size={name!r} is not valid; choose one of {list(SIZE_PRESETS)}.")
    return Net1DConfig(**{**SIZE_PRESETS[name], **overrides, "in_channels": in_channels, "n_classes": n_classes})


def targets(states: np.ndarray, uncertain: str = "mask") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(target, weight, known_negative)`` float32 arrays from int8 label states."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"recipe.uncertain={uncertain!r} is not valid; choose one of {list(UNCERTAIN_POLICIES)}.")
    s = np.asarray(states)
    t = (s == POSITIVE).astype(np.float32)
    w = np.ones_like(t)
    unc = s == UNCERTAIN
    if uncertain == "mask":
        w[unc] = 0.0
    elif uncertain == "positive":
        t[unc] = 1.0
    elif uncertain == "soft":
        t[unc] = 0.5
    return t, w, (s == NEGATED).astype(np.float32)


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise binary cross-entropy on logits."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def asymmetric_loss(logits: torch.Tensor, target: torch.Tensor, known_negative: torch.Tensor | None = None,
                    *, gamma: float = 1.5, clip: float = 0.05) -> torch.Tensor:
    """Element-wise PU-style asymmetric loss (see the module docstring); float32 math."""
    z = logits.float()
    y = target.float()
    pos = -y * F.logsigmoid(z)
    p = torch.sigmoid(z)
    if clip > 0:
        pm = (p - clip).clamp(min=0)
        log_neg = torch.log((1 - pm).clamp(min=1e-8))
    else:
        pm = p
        log_neg = F.logsigmoid(-z)
    focus = pm.pow(gamma) if gamma > 0 else torch.ones_like(pm)
    if known_negative is not None:  # explicit negatives: plain BCE negative term
        kn = known_negative.float()
        focus = kn + (1 - kn) * focus
        log_neg = kn * F.logsigmoid(-z) + (1 - kn) * log_neg
    return pos - (1 - y) * focus * log_neg


def _rezscore(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / (x.std() + 1e-8)).astype(np.float32)


def select_lead(x: np.ndarray, leads: Sequence[str], rng: np.random.Generator | None, p: float = 0.5) -> np.ndarray:
    """``(1, n)`` single-lead window from a ``(leads, n)`` one: lead I, or with probability ``p``
    one of :data:`SINGLE_LEAD_ALTERNATIVES` (``rng=None``: always lead I)."""
    idx = {name: i for i, name in enumerate(leads)}
    name, sign = "I", 1.0
    if rng is not None and p > 0 and rng.random() < p:
        name, sign = SINGLE_LEAD_ALTERNATIVES[int(rng.integers(len(SINGLE_LEAD_ALTERNATIVES)))]
    if name not in idx:
        raise ValueError(f"lead {name} is not among the store's leads {list(leads)}; build the store with 12 leads.")
    row = x[idx[name]] * np.float32(sign)
    if not np.any(row):
        return np.zeros((1, x.shape[1]), np.float32)
    return _rezscore(row)[None, :]


def mask_leads(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Zero each lead with probability ``p`` (one live lead always kept); re-z-score the rest."""
    live = np.flatnonzero(np.any(x != 0, axis=1))
    if p <= 0 or len(live) <= 1:
        return x
    drop = rng.random(len(live)) < p
    if drop.all():
        drop[int(rng.integers(len(live)))] = False
    if not drop.any():
        return x
    y = np.zeros_like(x)
    keep = live[~drop]
    y[keep] = _rezscore(x[keep])
    return y


def _example_id(key: str) -> int:
    return int("".join(ch for ch in key if ch.isdigit()) or 0)


def transform_batch(x: np.ndarray, keys: Sequence[str], *, store_leads: Sequence[str], model_leads: Sequence[str],
                    seed: int, epoch: int, lead_augment_p: float = 0.0, lead_mask_p: float = 0.0) -> np.ndarray:
    """Store windows ``(b, store leads, n)`` → model input ``(b, model leads, n)`` with the
    recipe's augmentations (``lead_augment_p`` for single-lead models, ``lead_mask_p`` for
    multi-lead ones); per-example generators keyed by ``(seed, epoch, key)``."""
    single = len(model_leads) == 1 and len(store_leads) > 1
    if not single and tuple(model_leads) != tuple(store_leads):
        idx = {name: i for i, name in enumerate(store_leads)}
        missing = [ld for ld in model_leads if ld not in idx]
        if missing:
            raise ValueError(f"model leads {missing} are not in the store (leads {list(store_leads)}).")
        x = x[:, [idx[ld] for ld in model_leads]]
    if not single and lead_mask_p <= 0:
        return np.ascontiguousarray(x, dtype=np.float32)
    out = []
    for xi, key in zip(x, keys):
        rng = augment_rng(seed, epoch, _example_id(key))
        if single:
            out.append(select_lead(xi, store_leads, rng if lead_augment_p > 0 else None, lead_augment_p))
        else:
            out.append(mask_leads(xi, rng, lead_mask_p))
    return np.stack(out).astype(np.float32, copy=False)
