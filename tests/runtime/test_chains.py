"""The fast chain (compiled and scipy forms) against the per-lead scipy reference and the
published outputs (golden)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from ecgfounder.signal import fast
from ecgfounder.signal.preprocess import PreprocessContract, preprocess



def _records(data_dir, names):
    import wfdb

    return [np.nan_to_num(wfdb.rdsamp(str(data_dir / "cinc2021" / n))[0].T) for n in names]


def _z(x):
    return ((x - x.mean()) / (x.std() + 1e-8)).astype(np.float32)


def test_filtfilt_and_median_equal_scipy_per_row():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 1700)).cumsum(-1)
    b, a = sps.butter(4, [0.67, 40], btype="bandpass", fs=500)
    ref = np.stack([[sps.filtfilt(b, a, r) for r in rec] for rec in x])
    np.testing.assert_allclose(fast.filtfilt_ba(b, a, x), ref, rtol=0, atol=1e-12)
    med = np.stack([[sps.medfilt(r, 201) for r in rec] for rec in x])
    np.testing.assert_array_equal(fast.running_median(x, 201), med)
    np.testing.assert_array_equal(fast.running_median(x[..., :150], 201), np.stack([[sps.medfilt(r, 201) for r in rec] for rec in x[..., :150]]))
    with pytest.raises(ValueError):
        fast.running_median(x, 200)
    with pytest.raises(ValueError, match="too short"):
        fast.filtfilt_ba(b, a, x[..., :20])


@pytest.fixture(params=["scipy", "compiled"])
def chain_impl(request, monkeypatch):
    """The chain's two implementations, each forced for one test (the suite runs on scipy by
    default: tests/conftest.py sets ECGFOUNDER_NUMBA=0 so that every test process does not pay the
    kernels' compilation)."""
    from ecgfounder.signal import filters

    if request.param == "compiled":
        compiled = pytest.importorskip("ecgfounder.signal.compiled", reason="numba not installed")
        monkeypatch.setattr(filters, "_COMPILED", [compiled])
    else:
        monkeypatch.setattr(filters, "_COMPILED", [None])
    assert fast.compiled_available() == (request.param == "compiled")
    return request.param


def test_fast_chain_equals_reference_and_golden(golden, data_dir, chain_impl):
    names = golden["names"][golden["sub_index"]]
    for rec, want in zip(_records(data_dir, names), golden["preprocessed_12_sub"]):
        f = fast.filter_chain(rec, 500.0)
        np.testing.assert_allclose(f, fast.reference_chain(rec, 500.0), rtol=0, atol=1e-10)
        assert np.abs(_z(f) - want).max() <= 1e-4
        assert np.abs(preprocess(rec, 500.0, PreprocessContract().leads)[0] - want).max() <= 1e-4


def test_compiled_kernels_equal_scipy_on_edge_cases():
    compiled = pytest.importorskip("ecgfounder.signal.compiled", reason="numba not installed (ecgfounder[fast])")
    from ecgfounder.signal.filters import _band_plan, _notch_plan, scipy_running_median

    rng = np.random.default_rng(3)
    cases = [rng.standard_normal((3, 997)), rng.integers(-2, 3, (2, 640)).astype(float),  # many ties
             rng.standard_normal((2, 150)), np.zeros((1, 420)), rng.standard_normal((1, 201))]
    for x in cases:
        for k in (1, 3, 51, 201):
            want = np.stack([sps.medfilt(r, k) for r in x]) if k > 1 else x
            np.testing.assert_array_equal(compiled.running_median_rows(x, k), want)
            np.testing.assert_array_equal(scipy_running_median(x, k), want)
    x = rng.standard_normal((12, 1300)).cumsum(-1)
    plans = (_notch_plan(50.0, 30.0, 500.0), _band_plan(0.67, 40.0, 4, 500.0))
    want = np.stack([sps.filtfilt(plans[1][0], plans[1][1], sps.filtfilt(plans[0][0], plans[0][1], r)) for r in x])
    np.testing.assert_allclose(compiled.filtfilt_rows(x, *plans), want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(compiled.filtfilt_rows(x, plans[1]), np.stack([sps.filtfilt(*plans[1][:2], r) for r in x]),
                               rtol=0, atol=1e-10)
    # non-finite input takes the scipy path, same result as before
    y = x.copy()
    y[0, 5] = np.nan
    assert np.isnan(fast.filter_chain(y, 500.0)[0]).any() and np.isfinite(fast.filter_chain(y, 500.0)[1:]).all()
