"""The published code the benchmarks compare against, reproduced faithfully (not part of the package).

* :class:`PublishedNet1D` — the published ``net1d.py`` forward as the authors wrote it: every
  convolution pads its input with an explicit ``F.pad`` computed in Python at each call (SAME
  padding, also when it is symmetric), max-pool with its own SAME padding module, Swish as
  ``x * sigmoid(x)``, squeeze-excitation, and the channel-padding shortcut.  Same module names, so
  the released checkpoints (and our synthetic ones) load with ``strict=True``; the benchmarks check
  its outputs against the golden outputs of the published code (1e-4) before timing it.
* :func:`published_preprocess` — ``util.filter_bandpass`` + the z-score of the published
  ``dataset.py``: its three per-lead loops (notch ``filtfilt``, band-pass ``filtfilt``,
  ``x - medfilt(x, k)``), coefficients designed once per call as there, then one z-score.
  Checked against the golden preprocessed signals (1e-4) by the benchmark.

Written from the architecture and preprocessing facts in ``../shared/reference/MODEL.md``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal as sps
from torch import nn

__all__ = ["PublishedNet1D", "published_preprocess"]


def published_preprocess(sig: np.ndarray, fs: float = 500.0) -> np.ndarray:
    """(12, n) mV at ``fs`` → float32 (12, n): the published per-record code (three loops + z-score)."""
    data = np.nan_to_num(np.asarray(sig, dtype=np.float64))
    filtered = np.zeros_like(data)
    b, a = sps.iirnotch(50, 30, fs)
    for lead in range(data.shape[0]):
        filtered[lead] = sps.filtfilt(b, a, data[lead])
    b, a = sps.butter(4, [0.67, 40], btype="bandpass", fs=fs)
    for lead in range(data.shape[0]):
        filtered[lead] = sps.filtfilt(b, a, filtered[lead])
    kernel = int(0.4 * fs) + 1
    if kernel % 2 == 0:
        kernel += 1
    for lead in range(data.shape[0]):
        filtered[lead] = filtered[lead] - sps.medfilt(filtered[lead], kernel)
    return ((filtered - np.mean(filtered)) / (np.std(filtered) + 1e-8)).astype(np.float32)


class _Conv1dPadSame(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, groups=1):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)

    def forward(self, x):
        in_dim = x.shape[-1]
        out_dim = (in_dim + self.stride - 1) // self.stride
        p = max(0, (out_dim - 1) * self.stride + self.kernel_size - in_dim)
        x = F.pad(x, (p // 2, p - p // 2), "constant", 0)
        return self.conv(x)


class _MaxPool1dPadSame(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.kernel_size = kernel_size
        self.max_pool = nn.MaxPool1d(kernel_size=kernel_size)

    def forward(self, x):
        p = max(0, self.kernel_size - 1)
        x = F.pad(x, (p // 2, p - p // 2), "constant", 0)
        return self.max_pool(x)


class _Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class _BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, ratio, kernel_size, stride, groups, downsample, is_first_block):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.downsample, self.is_first_block = downsample, is_first_block
        self.stride = stride if downsample else 1
        mid = int(out_channels * ratio)
        self.bn1, self.activation1, self.do1 = nn.BatchNorm1d(in_channels), _Swish(), nn.Dropout(0.5)
        self.conv1 = _Conv1dPadSame(in_channels, mid, 1, 1)
        self.bn2, self.activation2, self.do2 = nn.BatchNorm1d(mid), _Swish(), nn.Dropout(0.5)
        self.conv2 = _Conv1dPadSame(mid, mid, kernel_size, self.stride, groups)
        self.bn3, self.activation3, self.do3 = nn.BatchNorm1d(mid), _Swish(), nn.Dropout(0.5)
        self.conv3 = _Conv1dPadSame(mid, out_channels, 1, 1)
        self.se_fc1 = nn.Linear(out_channels, out_channels // 2)
        self.se_fc2 = nn.Linear(out_channels // 2, out_channels)
        self.se_activation = _Swish()
        if self.downsample:
            self.max_pool = _MaxPool1dPadSame(kernel_size=self.stride)

    def forward(self, x):
        identity = x
        out = x
        if not self.is_first_block:  # use_bn = use_do = False in the released models
            out = self.activation1(out)
        out = self.conv1(out)
        out = self.activation2(out)
        out = self.conv2(out)
        out = self.activation3(out)
        out = self.conv3(out)
        se = out.mean(-1)
        se = self.se_fc1(se)
        se = self.se_activation(se)
        se = self.se_fc2(se)
        se = torch.sigmoid(se)
        out = torch.einsum("abc,ab->abc", out, se)
        if self.downsample:
            identity = self.max_pool(identity)
        if self.out_channels != self.in_channels:
            identity = identity.transpose(-1, -2)
            ch1 = (self.out_channels - self.in_channels) // 2
            ch2 = self.out_channels - self.in_channels - ch1
            identity = F.pad(identity, (ch1, ch2), "constant", 0)
            identity = identity.transpose(-1, -2)
        return out + identity


class _BasicStage(nn.Module):
    def __init__(self, in_channels, out_channels, ratio, kernel_size, stride, groups, i_stage, m_blocks):
        super().__init__()
        self.block_list = nn.ModuleList()
        for i_block in range(m_blocks):
            self.block_list.append(_BasicBlock(
                in_channels if i_block == 0 else out_channels, out_channels, ratio, kernel_size, stride, groups,
                downsample=(i_block == 0), is_first_block=(i_stage == 0 and i_block == 0)))

    def forward(self, x):
        for block in self.block_list:
            x = block(x)
        return x


class PublishedNet1D(nn.Module):
    """The released ECGFounder Net1D as published (12 or 1 lead, 150 outputs)."""

    def __init__(self, in_channels=12, base_filters=64, ratio=1.0, filter_list=(64, 160, 160, 400, 400, 1024, 1024),
                 m_blocks_list=(2, 2, 2, 3, 3, 4, 4), kernel_size=16, stride=2, groups_width=16, n_classes=150):
        super().__init__()
        self.first_conv = _Conv1dPadSame(in_channels, base_filters, kernel_size, 2)
        self.first_bn = nn.BatchNorm1d(base_filters)
        self.first_activation = _Swish()
        self.stage_list = nn.ModuleList()
        in_ch = base_filters
        for i, out_ch in enumerate(filter_list):
            self.stage_list.append(_BasicStage(in_ch, out_ch, ratio, kernel_size, stride,
                                               int(out_ch * ratio) // groups_width, i, m_blocks_list[i]))
            in_ch = out_ch
        self.dense = nn.Linear(in_ch, n_classes)

    def forward_both(self, x):
        out = self.first_activation(self.first_conv(x))
        for stage in self.stage_list:
            out = stage(out)
        features = out.mean(-1)
        return self.dense(features), features

    def forward(self, x):
        return self.forward_both(x)[0]
