"""The cache of exported ONNX graphs: the fp32 export and the int8 (QDQ) quantisation of a model,
written once per weights (and calibration) and recipe, checked before use.

A cached graph carries in its metadata the weights' fingerprint, the calibration's digest (int8)
and the recipe it was made by (:func:`graph_recipe`: this package's version, the ONNX opset, the
quantisation settings); a file that is cut, empty, of other weights or of another recipe (a new
release may export or quantise otherwise) is written again, with a warning saying which.  The
file names do not hold the recipe: an upgrade replaces its graphs in place instead of leaving the
old ones beside them, and the files made from a graph and named after it (OpenVINO's layout of an
int8 graph, or its mark that none is needed) go with it.  Two processes filling one cache write under names of their own
(:func:`ecgfounder._fileio.atomic_path`); a cache folder that cannot be written gives way to a
temporary folder of this process.

The metadata do not show a graph whose weights were damaged or replaced in place: each graph's
size and SHA-256 as written are recorded beside it (``NAME.onnx.sha256``, JSON), and a graph is
used only while its content is still that.  Hashing the published model's 123-MB graph costs
~0.2-0.3 s, so the check hashes a graph once per state of the file (its size, times and inode;
across processes through :func:`ecgfounder.models.weights.sha256_cached`, and in the process
that wrote or checked it): a graph left as it was costs a ``stat`` per runner; any write to it
(a new size or modification time) makes the next runner hash it again.  A graph of another size or content than recorded, or without a
record (written by an earlier version), is written again, with a warning saying which.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._fileio import atomic_path, write_json
from ..models.description import model_fingerprint
from ..models.weights import file_identity, sha256_cached, sha256_file
from .export import ONNX_OPSET, export_onnx, onnx_metadata_props

__all__ = ["quantize_int8", "fp32_graph", "int8_graph", "cached_graph", "graph_ok", "calibration_digest",
           "graph_recipe", "record_content", "content_changed", "INT8_SETTINGS", "FINGERPRINT", "CALIBRATION", "RECIPE"]

FINGERPRINT, CALIBRATION, RECIPE = "ecgfounder.fingerprint", "ecgfounder.calibration", "ecgfounder.recipe"
# how quantize_int8 quantises (read from here, so that the recipe a graph records is the one used)
INT8_SETTINGS = {"format": "QDQ", "activations": "QUInt8", "weights": "QInt8", "per_channel": True,
                 "ops": ["Conv"], "fp32_convs": 1, "calibrate": "MinMax"}
_fallback: list[Path] = []  # this process's own folder, when the cache folder cannot be written


def calibration_digest(calibration: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(calibration, dtype=np.float32).tobytes()).hexdigest()[:12]


def graph_recipe(precision: str = "fp32") -> str:
    """What a cached graph of ``precision`` is made by, as it is recorded in the graph (JSON): this
    package's version, the ONNX opset and, for int8, :data:`INT8_SETTINGS`."""
    from .. import __version__

    recipe: dict[str, Any] = {"ecgfounder": str(__version__), "opset": ONNX_OPSET}
    if precision == "int8":
        recipe["int8"] = INT8_SETTINGS
    return json.dumps(recipe, sort_keys=True)


_WHY = {FINGERPRINT: "belongs to other weights", CALIBRATION: "was calibrated on other windows"}


_seen: dict[str, dict[str, int]] = {}  # graphs this process wrote or checked: their identity then


