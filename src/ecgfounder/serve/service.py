"""The analysis service shared by the HTTP app and the MCP tool: admission (bounded concurrency and
a bounded queue), per-request timeout, dynamic batching, and the versioned answer."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import numpy as np

from ..errors import ECGFounderError, RecordReadError
from ..prediction.records import collected_warnings
from ..recording import Recording
from .adapter import Analyzer, display_span
from .batching import DynamicBatcher
from .config import ServeConfig
from .members import ArchiveTally, Skipped, passed_over
from .schema import (
    Attribution, DisplaySignal, Finding, LabelInfo, LabelScore, LabelsResponse, ModelInfo, Prediction,
    QualityReport, RecordInfo, SignalRequest,
)
from .terms import Terms, one_line as _one_line, say as _say, said as _said

__all__ = ["Service", "Options", "Overloaded", "RequestTimeout", "InputError"]


class Overloaded(ECGFounderError):
    """Too many requests are waiting; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(ECGFounderError):
    """A request took longer than the service's per-request limit."""


class InputError(ECGFounderError, ValueError):
    """The input could not be read or prepared (one line, naming the uploaded file)."""


@dataclass(frozen=True)
class Options:
    """What an answer carries beyond the probabilities."""

    embedding: bool = False
    attribution: bool = False
    signal: bool = False
    attribution_label: str | None = None
    attribution_method: str = "ig"
    start: float = 0.0  # the second the display signal and attribution start at (a page of the recording)
    lead: str | None = None  # a single-lead model: the recording's lead fed in place of the model's


