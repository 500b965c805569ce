"""Batch files read in parts: how many recordings a file holds from its header, and ``start=``/``stop=``
(and ``index=``) reading only those items, the same recordings as reading the whole file."""

from __future__ import annotations

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError
from ecgfounder.io.detect import count_records

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    import h5py

    d = tmp_path_factory.mktemp("batches")
    rng = np.random.default_rng(0)
    with h5py.File(d / "b.h5", "w") as f:
        ds = f.create_dataset("tracings", data=rng.normal(0, 0.3, (9, 1000, 12)))
        ds.attrs["fs"], ds.attrs["leads"] = 500.0, LEADS
        f.create_dataset("exam_id", data=np.arange(100, 109))
    with h5py.File(d / "one.h5", "w") as f:
        ds = f.create_dataset("ecg", data=rng.normal(0, 0.3, (12, 1000)))
        ds.attrs["fs"], ds.attrs["leads"] = 500.0, LEADS
    np.save(d / "b.npy", rng.normal(0, 0.3, (7, 12, 1000)))
    np.savez(d / "b.npz", signal=rng.normal(0, 0.3, (5, 12, 1000)), fs=500.0, leads=np.array(LEADS))
    return d


def test_count_records_from_the_header(batches, data_dir):
    assert count_records(batches / "b.h5") == 9
    assert count_records(batches / "one.h5") == 1
    assert count_records(batches / "b.npy") == 7
    assert count_records(batches / "b.npz") is None  # (its arrays are compressed: no count without reading)
    assert count_records(data_dir / "cinc2021" / "E07500.hea") is None
    bad = batches / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(RecordReadError, match="bad.h5"):
        count_records(bad)


@pytest.mark.parametrize("name, n", [("b.h5", 9), ("b.npy", 7), ("b.npz", 5)])
def test_start_stop_and_index_read_the_same_items_as_the_whole_file(batches, name, n):
    kw = {"fs": 500.0, "leads": LEADS}
    whole = list(eio.iter_read(batches / name, **kw))
    assert len(whole) == n
    part = list(eio.iter_read(batches / name, start=2, stop=5, **kw))
    assert [r.id for r in part] == [r.id for r in whole[2:5]] and [r.meta["index"] for r in part] == [2, 3, 4]
    for a, b in zip(part, whole[2:5]):
        np.testing.assert_array_equal(a.signal, b.signal)
    assert list(eio.iter_read(batches / name, start=n, **kw)) == []
    assert [r.id for r in eio.iter_read(batches / name, start=n - 1, stop=n + 5, **kw)] == [whole[-1].id]
    last = eio.read(batches / name, index=n - 1, **kw)
    np.testing.assert_array_equal(last.signal, whole[-1].signal)
    with pytest.raises(RecordReadError, match=f"no recording {n}"):
        eio.read(batches / name, index=n, **kw)


def test_a_single_recording_is_item_0(batches):
    assert len(list(eio.iter_read(batches / "one.h5", start=0, stop=1))) == 1
    assert list(eio.iter_read(batches / "one.h5", start=1)) == []
