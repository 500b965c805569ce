"""Vectorised bootstrap: resampling weights and weighted rank metrics for many labels at once.

A bootstrap resample of ``n`` records is represented by its *multiplicity weights*: an integer
vector ``w`` of length ``n`` (``w[i]`` = how often record ``i`` was drawn, summing to ``n``).
Every metric of the resampled set equals the same metric of the original set with sample
weights ``w`` (records drawn zero times drop out), so ``B`` resamples are one ``(B, n)`` integer
matrix and every metric is computed for all resamples with matrix operations, never a Python
loop over resamples.

API
---
``bootstrap_weights(n, n_boot, seed=0, groups=None, chunk=None)``
    Yields ``(b, n)`` int32 weight blocks (``b`` ≤ ``chunk``) whose rows are the resamples; resample
    ``k`` depends only on ``(n, seed, groups, k)``, not on ``chunk`` or ``n_boot``.  With ``groups`` (one patient id
    per record) patients are resampled and each record gets its patient's multiplicity
    (cluster bootstrap).
``weighted_auroc_ap(y_true, y_score, weights)``
    AUROC and average precision of each column of ``y_true (n, L)`` / ``y_score (n, L)`` under each
    weight row of ``weights (B, n)`` → two ``(B, L)`` float arrays.  Ties are handled as in
    scikit-learn (``roc_auc_score`` trapezoids, ``average_precision_score`` step sums over
    distinct scores); with unit weights the results equal scikit-learn's to rounding (1e-12).
    Undefined values (no weighted positives or negatives) are NaN.
``weighted_confusion(y_true, y_pred, weights, evaluable=None)``
    ``tp, fp, fn, tn`` as ``(B, L)`` arrays (matrix products).

Every function taking ``evaluable`` (bool ``(n, L)``, default all true) counts only the
evaluable entries of each label: a record outside a label's mask is absent for that label
(neither positive nor negative), for the point estimate and in every resample.
``percentile_ci(values, level=0.95)``
    Percentile interval over axis 0, ignoring NaN resamples.

Why hand-written rather than calling scikit-learn per resample: 150 labels × 1,000 resamples is
150,000 calls; ``benchmarks/bench_bootstrap.py`` measures the ratio in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .errors import EvaluationError

__all__ = [
    "bootstrap_weights",
    "RankMetrics",
    "weighted_auroc_ap",
    "weighted_micro_auroc_ap",
    "weighted_confusion",
    "percentile_ci",
    "default_chunk",
    "check_mask",
    "check_group_ids",
    "check_seed",
    "group_index",
    "as_binary",
]

# Elements of a (b, n) working block; bounds memory to a few tens of MB per array.
_BLOCK_ELEMENTS = 2_000_000


def default_chunk(n_items: int) -> int:
    """Number of resamples processed together for ``n_items`` records (memory bound)."""
    return max(1, min(1000, _BLOCK_ELEMENTS // max(1, n_items)))


def check_seed(seed: int | None) -> None:
    """Refuse a seed numpy cannot take (negative, fractional) with a message naming it."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise EvaluationError(f"seed must be a whole number >= 0; got {seed!r}.")


def check_group_ids(g: np.ndarray) -> None:
    """Refuse missing patient ids (NaN, or None/NaN/NA in an object array): cast to text they
    would all become one shared "patient" (``"nan"``, ``"None"``)."""
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise EvaluationError("groups contains NaN ids; give every record a patient id (or pass groups=None).")
    if g.dtype == object:
        missing = np.asarray(pd.isna(g), dtype=bool)
        if missing.any():
            raise EvaluationError(f"groups holds {int(missing.sum())} missing patient id(s) (None/NaN), first at record "
                                  f"{int(np.argmax(missing))}; give every record a patient id (or pass groups=None).")


