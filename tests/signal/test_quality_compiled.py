"""The quality check's compiled kernel (:mod:`ecgfounder.signal.compiled_quality`) against its numpy
form: the same indices to rounding and the same flags, on the real records, corrupted copies of them
(every check's defect), other rates and awkward lengths.  The suite runs the numpy form everywhere
else (tests/conftest.py sets ECGFOUNDER_NUMBA=0: tests/signal/test_quality_physics.py tests it by
physical effect); here the kernel is forced, in this module alone (compiling it costs a process ~8 s)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ecgfounder
from ecgfounder.signal import quality as Q
from ecgfounder.signal import quality_measures as M

pytest.importorskip("numba", reason="numba not installed (ecgfounder[fast])")


DATA = Path(__file__).resolve().parents[1] / "data"


class _Kernel:
    """``ecgfounder.signal.compiled_quality``, imported (compiled, ~3 s cold) on first use."""

    def __getattr__(self, name):
        from ecgfounder.signal import compiled_quality as module

        return getattr(module, name)


kernel = _Kernel()


@pytest.fixture(scope="module")
def cinc():
    return [ecgfounder.read(p) for p in sorted((DATA / "cinc2021").glob("*.hea"))]


def _both(x, fs):
    """(numpy indices, compiled indices, numpy residual, compiled residual) of finite ``x``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):  # (the numpy form warns on samples near the float64 limit)
        base, clean = M._residual(x, fs, True)
        want = M._measure(x, fs, base, clean, np.ones(x.shape[0], bool))
    got, clean_k = M._compiled_measure(kernel, x, fs)
    return want, got, clean, clean_k.copy()


def _assert_same(want, got, where):
    assert want.keys() == got.keys()
    for k in want:
        a, b = np.asarray(want[k], float), np.asarray(got[k], float)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, err_msg=f"{where}: {k}")


def _variants(rec):
    """Corrupted copies of a real record: one per defect the checks look for."""
    x = np.ascontiguousarray(rec.signal, dtype=np.float64)
    n, fs = x.shape[1], rec.fs
    t = np.arange(n) / fs
    rng = np.random.default_rng(n)
    out = {"as read": x}
    y = x.copy()
    y[2] = 0.0
    y[5, 1000:1700] = y[5, 999]
    out["flat + gap"] = y
    lim = 0.4 * np.abs(x).max(axis=1, keepdims=True)
    out["clipped"] = np.clip(x, -lim, lim)
    out["noise + mains + wander"] = x + rng.normal(0, 0.3, x.shape) + 0.4 * np.sin(2 * np.pi * 50 * t) \
        + 3 * np.sin(2 * np.pi * 0.2 * t)
    out["x 20"] = 20 * x
    out["quantised"] = np.round(x, 1)  # many equal neighbours and ties in the tails
    out["20-µV steps, clipped"] = np.round(np.clip(x, -lim, lim) / 0.02) * 0.02  # rails and plateaus
    out["R tops cut 5 %"] = np.minimum(x, 0.95 * x.max(axis=1, keepdims=True))  # rail runs of a few samples
    return out


def test_kernel_equals_numpy_on_real_records_and_their_corruptions(cinc):
    for rec in cinc[::2]:  # (all 50 as read: the pinned-summaries test below)
        for name, x in _variants(rec).items():
            want, got, clean, clean_k = _both(x, rec.fs)
            _assert_same(want, got, f"{rec.id} {name}")
            np.testing.assert_allclose(clean_k, clean, rtol=0, atol=1e-12)


def test_kernel_equals_numpy_at_other_rates_and_lengths(cinc):
    from ecgfounder.signal.filters import resample

    for fs in (100.0, 128.0, 250.0, 257.0, 360.0, 1000.0):  # one test: the kernel compiles once per process
        full = resample(np.ascontiguousarray(cinc[3].signal, dtype=np.float64), 500.0, fs)
        for n in (None, 613, 1999):
            x = full[:, :n] if n else full
            want, got, clean, clean_k = _both(x, fs)
            _assert_same(want, got, f"fs={fs} n={x.shape[1]}")
            np.testing.assert_allclose(clean_k, clean, rtol=0, atol=1e-12)


def test_kernel_edge_cases_equal_numpy():
    rng = np.random.default_rng(5)
    cases = {
        "constant": np.full((2, 3000), 1.25),
        "one block": rng.normal(size=(3, 12)),  # fewer samples than a 2-s segment: one short segment
        "step": np.repeat([[0.0, 2.0, -1.0]], 1000, axis=1),
        "huge": rng.normal(0, 1e150, (2, 2000)),
        "float64 limit": np.full((1, 3000), np.finfo(float).max),  # residual NaN: no percentiles, no garbage
        "both limits": np.repeat([[1.7e308, -1.7e308]], 1500, axis=1),
        "signed zeros": np.where(rng.random((2, 2000)) < 0.5, -0.0, 0.0),
        "long runs": np.repeat(rng.normal(size=(4, 250)), 20, axis=1),
    }
    for name, x in cases.items():
        want, got, clean, clean_k = _both(x, 500.0)
        _assert_same(want, got, name)
        if np.isfinite(clean).all():
            np.testing.assert_allclose(clean_k, clean, rtol=0, atol=1e-12 * max(1.0, np.abs(x).max()))


