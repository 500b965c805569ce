"""Prediction with preparation in background threads gives what preparing in turn gives; warnings
raised while records are prepared in several threads land on their own record."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from ecgfounder.prediction import iter_predict
from ecgfounder.prediction.records import collected_warnings
from ecgfounder.runtime import overlap


def test_threads_and_in_turn_give_the_same_results(records, tiny_ckpt, monkeypatch):
    from ecgfounder.models.loading import load_model

    model = load_model(tiny_ckpt)
    monkeypatch.setattr(overlap, "overlap_plan", lambda device="cpu", model_threads=None, streams=1: (0, False))
    serial = list(iter_predict([records], model, batch_size=8, precision="fp32", backend="torch"))
    # a pool of threads at normal priority: the same code path as at idle priority (which
    # tests/runtime/test_overlap.py covers), without its dependence on what else keeps the cores
    # busy (idle threads holding the GIL while the suite's other worker runs: 5-66 s, 0.5 s alone)
    monkeypatch.setattr(overlap, "overlap_plan", lambda device="cpu", model_threads=None, streams=1: (3, False))
    ahead = list(iter_predict([records], model, batch_size=8, precision="fp32", backend="torch"))
    assert [r.path for r in ahead] == [r.path for r in serial] and [r.index for r in ahead] == list(range(len(serial)))
    assert [r.error for r in ahead] == [r.error for r in serial] and sum(r.error is not None for r in ahead) == 1
    assert [r.quality for r in ahead] == [r.quality for r in serial]
    for a, s in zip(ahead, serial):
        if s.ok:
            np.testing.assert_array_equal(a.scores, s.scores)
            assert a.notes == s.notes


def test_collected_warnings_stay_in_their_thread():
    filters = list(warnings.filters)
    got: dict[int, list[str]] = {}
    start = threading.Barrier(4)

    def work(k):
        start.wait()
        with collected_warnings() as sink:
            for j in range(50):
                warnings.warn(f"thread {k} warning {j}", UserWarning)  # distinct texts: each one shown
        got[k] = sink

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        assert got[k] == [f"thread {k} warning {j}" for j in range(50)]
    assert warnings.filters == filters  # no process-wide state changed
    with warnings.catch_warnings(record=True) as outside:  # a thread not collecting is not affected
        warnings.simplefilter("always")
        warnings.warn("outside", UserWarning)
    assert [str(w.message) for w in outside] == ["outside"]


def test_a_warning_of_the_quality_check_becomes_a_note_of_its_record(records, tiny_ckpt, monkeypatch):
    from ecgfounder.models.loading import load_model
    from ecgfounder.signal import quality

    real = quality.assess

    def warning_assess(rec, thresholds=None):
        warnings.warn(f"quality probe {rec.id}", RuntimeWarning)
        return real(rec, thresholds)

    monkeypatch.setattr(quality, "assess", warning_assess)
    monkeypatch.setattr(overlap, "overlap_plan", lambda device="cpu", model_threads=None, streams=1: (2, False))
    model = load_model(tiny_ckpt)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        results = list(iter_predict([records], model, batch_size=8, precision="fp32", backend="torch"))
    ok = [r for r in results if r.ok]
    assert ok and all(any(n.startswith("quality probe ") for n in r.notes) for r in ok)
    assert not [w for w in leaked if "quality probe" in str(w.message)]


def test_default_workers_of_none_still_overlap(records, tiny_ckpt, monkeypatch):
    # workers=None (what `ecgfounder predict` passes for 64+ records) resolves to default_workers;
    # where that is 0 (a CPU model on 2 cores) records are prepared in the background threads, as
    # with workers=0, not in turn in the consumer's thread (the CLI's main job ran without overlap)
    from ecgfounder.models.loading import load_model
    from ecgfounder.prediction import records as rec_mod
    from ecgfounder.prediction import workers as workers_mod

    model = load_model(tiny_ckpt)
    monkeypatch.setattr(workers_mod, "default_workers", lambda device="cpu": 0)
    monkeypatch.setattr(overlap, "overlap_plan", lambda device="cpu", model_threads=None, streams=1: (2, False))
    where: set[str] = set()
    original = rec_mod.prepare_one

    def spy(*args, **kwargs):
        where.add(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(rec_mod, "prepare_one", spy)
    got = list(iter_predict([records], model, batch_size=8, precision="fp32", backend="torch", workers=None))
    # (the consumer also takes queued work over while it waits: the main thread may appear too)
    assert got and any(name.startswith("ecgfounder-prepare") for name in where), where
