"""A file holding several recordings fails alone in an evaluation, never the whole stream."""

from __future__ import annotations

import numpy as np

from ecgfounder.eval.runner import cached_predictions


def test_multi_record_npz_is_one_failure(tmp_path, synthetic_model):
    rng = np.random.default_rng(0)
    one = tmp_path / "one.npy"
    np.save(one, rng.normal(size=(12, 5000)).astype(np.float32) * 0.1)
    many = tmp_path / "many.npz"
    np.savez(many, signal=rng.normal(size=(2, 12, 5000)).astype(np.float32) * 0.1)  # a batch of 2 recordings
    last = tmp_path / "last.npy"
    np.save(last, rng.normal(size=(12, 5000)).astype(np.float32) * 0.1)
    preds = cached_predictions([str(one), str(many), str(last)], synthetic_model, None, read_kwargs={"fs": 500.0})
    assert preds.ok.tolist() == [True, False, True]
    assert "2 recordings" in preds.errors[str(many)]
    assert np.isfinite(preds.scores[[0, 2]]).all()
