"""The graph OpenVINO compiles for int8: the QDQ graph with its pads moved past the quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder.runtime import export_onnx, openvino_available
from ecgfounder.runtime.openvino import _pads_after_dequantize, openvino_graph
from ecgfounder.runtime.graphs import quantize_int8


@pytest.fixture(scope="module")
def int8_graph(tiny, golden, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ovgraph")
    fp32 = export_onnx(tiny, folder / "tiny-fp32.onnx")
    return quantize_int8(fp32, folder / "tiny-int8-calib.onnx", golden["preprocessed_12_sub"][:4])


def _plain_session(path_or_bytes):
    """ONNX Runtime with its graph rewrites off: every node runs as written (Q, DQ, Pad, Conv)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def _producers(graph):
    return {o: n for n in graph.node for o in n.output}


def _padded_quantisations(graph):
    """The QuantizeLinear nodes of ``graph`` whose input comes straight from a Pad."""
    producers = _producers(graph)
    return [n for n in graph.node if n.op_type == "QuantizeLinear" and producers.get(n.input[0]) is not None
            and producers[n.input[0]].op_type == "Pad"]


def test_pads_move_past_the_quantisation_and_give_the_same_values(int8_graph, golden):
    import onnx

    proto = onnx.load(str(int8_graph))
    before = _producers(proto.graph)
    padded_q = _padded_quantisations(proto.graph)
    assert padded_q  # the SAME padding of the grouped convolutions that cannot pad evenly themselves
    pads = {before[q.input[0]].name for q in padded_q}
    moved = _pads_after_dequantize(proto.graph)
    assert moved == len(padded_q)
    assert not _padded_quantisations(proto.graph)  # no pad before a quantisation any more ...
    after = _producers(proto.graph)
    for node in proto.graph.node:
        if node.name in pads:  # ... each sits between its dequantisation and its convolution
            assert after[node.input[0]].op_type == "DequantizeLinear"
            assert [u.op_type for u in proto.graph.node if node.output[0] in u.input] == ["Conv"]
    onnx.checker.check_model(proto)  # still a valid graph, nodes in topological order
    x = golden["preprocessed_12_sub"][:3]
    want = _plain_session(str(int8_graph)).run(None, {"x": x})
    got = _plain_session(proto.SerializeToString()).run(None, {"x": x})
    for a, b in zip(want, got):
        assert a.shape == b.shape and np.array_equal(a, b)  # a padded zero dequantises to exactly 0
    assert _pads_after_dequantize(proto.graph) == 0  # nothing left to move


def test_openvino_graph_written_once_for_int8_only(int8_graph):
    fp32 = int8_graph.with_name("tiny-fp32.onnx")
    assert openvino_graph(fp32, "fp32") == fp32 and openvino_graph(int8_graph, "bf16") == int8_graph
    out = openvino_graph(int8_graph, "int8")
    assert out != int8_graph and out.name.endswith("-ov.onnx") and out.exists()
    stamp = out.stat().st_mtime_ns
    assert openvino_graph(int8_graph, "int8") == out and out.stat().st_mtime_ns == stamp
    assert not list(out.parent.glob(".*.partial"))


def test_a_cut_or_foreign_openvino_copy_is_written_again(int8_graph, tmp_path):
    """The ``-ov.onnx`` copy is checked against its graph's metadata (fingerprint, calibration)
    where it is made, not by each caller: one cut, emptied or made from other weights is rewritten."""
    import shutil

    import onnx

    src = tmp_path / "tiny-int8-calib.onnx"
    shutil.copy(int8_graph, src)
    good = openvino_graph(src, "int8").read_bytes()
    foreign = onnx.load_from_string(good)
    entry = foreign.metadata_props.add()
    entry.key, entry.value = "ecgfounder.fingerprint", "another model"
    for bad in (good[: len(good) // 2], b"", foreign.SerializeToString()):
        src.with_name("tiny-int8-calib-ov.onnx").write_bytes(bad)
        with pytest.warns(UserWarning, match="unreadable or belongs to other weights; writing it again"):
            out = openvino_graph(src, "int8")
        assert out.read_bytes() == good


def test_int8_graph_without_pads_to_move_is_looked_at_once(int8_graph, tmp_path, monkeypatch):
    import shutil

    from ecgfounder.runtime import openvino as ov

    plain = tmp_path / "plain-int8.onnx"  # the moved graph: nothing left to move in it
    shutil.copy(openvino_graph(int8_graph, "int8"), plain)
    assert openvino_graph(plain, "int8") == plain and (tmp_path / "plain-int8-ov.none").exists()
    assert not (tmp_path / "plain-int8-ov.onnx").exists()
    monkeypatch.setattr(ov, "write_openvino_int8", lambda *a: pytest.fail("graph loaded again"))
    assert openvino_graph(plain, "int8") == plain


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed (pip install ecgfounder[openvino])")
def test_openvino_int8_runs_the_moved_graph_close_to_fp32(tiny, golden, tmp_path):
    from ecgfounder.runtime import make_runner
    from ecgfounder.runtime.auto import agreement

    x = golden["preprocessed_12_sub"]
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(x)
    s, f = make_runner(tiny, "int8", "openvino", calibration=x[:4], cache_dir=tmp_path)(x)
    assert list(tmp_path.glob("*-int8-*-ov.onnx"))
    dprob, cosine = agreement(s, f, ref_s, ref_f)
    assert dprob < 0.05 and cosine > 0.99


def test_export_int8_laid_out_for_openvino(tiny, data_dir, tmp_path):
    """``export --int8 --runtime openvino`` writes the graph OpenVINO compiles (pads after the
    quantisation), with the package's metadata; the default layout is ONNX Runtime's."""
    import argparse

    import onnx

    from ecgfounder.cli import export as cli_export
    from ecgfounder.models.loading import save_model

    ckpt = save_model(tiny, tmp_path / "tiny.safetensors")
    records = sorted((data_dir / "cinc2021").glob("*.hea"))[:4]
    parser = argparse.ArgumentParser()
    cli_export.add_parser(parser.add_subparsers())

    def export(name, *extra):
        args = parser.parse_args(["export", "--checkpoint", str(ckpt), "-o", str(tmp_path / name), "--int8",
                                  "--calibrate", *map(str, records), *extra])
        assert args.func(args) == 0
        proto = onnx.load(str(tmp_path / name))
        return proto, len(_padded_quantisations(proto.graph))

    ort_graph, ort_padded = export("ort.onnx")
    ov_graph, ov_padded = export("ov.onnx", "--runtime", "openvino")
    assert ort_padded > 0 and ov_padded == 0
    assert {p.key for p in ov_graph.metadata_props} == {p.key for p in ort_graph.metadata_props}
    assert any(p.key == "ecgfounder.labels" for p in ov_graph.metadata_props)
    x = np.zeros((1, 12, 5000), np.float32)
    x[0, :, ::50] = 1.0
    for a, b in zip(_plain_session(str(tmp_path / "ort.onnx")).run(None, {"x": x}),
                    _plain_session(str(tmp_path / "ov.onnx")).run(None, {"x": x})):
        assert np.array_equal(a, b)  # calibrated on the same records: the same graph, laid out differently
    args = parser.parse_args(["export", "--checkpoint", str(ckpt), "-o", str(tmp_path / "f.onnx"),
                              "--runtime", "openvino"])
    with pytest.raises(ValueError, match="--int8"):
        args.func(args)
