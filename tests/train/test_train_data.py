"""Manifest, patient-level splits, dataset presets and the window cache."""

from __future__ import annotations

import os
from pathlib import Path
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgfounder.signal.preprocess import PreprocessContract, preprocess
from ecgfounder.train.cache import RecordRef, WindowCache, load_windows
from ecgfounder.train.manifest import ManifestError, label_columns, read_manifest, write_manifest
from ecgfounder.train.presets import (
    cinc2021_manifest,
    cpsc2019_manifest,
    cpsc2021_manifest,
    heart_rate_bpm,
    ptbxl_manifest,
)
from ecgfounder.train.splits import LeakageError, assign_splits, check_leakage, group_ids

DATA = Path(__file__).resolve().parent.parent / "data" / "train"

LEAD_I = PreprocessContract(leads=("I",))


# ------------------------------------------------------------------------------ manifest

def test_manifest_paths_relative_to_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("path,patient_id,y\nrec/a.hea,p1,1\n/abs/b.hea,p2,0\n")
    df = read_manifest(tmp_path / "sub" / "m.csv")
    assert df.path[0] == str(tmp_path / "sub" / "rec" / "a.hea")
    assert df.path[1] == "/abs/b.hea"
    assert label_columns(df) == ["y"]
    with pytest.raises(ManifestError, match="not in the manifest"):
        label_columns(df, ["z"])


def test_manifest_parquet_roundtrip(tmp_path):
    df = pd.DataFrame({"path": ["/x/a.hea"], "y": [1]})
    write_manifest(df, tmp_path / "m.parquet")
    assert read_manifest(tmp_path / "m.parquet").equals(df)


def test_manifest_without_path_column(tmp_path):
    (tmp_path / "m.csv").write_text("file,y\na,1\n")
    with pytest.raises(ManifestError, match="no 'path' column"):
        read_manifest(tmp_path / "m.csv")


# ------------------------------------------------------------------------------ splits

def _toy(n_patients=40, per=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"path": f"/r/{p}_{k}.hea", "patient_id": f"p{p}", "y": int(rng.random() < 0.3)} for p in range(n_patients) for k in range(per)]
    return pd.DataFrame(rows)


def test_splits_are_patient_level_and_reproducible():
    df = _toy()
    a = assign_splits(df, fractions=(0.6, 0.2, 0.2), seed=3, y=df[["y"]].to_numpy(float))
    b = assign_splits(df, fractions=(0.6, 0.2, 0.2), seed=3, y=df[["y"]].to_numpy(float))
    assert (a.split == b.split).all()
    assert a.groupby("patient_id").split.nunique().max() == 1
    frac = a.drop_duplicates("patient_id").split.value_counts(normalize=True)
    assert frac["train"] == pytest.approx(0.6, abs=0.05) and frac["test"] == pytest.approx(0.2, abs=0.05)
    for s in ("val", "test"):  # both classes present in the held-out splits
        assert a[a.split == s].y.nunique() == 2


def test_given_splits_kept_and_propagated():
    df = _toy(10, 2)
    df["split"] = None
    df.loc[0, "split"] = "test"  # patient p0 (rows 0 and 1)
    out = assign_splits(df, fractions=(0.8, 0.1, 0.1), seed=0)
    assert out.split[0] == "test" and out.split[1] == "test"


def test_leakage_refused():
    df = _toy(4, 2)
    df["split"] = ["train", "test", "train", "train", "val", "val", "test", "test"]
    with pytest.raises(LeakageError, match="patient:p0"):
        check_leakage(df.assign(g=group_ids(df, "patient_id")), "g", "split")
    with pytest.raises(LeakageError):
        assign_splits(df)


def test_one_record_named_two_ways_is_one_group():
    """A manifest naming one record 'x.hea' and 'sub/../x.hea' made two groups: its segments could
    land in two splits."""
    df = pd.DataFrame({"path": ["/d/x.hea", "/d/sub/../x.hea", "/d/./y.hea", "/d/y.hea"]})
    g = group_ids(df, "patient_id")
    assert g.iloc[0] == g.iloc[1] and g.iloc[2] == g.iloc[3] and g.iloc[0] != g.iloc[2]


def test_without_patient_ids_segments_stay_together():
    df = pd.DataFrame({"path": ["/a.hea"] * 3 + ["/b.hea"] * 3 + ["/c.hea"] * 3, "start_s": [0, 10, 20] * 3})
    with pytest.warns(UserWarning, match="own patient"):
        out = assign_splits(df, fractions=(0.34, 0.33, 0.33), seed=0)
    assert out.groupby("path").split.nunique().max() == 1


