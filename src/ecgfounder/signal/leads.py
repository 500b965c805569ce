"""Lead names: canonical spelling, aliases, and derivation of the limb leads from I and II."""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..errors import LeadError

__all__ = ["STANDARD_12", "LIMB_LEADS", "PRECORDIAL_LEADS", "canonical_lead", "row_names", "differing_duplicates",
           "complete_limb_leads", "select_leads"]

STANDARD_12: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS = STANDARD_12[:6]
PRECORDIAL_LEADS = STANDARD_12[6:]

_ALIASES = {
    "i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
    "mli": "I", "mlii": "II", "mliii": "III", "d1": "I", "d2": "II", "d3": "III",
    "di": "I", "dii": "II", "diii": "III",  # the D-notation of Brazilian and Spanish exports (CODE-15 %)
    "1": "I", "2": "II", "3": "III", "-avr": "-aVR", "avr-": "-aVR",
    # electrode pairs, positive electrode first (Holter and EDF exports): Einthoven's I, II, III
    "la-ra": "I", "ll-ra": "II", "ll-la": "III",
}
for _k in range(1, 7):
    _ALIASES[f"v{_k}"] = f"V{_k}"
    _ALIASES[f"c{_k}"] = f"V{_k}"       # European chest-lead naming
    _ALIASES[f"mlv{_k}"] = f"V{_k}"


@lru_cache(maxsize=4096)  # canonicalised once per name, not on every record (measured 0.3 ms/record)
def _canonical(s: str) -> str:
    key = re.sub(r"[\s_]+", " ", s.lower()).strip()
    if key.startswith("lead") and len(key) > 4:  # 'Lead I', 'LEAD_II', 'lead-V2' ('lead -aVR': minus aVR)
        rest = key[5:].strip() if key[4] == "-" else key[4:].strip()
        if rest in _ALIASES or rest.replace(" ", "") in _ALIASES:
            key = rest
    return _ALIASES.get(key, _ALIASES.get(key.replace(" ", ""), s))


def canonical_lead(name: str) -> str:
    """Canonical spelling of a lead name: ``'avr'`` → ``'aVR'``, ``'MLII'`` → ``'II'``, ``'c1'`` → ``'V1'``.

    Unknown names are returned stripped but otherwise unchanged (``'vx'`` stays ``'vx'``).
    """
    return _canonical(str(name).strip())


