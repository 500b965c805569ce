"""Inference back-ends behind one call: ``runner(windows) -> (scores, features)``.

``windows``: float32 ``(n, leads, n_samples)`` preprocessed 10-s windows.  ``scores``: float32
``(n, n_out)``, the model's logits turned into what users read (:func:`ecgfounder.prediction.
outputs_to_scores`: sigmoid, softmax or de-standardised values); ``features``: float32
``(n, num_features)`` embeddings.  Every runner is accepted by :func:`ecgfounder.prediction.iter_predict`
as its ``runner`` argument.

Paths (``precision`` × ``backend``):

=========  ============  ==============================================================================
precision  backend       what runs
=========  ============  ==============================================================================
fp32       torch         eager PyTorch: the reference
fp32       onnxruntime   the exported graph in ONNX Runtime (fused kernels; same result to ~1e-6)
fp32       openvino      the exported graph in OpenVINO, fp32 precision hint (same result to ~1e-6)
bf16       torch         a bf16 copy of the weights (faster than ``torch.autocast`` on CPUs: 1.99x
                         against 1.66x the published forward at batch 32, same agreement); native
                         on CUDA and on CPUs with AVX512-BF16/AMX, elsewhere emulated and slow
bf16       openvino      the exported graph with OpenVINO's bf16 precision hint
int8       onnxruntime   static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations
                         calibrated on real windows); the first convolution, which sees the raw
                         z-scored ECG, stays fp32 (quantising it too drops the cosine to 0.992)
int8       openvino      the same QDQ graph run by OpenVINO's int8 (VNNI/AMX) kernels; named
                         explicitly, checked against fp32 at its first batches (runtime.checked)
=========  ============  ==============================================================================

``"auto"`` (for either argument): every valid path that fits the other argument and the device
is measured once on real windows, and the fastest whose agreement with fp32 stays within bounds
(max |Δprobability| ≤ 0.01, embedding cosine ≥ 0.999; fp32 paths ≤ 1e-4) is used; the choice is
cached per machine, weights, threads and batch class (:mod:`ecgfounder.runtime.auto`).  A runner
made with ``auto`` measures on its first call (on that batch, or on ``calibration`` when given).
The environment variable ``ECGFOUNDER_AUTO_PATH=precision/backend`` (e.g. ``fp32/torch``) fixes
what ``auto`` stands for without measuring (reproducible runs, test suites): that path where the
arguments allow it, else the first allowed one.

Exported and quantised ONNX graphs (:mod:`ecgfounder.runtime.graphs`) are cached under ``cache_dir`` (default
``ecgfounder._fileio.cache_dir("runtime")``: ``$ECGFOUNDER_CACHE/runtime`` or
``~/.cache/ecgfounder/runtime``), keyed by a hash of the weights (and of the calibration windows)
and checked against the recipe of this release, so the export cost (tens of seconds) is paid once
per model and release.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._fileio import cache_dir
from ..errors import SetupError
from ..models.description import model_fingerprint
from ..models.heads import scores_from_logits
from .auto import to_stderr
from .checked import CHECKED_PATHS, check_served
from .graphs import fp32_graph, int8_graph
from .inputs import calibration_source, check_finite, check_windows
from .openvino import openvino_available, openvino_session, stream_count

__all__ = [
    "Runner",
    "make_runner",
    "build_runner",
    "candidate_paths",
    "resolve_path",
    "native_bf16",
    "onnxruntime_available",
    "openvino_available",
    "default_cache_dir",
    "PRECISIONS",
    "BACKENDS",
    "PATHS",
]

PRECISIONS = ("fp32", "bf16", "int8", "auto")
BACKENDS = ("torch", "onnxruntime", "openvino", "auto")
# every (precision, backend) pair that exists, in the order auto tries them
PATHS = (("fp32", "torch"), ("fp32", "onnxruntime"), ("fp32", "openvino"), ("bf16", "torch"),
         ("bf16", "openvino"), ("int8", "onnxruntime"), ("int8", "openvino"))


def default_cache_dir() -> Path:
    """Where exported and quantised graphs and auto choices are cached: ``cache_dir("runtime")``."""
    return cache_dir("runtime")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 matrix work is native (fast) on ``device``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def _installed(backend: str) -> bool:
    return {"onnxruntime": onnxruntime_available, "openvino": openvino_available}.get(backend, lambda: True)()


def _backend_refusal(backend: str, dev: torch.device) -> str | None:
    """Why the graph back-end ``backend`` cannot run on ``dev`` here, with the fix (None: it can)."""
    if backend in ("auto", "torch"):
        return None
    if dev.type != "cpu":
        return (f"backend={backend!r} runs on the CPU only; got device={str(dev)!r}. Use backend='torch' on "
                f"{dev.type} devices, or device='cpu'.")
    if not _installed(backend):
        extra = "onnx" if backend == "onnxruntime" else "openvino"
        return (f"backend={backend!r} needs the optional package {backend!r}; install it with "
                f"pip install 'ecgfounder[{extra}]', or use backend='torch'.")
    return None


def _no_path(precision: str, backend: str, dev: torch.device) -> str:
    """Why ``auto`` found no path for ``precision``/``backend`` on ``dev``, with the fix."""
    where = f"precision={precision!r} with backend={backend!r} on device={str(dev)!r}"
    if precision == "bf16":
        return (f"no inference path for {where}: bf16 is not native there (emulated: many times slower than fp32); "
                "use precision='fp32', or backend='torch' to run bf16 emulated.")
    if precision == "int8" and dev.type != "cpu":
        return f"no inference path for {where}: int8 runs on the CPU only; use device='cpu', or precision='fp32'."
    return (f"no inference path for {where}: int8 needs onnxruntime or openvino; install one "
            "(pip install 'ecgfounder[onnx]'), or use precision='fp32'.")


def candidate_paths(precision: str = "auto", backend: str = "auto",
                    device: str | torch.device = "cpu") -> list[tuple[str, str]]:
    """The ``(precision, backend)`` paths that ``precision``/``backend`` (each may be ``auto``)
    allow on ``device``, in the order :mod:`~ecgfounder.runtime.auto` tries them.  Explicit pairs are
    checked (one path, or a :class:`~ecgfounder.errors.SetupError` saying what to use instead);
    ``auto`` keeps the paths whose package is installed and whose precision is native on the device."""
    if precision not in PRECISIONS:
        raise SetupError(f"unknown precision={precision!r}; choose one of {', '.join(PRECISIONS)}.", "precision")
    if backend not in BACKENDS:
        raise SetupError(f"unknown backend={backend!r}; choose one of {', '.join(BACKENDS)}.", "backend")
    dev = torch.device(device)
    if precision != "auto" and backend != "auto" and (precision, backend) not in PATHS:
        ok = [b for p, b in PATHS if p == precision]
        usable = [b for b in ok if _backend_refusal(b, dev) is None]
        fix = (f"use backend={usable[0]!r} (or 'auto')" if usable
               else f"use device='cpu' with backend={ok[0]!r}, or precision='fp32'")
        raise SetupError(f"precision={precision!r} runs on the {' or '.join(ok)} backend, not "
                         f"backend={backend!r}; {fix}.", "backend")
    refusal = _backend_refusal(backend, dev)
    if refusal is not None:
        raise SetupError(refusal, "backend")
    if precision != "auto" and backend != "auto":
        return [(precision, backend)]
    out = []
    for p, b in PATHS:
        if (precision not in ("auto", p)) or (backend not in ("auto", b)):
            continue
        if _backend_refusal(b, dev) is not None:
            continue
        if p == "bf16" and not native_bf16(dev):
            continue  # emulated bf16 is many times slower than fp32: never worth measuring
        out.append((p, b))
    if not out:
        raise SetupError(_no_path(precision, backend, dev), "precision")
    return out


def resolve_path(precision: str = "auto", backend: str = "auto", device: str | torch.device = "cpu") -> tuple[str, str]:
    """The single path an explicit ``precision``/``backend`` pair names (checked), or, with
    ``auto``, the first candidate (the choice itself is measured: :func:`make_runner`)."""
    return candidate_paths(precision, backend, device)[0]


@dataclass
class Runner:
    """A callable ``windows -> (scores, features)`` with a description of what it runs."""

    fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    precision: str
    backend: str
    device: str
    detail: str = ""
    choice: Any = None  # the runtime.auto.Choice behind an auto runner, once measured
    threads: int = 0  # CPU threads of a graph back-end (0: torch's own setting)

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.fn(windows)

    def streams(self, batch: int) -> int:
        """Streams a repeated batch of ``batch`` windows runs on: more than 1 means the model's
        threads work on separate parts and meet once per batch (OpenVINO on the CPU,
        :func:`~ecgfounder.runtime.openvino.stream_count`), 1 that they meet after every operation
        (torch, ONNX Runtime, an ``auto`` runner not measured yet)."""
        if self.backend != "openvino" or not self.threads:
            return 1
        return stream_count(batch, self.threads)

    def describe(self) -> str:
        return f"{self.precision}/{self.backend} on {self.device}" + (f" ({self.detail})" if self.detail else "")


def _scores(logits: np.ndarray | torch.Tensor, task_meta: dict) -> np.ndarray:
    t = torch.as_tensor(logits).float()
    return scores_from_logits(t, task_meta).cpu().numpy().astype(np.float32, copy=False)


class _PinnedUpload:
    """Windows to a CUDA device through a page-locked staging buffer, one per thread, grown to the
    largest batch seen: on an H200 a batch of 256 took 0.7 ms into pinned memory + 1.1 ms across,
    against 3.8 ms straight from pageable numpy memory (``benchmarks/bench_gpu_parts.py``).  The
    copy is asynchronous; the runner's result, fetched to the host, completes it before the buffer
    is written again."""

    def __init__(self, device: torch.device):
        self.device, self.local = device, threading.local()

    def __call__(self, a: np.ndarray) -> torch.Tensor:
        buf = getattr(self.local, "buf", None)
        if buf is None or buf.numel() < a.size:
            buf = self.local.buf = torch.empty(a.size, dtype=torch.float32, pin_memory=True)
        staged = buf[: a.size].view(a.shape)
        staged.copy_(torch.from_numpy(a))
        return staged.to(self.device, non_blocking=True)


def _torch_runner(model: Any, precision: str, device: torch.device) -> Runner:
    model.to(device).eval()
    task_meta = dict(model.task_meta or {})
    net, dtype = model, torch.float32
    if precision == "bf16":
        if not native_bf16(device):
            warnings.warn(
                f"bf16 is not native on {device} (no AVX512-BF16/AMX here): it is emulated and much slower "
                "than fp32. Use precision='int8' or 'fp32' (CLI: --precision int8).",
                stacklevel=3,
            )
        import copy

        net, dtype = copy.deepcopy(model).to(torch.bfloat16), torch.bfloat16  # the caller's model stays fp32

    to_device = _PinnedUpload(device) if device.type == "cuda" else None

    leads = int(model.config.in_channels)

    @torch.inference_mode()
    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = check_windows(x, leads)
        t = to_device(a) if to_device is not None else torch.from_numpy(a).to(device)
        feats = net.forward_features(t.to(dtype))
        logits = net.forward_head(feats)
        scores, features = _scores(logits.float(), task_meta), feats.float().cpu().numpy()
        check_finite(scores, features, a)
        return scores, features

    return Runner(run, precision, "torch", str(device), "bf16 weights" if precision == "bf16" else "eager")


def _ort_session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _graph_runner(model: Any, precision: str, backend: str, calibration: np.ndarray | None, cache: Path,
                  threads: int | None, keep_compiled: bool = True) -> Runner:
    """ONNX Runtime or OpenVINO on the exported graph (int8: the QDQ graph, calibrated)."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:  # a cache that cannot be written: the graphs go to a folder of this process
        pass
    task_meta = dict(model.task_meta or {})
    fingerprint = model_fingerprint(model)
    fp32 = fp32_graph(model, cache, fingerprint)
    leads = int(model.config.in_channels)
    contract = model.description.contract
    n_samples = int(contract.n_samples) if contract is not None else 5000  # the exported length (export._example)
    n_out, n_feat = int(model.num_classes), int(model.config.num_features)
    n_threads = int(threads or torch.get_num_threads())
    state: dict[str, Any] = {}

    def session_for(x: np.ndarray) -> Any:
        if "run" in state:
            return state["run"]
        path = fp32
        if precision == "int8":
            path = int8_graph(fp32, fingerprint, calibration if calibration is not None else x)
        if backend == "openvino":
            state["run"] = openvino_session(path, precision, n_threads, native_bf16("cpu"), keep_compiled)
        else:
            sess = _ort_session(path, n_threads)
            state["run"] = lambda x: sess.run(None, {"x": x})
        state["path"] = path
        return state["run"]

    if precision != "int8" or calibration is not None:
        session_for(calibration if calibration is not None else np.zeros((0,), np.float32))

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = check_windows(x, leads, n_samples)
        if not len(x):
            return np.zeros((0, n_out), np.float32), np.zeros((0, n_feat), np.float32)
        logits, feats = session_for(x)(x)
        scores, features = _scores(logits, task_meta), np.asarray(feats, dtype=np.float32)
        check_finite(scores, features, x)
        return scores, features

    detail = "calibrated on the first batch" if precision == "int8" and calibration is None else ""
    return Runner(run, precision, backend, "cpu", detail, threads=n_threads)


