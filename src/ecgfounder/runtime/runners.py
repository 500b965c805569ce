"""Inference back-ends behind one call: ``runner(windows) -> (scores, features)``.

``windows``: float32 ``(n, leads, n_samples)`` preprocessed 10-s windows.  ``scores``: float32
``(n, n_out)``, the model's logits turned into what users read (:func:`ecgfounder.models.heads.
scores_from_logits`: sigmoid, softmax or de-standardised values); ``features``: float32
``(n, num_features)`` embeddings.  Every runner is accepted by :func:`ecgfounder.prediction.iter_predict`
as its ``runner`` argument.

Paths (``precision`` × ``backend``):

=========  ============  ==============================================================================
precision  backend       what runs
=========  ============  ==============================================================================
fp32       torch         eager PyTorch: the reference
fp32       onnxruntime   the exported graph in ONNX Runtime (fused kernels; same result to ~1e-6)
bf16       torch         ``torch.autocast(bfloat16)`` where the hardware has native bf16 (CUDA, or
                         CPUs with AVX512-BF16/AMX); elsewhere it is emulated and far slower
int8       onnxruntime   static int8 quantisation (QDQ, per-channel int8 weights, uint8 activations
                         calibrated on real windows); the first convolution, which sees the raw
                         z-scored ECG, stays fp32
=========  ============  ==============================================================================

``"auto"``: bf16 with torch where bf16 is native (CUDA, AVX512-BF16/AMX CPUs), else fp32 with
torch: on the project's AVX2 CPU, idle, eager torch measured 40 ECG/s against 35 for ONNX Runtime
fp32 (``benchmarks/bench_inference.py``), and it needs no export.  ONNX Runtime is used when asked
for.  int8 is never chosen automatically: it needs calibration data and changes results slightly
(max |Δprobability| ≈ 6e-3 on real records).

Exported and quantised ONNX graphs are cached under ``cache_dir`` (default
``ecgfounder._fileio.cache_dir("runtime")``: ``$ECGFOUNDER_CACHE/runtime`` or
``~/.cache/ecgfounder/runtime``), keyed by a hash of the weights (and
of the calibration windows), so the export cost (tens of seconds) is paid once per model.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._fileio import atomic_path, cache_dir
from ..models.description import model_fingerprint
from ..models.heads import scores_from_logits
from .export import export_onnx

__all__ = [
    "Runner",
    "quantize_int8",
    "make_runner",
    "resolve_path",
    "native_bf16",
    "onnxruntime_available",
    "default_cache_dir",
    "PRECISIONS",
    "BACKENDS",
]

PRECISIONS = ("fp32", "bf16", "int8", "auto")
BACKENDS = ("torch", "onnxruntime", "auto")


def default_cache_dir() -> Path:
    """Where exported and quantised graphs are cached: ``cache_dir("runtime")``."""
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


def resolve_path(precision: str = "auto", backend: str = "auto", device: str | torch.device = "cpu") -> tuple[str, str]:
    """The concrete ``(precision, backend)`` that ``auto`` stands for on ``device``; checks the pair."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    dev = torch.device(device)
    if precision == "auto":
        precision = "fp32" if backend == "onnxruntime" else ("bf16" if native_bf16(dev) else "fp32")
    if backend == "auto":
        backend = "onnxruntime" if precision == "int8" else "torch"
    if precision == "int8" and backend != "onnxruntime":
        raise ValueError("int8 inference runs on the onnxruntime backend; use --backend onnxruntime (or auto).")
    if precision == "bf16" and backend != "torch":
        raise ValueError("bf16 inference runs on the torch backend; use --backend torch (or auto).")
    if backend == "onnxruntime":
        if dev.type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU here; got device {dev}. Use --backend torch on GPUs.")
        if not onnxruntime_available():
            raise ValueError("the onnxruntime backend needs the onnxruntime package: pip install onnxruntime.")
    return precision, backend


@dataclass
class Runner:
    """A callable ``windows -> (scores, features)`` with a description of what it runs."""

    fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    precision: str
    backend: str
    device: str
    detail: str = ""

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.fn(windows)

    def describe(self) -> str:
        return f"{self.precision}/{self.backend} on {self.device}" + (f" ({self.detail})" if self.detail else "")


def _scores(logits: np.ndarray | torch.Tensor, task_meta: dict) -> np.ndarray:
    t = torch.as_tensor(logits).float()
    return scores_from_logits(t, task_meta).cpu().numpy().astype(np.float32, copy=False)


def _torch_runner(model: Any, precision: str, device: torch.device) -> Runner:
    model.to(device).eval()
    task_meta = dict(model.task_meta or {})
    autocast = precision == "bf16"
    if autocast and not native_bf16(device):
        warnings.warn(
            f"bf16 is not native on {device} (no AVX512-BF16/AMX here): it is emulated and much slower "
            "than fp32. Use --precision int8 --backend onnxruntime, or fp32.",
            stacklevel=3,
        )

    @torch.inference_mode()
    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device, non_blocking=True)
        if autocast:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                feats = model.forward_features(t)
                logits = model.forward_head(feats)
        else:
            feats = model.forward_features(t)
            logits = model.forward_head(feats)
        return _scores(logits.float(), task_meta), feats.float().cpu().numpy()

    return Runner(run, precision, "torch", str(device), "autocast bf16" if autocast else "eager")


