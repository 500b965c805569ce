"""The model description: what a set of weights is and what input it needs.

Every :class:`~ecgfounder.models.net1d.Net1D` carries one :class:`ModelDescription` as
``model.description`` (set by the builder, replaced by the loader and by fine-tuning); the
published weights carry theirs in :class:`~ecgfounder.models.weights.KnownWeights` before they
are downloaded (torchvision's weights-as-metadata).  It holds:

* ``labels``: one name per output (the 150 ECGFounder labels for the published head);
* ``contract``: the :class:`~ecgfounder.signal.preprocess.PreprocessContract` the input must
  follow (rate, window, leads, filter chain, normalisation);
* ``task_meta``: the task (``multilabel``, ``binary``, ``multiclass``, ``regression``) and, for
  regression, the target standardisation;
* ``source``, ``sha256``, ``name``, ``revision``: where the weights came from.

The rule "which input does this model need" lives here once, in :func:`default_contract`: a
checkpoint's own contract when it has one; otherwise the published chain at 500 Hz over the first
``n`` leads of the standard order (12 leads → I…V6, 1 lead → I); for more than 12 input
channels there is no default and the model has no contract (prediction refuses it, naming why).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .._fileio import to_jsonable
from ..signal.leads import STANDARD_12
from ..signal.preprocess import PreprocessContract

__all__ = [
    "ModelDescription",
    "weights_digest",
    "tensors_digest",
    "default_contract",
    "default_labels",
    "model_metadata",
    "model_fingerprint",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

FORMAT_NAME = "ecgfounder"
FORMAT_VERSION = 1


def default_contract(n_leads: int) -> PreprocessContract | None:
    """The contract of weights that state none: the published chain over the first ``n_leads`` of
    the standard 12-lead order; ``None`` for more than 12 input channels (no default exists)."""
    if not 1 <= int(n_leads) <= len(STANDARD_12):
        return None
    return PreprocessContract(leads=STANDARD_12[: int(n_leads)])


def default_labels(n_classes: int) -> tuple[str, ...]:
    """Names of a freshly built head: the 150 ECGFounder labels for 150 outputs, else
    ``output_0 … output_{n-1}``."""
    if n_classes == 150:
        from ..labels import load_labels

        return load_labels()
    return tuple(f"output_{i}" for i in range(n_classes))


@dataclass(frozen=True)
class ModelDescription:
    """What a model is and what input it needs (see the module documentation).

    Attributes:
        labels: one name per output; ``()`` when unknown (prediction refuses to name outputs).
        contract: the preprocessing the input must follow (``None``: none known).
        task_meta: ``{"task": ..., ...}``: how logits become scores
            (:func:`ecgfounder.models.heads.scores_from_logits`).
        source: where the weights came from (file, base weights, training run, metrics).
        sha256: SHA-256 of the weights file, where known.
        name, revision: published name (``"12-lead"``) and Hub revision, where known.
    """

    labels: tuple[str, ...] = ()
    contract: PreprocessContract | None = None
    task_meta: Mapping[str, Any] = field(default_factory=lambda: {"task": "multilabel"})
    source: Mapping[str, Any] = field(default_factory=dict)
    sha256: str | None = None
    name: str | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "task_meta", dict(self.task_meta or {"task": "multilabel"}))
        object.__setattr__(self, "source", dict(self.source or {}))
        if self.contract is not None and not isinstance(self.contract, PreprocessContract):
            object.__setattr__(self, "contract", PreprocessContract.from_dict(self.contract))

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    @property
    def task(self) -> str:
        return str(self.task_meta.get("task", "multilabel"))

    def replace(self, **changes: Any) -> "ModelDescription":
        """A copy with ``changes`` applied (the description itself is immutable)."""
        return dataclasses.replace(self, **changes)

    def check(self, in_channels: int, n_classes: int, *, where: str = "model") -> "ModelDescription":
        """Raise ``ValueError`` if the description does not fit an architecture of
        ``in_channels`` inputs and ``n_classes`` outputs; returns ``self``."""
        if self.labels and len(self.labels) != n_classes:
            raise ValueError(f"{where}: {len(self.labels)} label names for a head of {n_classes} outputs; "
                             "give one name per output.")
        if self.contract is not None and len(self.contract.leads) != in_channels:
            raise ValueError(f"{where}: the preprocessing contract names {len(self.contract.leads)} leads but the "
                             f"model takes {in_channels} input channels.")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form stored in checkpoints and exported files."""
        return {
            "labels": list(self.labels) if self.labels else None,
            "contract": self.contract.to_dict() if self.contract is not None else None,
            "task_meta": to_jsonable(self.task_meta),
            "source": to_jsonable(self.source),
            "sha256": self.sha256,
            "name": self.name,
            "revision": self.revision,
        }

    @classmethod
    def for_model(cls, in_channels: int, n_classes: int, meta: Mapping[str, Any] | None = None, *,
                  unknown_labels: str = "default") -> "ModelDescription":
        """The description of an architecture from stored metadata ``meta`` (the dict of
        :meth:`to_dict` / a checkpoint header; missing keys take the defaults).

        Labels missing from ``meta``: the 150 ECGFounder labels for a 150-output head; otherwise
        ``output_i`` names (``unknown_labels="default"``, a freshly built head) or none
        (``"none"``, a loaded checkpoint whose outputs nobody named).
        """
        meta = dict(meta or {})
        labels = meta.get("labels")
        if labels is None:
            labels = default_labels(n_classes) if (n_classes == 150 or unknown_labels == "default") else ()
        contract = meta.get("contract")
        contract = PreprocessContract.from_dict(contract) if contract else default_contract(in_channels)
        desc = cls(labels=tuple(labels), contract=contract, task_meta=meta.get("task_meta") or {"task": "multilabel"},
                   source=meta.get("source") or {}, sha256=meta.get("sha256"), name=meta.get("name"),
                   revision=meta.get("revision"))
        return desc.check(in_channels, n_classes, where="checkpoint metadata")