# Limb leads as linear combinations of I and II (Einthoven and Goldberger).
_DERIVED = {
    "I": (1.0, 0.0),
    "II": (0.0, 1.0),
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


def complete_limb_leads(signal: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """The one derived-lead policy of every reader: when I and II are stored and any of III, aVR,
    aVL, aVF is not, the missing ones are computed (Einthoven and Goldberger, :data:`_DERIVED`).

    Returns ``(signal, leads, derived)``: the six limb leads first in standard order, then the
    other stored leads in their original order; ``derived`` names the computed leads (empty, and
    the input returned unchanged, when nothing was missing or I/II are absent).
    """
    names = [canonical_lead(n) for n in leads]
    missing = [n for n in LIMB_LEADS if n not in names]
    if not missing or "I" not in names or "II" not in names:
        return signal, tuple(names), ()
    i, ii = signal[names.index("I")], signal[names.index("II")]
    rows, out = [], []
    for name in LIMB_LEADS:
        if name in names:
            rows.append(signal[names.index(name)])
        else:
            a, b = _DERIVED[name]
            rows.append(a * i + b * ii)
        out.append(name)
    for k, name in enumerate(names):
        if name not in out:
            rows.append(signal[k])
            out.append(name)
    return np.stack(rows), tuple(out), tuple(missing)


def _one_lead_hint(index: dict[str, int]) -> str:
    """The sentence pointing a recording with too few leads to the 1-lead weights (trained on lead I),
    naming one of its leads for ``lead=`` when it lacks I."""
    hint = " For fewer leads use the 1-lead weights, model='1-lead' (CLI: --weights 1-lead)"
    if "I" in index or not index:
        return hint + "."
    other = next((n for n in STANDARD_12 if n in index), next(iter(index)))
    return hint + f", with lead={other!r} (CLI: --lead {other}) in place of lead I."


def _other_lead_hint(index: dict[str, int]) -> str:
    """For a one-lead model whose lead is not recorded: the sentence naming a lead to feed instead."""
    if not index:
        return ""
    other = next((n for n in STANDARD_12 if n in index), next(iter(index)))
    return f" Feed another lead of the recording with lead={other!r} (CLI: --lead {other})."


@lru_cache(maxsize=256)
def row_names(leads: tuple) -> tuple[str, ...]:
    """Canonical names of a recording's rows (:func:`canonical_lead`), except that bare numbers are
    channel numbers, kept as they are, when one of them is not 1, 2 or 3: columns ``0..11`` are not
    leads I, II and III at ``1..3`` (lead I was silently read from the second column)."""
    names = [str(n).strip() for n in leads]
    numbered = _channel_numbers(names)
    return tuple(n if numbered and n.isdigit() else canonical_lead(n) for n in names)


def _channel_numbers(names: Sequence[str]) -> bool:
    """Whether bare numbers among ``names`` are channel numbers (one of them is not 1, 2 or 3)."""
    return any(str(n).strip().isdigit() and str(n).strip() not in ("1", "2", "3") for n in names)


def differing_duplicates(signal: np.ndarray, leads: Sequence[str]) -> tuple[str, ...]:
    """Leads named more than once (:func:`row_names`) whose rows differ: lead selection takes the
    first of each, which a caller should say (a rhythm strip stored as a second II, say)."""
    names = row_names(tuple(leads))
    if len(set(names)) == len(names):
        return ()
    first: dict[str, int] = {}
    out: dict[str, None] = {}
    for k, name in enumerate(names):
        j = first.setdefault(name, k)
        if j != k and not np.array_equal(signal[j], signal[k], equal_nan=True):
            out[name] = None
    return tuple(out)


@lru_cache(maxsize=256)  # once per layout: an archive's records share one (24 name look-ups per record before)
def _same_layout(leads: tuple, wanted: tuple) -> bool:
    """Whether ``leads`` are ``wanted`` in the same order (names canonicalised)."""
    return len(leads) == len(wanted) and row_names(leads) == tuple(canonical_lead(b) for b in wanted)


def select_leads(
    signal: np.ndarray,
    leads: Sequence[str],
    wanted: Sequence[str],
    *,
    source: str = "recording",
    fill_missing: bool = False,
    substitute: str | None = None,
    return_filled: bool = False,
    warn: bool = True,
) -> "np.ndarray | tuple[np.ndarray, list[int]]":
    """Rows of ``signal`` rearranged into the order ``wanted``.

    Args:
        signal: ``(n_leads, n_samples)`` array.
        leads: names of the rows of ``signal`` (any case, aliases accepted).
        wanted: the lead names the model needs, in order.
        source: name used in error messages (usually the file).
        fill_missing: zero-fill missing precordial leads with a warning instead of refusing.
        substitute: for a one-lead model, use this lead of the recording in place of the wanted one
            (with a warning): e.g. ``"II"`` to feed lead II to the lead-I model.

    Missing limb leads are derived from I and II when both are present.  A missing lead that can
    not be derived raises :class:`LeadError` naming it.
    """
    signal = np.asarray(signal)
    if substitute is None and _same_layout(tuple(leads), tuple(wanted)):
        return (signal, []) if return_filled else signal  # already in the wanted order: no copy
    index: dict[str, int] = {}
    for i, name in enumerate(row_names(tuple(leads))):
        index.setdefault(name, i)
    rows: list[np.ndarray] = []
    missing: list[str] = []
    derived: list[str] = []
    zero_filled: list[str] = []
    filled_rows: list[int] = []
    for want in wanted:
        want_c = canonical_lead(want)
        if substitute is not None and len(wanted) == 1:
            sub = canonical_lead(substitute)
            if sub not in index:
                raise LeadError(
                    f"{source}: lead={substitute!r} (CLI: --lead {substitute}) is not in the recording; it has "
                    f"{', '.join(map(str, leads)) or 'none'}; choose one of those."
                )
            if sub != want_c and warn:
                warnings.warn(
                    f"{source}: feeding lead {sub} to a model trained on lead {want_c}; "
                    "predictions may be less accurate.",
                    stacklevel=2,
                )
            rows.append(signal[index[sub]])
            continue
        if want_c in index:
            rows.append(signal[index[want_c]])
        elif want_c in _DERIVED and "I" in index and "II" in index:
            a, b = _DERIVED[want_c]
            rows.append(a * signal[index["I"]] + b * signal[index["II"]])
            derived.append(want_c)
        elif fill_missing and want_c in PRECORDIAL_LEADS:
            filled_rows.append(len(rows))
            rows.append(np.zeros(signal.shape[1], dtype=signal.dtype))
            zero_filled.append(want_c)
        else:
            missing.append(want_c)
    if missing:
        hint = (
            " Limb leads are derived only when both I and II are present."
            if any(m in _DERIVED for m in missing)
            else ""
        )
        fill = (
            " fill_missing=True (CLI: --fill-missing) zero-fills missing precordial leads."
            if any(m in PRECORDIAL_LEADS for m in missing)
            else ""
        )
        one = _one_lead_hint(index) if len(wanted) > 1 else _other_lead_hint(index)
        needs = "the 12 standard leads" if tuple(canonical_lead(w) for w in wanted) == STANDARD_12 else ", ".join(wanted)
        numbers = " Its names look like channel numbers: give the lead names, leads=[...]." if _channel_numbers(
            leads) else ""
        raise LeadError(
            f"{source}: missing lead(s) {', '.join(missing)} (the recording has {', '.join(map(str, leads)) or 'none'}; "
            f"the model needs {needs}).{numbers}{hint}{fill}{one}"
        )
    if zero_filled and warn:
        warnings.warn(f"{source}: zero-filled missing lead(s) {', '.join(zero_filled)}.", stacklevel=2)
    out = np.stack(rows, axis=0) if rows else np.zeros((0, signal.shape[1]), signal.dtype)
    return (out, filled_rows) if return_filled else out
