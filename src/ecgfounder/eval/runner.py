"""Evaluation runs: cached streaming predictions, threshold splits, metrics and report.

API:

``cache_fingerprint(model, mode, aggregate) -> str`` / ``weights_sha256(model)``
    The cache key of a model's predictions; the SHA-256 of its weights file.
``cached_predictions(paths, model, cache_dir, ...) -> Predictions``
    Scores ``(n, n_model_labels)`` for the given record files, streamed through
    :func:`ecgfounder.prediction.iter_predict` (records are read and predicted a batch at a time,
    never all at once) and appended to ``cache_dir/predictions-<fingerprint>.csv`` keyed by the
    resolved record path, so a rerun with the same weights only predicts what is missing.
``run_evaluation(y, scores, labels, out_dir, tune=..., test=..., thresholds=..., ...) -> EvaluationResult``
    Thresholds from the tuning rows (or a given table), metrics on the test rows, report files.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from ..models.heads import aggregate_windows
from .bootstrap import as_binary, group_index
from .errors import EvaluationError
from .metrics import MIN_POSITIVES, EvaluationResult, as_threshold_array, evaluate_multilabel
from .thresholds import choose_thresholds, save_thresholds

__all__ = [
    "Predictions",
    "cache_fingerprint",
    "weights_sha256",
    "cached_predictions",
    "run_evaluation",
]

log = logging.getLogger(__name__)

_META_COLUMNS = ("path", "record", "n_windows")


@dataclass(frozen=True)
class Predictions:
    """Scores of records, aligned with the requested paths.

    Attributes:
        paths: the requested record paths (as given).
        labels: model output names (columns of ``scores``).
        scores: ``(n, L)`` float64 probabilities; rows of failed records are NaN.
        ok: bool ``(n,)``; false where the record could not be read or prepared.
        errors: ``path -> reason`` for the failed records.
        n_cached: how many rows came from the cache; ``n_predicted`` how many were computed.
        cache_file: the cache file (or ``None``).
    """

    paths: tuple[str, ...]
    labels: tuple[str, ...]
    scores: np.ndarray
    ok: np.ndarray
    errors: Mapping[str, str] = field(default_factory=dict)
    n_cached: int = 0
    n_predicted: int = 0
    cache_file: Path | None = None


def weights_sha256(model: Any) -> str | None:
    """SHA-256 of the weights file a model came from: the one its description carries (published
    weights), else the file it was loaded from (remembered by the file's identity: an unchanged file is
    read once); ``None`` for a model built in memory."""
    desc = getattr(model, "description", None)
    if getattr(desc, "sha256", None):
        return str(desc.sha256)
    from ..models.weights import sha256_cached

    f = (getattr(model, "source", None) or {}).get("file")
    return sha256_cached(Path(f)) if f and Path(f).is_file() else None


def cache_fingerprint(model: Any, mode: str | None, aggregate: str) -> str:
    """The prediction cache's key: the model's fingerprint with the preprocessing mode and the
    window aggregation (:func:`ecgfounder.models.description.model_fingerprint`)."""
    from ..models.description import model_fingerprint

    return model_fingerprint(model, json.dumps({"mode": mode, "aggregate": aggregate}, sort_keys=True))


def _key(path: str) -> str:
    p = Path(path)
    try:
        return str(p.resolve())
    except OSError:
        return str(p.absolute())


def _read_cache(path: Path, labels: Sequence[str]) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    missing = [c for c in ("path", *labels) if c not in df.columns]
    if missing:
        raise EvaluationError(f"prediction cache {path} lacks columns {missing[:3]}; delete it (it will be rebuilt).")
    vals = df[list(labels)].to_numpy(dtype=np.float64)
    return {str(k): vals[i] for i, k in enumerate(df["path"])}


def cached_predictions(
    paths: Sequence[str | os.PathLike],
    model: Any,
    cache_dir: str | os.PathLike | None,
    *,
    batch_size: int = 32,
    mode: str | None = None,
    aggregate: str = "mean",
    device: str = "cpu",
    lead: str | None = None,
    fill_missing: bool = False,
    read_kwargs: Mapping[str, Any] | None = None,
    flush_every: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Predictions:
    """Scores for ``paths``, reusing and extending a cache.

    Args:
        paths: record files (WFDB ``.hea``, ...), in the order wanted.
        model: a loaded :class:`~ecgfounder.models.net1d.Net1D` (or a weights name/path).
        cache_dir: folder of the cache; ``None`` disables caching.
        batch_size, mode, device, lead, fill_missing, read_kwargs: passed to ``iter_predict``.
        aggregate: ``"mean"`` or ``"max"`` over the 10-s windows of a record.
        flush_every: rows written to the cache at a time (an interrupted run keeps them).
        progress: called with the number of records finished since the last call.

    Returns:
        :class:`Predictions` aligned with ``paths``.
    """
    from ..prediction import iter_predict, resolve_model

    if aggregate not in ("mean", "max"):
        raise EvaluationError(f"aggregate must be 'mean' or 'max' (one score per record); got {aggregate!r}.")
    net = resolve_model(model)
    labels = tuple(net.labels or ())
    if not labels:
        raise EvaluationError("the model carries no label names; evaluation needs them to match the ground truth.")
    paths = [str(p) for p in paths]
    keys = [_key(p) for p in paths]
    cache = _Cache(Path(cache_dir) / f"predictions-{cache_fingerprint(net, mode, aggregate)[:16]}.csv" if cache_dir is not None else None,
                   labels, flush_every)
    known = cache.read()
    scores = np.full((len(paths), len(labels)), np.nan)
    ok = np.array([k in known for k in keys], dtype=bool)
    for i in np.flatnonzero(ok):
        scores[i] = known[keys[i]]
    todo = [i for i in range(len(paths)) if not ok[i]]
    if ok.any() and progress:
        progress(int(ok.sum()))
    errors: dict[str, str] = {}
    if todo:
        results = iter_predict(
            (paths[i] for i in todo), net, batch_size=batch_size, mode=mode, device=device,
            lead=lead, fill_missing=fill_missing, read_kwargs=dict(read_kwargs or {}),
            # reported numbers come from the exact path (and the cache must not mix paths): never 'auto'
            precision="fp32", backend="torch",
        )
        with cache:
            for k, group in _per_input(results, [keys[i] for i in todo]):
                i = todo[k]
                if progress:
                    progress(1)
                s, err = _one_score(group, aggregate)
                if err is not None:
                    errors[paths[i]] = err
                    continue
                scores[i], ok[i] = s, True
                cache.add([keys[i], group[0].record, group[0].n_windows, *(repr(float(v)) for v in s)])
    return Predictions(
        paths=tuple(paths), labels=labels, scores=scores, ok=ok, errors=errors,
        n_cached=len(paths) - len(todo), n_predicted=len(todo) - len(errors), cache_file=cache.path,
    )


class _Cache:
    """The prediction cache file: rows appended as records finish, flushed every ``flush_every``
    rows, so an interrupted run keeps what it computed (``with cache: ... cache.add(row)``)."""

    def __init__(self, path: Path | None, labels: Sequence[str], flush_every: int):
        self.path, self.labels, self.flush_every = path, tuple(labels), flush_every
        self._fh = self._writer = None
        self._pending: list[list[Any]] = []

    def read(self) -> dict[str, np.ndarray]:
        return {} if self.path is None else _read_cache(self.path, self.labels)

    def __enter__(self) -> "_Cache":
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self._fh = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh)
            if new:
                self._writer.writerow([*_META_COLUMNS, *self.labels])
        return self

    def add(self, row: list[Any]) -> None:
        if self._writer is None:
            return
        self._pending.append(row)
        if len(self._pending) >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        self._writer.writerows(self._pending)
        self._fh.flush()
        self._pending = []

    def __exit__(self, *exc: Any) -> None:
        if self._writer is not None:
            self._flush()
            self._fh.close()


def _per_input(results: Iterable[Any], keys: Sequence[str]) -> Iterator[tuple[int, list[Any]]]:
    """Group a prediction stream by input file: ``(k, results of input k)`` for every input, in
    order.  A file may yield several recordings (a multi-record ``.npz``); results are matched to
    their input by ``input_index`` where the stream gives it, else by resolved path."""
    it = iter(results)
    nxt = next(it, None)
    for k, key in enumerate(keys):
        group = []
        while nxt is not None and _belongs(nxt, k, key):
            group.append(nxt)
            nxt = next(it, None)
        yield k, group
    if nxt is not None:
        raise RuntimeError(f"prediction stream out of order: result for {nxt.path} matches no remaining input")


def _belongs(res: Any, k: int, key: str) -> bool:
    idx = getattr(res, "input_index", None)
    return idx == k if idx is not None else _key(res.path) == key


def _one_score(group: list[Any], aggregate: str) -> tuple[np.ndarray | None, str | None]:
    """The record score of one input file, or the reason there is none."""
    if not group:
        return None, "the file yielded no recording"
    if len(group) > 1:
        return None, (f"the file holds {len(group)} recordings; evaluation matches ground truth per file, "
                      "so give one recording per file")
    res = group[0]
    if res.error is not None or res.scores is None:
        return None, res.error or "no scores"
    return aggregate_windows(res.scores, aggregate), None


def _operating_thresholds(y, scores, ev, tune_m, labels, thresholds, method, target, out_dir, source, notes: list[str]):
    """``(thresholds or None, settings about their origin)``: the given ones, else chosen on the
    tuning rows (and saved as ``out_dir/thresholds.csv``), else none; ``notes`` gains what a
    reader must know."""
    if thresholds is not None:
        return as_threshold_array(thresholds, labels), {"threshold_source": source or "given", "threshold_method": "given"}
    if not tune_m.any():
        notes.append("No tuning split or thresholds file was given: threshold-dependent metrics are undefined "
                     "(thresholds are never chosen on the test records).")
        return None, {"threshold_source": "none", "threshold_method": "none"}
    thr = choose_thresholds(y[tune_m], scores[tune_m], method=method, target=target, evaluable=ev[tune_m])
    info = {"threshold_source": source or f"tuning split ({int(tune_m.sum())} records)",
            "threshold_method": method if method != "sensitivity" else f"sensitivity ≥ {target:g}"}
    if out_dir is not None:
        save_thresholds(
            Path(out_dir) / "thresholds.csv", labels, thr, method=method, target=target if method == "sensitivity" else None,
            n_pos=y[tune_m].sum(axis=0), n_neg=(ev[tune_m] & ~y[tune_m]).sum(axis=0), source=info["threshold_source"],
        )
    n_none = int(np.isnan(thr).sum())
    if n_none:
        notes.append(f"{n_none} label(s) had no positive or no negative record in the tuning split, so no threshold: "
                     "their sensitivity, specificity, PPV, NPV and F1 are undefined.")
    return thr, info


def _shared_patients(groups: Any, tune: np.ndarray, test: np.ndarray) -> int:
    """How many patients have records in both splits (0 without patient ids)."""
    if groups is None:
        return 0
    g = group_index(groups, len(tune))[0]  # also refuses a wrong length or missing ids
    return int(np.intersect1d(g[tune], g[test]).size)


def run_evaluation(
    y: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    out_dir: str | os.PathLike | None,
    *,
    test: np.ndarray | None = None,
    tune: np.ndarray | None = None,
    thresholds: Any = None,
    method: str = "youden",
    target: float = 0.9,
    groups: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci_level: float = 0.95,
    title: str = "Evaluation",
    notes: Sequence[str] = (),
    extra_tables: Mapping[str, pd.DataFrame] | None = None,
    plots: bool = True,
    threshold_source: str | None = None,
    evaluable: np.ndarray | None = None,
    members: Mapping[str, Sequence[str]] | None = None,
    min_positives: int = MIN_POSITIVES,
    extra_settings: Mapping[str, Any] | None = None,
    uncalibrated: np.ndarray | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Choose thresholds on ``tune`` rows (unless given), evaluate ``test`` rows, write the report.

    Args:
        y: ``(n, L)`` binary truths; ``scores``: ``(n, L)`` probabilities (finite).
        labels: ``L`` names.
        out_dir: report folder (``None`` = no files).
        test, tune: bool masks ``(n,)``; ``test`` defaults to every row not in ``tune``.
            They must not overlap.
        thresholds: fixed thresholds (array/mapping/Series); when given ``tune`` is ignored.
        method, target: threshold rule on the tuning rows (see :mod:`.thresholds`).
        groups: ``(n,)`` patient ids for the bootstrap (``None`` = records).
        n_boot, seed, ci_level: bootstrap settings.
        title, notes, extra_tables, plots: report content.
        evaluable: bool ``(n, L)`` entries that count (see :mod:`.metrics`); default all.
        members: ``label -> model outputs`` of composite targets (listed in the report).
        min_positives: labels with fewer positives are left out of the summaries.
        extra_settings: recorded in ``settings.json`` (protocol, preprocessing mode, weights' hash, ...).
        uncalibrated, calibration: when ``scores`` are calibrated (see :mod:`.calibrating`), the
            scores before calibration and ``{method, fitted_on, source}``; thresholds are then
            chosen on the calibrated tuning scores and the report shows ECE before and after.

    Returns:
        The :class:`EvaluationResult` of the test rows; its ``settings`` record where the
        thresholds came from and the report's ``notes`` (caveats a reader must know).
    """
    y = as_binary(np.asarray(y))  # NaN (missing) or other codes raise instead of becoming positives
    scores = np.asarray(scores, dtype=np.float64)
    n = y.shape[0]
    ev = np.ones_like(y) if evaluable is None else np.asarray(evaluable, dtype=bool) | y
    tune_m = np.zeros(n, dtype=bool) if tune is None else np.asarray(tune, dtype=bool)
    test_m = ~tune_m if test is None else np.asarray(test, dtype=bool)
    if (tune_m & test_m).any() and thresholds is None:
        raise EvaluationError(f"{int((tune_m & test_m).sum())} record(s) are in both the tuning and the test split; thresholds must come from other records.")
    if not test_m.any():
        raise EvaluationError("the test split is empty; check the fold/split options.")
    notes = list(notes)
    shared = _shared_patients(groups, tune_m & (thresholds is None), test_m)  # given thresholds: tune is ignored
    if shared:
        notes.append(f"{shared} patient(s) have records in both the tuning and the test split: the thresholds (and any "
                     "calibration) saw these patients; split by patient for an unbiased estimate.")
    thr, thr_info = _operating_thresholds(y, scores, ev, tune_m, labels, thresholds, method, target, out_dir, threshold_source, notes)
    g_test = None if groups is None else np.asarray(groups)[test_m]
    result = evaluate_multilabel(
        y[test_m], scores[test_m], labels, thr, g_test, evaluable=ev[test_m], members=members,
        min_positives=min_positives, n_boot=n_boot, seed=seed, ci_level=ci_level,
    )
    if result.settings.get("interval_note"):
        notes.append(result.settings["interval_note"])
    settings = dict(result.settings)
    settings.update(thr_info)
    settings.update(extra_settings or {})
    settings["calibration"] = dict(calibration) if calibration else None
    settings["n_tune"] = int(tune_m.sum()) if thresholds is None else 0
    settings["n_patients_in_tune_and_test"] = shared if groups is not None else None
    settings["notes"] = list(notes)
    result = EvaluationResult(result.per_label, result.summary, settings, result.boot)
    if out_dir is not None:
        from .report import write_report

        write_report(
            out_dir, result, y_true=y[test_m], y_score=scores[test_m], evaluable=ev[test_m], title=title, notes=notes,
            extra_tables=extra_tables, plots=plots,
            y_score_before=None if uncalibrated is None else np.asarray(uncalibrated, dtype=np.float64)[test_m],
        )
    return result
