"""The preprocessing chain by its physical effect at the rates real files come at: resampling to the
contract's 500 Hz keeps a 10-Hz tone's amplitude and phase, suppresses tones that would alias into
the ECG band, does not turn a lead's offset into edge transients; the full chain then removes 50-Hz
mains and baseline wander at every input rate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ecgfounder.signal import fast, filters
from ecgfounder.signal.preprocess import PreprocessContract, prepare

RATES = (100, 128, 250, 257, 360, 500, 1000, 2000)
ONE = PreprocessContract(leads=("I",))


def _t(fs, seconds=10.0):
    return np.arange(int(round(seconds * fs))) / fs


def _tone(y, f, fs=500.0, part=slice(500, -500)):
    """Amplitude and phase (of a sine) of the ``f``-Hz component of ``y`` over ``part``."""
    t = np.arange(y.size)[part] / fs
    c = 2 * np.mean(y[part] * np.exp(-2j * np.pi * f * t))
    return abs(c), np.angle(c) + np.pi / 2


@pytest.mark.parametrize("fs", RATES)
def test_resampling_keeps_a_10_hz_tone_and_an_offset_up_to_the_record_edges(fs):
    # 10-Hz tone (phase 0.3) on a 3 mV offset: with zero padding the offset stepped to 0 at both
    # ends (error 3 mV at the edge sample at every rate but 500)
    x = np.sin(2 * np.pi * 10 * _t(fs) + 0.3) + 3.0
    y = filters.resample(x, float(fs), 500.0)
    assert y.shape == (5000,)
    want = np.sin(2 * np.pi * 10 * _t(500.0) + 0.3) + 3.0
    amp, phase = _tone(y - 3.0, 10.0)
    assert amp == pytest.approx(1.0, abs=2e-3) and phase == pytest.approx(0.3, abs=1e-3)
    assert np.abs(y - want).max() < 0.1  # edges included (100 Hz: 0.08 at the first sample)
    assert np.abs(y - want)[500:-500].max() < 2e-3


@pytest.mark.parametrize("fs", [1000, 2000])
def test_tones_above_the_target_nyquist_do_not_alias_into_the_ecg_band(fs):
    # 490 Hz folds onto 10 Hz at 500 Hz: it must be suppressed before decimation, not folded
    t = _t(fs)
    y = filters.resample(np.sin(2 * np.pi * 490 * t), float(fs), 500.0)
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 1e-3 * np.sqrt(0.5)  # below -60 dB
    x = np.sin(2 * np.pi * 10 * t + 0.3) + np.sin(2 * np.pi * 490 * t)
    amp, phase = _tone(filters.resample(x, float(fs), 500.0), 10.0)
    assert amp == pytest.approx(1.0, abs=2e-3) and phase == pytest.approx(0.3, abs=2e-3)


@pytest.mark.parametrize("fs", RATES)
def test_chain_removes_mains_and_wander_and_keeps_the_ecg_band_at_every_rate(fs):
    t = _t(fs)
    ecg = np.sin(2 * np.pi * 10 * t + 0.3)
    wander = 1.5 * np.sin(2 * np.pi * 0.15 * t) + 2.0
    mains = 0.5 * np.sin(2 * np.pi * 50 * t) if fs > 100 else 0.0
    y = fast.filter_chain(filters.resample(ecg + wander + mains, float(fs), 500.0), 500.0)
    # the contract's chain on the clean tone at its own rate (its running median of a pure tone
    # takes 6 % of a 10-Hz sine: the published chain's, kept)
    ref = fast.filter_chain(np.sin(2 * np.pi * 10 * _t(500.0) + 0.3), 500.0)
    mid = slice(1000, -1000)  # away from the published filtfilt's own edge transients
    amp, phase = _tone(y, 10.0, part=mid)
    amp_ref, phase_ref = _tone(ref, 10.0, part=mid)
    assert amp == pytest.approx(amp_ref, rel=5e-3) and phase == pytest.approx(phase_ref, abs=2e-3)
    assert _tone(y - ref, 50.0, part=mid)[0] < 0.5 * 0.01  # the 50-Hz notch (contract: notch_hz=50): > 40 dB
    assert np.abs(y - ref)[mid].max() < 0.05  # no wander, no mains left


@pytest.mark.parametrize("fs", RATES)
def test_a_lead_offset_does_not_change_the_windows_at_any_rate(fs):
    # was: the offset stepped to zero at the record's ends in the resampler, the band-pass kept the
    # step: 16 standard deviations at a 250-Hz record's edges for 5 mV, 9 at 1000 Hz
    rng = np.random.default_rng(fs)
    t = _t(fs, 12.3)
    x = np.stack([np.sin(2 * np.pi * 1.2 * t) ** 15, np.cos(2 * np.pi * 7 * t), rng.standard_normal(t.size).cumsum() * 0.01])
    x += np.array([[5.0], [-40.0], [0.2]])  # offsets of DC-coupled amplifiers, per lead
    c = PreprocessContract(leads=("I", "II", "V1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = prepare(x, float(fs), ["I", "II", "V1"], c).windows
        b = prepare(x - x.mean(axis=1, keepdims=True), float(fs), ["I", "II", "V1"], c).windows
    assert a.shape == (2, 3, 5000)
    assert np.abs(a - b).max() < 1e-4


def test_short_record_at_an_awkward_rate_is_resampled_without_edge_steps():
    # 0.6 s at 257 Hz: shorter than the resampler's reach (257 samples): the line-extension path
    fs = 257.0
    t = _t(fs, 0.6)
    x = 4.0 + np.sin(2 * np.pi * 3 * t)
    y = filters.resample(x, fs, 500.0)
    assert y.shape == (300,)
    assert np.abs(y - (4.0 + np.sin(2 * np.pi * 3 * _t(500.0, 0.6)))).max() < 0.05



def test_a_one_sample_row_resamples_to_its_value_not_nan():
    # the line extension needs two samples; one sample's row is its mean (it was NaN)
    x = np.array([[1.0], [-2.5]])
    for fs in (100.0, 250.0):
        y = filters.resample(x, fs, 500.0)
        assert y.shape == (2, int(500.0 / fs))
        assert np.isfinite(y).all()
        assert np.allclose(y, x)

def test_mains_through_the_chain_50_hz_notched_60_hz_left_to_the_band_pass():
    # the contract's notch is the published 50 Hz; 60-Hz mains is only the band-pass's (-31 dB)
    t = _t(500.0, 40.0)
    mid = slice(5000, 15000)
    for f, most, least in ((50.0, -60.0, -300.0), (60.0, -25.0, -40.0)):
        y = fast.filter_chain(np.sin(2 * np.pi * f * t), 500.0)
        db = 20 * np.log10(np.sqrt(2 * np.mean(y[mid] ** 2)))
        assert least < db < most, (f, db)
