"""The compiled (numba) kernels of the filter chain against scipy, on real records and edge cases:
the 4-lane IIR kernels (every row count, kernel size and padding path), the sorted-blocks running
median (ties, constant rows, short rows, n < k, near-ties the float32 sort keys merge, extreme
values, the argsort path of long windows) and the fused z-score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

pytest.importorskip("numba", reason="numba not installed (ecgfounder[fast])")


class _OnFirstUse:
    """``ecgfounder.signal.compiled``, imported when a test first runs a kernel: importing it
    compiles the IIR kernels (~7 s cold), which must not happen while every xdist worker collects."""

    def __getattr__(self, name):
        from ecgfounder.signal import compiled as module

        return getattr(module, name)


compiled = _OnFirstUse()

from ecgfounder.signal.filters import _band_plan, _notch_plan  # noqa: E402


DATA = Path(__file__).resolve().parents[1] / "data" / "cinc2021"
NOTCH = _notch_plan(50.0, 30.0, 500.0)
BAND = _band_plan(0.67, 40.0, 4, 500.0)


def _plan(b, a):
    b, a = np.asarray(b, float), np.asarray(a, float)
    return b, a, sps.lfilter_zi(b, a), 3 * max(len(a), len(b))


def _filtfilt_ref(x, *plans):
    out = []
    for row in x:
        for b, a, _zi, _pad in plans:
            row = sps.filtfilt(b, a, row)
        out.append(row)
    return np.stack(out)


def _medfilt_ref(x, k):
    return np.stack([sps.medfilt(r, k) if k > 1 else r for r in x])


@pytest.fixture(scope="module")
def real():
    import wfdb

    names = sorted(p.stem for p in DATA.glob("*.hea"))[:4]
    return [np.nan_to_num(wfdb.rdsamp(str(DATA / n))[0].T) for n in names]


def test_filtfilt_equals_scipy_on_real_records(real):
    for x in real:
        got = compiled.filtfilt_rows(x, NOTCH, BAND)
        assert got.shape == x.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, _filtfilt_ref(x, NOTCH, BAND))  # same operations, same order


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 13])
def test_filtfilt_any_row_count_and_each_kernel(rows):
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 1001)).cumsum(-1)
    first_order = _plan(*sps.butter(1, 5.0, btype="highpass", fs=500))  # order 1: the order-2 kernel, padded
    tenth = _plan(*sps.butter(5, [1.0, 30.0], btype="bandpass", fs=500))  # order 10: the any-order kernel
    for plans in [(NOTCH,), (BAND,), (NOTCH, BAND), (BAND, NOTCH), (first_order, tenth, NOTCH)]:
        np.testing.assert_allclose(compiled.filtfilt_rows(x, *plans), _filtfilt_ref(x, *plans), rtol=0, atol=1e-10)


def test_filtfilt_shortest_rows():
    x = np.random.default_rng(0).standard_normal((2, BAND[3] + 1))  # one sample more than the padding
    np.testing.assert_allclose(compiled.filtfilt_rows(x, NOTCH, BAND), _filtfilt_ref(x, NOTCH, BAND), rtol=0, atol=1e-10)


def test_running_median_equals_scipy_on_real_records(real):
    for x in real:
        y = compiled.filtfilt_rows(x, NOTCH, BAND)
        want = _medfilt_ref(y, 201)
        np.testing.assert_array_equal(compiled.running_median_rows(y, 201), want)
        np.testing.assert_array_equal(compiled.running_median_rows(y, 201, subtract=True), y - want)


def test_running_median_edge_cases():
    rng = np.random.default_rng(7)
    near = 1.0 + rng.integers(0, 64, (2, 900)) * 2.0 ** -40  # equal as float32 keys: the exact repair does it all
    cases = {
        "ties": rng.integers(-2, 3, (3, 640)).astype(float),
        "constant": np.full((2, 500), 3.25),
        "zeros": np.zeros((1, 420)),
        "short (n < k)": rng.standard_normal((2, 150)),
        "n == k": rng.standard_normal((1, 201)),
        "odd length": rng.standard_normal((3, 997)),
        "one sample": rng.standard_normal((2, 1)),
        "near ties": near,
        "negative near ties": -near,
        "extreme": np.concatenate([rng.standard_normal((1, 700)) * 1e300, rng.standard_normal((1, 700)) * 1e-300]),
        "signed zeros": np.where(rng.random((2, 600)) < 0.5, -0.0, 0.0) + (rng.random((2, 600)) < 0.1),
    }
    for name, x in cases.items():
        for k in (1, 3, 51, 201):
            np.testing.assert_array_equal(compiled.running_median_rows(x, k), _medfilt_ref(x, k), err_msg=f"{name}, k={k}")
    x = rng.standard_normal((2, 9000))
    np.testing.assert_array_equal(compiled.running_median_rows(x, 4099), _medfilt_ref(x, 4099))  # argsort path


def test_zscore_f32_matches_numpy():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((12, 5000)) * 0.3 + 0.01
    want = ((w - w.mean()) / (w.std() + 1e-8)).astype(np.float32)
    got = compiled.zscore_f32(w)
    assert got.dtype == np.float32 and np.abs(got - want).max() <= 1e-6
    big = rng.standard_normal((3, 7000))
    view = big[:, 1000:6000]  # a window of a longer record: not contiguous
    out = np.empty((3, 5000), np.float32)
    compiled.zscore_f32(view, out)
    assert np.abs(out - ((view - view.mean()) / (view.std() + 1e-8))).max() <= 1e-6
    assert not compiled.zscore_f32(np.full((2, 10), 4.0)).any()  # constant window: zeros, no NaN


def test_prepare_same_for_any_memory_order(real, monkeypatch):
    from ecgfounder.signal import filters
    from ecgfounder.signal.preprocess import PreprocessContract, prepare

    monkeypatch.setattr(filters, "_COMPILED", [compiled])
    leads = PreprocessContract().leads
    x = real[0]
    a = prepare(np.ascontiguousarray(x), 500.0, leads).windows
    b = prepare(np.asfortranarray(x), 500.0, leads).windows
    np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(filters, "_COMPILED", [None])  # the scipy form: same windows to float32 rounding
    assert np.abs(prepare(x, 500.0, leads).windows - a).max() <= 1e-6


def test_running_median_of_non_finite_rows_is_scipy_s_not_a_crash(monkeypatch):
    # NaN has no place in the sorted blocks: a NaN run killed the process (rc 139), and the chain fed
    # the median NaN from finite input (samples near the float64 limit overflow the filters)
    from ecgfounder.signal import fast, filters

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 1200))
    x[1, 100:400] = np.nan
    x[2, 50] = np.inf
    want = filters.scipy_running_median(x, 201)
    assert compiled.running_median_rows(x, 201) is None  # the kernel declines; its callers take scipy's
    assert compiled.running_median_rows(x, 201, subtract=True) is None
    monkeypatch.setattr(filters, "_COMPILED", [compiled])
    np.testing.assert_array_equal(filters.running_median(x, 201), want)
    y = np.tile(np.sin(np.arange(2000) / 30.0), (5, 1))
    y[2, ::2], y[2, 1::2] = 1.7e308, -1.7e308  # finite: the compiled chain is taken
    with np.errstate(over="ignore", invalid="ignore"):
        monkeypatch.setattr(filters, "_COMPILED", [compiled])
        got = fast.filter_chain(y, 500.0)
        monkeypatch.setattr(filters, "_COMPILED", [None])
        want = fast.filter_chain(y, 500.0)
    np.testing.assert_array_equal(got[[0, 1, 3, 4]], want[[0, 1, 3, 4]])


def test_running_median_in_place_and_a_few_rows_of_working_memory():
    # the padded copy and the sort keys were made for all rows at once: twice the record on top of it
    import tracemalloc

    x = np.random.default_rng(4).standard_normal((12, 100_000)).cumsum(-1)
    want = x[:2] - _medfilt_ref(x[:2], 201)  # (two rows against scipy)
    compiled.running_median_rows(x[:1, :1000], 201)  # compiled before measuring
    tracemalloc.start()
    got = compiled.running_median_rows(x, 201, subtract=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * x.nbytes  # the result (1x) and two rows' buffers; was 2x without the result
    np.testing.assert_array_equal(got[:2], want[:2])
    y = x.copy()
    assert compiled.running_median_rows(y, 201, subtract=True, out=y) is y  # in place (the chain's y)
    np.testing.assert_array_equal(y, got)
    bad = x[:3, :2000].copy()
    bad[2, 5] = np.nan
    keep = bad.copy()
    assert compiled.running_median_rows(bad, 201, subtract=True, out=bad) is None
    np.testing.assert_array_equal(bad, keep)  # untouched when declined: the caller's scipy form reads it


def test_prepare_compiled_equals_scipy_on_awkward_records(real, monkeypatch):
    # every path of prepare through both forms: short, one window and a bit, NaN/inf, flat and
    # zero-filled leads, a single lead, other rates (resampled first)
    import warnings

    from scipy import signal as sps

    from ecgfounder.signal import filters
    from ecgfounder.signal.preprocess import PreprocessContract, prepare

    leads = list(PreprocessContract().leads)
    x = real[1]
    nan = x.copy()
    nan[2, 100:300] = np.nan
    nan[5, 4000] = np.inf
    flat = x.copy()
    flat[4] = 0.7
    cases = [
        (x[:, :1500], 500.0, leads, {}), (np.concatenate([x, x[:, :7]], 1), 500.0, leads, {}),
        (nan, 500.0, leads, {}), (flat, 500.0, leads, {}), (np.full_like(x, 0.3), 500.0, leads, {}),
        (np.delete(x, [8, 10], 0), 500.0, [n for n in leads if n not in ("V3", "V5")], {"fill_missing": True}),
        (x, 500.0, leads, {"contract": PreprocessContract(leads=("I",)), "lead": "V2"}),
        (sps.resample_poly(x, 257, 500, axis=-1), 257.0, leads, {}),
        (sps.resample_poly(x, 2, 1, axis=-1)[:, :11000], 1000.0, leads, {}),
    ]
    for k, (sig, fs, names, kw) in enumerate(cases):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monkeypatch.setattr(filters, "_COMPILED", [compiled])
            a = prepare(sig, fs, names, **kw)
            monkeypatch.setattr(filters, "_COMPILED", [None])
            b = prepare(sig, fs, names, **kw)
        assert a.windows.shape == b.windows.shape and a.notes == b.notes, k
        assert np.isfinite(a.windows).all() and np.abs(a.windows - b.windows).max() <= 1e-6, k
