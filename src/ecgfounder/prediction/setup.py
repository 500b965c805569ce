"""Checks that run before any model loads or any file is written: device, inputs, output,
inference path, optional packages, weights.  Each failure is one :class:`SetupError` line that
names the library argument, the bad value and the fix."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

from .._fileio import unwritable_reason
from ..errors import SetupError

__all__ = ["check_device", "check_inputs", "check_output", "check_inference", "check_weights", "check_quality_gate",
           "QUALITY_GATES"]

#: what prediction does with the signal-quality check (:func:`ecgfounder.quality`): ``warn`` (assess,
#: report in the ``quality`` column, predict anyway), ``skip`` (a record that is not ``good`` is not
#: predicted: reported like a failed file), ``off`` (no assessment)
QUALITY_GATES = ("warn", "skip", "off")


def check_quality_gate(quality: str) -> str:
    """``quality`` when it is one of :data:`QUALITY_GATES`, else :class:`SetupError`."""
    if quality not in QUALITY_GATES:
        raise SetupError(f"quality gate {quality!r} is not one of {', '.join(QUALITY_GATES)}.", "quality")
    return quality


def check_device(device: Any) -> str:
    """``device`` as a torch device string, or :class:`SetupError` when this machine lacks it."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SetupError(f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'mps'.",
                         "device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES?)")
            raise SetupError(f"device {device!r} is not available: {why} (torch {torch.__version__}); use "
                             "device='cpu', or install a CUDA build of torch (https://pytorch.org/get-started/locally/).",
                             "device")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise SetupError(f"device {device!r} is not available: this machine has {n} CUDA device(s), "
                             f"cuda:0 to cuda:{n - 1}.", "device")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SetupError(f"device {device!r} is not available on this machine; use device='cpu'.", "device")
    elif dev.type != "cpu":
        mod = getattr(torch, dev.type, None)
        if mod is None or not getattr(mod, "is_available", lambda: False)():
            raise SetupError(f"device {device!r} is not available on this machine; use device='cpu'.", "device")
    return str(dev)


def check_inputs(paths: Sequence[Any]) -> None:
    """Every path given must exist (a WFDB record may be named without ``.hea``)."""
    if not paths:
        raise SetupError("no inputs given; pass ECG files or folders holding them.", "inputs")
    missing = [str(p) for p in paths if not (os.path.exists(p) or os.path.exists(f"{p}.hea"))]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise SetupError(f"input {', '.join(missing[:3])}{more}: no such file or folder; check the path.", "inputs")


def check_output(path: Any, *, argument: str = "output", suffixes: Sequence[str] | None = None) -> None:
    """``path`` can be written: known suffix (and its writer's package installed), not a folder,
    and the nearest existing folder above it is writable."""
    p = Path(path)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise SetupError(f"{argument} {p}: unknown file type {p.suffix or '(none)'!r}; use one of "
                         f"{', '.join(suffixes)}.", argument)
    if suffixes is None:
        from .tables import TableWriter

        try:
            TableWriter.check_path(p)
        except ValueError as exc:
            raise SetupError(str(exc), argument) from None
    if p.is_dir():
        raise SetupError(f"{argument} {p} is a folder; give a file name.", argument)
    _, reason = unwritable_reason(p.parent)
    if reason:
        raise SetupError(f"{argument} {p}: {reason}; choose another folder.", argument)


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def check_inference(precision: str, backend: str | None, device: str) -> tuple[str, str]:
    """The ``(precision, backend)`` to run (``auto`` kept: it is measured when the model runs);
    :class:`SetupError` for impossible pairs or a missing optional package."""
    from ..runtime import candidate_paths

    if backend is None:
        backend = "auto" if precision in ("int8", "auto") else "torch"
    if (precision == "int8" and backend in ("onnxruntime", "auto")) or backend == "onnxruntime":
        for mod in ("onnxruntime", "onnx"):
            if _missing(mod):
                raise SetupError(f"precision={precision!r} with backend={backend!r} needs the optional package "
                                 f"{mod!r}; install it with pip install 'ecgfounder[onnx]', or use precision='fp32'.",
                                 "precision")
    try:
        candidate_paths(precision, backend, device)
        return precision, backend
    except SetupError:  # (names the argument at fault itself: precision, backend or device)
        raise
    except ValueError as exc:
        raise SetupError(" ".join(str(exc).split()), "backend") from None


def check_weights(source: Any) -> None:
    """``source`` is an existing checkpoint file, a known weights name or a Hub reference
    (``hf://owner/name[@revision]``, checked for its form here, fetched when the model loads)."""
    from ..models.hubref import HF_SCHEME, parse_hf_reference
    from ..models.weights import KNOWN_WEIGHTS, resolve_known

    if str(source).startswith(HF_SCHEME):
        try:
            parse_hf_reference(str(source))
        except ValueError as exc:
            raise SetupError(str(exc), "model") from None
        return
    if os.path.exists(str(source)) or resolve_known(str(source)) is not None:
        return
    p = Path(str(source))
    if p.suffix or os.sep in str(source):
        raise SetupError(f"checkpoint file {source} not found; check the path.", "model")
    raise SetupError(f"unknown weights {str(source)!r}: not a file, and not a known name; choose "
                     f"{' or '.join(sorted(KNOWN_WEIGHTS, key=len, reverse=True))}, hf://owner/name for a model shared "
                     "on the Hub, or load_model(FILE), or model=FILE (CLI: --checkpoint FILE) for a local checkpoint.",
                     "model")
