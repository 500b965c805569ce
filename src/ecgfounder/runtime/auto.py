"""``auto``: the fastest inference path whose outputs agree with fp32, measured once per machine.

On first use (per CPU or GPU, weights, thread count and batch class) every candidate path is
built, run on real preprocessed windows and compared with the fp32 eager forward:

* a path is **accepted** when its probabilities differ by at most ``Bounds.max_dprob`` (0.01) and
  its embeddings keep a cosine of at least ``Bounds.min_cosine`` (0.999) on every window, and on
  the batch it will serve, before and after its timings (kernels differ with the batch size and
  with repeated calls); an fp32 path must moreover agree to ``Bounds.exact_dprob`` (1e-4), so
  "fp32" always means exact; a path that fails to build or to run is not chosen;
* each accepted path is timed at the batch size in use as soon as it is built, in turn with the
  fp32/torch reference (best of ``rounds`` timings each; the reference stays built, being the
  caller's own model), and its speed taken as a multiple of the reference's beside it, so that
  load from other programs while one path is measured cannot decide the choice; then it is
  released before the next is built:
  a built path holds its weights, compiled kernels and buffers, and all seven held at once until a
  final round of timings took the process to 3.3 GB with the published model (the caller builds the
  chosen path again, from the cached files); the fastest wins, except that a more exact path (fp32
  over bf16 over int8) within ``prefer_exact`` (5 %) of it is preferred.

A job smaller than one batch (``whole_job``: a stream's first batch that is not full is its last)
takes the exact reference path while no choice is cached: measuring would outlast the job.

The choice is written to ``<cache>/auto/<key>.json`` with every figure, where ``key`` hashes the
machine's identity (CPU model, ISA capability and core count, or the GPU name), the weights'
fingerprint, the device, the thread count, the batch class (1 or more) and the library versions
(this package's too), so a new machine, new weights or an upgraded runtime measure again.  The
choice is announced in one line on stderr when it is measured (:func:`Choice.line`);
:func:`auto_status` lists the cached choices of this machine for ``ecgfounder env``.

This module knows nothing of how a path is built: :func:`choose_path` takes a ``build(precision,
backend, calibration)`` callable (see :func:`ecgfounder.runtime.runners.make_runner`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._fileio import cache_dir as _cache_dir
from .._fileio import write_json
from .._say import to_stderr

__all__ = ["Bounds", "PathFigures", "Choice", "choose_path", "to_stderr", "machine_identity", "auto_status", "speed_info", "agreement",
           "MIN_INT8_WINDOWS"]

# int8 activation ranges are calibrated on real windows: with fewer than this many at hand the
# int8 paths are not tried, and the choice is cached as partial (measured again with more).
MIN_INT8_WINDOWS = 8
_EXACTNESS = {"fp32": 0, "bf16": 1, "int8": 2}


@dataclass(frozen=True)
class Bounds:
    """Agreement a path must keep with the fp32 eager forward to be chosen."""

    max_dprob: float = 0.01
    min_cosine: float = 0.999
    exact_dprob: float = 1e-4


@dataclass(frozen=True)
class PathFigures:
    """What was measured for one path (``ecg_per_s`` is 0 when it was not timed)."""

    precision: str
    backend: str
    ecg_per_s: float = 0.0
    max_dprob: float = float("nan")
    min_cosine: float = float("nan")
    ok: bool = False
    reason: str = ""
    build_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.precision}/{self.backend}"


@dataclass(frozen=True)
class Choice:
    """The path ``auto`` stands for, with the figures that decided it."""

    precision: str
    backend: str
    batch: int
    key: str
    figures: tuple[PathFigures, ...] = ()
    n_windows: int = 0
    partial: bool = False
    cached: bool = False
    measured_at: str = ""
    identity: dict = field(default_factory=dict)
    model: str = ""  # which weights, in words (``ecgfounder env`` lists the choices of several models)

    @property
    def name(self) -> str:
        return f"{self.precision}/{self.backend}"

    def figure(self, name: str) -> PathFigures | None:
        return next((f for f in self.figures if f.name == name), None)

    def line(self) -> str:
        """One line: the chosen path, its speed against fp32/torch and its agreement."""
        me = self.figure(self.name)
        ref = self.figure("fp32/torch")
        speed = f"{me.ecg_per_s:.1f} ECG/s at batch {self.batch}" if me and me.ecg_per_s else f"batch {self.batch}"
        ratio = f", {me.ecg_per_s / ref.ecg_per_s:.2f}x fp32/torch" if me and ref and ref.ecg_per_s else ""
        agree = f"; max |dprob| {me.max_dprob:.1e}, min cosine {me.min_cosine:.6f}" if me else ""
        rejected = [f.name for f in self.figures if not f.ok and not f.reason.startswith("not tried")]
        untried = [f.name for f in self.figures if not f.ok and f.reason.startswith("not tried")]
        rej = (f"; rejected: {', '.join(rejected)}" if rejected else "") + (
            f"; not tried: {', '.join(untried)}" if untried else "")
        how = "cached" if self.cached else f"measured on {self.n_windows} real windows" if self.figures else (
            f"the exact path, not measured: the job's {self.n_windows} window(s) are fewer than a batch")
        return f"ecgfounder auto: {self.name} ({speed}{ratio}{agree}{rej}; {how})"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["figures"] = [asdict(f) for f in self.figures]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Choice":
        figs = tuple(PathFigures(**f) for f in d.get("figures", ()))
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "figures"}
        return cls(figures=figs, **keep)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags_digest() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = sorted(line.split(":", 1)[1].split())
                    return hashlib.sha256(" ".join(flags).encode()).hexdigest()[:12]
    except OSError:
        pass
    return ""


# settings that cap the instructions oneDNN's kernels use (torch's and OpenVINO's CPU plugin read
# them): under ONEDNN_MAX_CPU_ISA=AVX2 an AVX-512 machine's bf16 path runs ~30x slower
_ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_CPU_ISA_HINTS", "DNNL_CPU_ISA_HINTS")


def machine_identity(device: str = "cpu") -> dict[str, str]:
    """What the speed of a path depends on: CPU model, ISA capability (and the settings that cap
    it) and usable cores (or the GPU)."""
    import torch

    ident = {"machine": platform.machine(), "cpu": _cpu_model(), "cpu_flags": _cpu_flags_digest(),
             "capability": str(torch.backends.cpu.get_cpu_capability())}
    caps = ";".join(f"{k}={os.environ[k]}" for k in _ISA_CAPS if os.environ.get(k))
    if caps:  # (only when set: the choices cached without them stay valid)
        ident["isa_caps"] = caps
    try:
        ident["cores"] = str(len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        ident["cores"] = str(os.cpu_count())
    if str(device).startswith("cuda") and torch.cuda.is_available():
        ident["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return ident


def _versions() -> dict[str, str]:
    out = {}
    for mod in ("torch", "onnxruntime", "openvino"):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                continue
        out[mod] = str(getattr(m, "__version__", "?"))
    return out


def _package_version() -> str:
    """This package's version: a choice measured by another release (other export or quantisation
    recipes) is measured again."""
    from .. import __version__

    return str(__version__)


def choice_key(identity: dict, weights: str, device: str, threads: int, batch: int,
               candidates: Sequence[tuple[str, str]]) -> str:
    blob = json.dumps({"id": identity, "weights": weights, "device": str(device), "threads": int(threads),
                       "batch": "1" if batch <= 1 else "many", "candidates": [list(c) for c in candidates],
                       "versions": _versions(), "ecgfounder": _package_version(), "format": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def agreement(scores: np.ndarray, feats: np.ndarray, ref_scores: np.ndarray, ref_feats: np.ndarray) -> tuple[float, float]:
    """(max |Δ score|, min cosine of the embeddings) of one path's outputs against the reference."""
    dp = float(np.abs(np.asarray(scores, np.float64) - ref_scores).max()) if len(ref_scores) else 0.0
    f = np.asarray(feats, np.float64)
    num = (f * ref_feats).sum(1)
    den = np.linalg.norm(f, axis=1) * np.linalg.norm(ref_feats, axis=1)
    cos = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(np.abs(num) == 0, 1.0, 0.0))
    return dp, float(cos.min()) if len(cos) else 1.0


