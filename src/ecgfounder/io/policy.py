"""What every reader's recording goes through before ``read()`` returns it: one policy for all formats.

* the sampling rate lies in the plausible range (:func:`~ecgfounder.io.limits.check_fs`);
* infinite samples (an absurd scale or value in the file) are refused; NaN samples (missing data)
  are counted in ``meta['non_finite_samples']`` with a warning;
* a trailing calibration pulse (a blank gap, then every lead at the same 1-mV level, as Philips carts
  append) is cut off: ``meta['calibration_trimmed']``, ``meta['calibration_pulse_s']``;
* missing limb leads are derived from I and II (:func:`~ecgfounder.signal.leads.complete_limb_leads`):
  ``meta['derived_leads']``;
* a device statement saying that leads were off or missing: for the whole recording
  ``meta['lead_off'] = True`` and ``meta['lead_off_statement']``; naming leads (``'Lead(s) unsuitable
  for analysis: V1, V2'``) ``meta['leads_off']`` (names) and ``meta['leads_off_statement']``; with a
  warning (the keys ``signal/quality.py`` reads);
* a lead stored more than once: the first is kept, the others dropped with a warning saying for
  each lead whether its copies are identical (``meta['duplicate_leads']``; those whose copies
  differ also in ``meta['duplicate_leads_differ']``);
* ``max_duration``: only the first ``max_duration`` seconds are kept (``meta['truncated_from_s']``);
* the notes readers made while reading (``encoding_fixed``, ``compression``, ...) join ``meta``;
* every warning said about the recording is also kept in ``meta['reading_notes']`` (a service
  answers with them; a batch file's repeated warning is said once but kept with each recording).
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Iterable

import numpy as np

from ..errors import RecordReadError
from ..recording import Recording
from ..signal.leads import canonical_lead, complete_limb_leads, differing_duplicates, row_names
from ._common import as_shown
from .limits import check_fs

__all__ = ["finish", "trailing_calibration", "lead_off_statement"]

_LEAD_OFF = re.compile(
    r"\b(?:all\s+leads?\s+(?:are\s+)?(?:off|missing|disconnected|absent)|leads?\s*[-_ ]?(?:off|missing|disconnected|failure)"
    r"|missing\s+leads?|electrodes?\s+(?:off|disconnected|missing|not\s+connected)|lead\(s\)\s+unsuitable"
    r"|leads?\s+unsuitable|no\s+ecg\s+signal|technically\s+(?:poor|unsatisfactory|inadequate))",
    re.I,
)


def trailing_calibration(sig: np.ndarray, fs: float, *, level_mv: tuple[float, float] = (0.9, 1.1),
                         min_pulse_s: float = 0.05) -> tuple[int, int] | None:
    """``(cut, pulse_start)`` when the record ends with a calibration pulse: every lead at one common
    level of about 1 mV for at least ``min_pulse_s``, preceded by a blank gap (all leads at 0) and
    followed by nothing but zeros.  ``None`` otherwise (a real ECG never has all leads equal)."""
    if sig.shape[0] < 2 or sig.shape[1] < 4:
        return None
    # the last sample is either part of the pulse or of the zeros after it: checked first, so an
    # ordinary record costs one column, not the ~0.6 ms of the full scan below
    end = sig[:, -1]
    if not (np.all(np.abs(end) <= 1e-6) or (level_mv[0] <= end[0] <= level_mv[1]
                                             and np.all(np.abs(end - end[0]) <= 1e-3 + 0.01 * abs(end[0])))):
        return None
    return _scan_calibration(sig, fs, level_mv, min_pulse_s)


def _scan_calibration(sig: np.ndarray, fs: float, level_mv: tuple[float, float],
                      min_pulse_s: float) -> tuple[int, int] | None:
    """:func:`trailing_calibration` by a full scan of the record (``sig``: at least 2 leads, 4 samples)."""
    col = sig[0]
    equal = np.all(np.abs(sig - col) <= 1e-3 + 0.01 * np.abs(col), axis=0)
    cal = equal & (col >= level_mv[0]) & (col <= level_mv[1])
    if not cal.any():
        return None
    last = int(np.flatnonzero(cal)[-1])
    if np.any(np.abs(sig[:, last + 1:]) > 1e-6):
        return None
    start = last
    while start > 0 and cal[start - 1]:
        start -= 1
    if last - start + 1 < max(2, int(min_pulse_s * fs)):
        return None
    zero = np.all(np.abs(sig) <= 1e-6, axis=0)
    cut = start
    while cut > 0 and zero[cut - 1]:
        cut -= 1
    if cut == start and start > 0:
        # no blank gap: accept only a pulse that starts from a level shared by all leads
        if not equal[start - 1]:
            return None
    return cut, start


def lead_off_statement(statements: Iterable[Any]) -> str | None:
    """The first statement saying that leads were off, missing or unsuitable, else ``None``."""
    for s in statements:
        if isinstance(s, str) and _LEAD_OFF.search(s):
            return s
    return None


_LEAD_TOKEN = re.compile(r"(?<![\w-])(III|II|I|aVR|aVL|aVF|V[1-9])(?![\w])", re.I)


def _named_leads(statement: str) -> tuple[str, ...]:
    """Lead names listed in a statement (``'Lead(s) unsuitable for analysis: V1, V2'`` → V1, V2)."""
    tail = statement.split(":", 1)[1] if ":" in statement else statement
    out: list[str] = []
    for m in _LEAD_TOKEN.finditer(tail):
        name = canonical_lead(m.group(1))
        if name not in out:
            out.append(name)
    return tuple(out)


def finish(path: Any, rec: Recording, notes: list, *, trim_calibration: bool = True,
           max_duration: float | None = None, seen: set | None = None, fs_given: bool = False) -> Recording:
    """Apply the reading policy to ``rec`` (read from ``path``); see the module docstring.
    Warnings already in ``seen`` (the other items of a batch file) are not repeated.  ``fs_given``:
    the format takes its rate as ``fs=`` (an absurd rate's error says how to pass it)."""
    seen = set() if seen is None else seen
    meta = dict(rec.meta)
    warn: list[str] = []
    fs = check_fs(path, rec.fs, given=fs_given)
    sig = rec.signal
    leads = rec.leads
    if sig.size and not np.isfinite(sig).all():
        n_inf = int(np.isinf(sig).sum())
        if n_inf:
            raise RecordReadError(
                path, f"signal holds {n_inf} infinite value(s): an absurd amplitude scale, resolution or sample "
                "value in the file (refused)"
            )
        n_nan = int(np.isnan(sig).sum())
        meta["non_finite_samples"] = n_nan
        warn.append(f"{n_nan} missing (NaN) sample(s)")
    if trim_calibration and not meta.get("calibration_trimmed"):
        cal = trailing_calibration(sig, fs)
        if cal is not None and cal[0] >= int(fs):
            sig = sig[:, : cal[0]]
            meta["calibration_trimmed"] = True
            meta["calibration_pulse_s"] = round(cal[1] / fs, 6)
            warn.append(f"trailing calibration pulse at {cal[1] / fs:.2f} s cut off")
    if max_duration is not None:
        n = int(np.ceil(float(max_duration) * fs))
        if sig.shape[1] > n:
            meta["truncated_from_s"] = round(sig.shape[1] / fs, 6)
            sig = sig[:, :n]
    rows = row_names(tuple(leads))  # the names lead selection gives the rows
    first: dict[str, int] = {}
    for k, name in enumerate(rows):
        first.setdefault(name, k)
    if len(first) < len(leads):  # a lead stored twice: the first is kept (what lead selection would use)
        names = tuple(dict.fromkeys(rows[k] for k in range(len(leads)) if k != first[rows[k]]))
        differ = differing_duplicates(sig, leads)
        meta["duplicate_leads"] = names
        if differ:
            meta["duplicate_leads_differ"] = differ
        said = [f"lead(s) {', '.join(group)} stored more than once ({kind} signals)" for kind, group in (
            ("identical", [n for n in names if n not in differ]), ("different", [n for n in names if n in differ])) if group]
        warn.append("; ".join(said) + "; the first of each is kept")
        keep = sorted(first.values())
        sig, leads = sig[keep], tuple(leads[k] for k in keep)
    sig2, leads2, derived = complete_limb_leads(sig, leads)
    if derived:
        sig, leads = sig2, leads2
        meta["derived_leads"] = derived
    stmts: list[Any] = []
    for key in ("statements", "original_statements", "free_text", "dx"):
        v = meta.get(key)
        if isinstance(v, (list, tuple)):
            stmts.extend(v)
    off = lead_off_statement(stmts)
    if off:
        named = _named_leads(off)
        if named and not re.search(r"\ball\b", off, re.I):
            meta["leads_off"] = named
            meta["leads_off_statement"] = off
            warn.append(f"the device reports lead(s) {', '.join(named)} off or unsuitable ({off!r})")
        else:
            meta["lead_off"] = True
            meta["lead_off_statement"] = off
            warn.append(f"the device reports missing or disconnected leads ({off!r}); the signal may not be an ECG")
    messages = [as_shown(m) for m in [m for _k, _v, m in notes if m] + ([f"{path}: " + "; ".join(warn)] if warn else [])]
    for key, value, _message in notes:
        meta[key] = value
    if messages:
        meta["reading_notes"] = tuple(messages)
    for message in messages:
        if message not in seen:
            seen.add(message)
            warnings.warn(message, stacklevel=3)
    notes.clear()
    return Recording(signal=sig, fs=fs, leads=leads, meta=meta)
