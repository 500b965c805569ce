"""Export a :class:`~ecgfounder.models.net1d.Net1D` to ONNX or TorchScript, metadata included.

Both formats compute ``x (batch, leads, n_samples) float32 -> (logits (batch, n_out),
features (batch, num_features))``; the batch dimension is dynamic.  The files carry what a user
of the bare file needs: labels, preprocessing contract, task, architecture and source.

* ONNX: ``metadata_props`` entries ``ecgfounder.labels``, ``ecgfounder.contract``,
  ``ecgfounder.task_meta``, ``ecgfounder.config``, ``ecgfounder.source`` (JSON strings) and
  ``ecgfounder.format_version``; read them back with :func:`read_onnx_metadata`.
* TorchScript: the same JSON in the archive's ``extra/ecgfounder.json`` (``_extra_files``); read
  back with :func:`read_torchscript_metadata`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._fileio import atomic_path
from ..errors import CheckpointError
from ..models.description import model_fingerprint, model_metadata

__all__ = [
    "ForwardBoth",
    "export_onnx",
    "export_torchscript",
    "read_onnx_metadata",
    "onnx_metadata_props",
    "read_torchscript_metadata",
    "model_metadata",
    "model_fingerprint",
    "EXPORT_FORMATS",
    "ONNX_OPSET",
]

EXPORT_FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
_PREFIX = "ecgfounder."
_TS_NAME = "ecgfounder.json"


class ForwardBoth(nn.Module):
    """Wraps a Net1D so one call returns ``(logits, features)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.forward_features(x)
        return self.model.forward_head(feats), feats


def _example(model: nn.Module, batch: int = 2) -> torch.Tensor:
    contract = model.description.contract
    n = int(contract.n_samples) if contract is not None else 5000
    dev = next(model.parameters()).device
    return torch.zeros(batch, model.config.in_channels, n, device=dev)


def export_onnx(model: nn.Module, path: str | os.PathLike, *, opset: int = ONNX_OPSET,
                extra: dict[str, str] | None = None) -> Path:
    """Write ``model`` as an ONNX file (fp32, dynamic batch) with its metadata; returns the path.
    ``extra``: more ``ecgfounder.*`` entries (plain strings; the runtime's cache stores the
    weights' fingerprint so that a cached graph is checked before it is used).

    Written atomically (temporary file, then rename)."""
    import onnx

    p = Path(path)
    was_training = model.training
    model.eval()
    wrapper = ForwardBoth(model).cpu() if next(model.parameters()).device.type != "cpu" else ForwardBoth(model)
    x = _example(wrapper.model).cpu()
    try:
        with atomic_path(p) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (x,), str(tmp), input_names=["x"], output_names=["logits", "features"],
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
                opset_version=opset, dynamo=False,
            )
            proto = onnx.load(str(tmp))
            meta = model_metadata(model)
            del proto.metadata_props[:]
            for k, v in {**meta, **(extra or {})}.items():
                entry = proto.metadata_props.add()
                entry.key = _PREFIX + k
                entry.value = json.dumps(v) if not isinstance(v, str) else v
            proto.producer_name = "ecgfounder"
            proto.doc_string = (
                "ECGFounder Net1D. Input x: (batch, leads, n_samples) float32, preprocessed as "
                "ecgfounder.contract says. Outputs: logits (batch, n_out), features (batch, num_features)."
            )
            onnx.save(proto, str(tmp))
    finally:
        model.train(was_training)
    return p


def _varint(buf: Any, i: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 64:
        b = buf[i]  # IndexError past the end: a cut file
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _fields(buf: Any, start: int, end: int) -> Any:
    """``(field number, start, end)`` of the length-delimited fields of the protobuf message in
    ``buf[start:end]`` (other wire types skipped); ``ValueError``/``IndexError`` when it is cut."""
    i = start
    while i < end:
        tag, i = _varint(buf, i)
        kind = tag & 7
        if kind == 0:
            _, i = _varint(buf, i)
        elif kind in (1, 5):
            i += 8 if kind == 1 else 4
        elif kind == 2:
            n, i = _varint(buf, i)
            yield tag >> 3, i, i + n
            i += n
        else:
            raise ValueError(f"wire type {kind}")
        if i > end:
            raise ValueError("field beyond the end")


def onnx_metadata_props(path: str | os.PathLike) -> dict[str, str] | None:
    """The ``metadata_props`` of the ONNX file ``path`` as strings (``None``: not a whole model with
    a graph: empty, cut, not protobuf), read by walking the model's top-level fields and stepping
    over the graph: ``onnx.load`` parses the graph too, 0.15-0.33 s and a 236-MB peak for the
    published model's 123-MB file (measured here), where the runtime's cache checks its graphs at
    every runner built."""
    import mmap

    props: dict[str, str] = {}
    graph = False
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for field, a, b in _fields(buf, 0, len(buf)):
                if field == 7:  # ModelProto.graph
                    graph = b > a
                elif field == 14:  # ModelProto.metadata_props: StringStringEntryProto {key = 1, value = 2}
                    kv = {f: bytes(buf[x:y]).decode("utf-8") for f, x, y in _fields(buf, a, b)}
                    props[kv.get(1, "")] = kv.get(2, "")
    except (OSError, ValueError, IndexError):  # unreadable, empty (mmap of 0 bytes), cut, not protobuf
        return None
    return props if graph else None


def read_onnx_metadata(path: str | os.PathLike | Any) -> dict[str, Any]:
    """The ``ecgfounder.*`` metadata of an exported ONNX file (or a loaded ``onnx.ModelProto``)."""
    if isinstance(path, (str, os.PathLike)):
        props = onnx_metadata_props(path)
        if props is None:
            raise CheckpointError(f"{path}: not a whole ONNX model (empty, cut or not ONNX); export it again.")
    else:
        props = {entry.key: entry.value for entry in path.metadata_props}
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(_PREFIX):
            try:
                out[key[len(_PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(_PREFIX):]] = value
    return out


def export_torchscript(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` as a traced TorchScript archive (``torch.jit.load`` reads it) with its
    metadata in ``extra/ecgfounder.json``; returns the path.  Written atomically."""
    p = Path(path)
    was_training = model.training
    model.eval()
    wrapper = ForwardBoth(model)
    try:
        with atomic_path(p) as tmp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(wrapper, (_example(model),), check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={_TS_NAME: json.dumps(model_metadata(model))})
    finally:
        model.train(was_training)
    return p


def read_torchscript_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata stored by :func:`export_torchscript`, read as a member of the archive (a zip):
    the program is not loaded (``torch.jit.load`` would deserialise it, weights and code, to read
    one small file)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(f"/extra/{_TS_NAME}")), None)
            return json.loads(zf.read(name)) if name else {}
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a TorchScript archive with ecgfounder metadata ({exc}); export it "
                              "again.") from None
