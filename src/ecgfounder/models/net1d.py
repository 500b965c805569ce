"""Net1D: the RegNet-style 1-D CNN of ECGFounder, written from the published description.

Reads top to bottom: configuration, padding helpers, the bottleneck block, a stage, the model,
and the two released variants.  Parameter and buffer names match the published checkpoints so
they load with ``strict=True``.

Input: ``(batch, n_leads, 5000)`` float32, 10 s at 500 Hz, preprocessed as the weights require
(see :mod:`ecgfounder.signal.preprocess`).  Output: logits ``(batch, n_classes)``; features
``(batch, 1024)`` are the time-averaged activations of the last stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .description import ModelDescription

__all__ = ["Net1DConfig", "Net1D", "net1d_12lead", "net1d_1lead", "RELEASED_CONFIG"]


@dataclass(frozen=True)
class Net1DConfig:
    """Hyper-parameters of :class:`Net1D`.  Defaults are the released ECGFounder configuration."""

    in_channels: int = 12
    base_filters: int = 64
    filter_list: tuple[int, ...] = (64, 160, 160, 400, 400, 1024, 1024)
    m_blocks_list: tuple[int, ...] = (2, 2, 2, 3, 3, 4, 4)
    kernel_size: int = 16
    stride: int = 2
    groups_width: int = 16
    ratio: float = 1.0
    n_classes: int = 150
    use_bn: bool = False
    use_do: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_list", tuple(int(v) for v in self.filter_list))
        object.__setattr__(self, "m_blocks_list", tuple(int(v) for v in self.m_blocks_list))
        if len(self.filter_list) != len(self.m_blocks_list) or not self.filter_list:
            raise ValueError(
                f"filter_list {self.filter_list} and m_blocks_list {self.m_blocks_list} must be "
                "non-empty and of equal length (one entry per stage)."
            )
        for name in ("in_channels", "base_filters", "kernel_size", "stride", "groups_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Net1DConfig.{name} must be >= 1; got {getattr(self, name)!r}.")
        if self.n_classes < 0:
            raise ValueError(f"Net1DConfig.n_classes must be >= 0 (0: no head); got {self.n_classes}.")
        for w in self.filter_list:
            mid = int(w * self.ratio)
            if mid % self.groups_width:
                raise ValueError(
                    f"stage width {w} × ratio {self.ratio} = {mid} is not a multiple of groups_width "
                    f"{self.groups_width}; choose widths divisible by it."
                )
        if any(m < 1 for m in self.m_blocks_list):
            raise ValueError(f"every stage needs at least one block; got m_blocks_list={self.m_blocks_list}.")

    @property
    def num_features(self) -> int:
        return self.filter_list[-1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["filter_list"] = list(self.filter_list)
        d["m_blocks_list"] = list(self.m_blocks_list)
        return d


RELEASED_CONFIG = Net1DConfig()


def _same_pad(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Zero padding so that a convolution yields ``ceil(L / stride)`` samples (TensorFlow 'SAME')."""
    length = x.shape[-1]
    out = (length + stride - 1) // stride
    p = max(0, (out - 1) * stride + kernel_size - length)
    if p == 0:
        return x
    return F.pad(x, (p // 2, p - p // 2))


class Swish(nn.Module):
    """``x * sigmoid(x)``, computed by the fused ``F.silu`` (one pass instead of two; within
    float32 rounding of the two-op form: max |Δ| 5e-7 on N(0, 1) inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


class ConvSame(nn.Module):
    """``nn.Conv1d`` (with bias) behind SAME zero padding; the conv is stored as ``.conv``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        out = (length + self.stride - 1) // self.stride
        p = max(0, (out - 1) * self.stride + self.kernel_size - length)
        if p % 2 == 0:  # symmetric SAME padding: let the convolution pad, no copy of the input
            return F.conv1d(x, self.conv.weight, self.conv.bias, self.stride, p // 2, 1, self.conv.groups)
        return self.conv(_same_pad(x, self.kernel_size, self.stride))


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck with grouped convolution and squeeze-excitation.

    BatchNorm and Dropout modules exist (their tensors are in the published checkpoints) but are
    applied only when ``use_bn`` / ``use_do`` are set, which the released models do not.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        ratio: float,
        kernel_size: int,
        stride: int,
        groups_width: int,
        downsample: bool,
        is_first_block: bool,
        use_bn: bool,
        use_do: bool,
    ):
        super().__init__()
        mid = int(out_ch * ratio)
        self.in_ch, self.out_ch = in_ch, out_ch
        self.stride = stride if downsample else 1
        self.downsample = downsample
        self.is_first_block = is_first_block
        self.use_bn, self.use_do = use_bn, use_do

        self.bn1 = nn.BatchNorm1d(in_ch)
        self.activation1 = Swish()
        self.do1 = nn.Dropout(p=0.5)
        self.conv1 = ConvSame(in_ch, mid, 1)
        self.bn2 = nn.BatchNorm1d(mid)
        self.activation2 = Swish()
        self.do2 = nn.Dropout(p=0.5)
        self.conv2 = ConvSame(mid, mid, kernel_size, stride=self.stride, groups=mid // groups_width)
        self.bn3 = nn.BatchNorm1d(mid)
        self.activation3 = Swish()
        self.do3 = nn.Dropout(p=0.5)
        self.conv3 = ConvSame(mid, out_ch, 1)
        self.se_fc1 = nn.Linear(out_ch, out_ch // 2)
        self.se_fc2 = nn.Linear(out_ch // 2, out_ch)
        self.se_activation = Swish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = x
        if not self.is_first_block:
            if self.use_bn:
                out = self.bn1(out)
            out = self.activation1(out)
            if self.use_do:
                out = self.do1(out)
        out = self.conv1(out)
        if self.use_bn:
            out = self.bn2(out)
        out = self.activation2(out)
        if self.use_do:
            out = self.do2(out)
        out = self.conv2(out)
        if self.use_bn:
            out = self.bn3(out)
        out = self.activation3(out)
        if self.use_do:
            out = self.do3(out)
        out = self.conv3(out)

        se = out.mean(-1)
        se = torch.sigmoid(self.se_fc2(self.se_activation(self.se_fc1(se))))
        out = out * se.unsqueeze(-1)

        if self.downsample:
            identity = F.max_pool1d(F.pad(identity, (0, 1)), kernel_size=2, stride=2)
        if self.out_ch != self.in_ch:
            extra = self.out_ch - self.in_ch
            identity = F.pad(identity, (0, 0, extra // 2, extra - extra // 2))
        return out + identity


class Stage(nn.Module):
    """``m_blocks`` bottleneck blocks; the first one downsamples and changes the width."""

    def __init__(self, in_ch: int, out_ch: int, m_blocks: int, i_stage: int, cfg: Net1DConfig):
        super().__init__()
        self.block_list = nn.ModuleList(
            BottleneckBlock(
                in_ch if i == 0 else out_ch,
                out_ch,
                ratio=cfg.ratio,
                kernel_size=cfg.kernel_size,
                stride=cfg.stride,
                groups_width=cfg.groups_width,
                downsample=(i == 0),
                is_first_block=(i_stage == 0 and i == 0),
                use_bn=cfg.use_bn,
                use_do=cfg.use_do,
            )
            for i in range(m_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block_list:
            x = block(x)
        return x


class Net1D(nn.Module):
    """ECGFounder's Net1D.

    Transfer interface (as timm models): :meth:`forward_features` → ``(batch, num_features)``,
    :meth:`forward_head`, :meth:`reset_classifier`, :meth:`get_classifier`.

    Besides the weights, the model carries what it needs to be used correctly in
    ``description`` (a frozen :class:`~ecgfounder.models.description.ModelDescription`): ``labels``
    (one name per output), ``contract`` (the preprocessing its input must have), ``task_meta``
    (task type and, for regression, the target standardisation) and ``source``/``sha256`` (where
    the weights came from).  ``model.labels``, ``.contract``, ``.task_meta`` and ``.source`` read
    the description; assigning one of them replaces the description with an updated copy
    (checked against the architecture).
    """

    def __init__(self, config: Net1DConfig | None = None, **overrides: Any):
        super().__init__()
        cfg = config or Net1DConfig()
        if overrides:
            cfg = Net1DConfig(**{**cfg.to_dict(), **overrides})
        self.config = cfg
        self.first_conv = ConvSame(cfg.in_channels, cfg.base_filters, cfg.kernel_size, stride=2)
        self.first_bn = nn.BatchNorm1d(cfg.base_filters)
        self.first_activation = Swish()
        stages = []
        in_ch = cfg.base_filters
        for i, (out_ch, m) in enumerate(zip(cfg.filter_list, cfg.m_blocks_list)):
            stages.append(Stage(in_ch, out_ch, m, i, cfg))
            in_ch = out_ch
        self.stage_list = nn.ModuleList(stages)
        self.dense: nn.Module = nn.Linear(cfg.num_features, cfg.n_classes) if cfg.n_classes else nn.Identity()
        self._description = ModelDescription.for_model(cfg.in_channels, cfg.n_classes)

    # --- the description and its read-through properties ---------------------------------------

    @property
    def description(self) -> ModelDescription:
        return self._description

    @description.setter
    def description(self, desc: ModelDescription) -> None:
        if not isinstance(desc, ModelDescription):
            raise TypeError(f"model.description must be a ModelDescription; got {type(desc).__name__}.")
        self._description = desc.check(self.config.in_channels, self.config.n_classes)

    def _describe(self, **changes: Any) -> None:
        self.description = self._description.replace(**changes)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._description.labels

    @labels.setter
    def labels(self, value: Sequence[str]) -> None:
        self._describe(labels=tuple(value or ()))

    @property
    def contract(self) -> Any:
        return self._description.contract

    @contract.setter
    def contract(self, value: Any) -> None:
        self._describe(contract=value)

    @property
    def task_meta(self) -> dict[str, Any]:
        return dict(self._description.task_meta)

    @task_meta.setter
    def task_meta(self, value: dict[str, Any]) -> None:
        self._describe(task_meta=dict(value or {}))

    @property
    def source(self) -> dict[str, Any]:
        return dict(self._description.source)

    @source.setter
    def source(self, value: dict[str, Any]) -> None:
        self._describe(source=dict(value or {}))

    @property
    def num_features(self) -> int:
        return self.config.num_features

    @property
    def num_classes(self) -> int:
        return self.config.n_classes

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"Net1D expects input (batch, {self.config.in_channels}, n_samples); got {tuple(x.shape)}. "
                "Use ecgfounder.preprocess to make windows of the right leads."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, leads, samples)`` preprocessed ECG → ``(batch, num_features)`` embedding."""
        self._check_input(x)
        out = self.first_conv(x)
        if self.config.use_bn:
            out = self.first_bn(out)
        out = self.first_activation(out)
        for stage in self.stage_list:
            out = stage(out)
        return out.mean(-1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, num_features)`` → logits ``(batch, num_classes)``."""
        return self.dense(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.dense

    def reset_classifier(self, n_classes: int, labels: Sequence[str] | None = None) -> None:
        """Replace the head by a freshly initialised ``Linear(num_features, n_classes)``.  The
        description keeps its contract, source and task, and loses what belonged to the weights or
        the head it had: the published name, revision and SHA-256 (these weights are no longer that
        file) and a regression's target standardisation."""
        if labels is not None and len(labels) != n_classes:
            raise ValueError(f"{len(labels)} label names given for {n_classes} outputs; give one per output.")
        dev = next(self.parameters()).device
        self.dense = nn.Linear(self.num_features, n_classes).to(dev) if n_classes else nn.Identity()
        self.config = Net1DConfig(**{**self.config.to_dict(), "n_classes": n_classes})
        from .description import default_labels

        self._description = self._description.replace(
            labels=tuple(labels) if labels is not None else default_labels(n_classes),
            task_meta={"task": self._description.task}, name=None, revision=None, sha256=None)


def net1d_12lead(n_classes: int = 150, **overrides: Any) -> Net1D:
    """The released 12-lead ECGFounder architecture (randomly initialised)."""
    return Net1D(Net1DConfig(in_channels=12, n_classes=n_classes, **overrides))


def net1d_1lead(n_classes: int = 150, **overrides: Any) -> Net1D:
    """The released single-lead (lead I) ECGFounder architecture (randomly initialised)."""
    return Net1D(Net1DConfig(in_channels=1, n_classes=n_classes, **overrides))
