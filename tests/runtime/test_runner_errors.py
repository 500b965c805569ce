"""A wrong inference choice or bad windows, as the library sees them: an ECGFounderError that is
still a ValueError, worded in the library's arguments (``backend=``), not the command line's flags."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder.errors import ECGFounderError, SetupError
from ecgfounder.runtime import build_runner, candidate_paths, make_runner
from ecgfounder.signal.errors import SignalError


def _library_worded(exc: BaseException, *names: str) -> str:
    msg = str(exc)
    assert isinstance(exc, ECGFounderError) and isinstance(exc, ValueError)
    assert "--" not in msg, msg  # a Python or HTTP user cannot pass a flag
    for name in names:
        assert f"{name}=" in msg, (name, msg)
    return msg


@pytest.mark.parametrize("precision, backend, device, argument, names, fix", [
    ("int8", "torch", "cpu", "backend", ("precision", "backend"), "backend='onnxruntime'"),
    ("bf16", "onnxruntime", "cpu", "backend", ("precision", "backend"), "backend='torch'"),
    ("fp32", "onnxruntime", "cuda", "backend", ("backend", "device"), "device='cpu'"),
    ("int8", "torch", "cuda", "backend", ("precision", "backend"), "precision='fp32'"),  # no int8 path on a GPU
    ("fp16", "torch", "cpu", "precision", ("precision",), "fp32, bf16, int8, auto"),
    ("fp32", "tensorrt", "cpu", "backend", ("backend",), "torch, onnxruntime, openvino, auto"),
])
def test_impossible_paths_are_setup_errors_naming_the_arguments(precision, backend, device, argument, names, fix):
    with pytest.raises(SetupError) as err:
        candidate_paths(precision, backend, device)
    msg = _library_worded(err.value, *names)
    bad = precision if argument == "precision" else backend
    assert err.value.argument == argument and fix in msg and repr(bad) in msg


def test_missing_backend_package_and_no_path_left(monkeypatch):
    import ecgfounder.runtime.runners as runners

    monkeypatch.setattr(runners, "_installed", lambda backend: backend == "torch")
    with pytest.raises(SetupError) as err:
        candidate_paths("fp32", "onnxruntime", "cpu")
    assert "ecgfounder[onnx]" in _library_worded(err.value, "backend") and err.value.argument == "backend"
    with pytest.raises(SetupError) as err:  # int8 needs a graph back-end, none installed
        candidate_paths("int8", "auto", "cpu")
    assert "ecgfounder[onnx]" in _library_worded(err.value, "precision", "backend", "device")
    assert "precision='fp32'" in str(err.value) and err.value.argument == "precision"


@pytest.mark.parametrize("precision, backend, words", [
    ("auto", "onnxruntime", "backend='onnxruntime' runs on the CPU only; got device='cuda'"),  # the CLI's default
    ("int8", "auto", "int8 runs on the CPU only; use device='cpu', or precision='fp32'"),
])
def test_no_path_on_a_gpu_says_why(precision, backend, words):
    with pytest.raises(SetupError) as err:
        candidate_paths(precision, backend, "cuda")
    assert words in _library_worded(err.value, "device")


def test_bf16_not_native_says_so(monkeypatch):
    import ecgfounder.runtime.runners as runners

    monkeypatch.setattr(runners, "native_bf16", lambda device="cpu": False)
    with pytest.raises(SetupError) as err:
        candidate_paths("bf16", "auto", "cpu")
    assert "bf16 is not native there" in _library_worded(err.value, "precision", "backend")
    assert candidate_paths("bf16", "torch", "cpu") == [("bf16", "torch")]  # asked for explicitly: runs emulated


def test_make_and_build_runner_refuse_bad_arguments(tiny):
    cases = [
        (lambda: make_runner(tiny, "fp32", "torch", "gpu0"), "device", ("device",)),
        (lambda: make_runner(tiny, "fp32", "torch", batch=0), "batch", ("batch",)),
        (lambda: make_runner(tiny, "fp32", "torch", threads=1.5), "threads", ("threads",)),
        (lambda: build_runner(tiny, "auto", "torch"), "precision", ("precision", "backend")),
        (lambda: build_runner(tiny, "int8", "onnxruntime", calibration=np.zeros((0, 12, 5000), np.float32)),
         "calibration", ()),
        (lambda: make_runner(tiny, "auto", "auto", calibration=np.zeros((0, 12, 5000), np.float32)), "calibration", ()),
    ]
    for call, argument, names in cases:
        with pytest.raises(SetupError) as err:
            call()
        assert err.value.argument == argument
        _library_worded(err.value, *names)


def test_bad_windows_are_signal_errors(tiny):
    run = make_runner(tiny, "fp32", "torch")
    with pytest.raises(SignalError, match=r"windows must be float32 \(n, 12, n_samples\); got shape \(2, 11, 100\)"):
        run(np.zeros((2, 11, 100), np.float32))
    x = np.zeros((1, 12, 5000), np.float32)
    x[0, 0, 0] = np.inf
    with pytest.raises(SignalError, match="windows hold 1 NaN or infinite") as err:
        run(x)
    assert isinstance(err.value, ValueError)  # one record's failure to the prediction loop, as before
