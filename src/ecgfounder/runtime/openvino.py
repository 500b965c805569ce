"""OpenVINO back-end: the package's exported ONNX graphs compiled by OpenVINO's CPU plugin.

Precisions (``openvino`` extra: ``pip install ecgfounder[openvino]``):

* ``fp32`` — the fp32 ONNX export with ``INFERENCE_PRECISION_HINT=f32`` (set explicitly: on CPUs
  with AVX512-BF16/AMX the plugin would otherwise silently run in bf16);
* ``bf16`` — the same graph with the bf16 inference-precision hint (native on AVX512-BF16/AMX);
* ``int8`` — the QDQ graph of :func:`ecgfounder.runtime.graphs.quantize_int8` (per-channel int8
  weights, activations calibrated on real windows, first convolution kept fp32), which OpenVINO
  runs with its int8 (VNNI/AMX) kernels; the remaining operations in bf16 where it is native.
  OpenVINO compiles a copy of it with the pads of the published model's SAME padding moved past
  the quantisation (:func:`openvino_graph`: the same values, 1.1-1.2x faster at batch 32 on an
  AMD EPYC).

Layout.  One ECG, or a batch that does not split evenly, runs as one inference request over all
``threads`` (the ``LATENCY`` hint: every operation split across the threads, which meet at a
barrier after each).  A batch that splits evenly into ``streams`` parts of at least
:data:`MIN_PART` ECGs (:func:`stream_count`) runs as that many requests at once on as many
**streams** (the ``THROUGHPUT`` hint; ``threads // streams`` threads each), so the threads meet once
per batch instead of once per operation.  Measured on the 2-core dev VM with the int8 graph at
batch 32 (ad-hoc interleaved loops; figures in ``benchmarks/README.md``): the same outputs to the
bit, model-only 124-144 against 120-142 ECG/s (streams ahead in 8 rounds of 8, +1.4 to +9 %), and
a busy thread at idle priority beside the model cost the latency layout 20-25 % of its throughput
for 0.15-0.25 of a core and the streams layout nothing measurable (it took only the time the
streams left idle): with one request, a thread that loses its core holds up the other at every
barrier.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["openvino_available", "openvino_session", "openvino_graph", "write_openvino_int8", "stream_count", "OV_HINTS",
           "MIN_PART"]

OV_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}

#: the fewest ECGs per stream: smaller parts leave each stream too little work per operation
MIN_PART = 4


def stream_count(batch: int, threads: int) -> int:
    """Streams a batch of ``batch`` ECGs runs on with ``threads`` threads: the most (at most one
    per thread) that split it into equal parts of at least :data:`MIN_PART`; 1 means one request
    over all threads (the latency layout)."""
    for s in range(min(int(threads), batch // MIN_PART), 1, -1):
        if batch % s == 0:
            return s
    return 1


def _pads_after_dequantize(graph: Any) -> int:
    """Move every zero ``Pad`` that feeds a quantise/dequantise pair and then a convolution to
    after the pair (``Pad -> Q -> DQ -> Conv`` becomes ``Q -> DQ -> Pad -> Conv``) in the ONNX
    ``graph``, in place; returns how many moved.

    The same values: a padded zero quantises to the zero point and dequantises to exactly 0, and
    every other sample is quantised alone either way.  OpenVINO then folds the pad into the
    convolution's own padding and keeps the int8 tensor in its blocked layout, where a pad between
    the quantisation and the convolution ran as a reference kernel in plain layout with a layout
    reorder on either side (measured, int8 graph, batch 16 on one thread of an AMD EPYC with
    AVX512-VNNI/BF16: 85 -> 100 ECG/s; the 17 pads of the published model's SAME padding before its
    grouped convolutions).  Not done for ONNX Runtime, whose QDQ fusions want the pad where it is
    (62 against 48 ECG/s the other way round, same machine)."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only(name: str, op: str) -> Any:
        users = consumers.get(name, [])
        if name in outputs or len(users) != 1 or users[0].op_type != op:
            return None
        return users[0]

    moves = []
    for pad in graph.node:
        if pad.op_type != "Pad" or (len(pad.input) > 2 and pad.input[2]):  # an explicit pad value: leave it
            continue
        if any(a.name == "mode" and a.s not in (b"", b"constant") for a in pad.attribute):
            continue
        q = only(pad.output[0], "QuantizeLinear")
        dq = q is not None and only(q.output[0], "DequantizeLinear")
        conv = dq and only(dq.output[0], "Conv")
        if conv and conv.input[0] == dq.output[0]:
            moves.append((pad, q, dq, conv))
    for pad, q, dq, conv in moves:
        q.input[0] = pad.input[0]
        pad.input[0] = dq.output[0]
        conv.input[0] = pad.output[0]
        graph.node.remove(pad)  # (its other inputs come from before q: after dq is still in order)
        graph.node.insert(list(graph.node).index(dq) + 1, pad)
    return len(moves)


