"""Explanations: attribution maps, calibrated scores and the report per record.

Modules: :mod:`.attribution` (:func:`explain`, integrated gradients and Grad-CAM via Captum),
:mod:`.sanity` (randomisation, planted-signal and deletion checks), :mod:`.calibration`
(:func:`calibrate`, :func:`apply_calibration`, ECE and reliability diagrams), :mod:`.report`
(:func:`write_reports`).  Names load on first use (Captum, scikit-learn and matplotlib are heavy).

``ecgfounder.explain`` is both this package and the function: the public name
``ecgfounder.explain(recording, model, ...)`` must stay callable after ``import
ecgfounder.explain.x`` rebinds the attribute to the package, so the package is callable and
forwards to :func:`ecgfounder.explain.attribution.explain`.
"""

from __future__ import annotations

import sys
import types

from .._lazy import lazy_names

_LAZY = {
    "explain": "attribution", "Explanation": "attribution", "ExplainError": "attribution", "METHODS": "attribution",
    "calibrate": "calibration", "apply_calibration": "calibration", "Calibration": "calibration",
    "CalibrationError": "calibration", "calibration_of": "calibration", "attach_calibration": "calibration",
    "expected_calibration_error": "calibration", "plot_reliability": "calibration", "calibration_table": "calibration",
    "write_reports": "report", "ReportResult": "report",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .attribution import explain

        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
