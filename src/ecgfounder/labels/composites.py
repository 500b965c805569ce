"""Composite targets: one finding that GE MUSE words in several mutually exclusive ways.

The 150 labels are MUSE statements, and MUSE words some findings in more than one way (a sinus
rhythm at a normal rate is "SINUS RHYTHM" or "NORMAL SINUS RHYTHM" depending on the rest of the
report).  A dataset code for such a finding maps to every wording; scoring each output on its
own against the same positives would underrate each and count the finding twice in a macro
average.  A composite target is therefore scored **once**, under its own name, with the score
``max`` over its member outputs (rule ``"max"``: the model says the finding with whichever
wording it prefers), and its members are listed in the report.

Ground truth of a composite: a record is a positive when it is a positive for any member, and it
is excluded from the negatives when it is excluded for any member.

API: ``COMPOSITES`` (tuple of :class:`Composite`); ``build_targets(labels)`` → target names and
their member labels, with members of a composite replaced by the composite (in model order of
the first member); ``composite_scores(scores, labels, targets)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .errors import LabelError

__all__ = ["Composite", "COMPOSITES", "COMPOSITE_RULE", "build_targets", "composite_scores", "target_truth"]

COMPOSITE_RULE = "max"


@dataclass(frozen=True)
class Composite:
    """A finding worded several ways: scored as ``max`` of its ``members``' outputs."""

    name: str
    members: tuple[str, ...]
    rationale: str


COMPOSITES: tuple[Composite, ...] = (
    Composite(
        "SINUS RHYTHM (either wording)", ("SINUS RHYTHM", "NORMAL SINUS RHYTHM"),
        "MUSE says NORMAL SINUS RHYTHM or SINUS RHYTHM for a sinus rhythm at a normal rate, depending on the rest of the report.",
    ),
    Composite(
        "NONSPECIFIC INTRAVENTRICULAR CONDUCTION DELAY (either wording)",
        ("NONSPECIFIC INTRAVENTRICULAR CONDUCTION DELAY", "NONSPECIFIC INTRAVENTRICULAR BLOCK"),
        "Two MUSE outputs for the same nonspecific intraventricular conduction disturbance.",
    ),
    Composite(
        "ACUTE MI (either wording)", ("ACUTE MI / STEMI", "ACUTE MI"),
        "MUSE's acute-infarct statement appears as 'ACUTE MI / STEMI' or 'ACUTE MI'.",
    ),
    Composite(
        "NORMAL ECG (either wording)", ("NORMAL ECG", "otherwise normal ecg"),
        "MUSE ends a normal report with 'NORMAL ECG' or with '<rhythm>, otherwise normal ecg'; PTB-XL NORM spans both.",
    ),
    Composite(
        "PREMATURE ATRIAL OR SUPRAVENTRICULAR COMPLEXES", ("PREMATURE ATRIAL COMPLEXES", "PREMATURE SUPRAVENTRICULAR COMPLEXES"),
        "MUSE says 'supraventricular' when it does not place the focus; CinC 2021 scores PAC (284470004) and SVPB (63593006) as one class.",
    ),
)


def build_targets(labels: Sequence[str], composites: Sequence[Composite] = COMPOSITES) -> dict[str, tuple[str, ...]]:
    """``target -> member labels`` for the given labels (e.g. the mapped ones, in model order).

    A composite becomes a target when at least one of its members is among ``labels``; its
    members are those present.  Every other label is its own target.  Order: model order of the
    first member present.
    """
    present = list(labels)
    owner = {m: c for c in composites for m in c.members}
    out: dict[str, tuple[str, ...]] = {}
    for lab in present:
        c = owner.get(lab)
        if c is None:
            out[lab] = (lab,)
        elif c.name not in out:
            out[c.name] = tuple(m for m in c.members if m in present)
    return out


def target_truth(
    y: np.ndarray, evaluable: np.ndarray, labels: Sequence[str], targets: Mapping[str, Sequence[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """``(y, evaluable)`` over targets from per-label ``(n, len(labels))`` arrays.

    A record is a positive of a target when it is a positive of any member; it is evaluable when
    it is a positive or evaluable for every member.
    """
    col = {lab: j for j, lab in enumerate(labels)}
    yt = np.zeros((y.shape[0], len(targets)), dtype=bool)
    et = np.ones_like(yt)
    for k, members in enumerate(targets.values()):
        idx = [col[m] for m in members]
        yt[:, k] = y[:, idx].any(axis=1)
        et[:, k] = yt[:, k] | evaluable[:, idx].all(axis=1)
    return yt, et


def composite_scores(
    scores: np.ndarray, score_labels: Sequence[str], targets: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """``(n, len(targets))`` scores: each target's score is the max over its member outputs.

    ``score_labels`` names the columns of ``scores`` (e.g. the model's 150 outputs); a member
    that is not among them raises ``ValueError`` naming it.
    """
    col = {lab: j for j, lab in enumerate(score_labels)}
    s = np.asarray(scores, dtype=np.float64)
    out = np.empty((s.shape[0], len(targets)))
    for k, (name, members) in enumerate(targets.items()):
        missing = [m for m in members if m not in col]
        if missing:
            raise LabelError(f"target {name!r} needs output(s) {missing} that the scores do not have; "
                             f"use a model with the 150 ECGFounder labels.")
        out[:, k] = s[:, [col[m] for m in members]].max(axis=1)
    return out
