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
    Yields ``(b, n)`` int32 weight blocks (``b`` ≤ ``chunk``) whose rows are the resamples, in a
    reproducible order for a given ``(n, n_boot, seed, groups)``.  With ``groups`` (one patient id
    per record) patients are resampled and each record gets its patient's multiplicity
    (cluster bootstrap).
``weighted_auroc_ap(y_true, y_score, weights)``
    AUROC and average precision of each column of ``y_true (n, L)`` / ``y_score (n, L)`` under each
    weight row of ``weights (B, n)`` → two ``(B, L)`` float arrays.  Ties are handled as in
    scikit-learn (``roc_auc_score`` trapezoids, ``average_precision_score`` step sums over
    distinct scores); with unit weights the results equal scikit-learn's to rounding (1e-12).
    Undefined values (no weighted positives or negatives) are NaN.
``weighted_confusion(y_true, y_pred, weights)``
    ``tp, fp, fn, tn`` as ``(B, L)`` arrays (matrix products).
``percentile_ci(values, level=0.95)``
    Percentile interval over axis 0, ignoring NaN resamples.

Why hand-written rather than calling scikit-learn per resample: 150 labels × 1,000 resamples is
150,000 calls; ``benchmarks/bench_bootstrap.py`` measures the ratio in the same run.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

__all__ = [
    "bootstrap_weights",
    "weighted_auroc_ap",
    "weighted_micro_auroc_ap",
    "weighted_confusion",
    "percentile_ci",
    "default_chunk",
]

# Elements of a (b, n) working block; bounds memory to a few tens of MB per array.
_BLOCK_ELEMENTS = 2_000_000