def _ort_session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _fp32_onnx(model: Any, cache: Path) -> Path:
    path = cache / f"net1d-{model_fingerprint(model)[:16]}-fp32.onnx"
    if not path.exists():
        cpu_model = model if next(model.parameters()).device.type == "cpu" else model.cpu()
        export_onnx(cpu_model, path)
    return path


def quantize_int8(fp32_path: Path, out: Path, calibration: np.ndarray, *, batch: int = 8) -> Path:
    """Static int8 quantisation (QDQ) of an exported Net1D graph, calibrated on ``calibration``
    windows (float32 ``(n, leads, n_samples)``).  Per-channel int8 weights, uint8 activations
    (min/max calibration), only convolutions; the first convolution stays fp32."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    calib = np.ascontiguousarray(calibration, dtype=np.float32)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"x": calib[i : i + batch]} for i in range(0, len(calib), batch)])

        def get_next(self) -> dict | None:
            return next(self._it, None)

    proto = onnx.load(str(fp32_path), load_external_data=False)
    convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
    import logging

    # The quantiser logs advice through the root logger (module-level ``logging.warning``).  Drop
    # those records below ERROR for this call with a filter; the root logger's level and handlers,
    # which belong to the application, are left as they are.
    def _quiet(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(_quiet)
    try:
        with atomic_path(out) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(fp32_path), str(tmp), _Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["Conv"], nodes_to_exclude=convs[:1],
            )
            proto_q = onnx.load(str(tmp))
            del proto_q.metadata_props[:]
            proto_q.metadata_props.extend(proto.metadata_props)
            entry = proto_q.metadata_props.add()
            entry.key, entry.value = "ecgfounder.precision", "int8"
            onnx.save(proto_q, str(tmp))
    finally:
        root.removeFilter(_quiet)
        for leftover in Path(out).parent.glob("*-inferred.onnx"):
            leftover.unlink(missing_ok=True)
    return out


def _onnx_runner(model: Any, precision: str, calibration: np.ndarray | None, cache: Path, threads: int | None) -> Runner:
    cache.mkdir(parents=True, exist_ok=True)
    task_meta = dict(model.task_meta or {})
    fp32 = _fp32_onnx(model, cache)
    state: dict[str, Any] = {}

    def session_for(x: np.ndarray) -> Any:
        if "sess" in state:
            return state["sess"]
        if precision == "fp32":
            state["sess"] = _ort_session(fp32, threads)
        else:
            calib = calibration if calibration is not None else x
            digest = hashlib.sha256(np.ascontiguousarray(calib, dtype=np.float32).tobytes()).hexdigest()[:12]
            qpath = cache / f"{fp32.stem.removesuffix('-fp32')}-int8-{digest}.onnx"
            if not qpath.exists():
                quantize_int8(fp32, qpath, calib)
            state["sess"] = _ort_session(qpath, threads)
            state["path"] = qpath
        return state["sess"]

    if precision == "fp32" or calibration is not None:
        session_for(calibration if calibration is not None else np.zeros((0,), np.float32))

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        logits, feats = session_for(x).run(None, {"x": x})
        return _scores(logits, task_meta), np.asarray(feats, dtype=np.float32)

    detail = "calibrated on the first batch" if precision == "int8" and calibration is None else ""
    return Runner(run, precision, "onnxruntime", "cpu", detail)


def make_runner(
    model: Any,
    precision: str = "fp32",
    backend: str = "torch",
    device: str | torch.device = "cpu",
    *,
    calibration: np.ndarray | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
) -> Runner:
    """An inference function for ``model`` (a loaded :class:`~ecgfounder.models.net1d.Net1D`).

    Args:
        precision: ``fp32``, ``bf16``, ``int8`` or ``auto`` (see the module documentation).
        backend: ``torch``, ``onnxruntime`` or ``auto``.
        device: torch device; the onnxruntime backend runs on the CPU.
        calibration: int8 only: float32 ``(n, leads, n_samples)`` preprocessed windows (16–64
            real records are enough) used to fix the activation ranges.  Without it the first
            batch the runner sees is used, so give it explicitly when several processes must
            agree (sharded runs).
        cache_dir: where exported/quantised graphs are kept (default :func:`default_cache_dir`).
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).

    Returns:
        a :class:`Runner`: ``runner(windows) -> (scores float32 (n, n_out), features float32
        (n, num_features))``.
    """
    dev = torch.device(device)
    precision, backend = resolve_path(precision, backend, dev)
    if backend == "torch":
        return _torch_runner(model, precision, dev)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if calibration is not None:
        calibration = np.asarray(calibration, dtype=np.float32)
        if calibration.ndim != 3 or calibration.shape[1] != model.config.in_channels or len(calibration) == 0:
            raise ValueError(
                f"calibration windows must be (n > 0, {model.config.in_channels}, n_samples); got {calibration.shape}."
            )
    return _onnx_runner(model, precision, calibration, cache, threads)
