"""ecgfounder: the ECGFounder electrocardiogram foundation model as software.

ECGFounder (Li et al., "An Electrocardiogram Foundation Model Built on over 10 Million Recordings",
NEJM AI 2025; arXiv 2410.04133) by PKUDigitalHealth; weights published under MIT on the Hugging
Face Hub (``PKUDigitalHealth/ECGFounder``).  This package is an independent re-implementation.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import CheckpointError, ECGFounderError, LeadError, RecordReadError
from .io import read
from .labels import ECGFOUNDER_LABELS
from .recording import Recording

__all__ = [
    "__version__",
    "Recording",
    "read",
    "ECGFOUNDER_LABELS",
    "ECGFounderError",
    "RecordReadError",
    "LeadError",
    "CheckpointError",
]
