"""The record stream: inputs expanded into files, files read into recordings, recordings prepared
into model windows; a record that cannot be read or prepared becomes a failure, never a stop.

Identity: every :class:`RecordResult` says where it came from: ``input_index`` (position of its
file in the expanded input list), ``member`` (position of the recording inside that file: batch
files such as a multi-record ``.npz`` or an HDF5 dataset hold many) and ``index`` (position in
the whole stream).  Consumers that key results by file must key them by
``(input_index, member)``, not by path.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import ECGFounderError, LeadError, RecordReadError
from ..recording import Recording
from ..signal.leads import LIMB_LEADS, canonical_lead
from ..signal.preprocess import Prepared, PreprocessContract, preprocess_recording

__all__ = ["RecordResult", "record_error", "expand_inputs", "iter_records", "prepare_one", "prepared_in_process", "prepared_ahead",
           "calibration_windows", "record_name", "collected_warnings"]


@dataclass
class RecordResult:
    """What prediction produced for one recording (``error`` set when it failed)."""

    index: int
    record: str
    path: str
    n_windows: int = 0
    duration_s: float = float("nan")
    starts_s: tuple[float, ...] = ()  # each window's first second in the recording
    scores: np.ndarray | None = None  # (n_windows, n_outputs): probabilities / regression values
    features: np.ndarray | None = None  # (n_windows, n_features)
    notes: tuple[str, ...] = ()
    error: str | None = None
    error_type: str = ""  # the class of the failure (LeadError, RecordReadError, ...; "" for the quality gate)
    input_index: int = 0  # position of the file in the expanded inputs
    member: int = 0  # position of the recording inside its file (batch files hold many)
    archive_member: str = ""  # its file inside a zip archive (path there; empty for a file of its own)
    quality: str = ""  # signal quality summary: "good", the flags ("flat:V3;reversal:LA-RA"), "" when off
    quality_leads: str = ""  # per lead: "I:good;...;V3:flat"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """The error as one line that names the file."""
        err = self.error or ""
        return err if err.startswith(self.path) else f"{self.path}: {err}"


def expand_inputs(inputs: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """``(display path, path-or-Recording)`` for every input; folders are searched recursively."""
    from ..io import find_records

    if isinstance(inputs, (str, os.PathLike, Recording)):
        inputs = [inputs]
    for item in inputs:
        if isinstance(item, Recording):
            yield str(item.meta.get("source") or item.id or "recording"), item
        else:
            for p in find_records([item]):
                yield str(p), p


def iter_records(items: Iterable[tuple[str, Any]], read_kwargs: dict[str, Any] | None = None,
                 ) -> Iterator[tuple[int, int, str, Recording | None, str | None]]:
    """``(input_index, member, path, recording or None, error or None)`` for every recording of
    the expanded ``items``, in order.  An archive's file that cannot be read is a failure in its
    place (a member of its own, named by it); a file that fails after some of its recordings were
    read yields those, then one failure; a file that holds none (a batch of 0 records) is a failure,
    so that every file yields at least once (reported, and counted done by a resumable run)."""
    from ..io import iter_read

    kw = dict(read_kwargs or {})
    for i, (shown, item) in enumerate(items):
        if isinstance(item, Recording):
            yield i, 0, shown, item, None
            continue
        k = 0
        try:
            for rec in iter_read(item, errors="yield", **kw):
                yield (i, k, shown, None, _failure(rec)) if isinstance(rec, RecordReadError) else (i, k, shown, rec, None)
                k += 1
        except (ValueError, OSError, MemoryError) as exc:  # (memory: one record asking for too much fails alone)
            yield i, k, shown, None, _failure(exc)
            continue
        if k == 0:
            yield i, 0, shown, None, "the file holds no recordings (a batch of 0 records); nothing to predict"


def record_error(res: RecordResult) -> ECGFounderError:
    """The failure of ``res`` as the package's error of its kind (``on_error="raise"``): a
    :class:`LeadError` for leads the model needs and the recording lacks, else a
    :class:`RecordReadError` naming the file (unreadable, unusable, or stopped by the quality gate)."""
    if res.error_type == "LeadError":
        return LeadError(res.reason)
    return RecordReadError(res.path, res.reason.removeprefix(res.path).removeprefix(": "))


def _failure(exc: BaseException) -> str:
    """The error of a record, on one line; an allocation that failed says it ran out of memory."""
    text = " ".join(str(exc).split())
    return f"out of memory reading or preparing this record: {text}" if isinstance(exc, MemoryError) else text


def record_name(path: str, rec: Recording | None) -> str:
    if rec is not None and rec.id:
        return rec.id
    p = Path(path)
    return p.stem if p.suffix else p.name


def _lead_note(note: str, lead: str | None) -> str:
    """Name the lead as the user gave it (``MLII``) beside the canonical name the model sees."""
    if lead is None:
        return note
    canon = canonical_lead(lead)
    if canon != lead and note.startswith(f"feeding lead {canon} "):
        return f"{note} (lead={lead!r} was read as {canon})"
    return note


def _leads_read(leads: Sequence[str], wanted: Sequence[str], substitute: str | None) -> set[str]:
    """Canonical names of the recording's ``leads`` the model reads: each lead it wants (for a
    one-lead model the ``substitute`` given in its place) that the recording holds, and I and II for
    a limb lead derived from them (a precordial lead the recording lacks is zero-filled or refused)."""
    have = {canonical_lead(n) for n in leads}
    want = [substitute] if substitute and len(wanted) == 1 else list(wanted)
    read: set[str] = set()
    for w in map(canonical_lead, want):
        read |= {w} if w in have else ({"I", "II"} & have if w in LIMB_LEADS else set())
    return read


def _assess(res: RecordResult, rec: Recording, gate: str, read: set[str]) -> None:
    """Fill ``res.quality`` (every lead); with the ``skip`` gate a record whose flags concern what the
    model reads (its leads ``read``, or the record as a whole) becomes a failure."""
    from ..signal.quality import assess

    try:
        report = assess(rec)
    except Exception as exc:  # the quality check must never cost a record its prediction
        res.quality = f"not assessed ({type(exc).__name__})"
        return
    res.quality = report.summary
    res.quality_leads = ";".join(f"{lq.lead}:{'|'.join(lq.flags) or 'good'}" for lq in report.leads)
    # a flat V3 says nothing against a lead-I model's reading: only the leads it reads count
    if gate == "skip" and (report.record_flags or any(lq.flags for lq in report.leads if lq.lead in read)):
        res.error = f"not predicted: signal quality {report.summary} (quality gate 'skip'; 'warn' predicts it anyway)"


_SINK = threading.local()
_HOOK_LOCK = threading.Lock()
_hook: Any = None


def _route_warnings() -> None:
    """Install (once, and again if something replaced it) a ``warnings.showwarning`` that hands a
    warning raised in a thread collecting warnings to that thread's list and passes every other
    warning on unchanged."""
    global _hook
    with _HOOK_LOCK:
        if _hook is not None and warnings.showwarning is _hook:
            return
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            sink = getattr(_SINK, "sink", None)
            if sink is None:
                return original(message, category, filename, lineno, file, line)
            sink.append(str(message))
            return None

        warnings.showwarning = show
        _hook = show


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Collect the warnings raised **in this thread** while the block runs (their texts, in order).

    Unlike ``warnings.catch_warnings`` it changes no process-wide state on entry and exit, so
    records can be prepared in several threads at once without one thread's block swallowing or
    misrouting another's warnings (the warning filters stay the user's: a warning that the filters
    show once is collected once)."""
    _route_warnings()
    outer = getattr(_SINK, "sink", None)
    sink: list[str] = []
    _SINK.sink = sink
    try:
        yield sink
    finally:
        _SINK.sink = outer


