"""The published preprocessing chain as batched torch operations (CPU or GPU): a measured
experiment, **not part of the package** (issue 13: wire it into ``predict --device cuda`` or remove
it; it is removed from the package and kept here for ``gpu_check.sh`` to measure).

Why not in ``predict``: the published chain filters each *whole record* before cutting it into
10-s windows, so a chain applied to model windows on the device equals it only for records of
exactly one window; on the CPU it is ~30x slower than the package's compiled chain (O(n·k)
median); and with the model on a GPU ``predict`` already prepares records in worker processes
(half the cores, ~300 records/s per core with the compiled chain).  ``bench_preprocess.py --torch
--device cuda`` (run by ``gpu_check.sh``) measures whether a device chain would pay; tests:
``tests/benchmarks/test_torch_chain.py`` (equal to the published outputs within 1e-4).

Steps:

* each ``lfilter`` pass of ``filtfilt`` is computed exactly as a linear map: for an input ``u`` of
  length ``L`` and initial state ``zi * u[0]``, ``lfilter(b, a, u)`` equals the causal convolution
  of ``u`` with the filter's impulse response truncated to ``L`` samples plus ``u[0]`` times the
  response to the state ``zi``; the convolution runs as an FFT product.  Odd extension,
  reversal and trimming are those of ``scipy.signal.filtfilt``;
* the running median (``medfilt`` semantics, zero padding) is ``unfold`` + ``median`` over the
  window, in row chunks to bound memory;
* the z-score is taken over (leads × samples) of each window.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ecgfounder.signal.filters import _band_plan, _notch_plan, median_kernel

__all__ = ["TorchChain", "torch_filter_chain", "torch_preprocess_batch"]


@lru_cache(maxsize=32)
def _pass_plan(kind: str, params: tuple, length: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(FFT of the impulse response, zero-input state response, padlen) for one filter and length."""
    from scipy import fft as sfft
    from scipy import signal as sps

    b, a, zi, padlen = (_notch_plan if kind == "notch" else _band_plan)(*params)
    ext = length + 2 * padlen
    imp = np.zeros(ext)
    imp[0] = 1.0
    h = sps.lfilter(b, a, imp)
    g, _ = sps.lfilter(b, a, np.zeros(ext), zi=zi)
    nfft = sfft.next_fast_len(2 * ext - 1, real=True)
    nfft += nfft % 2  # even, so that the length of the spectrum gives nfft back
    return np.fft.rfft(h, nfft), g, padlen


def _filtfilt(x: torch.Tensor, H: torch.Tensor, g: torch.Tensor, padlen: int) -> torch.Tensor:
    n = x.shape[-1]
    nfft = 2 * (H.shape[-1] - 1)
    ext = torch.cat(
        [2 * x[..., :1] - x[..., 1 : padlen + 1].flip(-1), x, 2 * x[..., -1:] - x[..., -(padlen + 1) : -1].flip(-1)],
        dim=-1,
    )
    length = ext.shape[-1]

    def one_pass(u: torch.Tensor) -> torch.Tensor:
        y = torch.fft.irfft(torch.fft.rfft(u, nfft) * H, nfft)[..., :length]
        return y + u[..., :1] * g

    y = one_pass(ext).flip(-1)
    y = one_pass(y).flip(-1)
    return y[..., padlen : padlen + n]


def _running_median(x: torch.Tensor, k: int, max_elements: int = 1 << 26) -> torch.Tensor:
    half = k // 2
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).contiguous()
    padded = torch.nn.functional.pad(rows, (half, half))
    out = torch.empty_like(rows)
    step = max(1, max_elements // (shape[-1] * k))
    for s in range(0, rows.shape[0], step):
        out[s : s + step] = padded[s : s + step].unfold(-1, k, 1).median(dim=-1).values
    return out.reshape(shape)


class TorchChain:
    """The published filter chain for one contract, with its filters prepared once per length.

    Args:
        contract: a :class:`~ecgfounder.signal.preprocess.PreprocessContract` (mode ``published``).
        device: where to compute; dtype: float64 (default, matches scipy to ~1e-12) or float32.
    """

    def __init__(self, contract=None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64):
        from ecgfounder.signal.preprocess import PreprocessContract

        self.contract = contract or PreprocessContract()
        self.device = torch.device(device)
        self.dtype = dtype
        c = self.contract
        self._notch = (float(c.notch_hz), float(c.notch_q), float(c.fs))
        self._band = (float(c.band_hz[0]), float(c.band_hz[1]), int(c.band_order), float(c.fs))
        self._k = median_kernel(c.fs, c.baseline_window_s)
        self._cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, int]] = {}

    def _plan(self, kind: str, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        key = (kind, n)
        if key not in self._cache:
            H, g, pad = _pass_plan(kind, self._notch if kind == "notch" else self._band, n)
            cdt = torch.complex128 if self.dtype == torch.float64 else torch.complex64
            self._cache[key] = (torch.as_tensor(H, dtype=cdt, device=self.device),
                                torch.as_tensor(g, dtype=self.dtype, device=self.device), pad)
        return self._cache[key]

    def filter(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(..., n)`` signals in mV at ``contract.fs`` → filtered, baseline removed (no z-score)."""
        t = torch.as_tensor(x).to(self.device, self.dtype)
        if self.contract.mode != "published":
            return t
        n = t.shape[-1]
        for kind in ("notch", "band"):
            H, g, pad = self._plan(kind, n)
            if n <= pad:
                raise ValueError(f"signal of {n} samples is too short for zero-phase filtering (needs more than {pad}).")
            t = _filtfilt(t, H, g, pad)
        return t - _running_median(t, self._k)

    def __call__(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(batch, leads, n_samples)`` 10-s records (NaN already replaced, leads in contract
        order) → float32 model windows ``(batch, leads, n_samples)`` (z-scored per record)."""
        y = self.filter(x)
        if self.contract.mode == "none":
            return y.float()
        mean = y.mean(dim=(-2, -1), keepdim=True)
        std = y.std(dim=(-2, -1), keepdim=True, unbiased=False)
        return ((y - mean) / (std + 1e-8)).float()


def torch_filter_chain(x: torch.Tensor | np.ndarray, contract=None, *, device: str | torch.device | None = None,
                       dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """One-off :meth:`TorchChain.filter` (keep a :class:`TorchChain` to reuse the filter plans)."""
    dev = device if device is not None else (x.device if isinstance(x, torch.Tensor) else "cpu")
    return TorchChain(contract, dev, dtype).filter(x)


def torch_preprocess_batch(x: torch.Tensor | np.ndarray, contract=None, *, device: str | torch.device | None = None,
                           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """One-off :meth:`TorchChain.__call__`: model windows of a batch of 10-s records."""
    dev = device if device is not None else (x.device if isinstance(x, torch.Tensor) else "cpu")
    return TorchChain(contract, dev, dtype)(x)
