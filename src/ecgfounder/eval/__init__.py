"""Evaluation: metrics with bootstrap intervals, operating thresholds, dataset ground truth,
cached prediction runs and reports.

Modules: :mod:`.metrics` (``binary_metrics``, ``evaluate_multilabel``, ``multilabel_report``,
``regression_report``), :mod:`.bootstrap` (vectorised resampling), :mod:`.thresholds`
(``choose_thresholds``), :mod:`.datasets` (PTB-XL, CinC 2021, label tables), :mod:`.runner`
(cached predictions, ``run_evaluation``), :mod:`.report` (``write_report``).
"""

from __future__ import annotations

from .metrics import (
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
