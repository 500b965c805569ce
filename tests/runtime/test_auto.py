"""auto path selection (cache, bounds, partial choices) and the OpenVINO runner.
No timing is asserted: fake paths are made slow by orders of magnitude, never by margins."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from ecgfounder.runtime import Bounds, auto_status, candidate_paths, choose_path, make_runner, openvino_available
from ecgfounder.runtime.auto import MIN_INT8_WINDOWS, agreement


def _reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = x.reshape(len(x), -1)
    return 1 / (1 + np.exp(-flat[:, :5])), flat[:, :7] + 1.0


class FakePaths:
    """Fake runners: exact, slightly off, far off, and slow ones; counts how often each is built."""

    def __init__(self, errors: dict, slow: set | dict):
        self.errors, self.built = errors, []
        self.slow = slow if isinstance(slow, dict) else dict.fromkeys(slow, 0.02)

    def __call__(self, prec, be, calib):
        self.built.append((prec, be, None if calib is None else len(calib)))
        err, delay = self.errors.get((prec, be), 0.0), self.slow.get((prec, be), 0.0)

        def run(x):
            if delay:
                time.sleep(delay)
            s, f = _reference(x)
            return s + err, f + err * np.arange(f.shape[1])
        return run


@pytest.fixture(autouse=True)
def _measure_for_real(monkeypatch):
    monkeypatch.delenv("ECGFOUNDER_AUTO_PATH", raising=False)  # conftest pins auto for the other tests


@pytest.fixture
def windows():
    return np.random.default_rng(0).standard_normal((12, 2, 50)).astype(np.float32)


def _choose(build, cands, x, tmp_path, **kw):
    lines = []
    kw.setdefault("announce", lines.append)
    return choose_path(build, cands, x, weights="w1", cache_dir=tmp_path, batch=4, seconds=0.0, rounds=1, **kw), lines


def test_each_path_is_released_before_the_next_is_built(windows, tmp_path):
    """A built path holds its weights and compiled kernels: auto measures one at a time (all seven
    of the published model held at once took 3.3 GB), so none is alive when the next is built but
    the fp32/torch reference (the caller's own model, timed beside each path)."""
    import weakref

    alive: list[weakref.ref] = []
    seen: list[int] = []

    class Built:
        def __init__(self, delay: float) -> None:
            self.delay = delay

        def __call__(self, x):
            time.sleep(self.delay)
            return _reference(x)

    def build(prec, be, calib):
        seen.append(sum(r() is not None for r in alive))
        run = Built(0.02 if (prec, be) == ("fp32", "torch") else 0.0)
        alive.append(weakref.ref(run))
        return run

    cands = [("fp32", "torch"), ("fp32", "onnxruntime"), ("bf16", "openvino"), ("int8", "openvino")]
    choice = choose_path(build, cands, windows, weights="w1", cache_dir=tmp_path, batch=4, seconds=0.0, rounds=2,
                         announce=None)
    assert seen == [0, 1, 1, 1] and choice.name != "fp32/torch"
    assert not any(r() is not None for r in alive)  # the reference too, once the choice is made
    assert all(f.ecg_per_s > 0 for f in choice.figures)


@pytest.mark.slow  # (a second timing-race check beside the auto choice tests; keeps the default run under 2 min)
def test_load_while_one_path_is_measured_does_not_decide(windows, tmp_path):
    """Another program loading the machine while the fastest path is measured slows the reference
    timed beside it alike: that path is still chosen (timed alone, it looked 20x slower and lost)."""
    load = {"now": 1.0}
    delays = {("fp32", "torch"): 0.02, ("bf16", "torch"): 0.01, ("int8", "openvino"): 0.002}

    def build(prec, be, calib):
        load["now"] = 20.0 if (prec, be) == ("int8", "openvino") else 1.0  # busy while it is measured

        def run(x, d=delays[(prec, be)]):
            time.sleep(d * load["now"])
            return _reference(x)
        return run

    choice = choose_path(build, list(delays), windows, weights="w1", cache_dir=tmp_path, batch=4, seconds=0.0,
                         rounds=2, announce=None)
    assert choice.name == "int8/openvino"
    figs = {f.name: f.ecg_per_s for f in choice.figures}
    assert figs["int8/openvino"] > 2 * figs["bf16/torch"] > 2 * figs["fp32/torch"]


def test_fastest_accurate_path_is_chosen_and_cached(windows, tmp_path):
    cands = [("fp32", "torch"), ("fp32", "onnxruntime"), ("bf16", "torch"), ("int8", "openvino")]
    fake = FakePaths(errors={("bf16", "torch"): 1e-3, ("int8", "openvino"): 5e-3},
                     slow={("fp32", "torch"), ("fp32", "onnxruntime"), ("bf16", "torch")})
    choice, lines = _choose(fake, cands, windows, tmp_path)
    assert choice.name == "int8/openvino" and not choice.cached and not choice.partial
    assert len(lines) == 1 and lines[0].startswith("ecgfounder auto: int8/openvino")
    assert all(f.ok for f in choice.figures)
    assert ("int8", "openvino", 6) in fake.built  # calibrated on half of the real windows
    entry = json.loads(next((tmp_path / "auto").glob("*.json")).read_text())
    assert entry["precision"] == "int8" and entry["backend"] == "openvino"
    # cache hit: nothing is built or timed again, nothing announced
    fake2 = FakePaths({}, set())
    again, lines2 = _choose(fake2, cands, windows, tmp_path)
    assert again.cached and again.name == "int8/openvino" and fake2.built == [] and lines2 == []
    assert any(line.startswith("int8/openvino") for line in auto_status(tmp_path))
    from ecgfounder.runtime import speed_info

    assert speed_info(tmp_path)["auto cache"].startswith(f"{tmp_path / 'auto'} (remove it to measure again")
    assert "auto cache" not in speed_info(tmp_path / "empty")
    # other weights (or threads, batch class, machine) miss the cache
    fake3 = FakePaths({}, set())
    choose_path(fake3, cands, windows, weights="w2", cache_dir=tmp_path, batch=4, seconds=0.0, rounds=1, announce=None)
    assert fake3.built


def test_a_capped_instruction_set_is_another_machine(windows, tmp_path, monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 machine makes its bf16 path ~30x slower (measured:
    2.8 ECG/s): a choice cached without the cap must not serve under it, nor the other way round."""
    cands = [("fp32", "torch"), ("bf16", "torch")]
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    first, _ = _choose(FakePaths({("bf16", "torch"): 1e-3}, {("fp32", "torch")}), cands, windows, tmp_path)
    assert first.name == "bf16/torch" and not first.cached
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped, _ = _choose(FakePaths({("bf16", "torch"): 1e-3}, {("bf16", "torch")}), cands, windows, tmp_path)
    assert not capped.cached and capped.name == "fp32/torch"
    again, _ = _choose(FakePaths({}, set()), cands, windows, tmp_path)
    assert again.cached and again.name == "fp32/torch"
    from ecgfounder.runtime import speed_info

    assert "under ONEDNN_MAX_CPU_ISA=AVX2," in speed_info(tmp_path)["cpu"]  # what `ecgfounder env` shows
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert "under" not in speed_info(tmp_path)["cpu"]
    back, _ = _choose(FakePaths({}, set()), cands, windows, tmp_path)
    assert back.cached and back.name == "bf16/torch"


def test_paths_outside_bounds_are_rejected_even_when_fastest(windows, tmp_path):
    cands = [("fp32", "torch"), ("fp32", "openvino"), ("bf16", "openvino"), ("int8", "onnxruntime")]
    fake = FakePaths(errors={("fp32", "openvino"): 1e-3,      # fp32 must be exact to 1e-4
                             ("int8", "onnxruntime"): 0.05},  # beyond |dprob| 0.01
                     slow={("fp32", "torch"): 0.1, ("bf16", "openvino"): 0.02})
    choice, _ = _choose(fake, cands, windows, tmp_path)
    figs = {f.name: f for f in choice.figures}
    assert not figs["fp32/openvino"].ok and not figs["int8/onnxruntime"].ok
    assert "outside bounds" in figs["int8/onnxruntime"].reason
    assert choice.name == "bf16/openvino"  # the slow but accurate one, not the fast inaccurate ones
    strict, _ = _choose(FakePaths({("bf16", "openvino"): 1e-3}, {("fp32", "torch")}), cands[:3], windows,
                        tmp_path / "strict", bounds=Bounds(max_dprob=1e-4))
    assert strict.name == "fp32/openvino" and not strict.figure("bf16/openvino").ok


def test_more_exact_path_preferred_when_nearly_as_fast(windows, tmp_path):
    fake = FakePaths(errors={("int8", "onnxruntime"): 5e-3}, slow=set())  # all equally fast
    choice, _ = _choose(fake, [("fp32", "torch"), ("int8", "onnxruntime")], windows, tmp_path, prefer_exact=0.99)
    assert choice.name == "fp32/torch"


def test_few_windows_skip_int8_and_measure_again_later(windows, tmp_path):
    cands = [("fp32", "torch"), ("int8", "onnxruntime")]
    few = windows[: MIN_INT8_WINDOWS - 1]
    choice, _ = _choose(FakePaths({}, {("fp32", "torch")}), cands, few, tmp_path)
    assert choice.partial and choice.name == "fp32/torch" and "not tried" in choice.figure("int8/onnxruntime").reason
    cached, _ = _choose(FakePaths({}, set()), cands, few, tmp_path)
    assert cached.cached  # a single record again: the partial choice serves
    full, _ = _choose(FakePaths({}, {("fp32", "torch")}), cands, windows, tmp_path)
    assert not full.cached and not full.partial and full.name == "int8/onnxruntime"


def test_failing_path_is_skipped_and_bad_input_refused(windows, tmp_path):
    def build(prec, be, calib):
        if be == "openvino":
            raise RuntimeError("no such device")
        return FakePaths({}, set())(prec, be, calib)

    choice, _ = _choose(build, [("fp32", "torch"), ("fp32", "openvino")], windows, tmp_path)
    assert choice.name == "fp32/torch" and "failed: RuntimeError" in choice.figure("fp32/openvino").reason
    with pytest.raises(ValueError, match="real windows"):
        _choose(build, [("fp32", "torch")], windows[0], tmp_path)


def _served_badly(kind: str):
    """Fake paths: int8/onnxruntime fast and exact on the measurement windows, but off (or crashing)
    at the larger batch it serves, or only once that batch size was seen twice (OpenVINO compiles
    it then); the others slow and exact."""
    seen: dict[int, int] = {}

    def build(prec, be, calib):
        def run(x):
            s, f = _reference(x)
            if (prec, be) != ("int8", "onnxruntime"):
                time.sleep(0.01)
                return s, f
            seen[len(x)] = seen.get(len(x), 0) + 1
            if kind == "crash" and len(x) > 12:
                raise RuntimeError("kernel crashed\nat batch 32")
            if kind == "silent" and len(x) > 12:
                raise AssertionError()  # (no message at all)
            if (kind == "batch" and len(x) > 12) or (kind == "repeated" and len(x) > 12 and seen[len(x)] > 2):
                s = s + 0.05
            return s, f
        return run
    return build


@pytest.mark.parametrize("kind", ["batch", "repeated", "crash", "silent"])
def test_a_path_off_or_crashing_at_the_served_batch_is_not_chosen(windows, tmp_path, kind):
    lines: list[str] = []
    choice = choose_path(_served_badly(kind), [("int8", "onnxruntime")], windows, weights="w1", cache_dir=tmp_path,
                         batch=32, seconds=0.0, rounds=1, announce=lines.append)
    fig = choice.figure("int8/onnxruntime")
    assert choice.name == "fp32/torch" and not fig.ok
    want = {"crash": "failed: RuntimeError: kernel crashed", "silent": "failed: AssertionError"}.get(
        kind, "outside bounds (|dprob| 5.0e-02")
    assert fig.reason.startswith(want), fig.reason
    assert "rejected: int8/onnxruntime" in lines[0]


def test_line_tells_rejected_from_not_tried(windows, tmp_path):
    few = windows[: MIN_INT8_WINDOWS - 1]
    cands = [("fp32", "torch"), ("fp32", "onnxruntime"), ("int8", "onnxruntime")]
    choice, lines = _choose(FakePaths({("fp32", "onnxruntime"): 1e-3}, set()), cands, few, tmp_path)
    assert lines[0].endswith("; rejected: fp32/onnxruntime; not tried: int8/onnxruntime; measured on 7 real windows)")


def test_a_choice_of_another_package_release_is_measured_again(windows, tmp_path, monkeypatch):
    """Another release may export or quantise otherwise: its cached choice is not taken on trust."""
    import ecgfounder

    cands = [("fp32", "torch"), ("int8", "onnxruntime")]
    first, _ = _choose(FakePaths({}, {("fp32", "torch")}), cands, windows, tmp_path)
    assert first.name == "int8/onnxruntime"
    monkeypatch.setattr(ecgfounder, "__version__", "99.0")
    fake = FakePaths({("int8", "onnxruntime"): 0.05}, {("fp32", "torch")})
    again, _ = _choose(fake, cands, windows, tmp_path)
    assert not again.cached and fake.built and again.name == "fp32/torch"


def test_agreement_measures():
    s, f = np.zeros((3, 4)), np.ones((3, 5))
    assert agreement(s, f, s, f) == (0.0, pytest.approx(1.0))
    dp, cos = agreement(s + 0.02, -f, s, f)
    assert dp == pytest.approx(0.02) and cos == pytest.approx(-1.0)


def test_candidate_paths_rules():
    assert candidate_paths("fp32", "torch") == [("fp32", "torch")]
    assert all(p == "int8" for p, _ in candidate_paths("int8", "auto"))
    assert candidate_paths("auto", "torch")[0] == ("fp32", "torch")
    with pytest.raises(ValueError, match="onnxruntime or openvino"):
        candidate_paths("int8", "torch")
    with pytest.raises(ValueError, match="unknown backend"):
        candidate_paths("fp32", "tensorrt")


def test_auto_runner_measures_on_first_batch_of_real_windows(tiny, golden, tmp_path, monkeypatch):
    x = golden["preprocessed_12_sub"][:2]
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(x)
    run = make_runner(tiny, "auto", "torch", cache_dir=tmp_path, auto_seconds=0.0)  # fp32 or bf16 weights
    assert run.precision == "auto" and run.choice is None
    s, f = run(x)
    assert run.choice is not None and (run.precision, run.backend) == (run.choice.precision, run.choice.backend)
    assert np.abs(s - ref_s).max() <= 0.01 and agreement(s, f, ref_s, ref_f)[1] >= 0.999
    again = make_runner(tiny, "auto", "torch", cache_dir=tmp_path, calibration=x, auto_seconds=0.0)
    assert again.choice.cached and again.backend == run.backend
    # `ecgfounder env` says whose choice each is (the choices of several models were listed unnamed)
    assert auto_status(tmp_path)[0].startswith(f"unnamed weights (12 lead(s), 150 outputs): {run.choice.name} at batch")
    monkeypatch.setenv("ECGFOUNDER_AUTO_PATH", "fp32/torch")  # pinned: no measurement
    pinned = make_runner(tiny, "auto", "auto", cache_dir=tmp_path / "none")
    assert (pinned.precision, pinned.backend) == ("fp32", "torch") and not (tmp_path / "none").exists()


def test_a_job_smaller_than_a_batch_runs_the_exact_path_unmeasured_unless_a_choice_is_cached(tiny, golden, tmp_path):
    """auto's first use on a machine built and timed every path (~30 s with the published weights) before
    a job of one record; a stream fills every batch but its last, so a first batch that is not full is
    the whole job: it runs the exact fp32/torch path, and a choice cached before is still taken."""
    import ecgfounder.runtime.auto as auto

    x = golden["preprocessed_12_sub"][:3]
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(x)
    small = make_runner(tiny, "auto", "auto", cache_dir=tmp_path, batch=32, exact_if_small=True, auto_seconds=0.0,
                        calibration=x[:2])  # (calibration given: measured on the first call, not at once)
    assert small.choice is None
    s, f = small(x)
    assert (small.precision, small.backend) == ("fp32", "torch") and "not measured" in small.detail
    assert np.array_equal(s, ref_s) and np.array_equal(f, ref_f)
    assert not (tmp_path / "auto").exists()  # nothing cached: a larger job measures
    four = np.concatenate([x] * 2)[:4]
    full = make_runner(tiny, "auto", "torch", cache_dir=tmp_path, batch=4, exact_if_small=True, auto_seconds=0.0)
    full(four)  # a full first batch: measured, and cached
    assert full.choice is not None and not full.choice.cached and list((tmp_path / "auto").glob("*.json"))
    again = make_runner(tiny, "auto", "torch", cache_dir=tmp_path, batch=4, exact_if_small=True, auto_seconds=0.0)
    again(x)
    assert again.choice.cached and (again.precision, again.backend) == (full.precision, full.backend)
    plain = make_runner(tiny, "auto", "torch", cache_dir=tmp_path / "b", batch=32, auto_seconds=0.0)
    plain(x)  # without exact_if_small (shards: every part must take one path): measured as before
    assert plain.choice is not None and plain.choice.figures
    bf16 = make_runner(tiny, "bf16", "auto", cache_dir=tmp_path / "c", batch=32, exact_if_small=True, auto_seconds=0.0)
    bf16(x)  # bf16 asked for: never the fp32 path, however small the job
    assert bf16.precision == "bf16"


def test_a_small_jobs_cached_int8_choice_calibrates_on_the_callers_windows(tiny, golden, tmp_path, monkeypatch):
    """A job under one batch taking a cached int8 choice quantised on its own few windows, not on the
    calibration set the caller gave (every shard and resume's set): another graph, other values."""
    import ecgfounder.runtime.auto as auto
    import ecgfounder.runtime.runners as runners
    from ecgfounder.runtime.auto import Choice

    x, cal = golden["preprocessed_12_sub"][:3], golden["preprocessed_12_sub"][3:9]
    monkeypatch.setattr(auto, "choose_path", lambda *a, **k: Choice("int8", "openvino", 32, "k", cached=True))
    seen = []
    real = runners.build_runner

    def spy(model, prec, be, dev, *, calibration=None, **kw):
        seen.append(None if calibration is None else np.asarray(calibration))
        return real(model, "fp32", "torch", dev)  # (what runs does not matter here)

    monkeypatch.setattr(runners, "build_runner", spy)
    run = make_runner(tiny, "auto", "auto", cache_dir=tmp_path, batch=32, exact_if_small=True, calibration=cal)
    run(x)
    assert len(seen) == 1 and np.array_equal(seen[0], cal[:3])  # (half the set, as measured choices take)


def test_windows_given_as_a_function_are_made_only_for_a_measurement(windows, tmp_path):
    """auto's windows may come as a function (predict's calibration set: records to read and prepare):
    called once to measure, not at all for a cached choice, and to count them for a partial one."""
    calls = []

    def given(w):
        return lambda: calls.append(len(w)) or w

    build = FakePaths({}, {("bf16", "torch"): 0.005})
    cands = [("fp32", "torch"), ("bf16", "torch"), ("int8", "onnxruntime")]
    first, _ = _choose(build, cands, given(windows[:4]), tmp_path)  # few windows: a partial choice
    assert first.partial and not first.cached and calls == [4]
    again, _ = _choose(build, cands, given(windows[:4]), tmp_path)  # partial: counted, still few, taken
    assert again.cached and calls == [4, 4]
    more, _ = _choose(build, cands, given(windows), tmp_path)  # enough now: measured again, on them
    assert not more.partial and not more.cached and calls == [4, 4, 12]
    cached, _ = _choose(build, cands, given(windows), tmp_path)
    assert cached.cached and calls == [4, 4, 12]  # a whole choice cached: not made at all
    with pytest.raises(ValueError, match="real windows"):
        _choose(build, cands, given(windows[:0]), tmp_path / "empty")


def test_a_runners_calibration_function_is_called_only_where_it_is_used(tiny, golden, tmp_path, monkeypatch):
    """predict read and preprocessed its first 64 records for int8 calibration on every run with auto,
    also where the path taken needs none (a cached fp32 or bf16 choice, a pinned path)."""
    import ecgfounder.runtime.auto as auto
    import ecgfounder.runtime.runners as runners
    from ecgfounder.runtime.auto import Choice

    x, cal = golden["preprocessed_12_sub"][:4], golden["preprocessed_12_sub"][4:10]
    calls, seen, real = [], [], runners.build_runner

    def windows():
        calls.append(1)
        return cal

    def choice(precision):
        def choose(build, cands, w, **kw):  # a cached choice: the windows are not asked for
            seen.append(("measured on", len(w()) if callable(w) else len(w)) if precision is None else "cached")
            return Choice(precision or "fp32", "torch" if precision != "int8" else "openvino", 4, "k",
                          cached=precision is not None)
        return choose

    def spy(model, prec, be, dev, *, calibration=None, **kw):
        seen.append(calibration)
        return real(model, "fp32", "torch", dev)  # (what runs does not matter here)

    monkeypatch.setattr(runners, "build_runner", spy)
    for precision, reads in (("bf16", 0), ("int8", 1)):
        calls.clear()
        monkeypatch.setattr(auto, "choose_path", choice(precision))
        make_runner(tiny, "auto", "auto", cache_dir=tmp_path, batch=4, calibration=windows)
        assert len(calls) == reads
    assert np.array_equal(seen[-1], cal[:3])  # int8: the caller's windows, half of them
    monkeypatch.setattr(auto, "choose_path", choice(None))
    seen.clear()
    late = make_runner(tiny, "auto", "auto", cache_dir=tmp_path, batch=4, calibration=lambda: None)
    assert seen == [] and late.choice is None  # no record could be read: the first batch decides
    late(x)
    assert seen[0] == ("measured on", 4)
    monkeypatch.setenv("ECGFOUNDER_AUTO_PATH", "fp32/torch")
    calls.clear()
    make_runner(tiny, "auto", "auto", cache_dir=tmp_path, batch=4, calibration=windows)
    assert calls == []  # pinned: not read


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed (pip install ecgfounder[openvino])")
def test_openvino_runner_parity(tiny, golden, tmp_path):
    x = golden["preprocessed_12_sub"]
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(x)
    s, f = make_runner(tiny, "fp32", "openvino", cache_dir=tmp_path)(x)
    assert s.dtype == f.dtype == np.float32 and s.shape == (len(x), 150)
    assert np.abs(s - ref_s).max() <= 1e-5 and np.abs(f - ref_f).max() <= 1e-5  # (measured: 6e-8 and 4e-8)


def test_stream_count_splits_evenly_into_parts_of_min_part():
    from ecgfounder.runtime.openvino import MIN_PART, stream_count

    assert MIN_PART == 4
    assert stream_count(32, 2) == 2 and stream_count(32, 16) == 8 and stream_count(32, 3) == 2
    assert stream_count(1, 2) == stream_count(7, 2) == stream_count(8, 1) == 1  # too small, or one thread
    assert stream_count(8, 2) == 2 and stream_count(9, 2) == 1  # 9 has no even split into parts of >= 4
    assert stream_count(24, 5) == 4 and stream_count(12, 4) == 3
    for b in range(1, 70):
        for t in (1, 2, 3, 4, 8, 16):
            s = stream_count(b, t)
            assert 1 <= s <= max(1, t) and b % s == 0 and (s == 1 or b // s >= MIN_PART)


@pytest.mark.skipif(not openvino_available(), reason="openvino not installed (pip install ecgfounder[openvino])")
def test_openvino_streams_equal_one_request(tiny, golden, tmp_path):
    """A repeated batch size runs on two streams (two requests, half the batch each): the same
    values, in the same order, as one request over the whole batch, and as torch fp32."""
    x = np.concatenate([golden["preprocessed_12_sub"]] * 4)[:8]
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(x)
    streamed = make_runner(tiny, "fp32", "openvino", cache_dir=tmp_path, threads=2)
    # the 1st call of a batch size: one request over both threads (the dynamic compilation);
    # the 2nd and 3rd: its static compilation on 2 streams
    (s1, f1), *outs = [streamed(x) for _ in range(3)]
    for s, f in outs:
        assert s.shape == (8, 150) and f.shape == f1.shape and s.dtype == f.dtype == np.float32
        assert np.abs(s - ref_s).max() <= 1e-4 and np.abs(f - ref_f).max() <= 1e-4
        assert np.abs(s - s1).max() <= 1e-6 and np.abs(f - f1).max() <= 1e-6
    # the first half of the batch alone gives the first half of the answer (parts are not mixed up)
    half_s, _ = streamed(x[:4])
    assert np.abs(half_s - outs[-1][0][:4]).max() <= 1e-6 and np.abs(outs[-1][0][4:] - ref_s[4:]).max() <= 1e-4
    # both compilations were kept on disk (OpenVINO's CACHE_DIR beside the exported graph), and a
    # new session (what a new process builds) answers the same from them
    blobs = [p for p in tmp_path.rglob("openvino/*") if p.is_file()]
    assert len(blobs) >= 2, sorted(tmp_path.rglob("*"))
    again = make_runner(tiny, "fp32", "openvino", cache_dir=tmp_path, threads=2)
    for _ in range(3):
        s, f = again(x)
    assert np.abs(s - outs[-1][0]).max() <= 1e-6 and np.abs(f - outs[-1][1]).max() <= 1e-6
    # a path auto only times (keep_compiled=False) leaves no compiled model on disk: only the chosen one does
    from ecgfounder.runtime.runners import build_runner

    timed = build_runner(tiny, "fp32", "openvino", cache_dir=tmp_path / "timed", threads=2, keep_compiled=False)
    for _ in range(3):
        timed(x)
    assert not [p for p in (tmp_path / "timed").rglob("openvino/*") if p.is_file()]


@pytest.mark.slow
@pytest.mark.skipif(not openvino_available(), reason="openvino not installed (pip install ecgfounder[openvino])")
def test_openvino_int8_and_bf16_run_close(tiny, golden, tmp_path):
    x = golden["preprocessed_12_sub"]
    ref_s, ref_f = make_runner(tiny, "fp32", "torch")(x)
    for prec in ("bf16", "int8"):
        s, f = make_runner(tiny, prec, "openvino", calibration=x[:4], cache_dir=tmp_path)(x[:3])
        assert np.abs(s - ref_s[:3]).max() < 0.05 and agreement(s, f, ref_s[:3], ref_f[:3])[1] > 0.99


def test_runner_streams_follow_backend_and_batch(tiny, tmp_path):
    """What predict's overlap plan reads: streams only for OpenVINO on the CPU, from its threads."""
    from ecgfounder.runtime.runners import Runner

    assert make_runner(tiny, "fp32", "torch").streams(32) == 1
    plain = Runner(lambda x: x, "int8", "openvino", "cpu")  # threads unknown: no claim of streams
    assert plain.streams(32) == 1
    on_two = Runner(lambda x: x, "int8", "openvino", "cpu", threads=2)
    assert on_two.streams(32) == 2 and on_two.streams(1) == on_two.streams(9) == 1
    assert Runner(lambda x: x, "int8", "onnxruntime", "cpu", threads=2).streams(32) == 1
    if openvino_available():
        built = make_runner(tiny, "fp32", "openvino", cache_dir=tmp_path, threads=2)
        assert built.threads == 2 and built.streams(32) == 2


@pytest.mark.parametrize("damage", ["other machine", "cut", "not a choice", "figures not numbers"])
def test_a_cached_choice_of_another_machine_or_damaged_is_measured_again(windows, tmp_path, damage):
    """An entry under this machine's key that records another machine (copied with the cache, and
    renamed) was served as this machine's measurement; a damaged one is measured again too."""
    cands = [("fp32", "torch"), ("int8", "onnxruntime")]
    first, _ = _choose(FakePaths({}, {("fp32", "torch")}), cands, windows, tmp_path)
    assert first.name == "int8/onnxruntime"
    entry = next((tmp_path / "auto").glob("*.json"))
    d = json.loads(entry.read_text())
    if damage == "other machine":
        d["identity"] = {**d["identity"], "cpu": "Another CPU", "cpu_flags": "0123456789ab"}
        entry.write_text(json.dumps(d))
    elif damage == "cut":
        entry.write_text(json.dumps(d)[:100])
    elif damage == "not a choice":
        entry.write_text("[1, 2]")
    else:
        d["figures"][0]["ecg_per_s"] = "fast"
        entry.write_text(json.dumps(d))
    fake = FakePaths({("int8", "onnxruntime"): 0.05}, {("fp32", "torch")})  # int8 now off: the exact path wins
    again, lines = _choose(fake, cands, windows, tmp_path)
    assert not again.cached and fake.built and again.name == "fp32/torch" and len(lines) == 1
    assert json.loads(entry.read_text())["identity"] == again.identity  # the entry is this machine's again


@pytest.mark.parametrize("other", ["isa cap", "cores"])
def test_env_lists_only_choices_auto_would_take_here(windows, tmp_path, monkeypatch, other):
    """`ecgfounder env` listed a choice measured without ONEDNN_MAX_CPU_ISA (or on more cores) as
    this machine's auto path while auto, under the cap, measures again (bf16 ~30x slower there)."""
    import os

    cands = [("fp32", "torch"), ("bf16", "torch")]
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    first, _ = _choose(FakePaths({("bf16", "torch"): 1e-3}, {("fp32", "torch")}), cands, windows, tmp_path)
    assert first.name == "bf16/torch" and auto_status(tmp_path)[0].startswith("bf16/torch")
    if other == "isa cap":
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    else:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(int(first.identity["cores"]) + 1)))
    assert auto_status(tmp_path)[0].startswith("not measured yet")
    fake = FakePaths({}, set())
    assert not _choose(fake, cands, windows, tmp_path)[0].cached and fake.built  # (what auto does here)
