"""The window cache given damaged shards: each is named in a warning, removed and prepared again;
never a bare numpy/JSON error, never windows of the wrong shape, never a file outside the cache."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgfounder.signal.preprocess import PreprocessContract
from ecgfounder.train.cache import RecordRef, WindowCache

CINC = Path(__file__).resolve().parent.parent / "data" / "cinc2021"
SMALL = PreprocessContract(fs=125.0, n_samples=625)


def _truncate(meta, npy, tmp):
    npy.write_bytes(npy.read_bytes()[:2000])


def _other_contract(meta, npy, tmp):
    np.save(npy, np.zeros((4, 12, 100), np.float32))


def _fewer_rows(meta, npy, tmp):
    np.save(npy, np.zeros((1, 12, 625), np.float32))


def _json_list(meta, npy, tmp):
    meta.write_text("[]")


def _json_bad_entries(meta, npy, tmp):
    d = json.loads(meta.read_text())
    meta.write_text(json.dumps({**d, "index": {k: 5 for k in d["index"]}}))


def _array_outside(meta, npy, tmp):
    np.save(tmp / "outside.npy", np.ones((10, 12, 625), np.float32))
    d = json.loads(meta.read_text())
    meta.write_text(json.dumps({**d, "array": "../../outside.npy"}))


def _array_not_a_name(meta, npy, tmp):
    meta.write_text(json.dumps({"array": 3, "index": {}}))


@pytest.mark.parametrize("damage", [_truncate, _other_contract, _fewer_rows, _json_list, _json_bad_entries,
                                    _array_outside, _array_not_a_name])
def test_a_damaged_shard_is_named_removed_and_prepared_again(tmp_path, damage):
    refs = [RecordRef(str(p)) for p in sorted(CINC.glob("*.hea"))[:2]]
    c = WindowCache(tmp_path / "c", SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = c.build(refs, workers=1, records_per_shard=2)
        expect = [np.array(first.windows(i)) for i in range(len(refs))]
    (meta,) = c.root.glob("shard-*.json")
    damage(meta, meta.with_suffix(".npy"), tmp_path)
    with pytest.warns(UserWarning, match=f"window cache shard .*{meta.name} is damaged"):
        again = c.build(refs, workers=1, records_per_shard=2)
    assert not again.failed
    for i, w in enumerate(expect):
        np.testing.assert_array_equal(again.windows(i), w)
    assert not (tmp_path / "outside.npy").exists() or np.load(tmp_path / "outside.npy").shape == (10, 12, 625)