def prepare_one(index: int, input_index: int, member: int, path: str, rec: Recording | None, err: str | None,
                contract: PreprocessContract, prep_kwargs: dict[str, Any]) -> tuple[RecordResult, Prepared | None]:
    """Prepare one recording for the model; failures become ``RecordResult.error``.

    ``prep_kwargs`` go to :func:`~ecgfounder.signal.preprocess.preprocess_recording`, except
    ``quality`` (one of :data:`~ecgfounder.prediction.setup.QUALITY_GATES`, default ``warn``), the
    signal-quality gate.
    """
    res = RecordResult(index=index, record=record_name(path, rec), path=path, input_index=input_index, member=member,
                       archive_member=str(rec.meta.get("archive_member") or "") if rec is not None else "")
    if err is not None:
        res.error, res.error_type = err, "RecordReadError"
        return res, None
    prep_kwargs = dict(prep_kwargs)
    gate = prep_kwargs.pop("quality", "warn") or "warn"
    try:
        with collected_warnings() as caught:  # the quality check's warnings too: notes of this record
            if gate != "off":
                _assess(res, rec, gate, _leads_read(rec.leads, contract.leads, prep_kwargs.get("lead")))
                if res.error is not None:
                    return res, None
            prep = preprocess_recording(rec, contract, source=path, warn=False, **prep_kwargs)
    except (ValueError, OSError, MemoryError) as exc:
        res.error, res.error_type = _failure(exc), type(exc).__name__
        return res, None
    notes = [w.removeprefix(f"{path}: ") for w in caught] + list(prep.notes)
    res.notes = tuple(_lead_note(n, prep_kwargs.get("lead")) for n in notes)
    res.n_windows = prep.windows.shape[0]
    res.duration_s, res.starts_s = prep.duration_s, prep.starts_s
    return res, prep