def openvino_graph(path: str | Path, precision: str) -> Path:
    """The ONNX file OpenVINO compiles for the graph ``path`` of ``precision``: for the quantised
    (QDQ) int8 graph, a copy beside it (``-ov.onnx``, written once by :func:`write_openvino_int8`)
    with its pads moved past the quantisation; any other graph as it is.  An int8 graph with no pad
    to move is looked at once: an empty ``-ov.none`` beside it says so to later runs.  A copy that is
    cut, or whose metadata (the weights' fingerprint, the calibration) is not its graph's, is
    written again."""
    path = Path(path)
    if precision != "int8":
        return path
    out, nothing = path.with_name(f"{path.stem}-ov.onnx"), path.with_name(f"{path.stem}-ov.none")
    if out.exists():
        from .export import onnx_metadata_props

        props = onnx_metadata_props(out)
        if props is not None and props == onnx_metadata_props(path):  # (the copy keeps its graph's metadata)
            return out
        import warnings

        warnings.warn(f"cached int8 graph {out} is unreadable or belongs to other weights; writing it again.",
                      stacklevel=3)
    if nothing.exists():
        return path
    try:
        if write_openvino_int8(path, out):
            return out
        nothing.touch()
    except OSError:  # a read-only cache: compile the graph as it is
        pass
    return path


def write_openvino_int8(src: str | Path, dst: str | Path) -> int:
    """Write the QDQ int8 graph ``src`` to ``dst`` (atomically) in the layout OpenVINO runs
    fastest, its pads moved past the quantisation (:func:`_pads_after_dequantize`: the same values,
    metadata kept); returns how many moved, and writes nothing when none did."""
    import onnx

    from .._fileio import atomic_path

    proto = onnx.load(str(src))
    moved = _pads_after_dequantize(proto.graph)
    if moved:
        with atomic_path(Path(dst)) as tmp:
            onnx.save(proto, str(tmp))
    return moved


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_session(path: str | Path, precision: str, threads: int, native_bf16: bool = False,
                     keep_compiled: bool = True) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Compile the ONNX file ``path`` on the CPU; returns ``f(x) -> (logits, features)`` for float32
    ``x`` ``(batch, leads, n_samples)``.  ``precision`` selects the inference-precision hint; int8
    graphs run their non-quantised operations in bf16 where ``native_bf16`` (measured: 1.3x at batch
    32, agreement unchanged: max |Δprob| 5.7e-3, cosine 0.99925 on the 50 real records).  An int8
    graph is compiled as :func:`openvino_graph` gives it.

    A batch size used twice gets a static-shape compilation (measured 1.15-1.3x faster than the
    dynamic one at batch 32; at most two such), on :func:`stream_count` streams; other sizes share
    one dynamic compilation (one request over all threads).

    Compiled models are kept by OpenVINO in ``openvino/`` beside ``path`` (its ``CACHE_DIR``, keyed
    by the graph, shapes, configuration and OpenVINO version): a new process loads them instead of
    compiling again (int8 graph, 2 cores: 0.34 + 0.64 s against 1.41 + 1.94 s for the latency and
    streams layouts; ~60 MB per layout of the published model's size); ``keep_compiled=False``
    (``auto`` timing the paths it will not keep) leaves nothing there.  A folder that cannot be
    written just compiles every time."""
    import openvino as ov

    if precision not in OV_HINTS:
        raise ValueError(f"unknown OpenVINO precision {precision!r}; choose one of {', '.join(OV_HINTS)}.")
    path = openvino_graph(path, precision)
    core = ov.Core()
    if keep_compiled:
        blobs = Path(path).parent / "openvino"
        try:
            blobs.mkdir(exist_ok=True)
            if os.access(blobs, os.W_OK):
                core.set_property({"CACHE_DIR": str(blobs)})
        except OSError:  # a read-only cache: compile in every process
            pass
    hint = "bf16" if precision == "int8" and native_bf16 else OV_HINTS[precision]
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": int(threads),
                              "PERFORMANCE_HINT": "LATENCY"}
    compiled: dict[Any, list[Any]] = {}
    seen: dict[tuple[int, ...], int] = {}

    def requests_for(shape: tuple[int, ...]) -> list[Any]:
        """The inference requests of a batch of ``shape``: one per stream, each for an equal part."""
        seen[shape] = seen.get(shape, 0) + 1
        static = shape in compiled or (seen[shape] >= 2 and len(compiled) < 3)  # at most 2 static + dynamic
        key = shape if static else "dynamic"
        if key not in compiled:
            model = core.read_model(str(path))
            streams = stream_count(shape[0], threads) if static else 1
            layout = dict(config)
            if key != "dynamic":
                model.reshape({model.input(0).get_any_name(): [shape[0] // streams, *shape[1:]]})
            if streams > 1:
                layout.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
            cm = core.compile_model(model, "CPU", layout)
            compiled[key] = [cm.create_infer_request() for _ in range(streams)]
        return compiled[key]

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        requests = requests_for(tuple(x.shape))
        if len(requests) == 1:
            requests[0].infer({0: x})
        else:
            for request, part in zip(requests, np.split(x, len(requests))):
                request.start_async({0: part})
            for request in requests:
                request.wait()
        outs = [(r.get_output_tensor(0).data, r.get_output_tensor(1).data) for r in requests]
        return tuple(np.concatenate([o[i] for o in outs]).astype(np.float32, copy=False)  # type: ignore[return-value]
                     for i in (0, 1))

    return run