def _record_of(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _state(path: Path) -> dict[str, int]:
    return file_identity(path.stat())


def record_content(path: Path) -> None:
    """Record the size and SHA-256 of the graph just written to ``path``, beside it."""
    state = _state(path)
    write_json(_record_of(path), {"size": state["size"], "sha256": sha256_file(path)})
    _seen[str(path)] = state


def content_changed(path: Path) -> str | None:
    """Why the graph in ``path`` is not the content recorded when it was written (``None``: it is)."""
    try:
        rec = json.loads(_record_of(path).read_text(encoding="utf-8"))
        size, digest = int(rec["size"]), str(rec["sha256"])
    except (OSError, ValueError, TypeError, KeyError):
        return "has no record of its content (written by an earlier version, or the record is damaged)"
    try:
        state = _state(path)
        if state["size"] != size:
            return f"is not the size it was written with ({state['size']} bytes, written {size}): it was changed or damaged"
        if _seen.get(str(path)) == state:  # written or checked by this process, untouched since
            return None
        found = sha256_cached(path, expected=digest)  # (once per state of the file, across processes)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if found != digest:
        return f"is not the content it was written with (SHA-256 {found[:12]}…, written {digest[:12]}…): it was changed or damaged"
    _seen[str(path)] = state
    return None


def _stale(path: Path, expect: dict[str, str]) -> str | None:
    """Why the graph in ``path`` is not the one ``expect`` describes, or not the content written
    (``None``: it is)."""
    props = onnx_metadata_props(path)
    if props is None:
        return "is cut, empty or not ONNX"
    for key, value in expect.items():
        if props.get(key) != value:
            if key in _WHY:
                return _WHY[key]
            try:
                made = json.loads(props[key])
                was = f"ecgfounder {made['ecgfounder']}, opset {made['opset']}"
            except (KeyError, TypeError, ValueError):
                was = "none recorded"
            return f"was made by another release or recipe ({was})"
    return content_changed(path)


def graph_ok(path: Path, expect: dict[str, str]) -> bool:
    """Whether ``path`` holds a whole ONNX graph whose ``expect`` entries (the weights' fingerprint,
    the calibration, the recipe) match, of the content recorded when it was written: a truncated,
    empty, foreign, outdated or altered file is not used."""
    return _stale(path, expect) is None


def cached_graph(path: Path, expect: dict[str, str], write: Callable[[Path], Any], what: str) -> Path:
    """``path`` when it holds the graph ``expect`` describes; else the graph written again by
    ``write(path)`` (atomically, under a temporary name of this process and thread: two processes
    filling the cache at once never share one).  A cache folder that cannot be written: the graph
    goes to a temporary folder of this process, with a warning."""
    if path.exists():
        why = _stale(path, expect)
        if why is None:
            return path
        warnings.warn(f"cached {what} graph {path} {why}; writing it again.", stacklevel=4)
        import glob

        for derived in path.parent.glob(f"{glob.escape(path.stem)}-*"):  # files made from it, named after it
            try:  # (OpenVINO's layout of an int8 graph, or its mark that there is none to make)
                derived.unlink()
            except OSError:
                pass
    try:
        write(path)
        record_content(path)
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
    recipe = graph_recipe("fp32")

    def write(to: Path) -> None:
        cpu_model = model if next(model.parameters()).device.type == "cpu" else model.cpu()
        export_onnx(cpu_model, to, extra={"fingerprint": fingerprint, "recipe": recipe})

    return cached_graph(path, {FINGERPRINT: fingerprint, RECIPE: recipe}, write, "fp32")


def int8_graph(fp32: Path, fingerprint: str, calibration: np.ndarray) -> Path:
    """The int8 graph of the cached fp32 graph ``fp32`` (of the weights ``fingerprint``) calibrated on
    ``calibration``, beside it."""
    digest = calibration_digest(calibration)
    expect = {FINGERPRINT: fingerprint, CALIBRATION: digest, RECIPE: graph_recipe("int8")}
    return cached_graph(fp32.parent / f"{fp32.stem.removesuffix('-fp32')}-int8-{digest}.onnx", expect,
                        lambda to: quantize_int8(fp32, to, calibration), "int8")


def quantize_int8(fp32_path: Path, out: Path, calibration: np.ndarray, *, batch: int = 2) -> Path:
    """Static int8 quantisation (QDQ) of an exported Net1D graph, calibrated on ``calibration``
    windows (float32 ``(n, leads, n_samples)``).  Per-channel int8 weights, uint8 activations
    (min/max calibration), only convolutions; the first convolution stays fp32.

    The windows go through the calibration graph ``batch`` at a time: the ranges are minima and
    maxima, the same whatever the split (the published model's int8 file was byte-identical at
    batch 8, 4, 2 and 1), while the activations held at once shrink with the batch (peak 1.36 GB
    of the process at batch 8 against 1.01 GB at 2, 16 windows)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

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
            how = INT8_SETTINGS
            quantize_static(
                str(src), str(tmp), _Reader(), quant_format=getattr(QuantFormat, how["format"]),
                activation_type=getattr(QuantType, how["activations"]), weight_type=getattr(QuantType, how["weights"]),
                per_channel=how["per_channel"], op_types_to_quantize=list(how["ops"]),
                nodes_to_exclude=convs[: how["fp32_convs"]],
                calibrate_method=getattr(CalibrationMethod, how["calibrate"]),
            )
            proto_q = onnx.load(str(tmp))
            del proto_q.metadata_props[:]
            proto_q.metadata_props.extend(e for e in proto.metadata_props if e.key != RECIPE)
            for key, value in (("ecgfounder.precision", "int8"), (CALIBRATION, calibration_digest(calib)),
                               (RECIPE, graph_recipe("int8"))):
                entry = proto_q.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.save(proto_q, str(tmp))
    finally:
        root.removeFilter(_quiet)
        private.cleanup()
    return out
