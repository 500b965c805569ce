"""The 150 ECGFounder labels (package data, in the order of the model's output neurons)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from .errors import LabelError

__all__ = ["ECGFOUNDER_LABELS", "load_labels", "label_index"]


@lru_cache(maxsize=None)
def _read() -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("ecgfounder_150.txt").read_text(encoding="utf-8")
    labels = tuple(line.rstrip("\r") for line in text.split("\n") if line.strip())
    if len(labels) != 150:
        raise RuntimeError(f"package data ecgfounder_150.txt holds {len(labels)} labels, expected 150")
    return labels


def load_labels() -> tuple[str, ...]:
    """The 150 label names; element ``k`` names output neuron ``k`` (0 = ``ABNORMAL ECG``)."""
    return _read()


def label_index(name: str) -> int:
    """Neuron index of a label, matched case-insensitively."""
    labels = _read()
    low = {lab.lower(): i for i, lab in enumerate(labels)}
    try:
        return low[name.strip().lower()]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name.upper(), labels, n=3)
        raise LabelError(f"unknown ECGFounder label {name!r}; close matches: {close}") from None


ECGFOUNDER_LABELS = _read()
