"""Tuning/test splits for choosing operating thresholds on records other than the reported ones.

``random_split(n, fraction, seed=0, groups=None) -> bool (n,)``
    A tuning mask of about ``fraction`` of the records (whole patients when ``groups`` is given).
``stratified_split(fraction, groups, strata, seed=0) -> bool (n,)``
    The same, drawn separately inside each stratum (e.g. the CinC 2021 source database), so that
    every source contributes the same fraction of its patients to the tuning split.  A patient
    found in several strata is assigned to the stratum of its first record.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .bootstrap import check_group_ids, check_seed
from .errors import EvaluationError

__all__ = ["random_split", "stratified_split"]


def _check_fraction(fraction: float, seed: int | None) -> None:
    check_seed(seed)
    if not 0 < fraction < 1:
        raise EvaluationError(f"tuning fraction must be between 0 and 1 (exclusive); got {fraction}.")


def random_split(n: int, fraction: float, seed: int | None = 0, groups: Sequence | np.ndarray | None = None) -> np.ndarray:
    """Tuning mask: about ``fraction`` of the records (whole patients when ``groups`` is given).

    Returns bool ``(n,)``; the complement is the test split.
    """
    _check_fraction(fraction, seed)
    rng = np.random.default_rng(seed)
    if groups is None:
        k = int(round(fraction * n))
        mask = np.zeros(n, dtype=bool)
        mask[rng.permutation(n)[:k]] = True
        return mask
    g = np.asarray(groups)
    check_group_ids(g)
    g = g.astype(str)
    uniq, inv = np.unique(g, return_inverse=True)
    k = int(round(fraction * len(uniq)))
    pick = np.zeros(len(uniq), dtype=bool)
    pick[rng.permutation(len(uniq))[:k]] = True
    return pick[inv.reshape(-1)]


def stratified_split(
    fraction: float, groups: Sequence | np.ndarray, strata: Sequence | np.ndarray, seed: int | None = 0
) -> np.ndarray:
    """Tuning mask drawing ``fraction`` of the patients of each stratum (see module docstring)."""
    _check_fraction(fraction, seed)
    g = np.asarray(groups)
    check_group_ids(g)
    g = g.astype(str)
    st = np.asarray(strata).astype(str)
    if g.shape != st.shape:
        raise EvaluationError(f"groups {g.shape} and strata {st.shape} must hold one value per record.")
    uniq, first, inv = np.unique(g, return_index=True, return_inverse=True)
    home = st[first]  # stratum of each patient
    rng = np.random.default_rng(seed)
    pick = np.zeros(len(uniq), dtype=bool)
    for s in np.unique(home):
        idx = np.flatnonzero(home == s)
        k = int(round(fraction * len(idx)))
        pick[rng.permutation(idx)[:k]] = True
    return pick[inv.reshape(-1)]