def group_index(groups: Sequence | np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """``(index of each record's group in 0 .. n_groups - 1, n_groups)`` for ``groups``, one patient
    id per record; refuses a wrong length and missing ids (:func:`check_group_ids`)."""
    g = np.asarray(groups)
    if g.shape != (n,):
        raise EvaluationError(f"groups must hold one id per record: expected shape ({n},), got {g.shape}.")
    check_group_ids(g)
    _, inverse = np.unique(g.astype(str) if g.dtype == object else g, return_inverse=True)
    inverse = inverse.reshape(-1)
    return inverse, int(inverse.max()) + 1 if n else 0


def bootstrap_weights(
    n: int,
    n_boot: int,
    *,
    seed: int | None = 0,
    groups: Sequence | np.ndarray | None = None,
    chunk: int | None = None,
) -> Iterator[np.ndarray]:
    """Multiplicity weights of ``n_boot`` bootstrap resamples of ``n`` records.

    Args:
        n: number of records.
        n_boot: number of resamples ``B``.
        seed: seed of the resamples (resample ``k`` uses the ``k``-th child stream of
            ``numpy.random.SeedSequence(seed)``, PCG64); the same seed gives the same resamples
            whatever ``chunk``.  ``None`` draws fresh entropy (not reproducible).
        groups: optional patient id per record (length ``n``).  Patients are drawn with
            replacement (as many as there are distinct patients) and every record inherits the
            number of times its patient was drawn.
        chunk: resamples per yielded block (default :func:`default_chunk`).

    Yields:
        int32 arrays ``(b, n)``; the rows of all blocks together are the ``B`` resamples.
        Record-level rows sum to ``n``; patient-level rows sum to the number of records of the
        drawn patients.
    """
    if n <= 0:
        raise EvaluationError(f"cannot bootstrap an empty set (n={n}).")
    if n_boot <= 0:
        raise EvaluationError(f"n_boot must be a positive number of resamples; got {n_boot}.")
    check_seed(seed)
    if groups is not None:
        rec_to_group, n_units = group_index(groups, n)
    else:
        rec_to_group, n_units = None, n
    chunk = int(chunk or default_chunk(n))
    # Resample k is drawn from its own stream (child k of the seed), so the resamples depend neither
    # on the chunk size (memory) nor on n_boot: the first B of a longer run are the B of a shorter one.
    entropy = np.random.SeedSequence(seed).entropy
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        counts = np.empty((b, n_units), dtype=np.int32)
        for r in range(b):
            rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(start + r,)))
            counts[r] = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
        if rec_to_group is not None:
            counts = counts[:, rec_to_group]
        yield counts


def check_pair(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, L)`` bool labels and finite float scores of one shape (1-D inputs become one column)."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.shape != s.shape or y.ndim != 2:
        raise EvaluationError(f"y_true and y_score must both be (n, L) arrays of one shape; got {y.shape} and {s.shape}.")
    if not np.isfinite(s).all():
        bad = np.argwhere(~np.isfinite(s))[0]
        raise EvaluationError(f"y_score holds a non-finite value at row {bad[0]}, column {bad[1]}; remove or fix that prediction.")
    yb = as_binary(y)
    return yb, s


