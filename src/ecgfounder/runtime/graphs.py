"""The cache of exported ONNX graphs: the fp32 export and the int8 (QDQ) quantisation of a model,
written once per weights (and calibration), checked before use.

A cached graph carries the weights' fingerprint (and the calibration's digest) in its metadata;
a file that is cut, empty or of other weights is written again, with a warning.  Two processes
filling one cache write under names of their own (:func:`ecgfounder._fileio.atomic_path`); a
cache folder that cannot be written gives way to a temporary folder of this process.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._fileio import atomic_path
from ..models.description import model_fingerprint
from .export import export_onnx, onnx_metadata_props

__all__ = ["quantize_int8", "fp32_graph", "cached_graph", "graph_ok", "calibration_digest", "FINGERPRINT", "CALIBRATION"]

FINGERPRINT, CALIBRATION = "ecgfounder.fingerprint", "ecgfounder.calibration"
_fallback: list[Path] = []  # this process's own folder, when the cache folder cannot be written


def calibration_digest(calibration: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(calibration, dtype=np.float32).tobytes()).hexdigest()[:12]


def graph_ok(path: Path, expect: dict[str, str]) -> bool:
    """Whether ``path`` holds a whole ONNX graph whose ``expect`` entries (the weights' fingerprint,
    the calibration) match: a truncated, empty or foreign file in the cache is not used."""
    props = onnx_metadata_props(path)
    return props is not None and all(props.get(k) == v for k, v in expect.items())


def cached_graph(path: Path, expect: dict[str, str], write: Callable[[Path], Any], what: str) -> Path:
    """``path`` when it holds the graph ``expect`` describes; else the graph written again by
    ``write(path)`` (atomically, under a temporary name of this process and thread: two processes
    filling the cache at once never share one).  A cache folder that cannot be written: the graph
    goes to a temporary folder of this process, with a warning."""
    if path.exists():
        if graph_ok(path, expect):
            return path
        warnings.warn(f"cached {what} graph {path} is unreadable or belongs to other weights; writing it again.",
                      stacklevel=4)
    try:
        write(path)
        return path
    except OSError as exc:
        if not _fallback:
            import atexit
            import shutil
            import tempfile

            _fallback.append(Path(tempfile.mkdtemp(prefix="ecgfounder-runtime-")))
            atexit.register(shutil.rmtree, _fallback[0], True)
        if path.parent == _fallback[0]:
            raise
        warnings.warn(f"cannot write the {what} graph to the cache folder {path.parent} ({exc.strerror or exc}); "
                      f"using {_fallback[0]} for this process (set ECGFOUNDER_CACHE to a writable folder).",
                      stacklevel=4)
        return cached_graph(_fallback[0] / path.name, expect, write, what)


def fp32_graph(model: Any, cache: Path, fingerprint: str | None = None) -> Path:
    fingerprint = fingerprint or model_fingerprint(model)
    path = cache / f"net1d-{fingerprint[:16]}-fp32.onnx"

    def write(to: Path) -> None:
        cpu_model = model if next(model.parameters()).device.type == "cpu" else model.cpu()
        export_onnx(cpu_model, to, extra={"fingerprint": fingerprint})

    return cached_graph(path, {FINGERPRINT: fingerprint}, write, "fp32")


def quantize_int8(fp32_path: Path, out: Path, calibration: np.ndarray, *, batch: int = 2) -> Path:
    """Static int8 quantisation (QDQ) of an exported Net1D graph, calibrated on ``calibration``
    windows (float32 ``(n, leads, n_samples)``).  Per-channel int8 weights, uint8 activations
    (min/max calibration), only convolutions; the first convolution stays fp32.

    The windows go through the calibration graph ``batch`` at a time: the ranges are minima and
    maxima, the same whatever the split (the published model's int8 file was byte-identical at
    batch 8, 4, 2 and 1), while the activations held at once shrink with the batch (peak 1.36 GB
    of the process at batch 8 against 1.01 GB at 2, 16 windows)."""
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
    import tempfile

    # The quantiser logs advice through the root logger (module-level ``logging.warning``).  Drop
    # those records below ERROR for this call with a filter; the root logger's level and handlers,
    # which belong to the application, are left as they are.
    def _quiet(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(_quiet)
    # the quantiser writes a shape-inferred copy beside the graph it is given (``<name>-inferred.onnx``,
    # the same name in every process) and removes it: it is given a link to the graph in a folder
    # of its own, so that two processes quantising the same graph never read each other's copy
    private = tempfile.TemporaryDirectory(prefix="ecgfounder-quant-")
    src = Path(private.name) / Path(fp32_path).name
    try:
        os.symlink(Path(fp32_path).resolve(), src)
    except OSError:  # pragma: no cover - no symbolic links here
        src = Path(fp32_path)
    try:
        with atomic_path(out) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(src), str(tmp), _Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["Conv"], nodes_to_exclude=convs[:1],
            )
            proto_q = onnx.load(str(tmp))
            del proto_q.metadata_props[:]
            proto_q.metadata_props.extend(proto.metadata_props)
            entry = proto_q.metadata_props.add()
            entry.key, entry.value = "ecgfounder.precision", "int8"
            entry = proto_q.metadata_props.add()
            entry.key, entry.value = CALIBRATION, calibration_digest(calib)
            onnx.save(proto_q, str(tmp))
    finally:
        root.removeFilter(_quiet)
        private.cleanup()
    return out
