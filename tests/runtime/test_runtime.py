"""Inference paths and exported files against the eager fp32 model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgfounder.runtime.runners import native_bf16
from ecgfounder.runtime import (
    export_onnx,
    export_torchscript,
    make_runner,
    read_onnx_metadata,
    read_torchscript_metadata,
    resolve_path,
)


@pytest.fixture(scope="module")
def windows(golden):
    return golden["preprocessed_12_sub"]


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_resolve_path_rules():
    assert resolve_path("fp32", "torch", "cpu") == ("fp32", "torch")
    assert resolve_path("int8", "auto", "cpu") == ("int8", "onnxruntime")  # the first candidate; auto measures
    assert resolve_path("auto", "auto", "cpu") == ("fp32", "torch")
    assert resolve_path("auto", "onnxruntime", "cpu") == ("fp32", "onnxruntime")
    with pytest.raises(ValueError, match="onnxruntime or openvino backend"):
        resolve_path("int8", "torch", "cpu")
    with pytest.raises(ValueError, match="torch or openvino backend"):
        resolve_path("bf16", "onnxruntime", "cpu")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_path("fp16", "torch", "cpu")


def test_fp32_paths_agree(tiny, windows, tmp_path):
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(windows)
    with torch.inference_mode():
        logits = tiny(torch.from_numpy(windows))
    np.testing.assert_allclose(ref_s, torch.sigmoid(logits).numpy(), atol=1e-6)
    run = make_runner(tiny, "fp32", "onnxruntime", cache_dir=tmp_path)
    s, f = run(windows)
    assert s.dtype == f.dtype == np.float32 and s.shape == (len(windows), 150)
    assert np.abs(s - ref_s).max() <= 1e-5 and np.abs(f - ref_f).max() <= 1e-5  # (measured: 6e-8 on these windows)
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # cached: a second runner exports nothing new
    make_runner(tiny, "fp32", "onnxruntime", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 1


def test_int8_and_bf16_paths_run_close(tiny, windows, tmp_path):
    import logging

    root = logging.getLogger()
    level, filters, handlers = root.level, list(root.filters), list(root.handlers)
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(windows)
    s, f = make_runner(tiny, "int8", "onnxruntime", calibration=windows, cache_dir=tmp_path)(windows)
    # quantising leaves the application's logging as it was (issue 9: it changed the root level)
    assert (root.level, list(root.filters), list(root.handlers)) == (level, filters, handlers)
    assert np.abs(s - ref_s).max() < 0.05 and _cos(f, ref_f).min() > 0.99
    with pytest.warns(UserWarning) if not torch.ops.mkldnn._is_mkldnn_bf16_supported() else _nullcontext():
        run = make_runner(tiny, "bf16", "torch")
    s, f = run(windows[:2])
    assert np.abs(s - ref_s[:2]).max() < 0.05
    with pytest.raises(ValueError, match="calibration"):
        make_runner(tiny, "int8", "onnxruntime", calibration=windows[:, :1], cache_dir=tmp_path)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_onnx_export_parity_and_metadata(tiny, windows, tmp_path):
    import onnxruntime as ort

    path = export_onnx(tiny, tmp_path / "m.onnx")
    meta = read_onnx_metadata(path)
    assert meta["labels"] == list(tiny.labels) and len(meta["labels"]) == 150
    assert meta["contract"]["fs"] == 500.0 and meta["contract"]["mode"] == "published"
    assert meta["contract"]["leads"][:3] == ["I", "II", "III"] and meta["task_meta"]["task"] == "multilabel"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, feats = sess.run(None, {"x": windows[:3]})
    with torch.inference_mode():
        f = tiny.forward_features(torch.from_numpy(windows[:3]))
        lg = tiny.forward_head(f)
    np.testing.assert_allclose(logits, lg.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(feats, f.numpy(), rtol=0, atol=1e-5)


def test_torchscript_export_parity_and_metadata(tiny, windows, tmp_path, monkeypatch):
    from ecgfounder.errors import CheckpointError

    path = export_torchscript(tiny, tmp_path / "m.pt")
    load = torch.jit.load
    with monkeypatch.context() as m:  # the metadata is read without loading the program
        m.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load called to read the metadata"))
        assert read_torchscript_metadata(path)["labels"] == list(tiny.labels)
        (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:-100])
        with pytest.raises(CheckpointError, match="cut.pt: not a TorchScript archive"):
            read_torchscript_metadata(tmp_path / "cut.pt")
    loaded = load(str(path))
    with torch.inference_mode():
        lg, f = loaded(torch.from_numpy(windows[:5]))  # another batch size than traced
        np.testing.assert_allclose(lg.numpy(), tiny(torch.from_numpy(windows[:5])).numpy(), atol=1e-4)
        assert f.shape == (5, 32)


def test_export_cli(tiny, tmp_path, capsys):
    import argparse

    from ecgfounder.cli import export as cli_export
    from ecgfounder.models.loading import save_model

    ckpt = save_model(tiny, tmp_path / "tiny.safetensors")
    parser = argparse.ArgumentParser()
    cli_export.add_parser(parser.add_subparsers())
    for name in ("t.onnx", "t.pt"):
        args = parser.parse_args(["export", "--checkpoint", str(ckpt), "-o", str(tmp_path / name)])
        assert args.func(args) == 0 and (tmp_path / name).stat().st_size > 0
    args = parser.parse_args(["export", "--checkpoint", str(ckpt), "-o", str(tmp_path / "q.pt"), "--int8"])
    with pytest.raises(ValueError, match="ONNX"):
        args.func(args)


@pytest.mark.slow
def test_released_architecture_int8_agreement_on_real_records(ckpt12, golden, data_dir, tmp_path):
    """The bar: max |Δprob| ≤ 0.01 and embedding cosine ≥ 0.999 against fp32 on the real records
    (synthetic weights), calibrated on 16 of them."""
    from ecgfounder.models.loading import load_model
    from ecgfounder.io import find_records
    from ecgfounder.prediction.records import calibration_windows

    model = load_model(ckpt12)
    x = calibration_windows(find_records([data_dir / "cinc2021"]), model.contract, 50)
    ref_s, ref_f = make_runner(model, "fp32", "torch")(x)
    assert np.abs(ref_f - golden["features_12"]).max() <= 1e-4
    s32, f32 = make_runner(model, "fp32", "onnxruntime", cache_dir=tmp_path)(x)
    assert np.abs(s32 - ref_s).max() <= 1e-4
    s, f = make_runner(model, "int8", "onnxruntime", calibration=x[:16], cache_dir=tmp_path)(x)
    assert np.abs(s - ref_s).max() <= 0.01
    assert _cos(f, ref_f).min() >= 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it there)")
def test_cuda_runner_uploads_through_pinned_buffers_without_mixing_batches(tiny, windows):
    """Batches growing, shrinking and from two threads at once give the CPU's answers: the pinned
    staging buffer is per thread, and each upload completes before the buffer is written again."""
    import copy
    from concurrent.futures import ThreadPoolExecutor

    cpu = make_runner(tiny, "fp32", "torch")
    gpu = make_runner(copy.deepcopy(tiny), "fp32", "torch", "cuda")
    batches = [windows[:n] for n in (3, len(windows), 1, 5)] + [windows[::-1].copy()]
    for x in batches:
        (s0, f0), (s1, f1) = cpu(x), gpu(x)
        assert np.abs(s1 - s0).max() <= 1e-4 and np.abs(f1 - f0).max() <= 1e-4
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(gpu, batches * 4))
    for x, (s1, _) in zip(batches * 4, got):
        assert np.abs(s1 - cpu(x)[0]).max() <= 1e-4
