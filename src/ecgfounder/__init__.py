"""ecgfounder: the ECGFounder electrocardiogram foundation model as software.

ECGFounder (Li et al., "An Electrocardiogram Foundation Model Built on over 10 Million Recordings",
NEJM AI 2025; arXiv 2410.04133) by PKUDigitalHealth; weights published under MIT on the Hugging
Face Hub (``PKUDigitalHealth/ECGFounder``).  This package is an independent re-implementation.

The public API::

    read(path) -> Recording                       any supported ECG file
    preprocess(signal, fs, leads) -> windows      (n_windows, n_leads, 5000) float32
    load_model("12-lead" | "1-lead" | path)       Net1D with labels and preprocessing contract
    predict(paths_or_recordings, model)           DataFrame of per-label probabilities
    embed(paths_or_recordings, model)             (table, features (n, 1024))
    quality(recording) -> QualityReport           fit to read? per-lead flags, "good" or the flags
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._lazy import lazy_names
from .errors import CheckpointError, ECGFounderError, LeadError, RecordReadError, WeightsDownloadError

# Heavy names (torch, scipy, pandas behind them) load on first use, so that `ecgfounder --help`
# and light commands start fast.
_LAZY = {
    "read": ("io", "read"),
    "ECGFOUNDER_LABELS": ("labels", "ECGFOUNDER_LABELS"),
    "load_model": ("models.loading", "load_model"),
    "save_model": ("models.loading", "save_model"),
    "Net1D": ("models.net1d", "Net1D"),
    "Net1DConfig": ("models.net1d", "Net1DConfig"),
    "predict": ("prediction", "predict"),
    "embed": ("prediction", "embed"),
    "Recording": ("recording", "Recording"),
    "PreprocessContract": ("signal.preprocess", "PreprocessContract"),
    "preprocess": ("signal.preprocess", "preprocess"),
    "quality": ("signal.quality", "assess"),
    "explain": ("explain.attribution", "explain"),
    "calibrate": ("explain.calibration", "calibrate"),
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)


__all__ = [
    "__version__",
    "Recording",
    "read",
    "preprocess",
    "PreprocessContract",
    "load_model",
    "save_model",
    "Net1D",
    "Net1DConfig",
    "predict",
    "embed",
    "quality",
    "explain",
    "calibrate",
    "ECGFOUNDER_LABELS",
    "ECGFounderError",
    "RecordReadError",
    "LeadError",
    "CheckpointError",
    "WeightsDownloadError",
]
