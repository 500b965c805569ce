"""OpenVINO back-end: the package's exported ONNX graphs compiled by OpenVINO's CPU plugin.

Precisions (``openvino`` extra: ``pip install ecgfounder[openvino]``):

* ``fp32`` — the fp32 ONNX export with ``INFERENCE_PRECISION_HINT=f32`` (set explicitly: on CPUs
  with AVX512-BF16/AMX the plugin would otherwise silently run in bf16);
* ``bf16`` — the same graph with the bf16 inference-precision hint (native on AVX512-BF16/AMX);
* ``int8`` — the QDQ graph of :func:`ecgfounder.runtime.runners.quantize_int8` (per-channel int8
  weights, activations calibrated on real windows, first convolution kept fp32), which OpenVINO
  runs with its int8 (VNNI/AMX) kernels.

The graph's batch dimension stays dynamic; one compiled model serves every batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["openvino_available", "openvino_session", "OV_HINTS"]

OV_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_session(path: str | Path, precision: str, threads: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Compile the ONNX file ``path`` on the CPU; returns ``f(x) -> (logits, features)`` for float32
    ``x`` ``(batch, leads, n_samples)``.  ``precision`` selects the inference-precision hint."""
    import openvino as ov

    if precision not in OV_HINTS:
        raise ValueError(f"unknown OpenVINO precision {precision!r}; choose one of {', '.join(OV_HINTS)}.")
    core = ov.Core()
    model = core.read_model(str(path))
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": OV_HINTS[precision],
        "INFERENCE_NUM_THREADS": int(threads),
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    out_logits, out_feats = compiled.output(0), compiled.output(1)

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(res[out_logits], dtype=np.float32), np.array(res[out_feats], dtype=np.float32)

    return run