def prepared_in_process(items: Iterable[tuple[str, Any]], contract: PreprocessContract, read_kwargs: dict[str, Any],
                        prep_kwargs: dict[str, Any], *, input_offset: int = 0, member_offset: int = 0,
                        ) -> Iterator[tuple[RecordResult, Prepared | None]]:
    """``(RecordResult, Prepared | None)`` for every recording of ``items``, read and prepared here;
    the offsets are added to the input and member positions (the items are a part of a run's inputs,
    or a range of one batch file read with ``start=``)."""
    for n, (i, k, path, rec, err) in enumerate(iter_records(items, read_kwargs)):
        yield prepare_one(n, input_offset + i, member_offset + k, path, rec, err, contract, prep_kwargs)


def prepared_ahead(items: Iterable[tuple[str, Any]], contract: PreprocessContract, read_kwargs: dict[str, Any],
                   prep_kwargs: dict[str, Any], *, threads: int, idle: bool = False, depth: int = 64,
                   ) -> Iterator[tuple[RecordResult, Prepared | None]]:
    """:func:`prepared_in_process`, computed ahead in background threads while the caller runs the
    model (:func:`~ecgfounder.runtime.overlap.ordered_map`): one thread at normal priority reads,
    checks and preprocesses in turn; otherwise records are read in order in one thread and checked
    and preprocessed in ``threads`` others (``idle``: those at idle priority, see
    :mod:`ecgfounder.runtime.overlap`).  The pairs come back in input order.  ``threads=0`` prepares
    in the caller's thread, in turn with inference."""
    if threads <= 0:
        return prepared_in_process(items, contract, read_kwargs, prep_kwargs)
    from ..runtime.overlap import ordered_map

    def one(job: tuple[int, tuple]) -> tuple[RecordResult, Prepared | None]:
        n, (i, k, path, rec, err) = job
        return prepare_one(n, i, k, path, rec, err, contract, prep_kwargs)

    return ordered_map(one, enumerate(iter_records(items, read_kwargs)), threads=threads, depth=depth, idle=idle)


def calibration_windows(files: Sequence[Any], contract: PreprocessContract, n: int, *,
                        read_kwargs: dict[str, Any] | None = None, prep_kwargs: dict[str, Any] | None = None,
                        ) -> np.ndarray | None:
    """The first window of each of the first ``n`` readable records of ``files`` sorted by name
    (int8 calibration: the same in every shard and on resume); ``None`` if none could be read."""
    ordered = sorted(files, key=str)[: 4 * n]
    wins = []
    items = ((str(f), f) for f in ordered)
    for _res, prep in prepared_in_process(items, contract, dict(read_kwargs or {}), dict(prep_kwargs or {})):
        if prep is not None:
            wins.append(prep.windows[0])
        if len(wins) >= n:
            break
    return np.stack(wins) if wins else None
