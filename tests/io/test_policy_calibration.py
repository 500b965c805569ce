"""The reading policy's calibration-pulse check: its shortcut (an ordinary record is rejected from
its last sample) gives what the full scan gives, on records with and without pulses."""

from __future__ import annotations

import numpy as np

from ecgfounder.io.policy import _scan_calibration, trailing_calibration


def _full_scan(sig: np.ndarray, fs: float) -> tuple[int, int] | None:
    """The policy's check without its last-column shortcut: the full scan alone."""
    if sig.shape[0] < 2 or sig.shape[1] < 4:
        return None
    return _scan_calibration(sig, fs, (0.9, 1.1), 0.05)


def _cases():
    rng = np.random.default_rng(5)
    fs = 500.0
    for _ in range(60):
        leads, n = int(rng.integers(2, 13)), int(rng.integers(600, 3000))
        ecg = rng.standard_normal((leads, n)).cumsum(-1) * 0.01
        kind = rng.integers(0, 6)
        if kind == 0:  # an ordinary record
            yield ecg, fs
            continue
        gap, pulse, after = (int(v) for v in rng.integers(0, 200, 3))
        level = float(rng.choice([1.0, 0.95, 1.2, 0.5]))
        pulse_rows = np.full((leads, pulse), level)
        if kind == 2:  # one lead off the common level
            pulse_rows[0] += 0.3
        tail = np.zeros((leads, after))
        if kind == 3:  # something after the pulse
            tail[:, -1:] = 0.2
        sig = np.concatenate([ecg, np.zeros((leads, gap)), pulse_rows, tail], axis=1)
        if kind == 4:  # all leads equal before the pulse, no gap
            sig = np.concatenate([np.full((leads, 300), level), sig[:, -(pulse + after):]], axis=1)
        yield sig, fs
    yield np.zeros((3, 50)), fs  # all zeros
    yield np.ones((3, 50)), fs  # all at 1 mV


def test_shortcut_equals_full_scan():
    found = 0
    for sig, fs in _cases():
        want = _full_scan(sig, fs)
        assert trailing_calibration(sig, fs) == want
        found += want is not None
    assert found >= 5  # the cases hold real pulses, not only rejections
