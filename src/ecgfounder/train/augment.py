"""Training-time augmentation of preprocessed windows (see :class:`~ecgfounder.train.config.AugmentConfig`).

Every transform draws from a :class:`numpy.random.Generator` the caller seeds with
``(seed, epoch, example)``: the same epoch of a resumed run sees the same augmented inputs.
"""

from __future__ import annotations

import numpy as np

from .config import AugmentConfig

__all__ = ["augment_window", "augment_rng"]

_AUGMENT_STREAM = 0xA5  # separates the augmentation stream from the window-choice stream


def augment_rng(seed: int, epoch: int, example: int) -> np.random.Generator:
    """The generator for one training example of one epoch."""
    return np.random.default_rng([int(seed) % (2**32), int(epoch), int(example), _AUGMENT_STREAM])


def augment_window(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, fs: float) -> np.ndarray:
    """Augmented copy of one window.

    Args:
        x: float32 ``(n_leads, n_samples)`` window at ``fs`` Hz (preprocessed, usually z-scored).
        cfg: the augmentation settings.
        rng: the example's generator (:func:`augment_rng`).
        fs: sampling rate of the window in Hz.

    Returns:
        float32 ``(n_leads, n_samples)``; the input array is not modified.  Leads that are exactly
        zero (zero-filled missing leads) stay zero.
    """
    y = np.array(x, dtype=np.float32, copy=True)
    if not cfg.enabled or rng.random() >= cfg.p:
        return y
    n_leads, n = y.shape
    live = np.any(y != 0, axis=1, keepdims=True)
    scale = y.std(axis=1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    lo, hi = cfg.amplitude_scale
    if hi > lo or lo != 1.0:
        y *= np.float32(rng.uniform(lo, hi))
    if cfg.flip_prob > 0 and rng.random() < cfg.flip_prob:
        y = -y
    if cfg.baseline_wander > 0:
        t = np.arange(n, dtype=np.float64) / fs
        f = rng.uniform(0.05, 0.5)
        phase = rng.uniform(0, 2 * np.pi, size=(n_leads, 1))
        amp = rng.uniform(0, cfg.baseline_wander)
        y += (amp * scale * np.sin(2 * np.pi * f * t[None, :] + phase)).astype(np.float32)
    if cfg.noise_std > 0:
        y += (cfg.noise_std * scale * rng.standard_normal((n_leads, n))).astype(np.float32)
    if cfg.time_shift_s > 0:
        k = int(rng.integers(-int(round(cfg.time_shift_s * fs)), int(round(cfg.time_shift_s * fs)) + 1))
        if k > 0:
            y[:, k:] = y[:, :-k].copy()
            y[:, :k] = 0
        elif k < 0:
            y[:, :k] = y[:, -k:].copy()
            y[:, k:] = 0
    return np.where(live, y, np.float32(0)).astype(np.float32, copy=False)
