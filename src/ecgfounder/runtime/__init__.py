"""Fast inference: back-ends (torch fp32/bf16, ONNX Runtime fp32/int8) and export.

See :mod:`ecgfounder.runtime.runners` for the paths and :mod:`ecgfounder.runtime.export` for the
exported file formats.
"""

from .export import (
    EXPORT_FORMATS,
    export_onnx,
    export_torchscript,
    model_metadata,
    read_onnx_metadata,
    read_torchscript_metadata,
)
from .runners import (
    BACKENDS,
    PRECISIONS,
    Runner,
    default_cache_dir,
    make_runner,
    native_bf16,
    onnxruntime_available,
    quantize_int8,
    resolve_path,
)

__all__ = [
    "EXPORT_FORMATS",
    "export_onnx",
    "export_torchscript",
    "model_metadata",
    "read_onnx_metadata",
    "read_torchscript_metadata",
    "BACKENDS",
    "PRECISIONS",
    "Runner",
    "default_cache_dir",
    "make_runner",
    "native_bf16",
    "onnxruntime_available",
    "quantize_int8",
    "resolve_path",
]
