"""Reading and preprocessing in worker processes: same pairs, same order, workers die with their parent."""

from __future__ import annotations

import numpy as np

from ecgfounder.prediction.workers import prepared_records

N_RECORDS = 60


def test_workers_give_same_pairs_in_order(records):
    from ecgfounder.signal.preprocess import PreprocessContract

    c = PreprocessContract()
    serial = list(prepared_records([records], c, workers=0))
    parallel = list(prepared_records([records], c, workers=2, chunk=3, max_tasks=2))
    assert len(serial) == len(parallel) == N_RECORDS
    assert [r.path for r, _ in serial] == [r.path for r, _ in parallel] == sorted(r.path for r, _ in serial)
    assert [r.index for r, _ in parallel] == list(range(N_RECORDS))
    bad = [r for r, p in parallel if p is None]
    assert len(bad) == 1 and bad[0].path.endswith("r0027.hea") and bad[0].error
    for (rs, ps), (rp, pp) in zip(serial, parallel):
        if ps is not None:
            np.testing.assert_array_equal(ps.windows, pp.windows)
