"""Preprocessing: parity with the published chain, lead handling, rates, lengths, and the
physical effect of each filter."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgfounder.errors import LeadError
from ecgfounder.io import read
from ecgfounder.signal import filters
from ecgfounder.signal.leads import STANDARD_12, canonical_lead, select_leads
from ecgfounder.signal.preprocess import PreprocessContract, prepare, preprocess, window_starts

SHARED_GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "official_cinc2021.npz"
ONE = PreprocessContract(leads=("I",))


def _rec(data_dir, name="HR06000"):
    return read(data_dir / "cinc2021" / f"{name}.hea")


@pytest.mark.parametrize("leads", [12, 1])
def test_equals_golden_subset(data_dir, golden, leads):
    for j, i in enumerate(golden["sub_index"]):
        r = _rec(data_dir, golden["names"][i])
        w = preprocess(r.signal, r.fs, r.leads, ONE if leads == 1 else None, warn=False)
        assert w.dtype == np.float32 and w.shape == (1, leads, 5000)
        np.testing.assert_allclose(w[0], golden[f"preprocessed_{leads}_sub"][j], atol=1e-4, rtol=0)


@pytest.mark.skipif(not SHARED_GOLDEN.exists(), reason="../shared/golden not beside this checkout")
def test_equals_golden_all_50_records_from_shared(data_dir):
    with np.load(SHARED_GOLDEN) as g:  # each key access of an NpzFile reads the whole array: once each
        names, want = g["names"], {12: g["preprocessed_12"], 1: g["preprocessed_1"]}
    for i, name in enumerate(names):
        r = _rec(data_dir, name)
        for leads, c in ((12, None), (1, ONE)):
            w = preprocess(r.signal, r.fs, r.leads, c, warn=False)
            np.testing.assert_allclose(w[0], want[leads][i], atol=1e-4, rtol=0, err_msg=str(name))


def test_modes(data_dir):
    r = _rec(data_dir)
    z = preprocess(r.signal, r.fs, r.leads, mode="zscore")[0]
    expected = (r.signal - r.signal.mean()) / (r.signal.std() + 1e-8)
    np.testing.assert_allclose(z, expected, atol=1e-5)
    raw = preprocess(r.signal, r.fs, r.leads, mode="none")[0]
    np.testing.assert_allclose(raw, r.signal, atol=1e-6)
    with pytest.raises(ValueError, match="choose one of"):
        preprocess(r.signal, r.fs, r.leads, mode="fancy")


def test_leads_matched_by_name_in_any_order_and_case(data_dir):
    r = _rec(data_dir)
    ref = preprocess(r.signal, r.fs, r.leads)
    perm = np.random.default_rng(1).permutation(12)
    names = [r.leads[i].lower() if k % 2 else r.leads[i].upper() for k, i in enumerate(perm)]
    out = preprocess(r.signal[perm], r.fs, names)
    np.testing.assert_array_equal(out, ref)


def test_aliases():
    assert canonical_lead("avr") == "aVR" and canonical_lead("AVF") == "aVF"
    assert canonical_lead("MLII") == "II" and canonical_lead("c1") == "V1" and canonical_lead(" v6 ") == "V6"
    assert canonical_lead("vx") == "vx"
    # CODE-15 % and other Brazilian/Spanish exports: DI, DII, DIII
    assert [canonical_lead(x) for x in ("DI", "DII", "DIII", "D2")] == ["I", "II", "III", "II"]


def test_missing_limb_leads_are_derived(data_dir):
    r = _rec(data_dir)
    keep = [0, 1] + list(range(6, 12))  # I, II, V1-V6 as GE MUSE stores them
    full = select_leads(r.signal, r.leads, STANDARD_12)
    derived = select_leads(r.signal[keep], [r.leads[i] for i in keep], STANDARD_12)
    # the stored limb leads of this record are themselves I/II combinations up to the 1 uV resolution
    np.testing.assert_allclose(derived, full, atol=0.0021)
    I, II = r.signal[0], r.signal[1]
    np.testing.assert_allclose(derived[2], II - I)
    np.testing.assert_allclose(derived[3], -(I + II) / 2)
    np.testing.assert_allclose(derived[4], I - II / 2)
    np.testing.assert_allclose(derived[5], II - I / 2)


def test_missing_precordial_lead_error_and_fill(data_dir):
    r = _rec(data_dir)
    keep = [i for i, n in enumerate(r.leads) if n != "V3"]
    with pytest.raises(LeadError, match=r"missing lead\(s\) V3") as err:
        preprocess(r.signal[keep], r.fs, [r.leads[i] for i in keep], source="rec.hea")
    assert "rec.hea" in str(err.value) and "--fill-missing" in str(err.value)
    with pytest.warns(UserWarning, match="zero-filled.*V3"):
        w = preprocess(r.signal[keep], r.fs, [r.leads[i] for i in keep], fill_missing=True)
    assert np.all(w[0, 8] == 0)


def test_single_lead_substitution_warns(data_dir):
    r = _rec(data_dir)
    with pytest.warns(UserWarning, match="feeding lead II to a model trained on lead I"):
        w = preprocess(r.signal, r.fs, r.leads, ONE, lead="ii")
    ref = preprocess(r.signal[1:2], r.fs, ["I"], ONE)
    np.testing.assert_array_equal(w, ref)


def test_resampling_1000hz_record_is_polyphase_not_stretched(data_dir):
    fs = 1000.0
    t = np.arange(int(12.5 * fs)) / fs
    sig = np.sin(2 * np.pi * 10 * t)[None, :].repeat(12, 0)
    w = preprocess(sig, fs, STANDARD_12, mode="none")
    # 12.5 s → two windows (the second aligned to the end), still a 10 Hz sine at 500 Hz
    assert w.shape == (2, 12, 5000)
    spec = np.abs(np.fft.rfft(w[0, 0]))
    assert np.argmax(spec) * 500 / 5000 == pytest.approx(10.0)
    t500 = np.arange(5000) / 500
    np.testing.assert_allclose(w[0, 0, 500:4500], np.sin(2 * np.pi * 10 * t500)[500:4500], atol=2e-3)


def test_long_record_windows_and_short_record_padding(data_dir):
    r = read(data_dir / "ptbdb" / "s0010_re.hea")  # 15 leads, 1000 Hz, 38.4 s
    p = prepare(r.signal, r.fs, r.leads, warn=False)
    assert p.windows.shape == (4, 12, 5000)  # 0-10, 10-20, 20-30 s and the last 10 s
    assert window_starts(19200, 5000) == [0, 5000, 10000, 14200]
    short = _rec(data_dir).signal[:, :1000]  # 2 s
    with pytest.warns(UserWarning, match="zero-padded"):
        w = preprocess(short, 500, STANDARD_12)
    assert w.shape == (1, 12, 5000) and np.all(w[0, :, 1000:] == 0) and np.any(w[0, :, :1000] != 0)
    with pytest.raises(ValueError, match="at least 0.5 s"):
        preprocess(short[:, :100], 500, STANDARD_12)


def test_nan_replaced_counted_and_flat_leads_reported(data_dir):
    r = _rec(data_dir)
    sig = r.signal.copy()
    sig[3, 100:150] = np.nan
    sig[7] = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = prepare(sig, r.fs, r.leads, source="x")
    text = " ".join(str(w.message) for w in caught)
    assert p.n_nan == 50 and "50 NaN" in text
    assert p.flat_leads == ("V2",) and "flat lead(s) V2" in text
    assert np.isfinite(p.windows).all()


def test_no_sampling_rate_assumed():
    with pytest.raises(ValueError, match="fs=None"):
        preprocess(np.zeros((12, 5000)), None, STANDARD_12)


# --- filters by their physical effect -----------------------------------------------------


def _gain(fn, f, fs=500.0, n=20000):
    t = np.arange(n) / fs
    x = np.sin(2 * np.pi * f * t)
    y = fn(x, fs)
    mid = slice(n // 4, 3 * n // 4)
    return np.sqrt(np.mean(y[mid] ** 2) / np.mean(x[mid] ** 2))


def test_notch_removes_mains_and_keeps_qrs_band():
    assert 20 * np.log10(_gain(filters.notch, 50.0)) < -40
    assert _gain(filters.notch, 10.0) == pytest.approx(1.0, abs=1e-3)
    assert _gain(filters.notch, 45.0) > 0.97  # Q = 30: -0.2 dB at 45 Hz


def test_bandpass_edges():
    bp = filters.bandpass
    assert _gain(bp, 10.0) == pytest.approx(1.0, abs=1e-3)
    # zero-phase filtering squares the magnitude: -3 dB per pass → -6 dB at the edges
    assert 20 * np.log10(_gain(bp, 40.0)) == pytest.approx(-6.0, abs=0.3)
    assert 20 * np.log10(_gain(bp, 0.67, n=200000)) == pytest.approx(-6.0, abs=0.5)
    assert _gain(bp, 0.1, n=200000) < 0.01
    assert _gain(bp, 100.0) < 0.01


def test_bandpass_attenuates_by_the_butterworth_amounts():
    # zero-phase: the squared magnitude of the 4th-order Butterworth design (in sections, as a
    # reference free of the (b, a) form's rounding), far into both stop bands (0.1 Hz: -133 dB)
    from scipy import signal as sps

    sos = sps.butter(4, [0.67, 40.0], btype="bandpass", fs=500.0, output="sos")
    for f, n in ((0.1, 200000), (0.3, 200000), (60.0, 20000), (100.0, 20000)):
        want = abs(sps.sosfreqz(sos, [f], fs=500.0)[1][0]) ** 2
        assert _gain(filters.bandpass, f, n=n) == pytest.approx(want, rel=1e-4), f


def test_filters_whose_b_a_form_diverges_are_refused():
    # the published (b, a) band-pass rounds its poles outside the unit circle at high rates and orders:
    # order 4 at 2000 Hz filtered a sine to ~1e10, at 8000 Hz to NaN (which the compiled median did not
    # survive); a contract asking for such a chain, a NaN or negative-q notch or an absurd baseline
    # window was accepted and every record filtered to garbage
    x = np.sin(np.arange(40000) / 100.0)
    with pytest.raises(ValueError, match=r"order 4 at fs=2000 Hz is numerically unstable.*order 3 or less works"):
        filters.bandpass(x, 2000.0)
    assert np.abs(filters.bandpass(x[:5000], 500.0, order=5)).max() < 2  # still usable: kept
    for bad, match in ((dict(band_order=12), "order 12 at fs=500 Hz is numerically unstable"),
                       (dict(fs=8000.0, n_samples=80000), "order 4 at fs=8000 Hz"),
                       (dict(notch_hz=float("nan")), "notch at nan Hz"), (dict(notch_q=-1.0), "q=-1.0"),
                       (dict(baseline_window_s=1e9), "baseline_window_s=1000000000.0 s is outside 0-2 s"),
                       (dict(fs=float("nan")), "fs=nan")):
        with pytest.raises(ValueError, match=match):
            PreprocessContract(**bad)
    PreprocessContract(band_order=12, mode="zscore")  # no filters in that mode: nothing to refuse


def test_median_baseline_removes_slow_wander_and_keeps_spikes():
    fs = 500.0
    t = np.arange(5000) / fs
    wander = 0.5 * np.sin(2 * np.pi * 0.2 * t)
    spikes = np.zeros_like(t)
    spikes[::400] = 1.0  # 2-ms "QRS" every 0.8 s
    y = filters.remove_baseline(wander + spikes, fs)
    inner = slice(250, -250)
    assert np.abs(y[inner][spikes[inner] == 0]).max() < 0.02
    assert y[inner][spikes[inner] == 1].min() > 0.9


def test_contract_round_trip_and_unknown_keys():
    c = PreprocessContract(leads=("i",), mode="zscore")
    assert c.leads == ("I",)
    assert PreprocessContract.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown preprocessing contract keys"):
        PreprocessContract.from_dict({**c.to_dict(), "hpf": 1})


@pytest.mark.parametrize("value", [1e308, -1e200, 1e13])
def test_absurd_amplitude_is_refused_naming_the_lead(value):
    """A finite sample the filters would overflow to inf (which the compiled median kernel did not
    survive: the process died on one 1e308 sample) is refused before filtering, naming the lead."""
    from ecgfounder.errors import RecordReadError

    x = np.tile(np.sin(np.arange(5000) / 50.0), (12, 1))
    x[3, 100] = value
    with pytest.raises(RecordReadError, match=r"rec\.xml: lead aVR has a sample of .* mV, beyond the ±1e\+12 mV"):
        prepare(x, 500.0, STANDARD_12, source="rec.xml", warn=False)
    x[3, 100] = 1e11  # wrong units, absurd, but the z-score makes the scale moot: prepared, finite
    assert np.isfinite(prepare(x, 500.0, STANDARD_12, warn=False).windows).all()


# --- lead sets and names of real files ------------------------------------------------------


def test_electrode_pair_and_hyphenated_lead_names():
    # Holter/EDF electrode pairs (positive electrode first) and 'Lead-V2' were unknown names
    assert [canonical_lead(x) for x in ("LA-RA", "LL-RA", "LL-LA", "la - ra")] == ["I", "II", "III", "I"]
    assert [canonical_lead(x) for x in ("Lead-V2", "lead-ii", "LEAD_III", "Lead aVF", "leadv6")] == \
        ["V2", "II", "III", "aVF", "V6"]
    assert canonical_lead("lead -aVR") == "-aVR" and canonical_lead("RA-LA") == "RA-LA"  # (−I: not lead I)


def test_channel_numbers_are_not_taken_for_leads_i_ii_iii(data_dir):
    # columns 0..11 (a DataFrame's default names): '1' was read as lead I, the second column,
    # and integer names crashed the missing-lead message with a TypeError
    r = _rec(data_dir)
    for names in ([str(i) for i in range(12)], list(range(12))):
        with pytest.raises(LeadError, match=r"missing lead\(s\) I .*look like channel numbers"):
            prepare(r.signal, r.fs, names, ONE, warn=False)
    w = prepare(r.signal[:3], r.fs, ["1", "2", "3"], ONE, warn=False).windows  # leads 1-3 alone: I, II, III
    np.testing.assert_array_equal(w, prepare(r.signal[:1], r.fs, ["I"], ONE, warn=False).windows)


def test_lead_sets_of_real_files_give_the_12_lead_windows(data_dir):
    r = _rec(data_dir)
    I, II = r.signal[0], r.signal[1]
    x12 = np.concatenate([np.stack([I, II, II - I, -(I + II) / 2, I - II / 2, II - I / 2]), r.signal[6:]])
    ref = prepare(x12, r.fs, STANDARD_12, warn=False)
    eight = prepare(x12[[0, 1, 6, 7, 8, 9, 10, 11]], r.fs, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"], warn=False)
    np.testing.assert_array_equal(eight.windows, ref.windows)  # the limb leads derived exactly
    frank = np.random.default_rng(0).standard_normal((3, x12.shape[1]))
    fifteen = prepare(np.concatenate([x12, frank]), r.fs, list(STANDARD_12) + ["vx", "vy", "vz"], warn=False)
    np.testing.assert_array_equal(fifteen.windows, ref.windows)  # Frank leads ignored
    one = prepare(x12, r.fs, STANDARD_12, ONE, warn=False)  # a 12-lead file, the 1-lead model: lead I, no note
    assert one.notes == ()
    np.testing.assert_array_equal(one.windows, prepare(I, r.fs, ["I"], ONE, warn=False).windows)


def test_duplicated_lead_names_are_noted_when_their_signals_differ(data_dir):
    r = _rec(data_dir)
    x = np.concatenate([r.signal, r.signal[1:2] * 0.5])  # a second 'MLII': a rhythm strip
    p = prepare(x, r.fs, list(r.leads) + ["MLII"], warn=False)
    assert p.notes == ("lead(s) II given more than once with different signals; the first of each is used",)
    np.testing.assert_array_equal(p.windows, prepare(r.signal, r.fs, r.leads, warn=False).windows)
    assert prepare(np.concatenate([r.signal, r.signal[1:2]]), r.fs, list(r.leads) + ["II"], warn=False).notes == ()


def test_lead_is_refused_for_a_multi_lead_contract_and_named_when_substituted(data_dir):
    from ecgfounder.signal.errors import SignalError

    r = _rec(data_dir)
    with pytest.raises(SignalError, match=r"r\.hea: lead='II' picks the lead fed to a single-lead model; this contract "
                                          r"takes 12 leads .*leave lead out"):
        prepare(r.signal, r.fs, r.leads, lead="II", source="r.hea")  # was silently ignored
    x = r.signal.copy()
    x[1] = 0.0
    p = prepare(x, r.fs, r.leads, ONE, lead="II", warn=False)
    assert "flat lead(s) II" in p.notes  # the recording's lead, not the model's 'I'


def test_window_edges_exactly_one_a_little_over_and_one_sample_short(data_dir):
    from ecgfounder.signal import fast

    r = _rec(data_dir)
    x = np.concatenate([r.signal, r.signal[:, :7]], axis=1)  # 10.014 s
    p = prepare(x, r.fs, r.leads, warn=False)
    assert p.windows.shape == (2, 12, 5000) and not p.padded and p.notes == ()
    y = fast.filter_chain(x, r.fs)  # the record filtered whole, then cut: the last window ends with it
    for w, part in zip(p.windows, (y[:, :5000], y[:, 7:])):
        np.testing.assert_allclose(w, filters.zscore(part), atol=1e-6, rtol=0)
    one = prepare(r.signal, r.fs, r.leads, warn=False)
    assert one.windows.shape == (1, 12, 5000) and not one.padded
    short = prepare(r.signal[:, :4999], r.fs, r.leads, warn=False)  # the note said "10.0 s record zero-padded"
    assert short.padded and short.notes == ("9.998 s record zero-padded to 10 s",)
    assert not short.windows[0, :, 4999].any()
    np.testing.assert_allclose(short.windows[0, :, :4999], filters.zscore(fast.filter_chain(r.signal[:, :4999], r.fs)),
                               atol=1e-6, rtol=0)  # normalised on its own samples, then padded


@pytest.mark.parametrize("fs", [499.7, 333.33])
def test_window_starts_are_seconds_of_the_recording_at_rates_resampled_by_an_approximate_ratio(fs):
    """Starts were the output's sample / 500, but 499.7 Hz is resampled by 1001/1000 (its output runs at
    500.2 Hz): the last window of an hour started 1.4 s late by them, past the record's end."""
    from ecgfounder.signal.preprocess import prepare

    n = int(3600 * fs)
    t = np.arange(n) / fs
    x = (np.sin(2 * np.pi * 1.1 * t) * 0.5)[None]
    got = prepare(x, fs, ["I"], ONE, warn=False)
    duration = n / fs
    # the last window ends with the record (its 5000 samples last 10 s of the output's rate, to 4 ms)
    assert got.starts_s[-1] + 10.0 == pytest.approx(duration, abs=0.01)
    assert got.starts_s[1] == pytest.approx(10.0, abs=0.005)
