"""The one place where the service meets the rest of the package.

Everything the service needs from the library (reading, the weights' preprocessing contract, the
forward pass, signal quality, attribution, calibration) goes through :class:`Analyzer`, so that
wiring a new engine, quality gate or explainer is a change here only.  Quality and attribution are
imported lazily; when they are not installed the answer says so instead of failing.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..recording import Recording

__all__ = ["Analyzer"]

log = logging.getLogger(__name__)

_WINDOW_S = 10.0  # shown in the viewer: the first window
_RHYTHM_LEADS = 3  # a recording of at most this many leads (stored in its file) is shown over its first minute


def page_seconds(rec: Recording) -> float:
    """Seconds of ``rec`` the viewer shows at once (a page): a 10-s window, or for a recording of
    1-3 leads (a phone, patch or Holter ECG) longer than that a minute, as rhythm strips."""
    from ..plot import RHYTHM_SECONDS

    few = len(rec.stored_leads) <= _RHYTHM_LEADS
    return RHYTHM_SECONDS if few and rec.duration > _WINDOW_S + 1e-9 else _WINDOW_S


def display_span(rec: Recording, start: float = 0.0) -> tuple[float, float]:
    """``(start, end)`` in seconds of the page of ``rec`` shown from ``start`` (:func:`page_seconds`
    long, cut at the recording's end).  A :class:`ValueError` when ``start`` is not within it."""
    start = float(start)
    if not 0 <= start < rec.duration:
        last = max(0.0, rec.duration - 1.0 / rec.fs)
        raise ValueError(f"start={start:g} s is not within this {rec.duration:g}-s recording; give 0 to {last:g} "
                         "(seconds from its beginning).")
    return start, min(rec.duration, start + page_seconds(rec))


def _page_shares(a: np.ndarray, fs: float, page_s: float) -> list[float]:
    """The share of ``a``'s total (leads × samples at ``fs``, non-negative) in each ``page_s`` of
    the recording, pages counted from 0 s."""
    step = max(1, int(round(page_s * fs)))
    sums = np.add.reduceat(a.sum(axis=0), np.arange(0, a.shape[1], step)) if a.shape[1] else np.zeros(0)
    total = float(sums.sum())
    return [round(float(v / total), 4) if total > 0 else 0.0 for v in sums]


class Analyzer:
    """A loaded model and everything needed to turn a recording into an answer.

    Args:
        model: a loaded :class:`~ecgfounder.Net1D` (with labels and contract).
        weights_file: the file the weights came from (hashed for the answer's ``weights_sha256``).
        threshold: operating threshold for labels with none in ``thresholds_file`` or the weights.
        thresholds_file: a thresholds CSV (``label,threshold``, as ``ecgfounder evaluate`` writes).
        device: torch device of the forward pass.
        threads: torch intra-op threads (``None``: leave torch's setting).
        precision, backend: the inference path (:func:`ecgfounder.runtime.make_runner`): ``fp32``/
            ``bf16``/``int8``/``auto`` and ``torch``/``onnxruntime``/``auto``.
    """

    def __init__(self, model: Any, *, weights_file: str | os.PathLike | None = None, threshold: float = 0.5,
                 thresholds_file: str | os.PathLike | None = None, device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32", backend: str = "torch") -> None:
        import torch

        from .. import __version__
        from ..models.weights import sha256_cached
        from ..runtime import make_runner

        if threads is not None:
            torch.set_num_threads(int(threads))  # process-wide: the service's forward passes
        self.model = model.to(device).eval()
        self.labels: tuple[str, ...] = tuple(model.labels or ())
        if len(self.labels) != model.num_classes or not self.labels:
            raise ValueError(
                f"the model has {model.num_classes} outputs but {len(self.labels)} label names; the service "
                "needs named outputs (a 150-label ECGFounder head, or a fine-tuned model saved with its labels)."
            )
        desc = model.description
        if desc.contract is None:
            raise ValueError(f"the model ({model.config.in_channels} input leads) carries no preprocessing contract; "
                             "the service feeds a model only what its contract says (set model.contract and save it).")
        self.contract = desc.contract
        self.task_meta = dict(desc.task_meta)
        self._calibration = self._stored_calibration(model)
        same = frozenset() if self._calibration is None else self._calibration.unchanged  # (found once, not per request)
        self._unchanged = [j for j, lab in enumerate(self._calibration.labels if same else ()) if lab in same]
        wfile = Path(weights_file or desc.source.get("file") or "")
        self.model_id = f"ECGFounder {desc.name}" if desc.name else (wfile.name or "in-memory model")
        self.revision = desc.revision
        # the hash of the file actually served (the description's for in-memory models); remembered by the
        # file's identity (path, size, times, inode): a restart or a second Analyzer does not read it again
        self.weights_sha256 = sha256_cached(wfile) if wfile.is_file() else desc.sha256
        self.package_version = __version__
        self.thresholds, self.threshold_source = self._thresholds(threshold, thresholds_file)
        # the prediction engine's runner: windows -> (scores, features)
        self._runner = make_runner(self.model, precision, backend, device)
        self.forward_calls = 0  # number of forward passes (the batching tests count them)
        self._lock = threading.Lock()  # one forward at a time; torch uses all cores for it
        self._explain_model: Any = None
        self._explain_lock = threading.Lock()
        from ..explain.attribution import MAX_WINDOWS

        self.explain_max_windows = MAX_WINDOWS  # attribution is refused beyond it (minutes of work)

    @classmethod
    def load(cls, source: str | os.PathLike = "12-lead", *, threshold: float = 0.5,
             thresholds_file: str | os.PathLike | None = None, device: str = "cpu", threads: int | None = None,
             precision: str = "fp32", backend: str = "torch") -> "Analyzer":
        """Load published weights by name (``"12-lead"``, ``"1-lead"``) or a checkpoint file."""
        from ..models.loading import load_model

        model = load_model(source, map_location=device)
        wfile = Path(source) if Path(source).is_file() else None
        return cls(model, weights_file=wfile, threshold=threshold, thresholds_file=thresholds_file, device=device,
                   threads=threads, precision=precision, backend=backend)

    # -- description ---------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "n_labels": len(self.labels),
            "task": str(self.task_meta.get("task", "multilabel")),
            "contract": self.contract.to_dict(),
            "package_version": self.package_version,
        }

    def _thresholds(self, default: float, path: str | os.PathLike | None) -> tuple[np.ndarray, list[str]]:
        """Per-label operating thresholds: a thresholds CSV (``ecgfounder evaluate``'s
        ``thresholds.csv``; ``source "file"``), else those in the weights' metadata
        (``task_meta['thresholds']``, a list or a label → value mapping; ``"weights"``), else
        ``default``.  Labels without a value (NaN) take the next source."""
        thr = np.full(len(self.labels), float(default))
        src = ["default"] * len(self.labels)
        given = self.task_meta.get("thresholds")
        if isinstance(given, Mapping):
            given = [given.get(lab, np.nan) for lab in self.labels]
        if isinstance(given, Sequence) and len(given) == len(self.labels):
            for i, v in enumerate(given):
                if v is not None and np.isfinite(float(v)):
                    thr[i], src[i] = float(v), "weights"
        if path is not None:
            from ..eval.thresholds import load_thresholds

            ser = load_thresholds(path)
            for i, lab in enumerate(self.labels):
                v = ser.get(lab, np.nan)
                if np.isfinite(float(v)):
                    thr[i], src[i] = float(v), "file"
        return thr, src

    # -- input ---------------------------------------------------------------------------------
    def read(self, path: str | os.PathLike, **read_kwargs: Any) -> Recording:
        """``ecgfounder.read``: one recording; a :class:`~ecgfounder.RecordReadError` otherwise."""
        from ..io import read

        return read(path, **read_kwargs)

    def iter_read(self, path: str | os.PathLike, **read_kwargs: Any) -> Iterator[Recording]:
        """``ecgfounder.io.iter_read``: every recording of a file (archives, batch files), lazily."""
        from ..io import iter_read

        return iter_read(path, **read_kwargs)

    def check_format(self, fmt: str) -> str:
        """``fmt`` as a reader name (aliases resolved); a :class:`~ecgfounder.SetupError` naming the
        choices for an unknown one, before any file is read."""
        from ..io.detect import canonical_format

        return canonical_format(fmt)

    def from_array(self, signal: Sequence[Sequence[float]], fs: float, leads: Sequence[str], record_id: str | None) -> Recording:
        from ..signal.leads import canonical_lead

        rows = {len(r) for r in signal}
        if len(rows) != 1:
            raise ValueError(f"signal rows have different lengths {sorted(rows)[:5]}; give leads × samples.")
        seen: dict[str, int] = {}
        for k, name in enumerate(leads):  # a file's repeated lead is dropped with a warning; a request is told
            lead = canonical_lead(name)
            if not lead:
                raise ValueError(f"leads[{k}] is empty; give each row of signal its lead name (I, II, V1, ...).")
            if lead in seen:
                raise ValueError(f"leads[{seen[lead]}] and leads[{k}] are both lead {lead} ({leads[seen[lead]]!r}, "
                                 f"{name!r}); give each row of signal its own lead name.")
            seen[lead] = k
        x = np.asarray(signal, dtype=np.float64)
        return Recording(x, fs, tuple(leads), {"id": record_id or "signal", "source": record_id or "signal"})

    def prepare(self, rec: Recording, lead: str | None = None):
        """Model windows per the weights' contract (:func:`ecgfounder.signal.preprocess.preprocess_recording`);
        ``lead``: a single-lead model's input taken from that lead of ``rec``."""
        from ..signal.preprocess import preprocess_recording

        return preprocess_recording(rec, self.contract, warn=False, lead=lead)

    # -- model ---------------------------------------------------------------------------------
    def forward(self, windows: np.ndarray, max_batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, features)`` of float32 windows ``(n, leads, n_samples)``, in chunks of ``max_batch``."""
        scores, feats = [], []
        with self._lock:
            self.forward_calls += 1
            for a in range(0, windows.shape[0], max_batch):
                s, f = self._runner(np.ascontiguousarray(windows[a:a + max_batch], dtype=np.float32))
                scores.append(np.asarray(s))
                feats.append(np.asarray(f))
        return np.concatenate(scores), np.concatenate(feats)

    @staticmethod
    def _stored_calibration(model: Any) -> Any:
        """The calibration the weights carry, checked against them once (refused, as a
        ``ValueError``, when fitted for other weights or labels), or ``None``."""
        if not dict(model.task_meta or {}).get("calibration"):
            return None
        try:  # the explain module owns calibration; absent → no calibrated values
            from ..explain.calibration import calibration_of  # type: ignore[import-not-found]
        except ImportError:
            return None
        return calibration_of(model)

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray | None:
        """Calibrated probabilities where the weights carry a calibration, else ``None``; NaN for
        the labels it leaves as the model scores them (too few positives when it was fitted)."""
        if self._calibration is None:
            return None
        from ..explain import apply_calibration  # type: ignore[attr-defined]

        out = np.asarray(apply_calibration(probabilities, self._calibration), dtype=float)
        out[..., self._unchanged] = np.nan
        return out

    # -- extras --------------------------------------------------------------------------------
    def quality(self, rec: Recording, prepared: Any) -> dict[str, Any]:
        """Signal-quality flags of :func:`ecgfounder.quality` (per lead ``flag:LEAD``, then record flags),
        plus what preprocessing noticed (NaN samples, short record); without the quality module,
        only the latter."""
        base_flags = [f"flat:{ld}" for ld in prepared.flat_leads]
        if prepared.n_nan:
            base_flags.append("nan_samples")
        if prepared.padded:
            base_flags.append("short_record")
        try:
            from ..signal.quality import assess  # type: ignore[import-not-found]
        except ImportError:
            return {"available": False, "source": "preprocessing", "flags": base_flags, "summary": None,
                    "flagged_leads": list(prepared.flat_leads), "words": _flag_words(base_flags),
                    "note": "signal-quality assessment (ecgfounder.signal.quality) is not available in this "
                            "version; flags are what preprocessing noticed"}
        try:
            report = assess(rec)
        except Exception as exc:  # an auxiliary check must not cost the answer; say why it is missing
            log.warning("quality assessment failed: %s", exc, exc_info=True)
            return {"available": False, "source": "preprocessing", "flags": base_flags, "summary": None,
                    "flagged_leads": list(prepared.flat_leads), "words": _flag_words(base_flags),
                    "note": f"signal-quality assessment failed on this recording: {' '.join(str(exc).split())[:200]}"}
        return _quality_dict(report, base_flags)

    def attribution(self, rec: Recording, label: str, display_fs: float, method: str = "ig",
                    start: float = 0.0, lead: str | None = None) -> dict[str, Any]:
        """:func:`ecgfounder.explain` of ``label`` over the whole recording, given for the page from
        ``start`` (:func:`display_span`, at ``display_fs``, |attribution| scaled to 0..1 over the whole
        recording) with the share of each page.  Runs on a private copy of the model under its own lock:
        attribution methods that hook layers (Grad-CAM) must not see the batched forward passes of
        other requests, and a slow attribution must not hold them up."""
        try:
            from ..explain import explain  # type: ignore[import-not-found]
        except ImportError:
            return {"available": False, "label": label,
                    "note": "attribution (ecgfounder.explain) is not available in this version"}
        with self._explain_lock:
            if self._explain_model is None:
                self._explain_model = copy.deepcopy(self.model)
            result = explain(rec, self._explain_model, labels=[label], method=method, lead=lead,
                             max_windows=self.explain_max_windows)
        return _attribution_dict(result, label, display_fs, display_span(rec, start), page_seconds(rec))

    def display_signal(self, rec: Recording, display_fs: float, start: float = 0.0) -> dict[str, Any]:
        """The page of ``rec`` from ``start`` (:func:`display_span`) in mV at ``display_fs`` (lower than
        the recording's rate only): all leads over 10 s, or over a minute the leads stored in the file
        (1-3)."""
        from ..signal.filters import resample
        from ..signal.leads import canonical_lead

        t0, t1 = display_span(rec, start)
        every = page_seconds(rec) <= _WINDOW_S  # (a minute's page: the stored leads only)
        rows = [i for i, ld in enumerate(rec.leads) if every or ld in rec.stored_leads]
        x = rec.signal[rows, int(round(t0 * rec.fs)): int(round(t1 * rec.fs))]
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        fs = min(float(display_fs), rec.fs)
        x = resample(x, rec.fs, fs)
        return {"fs": fs, "start_s": t0, "page_s": page_seconds(rec), "units": "mV",
                "leads": [canonical_lead(rec.leads[i]) for i in rows], "data": np.round(x, 4).tolist()}


def _quality_dict(report: Any, base_flags: list[str]) -> dict[str, Any]:
    """:class:`ecgfounder.signal.quality.QualityReport` → the answer's ``quality`` fields."""
    flags = [f"{flag}:{lq.lead}" for lq in report.leads for flag in lq.flags] + list(report.record_flags)
    flags += [f for f in base_flags if f not in flags and not f.startswith("flat:")]
    return {"available": True, "source": "ecgfounder.quality", "good": bool(report.good),
            "summary": report.summary, "flags": flags, "flagged_leads": list(report.flagged_leads()),
            "words": _flag_words(flags), "detail": report.to_dict()}


# the flags of preprocessing, which the quality checks do not raise (its notes say the same)
_PREPARED_WORDS = {"nan_samples": "NaN/inf samples in the recording, replaced by 0 before the model read it",
                   "short_record": "the recording is shorter than the model's 10-s window: zero-padded to it"}


def _flag_words(flags: list[str]) -> dict[str, str]:
    """Each flag (``check:LEAD``, a record flag such as ``reversal:LA-RA``) in words: what its check
    means, as :data:`ecgfounder.signal.quality.CHECKS` says it (the one place the package words
    them), after the leads it is about."""
    from ..signal.quality import CHECKS

    out = {}
    for flag in flags:
        check, _, where = flag.partition(":")
        text = _PREPARED_WORDS.get(flag) or (CHECKS[check][0] if check in CHECKS else None)
        if text is not None:
            out[flag] = f"{where}: {text}" if where else text[:1].upper() + text[1:]
    return out


def _attribution_dict(result: Any, label: str, display_fs: float, span: tuple[float, float] = (0.0, _WINDOW_S),
                      page_s: float = _WINDOW_S) -> dict[str, Any]:
    """An :class:`ecgfounder.explain.Explanation` (``attributions`` ``(n_labels, n_leads, n_samples)`` at
    ``fs``) → the answer's ``attribution`` fields for its first label: the values over ``span``
    (seconds), scaled by the peak over the whole recording, and each ``page_s`` page's share."""
    from ..signal.filters import resample
    from ..signal.leads import canonical_lead

    a = np.abs(np.asarray(result.attributions, dtype=np.float64))
    a = np.nan_to_num(a[0] if a.ndim == 3 else a)
    fs = float(result.fs)
    peak = float(a.max()) or 1.0
    pages = _page_shares(a, fs, page_s)
    part = a[:, int(round(span[0] * fs)): int(round(span[1] * fs))]
    out_fs = min(float(display_fs), fs)
    part = np.clip(resample(part, fs, out_fs), 0, None)
    leads = [canonical_lead(x) for x in result.leads][: part.shape[0]]
    totals = part.sum(axis=1)
    share = {ld: round(float(t / (totals.sum() or 1.0)), 4) for ld, t in zip(leads, totals)}
    method = str(result.method)
    if getattr(result, "n_steps", None):
        method += f" ({result.n_steps} steps)"
    return {"available": True, "method": method, "baseline": getattr(result, "baseline", None),
            "label": label, "fs": out_fs, "start_s": float(span[0]), "leads": leads,
            "values": np.round(np.clip(part / peak, 0, 1), 3).tolist(), "lead_share": share,
            "page_s": float(page_s), "page_share": pages,
            "note": None if getattr(result, "lead_resolved", True) else "this method does not resolve leads"}