def build_runner(
    model: Any,
    precision: str = "fp32",
    backend: str = "torch",
    device: str | torch.device = "cpu",
    *,
    calibration: np.ndarray | Callable[[], np.ndarray | None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    keep_compiled: bool = True,
) -> Runner:
    """The runner of one explicit path (no ``auto``); see :func:`make_runner` for the arguments.
    ``keep_compiled``: OpenVINO keeps its compiled models in ``cache_dir`` for the next process
    (``auto`` passes False for the paths it only times)."""
    dev = torch.device(device)
    if "auto" in (precision, backend):
        raise SetupError(f"build_runner needs an explicit precision and backend; got precision={precision!r}, "
                         f"backend={backend!r}. Use make_runner for 'auto'.",
                         "precision" if precision == "auto" else "backend")
    precision, backend = candidate_paths(precision, backend, dev)[0]
    given = calibration_source(calibration, int(model.config.in_channels))
    calibration = given() if precision == "int8" else None  # (only int8 calibrates)
    if backend == "torch":
        return _torch_runner(model, precision, dev)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _graph_runner(model, precision, backend, calibration, cache, threads, keep_compiled)


def _auto_runner(model: Any, candidates: list[tuple[str, str]], dev: torch.device,
                 calibration: Callable[[], np.ndarray | None], given: bool, cache: Path, threads: int | None,
                 batch: int | None, seconds: float, announce: Callable[[str], None] | None,
                 exact_if_small: bool = False) -> Runner:
    """A runner that measures the candidates on its first call (or at once where ``calibration``
    was ``given``, unless ``exact_if_small``: see :func:`make_runner`).  The calibration windows
    are asked for only where they are used: a measurement, or an int8 path taken."""
    from .auto import choose_path

    n_threads = int(threads or torch.get_num_threads())
    runner = Runner(lambda x: x, "auto", "auto", str(dev), "not measured yet")

    def build(prec: str, be: str, calib: np.ndarray | None, keep: bool = False) -> Runner:
        return build_runner(model, prec, be, dev, calibration=calib, cache_dir=cache, threads=n_threads,
                            keep_compiled=keep)

    def settle(x: np.ndarray | None, whole: bool = False) -> bool:
        """Choose and build the path (False: nothing to choose on yet, the first batch will be)."""
        def windows() -> np.ndarray:  # int8's calibration set and auto's measure: the caller's, else the batch
            c = calibration()
            if c is None and x is None:
                raise _NothingYet
            return c if c is not None else x  # type: ignore[return-value]

        try:
            choice = choose_path(build, candidates, x if whole else windows, weights=model_fingerprint(model),
                                 model=_words(model), device=str(dev), threads=n_threads,
                                 batch=batch or len(windows() if x is None else x), cache_dir=cache,
                                 seconds=seconds, announce=announce, whole_job=whole)
            calib = windows() if choice.precision == "int8" else None
        except _NothingYet:
            return False
        calib = None if calib is None else np.asarray(calib, np.float32)[: min(32, max(1, len(calib) // 2))]
        chosen = build(choice.precision, choice.backend, calib, keep=True)
        runner.fn, runner.precision, runner.backend, runner.threads = chosen.fn, chosen.precision, chosen.backend, \
            chosen.threads
        runner.detail = f"auto: {choice.line().split(': ', 1)[1]}"
        runner.choice = choice
        return True

    def first(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = check_windows(x, int(model.config.in_channels))
        if not len(a):  # nothing to measure on: empty outputs; the first real windows decide
            return np.zeros((0, int(model.num_classes)), np.float32), np.zeros((0, int(model.config.num_features)),
                                                                                  np.float32)
        settle(a, whole=exact_if_small and batch is not None and len(a) < batch)  # (a first batch not full: the job's last)
        return runner.fn(a)

    runner.fn = first
    if given and not exact_if_small:
        settle(None)
    return runner


class _NothingYet(Exception):
    """auto has neither calibration windows (none given could be read) nor a batch to measure on yet."""


def _words(model: Any) -> str:
    """The weights in words for ``ecgfounder env``: the published name or the file, leads and outputs."""
    d = model.description
    what = f"{d.name} ECGFounder" if d.name else Path(str(d.source.get("file") or "unnamed weights")).name
    return f"{what} ({int(model.config.in_channels)} lead(s), {len(d.labels) or 'unnamed'} outputs)"


def make_runner(
    model: Any,
    precision: str = "auto",
    backend: str = "auto",
    device: str | torch.device = "cpu",
    *,
    calibration: np.ndarray | Callable[[], np.ndarray | None] | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    batch: int | None = None,
    auto_seconds: float = 1.0,
    announce: Callable[[str], None] | None = to_stderr,
    exact_if_small: bool = False,
) -> Runner:
    """An inference function for ``model`` (a loaded :class:`~ecgfounder.models.net1d.Net1D`).

    Args:
        precision: ``fp32``, ``bf16``, ``int8`` or ``auto`` (see the module documentation).
        backend: ``torch``, ``onnxruntime``, ``openvino`` or ``auto``.
        device: torch device; the onnxruntime and openvino backends run on the CPU.
        calibration: float32 ``(n, leads, n_samples)`` real preprocessed windows (16–64 records are
            enough): int8 fixes its activation ranges on them, and ``auto`` measures on them at
            once.  Without it the first batch the runner sees is used, so give it explicitly when
            several processes must agree (sharded runs).  A function of no arguments giving them
            (or None) is called only where they are used: an int8 path, or ``auto`` measuring (not
            for a cached choice of another precision, nor a pinned path).
        cache_dir: where exported/quantised graphs and auto choices are kept (default
            :func:`default_cache_dir`).
        threads: ONNX Runtime / OpenVINO intra-op threads (default: ``torch.get_num_threads()``).
        batch: the batch size the runner will serve, for ``auto`` to time paths at (default: the
            size of the first batch).
        auto_seconds: how long ``auto`` times each candidate per timing (the best of two counts).
        announce: where ``auto`` says, in one line, the path it measured and chose (default: stderr;
            ``None``: nowhere; a cached choice is not announced).
        exact_if_small: ``auto`` with a ``batch``: measure on the first call (on ``calibration`` if
            given), and where that call is the whole job (fewer than ``batch`` windows: a stream
            fills every batch but its last) and no choice is cached, take the exact fp32/torch path
            without measuring.  Not for runs whose parts must share one path (shards).

    Returns:
        a :class:`Runner`: ``runner(windows) -> (scores float32 (n, n_out), features float32
        (n, num_features))``; after an ``auto`` runner has measured, ``runner.precision`` and
        ``runner.backend`` name the path it took and ``runner.choice`` holds the figures.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SetupError(f"unknown device {device!r}; use device='cpu', 'cuda' or 'cuda:N'.", "device") from None
    for name, value, least in (("batch", batch, 1), ("threads", threads, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least):
            raise SetupError(f"{name} must be an integer >= {least} (or None for the default); got {name}={value!r}.",
                             name)
    candidates = candidate_paths(precision, backend, dev)
    source = calibration_source(calibration, int(model.config.in_channels))
    pinned = tuple(os.environ.get("ECGFOUNDER_AUTO_PATH", "").strip().split("/"))
    if pinned != ("",) and len(candidates) > 1:  # auto fixed without measuring: that path, or the first allowed
        candidates = [pinned] if pinned in candidates else candidates[:1]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if "auto" not in (precision, backend) or len(candidates) == 1:
        built = build_runner(model, *candidates[0], dev, calibration=source, cache_dir=cache, threads=threads)
        # a path auto would check at its batch, named without auto: checked at the batches it serves
        return check_served(built, _torch_runner(model, "fp32", dev)) if candidates[0] in CHECKED_PATHS else built
    return _auto_runner(model, candidates, dev, source, calibration is not None, cache, threads, batch, auto_seconds,
                        announce, exact_if_small)
