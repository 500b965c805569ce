"""Signal processing: lead handling, filters, resampling, windows and the preprocessing contract."""

from .leads import STANDARD_12, canonical_lead, select_leads
from .preprocess import PreprocessContract, preprocess, preprocess_recording

__all__ = ["STANDARD_12", "canonical_lead", "select_leads", "PreprocessContract", "preprocess", "preprocess_recording"]
