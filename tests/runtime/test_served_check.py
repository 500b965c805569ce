"""An explicit int8/OpenVINO path is checked against fp32 at the batches it serves, as ``auto`` checks
its paths: a batch its kernels get wrong is an error naming the path and the agreement, not
wrong scores."""

from __future__ import annotations

import numpy as np
import pytest

import ecgfounder.runtime.runners as runners
from ecgfounder.cli._common import flags
from ecgfounder.runtime import make_runner, openvino_available
from ecgfounder.runtime.checked import PathDisagreesError, check_rows

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino not installed")

X = np.random.default_rng(0).standard_normal((16, 12, 5000)).astype(np.float32)


@pytest.fixture(scope="module")
def truth(tiny):
    return make_runner(tiny, "fp32", "torch")(X)


def _served(monkeypatch, truth, off_from_call: int):
    """int8/openvino replaced by the fp32 answers, rows 8+ off by 0.05 from call ``off_from_call`` on
    (OpenVINO compiles a batch size on its second call); counts the reference's calls."""
    calls = {"path": 0, "reference": 0}

    def build(model, prec, be, dev, **kw):
        def run(x):
            calls["path"] += 1
            s, f = truth[0][: len(x)].copy(), truth[1][: len(x)]
            if calls["path"] >= off_from_call:
                s[8:] = np.clip(s[8:] + 0.05, 0, 1)
            return s, f
        return runners.Runner(run, prec, be, "cpu")

    torch_runner = runners._torch_runner

    def reference(model, prec, dev):
        ref = torch_runner(model, prec, dev)
        fn = ref.fn
        ref.fn = lambda x: (calls.__setitem__("reference", calls["reference"] + 1), fn(x))[1]
        return ref

    monkeypatch.setattr(runners, "build_runner", build)
    monkeypatch.setattr(runners, "_torch_runner", reference)
    return calls


@needs_openvino
def test_explicit_int8_openvino_off_at_its_batch_is_refused(tiny, truth, monkeypatch):
    calls = _served(monkeypatch, truth, off_from_call=2)
    run = make_runner(tiny, "int8", "openvino")
    assert "checked against fp32" in run.describe()
    s, _ = run(X)  # the first call agrees
    np.testing.assert_allclose(s, truth[0], atol=1e-6)
    with pytest.raises(PathDisagreesError) as err:
        run(X)
    msg = str(err.value)
    assert msg.startswith("precision='int8' with backend='openvino' disagrees with fp32 at batch 16 on this machine: "
                          "max |Δprob| 0.05 (bound 0.01)"), msg
    assert "on 8 of its windows" in msg and "precision='fp32', or precision='auto'" in msg
    cli = flags(msg, err.value.argument)
    assert cli.startswith("--precision int8 with --backend openvino disagrees")
    assert "--precision fp32, or --precision auto" in cli
    assert calls["reference"] == 2


@needs_openvino
def test_the_batches_openvino_compiles_on_are_checked_and_no_others(tiny, truth, monkeypatch):
    """The first batch (the dynamic-shape model) and the second of each of the first two sizes seen
    twice (the fixed-size ones): a run of one batch size and its remainder pays two fp32 forwards."""
    calls = _served(monkeypatch, truth, off_from_call=99)
    run = make_runner(tiny, "int8", "openvino")
    counted = []
    for n in (16, 16, 16, 16, 5, 0, 5, 16, 3, 3, 5):
        run(X[:n])
        counted.append(calls["reference"])
    assert counted == [1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3]


def test_check_rows_spread_over_every_stream_part():
    from ecgfounder.runtime.openvino import stream_count

    assert list(check_rows(3)) == [0, 1, 2] and list(check_rows(0)) == []
    for n in (8, 16, 32, 40, 64):
        rows = check_rows(n)
        assert rows[0] == 0 and rows[-1] == n - 1 and len(rows) == min(n, 8)
        for threads in (2, 4, 8):
            streams = stream_count(n, threads)
            if streams <= 8:
                assert len({r // (n // streams) for r in rows}) == streams


def _off_runner(n_off_from: int):
    """A Runner whose answers are ``truth`` until call ``n_off_from``, then rows 1+ off by 0.05,
    checked against ``truth`` itself; the reference blocks until ``release`` is set."""
    import threading

    from ecgfounder.runtime.checked import check_served

    rng = np.random.default_rng(1)
    s_true, f_true = rng.uniform(0.2, 0.8, (4, 3)), rng.standard_normal((4, 5))
    calls, entered, release = [0], threading.Event(), threading.Event()

    def run(x):
        calls[0] += 1
        s = s_true[: len(x)].copy()
        if calls[0] >= n_off_from:
            s[1:] += 0.05
        return s, f_true[: len(x)]

    def reference(x):
        entered.set()
        release.wait(5)
        return s_true[: len(x)], f_true[: len(x)]

    return check_served(runners.Runner(run, "int8", "openvino", "cpu"), reference), entered, release


def test_a_path_found_to_disagree_serves_no_later_batch():
    """The service's batcher goes on after a batch's error: the next batch of that size (same compiled
    model, no longer checked) must not be served."""
    run, _, release = _off_runner(n_off_from=2)
    release.set()
    x = np.zeros((4, 1, 10), np.float32)
    run(x)
    with pytest.raises(PathDisagreesError):
        run(x)
    with pytest.raises(PathDisagreesError, match="disagrees with fp32 at batch 4"):
        run(x)  # the third batch of 4: not checked itself, served by the model that disagreed


def test_a_batch_run_beside_a_check_waits_for_its_verdict():
    import threading

    run, entered, release = _off_runner(n_off_from=2)
    x = np.zeros((4, 1, 10), np.float32)
    release.set()
    run(x)  # the first batch: checked, agrees
    release.clear()
    entered.clear()
    out = {}

    def call(name):
        try:
            out[name] = run(x)
        except PathDisagreesError as exc:
            out[name] = exc

    checked = threading.Thread(target=call, args=("checked",))
    checked.start()
    assert entered.wait(5)  # the second batch's check is under way (blocked in the reference)
    beside = threading.Thread(target=call, args=("beside",))
    beside.start()
    beside.join(0.2)
    release.set()
    checked.join(5)
    beside.join(5)
    assert isinstance(out["checked"], PathDisagreesError)
    assert isinstance(out["beside"], PathDisagreesError), out["beside"]