# ------------------------------------------------------------------------------ presets

def test_cpsc2021_windows_follow_af_episodes():
    df = cpsc2021_manifest(DATA / "cpsc2021")
    assert set(df.patient_id) == {"8", "92", "101", "35", "21"}
    by = {r: g.sort_values("start_s").AF.tolist() for r, g in df.groupby(df.record.str.split("#").str[0])}
    assert by["data_8_4"] == [1, 1, 1, 1]  # 41 s, AF throughout
    assert set(by["data_35_6"]) == {0} and set(by["data_21_7"]) == {0}
    # data_92_12: AF from sample 2803 to 6487 at 200 Hz = 14.0 s to 32.4 s
    assert by["data_92_12"] == [0, 1, 1, 0]
    assert (df.duration_s == 10).all() and len(by["data_21_7"]) == 47201 // 2000


def test_cpsc2019_heart_rate_and_conversion(tmp_path):
    import scipy.io

    df = cpsc2019_manifest(DATA / "cpsc2019", tmp_path)
    assert len(df) == 50 and df.heart_rate.between(30, 220).all()
    num = df.record[0].split("_")[1]
    r = scipy.io.loadmat(DATA / "cpsc2019" / "ref" / f"R_{num}.mat")["R_peak"].ravel()
    assert df.heart_rate[0] == pytest.approx(60 / (np.mean(np.diff(np.sort(r))) / 500.0))
    sig = scipy.io.loadmat(DATA / "cpsc2019" / "data" / f"data_{num}.mat")["ecg"].ravel()
    rec = wfdb.rdrecord(df.path[0][:-4])
    assert rec.fs == 500 and rec.sig_name == ["ECG"]
    np.testing.assert_allclose(rec.p_signal[:, 0], sig, atol=6e-4)  # 1 µV steps
    assert heart_rate_bpm(np.array([0, 500, 1000]), 500.0) == pytest.approx(60.0)


def test_ptbxl_tasks_and_folds(tmp_path):
    import shutil

    shutil.copy(DATA / "ptbxl" / "scp_statements.csv", tmp_path / "scp_statements.csv")
    db = pd.DataFrame({
        "ecg_id": [1, 2, 3, 4],
        "patient_id": [10.0, 10.0, 11.0, 12.0],
        "scp_codes": ["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 50.0, 'AFIB': 0.0}", "{'AFIB': 100.0}", "{'LVH': 100.0, 'NDT': 100.0}"],
        "strat_fold": [1, 1, 9, 10],
        "filename_hr": [f"records500/00000/0000{i}_hr" for i in range(1, 5)],
        "filename_lr": [f"records100/00000/0000{i}_lr" for i in range(1, 5)],
    })
    db.to_csv(tmp_path / "ptbxl_database.csv", index=False)
    sup = ptbxl_manifest(tmp_path, "superdiagnostic")
    assert list(sup.record) == ["1", "2", "4"]  # record 3 holds only a rhythm statement
    assert sorted(c for c in sup.columns if c not in ("path", "record", "patient_id", "split")) == ["HYP", "MI", "NORM", "STTC"]
    assert sup.loc[sup.record == "4", ["HYP", "STTC", "MI"]].values.tolist() == [[1, 1, 0]]
    assert list(sup.split) == ["train", "train", "test"]
    rhy = ptbxl_manifest(tmp_path, "rhythm")
    assert list(rhy.record) == ["1", "2", "3"] and {"SR", "AFIB"} <= set(rhy.columns)
    assert rhy.split.tolist() == ["train", "train", "val"]
    assert rhy.path[0].endswith("records500/00000/00001_hr.hea")
    with pytest.raises(ManifestError, match="unknown PTB-XL task"):
        ptbxl_manifest(tmp_path, "beats")


def test_cinc2021_scored_labels():
    df = cinc2021_manifest(DATA / "cinc2021")
    row = df.set_index("record")
    assert row.loc["HR06000", ["TAb", "NSR"]].tolist() == [1, 1]
    assert row.loc["E07500", "SB"] == 1  # 67741000119109 is unscored and ignored
    assert row.loc["JS20000", ["PAC", "STach", "NSIVCB"]].tolist() == [1, 1, 1]
    assert set(row.source) == {"HR", "E", "JS"}


# ------------------------------------------------------------------------------ cache

def _refs():
    df = cpsc2021_manifest(DATA / "cpsc2021")
    df = df[df.record.str.startswith(("data_92_12", "data_8_4"))]
    return [RecordRef(p, s, d) for p, s, d in zip(df.path, df.start_s, df.duration_s)]


