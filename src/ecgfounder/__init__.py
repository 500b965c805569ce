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
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CheckpointError, ECGFounderError, LeadError, RecordReadError, WeightsDownloadError
from .io import read
from .labels import ECGFOUNDER_LABELS
from .models.loading import load_model, save_model
from .models.net1d import Net1D, Net1DConfig
from .predict import embed, predict
from .recording import Recording
from .signal.preprocess import PreprocessContract, preprocess

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
    "ECGFOUNDER_LABELS",
    "ECGFounderError",
    "RecordReadError",
    "LeadError",
    "CheckpointError",
    "WeightsDownloadError",
]
