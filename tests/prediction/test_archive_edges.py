"""The archive job at its edges: files without recordings, batch files across shards, parts of
other settings or cut short, outputs written into the input folder, inputs changed before a resume."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgfounder.errors import SetupError



def _job(inputs, tiny_ckpt, out, **kw):
    from ecgfounder.prediction.archive import ArchiveJob

    return ArchiveJob(inputs=(str(inputs),), model=str(tiny_ckpt), output=str(out), workers=0, **kw)


def _run(job):
    from ecgfounder.prediction.archive import run_archive

    return run_archive(job, progress=False, quiet=True)


def test_a_file_without_recordings_is_reported_and_a_resume_repeats_no_row(folder_of, interrupt, tiny_ckpt, tmp_path, monkeypatch):
    """An empty batch file yielded nothing: it vanished from the report, and the files counted done
    fell behind the rows saved, so a resume wrote the rows after it twice."""
    d = folder_of(tmp_path / "in")
    np.save(d / "a_empty.npy", np.zeros((0, 5000, 12), np.float32))  # sorted first
    out = tmp_path / "o.csv"
    job = _job(d, tiny_ckpt, out, read_kwargs={"fs": 500})
    interrupt(3)  # at the third record: two written after the empty file
    with pytest.raises(KeyboardInterrupt):
        _run(job)
    monkeypatch.undo()
    report = _run(dataclasses.replace(job, resume=True))
    rows = pd.read_csv(out)
    assert rows["path"].tolist() == [str(d / f"r{i:04d}.hea") for i in range(4)]
    assert report.n_ok == 4
    assert [f[0] for f in report.failures] == [str(d / "a_empty.npy")]
    assert "no recordings" in report.failures[0][1]


def test_merge_keeps_the_rows_of_a_batch_file(folder_of, tiny_ckpt, tmp_path):
    """A batch file's recordings share its path: the merge took them for one record repeated."""
    from ecgfounder.prediction.parts import merge_parts
    from ecgfounder.prediction.shards import part_name

    d = folder_of(tmp_path / "in", 3)
    rng = np.random.default_rng(0)
    np.save(d / "batch.npy", (0.3 * rng.standard_normal((3, 5000, 12))).astype(np.float32))
    full = _job(d, tiny_ckpt, tmp_path / "full.csv", read_kwargs={"fs": 500})
    _run(full)
    for i in range(2):
        _run(dataclasses.replace(full, output=str(tmp_path / "p.csv"), shard=(i, 2)))
    parts = [part_name(tmp_path / "p.csv", i, 2) for i in range(2)]
    before = [Path(q).read_bytes() for q in parts]  # merging into a part destroyed it (library callers too)
    for out, emb, name in [(parts[0], None, "output"), (tmp_path / "m.csv", parts[1], "embeddings"),
                           (tmp_path / "m.csv", tmp_path / "m.csv", "embeddings")]:
        with pytest.raises(SetupError, match="is one of the parts|same file") as err:
            merge_parts(parts, out, embeddings=emb)
        assert err.value.argument == name
    assert [Path(q).read_bytes() for q in parts] == before and not (tmp_path / "m.csv").exists()
    assert merge_parts(parts, tmp_path / "m.csv")["rows"] == 6
    a, b = pd.read_csv(tmp_path / "full.csv"), pd.read_csv(tmp_path / "m.csv")
    assert a[["record", "path"]].values.tolist() == b[["record", "path"]].values.tolist()
    np.testing.assert_allclose(a.iloc[:, 5:].to_numpy(float), b.iloc[:, 5:].to_numpy(float), atol=1e-5)


def test_merge_refuses_parts_of_other_settings_and_parts_cut_short(folder_of, tiny_ckpt, tmp_path):
    from ecgfounder.prediction.parts import merge_parts
    from ecgfounder.prediction.shards import part_name

    d = folder_of(tmp_path / "in")
    job = _job(d, tiny_ckpt, tmp_path / "p.csv")
    _run(dataclasses.replace(job, shard=(0, 2), aggregate="max"))
    _run(dataclasses.replace(job, shard=(1, 2)))
    parts = [part_name(tmp_path / "p.csv", i, 2) for i in range(2)]
    with pytest.raises(SetupError, match="different settings.*aggregate"):
        merge_parts(parts, tmp_path / "m.csv")
    _run(dataclasses.replace(job, shard=(0, 2)))
    merge_parts(parts, tmp_path / "m.csv")
    # the last row cut part way (its row count unchanged): refused, not merged with empty values
    p1 = Path(parts[1])
    p1.write_bytes(p1.read_bytes()[:-300])
    with pytest.raises(SetupError, match="cut"):
        merge_parts(parts, tmp_path / "m2.csv")
    assert not (tmp_path / "m2.csv").exists()