def _worse(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The worse of two (max |Δ score|, min cosine) agreements; NaN counts as the worst."""
    nan = float("nan")
    return (nan if a[0] != a[0] or b[0] != b[0] else max(a[0], b[0]),
            nan if a[1] != a[1] or b[1] != b[1] else min(a[1], b[1]))


def _time(run: Callable, xb: np.ndarray, seconds: float, calls_at_least: int = 2) -> float:
    """Best seconds per call of ``run(xb)`` over at least ``calls_at_least`` calls and ``seconds``."""
    best, t_end, calls = float("inf"), time.perf_counter() + seconds, 0
    while calls < calls_at_least or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        run(xb)
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


def _paired_speed(run: Callable, ref_run: Callable, xb: np.ndarray, seconds: float, rounds: int,
                  ref_times: list[float]) -> float:
    """Speed of ``run`` as a multiple of the reference ``ref_run``, both timed in turn (reference,
    path, reference, path, ... ``rounds`` times; the best time of each counts), so that load from
    other programs while a path is measured slows the reference beside it alike and a busy moment
    does not decide the choice (the paths are built one after another, seconds apart).  The
    reference's times are added to ``ref_times``."""
    if run is ref_run:
        times = [_time(run, xb, seconds) for _ in range(max(1, rounds))]
        ref_times.extend(times)
        return 1.0
    mine, theirs = [], []
    for _ in range(max(1, rounds)):  # (the reference, the slowest path as a rule, for half as long)
        theirs.append(_time(ref_run, xb, seconds / 2, calls_at_least=1))
        mine.append(_time(run, xb, seconds))
    ref_times.extend(theirs)
    return min(theirs) / min(mine)


def choose_path(
    build: Callable[[str, str, np.ndarray | None], Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]],
    candidates: Sequence[tuple[str, str]],
    windows: np.ndarray | Callable[[], np.ndarray],
    *,
    weights: str,
    model: str = "",
    device: str = "cpu",
    threads: int = 1,
    batch: int = 32,
    cache_dir: str | os.PathLike | None = None,
    bounds: Bounds = Bounds(),
    seconds: float = 1.0,
    rounds: int = 2,
    prefer_exact: float = 0.05,
    refresh: bool = False,
    announce: Callable[[str], None] | None = to_stderr,
    whole_job: bool = False,
) -> Choice:
    """Pick the fastest accurate path among ``candidates`` (``(precision, backend)`` pairs; the
    reference ``("fp32", "torch")`` is always measured), or return the cached choice.

    Args:
        build: ``build(precision, backend, calibration) -> run`` where ``run(windows) ->
            (scores, features)``; ``calibration`` is given to int8 paths.
        windows: real preprocessed windows, float32 ``(n, leads, n_samples)``; int8 paths are
            calibrated on the first half (at most 32) and every path is checked on all of them.
            A function of no arguments giving them is called only if a measurement is needed (or
            to count them, for a choice cached as partial).
        weights: fingerprint of the weights (part of the cache key); ``model``: the weights in words,
            kept with the choice for ``ecgfounder env``.
        batch: the batch size the runner will serve (paths are timed at it).
        cache_dir: folder of the cache (its ``auto/`` subfolder); ``None`` disables the cache.
        seconds, rounds: seconds of one timing, and timings per path (the best counts).
        whole_job: ``windows`` are every window the job has: with fewer than ``batch`` of them, no
            choice cached and the reference among ``candidates`` (``precision="auto"``), the
            reference path is taken without measuring the others (measuring would outlast the job:
            ~30 s on first use); neither cached nor announced.
    """
    def real_windows() -> np.ndarray:
        nonlocal windows
        if callable(windows):
            windows = windows()
        w = np.ascontiguousarray(windows, dtype=np.float32)
        if w.ndim != 3 or len(w) == 0:
            raise ValueError(f"auto needs real windows (n > 0, leads, n_samples) to measure on; got shape {w.shape}.")
        return w

    if not callable(windows):
        windows = real_windows()  # (checked first, cached choice or not)
    cands = [("fp32", "torch")] + [tuple(c) for c in candidates if tuple(c) != ("fp32", "torch")]
    identity = machine_identity(device)
    key = choice_key(identity, weights, device, threads, batch, cands)
    path = Path(cache_dir) / "auto" / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.exists() and not refresh:
        try:
            cached = Choice.from_dict(json.loads(path.read_text()))
            if (cached.precision, cached.backend) not in cands or cached.key != key or cached.identity != identity:
                raise ValueError("a path not among the candidates")  # an entry edited, of other settings or machine
            if whole_job or not cached.partial or len(real_windows()) < MIN_INT8_WINDOWS:  # (a job of one batch
                cached = Choice.from_dict({**cached.to_dict(), "cached": True})  # takes a partial choice too)
                cached.line()  # (an entry whose figures are not numbers is measured again)
                return cached
        except (ValueError, TypeError, KeyError, AttributeError, OSError):
            pass  # unreadable entry: measure again
    windows = real_windows()
    few = len(windows) < MIN_INT8_WINDOWS
    if whole_job and len(windows) < batch and ("fp32", "torch") in [tuple(c) for c in candidates]:
        return Choice("fp32", "torch", int(batch), key, n_windows=int(len(windows)), partial=True,
                      measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"), identity=identity, model=model)
    xb = np.ascontiguousarray(np.stack([windows[i % len(windows)] for i in range(max(1, batch))]))
    calib = windows[: min(32, max(1, len(windows) // 2))]
    speed: dict[tuple[str, str], float] = {}  # × the reference, timed in turn with it
    ref_times: list[float] = []
    figs: dict[tuple[str, str], PathFigures] = {}
    ref: tuple[np.ndarray, np.ndarray] | None = None
    ref_run = None  # the fp32/torch reference stays built: the caller's own model, no copy
    ref_xb: tuple[np.ndarray, np.ndarray] | None = None  # the reference's outputs on the timed batch

    def within(agree: tuple[float, float], limit: float) -> bool:
        return agree[0] <= limit and agree[1] >= bounds.min_cosine

    partial = False
    for prec, be in cands:
        if prec == "int8" and few:
            figs[(prec, be)] = PathFigures(prec, be, reason=f"not tried: {len(windows)} windows < {MIN_INT8_WINDOWS} to calibrate on")
            partial = True
            continue
        run = None  # the previous path's weights and compiled kernels go before this one is built
        gc.collect()
        t0 = time.perf_counter()
        limit = bounds.exact_dprob if prec == "fp32" else bounds.max_dprob
        try:
            run = build(prec, be, calib if prec == "int8" else None)
            s, f = run(windows)
            build_s = time.perf_counter() - t0
            if ref is None:
                ref, ref_run = (np.asarray(s, np.float64), np.asarray(f, np.float64)), run
                ref_xb = tuple(np.asarray(o, np.float64) for o in run(xb))  # type: ignore[assignment]
            # checked on the windows, then at the batch it serves before and after its timings: OpenVINO
            # compiles a batch size seen twice for that size, and its int8 kernels gave NaN, or rows 20+
            # of a batch of 40 off by 0.04, on a small model that agreed on 8 windows
            worst = agreement(s, f, *ref)
            if run is not ref_run and within(worst, limit):
                worst = _worse(worst, agreement(*run(xb), *ref_xb))
            if within(worst, limit):
                rate = _paired_speed(run, ref_run, xb, seconds, rounds, ref_times)
                if run is not ref_run:
                    worst = _worse(worst, agreement(*run(xb), *ref_xb))
                if within(worst, limit):
                    speed[(prec, be)] = rate
        except Exception as exc:  # a path that cannot be built or run here is simply not chosen
            said = (str(exc).splitlines() or [""])[0][:160]  # (an exception may say nothing at all)
            figs[(prec, be)] = PathFigures(prec, be, reason=f"failed: {type(exc).__name__}" + (f": {said}" if said else ""))
            if ref is None or run is ref_run:
                raise
            continue
        dp, cos = worst
        ok = (prec, be) in speed
        reason = "" if ok else f"outside bounds (|dprob| {dp:.1e} > {limit:g} or cosine {cos:.6f} < {bounds.min_cosine})"
        figs[(prec, be)] = PathFigures(prec, be, 0.0, dp, cos, ok, reason, round(build_s, 2))
    ref_rate = len(xb) / min(ref_times)
    for k, x in speed.items():
        figs[k] = PathFigures(**{**asdict(figs[k]), "ecg_per_s": round(x * ref_rate, 2)})
    ok = [figs[k] for k in speed]
    fastest = max(ok, key=lambda f: f.ecg_per_s)
    near = [f for f in ok if f.ecg_per_s >= (1 - prefer_exact) * fastest.ecg_per_s]
    pick = min(near, key=lambda f: (_EXACTNESS.get(f.precision, 9), -f.ecg_per_s))
    choice = Choice(pick.precision, pick.backend, int(len(xb)), key, tuple(figs[c] for c in cands if c in figs),
                    int(len(windows)), partial, False, time.strftime("%Y-%m-%dT%H:%M:%S"), identity, model)
    if path is not None:
        try:
            write_json(path, choice.to_dict())
        except OSError as exc:  # a read-only cache: the choice holds for this process only
            warnings.warn(f"ecgfounder auto: cannot cache the choice in {path.parent} ({exc.strerror or exc}); it is "
                          "measured again next time (set ECGFOUNDER_CACHE to a writable folder).", stacklevel=2)
    if announce is not None:
        announce(choice.line())
    return choice


def auto_status(cache_dir: str | os.PathLike | None = None, device: str = "cpu") -> list[str]:
    """Lines for ``ecgfounder env``: the cached ``auto`` choices measured on this machine."""
    if cache_dir is None:
        cache_dir = _cache_dir("runtime")
    folder = Path(cache_dir) / "auto"
    me = {k: v for k, v in machine_identity(device).items() if k != "gpu"}
    lines = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:  # an entry that is not a choice (cut, edited, of another release) is left out
            c = Choice.from_dict(json.loads(p.read_text()))
            # this machine as auto sees it (ISA caps and usable cores included: a choice of other ones is not used)
            if {k: v for k, v in dict(c.identity).items() if k != "gpu"} == me:
                whose = f"{c.model}: " if c.model else ""
                lines.append(f"{whose}{c.name} at batch {c.batch} ({c.measured_at}): " + c.line().split(" (", 1)[1].rstrip(")"))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OSError):
            continue
    return lines or ["not measured yet on this machine (the first run with precision/backend auto measures it)"]


def speed_info(cache_dir: str | os.PathLike | None = None, device: str = "cpu") -> dict[str, str]:
    """What ``ecgfounder env`` shows about speed: CPU capability, the cached ``auto`` choices of this
    machine, the preprocessing implementation and the optional back-ends' versions."""
    from ..signal.fast import chain_backend

    ident = machine_identity(device)
    capped = f" under {ident['isa_caps']}" if ident.get("isa_caps") else ""
    info = {"cpu": f"{ident['cpu']} ({ident['capability']}{capped}, {ident['cores']} usable cores)"}
    for i, line in enumerate(auto_status(cache_dir, device)):
        info["auto path" if i == 0 else f"auto path {i + 1}"] = line
    folder = Path(cache_dir if cache_dir is not None else _cache_dir("runtime")) / "auto"
    if any(folder.glob("*.json")) if folder.is_dir() else False:
        info["auto cache"] = f"{folder} (remove it to measure again, e.g. after a measurement on a busy machine)"
    info["preprocessing"] = chain_backend()
    from .overlap import overlap_plan

    threads, idle = overlap_plan("cpu")
    beside_streams = overlap_plan("cpu", streams=2)[0]
    info["preparation"] = (f"{threads} background thread(s) beside a CPU model"
                           + (" at idle priority (only the cores the model leaves idle) where its threads meet "
                              f"after every operation; {beside_streams} at normal priority beside OpenVINO's streams"
                              if idle else "")
                           if threads else "in turn with a CPU model (no free core, no idle priority here)")
    info.update({f"{k} (backend)": v for k, v in _versions().items() if k != "torch"})
    return info
