"""The reading policy's calibration-pulse check: its shortcut (an ordinary record is rejected from
its last sample) gives what the full scan gives, on records with and without pulses."""

from __future__ import annotations

import numpy as np

from ecgfounder.io.policy import trailing_calibration


def _full_scan(sig: np.ndarray, fs: float, *, level_mv: tuple[float, float] = (0.9, 1.1),
                         min_pulse_s: float = 0.05) -> tuple[int, int] | None:
    """The policy's check as it was before its last-column shortcut: a full scan of the record."""
    if sig.shape[0] < 2 or sig.shape[1] < 4:
        return None
    col = sig[0]
    equal = np.all(np.abs(sig - col) <= 1e-3 + 0.01 * np.abs(col), axis=0)
    cal = equal & (col >= level_mv[0]) & (col <= level_mv[1])
    if not cal.any():
        return None
    last = int(np.flatnonzero(cal)[-1])
    if np.any(np.abs(sig[:, last + 1:]) > 1e-6):
        return None
    start = last
    while start > 0 and cal[start - 1]:
        start -= 1
    if last - start + 1 < max(2, int(min_pulse_s * fs)):
        return None
    zero = np.all(np.abs(sig) <= 1e-6, axis=0)
    cut = start
    while cut > 0 and zero[cut - 1]:
        cut -= 1
    if cut == start and start > 0:
        # no blank gap: accept only a pulse that starts from a level shared by all leads
        if not equal[start - 1]:
            return None
    return cut, start


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
