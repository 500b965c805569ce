"""merge_parts on parts made here (no model run): column order and types kept, and a sidecar
changed by hand, parts of two runs, or a CSV part merged into a typed table each refused in one
line naming the files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ecgfounder.errors import SetupError
from ecgfounder.prediction.parts import merge_parts, write_part_meta
from ecgfounder.prediction.shards import part_name
from ecgfounder.prediction.tables import TableWriter

COLUMNS = ["record", "path", "member", "n_windows", "quality", "SINUS RHYTHM", "ATRIAL FIBRILLATION"]


def _parts(tmp_path: Path, kind: str = "csv", *, manifests: tuple[str, str] = ("a" * 64, "a" * 64),
           ran: tuple = (None, None)) -> list[str]:
    """Two parts of a run over four records, with the sidecars predict writes."""
    parts = []
    for i in range(2):
        part = part_name(tmp_path / f"p.{kind}", i, 2)
        rows = [{"record": f"00{k}", "path": f"/a/00{k}.hea", "n_windows": 1, "quality": "noise:V1" if k == 1 else "ok",
                 "SINUS RHYTHM": 0.25 * k, "ATRIAL FIBRILLATION": 1.0 - 0.25 * k} for k in (2 * i, 2 * i + 1)]
        with TableWriter(part, COLUMNS) as w:
            w.write(rows)
        write_part_meta(part, shard=(i, 2), manifest_sha256=manifests[i], n_total=4, n_files=2, rows=2, failures=[],
                        settings={"weights": "w"}, size=Path(part).stat().st_size, ran=ran[i])
        parts.append(part)
    return parts


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_merge_keeps_column_order_and_types(tmp_path, kind):
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    read = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
            "parquet": pd.read_parquet}[kind]
    parts = _parts(tmp_path, kind)
    assert merge_parts(parts, tmp_path / f"m.{kind}")["rows"] == 4
    got, want = read(tmp_path / f"m.{kind}"), pd.concat([read(p) for p in parts], ignore_index=True)
    assert list(got.columns) == COLUMNS
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("out", ["m.parquet", "m.jsonl"])
def test_csv_parts_into_a_typed_table_are_refused(tmp_path, out):
    """Merged into .parquet every value of CSV parts was a string: n_windows '1', probabilities '0.25'."""
    pytest.importorskip("pyarrow")
    parts = _parts(tmp_path)
    with pytest.raises(SetupError, match=rf"{parts[0]} is CSV, which keeps no column types: merged into .*{out} every "
                                         rf"value would be text; merge into a .csv file, or run the shards with -o "
                                         rf"OUT\.{out.split('.')[1]}"):
        merge_parts(parts, tmp_path / out)
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize("sidecar", ["[1, 2]", '{"shard": [1, 2]}', '{"version": 1}'])
def test_a_sidecar_changed_by_hand_is_one_error_naming_it(tmp_path, sidecar):
    """A sidecar holding JSON but not the fields predict writes: KeyError 'shard' or TypeError, a traceback."""
    parts = _parts(tmp_path)
    meta = Path(parts[1] + ".shard.json")
    meta.write_text(sidecar)
    with pytest.raises(SetupError, match=rf"^{meta}: not the sidecar a sharded 'ecgfounder predict' writes \(no valid "
                                         r"[a-z_0-9, ]+; changed\?\); run its shard again\.$"):
        merge_parts(parts, tmp_path / "m.csv")


def test_parts_of_two_runs_are_named_both(tmp_path):
    """'the parts come from different runs (shard counts [2], 2 record lists)' named no part."""
    parts = _parts(tmp_path, manifests=("a" * 64, "b" * 64))
    with pytest.raises(SetupError, match=rf"^{parts[0]} and {parts[1]} come from different runs \(made from different "
                                         r"record lists\); merge the parts of one run only\.$"):
        merge_parts(parts, tmp_path / "m.csv")
    meta = Path(parts[1] + ".shard.json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "shard": [1, 3], "manifest_sha256": "a" * 64}))
    with pytest.raises(SetupError, match=r"come from different runs \(of 2 and 3 shards\)"):
        merge_parts(parts, tmp_path / "m.csv")


def test_recordings_of_one_archive_named_alike_are_not_taken_for_a_row_twice(tmp_path):
    """Two files of one zip with one record id (site1/ECG001.xml, site2/ECG001.xml) are two rows that
    differ in ``member``: merged, not refused as a record that appears twice."""
    part = part_name(tmp_path / "p.csv", 0, 1)
    rows = [{"record": "ECG001", "path": "/a/sites.zip", "member": m, "n_windows": 1, "quality": "good",
             "SINUS RHYTHM": 0.5, "ATRIAL FIBRILLATION": 0.5} for m in ("site1/ECG001.xml", "site2/ECG001.xml")]
    with TableWriter(part, COLUMNS) as w:
        w.write(rows)
    write_part_meta(part, shard=(0, 1), manifest_sha256="a" * 64, n_total=1, n_files=1, rows=2, failures=[],
                    settings={"weights": "w"}, size=Path(part).stat().st_size)
    assert merge_parts([part], tmp_path / "m.csv")["rows"] == 2
    twice = part_name(tmp_path / "q.csv", 0, 1)
    with TableWriter(twice, COLUMNS) as w:
        w.write([rows[0], rows[0]])
    write_part_meta(twice, shard=(0, 1), manifest_sha256="a" * 64, n_total=1, n_files=1, rows=2, failures=[],
                    settings={"weights": "w"}, size=Path(twice).stat().st_size)
    with pytest.raises(SetupError, match=r"record ECG001 of /a/sites.zip, site1/ECG001.xml \(window -\) appears twice"):
        merge_parts([twice], tmp_path / "m2.csv")


def test_parts_that_ran_on_different_paths_are_merged_saying_so(tmp_path):
    """Shards run with precision auto on machines that chose differently (int8 here, bf16 there)
    merged into one table of rows that do not compare exactly, without a word."""
    with pytest.warns(UserWarning, match=r"different inference paths \(part 0/2: int8/openvino; part 1/2: "
                                         r"bf16/torch\).*same --precision and --backend"):
        merge_parts(_parts(tmp_path, ran=(("int8", "openvino"), ("bf16", "torch"))), tmp_path / "m.csv")
    assert len(pd.read_csv(tmp_path / "m.csv")) == 4
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one path (or none recorded, as parts of earlier releases): no word
        merge_parts(_parts(tmp_path / "same", ran=(("int8", "openvino"),) * 2), tmp_path / "s.csv")