def test_assess_with_the_kernel_keeps_the_pinned_summaries(cinc, monkeypatch):
    # the same 50 summaries as the numpy form (tests/signal/test_quality.py), the kernel forced
    monkeypatch.setattr(M, "_compiled", lambda: kernel)
    monkeypatch.setattr(Q, "_compiled", lambda: kernel)  # the reversal check's median beats too
    expected = json.loads((DATA / "quality_cinc2021.json").read_text())
    assert {r.id: Q.assess(r).summary for r in cinc} == expected
    # and a record with NaN still takes the numpy form (the kernel needs finite samples)
    x = np.array(cinc[0].signal, dtype=np.float64)
    x[1, 100:200] = np.nan
    assert "missing:" + cinc[0].leads[1] in Q.assess(cinc[0].replace(signal=x)).summary


def test_beat_medians_equal_numpy(cinc, monkeypatch):
    # the reversal check's R peaks and median beats: one compiled call against scipy's find_peaks
    # and np.median on the same beat energy; equal to the bit, at every rate
    # (block lengths 1 to 4), on records long enough for the per-column sort (> 48 beats), with
    # plateaus (quantised samples) and with the leads inverted
    from ecgfounder.signal.filters import resample

    monkeypatch.setattr(Q, "_compiled", lambda: kernel)
    finders, rows = [0, 1, 3, 5, 10, 11], [0, 1, 11]
    checked = 0
    for rec in cinc[::3]:
        x = np.ascontiguousarray(rec.signal, dtype=np.float64)
        for fs, y in ((500.0, x), (500.0, -x), (500.0, np.round(x, 1)), (500.0, np.tile(x, 6)),
                      (1000.0, resample(x, 500.0, 1000.0)), (360.0, resample(x, 500.0, 360.0)),
                      (100.0, resample(x, 500.0, 100.0)), (500.0, x[:, :1200])):
            clean = np.ascontiguousarray(M._residual(np.ascontiguousarray(y), fs, True)[1])
            want = None
            if clean.shape[1] >= 2 * fs:
                want = Q._median_beats(clean[rows], Q._beats(clean[finders], fs), fs)
            got = Q._beat_medians(clean, finders, clean[rows], fs)
            assert (want is None) == (got is None), (rec.id, fs, y.shape)
            if want is not None:
                np.testing.assert_array_equal(got, want, err_msg=f"{rec.id} fs={fs} n={y.shape[1]}")
                checked += 1
    assert checked >= 100
    # the written-out sort behind them (numba's own cost seconds to compile): ties, runs, sizes
    rng = np.random.default_rng(7)
    for v in (rng.integers(0, 4, 300).astype(float), rng.normal(size=1000), np.zeros(5), np.arange(9.0)[::-1].copy(),
              np.array([2.0]), np.zeros(0)):
        np.testing.assert_array_equal(kernel._argsort(v), np.argsort(v, kind="stable"))