def check_mask(evaluable: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The ``evaluable`` mask as bool of ``shape`` (``None`` stays ``None``: everything counts)."""
    if evaluable is None:
        return None
    m = np.asarray(evaluable)
    if m.ndim == 1 and len(shape) == 2 and shape[1] == 1:
        m = m[:, None]
    if m.shape != tuple(shape):
        raise EvaluationError(f"evaluable must have the shape of y_true {tuple(shape)}; got {m.shape}.")
    return m.astype(bool)


def as_binary(y: np.ndarray) -> np.ndarray:
    """``y`` (bool, or 0/1 numbers) as bool; NaN or another value is an :class:`EvaluationError`."""
    if y.dtype == bool:
        return y
    yf = np.asarray(y, dtype=np.float64)
    if np.isnan(yf).any():
        raise EvaluationError("y_true holds NaN (missing labels); drop those rows or fill them with 0/1.")
    ok = (yf == 0) | (yf == 1)
    if not ok.all():
        bad = yf[~ok][0]
        raise EvaluationError(f"y_true must be binary (0/1 or bool); found the value {bad!r}. "
                              "Missing labels must be removed, not coded.")
    return yf.astype(bool)


@dataclass(frozen=True)
class _Layout:
    """Static rank structure of one score column (independent of the weights).

    ``pos``/``neg``: record indices of positives / negatives in descending score order;
    for the ``k``-th positive, ``above[k]`` / ``upto[k]`` negatives score strictly higher /
    higher-or-equal, and ``last[k]`` is the rank of the last positive tied with it.
    """

    pos: np.ndarray
    neg: np.ndarray
    above: np.ndarray
    upto: np.ndarray
    last: np.ndarray


def _layout(y: np.ndarray, s: np.ndarray, index: np.ndarray | None = None) -> _Layout:
    """Rank layout of the scores ``s`` with truths ``y``; ``index[k]`` is the record of entry ``k``
    (default ``k``), so that a masked or pooled column still indexes the weight rows by record."""
    order = np.argsort(-s, kind="stable")
    ys = y[order]
    ss = s[order]
    sp = -ss[ys]  # ascending
    sn = -ss[~ys]
    rec = order if index is None else index[order]
    return _Layout(
        pos=rec[ys],
        neg=rec[~ys],
        above=np.searchsorted(sn, sp, side="left"),
        upto=np.searchsorted(sn, sp, side="right"),
        last=np.searchsorted(sp, sp, side="right") - 1,
    )


def _auroc_ap_kernel(w: np.ndarray, lay: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP under each weight row of ``w (b, n)`` for one label.

    Pairs are counted with prefix sums: a positive of weight ``w_i`` beats the negative weight
    ranked below it and ties half of the negative weight tied with it (Mann–Whitney), and
    contributes ``w_i × precision`` at its (tie-grouped) threshold to the average precision.
    All prefix sums are integers, hence exact.
    """
    b = w.shape[0]
    if lay.pos.size == 0 or lay.neg.size == 0:
        return np.full(b, np.nan), np.full(b, np.nan)
    if w.dtype.kind == "f":
        idt = np.float64  # fractional weights: float prefix sums (rounding-level error)
    else:
        idt = np.int64 if w.dtype.itemsize > 4 else np.int32
    cn = np.zeros((b, lay.neg.size + 1), dtype=idt)
    np.cumsum(w[:, lay.neg], axis=1, dtype=idt, out=cn[:, 1:])
    wp = w[:, lay.pos]
    cp = np.cumsum(wp, axis=1, dtype=idt)
    n_pos = cp[:, -1].astype(np.float64)
    n_neg = cn[:, -1].astype(np.float64)
    fp_upto = cn[:, lay.upto].astype(np.float64)
    wpf = wp.astype(np.float64)
    wrong = np.einsum("ij,ij->i", wpf, cn[:, lay.above] + fp_upto)  # 2 × (pairs lost + half ties)
    tp_upto = cp[:, lay.last].astype(np.float64)
    called = tp_upto + fp_upto
    prec = np.divide(tp_upto, called, out=np.zeros_like(tp_upto), where=called > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs = n_pos * n_neg
        auroc = (pairs - 0.5 * wrong) / pairs
        ap = np.einsum("ij,ij->i", wpf, prec) / n_pos
    bad = (n_pos == 0) | (n_neg == 0)
    auroc[bad] = np.nan
    ap[bad] = np.nan
    return auroc, ap


class RankMetrics:
    """AUROC / AP of fixed ``(y_true, y_score)`` under many weight matrices.

    The sort of every label (and of the pooled micro set) is done once in the constructor;
    :meth:`labels` and :meth:`micro` then take any ``(B, n)`` weight block.

    Args:
        y_true: ``(n, L)`` binary truths (a 1-D array is one label).
        y_score: ``(n, L)`` finite scores.
        micro: also prepare the pooled (micro-average) layout of all evaluable ``n × L`` pairs.
        evaluable: bool ``(n, L)``; entries outside the mask are left out (default: all count).
    """

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray, *, micro: bool = False,
                 evaluable: np.ndarray | None = None):
        y, s = check_pair(y_true, y_score)
        self.n, self.n_labels = y.shape
        m = check_mask(evaluable, y.shape)
        self._layouts = []
        for j in range(self.n_labels):
            keep = None if m is None else np.flatnonzero(m[:, j])
            if keep is None or keep.size == self.n:
                self._layouts.append(_layout(y[:, j], s[:, j]))
            else:
                self._layouts.append(_layout(y[keep, j], s[keep, j], keep))
        self._micro: _Layout | None = None
        if micro:
            flat = np.arange(y.size) if m is None else np.flatnonzero(m.ravel())
            # pooled pair k belongs to record k // L
            self._micro = _layout(y.ravel()[flat], s.ravel()[flat], flat // self.n_labels)

    def _weights(self, weights: np.ndarray | None) -> np.ndarray:
        if weights is None:
            return np.ones((1, self.n), dtype=np.int32)
        w = np.asarray(weights)
        if w.ndim == 1:
            w = w[None, :]
        if w.ndim != 2 or w.shape[1] != self.n:
            raise EvaluationError(f"weights must be (B, {self.n}) for {self.n} records; got {w.shape}.")
        if w.dtype.kind not in "iuf":
            raise EvaluationError(f"weights must be numeric multiplicities; got dtype {w.dtype}.")
        return w

    def labels(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(auroc, ap)``, each ``(B, L)``; NaN where undefined."""
        w = self._weights(weights)
        b = w.shape[0]
        auroc = np.empty((b, self.n_labels))
        ap = np.empty((b, self.n_labels))
        step = default_chunk(self.n)
        for j, lay in enumerate(self._layouts):
            for a in range(0, b, step):
                auroc[a : a + step, j], ap[a : a + step, j] = _auroc_ap_kernel(w[a : a + step], lay)
        return auroc, ap

    def micro(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Micro-averaged ``(auroc, ap)``, each ``(B,)``: all pairs pooled, record weights repeated."""
        if self._micro is None:
            raise EvaluationError("RankMetrics was built with micro=False; pass micro=True to pool labels.")
        w = self._weights(weights)
        step = default_chunk(self.n * self.n_labels)
        parts = [_auroc_ap_kernel(w[a : a + step], self._micro) for a in range(0, w.shape[0], step)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def weighted_auroc_ap(
    y_true: np.ndarray,
    y_score: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision per label under each weight vector.

    Args:
        y_true: ``(n, L)`` binary truths (bool or 0/1); a 1-D array is one label.
        y_score: ``(n, L)`` scores (any monotone scale: probabilities, logits).
        weights: ``(B, n)`` non-negative multiplicities (e.g. from :func:`bootstrap_weights`);
            ``None`` means one row of ones (the point estimate).

    Returns:
        ``(auroc, ap)``, each ``(B, L)`` float64; NaN where a resample has no positive or no
        negative record for that label (AP too, so a label is either fully defined or not).
    """
    return RankMetrics(y_true, y_score).labels(weights)


def weighted_micro_auroc_ap(
    y_true: np.ndarray,
    y_score: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Micro-averaged AUROC and AP (``average="micro"`` in scikit-learn); two ``(B,)`` arrays."""
    return RankMetrics(y_true, y_score, micro=True).micro(weights)


def weighted_confusion(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    weights: np.ndarray | None = None,
    evaluable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted confusion counts per label.

    Args:
        y_true: ``(n, L)`` binary truths.
        y_pred: ``(n, L)`` binary decisions (score ≥ threshold).
        weights: ``(B, n)`` multiplicities; ``None`` = ones.
        evaluable: bool ``(n, L)``: only these entries are counted (default all).

    Returns:
        ``(tp, fp, fn, tn)``, each ``(B, L)`` float64 (exact integers).
    """
    y = as_binary(np.atleast_2d(np.asarray(y_true)) if np.ndim(y_true) > 1 else np.asarray(y_true)[:, None])
    p = as_binary(np.atleast_2d(np.asarray(y_pred)) if np.ndim(y_pred) > 1 else np.asarray(y_pred)[:, None])
    if y.shape != p.shape:
        raise EvaluationError(f"y_true and y_pred must have one shape; got {y.shape} and {p.shape}.")
    n = y.shape[0]
    w = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != n:
        raise EvaluationError(f"weights must be (B, {n}) for {n} records; got {w.shape}.")
    w = w.astype(np.float64, copy=False)
    m = check_mask(evaluable, y.shape)
    mf = np.ones(y.shape) if m is None else m.astype(np.float64)
    yf = y.astype(np.float64) * mf
    pf = p.astype(np.float64) * mf
    pos = w @ yf
    called = w @ pf
    tp = w @ (yf * pf)
    total = w @ mf
    fp = called - tp
    fn = pos - tp
    tn = total - pos - fp
    return tp, fp, fn, tn


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over axis 0.

    Args:
        values: ``(B, ...)`` metric values of ``B`` resamples (NaN for undefined resamples).
        level: coverage, e.g. 0.95.

    Returns:
        ``(low, high, n_valid)``: bounds (NaN where fewer than 2 valid resamples) and the count of
        non-NaN resamples, each of shape ``values.shape[1:]``.
    """
    if not 0 < level < 1:
        raise EvaluationError(f"CI level must be between 0 and 1 (e.g. 0.95); got {level}.")
    v = np.asarray(values, dtype=np.float64)
    valid = np.sum(~np.isnan(v), axis=0)
    alpha = (1.0 - level) / 2.0
    lo = np.full(v.shape[1:], np.nan)
    hi = np.full(v.shape[1:], np.nan)
    ok = valid >= 2
    if np.any(ok):
        vv = v[:, ok]
        # Undefined resamples are left out; linear interpolation as numpy's default.
        with np.errstate(invalid="ignore"):
            q = np.nanquantile(vv, [alpha, 1.0 - alpha], axis=0)
        lo[ok], hi[ok] = q[0], q[1]
    return lo, hi, valid