def default_chunk(n_items: int) -> int:
    """Number of resamples processed together for ``n_items`` records (memory bound)."""
    return max(1, min(1000, _BLOCK_ELEMENTS // max(1, n_items)))


def _group_index(groups: Sequence | np.ndarray, n: int) -> tuple[np.ndarray, int]:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must hold one id per record: expected shape ({n},), got {g.shape}.")
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise ValueError("groups contains NaN ids; give every record a patient id (or pass groups=None).")
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
        seed: seed of a ``numpy.random.Generator`` (PCG64); the same arguments give the same
            resamples.  ``None`` draws fresh entropy (not reproducible).
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
        raise ValueError(f"cannot bootstrap an empty set (n={n}).")
    if n_boot <= 0:
        raise ValueError(f"n_boot must be a positive number of resamples; got {n_boot}.")
    if groups is not None:
        rec_to_group, n_units = _group_index(groups, n)
    else:
        rec_to_group, n_units = None, n
    chunk = int(chunk or default_chunk(n))
    # One child generator per block: the resamples do not depend on how later code slices them.
    ss = np.random.SeedSequence(seed)
    n_blocks = (n_boot + chunk - 1) // chunk
    for i, child in enumerate(ss.spawn(n_blocks)):
        b = min(chunk, n_boot - i * chunk)
        rng = np.random.default_rng(child)
        draws = rng.integers(0, n_units, size=(b, n_units))
        draws += (np.arange(b) * n_units)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units).astype(np.int32)
        if rec_to_group is not None:
            counts = counts[:, rec_to_group]
        yield counts


def _check_pair(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"y_true and y_score must both be (n, L) arrays of one shape; got {y.shape} and {s.shape}.")
    if not np.isfinite(s).all():
        bad = np.argwhere(~np.isfinite(s))[0]
        raise ValueError(f"y_score holds a non-finite value at row {bad[0]}, column {bad[1]}; remove or fix that prediction.")
    yb = _as_binary(y)
    return yb, s


def _as_binary(y: np.ndarray) -> np.ndarray:
    if y.dtype == bool:
        return y
    yf = np.asarray(y, dtype=np.float64)
    if np.isnan(yf).any():
        raise ValueError("y_true holds NaN (missing labels); drop those rows or fill them with 0/1.")
    ok = (yf == 0) | (yf == 1)
    if not ok.all():
        bad = yf[~ok][0]
        raise ValueError(f"y_true must be binary (0/1 or bool); found the value {bad!r}.")
    return yf.astype(bool)


def _sorted_layout(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Descending stable order of ``score`` and the index of the last element of each tie group."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    ends = np.flatnonzero(np.diff(s) != 0)
    ends = np.append(ends, s.size - 1)
    return order, ends


def _auroc_ap_sorted(ws: np.ndarray, ys: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP for weights ``ws (b, m)`` already in descending-score order.

    ``ys (m,)`` bool truths in the same order; ``ends (G,)`` last index of each tie group.
    Integer weights keep every cumulative count exact.
    """
    cum_all = np.cumsum(ws, axis=1, dtype=np.int64)
    cum_pos = np.cumsum(ws * ys, axis=1, dtype=np.int64)
    tp = cum_pos[:, ends].astype(np.float64)  # (b, G) true positives above each distinct threshold
    fp = cum_all[:, ends].astype(np.float64) - tp
    del cum_all, cum_pos
    p = tp[:, -1]
    nn = fp[:, -1]
    zero = np.zeros((tp.shape[0], 1))
    tp0 = np.concatenate([zero, tp], axis=1)
    fp0 = np.concatenate([zero, fp], axis=1)
    dfp = np.diff(fp0, axis=1)
    dtp = np.diff(tp0, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.sum(dfp * (tp0[:, 1:] + tp0[:, :-1]), axis=1) * 0.5
        auroc = area / (p * nn)
        called = tp + fp
        prec = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
        ap = np.sum(dtp * prec, axis=1) / p
    auroc[(p == 0) | (nn == 0)] = np.nan
    ap[(p == 0) | (nn == 0)] = np.nan
    return auroc, ap


def weighted_auroc_ap(
    y_true: np.ndarray,
    y_score: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision per label under each weight vector.

    Args:
        y_true: ``(n, L)`` binary truths (bool or 0/1); a 1-D array is one label.
        y_score: ``(n, L)`` scores (any monotone scale: probabilities, logits).
        weights: ``(B, n)`` non-negative integer multiplicities (e.g. from
            :func:`bootstrap_weights`); ``None`` means one row of ones (the point estimate).

    Returns:
        ``(auroc, ap)``, each ``(B, L)`` float64; NaN where a resample has no positive or no
        negative record for that label.  AP is NaN (not 0) when there is no negative either, so
        that a label is either fully defined or fully undefined.
    """
    y, s = _check_pair(y_true, y_score)
    n, n_labels = y.shape
    if weights is None:
        w = np.ones((1, n), dtype=np.int32)
    else:
        w = np.asarray(weights)
        if w.ndim == 1:
            w = w[None, :]
        if w.shape[1] != n:
            raise ValueError(f"weights must be (B, {n}) for {n} records; got {w.shape}.")
    b = w.shape[0]
    auroc = np.empty((b, n_labels))
    ap = np.empty((b, n_labels))
    for j in range(n_labels):
        order, ends = _sorted_layout(s[:, j])
        ys = y[order, j]
        ws = w[:, order]
        auroc[:, j], ap[:, j] = _auroc_ap_sorted(ws, ys, ends)
    return auroc, ap


def weighted_micro_auroc_ap(
    y_true: np.ndarray,
    y_score: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Micro-averaged AUROC and AP: all (record, label) pairs pooled, record weights repeated.

    Same conventions as :func:`weighted_auroc_ap`; returns two ``(B,)`` arrays.  The pooled set
    is ``n × L`` pairs, so weights are processed in blocks sized by :func:`default_chunk`.
    """
    y, s = _check_pair(y_true, y_score)
    n, n_labels = y.shape
    w = np.ones((1, n), dtype=np.int32) if weights is None else np.atleast_2d(np.asarray(weights))
    if w.shape[1] != n:
        raise ValueError(f"weights must be (B, {n}) for {n} records; got {w.shape}.")
    order, ends = _sorted_layout(s.ravel())
    ys = y.ravel()[order]
    rec = (order // n_labels).astype(np.intp)  # record of each pooled pair, in sorted order
    step = default_chunk(order.size)
    out_auc, out_ap = [], []
    for a in range(0, w.shape[0], step):
        ws = w[a : a + step][:, rec]
        au, ap = _auroc_ap_sorted(ws, ys, ends)
        out_auc.append(au)
        out_ap.append(ap)
    return np.concatenate(out_auc), np.concatenate(out_ap)


def weighted_confusion(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted confusion counts per label.

    Args:
        y_true: ``(n, L)`` binary truths.
        y_pred: ``(n, L)`` binary decisions (score ≥ threshold).
        weights: ``(B, n)`` multiplicities; ``None`` = ones.

    Returns:
        ``(tp, fp, fn, tn)``, each ``(B, L)`` float64 (exact integers).
    """
    y = _as_binary(np.atleast_2d(np.asarray(y_true)) if np.ndim(y_true) > 1 else np.asarray(y_true)[:, None])
    p = _as_binary(np.atleast_2d(np.asarray(y_pred)) if np.ndim(y_pred) > 1 else np.asarray(y_pred)[:, None])
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have one shape; got {y.shape} and {p.shape}.")
    n = y.shape[0]
    w = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != n:
        raise ValueError(f"weights must be (B, {n}) for {n} records; got {w.shape}.")
    w = w.astype(np.float64, copy=False)
    yf = y.astype(np.float64)
    pf = p.astype(np.float64)
    pos = w @ yf
    called = w @ pf
    tp = w @ (yf * pf)
    total = w.sum(axis=1, keepdims=True)
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
        raise ValueError(f"CI level must be between 0 and 1 (e.g. 0.95); got {level}.")
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
