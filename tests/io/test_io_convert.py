"""The library's record conversion, :func:`ecgfounder.io.convert_records` (what ``ecgfounder
convert`` runs), called directly as a Python user would."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ecgfounder.io as eio
from ecgfounder.errors import RecordReadError, SetupError
from ecgfounder.io import ConvertResult, convert_records
from ecgfounder.recording import Recording

LEADS = ("I", "II", "V1")


def _npz(path, seed=0):
    rec = Recording(np.random.default_rng(seed).normal(size=(3, 500)), 500.0, LEADS)
    return eio.write(rec, path, "npz")


def _batch(path, ids):
    import h5py

    with h5py.File(path, "w") as f:
        f["tracings"] = np.random.default_rng(1).normal(size=(len(ids), 1000, 2)).astype(np.float32)
        f["exam_id"] = np.array(ids)
    return path


def test_several_inputs_one_result_each_a_bad_one_costs_no_other(tmp_path):
    a, b = _npz(tmp_path / "a.npz"), _npz(tmp_path / "b.npz", 1)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    out = tmp_path / "out"
    conv = convert_records([a, tmp_path / "bad.npz", b], "edf", out)
    assert conv.files == (a, tmp_path / "bad.npz", b) and len(conv) == 3
    assert not out.exists()  # nothing happens before the results are asked for
    results = list(conv)
    assert [r.source for r in results] == [a, tmp_path / "bad.npz", b]
    ok_a, bad, ok_b = results
    assert ok_a == ConvertResult(a, (out / "a.edf",)) and ok_a.ok and ok_a.recordings == 1 and ok_a.folder is None
    assert ok_b.written == (out / "b.edf",) and ok_b.renamed == 0
    assert not bad.ok and isinstance(bad.error, RecordReadError) and bad.written == () and bad.recordings == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.edf", "b.edf"]
    np.testing.assert_allclose(eio.read(out / "b.edf").signal, eio.read(b).signal, atol=1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok_a.renamed = 3


def test_a_batch_file_goes_into_a_folder_repeated_ids_as_id_n(tmp_path):
    src = _batch(tmp_path / "b.h5", [b"HR.001", b"HR_001", b"HR.001"])
    read = {"fs": 500, "leads": ["I", "II"]}
    (r,) = convert_records(src, "wfdb", tmp_path / "w", read_kwargs=read)
    assert r.ok and r.folder == tmp_path / "w" and r.recordings == 3 and r.renamed == 2
    assert [p.name for p in r.written] == ["HR_001.hea", "HR_001_1.hea", "HR_001_2.hea"]
    assert all(p.is_file() and p.with_suffix(".dat").is_file() for p in r.written)
    (r,) = convert_records(src, "npz", read_kwargs=read)  # no output: a folder STEM_TO beside the file, ids with dots kept
    assert r.folder == tmp_path / "b_npz" and [p.name for p in r.written] == ["HR.001.npz", "HR_001.npz", "HR.001_2.npz"]


def test_an_empty_batch_file_is_a_result_with_its_error(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 500, 12)))
    (r,) = convert_records(tmp_path / "empty.npy", "npz", read_kwargs={"fs": 500})
    assert isinstance(r.error, RecordReadError) and "no recordings in the file" in str(r.error)
    assert list(tmp_path.iterdir()) == [tmp_path / "empty.npy"]


def test_an_existing_output_is_kept_unless_overwrite(tmp_path):
    src = _npz(tmp_path / "a.npz")
    (tmp_path / "a.edf").write_bytes(b"keep")
    (kept,) = convert_records(src, "edf")  # that file's error: the other inputs of a run are still converted
    assert not kept.ok and kept.written == () and isinstance(kept.error, SetupError)
    assert kept.error.argument == "overwrite" and str(kept.error) == (
        f"output {tmp_path / 'a.edf'} exists; give another file or folder with output=... (CLI: -o/--output), "
        "or add overwrite=True (CLI: --overwrite) to replace it.")
    assert (tmp_path / "a.edf").read_bytes() == b"keep"
    (r,) = convert_records(src, "edf", overwrite=True)
    assert r.written == (tmp_path / "a.edf",) and eio.read(tmp_path / "a.edf").n_samples == 500


def test_an_input_is_never_overwritten_even_with_overwrite(tmp_path):
    src = _npz(tmp_path / "a.npz")
    before = src.read_bytes()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a.npz").hardlink_to(src)  # the input under another name
    for output in (tmp_path, tmp_path / "o"):
        with pytest.raises(SetupError, match="would overwrite the input"):
            list(convert_records(src, "npz", output, overwrite=True))
    assert src.read_bytes() == before


def test_mistakes_of_the_call_are_refused_before_anything_is_written(tmp_path):
    a = _npz(tmp_path / "a.npz")
    (tmp_path / "sub").mkdir()
    _npz(tmp_path / "sub" / "a.npz")
    (tmp_path / "empty").mkdir()
    cases = [
        (dict(paths=a, to="xml"), "to='xml' is not a format convert_records writes; choose one of wfdb, npz, edf, bdf."),
        (dict(paths=a, to="npz", output=tmp_path / "x.edf"), "ends in .edf, but to='npz' (CLI: --to npz) writes a .npz"),
        (dict(paths=[a, tmp_path / "sub" / "a.npz"], to="edf", output=tmp_path / "o"), "would both be written to"),
        (dict(paths=[a, tmp_path / "sub"], to="edf", output=tmp_path / "o.edf"), "names a file; give a folder"),
        (dict(paths=tmp_path / "empty", to="edf"), "no ECG files found in"),
    ]
    for kwargs, said in cases:
        with pytest.raises(SetupError) as e:
            convert_records(**kwargs)  # raised by the call itself, not when iterated
        assert said in str(e.value), (kwargs, str(e.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "empty", "sub"]


def test_messages_carry_the_command_line_form_the_cli_shows(tmp_path):
    from ecgfounder.cli._common import flags

    src = _npz(tmp_path / "a.npz")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SetupError) as e:
        convert_records([src, src], "edf", tmp_path / "afile")
    assert str(e.value).startswith(f"output={str(tmp_path / 'afile')!r} (CLI: -o/--output {tmp_path / 'afile'}) is a file")
    assert flags(str(e.value), e.value.argument) == (f"-o/--output {tmp_path / 'afile'} is a file; give a folder (it "
                                                      "is created if needed).")


def test_one_input_may_name_the_output_file_or_a_new_folder(tmp_path):
    src = _npz(tmp_path / "a.npz")
    (r,) = convert_records(str(src), "bdf", str(tmp_path / "named.bdf"))
    assert r.written == (tmp_path / "named.bdf",)
    (r,) = convert_records(src, "wfdb", f"{tmp_path / 'new'}/")
    assert r.written == (tmp_path / "new" / "a.hea",) and (tmp_path / "new" / "a.dat").is_file()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_file_named_like_a_batch_recording_of_the_run_does_not_replace_it(tmp_path, overwrite):
    """a.h5 holds recording 'zz'; zz.npz, converted after it into the same folder, was written over
    it (overwrite=True) or stopped the run as 'exists' (a file this run had just written)."""
    src = _batch(tmp_path / "a.h5", [b"zz", b"yy"])
    one = eio.write(Recording(np.random.default_rng(0).normal(size=(2, 500)), 500.0, ("I", "II")), tmp_path / "zz.npz")
    out = tmp_path / "out"
    batch, single = convert_records([src, one], "edf", out, overwrite=overwrite,
                                    read_kwargs={"fs": 500, "leads": ["I", "II"]})
    assert batch.written == (out / "zz.edf", out / "yy.edf") and single.ok
    assert single.written == (out / "zz_0.edf",) and single.renamed == 1
    assert eio.read(out / "zz.edf").n_samples == 1000 and eio.read(out / "zz_0.edf").n_samples == 500
