"""Evaluation: metrics with bootstrap intervals, operating thresholds, cached prediction runs,
reports, and whole evaluations of a model on a dataset.

Modules: :mod:`.metrics` (``binary_metrics``, ``evaluate_multilabel`` with the ``evaluable``
mask and the minimum-positives rule, ``multilabel_report``), :mod:`.regression`
(``regression_report``), :mod:`.bootstrap` (vectorised resampling), :mod:`.intervals`
(small-count AUROC intervals), :mod:`.thresholds` (``choose_thresholds``), :mod:`.splits`
(tuning/test splits by patient and source), :mod:`.runner` (cached predictions,
``run_evaluation``), :mod:`.report` (``write_report``), :mod:`.published` (the authors' PTB-XL
protocol, reproduced), :mod:`.calibrating` (which records a calibration is fitted on and
where it came from; the maps and ECE are :mod:`ecgfounder.explain.calibration`'s), :mod:`.jobs` (``evaluate_ptbxl``, ``evaluate_cinc2021``,
``evaluate_table``: what ``ecgfounder evaluate`` runs).  Ground truth comes from
:mod:`ecgfounder.datasets`.
"""

from __future__ import annotations

from .errors import EvaluationError
from .metrics import (
    MIN_POSITIVES,
    EvaluationResult,
    binary_metrics,
    evaluate_multilabel,
    group_summary,
    multilabel_report,
    regression_report,
)
from .report import write_report
from .thresholds import choose_thresholds, load_thresholds, save_thresholds

__all__ = [
    "EvaluationError",
    "MIN_POSITIVES",
    "EvaluationResult",
    "binary_metrics",
    "evaluate_multilabel",
    "multilabel_report",
    "regression_report",
    "group_summary",
    "choose_thresholds",
    "load_thresholds",
    "save_thresholds",
    "write_report",
]
