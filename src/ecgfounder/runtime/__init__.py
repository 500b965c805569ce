"""Fast inference: back-ends (torch, ONNX Runtime, OpenVINO) at fp32/bf16/int8, export, and
``auto``, which measures them once per machine and model and takes the fastest accurate one.

See :mod:`ecgfounder.runtime.runners` for the paths, :mod:`ecgfounder.runtime.auto` for the
choice and :mod:`ecgfounder.runtime.export` for the exported file formats.
"""

from .auto import Bounds, Choice, auto_status, choose_path, machine_identity, speed_info
from .export import (
    EXPORT_FORMATS,
    export_onnx,
    export_torchscript,
    model_metadata,
    read_onnx_metadata,
    read_torchscript_metadata,
)
from .overlap import ordered_map, overlap_plan
from .graphs import quantize_int8
from .runners import (
    BACKENDS,
    PATHS,
    PRECISIONS,
    Runner,
    build_runner,
    candidate_paths,
    default_cache_dir,
    make_runner,
    native_bf16,
    onnxruntime_available,
    openvino_available,
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
    "PATHS",
    "PRECISIONS",
    "Runner",
    "build_runner",
    "candidate_paths",
    "default_cache_dir",
    "make_runner",
    "native_bf16",
    "onnxruntime_available",
    "openvino_available",
    "quantize_int8",
    "resolve_path",
    "Bounds",
    "Choice",
    "auto_status",
    "choose_path",
    "machine_identity",
    "speed_info",
    "ordered_map",
    "overlap_plan",
]