def test_cache_equals_direct_preprocessing(tmp_path):
    refs = _refs()
    idx = WindowCache(tmp_path, LEAD_I).build(refs, workers=1)
    assert not idx.failed
    rec = wfdb.rdrecord(str(DATA / "cpsc2021" / "data_92_12"))
    k = next(i for i, r in enumerate(refs) if "92_12" in r.path and r.start_s == 20.0)
    seg = rec.p_signal[4000:6000, :].T  # 20-30 s at 200 Hz, leads I and II
    expect = preprocess(seg, 200.0, ["I", "II"], LEAD_I)
    assert idx.windows(k).shape == (1, 1, 5000)
    np.testing.assert_array_equal(idx.windows(k), expect)


def test_cache_reused_and_invalidated(tmp_path):
    refs = _refs()
    c = WindowCache(tmp_path / "c", LEAD_I)
    first = c.build(refs, workers=1)
    shards = sorted(c.root.glob("shard-*.npy"))
    mtimes = [s.stat().st_mtime_ns for s in shards]
    t0 = time.perf_counter()
    again = c.build(refs, workers=1)
    assert time.perf_counter() - t0 < 1.0
    assert [s.stat().st_mtime_ns for s in sorted(c.root.glob("shard-*.npy"))] == mtimes
    for i in range(len(refs)):
        np.testing.assert_array_equal(first.windows(i), again.windows(i))
    # another contract → another cache folder
    assert WindowCache(tmp_path / "c", PreprocessContract(leads=("I",), mode="zscore")).root != c.root


@pytest.mark.slow  # spawns worker processes (each imports torch)
def test_cache_parallel_workers_write_the_same_values(tmp_path):
    refs = _refs()
    first = WindowCache(tmp_path / "c", LEAD_I).build(refs, workers=1)
    par = WindowCache(tmp_path / "p", LEAD_I).build(refs, workers=2, records_per_shard=2)
    assert len(list(par.root.glob("shard-*.npy"))) > 1
    for i in range(len(refs)):
        np.testing.assert_array_equal(par.windows(i), first.windows(i))


def test_cache_changed_file_is_recomputed(tmp_path):
    src = DATA / "cpsc2021"
    for ext in (".hea", ".dat"):
        (tmp_path / f"data_8_4{ext}").write_bytes((src / f"data_8_4{ext}").read_bytes())
    ref = [RecordRef(str(tmp_path / "data_8_4.hea"), 0.0, 10.0)]
    c = WindowCache(tmp_path / "cache", LEAD_I)
    a = c.build(ref, workers=1).windows(0).copy()
    sig = (tmp_path / "data_8_4.dat")
    data = bytearray(sig.read_bytes())
    data[100:400] = bytes(300)  # change samples in the first second
    sig.write_bytes(bytes(data))
    os.utime(sig, ns=(time.time_ns(), time.time_ns() + 10**9))
    b = c.build(ref, workers=1).windows(0)
    assert not np.array_equal(a, b)
    assert len(list(c.root.glob("shard-*.json"))) == 2


def test_cache_bad_record_does_not_stop_others(tmp_path):
    (tmp_path / "broken.hea").write_text("broken 1 200 notanumber\n")
    refs = _refs()[:2] + [RecordRef(str(tmp_path / "broken.hea")), RecordRef(str(tmp_path / "missing.hea"))]
    idx = WindowCache(tmp_path / "c", LEAD_I).build(refs, workers=1)
    assert idx.ok(0) and idx.ok(1)
    assert set(idx.failed) == {2, 3}
    assert "broken.hea" in idx.failed[2] and "missing" in idx.failed[3]


def test_segment_outside_record_refused():
    ref = RecordRef(str(DATA / "cpsc2021" / "data_8_4.hea"), 40.0, 10.0)
    with pytest.raises(ValueError, match="outside the record"):
        load_windows(ref, LEAD_I)


def test_cache_example_that_kills_its_worker_fails_alone(tmp_path, monkeypatch):
    """An example whose reading takes its worker down (a reader's library crashing, the OOM
    killer) is remembered as failed; the other examples are cached as without it."""
    import signal

    import ecgfounder.io as io_mod
    from ecgfounder._pools import CRASHED
    from ecgfounder.train import cache as cache_mod

    refs = _refs()
    first = WindowCache(tmp_path / "c", LEAD_I).build(refs, workers=1)
    real = io_mod.read

    def deadly(path, *a, **k):
        if "data_8_4" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *a, **k)

    monkeypatch.setattr(io_mod, "read", deadly)
    monkeypatch.setattr(cache_mod, "_START_METHOD", "fork")  # (the workers inherit the patch)
    par = WindowCache(tmp_path / "p", LEAD_I).build(refs, workers=2, records_per_shard=2)
    killed = {i for i, r in enumerate(refs) if "data_8_4" in r.path}
    assert killed and set(par.failed) == killed and set(par.failed.values()) == {CRASHED}
    for i in set(range(len(refs))) - killed:
        np.testing.assert_array_equal(par.windows(i), first.windows(i))
    # remembered: a second build reads nothing again (the killers included)
    monkeypatch.setattr(io_mod, "read", lambda *a, **k: pytest.fail("read again"))
    again = WindowCache(tmp_path / "p", LEAD_I).build(refs, workers=2, records_per_shard=2)
    assert set(again.failed) == killed