class Service:
    """Turns recordings into :class:`~ecgfounder.serve.schema.Prediction` answers.

    Start it (``await service.start()``) inside the event loop that will serve requests.
    ``on_batch(n_windows, n_requests, seconds)`` is called after each forward pass.
    ``file_terms``, ``signal_terms``: how the front end's requests for a file and for an inline
    signal set the library's arguments; the library's messages are written in those terms.
    """

    def __init__(self, analyzer: Analyzer, config: ServeConfig | None = None,
                 on_batch: Callable[[int, int, float], None] | None = None, *,
                 file_terms: Terms | None = None, signal_terms: Terms | None = None) -> None:
        self.analyzer = analyzer
        self.config = config or ServeConfig()
        self.file_terms, self.signal_terms = file_terms, signal_terms
        cfg = self.config
        self.batcher = DynamicBatcher(lambda x: analyzer.forward(x, cfg.max_batch_windows),
                                      max_batch=cfg.max_batch_windows, max_wait_s=cfg.batch_wait_ms / 1000,
                                      on_batch=on_batch)
        self._sem: asyncio.Semaphore | None = None
        # attributions run one at a time, in a thread of their own: those waiting for their turn wait
        # in its queue, not each in a thread of the loop's shared pool that reading and preparing need
        self._explainer: ThreadPoolExecutor | None = None
        self.inflight = 0
        self.ready = False

    async def start(self) -> None:
        self._sem = asyncio.Semaphore(self.config.max_concurrency)
        if self._explainer is None:
            self._explainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgfounder-explain")
        await self.batcher.start()
        # one pass through the model before /readyz says yes (allocations, kernel choice)
        c = self.analyzer.contract
        await self.batcher.submit(np.zeros((1, len(c.leads), c.n_samples), np.float32))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.batcher.stop()
        if self._explainer is not None:
            self._explainer.shutdown(wait=False, cancel_futures=True)
            self._explainer = None

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Count a request in, or raise :class:`Overloaded` when concurrency and queue are full."""
        cfg = self.config
        if self.inflight >= cfg.max_concurrency + cfg.max_queue:
            raise Overloaded(
                f"server busy: {self.inflight} requests in progress or queued (limit "
                f"{cfg.max_concurrency} + {cfg.max_queue} queued); retry after {cfg.retry_after_s} s.",
                cfg.retry_after_s,
            )
        self.inflight += 1
        try:
            yield
        finally:
            self.inflight -= 1

    async def analyze_file(self, path: str | os.PathLike, *, filename: str | None = None,
                           read_kwargs: dict[str, Any] | None = None, options: Options = Options(),
                           several: str = "send one recording per request", deadline: float | None = None
                           ) -> Prediction:
        """Analyse one file (any supported format) holding one recording; errors (an
        :class:`InputError`, raised) name ``filename``, not the temporary path; ``several``: the fix
        the error for a file of several recordings gives (the front end's way to send them).  Reading
        counts against ``request_timeout_s`` too (:class:`RequestTimeout` at the limit, however long the
        reading thread goes on, its slot held until it ends).  ``deadline``: the event loop's time the
        request ends at (:meth:`deadline`; default: ``request_timeout_s`` from now)."""
        deadline = self.deadline() if deadline is None else deadline
        (_, got), *passed = await self._timed(self.analyze_members(
            path, filename=filename, read_kwargs=read_kwargs, options=options, limit=1, several=several,
            deadline=deadline), deadline)
        if isinstance(got, ECGFounderError):
            raise got
        got.notes += [s.reason for _, s in passed]  # the archive's other files: what reading it said
        return got

    async def analyze_member(self, path: str | os.PathLike, member: int, *, filename: str | None = None,
                             read_kwargs: dict[str, Any] | None = None, options: Options = Options(),
                             deadline: float | None = None) -> Prediction:
        """Analyse recording ``member`` (0-based, named ``filename#member``) of a file holding several
        (a zip of ECG files, an HDF5/NumPy batch): a batch file's item is read alone, an archive's
        earlier members are read and passed over.  An :class:`InputError` says how many the file
        holds when ``member`` is past the last."""
        from ..io.detect import count_records

        shown = filename or os.path.basename(str(path))
        kw = {**(read_kwargs or {}), "max_duration": self.config.max_record_s + 1.0}

        def find() -> Recording | int:
            with collected_warnings():  # (in the answer's notes: meta['reading_notes'], not on the server)
                return _find()

        def _find() -> Recording | int:
            try:
                n = count_records(path, kw.get("format"))
                if n is not None:
                    return next(self.analyzer.iter_read(path, **kw, start=member, stop=member + 1)) if member < n else n
                n = 0  # (an archive's members that cannot be read are counted, as in the batch's answer)
                for n, rec in enumerate(self.analyzer.iter_read(path, **kw, errors="yield"), start=1):
                    if n > member:
                        if isinstance(rec, RecordReadError):
                            raise rec
                        return rec
                return n
            except (ValueError, OSError, MemoryError) as exc:
                raise InputError(_say(exc, self.file_terms, str(path), shown)) from None

        async def one() -> Prediction:
            found = await self._in_slot(find)
            if isinstance(found, int):
                raise InputError(f"{shown} holds {found} recording(s); member={member} is past the last (give 0 to "
                                 f"{max(found - 1, 0)}).")
            got = await self._member(found, f"{shown}#{member}", options, str(path), deadline)
            if isinstance(got, ECGFounderError):
                raise got
            return got

        deadline = self.deadline() if deadline is None else deadline
        return await self._timed(one(), deadline)

    async def analyze_members(self, path: str | os.PathLike, *, filename: str | None = None,
                              read_kwargs: dict[str, Any] | None = None, options: Options = Options(),
                              limit: int = 64, several: str = "", deadline: float | None = None
                              ) -> list[tuple[str, Prediction | ECGFounderError | Skipped]]:
        """Analyse every recording of one file (a zip of ECG files, an HDF5/NumPy batch; a plain
        file holds one), read one at a time: ``[(name, answer or error)]``, a recording's failure
        its own item.  A file of one recording is named ``filename``, the recordings of a larger one
        ``filename#k``; more than ``limit`` recordings end the list with an error item (with
        ``limit=1``, before any is analysed: the only item).  A zip archive's files that are not
        read as ECGs follow, each a :class:`~ecgfounder.serve.members.Skipped` named
        ``filename/member`` (when every recording was read; up to ``max_files``, then one counting the rest).

        The whole file is analysed by ``deadline`` (the event loop's time, :meth:`deadline`; default:
        ``request_timeout_s`` from now; a batch request's files share one): the recordings finished
        by then are kept, the one in progress and those not reached are each an item failed with
        :meth:`late`'s reason (those of a file that does not say how many it holds, after the one in
        progress: one item)."""
        shown = filename or os.path.basename(str(path))
        kw = {**(read_kwargs or {}), "max_duration": self.config.max_record_s + 1.0}
        deadline = self.deadline() if deadline is None else deadline
        it = None
        tally = ArchiveTally()
        held: list[int | None] = [None]  # how many recordings the file holds, where its header says

        def next_one() -> Recording | InputError | None:
            nonlocal it
            try:
                if it is None:
                    from ..io.detect import count_records

                    try:  # (a batch's recordings not reached by its time limit are named one by one)
                        held[0] = count_records(path, kw.get("format")) if limit > 1 else None
                    except (ValueError, OSError):  # (the reading says why)
                        pass
                    it = self.analyzer.iter_read(path, **kw, errors="yield")
                with collected_warnings():  # (in the answer's notes: meta['reading_notes'], not on the server)
                    got = next(it, None)
                if got is not None:
                    tally.add(got)
                if isinstance(got, RecordReadError):  # an archive's file that cannot be read: an item of its own
                    raise got
                return got
            except (ValueError, OSError, MemoryError) as exc:
                return InputError(_say(exc, self.file_terms, str(path), shown))

        async def read() -> Recording | InputError | None:
            try:
                return await self._timed(self._in_slot(next_one), deadline)
            except InputError as exc:
                return exc

        async def passed() -> list[tuple[str, Skipped]]:
            if not tally.archive or tally.refused:
                return []
            try:
                found = await self._timed(self._in_slot(
                    lambda: passed_over(path, shown, tally.taken, limit=self.config.max_files)), deadline)
            except RequestTimeout:
                found = [Skipped(f"{shown}/...", None, self.late(shown, "listed", batch=True,
                                                                  what="the files of its zip archive not read as ECGs"))]
            return [(s.name, s) for s in found]

        def unread(k: int, during: str) -> list[tuple[str, RequestTimeout]]:
            """Items for recording ``k`` (``during``: 'read' or 'analysed') and those after it: each, where
            the file says how many it holds, else one for the rest (as many as there are)."""
            def item(name: str, during: str, what: str = "") -> tuple[str, RequestTimeout]:
                return name, RequestTimeout(self.late(name, during, batch=True, what=what))

            if held[0] is not None:
                return [item(f"{shown}#{j}", during if j == k else "read") for j in range(k, min(held[0], limit))]
            rest = item(f"{shown}#{k + (during != 'read')}...", "read", "the recordings from it on, if any,")
            return [item(f"{shown}#{k}", during), rest] if during != "read" else [rest]

        try:
            first = await read()
        except RequestTimeout:
            return [(shown, RequestTimeout(self.late(shown, "read", batch=limit > 1)))]
        if first is None:
            return [(shown, InputError(f"{shown} holds no recordings; send a file with at least one ECG."))]
        try:
            second = await read()  # a second one: the file holds several
        except RequestTimeout:  # (the first not known to be the only one)
            return [(shown, RequestTimeout(self.late(shown, "read", batch=False)))] if limit == 1 else unread(0, "analysed")
        if second is None:
            return [(shown, first if isinstance(first, InputError) else
                     await self._member(first, shown, options, str(path), deadline, batch=limit > 1)),
                    *await passed()]
        if limit == 1:
            return [(shown, InputError(f"{shown} holds several recordings and one is analysed here; {several}."))]

        async def each() -> AsyncIterator[Recording | InputError]:
            yield first
            yield second
            while (rec := await read()) is not None:
                yield rec

        out: list[tuple[str, Prediction | ECGFounderError | Skipped]] = []
        recs = each()
        while True:
            try:
                rec = await recs.__anext__()
            except StopAsyncIteration:
                break
            except RequestTimeout:
                return out + unread(len(out), "read")  # (the files not read are not known to be passed over)
            name = f"{shown}#{len(out)}"
            if len(out) >= limit:
                out.append((name, InputError(f"{shown} holds more than {limit} recordings, the most one file may "
                                             "hold here (max_files); split it.")))
                return out  # (the files not read are not known to be passed over)
            got = rec if isinstance(rec, InputError) else await self._member(rec, name, options, str(path), deadline,
                                                                              batch=True)
            if isinstance(got, RequestTimeout):
                return out + unread(len(out), "analysed")
            out.append((name, got))
        return out + await passed()

    async def _member(self, rec: Recording, name: str, options: Options, hide: str, deadline: float,
                      batch: bool = False) -> Prediction | ECGFounderError:
        """One recording read from the file at ``hide`` (a temporary path, never shown), analysed by
        ``deadline``; its error returned, not raised (at the deadline, a :class:`RequestTimeout` with
        :meth:`late`'s reason).  Its format is the one its reader found (a zip's member: the member's)."""
        try:
            return await self._timed(self._analyze(lambda: self._short_enough(rec, name), name,
                                                   lambda: rec.meta.get("format"), options,
                                                   self.file_terms, hide=hide), deadline,
                                     self.late(name, "analysed", batch=batch))
        except (InputError, RequestTimeout) as exc:
            member = rec.meta.get("archive_member") if rec.meta.get("compression") == "zip" else None
            text = str(exc)
            if member and isinstance(exc, InputError) and text.startswith(name + ":"):  # which file of the zip
                return InputError(f"{name} ({member} in the zip archive){text[len(name):]}")
            return exc

    async def analyze_signal(self, req: SignalRequest, options: Options = Options(), deadline: float | None = None,
                             *, name: str | None = None) -> Prediction:
        """Analyse an inline signal by ``deadline`` (the event loop's time, :meth:`deadline`; default:
        ``request_timeout_s`` from now); ``name``: its item's name in a batch, whose limit
        (:class:`RequestTimeout`) is then worded as :meth:`late` words it."""
        def load() -> Recording:
            try:
                rec = self.analyzer.from_array(req.signal, req.fs, req.leads, req.id)
            except (ValueError, OSError, MemoryError) as exc:
                raise InputError(f"{req.id or 'signal'}: {_say(exc, self.signal_terms)}") from None
            return self._short_enough(rec, req.id or "signal")

        return await self._timed(self._analyze(load, req.id, lambda: "json", options, self.signal_terms),
                                 self.deadline() if deadline is None else deadline,
                                 self.late(name, "analysed", batch=True) if name else None)

    def _short_enough(self, rec: Recording, shown: str) -> Recording:
        """``rec``, unless it is longer than ``max_record_s``."""
        limit = self.config.max_record_s
        if rec.duration > limit:
            raise InputError(f"{shown}: the recording is longer than {limit:g} s, the most this service analyses "
                             "(max_record_s); send an excerpt, or run 'ecgfounder predict' on long recordings.")
        return rec

    def deadline(self) -> float:
        """The event loop's time ``request_timeout_s`` from now: when a request arriving now ends."""
        return asyncio.get_running_loop().time() + self.config.request_timeout_s

    def late(self, name: str, during: str, *, batch: bool, what: str = "") -> str:
        """Why the recording ``name`` has no answer: the request reached ``request_timeout_s`` before
        it was ``during`` ('read', 'analysed'); ``batch``: the fix of a recording among others."""
        limit = f"{self.config.request_timeout_s:g} s (the server's request_timeout_s)"
        if not batch:
            return (f"the request took longer than {limit}; send a shorter recording or retry when the server "
                    "is less busy.")
        return (f"{name}: not {'listed' if during == 'listed' else 'analysed'}: the batch request reached its time "
                f"limit of {limit} before {what or 'it'} was {during}; the recordings answered are kept: send the "
                "others again (in smaller batches, or when the server is less busy).")

    async def _timed(self, coro: Any, deadline: float | None = None, late: str | None = None) -> Any:
        """``coro``'s result, or :class:`RequestTimeout` (``late``; default: :meth:`late`'s words for one
        recording) at ``deadline`` (the event loop's time; default: ``request_timeout_s`` from now)."""
        left = (self.deadline() if deadline is None else deadline) - asyncio.get_running_loop().time()
        try:
            if left <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(coro, left)
        except asyncio.TimeoutError:
            if asyncio.iscoroutine(coro) and left <= 0:
                coro.close()  # (never awaited)
            raise RequestTimeout(late or self.late("", "analysed", batch=False)) from None

    async def _in_slot(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` in a worker thread holding one of the ``max_concurrency`` slots until it returns.
        A request that times out stops waiting, but a thread cannot be stopped: its slot is freed
        when the thread ends, not when the request does, so reads and preparations in progress never
        exceed ``max_concurrency``."""
        assert self._sem is not None, "Service.start() was not called"
        await self._sem.acquire()
        try:
            fut = asyncio.ensure_future(asyncio.to_thread(fn))
        except BaseException:
            self._sem.release()
            raise

        def done(f: asyncio.Future) -> None:
            self._sem.release()  # type: ignore[union-attr]
            if not f.cancelled():
                f.exception()  # retrieved: an abandoned request's error is not logged as never retrieved

        fut.add_done_callback(done)
        return await asyncio.shield(fut)

    async def _analyze(self, load: Callable[[], Recording], filename: str | None, fmt: Callable[[], str | None],
                       options: Options, terms: Terms | None, hide: str | None = None) -> Prediction:
        """``terms``: those of the request, for errors; ``hide``: the path the input was read from (a
        temporary file), replaced by ``filename`` in errors."""
        t0 = time.perf_counter()

        def read_and_prepare() -> tuple[Recording, Any]:
            rec = load()
            shown = filename or rec.id or "signal"
            try:
                return rec, self.analyzer.prepare(rec, options.lead)
            except (ValueError, OSError, MemoryError) as exc:
                msg = _say(exc, terms, hide, shown)
                raise InputError(msg if shown in msg else f"{shown}: {msg}") from None

        rec, prep = await self._in_slot(read_and_prepare)
        t1 = time.perf_counter()
        # signal quality needs only the recording: it runs while the request waits for its batch
        quality = asyncio.ensure_future(asyncio.to_thread(self.analyzer.quality, rec, prep))
        try:
            scores, feats = await self.batcher.submit(prep.windows)
            t2 = time.perf_counter()
            q = await quality
        finally:
            quality.cancel()
        answer = await asyncio.to_thread(self._answer, rec, prep, scores, feats, filename, fmt(), options, q)
        answer.notes = [*_reading_notes(rec, terms, hide, filename), *answer.notes]  # what reading it said first
        if options.attribution:
            answer.attribution = await self._attribution(rec, answer, options)
        answer.timing_ms = {"prepare": round((t1 - t0) * 1e3, 2), "model": round((t2 - t1) * 1e3, 2),
                            "total": round((time.perf_counter() - t0) * 1e3, 2)}
        return answer

    # -- answers -------------------------------------------------------------------------------
    def model_info(self) -> ModelInfo:
        return ModelInfo(**self.analyzer.model_info())

    def labels_response(self) -> LabelsResponse:
        a = self.analyzer
        return LabelsResponse(model=self.model_info(), labels=[
            LabelInfo(index=i, label=lab, threshold=float(a.thresholds[i]), threshold_source=a.threshold_source[i])
            for i, lab in enumerate(a.labels)])

    def _answer(self, rec: Recording, prep: Any, scores: np.ndarray, feats: np.ndarray, filename: str | None,
                fmt: str | None, options: Options, quality: dict[str, Any]) -> Prediction:
        a = self.analyzer
        prob = scores.mean(axis=0).astype(float)
        cal = a.calibrate(prob)  # (NaN: a label the calibration leaves as the model scores it)
        ref = prob if cal is None else np.where(np.isnan(cal), prob, cal)
        calibrated = [None] * len(prob) if cal is None else [None if np.isnan(v) else float(v) for v in cal]
        above = ref >= a.thresholds
        labels = [
            LabelScore(label=lab, probability=float(prob[i]), calibrated_probability=calibrated[i],
                       threshold=float(a.thresholds[i]), threshold_source=a.threshold_source[i],
                       above_threshold=bool(above[i]))
            for i, lab in enumerate(a.labels)
        ]
        if options.start:
            try:  # refused before any attribution is computed
                display_span(rec, options.start)
            except ValueError as exc:
                raise InputError(_one_line(exc)) from None
        order = sorted(np.flatnonzero(above), key=lambda i: -ref[i])
        findings = [Finding(label=a.labels[i], probability=float(prob[i]), calibrated_probability=calibrated[i],
                            threshold=float(a.thresholds[i])) for i in order]
        stem = os.path.splitext(filename)[0] if filename else None
        stored = rec.stored_leads  # (a property that builds its set anew each time it is read)
        return Prediction(
            record=RecordInfo(id=rec.id or stem or "signal", filename=filename, format=fmt, fs=rec.fs,
                              leads=list(rec.leads), derived_leads=[x for x in rec.leads if x not in stored],
                              duration_s=round(rec.duration, 4),
                              n_windows=int(scores.shape[0])),
            model=self.model_info(),
            labels=labels,
            findings=findings,
            quality=QualityReport(**quality),
            notes=list(prep.notes),
            embedding=feats.mean(axis=0).astype(float).round(6).tolist() if options.embedding else None,
            signal=DisplaySignal(**a.display_signal(rec, self.config.display_fs, options.start)) if options.signal else None,
        )

    async def _attribution(self, rec: Recording, answer: Prediction, options: Options) -> Attribution:
        """The attribution of ``options.attribution_label`` (default: the top finding, else the most
        probable label), computed in the service's attribution thread."""
        a = self.analyzer
        top = max(answer.labels, key=lambda s: s.probability if s.calibrated_probability is None
                  else s.calibrated_probability)
        target = options.attribution_label or (answer.findings[0].label if answer.findings else top.label)
        if target not in a.labels:
            raise InputError(f"attribution_label {target!r} is not a label of this model; see GET /v1/labels.")
        n, limit = answer.record.n_windows, a.explain_max_windows
        if n > limit:  # the rest of the answer stands: the viewer still shows the recording
            most = limit * a.contract.n_samples / a.contract.fs
            return Attribution(available=False, label=target, note=(
                f"attribution is computed for recordings of at most {most:g} s ({limit} model windows); this one "
                f"lasts {rec.duration:.0f} s ({n} windows): send an excerpt of at most {most:g} s to see it"))
        assert self._explainer is not None, "Service.start() was not called"
        fut = asyncio.get_running_loop().run_in_executor(
            self._explainer, a.attribution, rec, target, self.config.display_fs, options.attribution_method,
            options.start, options.lead)
        try:
            return Attribution(**await fut)
        except ValueError as exc:  # e.g. an unknown method: the request's fault
            raise InputError(_one_line(exc)) from None


def _reading_notes(rec: Recording, terms: Terms | None, hide: str | None, shown: str | None) -> list[str]:
    """What reading the recording said (a lead order assumed, NaN samples, a calibration pulse cut,
    ...: ``meta['reading_notes']``), as :func:`~ecgfounder.serve.terms.said` says it."""
    return [_said(" ".join(str(note).split()), terms, hide, shown or "the file")
            for note in rec.meta.get("reading_notes", ())]
