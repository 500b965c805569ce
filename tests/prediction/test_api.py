"""Prediction API: one row per record, named columns, batching, record identity (small model, real 150-label head)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from ecgfounder.labels import load_labels
from ecgfounder.prediction import embed, predict

GOOD = ["HR06000", "E07500", "JS20000", "JS20001"]


def test_predict_api_rows_and_columns(tiny12, data_dir):
    df = predict([data_dir / "cinc2021", data_dir / "ptbdb"], tiny12)
    labels = load_labels()
    assert len(df) == 51 and list(df.columns[5:]) == list(labels) and len(labels) == 150
    assert list(df.columns[:5]) == ["record", "path", "member", "n_windows", "quality"]
    q = df.set_index("record")["quality"]
    assert q["JS20004"].startswith("flat:V2,V4,V6") and (q == "good").sum() >= 40
    assert df["record"].tolist()[:3] == ["E07500", "E07501", "E07502"]
    ptb = df.set_index("record").loc["s0010_re"]
    assert ptb["n_windows"] == 4
    probs = df[list(labels)].to_numpy()
    assert ((probs > 0) & (probs < 1)).all()


def test_long_record_is_mean_of_its_windows(tiny12, data_dir):
    rec = data_dir / "ptbdb" / "s0010_re.hea"
    per = predict([rec], tiny12, aggregate="none")
    agg = predict([rec], tiny12)
    assert per["window"].tolist() == [0, 1, 2, 3]
    assert per["start_s"].tolist() == [0.0, 10.0, 20.0, 28.4]  # (38.4 s: the last window ends with the record)
    labels = list(load_labels())
    np.testing.assert_allclose(per[labels].mean().to_numpy(), agg[labels].iloc[0].to_numpy(), atol=1e-6)


def test_recordings_of_a_zip_are_told_apart_by_their_file_in_it(tiny12, data_dir, tmp_path):
    """Exports named alike in two folders of one zip: two rows, told apart by ``member`` (their
    paths in the archive); a file of its own has an empty ``member``."""
    import zipfile

    muse = (data_dir / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml").read_bytes()
    z = tmp_path / "sites.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("site1/ECG001.xml", muse)
        zf.writestr("site2/ECG001.xml", muse)
    df = predict([z, data_dir / "cinc2021" / "HR06000.hea"], tiny12)
    assert df["member"].fillna("").tolist() == ["site1/ECG001.xml", "site2/ECG001.xml", ""]
    assert df["path"].tolist()[:2] == [str(z)] * 2


def test_batching_does_not_change_results(tiny12, data_dir):
    paths = [data_dir / "cinc2021" / f"{n}.hea" for n in GOOD] + [data_dir / "ptbdb" / "s0010_re.hea"]
    a = predict(paths, tiny12, batch_size=3)
    b = predict(paths, tiny12, batch_size=32)
    pd.testing.assert_frame_equal(a, b, atol=1e-5, check_exact=False)


def test_two_lead_record_refused_for_12_lead_model(tiny12, data_dir):
    with pytest.raises(ValueError, match=r"missing lead\(s\) I, III, aVR, aVL, aVF, V1, V2, V3, V4, V6"):
        predict([data_dir / "mitdb" / "100.hea"], tiny12, on_error="raise")


def test_single_lead_model_takes_named_lead_with_warning(tiny1, data_dir):
    rec = data_dir / "mitdb" / "100.hea"
    with pytest.raises(ValueError, match="missing lead"):
        predict([rec], tiny1, on_error="raise")
    with pytest.warns(UserWarning, match="feeding lead II to a model trained on lead I"):
        df = predict([rec], tiny1, lead="MLII")
    assert len(df) == 1 and df["n_windows"].iloc[0] == 6


def test_embed_aligned(tiny12, data_dir):
    paths = [data_dir / "cinc2021" / f"{n}.hea" for n in GOOD]
    table, feats = embed(paths, tiny12)
    assert feats.shape == (4, tiny12.num_features) and feats.dtype == np.float32  # 1024 for ECGFounder
    assert table["record"].tolist() == GOOD




def test_multi_record_file_results_carry_their_identity(tiny12, data_dir, tmp_path):
    """A batch .npz holds several recordings under one path: each result says which input file and
    which member of it it is, so consumers need not guess from the path (eval's cache did)."""
    from ecgfounder.prediction import iter_predict

    rec = read_rec(data_dir)
    np.savez(tmp_path / "batch.npz", signal=np.stack([rec.signal, rec.signal[:, ::-1], rec.signal * 0.5]),
             fs=500.0, leads=np.array(rec.leads))
    single = data_dir / "cinc2021" / "E07500.hea"
    res = list(iter_predict([tmp_path / "batch.npz", single], tiny12))
    assert [(r.input_index, r.member) for r in res] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert [r.index for r in res] == [0, 1, 2, 3] and len({r.path for r in res}) == 2
    assert all(r.ok for r in res)
    # the same identity through the worker pool
    par = list(iter_predict([tmp_path / "batch.npz", single], tiny12, workers=1))
    assert [(r.input_index, r.member) for r in par] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    np.testing.assert_allclose(par[1].scores, res[1].scores, atol=1e-6)


def read_rec(data_dir):
    from ecgfounder.io import read

    return read(data_dir / "cinc2021" / "HR06000.hea")


def test_a_lead_for_a_twelve_lead_model_is_refused_not_ignored(records, tiny_ckpt):
    """lead= picks the lead fed to a single-lead model; a 12-lead model feeds every lead, so it was
    silently ignored (`predict --lead II` with 12-lead weights looked like it had been applied)."""
    from ecgfounder.errors import SetupError
    from ecgfounder.prediction import iter_predict

    with pytest.raises(SetupError, match=r"^lead='II' picks the lead fed to a single-lead model; this model takes "
                                         r"12 leads") as err:
        next(iter_predict([records], tiny_ckpt, lead="II", precision="fp32", backend="torch"))
    assert err.value.argument == "lead"


def test_each_unreadable_file_of_an_archive_is_a_failure_of_its_own_in_its_place(tiny12, data_dir, tmp_path):
    """A zip's bad files were one failure after its readable recordings, naming the first five and
    counting the rest ("and 2 more": those never named), and the members were numbered without them.
    Each bad file is now a failure of its own, in its place, naming it."""
    import zipfile

    from ecgfounder.prediction import iter_predict

    muse = (data_dir / "formats" / "muse_xml" / "musePHI_muse_ecg1.xml").read_bytes()
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.xml", muse)
        for k in range(7):
            zf.writestr(f"bad{k}.xml", b"<RestingECG><Waveform>")
        zf.writestr("z.xml", muse)
    got = list(iter_predict([z], tiny12, precision="fp32", backend="torch"))
    assert [(r.member, r.ok) for r in got] == [(0, True)] + [(k, False) for k in range(1, 8)] + [(8, True)]
    for k, r in enumerate(got[1:8]):
        assert r.reason.startswith(f"{z}: bad{k}.xml in the zip archive: malformed XML") and "\n" not in r.reason
    with pytest.warns(UserWarning, match="bad6.xml in the zip archive"):
        assert len(predict([z], tiny12)) == 2


def test_on_error_raise_raises_the_packages_error_of_its_kind(tiny12, data_dir, tmp_path):
    """on_error="raise" raised a bare ValueError for every failure: `except ecgfounder.LeadError` (or
    RecordReadError, ECGFounderError) did not catch a record without the model's leads."""
    import ecgfounder

    with pytest.raises(ecgfounder.LeadError, match=r"100.hea: missing lead\(s\) I, III"):
        predict([data_dir / "mitdb" / "100.hea"], tiny12, on_error="raise")
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"x\x00\x01")
    with pytest.raises(ecgfounder.RecordReadError) as err:
        predict([bad], tiny12, on_error="raise")
    assert str(err.value) == f"{bad}: file is 3 bytes, too short to hold a header (truncated?)" and err.value.path == str(bad)