def test_scratch_buffers_are_per_thread_and_bounded():
    import threading

    a = kernel._scratch("probe", (3, 4), np.float64)
    b = kernel._scratch("probe", (2, 2), np.float64)
    assert np.shares_memory(a, b)  # reused in this thread
    seen = []
    th = threading.Thread(target=lambda: seen.append(kernel._scratch("probe", (3, 4), np.float64)))
    th.start()
    th.join()
    assert not np.shares_memory(a, seen[0])  # another thread's own
    big = kernel._scratch("probe", (kernel._SCRATCH_MAX // 8 + 1,), np.float64)
    assert not np.shares_memory(big, kernel._scratch("probe", (3, 4), np.float64))  # too big to keep


def test_absurd_samples_give_the_same_flags_in_both_forms(cinc, monkeypatch):
    # beyond the 1e12 mV prepare refuses, the residual is rounding noise: one 1.7e308 sample read as
    # flat by one form and amplitude by the other, a constant 1e15 lead flat against gap, amplitude,
    # noise and powerline; now amplitude (and the checks on the samples themselves) in both
    rec = cinc[0]
    cases = {}
    for v, where in ((1.7e308, 100), (-1e300, 100), (1e15, slice(None)), (3e12, slice(None))):
        x = np.array(rec.signal, dtype=np.float64)
        x[3, where] = v
        cases[v] = rec.replace(signal=x)
    got = {}
    for comp in (kernel, None):
        monkeypatch.setattr(M, "_compiled", lambda: comp)
        with np.errstate(over="ignore", invalid="ignore"):
            got[comp is None] = {v: Q.assess(r).summary for v, r in cases.items()}
    assert got[True] == got[False]
    lead = rec.leads[3]
    assert got[True] == {1.7e308: f"amplitude:{lead}", -1e300: f"amplitude:{lead}",
                         1e15: f"gap:{lead};amplitude:{lead}", 3e12: f"gap:{lead};amplitude:{lead}"}


def test_assess_is_the_same_in_both_forms_for_1_2_and_15_leads(cinc, monkeypatch):
    # the lead counts met in practice (one-lead wearables, MIT-BIH's two leads, PTB's 15) at the
    # rates met in practice, clean and with a flat lead and a limb-cable swap (the median beats)
    from ecgfounder.signal.filters import resample

    rec = cinc[3]
    x = np.ascontiguousarray(rec.signal, dtype=np.float64)
    s = {n: i for i, n in enumerate(rec.leads)}
    swapped = x.copy()
    swapped[[s["I"], s["II"], s["III"], s["aVR"], s["aVL"]]] = [-x[s["I"]], x[s["III"]], x[s["II"]], x[s["aVL"]], x[s["aVR"]]]
    flat = x.copy()
    flat[s["V3"]] = 0.0
    sets = {1: [s["II"]], 2: [s["I"], s["II"]], 15: list(range(12)) + [0, 1, 2]}
    names = {1: ("II",), 2: ("I", "II"), 15: rec.leads + ("vx", "vy", "vz")}
    seen = set()
    for fs in (250.0, 360.0, 1000.0):
        for variant in (x, swapped, flat):
            y = resample(variant, 500.0, fs)[:, : int(6 * fs)]
            for k, rows in sets.items():
                r = ecgfounder.Recording(y[rows], fs, names[k])
                got = []
                for comp in (kernel, None):
                    monkeypatch.setattr(M, "_compiled", lambda c=comp: c)
                    monkeypatch.setattr(Q, "_compiled", lambda c=comp: c)
                    got.append(Q.assess(r))
                assert got[0].summary == got[1].summary, (fs, k)
                for a, b in zip(got[0].leads, got[1].leads):
                    _assert_same(dict(a.indices), dict(b.indices), f"fs={fs} leads={k} {a.lead}")
                seen.add(got[0].summary)
    assert {"reversal:LA-RA", "flat:V3"} <= seen, seen


def test_a_record_ending_on_a_tall_r_wave_has_no_baseline_wander(cinc, monkeypatch):
    """The baseline's running medians repeated the last block mean past the end: a record cut just
    after a tall R wave (JS20014's V5) got a baseline that followed the R, 3.4 mV of 'wander' and the
    flag, on a clean lead.  The windows are now cut at the ends, in both forms alike; the running
    median equals scipy's exact one inside and the median of the values held at the ends."""
    rec = next(r for r in cinc if r.id == "JS20014")
    for comp in (kernel, None):
        monkeypatch.setattr(M, "_compiled", lambda: comp)
        for t in (5.14, 6.87):
            cut = rec.replace(signal=rec.signal[:, : int(t * rec.fs)])
            v5 = next(lq for lq in Q.assess(cut).leads if lq.lead == "V5")
            assert v5.flags == () and v5.indices["baseline_mv"] < 0.5, (comp, t, v5)
    v = np.random.default_rng(0).normal(size=(2, 40))
    want = np.array([[np.median(r[max(0, c - 5): c + 6]) for c in range(40)] for r in v])
    np.testing.assert_array_equal(M._edge_median(v, 11), want)
    out, win = np.empty(40), np.empty(11)
    for row, w in zip(v, want):
        kernel._edge_median(row, 11, out, win)
        np.testing.assert_array_equal(out, w)


def test_kernel_equals_numpy_on_one_long_run_on_a_rail(cinc):
    # one long run on a lead's extreme (an amplifier driven to its rail once): its length in both forms
    # alike when it lies inside the record; not counted at the record's start or end (not seen left)
    from ecgfounder.signal.filters import resample

    x500 = np.array(cinc[3].signal, dtype=np.float64)
    for fs in (500.0, 200.0):
        y = x500 if fs == 500.0 else resample(x500, 500.0, fs)
        n, top, bottom = y.shape[1], y.max(axis=1) + 1.0, y.min(axis=1) - 1.0
        runs = ((2.0, 0.15, top), (6.0, 0.06, bottom), (0.0, 0.2, top), (None, 0.2, bottom), (3.0, 1.2, top),
                (1.4, 0.3, bottom))  # (start s (None: at the end), length s, rail) of rows 0-5
        for row, (at, sec, rail) in enumerate(runs):
            k = int(round(sec * fs))
            start = n - k if at is None else int(at * fs)
            y[row, start: start + k] = rail[row]
        y[5, int(0.4 * fs) + np.arange(0, 30, 5)] = rail[5]  # (short runs beside the long one)
        for x in (y, np.round(y / 0.02) * 0.02):  # and at 20-µV steps
            want, got, clean, clean_k = _both(x, fs)
            _assert_same(want, got, f"long run fs={fs}")
            longest = got["clipped_longest_s"]
            np.testing.assert_allclose(longest[[0, 1, 4, 5]], [0.15, 0.06, 1.2, 0.3], rtol=1e-12, err_msg=str(fs))
            assert (longest[2:4] < 0.02).all(), (fs, longest)  # (the rest of the lead: a few ms at most)
