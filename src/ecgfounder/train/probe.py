"""The fast linear probe: embeddings of every window once, then a scikit-learn head
(LogisticRegression / Ridge) with its regularisation chosen on validation, written into the
model's ``dense`` layer (the feature standardisation folded in)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._fileio import atomic_path
from ..models.net1d import Net1D
from .batches import aggregate, map_windows, window_items
from .config import FinetuneConfig
from .data import SPLIT_NAMES, TrainData
from .distributed import DistInfo, broadcast_object
from .model import monitor
from .tasks import TaskSpec, quick_metrics

__all__ = ["fit_probe"]

logger = logging.getLogger("ecgfounder.train")

_OFF = 30.0  # logit of a label the training split never shows (or always shows)


def _embeddings(cfg: FinetuneConfig, model: Net1D, data: TrainData, info: DistInfo, out: Path) -> dict[str, np.ndarray]:
    """Window embeddings of every split, reused from ``out/embeddings-<key>.npz`` when the model's
    weights (its fingerprint: a ``model.init`` file rewritten in place is another model), its
    configuration and the cached windows are the same.  Written atomically; an unreadable file
    (a run killed before this was so) is computed again."""
    from ..models.description import model_fingerprint

    locations = [list(map(str, data.index.locations[int(r)] or ())) for s in SPLIT_NAMES for r in data.rows[s]]
    key = hashlib.sha256(json.dumps([model_fingerprint(model), cfg.to_dict()["model"], data.index.root.name, cfg.train.seed,
                                     locations], default=str).encode()).hexdigest()[:16]
    emb_file = out / f"embeddings-{key}.npz"
    if emb_file.exists():
        try:
            with np.load(emb_file) as z:
                feats = {s: z[s] for s in SPLIT_NAMES}
        except Exception as exc:  # a damaged file: the embeddings are computed again
            logger.info("embeddings in %s unreadable (%s); computing them again", emb_file, " ".join(str(exc).split())[:100])
        else:
            if info.is_main:
                logger.info("embeddings reused from %s", emb_file)
            return feats
    t0 = time.perf_counter()
    feats = {s: map_windows(model.forward_features, data.index, data.rows[s], info, cfg.train.eval_batch_size,
                            cfg.train.bf16, progress=cfg.train.progress, desc=f"embeddings {s}").astype(np.float32)
             for s in SPLIT_NAMES}
    if info.is_main:
        with atomic_path(emb_file) as tmp, open(tmp, "wb") as f:
            np.savez(f, **feats)
        logger.info("embeddings of %d windows in %.1f s", sum(len(v) for v in feats.values()), time.perf_counter() - t0)
    return feats


def _fit_head(spec: TaskSpec, Z: np.ndarray, y: np.ndarray, C: float, balanced: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``(W (n_out, d), b (n_out,))`` of a linear head fitted on standardised features ``Z``."""
    from sklearn.linear_model import LogisticRegression, Ridge

    n_out = spec.n_outputs
    W, b = np.zeros((n_out, Z.shape[1])), np.zeros(n_out)
    if spec.kind == "regression":
        r = Ridge(alpha=1.0 / C).fit(Z, y)
        return np.atleast_2d(r.coef_).reshape(n_out, -1), np.atleast_1d(r.intercept_).reshape(n_out)
    if spec.kind == "multiclass":
        clf = LogisticRegression(C=C, max_iter=3000, class_weight=balanced).fit(Z, y)
        if len(clf.classes_) > 2:
            W[clf.classes_], b[clf.classes_] = clf.coef_, clf.intercept_
        else:
            W[clf.classes_] = np.vstack([-clf.coef_ / 2, clf.coef_ / 2])
            b[clf.classes_] = np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
        b[np.setdiff1d(np.arange(n_out), clf.classes_)] = -_OFF
        return W, b
    for j in range(n_out):
        seen = ~np.isnan(y[:, j])  # only the windows of records that assessed the label
        yj = y[seen, j]
        if not len(yj) or yj.min() == yj.max():
            b[j] = _OFF if len(yj) and yj[0] > 0.5 else -_OFF
            continue
        clf = LogisticRegression(C=C, max_iter=3000, class_weight=balanced).fit(Z[seen], yj)
        W[j], b[j] = clf.coef_[0], clf.intercept_[0]
    return W, b


def _record_scores(spec: TaskSpec, data: TrainData, split: str, feats: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Record-level scores of the linear head ``(W, b)`` on the window features of ``split``."""
    if not len(data.rows[split]):
        return np.zeros((0, spec.n_outputs))
    logits = torch.from_numpy(feats.astype(np.float64) @ W.T + b).float()
    return aggregate(spec.scores(logits).numpy(), data.index, data.rows[split])


def _choose_head(cfg: FinetuneConfig, data: TrainData, feats: dict[str, np.ndarray]):
    """Fit one head per C of ``strategy.probe_c_grid``, keep the best on validation; returns the
    head on raw features ``(W, b)``, its C and the per-C validation metrics."""
    spec = data.spec
    Xtr = feats["train"].astype(np.float64)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    pos_tr, _ = window_items(data.index, data.rows["train"])
    ytr = spec.encode(data.y_raw[data.rows["train"]])[pos_tr]
    balanced = "balanced" if cfg.task.class_weighting == "balanced" else None
    mon, direction = monitor(cfg)
    grid = cfg.strategy.probe_c_grid
    has_val = bool(len(data.rows["val"]))
    best, results = None, []
    for C in (grid if has_val else (grid[len(grid) // 2],)):
        W, b = _fit_head(spec, (Xtr - mu) / sd, ytr, C, balanced)
        m = {}
        if has_val:
            zval = (feats["val"].astype(np.float64) - mu) / sd
            m = quick_metrics(spec, data.y_raw[data.rows["val"]], _record_scores(spec, data, "val", zval, W, b))
        v = m.get(mon, float("nan"))
        results.append({"C": C, **m})
        logger.info("probe C=%g: %s", C, ", ".join(f"{k} {x:.4f}" for k, x in m.items()))
        if best is None or (np.isfinite(v) and (not np.isfinite(best[0]) or (v > best[0] if direction == "max" else v < best[0]))):
            best = (v, C, W, b)
    W, b = best[2] / sd, best[3] - (best[2] / sd) @ mu  # standardisation folded in: raw embeddings in
    return W, b, best[1], results


def fit_probe(cfg: FinetuneConfig, model: Net1D, data: TrainData, info: DistInfo, out: Path) -> dict[str, Any]:
    """Fit the head (main process), copy it into ``model.dense`` on every process; returns
    ``{"C", "grid", "val_scores", "test_scores"}`` (record-level scores of the final model)."""
    model.eval()
    feats = _embeddings(cfg, model, data, info, out)
    payload = None
    if info.is_main:
        W, b, C, results = _choose_head(cfg, data, feats)
        payload = (torch.from_numpy(W).float(), torch.from_numpy(b).float(), C, results)
    Wt, bt, C, results = broadcast_object(info, payload)
    with torch.no_grad():
        model.dense.weight.copy_(Wt.to(model.dense.weight.device))
        model.dense.bias.copy_(bt.to(model.dense.bias.device))
    W64, b64 = Wt.double().numpy(), bt.double().numpy()
    scores = {s: _record_scores(data.spec, data, s, feats[s], W64, b64) for s in ("val", "test")}
    return {"C": C, "grid": results, "val_scores": scores["val"], "test_scores": scores["test"]}
