"""A Parquet table's column types come from its columns, not from its first rows: a first batch
whose optional columns are all empty (no zip member, no window start, a NaN score) used to fix
them as null (the next batch: "Unsupported cast from string to null"), and a whole-number score
fixed its column as int64 (0.75 later: "Float value 0.750000 was truncated")."""

from __future__ import annotations

import pytest

from ecgfounder.prediction.columns import score_columns
from ecgfounder.prediction.tables import TableWriter

COLS = score_columns(["SINUS RHYTHM", "ATRIAL FIBRILLATION"], "none", quality_detail=True)


def _row(k: int, **kw):
    return {"record": f"r{k}", "path": f"/a/r{k}.hea", "n_windows": 2, "window": k % 2, **kw}


def test_parquet_types_do_not_come_from_a_first_batch_of_empty_values(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "p.parquet"
    empty = [_row(k, member=None, quality=None, quality_leads=None, start_s=None, **{"SINUS RHYTHM": None,
                                                                                      "ATRIAL FIBRILLATION": 0})
             for k in range(2)]
    full = [_row(k, member="a/r.hea", quality="good", quality_leads="I:good", start_s=7.5,
                 **{"SINUS RHYTHM": 0.25, "ATRIAL FIBRILLATION": 0.75}) for k in range(2, 4)]
    with TableWriter(out, COLS, parquet_rows=2) as w:
        w.write(empty)
        w.write(full)
    table = pq.read_table(out)
    assert {f.name: str(f.type) for f in table.schema} == {
        "record": "string", "path": "string", "member": "string", "n_windows": "int64", "quality": "string",
        "quality_leads": "string", "window": "int64", "start_s": "double", "SINUS RHYTHM": "float",
        "ATRIAL FIBRILLATION": "float"}
    got = table.to_pylist()
    assert [r["member"] for r in got] == [None, None, "a/r.hea", "a/r.hea"]
    assert [r["start_s"] for r in got] == [None, None, 7.5, 7.5]
    assert [r["ATRIAL FIBRILLATION"] for r in got] == [0.0, 0.0, 0.75, 0.75]
    with TableWriter(tmp_path / "e.parquet", COLS) as w:  # no rows: the same types
        pass
    assert pq.read_table(tmp_path / "e.parquet").schema == table.schema