def model_metadata(model: Any) -> dict[str, Any]:
    """The one metadata dict of a model (checkpoint headers, ONNX ``metadata_props``,
    TorchScript extra files): format, architecture and config, then the description."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": type(model).__name__,
        "config": model.config.to_dict(),
        **model.description.to_dict(),
    }


def _tensors_hash(tensors: Mapping[str, Any], names: Any) -> Any:
    """A SHA-256 fed each tensor of ``tensors`` named in ``names``: name, dtype, shape and bytes, in order."""
    import torch

    h = hashlib.sha256()
    for name in names:
        a = tensors[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(tuple(a.shape)).encode())
        if a.dtype == torch.bfloat16:
            a = a.float()
        h.update(a.numpy())  # (the array's buffer, not a copy of it)
    return h


def weights_digest(model: Any) -> str:
    """Hex SHA-256 of a model's weights alone (the tensors of :func:`model_fingerprint`, without its
    description): unchanged by metadata such as a calibration stored with them."""
    sd = model.state_dict()
    return _tensors_hash(sd, sd).hexdigest()


def tensors_digest(tensors: Mapping[str, Any], extra: str = "") -> str:
    """Hex SHA-256 of a state dict as stored in a file: each tensor's name, dtype, shape and bytes,
    by name (a file's order is its format's, not the model's), then ``extra`` (text bound to them)."""
    h = _tensors_hash(tensors, sorted(tensors))
    h.update(extra.encode())
    return h.hexdigest()


def model_fingerprint(model: Any, extra: str = "") -> str:
    """Hex SHA-256 of everything that decides a model's outputs: each state-dict tensor (name,
    dtype, shape, bytes, in order), the config, the description's labels, contract and task, and
    ``extra`` (a caller's own settings, e.g. an aggregation).  Names caches."""
    sd = model.state_dict()
    h = _tensors_hash(sd, sd)
    d = model.description.to_dict()
    ident = {"config": model.config.to_dict(), "labels": d["labels"], "contract": d["contract"],
             "task_meta": d["task_meta"]}
    h.update(json.dumps(ident, sort_keys=True).encode())
    h.update(extra.encode())
    return h.hexdigest()