def test_a_torn_jsonl_part_is_refused_naming_it(folder_of, tiny_ckpt, tmp_path):
    """A part without a size in its sidecar (written before sizes were recorded) and a torn last line."""
    import json

    from ecgfounder.prediction.parts import merge_parts
    from ecgfounder.prediction.shards import part_name

    d = folder_of(tmp_path / "in", 2)
    job = _job(d, tiny_ckpt, tmp_path / "p.jsonl")
    for i in range(2):
        _run(dataclasses.replace(job, shard=(i, 2)))
    parts = [Path(part_name(tmp_path / "p.jsonl", i, 2)) for i in range(2)]
    meta = Path(f"{parts[1]}.shard.json")
    meta.write_text(json.dumps(dict(json.loads(meta.read_text()), size=None)))
    parts[1].write_bytes(parts[1].read_bytes()[:-300])
    with pytest.raises(SetupError, match=f"{parts[1].name}: line 1 is not a JSON row"):
        merge_parts(parts, tmp_path / "m.jsonl")


def test_embeddings_written_into_the_input_folder_are_not_inputs(folder_of, tiny_ckpt, tmp_path):
    """The run's own embeddings .npy was found in its input folder: the resume of the finished run was
    refused (the record list had changed), and shards started after another had finished worked on
    another list (the merge refused them)."""
    from ecgfounder.prediction.parts import merge_parts
    from ecgfounder.prediction.shards import part_name

    d = folder_of(tmp_path / "in")
    job = _job(d, tiny_ckpt, d / "out.csv", embeddings=str(d / "emb.npy"), read_kwargs={"fs": 500})
    assert _run(job).n_ok == 4
    again = _run(dataclasses.replace(job, resume=True))
    assert again.already_complete and again.n_ok == 4 and not again.failures
    d2 = folder_of(tmp_path / "in2")
    sharded = dataclasses.replace(job, inputs=(str(d2),), output=str(d2 / "p.csv"), embeddings=str(d2 / "p.npy"))
    for i in range(2):
        assert _run(dataclasses.replace(sharded, shard=(i, 2))).n_ok == 2
    merged = merge_parts([part_name(d2 / "p.csv", i, 2) for i in range(2)], tmp_path / "m.csv")
    assert merged["rows"] == 4 and not merged["failures"]


def test_an_output_named_as_a_file_found_in_an_input_folder_is_refused_unless_a_run_wrote_it(folder_of, tiny_ckpt, tmp_path):
    """predict f -o f/ecg.csv, where f/ecg.csv is a CSV ECG found in f, replaced that ECG with the
    results (the file was left out as the run's own output); embed's default index (ecg.npy ->
    ecg.csv) did the same.  A file there that a run of ours wrote (a table of rows, an array with
    its description) is still the run's own, and a rerun replaces it."""
    d = folder_of(tmp_path / "in", n=2)
    ecg = np.random.default_rng(0).standard_normal((5000, 12)) * 0.1
    np.savetxt(d / "ecg.csv", ecg, delimiter=",", header="I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6", comments="")
    np.save(d / "arr.npy", ecg.astype(np.float32))
    before = (d / "ecg.csv").read_bytes()
    for out, emb in ((d / "ecg.csv", None), (tmp_path / "o.csv", d / "arr.npy")):
        with pytest.raises(SetupError, match=rf"{'output' if emb is None else 'embeddings'} {re.escape(str(emb or out))} "
                                             "is a file found among the inputs that this command did not write"):
            _run(_job(d, tiny_ckpt, out, embeddings=None if emb is None else str(emb), read_kwargs={"fs": 500}))
    assert (d / "ecg.csv").read_bytes() == before
    job = _job(d, tiny_ckpt, d / "out.csv", embeddings=str(d / "emb.npy"), read_kwargs={"fs": 500})
    assert _run(job).n_ok == 4 and _run(job).n_ok == 4  # its own table and array: replaced by the rerun


def test_resume_after_the_inputs_changed_says_so(folder_of, interrupt, tiny_ckpt, tmp_path, monkeypatch):
    d = folder_of(tmp_path / "in")
    out = tmp_path / "o.csv"
    job = _job(d, tiny_ckpt, out)
    interrupt(3)
    with pytest.raises(KeyboardInterrupt):
        _run(job)
    monkeypatch.undo()
    (d / "r0003.hea").unlink()
    with pytest.raises(SetupError, match=r"inputs_sha256.*4 then, 3 now; files were added to, removed from"):
        _run(dataclasses.replace(job, resume=True))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_output_no_file_can_be_created_in_is_refused_before_any_work(tmp_path):
    """Permission bits said /proc was writable to root, so the run started and failed on its lock
    file ('[Errno 2] ... /proc/.p.csv.lock').  A file is tried for real: refused up front."""
    from ecgfounder.errors import SetupError
    from ecgfounder.prediction.setup import check_output

    with pytest.raises(SetupError, match=r"^output /proc/p\.csv: cannot write in /proc \(") as err:
        check_output("/proc/p.csv")
    assert err.value.argument == "output"
    (tmp_path / "f").write_text("x")
    with pytest.raises(SetupError, match="is a file, not a folder"):
        check_output(tmp_path / "f" / "p.csv")
    check_output(tmp_path / "new" / "deeper" / "p.csv")  # folders still to be made: fine