def test_cache_worker_dying_without_a_killer_is_one_clear_error(tmp_path, monkeypatch):
    """A shard whose worker dies even when no example kills a worker alone (memory) ends the
    build with an error that names the shard and the smaller settings, not a bare BrokenProcessPool."""
    import signal

    from ecgfounder.errors import WorkerDiedError
    from ecgfounder.train import cache as cache_mod

    # (writing a shard ends the worker; reading and preparing an example alone does not)
    parent, real = os.getpid(), cache_mod.publish
    monkeypatch.setattr(cache_mod, "publish",
                        lambda *a: real(*a) if os.getpid() == parent else os.kill(os.getpid(), signal.SIGKILL))
    monkeypatch.setattr(cache_mod, "_START_METHOD", "fork")
    with pytest.raises(WorkerDiedError, match=r"ends its worker process even without .*records_per_shard="):
        WindowCache(tmp_path / "c", LEAD_I).build(_refs(), workers=2, records_per_shard=2)
    assert not list((tmp_path / "c").rglob(".shard-*"))  # the dead writers' temporaries are gone


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_manifest_patient_ids_are_read_as_written_in_any_patient_column(tmp_path, kind):
    """A patient column of another name (data.patient_column) keeps its leading zeros in a CSV, and a
    Parquet float id column (a blank cell upcasts it) reads '7', not '7.0'."""
    import pandas as pd

    from ecgfounder.train.manifest import read_manifest

    df = pd.DataFrame({"path": ["a.hea", "b.hea", "c.hea"], "subject": ["007", "007", None], "y": [0, 1, 0]})
    if kind == "parquet":
        pytest.importorskip("pyarrow")
        df["subject"] = [7.0, 7.0, None]
        path = tmp_path / "m.parquet"
        df.to_parquet(path, index=False)
        want = ["7", "7", None]
    else:
        path = tmp_path / "m.csv"
        df.to_csv(path, index=False)
        want = ["007", "007", None]
    got = read_manifest(path, text=("subject", "split"))["subject"].tolist()
    assert [None if pd.isna(v) else v for v in got] == want


def test_failure_warning_names_each_record_once():
    """The windows of a moved record all fail alike: the warning named that record five times, with
    its path twice each ("x.hea: x.hea: WFDB header x.hea not found"), and no other record."""
    from ecgfounder.train.cache import CacheIndex, _warn_failures

    refs = [RecordRef(f"/gone/{name}.hea", 10.0 * k, 10.0) for name in ("a", "b") for k in range(4)]
    failed = {i: f"{r.path}: WFDB header {Path(r.path).name} not found" for i, r in enumerate(refs)}
    with pytest.warns(UserWarning) as rec:
        _warn_failures(CacheIndex(Path("/c"), [None] * len(refs), failed), refs)
    assert str(rec[0].message) == ("8 example(s) of 2 record(s) could not be prepared and are skipped, e.g. "
                                   "/gone/a.hea: WFDB header a.hea not found; /gone/b.hea: WFDB header b.hea not found")


def test_fixed_patients_over_the_manifests_split_are_said():
    """data.test_patients moved a patient the manifest's split column put in train to test without a
    word (a pre-made split overridden by a fold setting)."""
    from ecgfounder.train.config import config_from_dict
    from ecgfounder.train.data import _fixed_patients

    df = pd.DataFrame({"path": [f"r{i}.hea" for i in range(5)], "patient_id": ["92", "92", "35", "8", "8"],
                       "split": ["train", "train", None, "test", None], "AF": [0, 1, 0, 1, 0]})
    cfg = config_from_dict({"data": {"manifest": "m.csv", "test_patients": ["92", "8", "35"]}})
    with pytest.warns(UserWarning, match=r"data.test_patients puts patient\(s\) in test that the manifest's 'split' "
                                         r"column puts elsewhere \(92: train\); the setting wins"):
        out, fractions = _fixed_patients(df, cfg)
    assert out["split"].tolist() == ["test"] * 5 and fractions[2] == 0
