"""Whole evaluations of a model on a dataset: what ``ecgfounder evaluate`` runs.

``evaluate_ptbxl(root, model, ...)``, ``evaluate_cinc2021(root, model, ...)`` and
``evaluate_table(predictions, labels, ...)`` read the ground truth (:mod:`ecgfounder.datasets`),
stream and cache predictions (:func:`.runner.cached_predictions`), choose thresholds on records
other than the reported ones, compute the metrics and write the report.  They return an
:class:`EvaluationRun`; the report's ``settings.json`` records the protocol, the preprocessing
mode, where the thresholds came from, the weights' hash and the package version.

Which number is comparable to which (also in ``docs/evaluation.md`` and the CLI help): see
:data:`COMPARABILITY`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._formats import META_COLUMNS, TARGET_PREFIX
from ..datasets import LabelledSet, load_cinc2021, load_ptbxl
from ..datasets.labelled import concat_sets
from ..explain.calibration import apply_calibration
from ..labels.composites import COMPOSITE_RULE, composite_scores
from ..labels.mappings import ptbxl_mapping, snomed_mapping
from .calibrating import evaluation_calibration
from .errors import EvaluationError
from .metrics import MIN_POSITIVES, EvaluationResult
from .runner import cache_fingerprint, cached_predictions, run_evaluation, weights_sha256
from .splits import stratified_split
from .thresholds import load_thresholds

__all__ = [
    "COMPARABILITY", "PROTOCOLS", "ReportOptions", "PredictOptions", "EvaluationRun",
    "evaluate_ptbxl", "evaluate_cinc2021", "evaluate_table", "check_folds",
]

PROTOCOLS = ("ours", "published")
COMPARABILITY = (
    "Which number is comparable to which: 'evaluate ptbxl' (protocol 'ours', the default) reports fold 10 "
    "with thresholds from folds 1-9, composite targets, ambiguous codes excluded from negatives and rare labels "
    "set apart; its macro AUROC is comparable to other runs of protocol 'ours' only. '--protocol published' "
    "reproduces the authors' ptbxl_eval.py (z-score only, all records, thresholds tuned on the evaluated records, "
    "undefined AUROC = 0 averaged over 150 labels); only its headline is computed the way the paper's PTB-XL "
    "0.924 was, and even it uses this package's label mapping because the authors' ground-truth file is "
    "unpublished. Neither is comparable to a fine-tuned PTB-XL benchmark (e.g. macro AUROC 0.934 on 'all')."
)


@dataclass(frozen=True)
class ReportOptions:
    """How to choose thresholds, compute intervals and write the report.  ``calibrate``
    (``"temperature"``/``"isotonic"``) fits a calibration on the tuning split when the model carries
    none; ``save_calibrated`` writes the model with it (see :mod:`.calibrating`)."""

    out: Path
    thresholds: str | None = None
    threshold_method: str = "youden"
    target_sensitivity: float = 0.9
    n_boot: int = 1000
    seed: int = 0
    ci_level: float = 0.95
    plots: bool = True
    min_positives: int = MIN_POSITIVES
    calibrate: str | None = None
    save_calibrated: str | None = None


@dataclass(frozen=True)
class PredictOptions:
    """How to run the model (see :func:`.runner.cached_predictions`)."""

    batch_size: int = 32
    mode: str | None = None
    aggregate: str = "mean"
    device: str = "cpu"
    cache_dir: str | None = None
    use_cache: bool = True
    limit: int | None = None
    weights: str = ""


@dataclass(frozen=True)
class EvaluationRun:
    """Outcome of one evaluation: the result (``None`` for the published protocol), the report
    folder, the failed records and the lines a command line prints."""

    out_dir: Path
    result: EvaluationResult | None = None
    errors: Mapping[str, str] = field(default_factory=dict)
    lines: tuple[str, ...] = ()


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _limit(mask: np.ndarray, n: int | None) -> np.ndarray:
    if n is None:
        return mask
    if n < 1:
        raise EvaluationError(f"limit must be a positive number of records; got {n}.")
    out = np.zeros_like(mask)
    out[np.flatnonzero(mask)[:n]] = True
    return out


def _provenance(model: Any, predict: PredictOptions, protocol: str, dataset: str) -> dict[str, Any]:
    from .. import __version__

    contract = getattr(model, "contract", None)
    mode = predict.mode or getattr(contract, "mode", None)
    return {
        "dataset": dataset, "protocol": protocol, "preprocessing_mode": mode, "window_aggregation": predict.aggregate,
        "weights": predict.weights, "weights_sha256": weights_sha256(model),
        "model_fingerprint": cache_fingerprint(model, predict.mode, predict.aggregate), "package_version": __version__,
        "composite_rule": COMPOSITE_RULE,
    }


def _predict(paths: list[str], model: Any, predict: PredictOptions, out: Path, log: Log, progress) -> Any:
    cache = None if not predict.use_cache else (predict.cache_dir or str(out / "cache"))
    preds = cached_predictions(paths, model, cache, batch_size=predict.batch_size, mode=predict.mode,
                               aggregate=predict.aggregate, device=predict.device, progress=progress)
    log(f"predictions: {preds.n_cached} from cache, {preds.n_predicted} computed, {len(preds.errors)} failed"
        + (f" (cache {preds.cache_file})" if preds.cache_file else ""))
    for path, err in list(preds.errors.items())[:10]:
        log(f"warning: {err if err.startswith(path) else f'{path}: {err}'}")
    return preds


def _usable_targets(ls: LabelledSet, model: Any) -> list[int]:
    outputs = set(getattr(model, "labels", None) or ())
    keep = [j for j, t in enumerate(ls.labels) if all(m in outputs for m in ls.members[t])]
    if not keep:
        raise EvaluationError(f"none of the dataset's {len(ls.labels)} targets is an output of the model; "
                         "evaluate a 150-label ECGFounder model or use the label-table evaluation.")
    return keep


def _dataset_tables(ls: LabelledSet, errors: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    mapping = ptbxl_mapping() if ls.name == "ptbxl" else snomed_mapping()
    tables = {
        "Labels not evaluable on this dataset": pd.DataFrame({"label": list(ls.not_evaluable), "reason": "no source code maps to it"}),
        "Source codes not mapped": pd.DataFrame(
            [{"code": r.code, "description": r.description, "relation": r.relation,
              "candidates (excluded from their negatives)": "; ".join(r.candidates), "rationale": r.rationale}
             for r in mapping.unmapped_codes()]),
    }
    if ls.unknown_codes:
        tables["Codes unknown to the mapping"] = pd.DataFrame(sorted(ls.unknown_codes.items(), key=lambda kv: -kv[1]), columns=["code", "records"])
    if errors:
        tables["Failed records"] = pd.DataFrame(sorted(errors.items()), columns=["path", "reason"])
    return tables


def _summary_lines(result: EvaluationResult, out: Path) -> tuple[str, ...]:
    from .report import format_ci

    lines = []
    for kind in ("macro", "micro"):
        r = result.summary.loc[kind]
        lines.append(f"{kind:5s} AUROC {format_ci(r['auroc'], r['auroc_lo'], r['auroc_hi'])}  "
                     f"AUPRC {format_ci(r['auprc'], r['auprc_lo'], r['auprc_hi'])}  "
                     f"F1 {format_ci(r['f1'], r['f1_lo'], r['f1_hi'])}  ({int(r['n_labels'])} labels, "
                     f"{int(r['n_skipped'])} undefined, {int(r.get('n_rare', 0))} rare set apart)")
    lines += [f"note: {n}" for n in result.settings.get("notes", ())]
    lines.append(f"report: {out / 'report.md'} (also report.html, per_label.csv, summary.csv, settings.json)")
    return tuple(lines)


def _output_truth(ls: LabelledSet, outputs: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """``(len(rows), len(outputs))`` truths of the model outputs a target maps to one-to-one, NaN
    where the target is not evaluable for a record (left out of that output's fit); the members of
    composite targets and unmapped outputs stay all-negative (calibration leaves them unchanged)."""
    index = {lab: k for k, lab in enumerate(outputs)}
    y = np.zeros((len(rows), len(outputs)))
    for j, t in enumerate(ls.labels):
        m = tuple(ls.members.get(t, (t,)))
        if len(m) == 1 and m[0] in index:
            y[:, index[m[0]]] = np.where(ls.evaluable[rows, j], ls.y[rows, j], np.nan)
    return y


def _write_calibration(out: Path, cal: Any, log: Log) -> None:
    if cal is None:
        return
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(cal.to_dict(), indent=1), encoding="utf-8")
    log(f"calibration: {cal.method}, {dict(cal.fitted_on).get('split', 'stored with the weights')} "
        f"({dict(cal.fitted_on).get('n', '?')} records); written to {out / 'calibration.json'}")


def _run_dataset(ls: LabelledSet, model: Any, tune: np.ndarray, test: np.ndarray, groups, *, title: str,
                 report: ReportOptions, predict: PredictOptions, provenance: dict, log: Log, progress,
                 threshold_source: str | None = None) -> EvaluationRun:
    keep = _usable_targets(ls, model)
    labels = [ls.labels[j] for j in keep]
    members = {t: ls.members[t] for t in labels}
    thr = load_thresholds(report.thresholds, labels) if report.thresholds else None
    if thr is not None:
        tune = np.zeros_like(tune)
    tune, test = _limit(tune, predict.limit), _limit(test, predict.limit)
    need = np.flatnonzero(tune | test)
    preds = _predict([ls.paths[i] for i in need], model, predict, report.out, log, progress)
    scores = np.full((len(ls), len(labels)), np.nan)
    before = scores.copy()
    ok = np.zeros(len(ls), dtype=bool)
    ok[need] = preds.ok
    done = need[preds.ok]
    cal, cal_info = evaluation_calibration(
        report.calibrate, labels=preds.labels, y=_output_truth(ls, preds.labels, done), scores=preds.scores[preds.ok],
        records=np.asarray(ls.records)[done], tune=tune[done], test=test[done], model=model, save=report.save_calibrated,
        min_per_class=report.min_positives)
    if preds.ok.any():
        before[done] = composite_scores(preds.scores[preds.ok], preds.labels, members)
        scores[done] = before[done] if cal is None else composite_scores(apply_calibration(preds.scores[preds.ok], cal), preds.labels, members)
    _write_calibration(report.out, cal, log)
    notes = list(ls.notes)
    if (~ok[need]).any():
        notes.append(f"{int((~ok[need]).sum())} record(s) could not be predicted and are left out (see 'Failed records').")
    if predict.limit:
        notes.append(f"limit {predict.limit}: only the first records of each split were used; not a full evaluation.")
    rows = ok & (tune | test)
    result = run_evaluation(
        ls.y[rows][:, keep], scores[rows], labels, report.out, test=test[rows], tune=tune[rows], thresholds=thr,
        method=report.threshold_method, target=report.target_sensitivity,
        groups=None if groups is None else np.asarray(groups)[rows], n_boot=report.n_boot, seed=report.seed,
        ci_level=report.ci_level, title=title, notes=notes, extra_tables=_dataset_tables(ls, preds.errors),
        plots=report.plots, threshold_source=threshold_source or report.thresholds,
        evaluable=ls.evaluable[rows][:, keep], members=members, min_positives=report.min_positives, extra_settings=provenance,
        uncalibrated=before[rows], calibration=cal_info,
    )
    return EvaluationRun(report.out, result, dict(preds.errors), _summary_lines(result, report.out))


def check_folds(tune_folds: Sequence[int], test_folds: Sequence[int]) -> None:
    """Refuse PTB-XL tuning and test folds that overlap (thresholds must come from other folds) or that
    PTB-XL does not have (they selected no record: a fold 0 used to read as 'no tuning split given')."""
    for name, folds in (("tune_folds", tune_folds), ("test_folds", test_folds)):
        bad = sorted(f for f in set(folds) if f not in range(1, 11))
        if bad:
            raise EvaluationError(f"{name} {','.join(map(str, bad))}: PTB-XL's strat_fold runs from 1 to 10; choose "
                                  "folds among them (default: tuning 1-9, test 10).")
    if set(tune_folds) & set(test_folds):
        raise EvaluationError(f"tune_folds={','.join(map(str, sorted(tune_folds)))} and test_folds="
                              f"{','.join(map(str, sorted(test_folds)))} overlap; thresholds must come from other folds.")


def evaluate_ptbxl(
    root: str | os.PathLike, model: Any, *, report: ReportOptions, predict: PredictOptions | None = None,
    protocol: str = "ours", sampling: int = 500, tune_folds: Sequence[int] = tuple(range(1, 10)),
    test_folds: Sequence[int] = (10,), min_likelihood: float = 0.0, bootstrap_unit: str = "patient",
    log: Log = _quiet, progress=None,
) -> EvaluationRun:
    """Evaluate on PTB-XL: protocol ``"ours"`` (test folds, thresholds from the tuning folds) or
    ``"published"`` (the authors' script, see :mod:`.published`)."""
    predict = predict or PredictOptions()
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"unknown protocol={protocol!r}; choose one of {PROTOCOLS}.")
    if protocol == "published":
        if report.calibrate or report.save_calibrated:
            raise EvaluationError(f"calibrate={report.calibrate!r}: protocol='published' has no tuning split to fit a "
                                  "calibration on; use protocol='ours' (tuning folds 1-9).")
        return _published(root, model, report=report, predict=predict, sampling=sampling, log=log, progress=progress)
    check_folds(tune_folds, test_folds)
    ls = load_ptbxl(root, sampling=sampling, min_likelihood=min_likelihood)
    if ls.folds is None:
        raise EvaluationError(f"{root}/ptbxl_database.csv has no strat_fold column; PTB-XL folds are needed to split tuning and test records.")
    tune, test = np.isin(ls.folds, list(tune_folds)), np.isin(ls.folds, list(test_folds))
    if not test.any():
        raise EvaluationError(f"no record in test folds {list(test_folds)}; folds present: {sorted(set(ls.folds.tolist()))}.")
    log(f"PTB-XL: {len(ls)} records, {len(ls.labels)} targets; tuning folds {list(tune_folds)} ({int(tune.sum())}), "
        f"test folds {list(test_folds)} ({int(test.sum())})")
    groups = ls.patients if bootstrap_unit == "patient" else None
    return _run_dataset(ls, model, tune, test, groups, title=f"ECGFounder on PTB-XL (folds {list(test_folds)}, protocol ours)",
                        report=report, predict=predict, provenance=_provenance(model, predict, "ours", "ptbxl"), log=log,
                        progress=progress)


def _published(root, model, *, report: ReportOptions, predict: PredictOptions, sampling: int, log: Log, progress) -> EvaluationRun:
    from ..datasets.labelled import unknown_code_notes
    from ..datasets.ptbxl import read_database
    from .published import PUBLISHED_FLAWS, PUBLISHED_MODE, published_ptbxl
    from .report import write_published_report

    if predict.mode not in (None, PUBLISHED_MODE):
        raise EvaluationError(f"protocol='published' preprocesses with mode={PUBLISHED_MODE!r} (the authors' script); "
                              f"got mode={predict.mode!r}: give no mode, or protocol='ours'.")
    db = read_database(root, sampling)
    labels = list(getattr(model, "labels", None) or ())
    y, unknown = ptbxl_mapping().matrix(list(db["codes"]), labels)
    rows = _limit(np.ones(len(db), dtype=bool), predict.limit)
    predict = replace(predict, mode=PUBLISHED_MODE)
    log(f"PTB-XL, protocol published: all {int(rows.sum())} records, {len(labels)} labels, preprocessing {PUBLISHED_MODE}")
    preds = _predict([db["path"].iloc[i] for i in np.flatnonzero(rows)], model, predict, report.out, log, progress)
    y = y[rows][preds.ok]
    table, summary = published_ptbxl(y, preds.scores[preds.ok], labels, seed=report.seed)
    settings = {**_provenance(model, predict, "published", "ptbxl"), **summary, "threshold_source": "the evaluated records themselves",
                "threshold_method": "max balanced accuracy on a 0.01 grid", "n_boot": 10, "flaws": list(PUBLISHED_FLAWS),
                "n_failed": len(preds.errors), "notes": list(unknown_code_notes(unknown, "SCP code", as_negatives=True))}
    write_published_report(report.out, table, settings, title="ECGFounder on PTB-XL (protocol published)")
    lines = (f"published protocol: mean AUROC over {summary['n_labels']} labels with undefined = 0: "
             f"{summary['mean_auroc_undefined_as_0']:.3f} ({summary['n_undefined']} undefined); over defined labels: "
             f"{summary['mean_auroc_defined']:.3f}. Thresholds tuned on the evaluated records: see report.md for what this protocol does wrong.",
             *(f"note: {n}" for n in settings["notes"]), f"report: {report.out / 'report.md'}")
    return EvaluationRun(report.out, None, dict(preds.errors), lines)


def evaluate_cinc2021(
    root: str | os.PathLike, model: Any, *, report: ReportOptions, predict: PredictOptions | None = None,
    tune_fraction: float = 0.5, tune_root: str | os.PathLike | None = None, ptbxl_database: str | os.PathLike | None = None,
    log: Log = _quiet, progress=None,
) -> EvaluationRun:
    """Evaluate on CinC 2021 data.  Thresholds come from (first that applies) ``report.thresholds``
    (a file), ``tune_root`` (a separate folder), or a tuning part of ``root`` drawn by patient
    (PTB-XL records grouped through ``ptbxl_database``) within each source database."""
    predict = predict or PredictOptions()
    ls = load_cinc2021(root, ptbxl_database=ptbxl_database)
    source = None
    if report.thresholds:
        tune, test = np.zeros(len(ls), dtype=bool), np.ones(len(ls), dtype=bool)
    elif tune_root is not None:
        other = load_cinc2021(tune_root, ptbxl_database=ptbxl_database)
        both = sorted(set(other.records) & set(ls.records))
        if both:  # a CinC record name is one ECG: tuned and reported on the same recording
            raise EvaluationError(f"tune_root {tune_root} and root {root} share {len(both)} record(s) (e.g. {both[0]}); "
                                  "thresholds must come from other records: give a tuning folder without the test records.")
        ls = concat_sets(other, ls)
        tune = np.arange(len(ls)) < len(other)
        test = ~tune
        source = f"folder {tune_root} ({len(other)} records)"
    else:
        tune = stratified_split(tune_fraction, ls.patients, ls.sources, seed=report.seed)
        test = ~tune
        source = (f"a {tune_fraction:g} part of {Path(root).name} drawn by patient within each source database "
                  f"({int(tune.sum())} records)")
    n_pat = len(set(np.asarray(ls.patients).tolist()))
    log(f"CinC 2021: {len(ls)} records ({n_pat} patients), {len(ls.labels)} targets; {int(tune.sum())} tuning, {int(test.sum())} test records")
    return _run_dataset(ls, model, tune, test, ls.patients, title=f"ECGFounder on CinC 2021 data ({Path(root).name})",
                        report=report, predict=predict, provenance=_provenance(model, predict, "ours", "cinc2021"), log=log,
                        progress=progress, threshold_source=source)


def _table_split(n: int, table: pd.DataFrame, rows: np.ndarray, groups, *, thresholds, split_column, tune_value, test_value,
                 tune_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from .splits import random_split

    if thresholds is not None:
        return np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    if split_column:
        if split_column not in table.columns:
            raise EvaluationError(f"no split column {split_column!r} in the label table; columns are {list(table.columns)[:12]}.")
        split = table[split_column].astype(str).to_numpy()[rows]
        tune, test = split == str(tune_value), split == str(test_value)
        if not test.any():
            raise EvaluationError(f"no record has {split_column} == {test_value!r}; values present: {sorted(set(split))[:10]}.")
        return tune, test
    if tune_fraction > 0:
        tune = random_split(n, tune_fraction, seed=seed, groups=groups)
        return tune, ~tune
    return np.zeros(n, dtype=bool), np.ones(n, dtype=bool)


def _score_matrix(rows: pd.DataFrame, names: list[str], path: Any, id_column: str) -> np.ndarray:
    """Scores of the matched prediction rows: a blank cell is a missing score (NaN; the record is left
    out), a cell that is not a finite number is an error naming it."""
    raw = rows[names]
    num = raw.apply(pd.to_numeric, errors="coerce")
    s = num.to_numpy(dtype=np.float64)
    bad = (num.isna().to_numpy() & raw.notna().to_numpy()) | np.isinf(s)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        v = raw.iat[r, c]
        raise EvaluationError(
            f"{path}: score {v if isinstance(v, str) else float(v)!r} of label {names[c]!r} for record {rows[id_column].iat[r]!r} "
            f"is not a finite number ({int(bad.sum())} such cell(s)); write probabilities as numbers, and leave the cell "
            "empty where a prediction failed (such records are left out).")
    return s


def _unused_patients(table: pd.DataFrame, skip: Sequence[str | None]) -> list[str]:
    """A note when the label table has a column of patient ids, some with several records, that is
    not the patient column: its records are then resampled as if independent (intervals too narrow)."""
    for c in table.columns:
        name = str(c).strip().lower().replace(" ", "_")
        if c in skip or not (name in ("pid", "subject", "subject_id") or name.startswith("patient")):
            continue
        ids = table[c].dropna().astype(str)
        counts = ids.value_counts()
        if (counts > 1).any():
            return [f"Column {c!r} looks like patient ids, and {int((counts > 1).sum())} of its {len(counts)} patients "
                    "have several records, which the intervals resample as if independent (too narrow); pass "
                    f"patient_column={str(c)!r} (CLI: --patient-column {c}) to resample patients."]
    return []


def evaluate_table(
    predictions: str | os.PathLike, labels: str | os.PathLike, *, report: ReportOptions, id_column: str = "record",
    label_columns: Sequence[str] | None = None, patient_column: str | None = None, split_column: str | None = None,
    tune_value: str = "tune", test_value: str = "test", tune_fraction: float = 0.0,
) -> EvaluationRun:
    """Evaluate a predictions table against a 0/1 label table, rows matched by ``id_column``;
    thresholds from ``report.thresholds``, a split column, a random ``tune_fraction`` or none."""
    from ..datasets import load_label_table, read_table

    pred = read_table(predictions, text=[id_column])  # ids as written, as load_label_table reads them
    if id_column not in pred.columns:
        raise EvaluationError(f"{predictions}: no id column {id_column!r}; columns are {list(pred.columns)[:12]}.")
    ls, table = load_label_table(labels, id_column=id_column, labels=label_columns, patient_column=patient_column,
                                 exclude=[split_column, *META_COLUMNS])  # (a prediction table's n_windows is no label)
    pred = pred.assign(**{id_column: pred[id_column].astype(str)})
    if pred[id_column].duplicated().any():
        raise EvaluationError(f"{predictions}: record {pred[id_column][pred[id_column].duplicated()].iloc[0]!r} has several rows; aggregate windows first.")
    # a label column 'target:X' (finetune's test_predictions.csv) is scored by the prediction column X
    scored = [lab.removeprefix(TARGET_PREFIX) if lab.removeprefix(TARGET_PREFIX) in pred.columns else lab
              for lab in ls.labels]
    cols = [j for j, name in enumerate(scored) if name in pred.columns]  # the label columns evaluated
    names = [scored[j] for j in cols]
    dropped = [lab for lab, name in zip(ls.labels, scored) if name not in pred.columns]
    if not names:
        raise EvaluationError(f"no label column of {labels} ({', '.join(ls.labels[:5])}{' ...' if len(ls.labels) > 5 else ''}) "
                              f"is a column of {predictions} (columns: {', '.join(map(str, pred.columns[:8]))}"
                              f"{' ...' if pred.shape[1] > 8 else ''}); name each score column like its label column.")
    if pred.empty:
        raise EvaluationError(f"{predictions}: the table has a header but no rows; give one row of scores per record.")
    where = pd.Index(pred[id_column]).get_indexer(list(ls.records))
    have = where >= 0
    if not have.any():
        raise EvaluationError(f"no record id of {labels} appears in {predictions} (column {id_column!r}; e.g. "
                              f"{ls.records[0]!r} there, {pred[id_column].iloc[0]!r} here); both tables must use the same ids.")
    y, assessed = ls.y[have][:, cols], ls.evaluable[have][:, cols]
    s = _score_matrix(pred.iloc[where[have]], names, predictions, id_column)
    finite = np.isfinite(s).all(axis=1)
    notes = []
    if (~have).any():
        notes.append(f"{int((~have).sum())} labelled record(s) have no prediction and are left out.")
    if label_columns is None:  # a label column with one bad cell is not taken as a label column: say so
        meta = {id_column, patient_column, split_column, *META_COLUMNS}
        skipped = [str(c) for c in pred.columns if c in table.columns and c not in ls.labels and c not in meta
                   and c not in names]  # (a score column beside its target: column, one file for both)
        if skipped:
            notes.append(f"{len(skipped)} column(s) of both tables are not 0/1 in {Path(labels).name} and are not evaluated: "
                         f"{', '.join(skipped[:10])}; name them as label columns to see the offending cell.")
    if patient_column is None:
        notes.extend(_unused_patients(table, (id_column, split_column)))
    unlabelled = int((~pred[id_column].isin(ls.records)).sum())
    if unlabelled:
        notes.append(f"{unlabelled} prediction row(s) have no record in {Path(labels).name} and are ignored.")
    if (~finite).any():
        notes.append(f"{int((~finite).sum())} record(s) with missing scores are left out.")
    if not assessed[finite].all():
        notes.append(f"{int((~assessed[finite]).sum())} blank label cell(s): those labels were not assessed for those "
                     "records, which are left out of those labels' metrics.")
    if dropped:
        notes.append(f"{len(dropped)} label column(s) have no prediction column and are not evaluated: {', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}.")
    rows = np.flatnonzero(have)[finite]
    groups = None if ls.patients is None else ls.patients[rows]
    thr = load_thresholds(report.thresholds, names) if report.thresholds else None
    tune, test = _table_split(len(rows), table, rows, groups, thresholds=thr, split_column=split_column, tune_value=tune_value,
                              test_value=test_value, tune_fraction=tune_fraction, seed=report.seed)
    if split_column and thr is None and not tune.any():
        present = sorted(set(table[split_column].astype(str).to_numpy()[rows]))[:10]
        notes.append(f"No record has {split_column} == {tune_value!r} (values: {present}): no tuning split, so no thresholds.")
    from .. import __version__

    y, s, assessed = y[finite], s[finite], assessed[finite]
    cal, cal_info = evaluation_calibration(report.calibrate, labels=names, y=np.where(assessed, y, np.nan), scores=s, records=np.asarray(ls.records)[rows],
                                           tune=tune, test=test, save=report.save_calibrated, min_per_class=report.min_positives)
    before, s = s, (s if cal is None else apply_calibration(s, cal))
    _write_calibration(report.out, cal, _quiet)
    result = run_evaluation(
        y, s, names, report.out, test=test, tune=tune, thresholds=thr, method=report.threshold_method,
        target=report.target_sensitivity, groups=groups, n_boot=report.n_boot, seed=report.seed, ci_level=report.ci_level,
        title=f"Evaluation of {Path(predictions).name} against {Path(labels).name}", notes=notes, plots=report.plots,
        threshold_source=report.thresholds, min_positives=report.min_positives,
        extra_settings={"dataset": Path(labels).name, "protocol": "ours", "preprocessing_mode": "as in the predictions file",
                        "package_version": __version__},
        uncalibrated=before, calibration=cal_info, evaluable=None if assessed.all() else assessed,
    )
    return EvaluationRun(report.out, result, {}, _summary_lines(result, report.out))
