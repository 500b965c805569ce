"""The WebDataset shard store: building from real records, shuffling, exact resume, rank splits,
reading over HTTP."""

from __future__ import annotations

import functools
import logging
import os
import re
import http.server
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgfounder.pretrain.statements import NEGATED, POSITIVE
from ecgfounder.pretrain import store as store_mod
from ecgfounder.pretrain.store import StoreError, build_store, iter_batches, open_store, steps_per_epoch

from _pt_helpers import DATA, SMALL_CONTRACT, write_long_record


def _all(info, **kw):
    return [(x, y, k) for x, y, k in iter_batches(info, **kw)]


def test_store_contents(small_store):
    info = small_store
    assert len(info.failures) == 1 and info.failures[0][0].endswith("broken.hea")
    # 10 CinC records of 10 s → 2 windows of 5 s; CPSC 2021 data_8_4 (41 s) → 9; MUSE 10 s → 2
    assert info.n_samples == 10 * 2 + 9 + 2
    assert sum(info.counts) == info.n_samples and max(info.counts) <= 8
    assert info.contract == SMALL_CONTRACT and len(info.labels) == 150
    batches = _all(info, global_batch=1, shuffle=False)
    keys = [k[0] for _, _, k in batches]
    assert keys == sorted(keys)
    x, y, _ = batches[-1]  # the MUSE record: labels from its statements
    lab = info.labels
    assert y[0, lab.index("VENTRICULAR-PACED RHYTHM")] == POSITIVE
    assert x.shape == (1, 12, 625) and x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3  # z-scored windows
    # CinC records: labels from their SNOMED codes through the package mapping
    assert (np.stack([b[1][0] for b in batches[:20]]) == POSITIVE).any()
    # the 2-lead CPSC record: precordial leads zero-filled
    cpsc = [b[0][0] for b in batches if b[2][0].startswith("00000010")]
    assert len(cpsc) == 9 and all(not w[6:].any() and w[:6].any() for w in cpsc)


def test_shuffle_resume_and_rank_split(small_store):
    info = small_store
    n = steps_per_epoch(info, 4)
    full = _all(info, global_batch=4, epoch=1, seed=3, shuffle_buffer=16)
    assert len(full) == n == info.n_samples // 4
    keys = [k for _, _, ks in full for k in ks]
    assert len(set(keys)) == len(keys) and keys != sorted(keys)
    again = _all(info, global_batch=4, epoch=1, seed=3, shuffle_buffer=16)
    assert [b[2] for b in again] == [b[2] for b in full]
    other = _all(info, global_batch=4, epoch=2, seed=3, shuffle_buffer=16)
    assert [b[2] for b in other] != [b[2] for b in full]
    # resume in the middle of the epoch: the same batches, bit for bit
    tail = _all(info, global_batch=4, epoch=1, seed=3, shuffle_buffer=16, start_batch=3)
    assert [b[2] for b in tail] == [b[2] for b in full[3:]]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(tail, full[3:]))
    # two ranks, split by samples: together exactly the one-process batches
    r0 = _all(info, global_batch=4, epoch=1, seed=3, shuffle_buffer=16, rank=0, world=2)
    r1 = _all(info, global_batch=4, epoch=1, seed=3, shuffle_buffer=16, rank=1, world=2)
    assert [a[2] + b[2] for a, b in zip(r0, r1)] == [b[2] for b in full]
    # split by shards: disjoint shards per rank
    s0 = {k for b in _all(info, global_batch=4, rank=0, world=2, split="shards") for k in b[2]}
    s1 = {k for b in _all(info, global_batch=4, rank=1, world=2, split="shards") for k in b[2]}
    assert s0 and s1 and not s0 & s1
    with pytest.raises(StoreError, match="not divisible"):
        steps_per_epoch(info, 3, world=2)


def test_read_over_http(small_store):
    """Object-storage stand-in: the store served by a plain HTTP server, shards fetched by
    WebDataset (curl), index by urllib."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=info_dir(small_store))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    th.start()
    try:
        remote = open_store(f"http://127.0.0.1:{srv.server_address[1]}")
        assert remote.counts == small_store.counts
        a = _all(remote, global_batch=4, seed=1, shuffle_buffer=8)
        b = _all(small_store, global_batch=4, seed=1, shuffle_buffer=8)
        assert [x[2] for x in a] == [x[2] for x in b] and all(np.array_equal(p[0], q[0]) for p, q in zip(a, b))
    finally:
        srv.shutdown()


def test_read_through_a_pipe_command(small_store):
    """Any object store with a command-line client: ``pipe:`` template (here ``cat``)."""
    piped = open_store(f"pipe:cat {small_store.location}/{{name}}")
    assert piped.counts == small_store.counts
    a = _all(piped, global_batch=4, seed=2, start_batch=2)
    b = _all(small_store, global_batch=4, seed=2, start_batch=2)
    assert [x[2] for x in a] == [x[2] for x in b]


def info_dir(info):
    return str(info.location)


@pytest.mark.slow  # spawning the writer processes costs ~20 s on the shared 2-core machine
def test_parallel_build_equals_serial(tmp_path):
    srcs = sorted((DATA / "cinc2021").glob("*.hea"))[:4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = build_store(srcs, tmp_path / "a", contract=SMALL_CONTRACT, workers=1, records_per_chunk=2, dtype="float16")
        b = build_store(srcs, tmp_path / "b", contract=SMALL_CONTRACT, workers=2, records_per_chunk=2, dtype="float16")
    assert a.shards == b.shards and a.counts == b.counts
    for p, q in zip(_all(a, global_batch=1, shuffle=False), _all(b, global_batch=1, shuffle=False)):
        assert p[2] == q[2] and np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])


def test_stored_windows_equal_preprocess_of_each_record(tmp_path):
    """Each record's samples are ``ecgfounder.preprocess`` of it under the store's contract, window
    by window, across chunk and shard boundaries: rates 1000, 500 and 200 Hz, a record shorter than
    one window (zero-padded), records longer than one (last window aligned to the end), 2 leads
    zero-filled to 12, a 12-lead and a lead-I contract.  float32 stores hold those values exactly;
    float16 ones their float16 rounding, within 2**-11 relative (+ 2**-25 near 0)."""
    import ecgfounder
    from ecgfounder.io import write
    from ecgfounder.signal.preprocess import PreprocessContract, preprocess

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cinc = ecgfounder.read(DATA / "cinc2021" / "E07500.hea")
        short = write(cinc.replace(signal=cinc.signal[:, :1500]), tmp_path / "short3s.npz")  # 3 s at 500 Hz
        srcs = [DATA / "ptbdb" / "s0010_re.hea", DATA / "cinc2021" / "E07500.hea",
                DATA / "train" / "cpsc2021" / "data_8_4.hea", short]
        for contract, dtype in ((SMALL_CONTRACT, "float16"), (PreprocessContract(fs=250.0, n_samples=1250, leads=("I",)), "float32")):
            info = build_store(srcs, tmp_path / dtype, contract=contract, workers=1, records_per_chunk=2, shard_size=3,
                               dtype=dtype)
            assert not info.failures and len(info.shards) > 3
            stored: dict[int, list] = {}
            for x, _, (key,) in iter_batches(info, global_batch=1, shuffle=False):
                stored.setdefault(int(key.split("_")[0]), []).append(x[0])
            for i, src in enumerate(srcs):
                rec = ecgfounder.read(src)
                want = preprocess(rec.signal, rec.fs, rec.leads, contract, fill_missing=True)
                got = np.stack(stored[i])
                assert got.shape == want.shape, (src, got.shape, want.shape)
                assert np.array_equal(got, want.astype(dtype)), src
                assert (np.abs(got - want) <= 2.0**-11 * np.abs(want) + 2.0**-25).all(), src
    assert [len(v) for v in stored.values()] == [8, 2, 9, 1]  # 38.4 s, 10 s, 41 s, 3 s in 5-s windows


def test_manifest_statements_and_errors(tmp_path):
    rec = DATA / "cinc2021" / "E07500.hea"
    man = tmp_path / "m.csv"
    man.write_text(f"path,statements\n{rec},Atrial fibrillation|No evidence of LBBB\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = build_store(man, tmp_path / "s", contract=SMALL_CONTRACT, workers=1)
    (_, y, _), = _all(info, global_batch=1, shuffle=False)[:1]
    assert y[0, info.labels.index("ATRIAL FIBRILLATION")] == POSITIVE
    assert y[0, info.labels.index("LEFT BUNDLE BRANCH BLOCK")] == NEGATED
    with pytest.raises(StoreError, match="not found"):
        build_store(tmp_path / "nothing", tmp_path / "x")
    with pytest.raises(StoreError, match="no index.json"):
        open_store(tmp_path)


def test_a_record_that_kills_its_writer_fails_alone(tmp_path, monkeypatch):
    """A record whose reading takes the worker process down (a crash in a C library, the OOM
    killer) is one failure of the index, not the end of the build: the store equals a serial build
    in which that record failed the ordinary way."""
    import os
    import signal

    import ecgfounder.io as io_mod
    from ecgfounder._pools import CRASHED
    from ecgfounder.pretrain import store as store_mod

    srcs = sorted((DATA / "cinc2021").glob("*.hea"))[:6]
    killer = str(srcs[2])
    real = io_mod.read

    def raising(path, *a, **k):
        if str(path) == killer:
            raise ValueError("unreadable")
        return real(path, *a, **k)

    def deadly(path, *a, **k):
        if str(path) == killer:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *a, **k)

    kw = dict(contract=SMALL_CONTRACT, records_per_chunk=2, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(io_mod, "read", raising)
        a = build_store(srcs, tmp_path / "a", workers=1, **kw)  # in this process
        monkeypatch.setattr(io_mod, "read", deadly)
        monkeypatch.setattr(store_mod, "_START_METHOD", "fork")  # (the workers inherit the patch)
        b = build_store(srcs, tmp_path / "b", workers=2, **kw)
    assert a.shards == b.shards and a.counts == b.counts
    assert [p for p, _ in b.failures] == [killer] and b.failures[0][1] == CRASHED
    assert not list((tmp_path / "b").glob("*.tmp"))
    for p, q in zip(_all(a, global_batch=1, shuffle=False), _all(b, global_batch=1, shuffle=False)):
        assert p[2] == q[2] and np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])
    # the chunk written alone was recorded with its killer: run again, every chunk is reused, the failure kept
    assert len(list((tmp_path / "b").glob(".chunk-*.json"))) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert build_store(srcs, tmp_path / "b", workers=2, **kw).failures == b.failures


def test_a_chunk_whose_writer_dies_without_a_killer_is_one_store_error(tmp_path, monkeypatch):
    """A chunk whose worker dies even when no record of it ends a worker alone (memory) stops the
    build with a StoreError that names the chunk and the smaller settings."""
    import os
    import signal

    from ecgfounder.pretrain import store as store_mod

    parent, real = os.getpid(), store_mod._record_labels

    def deadly(*a, **k):  # (labelling runs in the chunk writer, not in a record's probe)
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)

    monkeypatch.setattr(store_mod, "_record_labels", deadly)
    monkeypatch.setattr(store_mod, "_START_METHOD", "fork")
    srcs = sorted((DATA / "cinc2021").glob("*.hea"))[:4]
    with warnings.catch_warnings(), pytest.raises(StoreError, match=r"ends its worker process even without .*records_per_chunk"):
        warnings.simplefilter("ignore")
        build_store(srcs, tmp_path / "s", workers=2, contract=SMALL_CONTRACT, records_per_chunk=2, dtype="float32")


# --------------------------------------------------------------------------- damaged stores

def _tiny_store(tmp_path, name="s", n=2, **kw):
    """``n`` records, one chunk (and one shard of 2 windows) each."""
    opts = {"contract": SMALL_CONTRACT, "workers": 1, "records_per_chunk": 1, "shard_size": 2, "dtype": "float32", **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_store(sorted((DATA / "cinc2021").glob("*.hea"))[:n], tmp_path / name, **opts)


def _rewrite_shard(path, fn):
    """Rewrite every sample of a shard with ``fn(x, y) -> (x, y)``."""
    import io
    import tarfile

    import webdataset as wds

    samples: dict = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            key, ext = m.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tf.extractfile(m).read()
    w = wds.TarWriter(str(path))
    for key, v in samples.items():
        x, y = fn(np.load(io.BytesIO(v["x.npy"])), np.load(io.BytesIO(v["y.npy"])))
        w.write({"__key__": key, "x.npy": x, "y.npy": y, "json": v["json"]})
    w.close()


@pytest.mark.parametrize("damage, says", [
    (lambda x, y: (x[:, :100], y), "x.npy is float32 (12, 100)"),       # a shard of another contract
    (lambda x, y: (x, y[:10]), "y.npy is int8 (10,)"),                  # a shard of another label set
    (lambda x, y: (x * np.nan, y), "NaN"),
    (lambda x, y: (x, np.full_like(y, 7)), "label states"),
])
def test_a_shard_of_wrong_arrays_is_refused_naming_it(tmp_path, damage, says):
    info = _tiny_store(tmp_path)
    _rewrite_shard(tmp_path / "s" / info.shards[0], damage)
    with pytest.raises(StoreError, match=re.escape(info.shards[0]) + ".*" + re.escape(says)) as e:
        _all(info, global_batch=2, shuffle=False)
    assert "rebuild the store" in str(e.value)


def test_a_truncated_missing_or_miscounted_shard_is_a_store_error(tmp_path):
    import json

    info = _tiny_store(tmp_path)
    shard = tmp_path / "s" / info.shards[1]
    data = shard.read_bytes()
    shard.write_bytes(data[:3000])
    with pytest.raises(StoreError, match=f"{info.shards[1]} cannot be read"):
        _all(info, global_batch=2, shuffle=False)
    shard.unlink()
    with pytest.raises(StoreError, match=f"{info.shards[1]} cannot be read"):
        _all(info, global_batch=2, shuffle=False)
    shard.write_bytes(data)
    idx = tmp_path / "s" / "index.json"
    d = json.loads(idx.read_text())
    for s in d["shards"]:
        s["count"] += 1
    idx.write_text(json.dumps(d))
    with pytest.raises(StoreError, match=f"{info.shards[0]} holds 2 samples where index.json says 3"):
        _all(open_store(tmp_path / "s"), global_batch=2, shuffle=False)


def test_a_huge_or_compressed_shard_member_is_refused_unread(tmp_path):
    import gzip
    import io
    import tarfile

    info = _tiny_store(tmp_path)
    shard = tmp_path / "s" / info.shards[0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        m = tarfile.TarInfo("00000000_000.x.npy")
        m.size = 8 << 20
        tf.addfile(m, io.BytesIO(bytes(m.size)))
    shard.write_bytes(buf.getvalue())
    with pytest.raises(StoreError, match="declares 8388608 bytes"):
        _all(info, global_batch=2, shuffle=False)
    shard.write_bytes(gzip.compress(buf.getvalue()))  # a decompression bomb is not decompressed
    with pytest.raises(StoreError, match=f"{info.shards[0]} cannot be read"):
        _all(info, global_batch=2, shuffle=False)


@pytest.mark.parametrize("edit", [
    lambda d: d["shards"][0].pop("count"),
    lambda d: d["shards"][0].update(name="../elsewhere/shard.tar"),
    lambda d: d["shards"][0].update(name="x;touch PWNED;.tar"),
    lambda d: d["labels"].__setitem__(1, d["labels"][0]),  # (a model trained on it published two outputs of one name)
    lambda d: d.update(labels=[]),
])
def test_a_damaged_or_hostile_index_is_a_store_error(tmp_path, edit):
    import json

    _tiny_store(tmp_path)
    idx = tmp_path / "s" / "index.json"
    d = json.loads(idx.read_text())
    edit(d)
    idx.write_text(json.dumps(d))
    with pytest.raises(StoreError, match="index.json is damaged.*rebuild the store"):
        open_store(tmp_path / "s")
    with pytest.raises(StoreError, match="index.json is damaged"):
        open_store("pipe:cat " + str(tmp_path / "s") + "/{name}")


_WRITE_CHUNK = store_mod._write_chunk


def _counting(monkeypatch, cut_at=None):
    """The chunks the next builds write, in order; the build is cut short (KeyboardInterrupt) when
    it comes to chunk ``cut_at``."""
    written = []

    def write(job):
        if job["chunk"] == cut_at:
            raise KeyboardInterrupt
        written.append(job["chunk"])
        return _WRITE_CHUNK(job)

    monkeypatch.setattr(store_mod, "_write_chunk", write)
    return written


def _stamps(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("shard-*.tar")}


def _assert_same_store(a, b):
    """Same index (shards, counts, labels, contract, failures), label report and samples."""
    for name in ("index.json", "labels_report.json"):
        assert (Path(a.location) / name).read_text() == (Path(b.location) / name).read_text()
    pa, pb = _all(a, global_batch=1, shuffle=False), _all(b, global_batch=1, shuffle=False)
    assert len(pa) == len(pb) == a.n_samples
    for p, q in zip(pa, pb):
        assert p[2] == q[2] and np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])


def test_a_build_cut_short_resumes_with_the_chunks_it_finished(tmp_path, monkeypatch, caplog):
    written = _counting(monkeypatch, cut_at=2)
    with pytest.raises(KeyboardInterrupt) as cut:
        _tiny_store(tmp_path, n=4)
    assert written == [0, 1] and not (tmp_path / "s" / "index.json").exists()
    # it says what is kept and how to go on (the command line printed "interrupted" alone)
    assert str(cut.value) == (f"interrupted: 2 of 4 chunks of {tmp_path / 's'} are written and kept; the same command "
                              "(same sources and settings) goes on from them.")
    finished = _stamps(tmp_path / "s")
    assert len(finished) == 2
    written = _counting(monkeypatch)
    with caplog.at_level(logging.INFO, logger="ecgfounder.pretrain.store"):
        info = _tiny_store(tmp_path, n=4)
    assert written == [2, 3] and "2 of 4 chunks reused" in caplog.text
    assert {k: v for k, v in _stamps(tmp_path / "s").items() if k in finished} == finished  # not rewritten
    _assert_same_store(info, _tiny_store(tmp_path, name="whole", n=4))  # as a build never cut short
    written.clear()
    assert _tiny_store(tmp_path, n=4).shards == info.shards and written == []  # finished: verified, not rewritten


@pytest.mark.parametrize("damage", ["truncated", "altered", "unrecorded", "missing"])
def test_a_finished_chunk_that_does_not_verify_is_written_again(tmp_path, monkeypatch, damage):
    info = _tiny_store(tmp_path, n=3)
    before = _all(info, global_batch=1, shuffle=False)
    shard = tmp_path / "s" / info.shards[1]  # chunk 1's one shard
    data = bytearray(shard.read_bytes())
    if damage == "truncated":
        shard.write_bytes(data[:3000])
    elif damage == "altered":  # same size, one bit of a sample changed
        data[len(data) // 2] ^= 1
        shard.write_bytes(data)
    elif damage == "unrecorded":  # (a build cut between the shard's rename and its record)
        (tmp_path / "s" / ".chunk-00001.json").unlink()
    else:
        shard.unlink()
    written = _counting(monkeypatch)
    again = _tiny_store(tmp_path, n=3)
    assert written == [1] and again.shards == info.shards and again.counts == info.counts
    after = _all(again, global_batch=1, shuffle=False)
    assert [b[2] for b in after] == [b[2] for b in before]
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(after, before))


def test_another_build_into_a_folder_is_refused_unless_restarted(tmp_path, monkeypatch):
    """A build with other sources or settings never mixes in the chunks of the one before: refused,
    naming what changed, until restart=True discards them."""
    _counting(monkeypatch, cut_at=1)
    with pytest.raises(KeyboardInterrupt):
        _tiny_store(tmp_path, n=2)
    written = _counting(monkeypatch)
    with pytest.raises(StoreError, match=r"holds a build cut short made with other settings \(dtype 'float32' then, "
                                         r"'float16' now\); .*another folder, or pass restart=True"):
        _tiny_store(tmp_path, n=2, dtype="float16")
    with pytest.raises(StoreError, match=r"\(the sources \(2 records then, 3 now\)\)"):
        _tiny_store(tmp_path, n=3)
    assert written == [] and (tmp_path / "s" / ".chunk-00000.json").exists()  # the cut build untouched
    info = _tiny_store(tmp_path, n=3, shard_size=1, restart=True)
    assert written == [0, 1, 2] and len(info.shards) == 6  # chunk 0 too: discarded, not mixed in
    with pytest.raises(StoreError, match=r"holds a store made with other settings \(shard_size 1 then, 2 now\)"):
        _tiny_store(tmp_path, n=3)
    assert open_store(tmp_path / "s").shards == info.shards  # the store refused is left whole
    written.clear()
    assert _tiny_store(tmp_path, n=3, shard_size=1, restart=True).shards == info.shards and written == [0, 1, 2]


def test_a_rebuild_cut_short_leaves_no_index_of_the_store_before(tmp_path, monkeypatch):
    _tiny_store(tmp_path, n=3)
    _counting(monkeypatch, cut_at=1)
    with pytest.raises(KeyboardInterrupt):
        _tiny_store(tmp_path, n=3, shard_size=1, restart=True)
    with pytest.raises(StoreError, match="no index.json; build the store first"):
        open_store(tmp_path / "s")  # (the old index would name shards that now hold other windows)
    _counting(monkeypatch)
    info = _tiny_store(tmp_path, n=1, restart=True)  # built again, smaller: no shard of the larger store is left
    assert sorted(p.name for p in (tmp_path / "s").glob("shard-*")) == sorted(info.shards)
    assert [p.name for p in (tmp_path / "s").glob(".chunk-*")] == [".chunk-00000.json"]
    assert len(_all(info, global_batch=1, shuffle=False)) == info.n_samples == 2


def test_two_builders_of_one_folder_are_refused(tmp_path):
    from ecgfounder._fileio import WriterLock

    (tmp_path / "s").mkdir()
    lock = tmp_path / "s" / ".build.lock"
    with WriterLock(lock, RuntimeError):  # a builder at work (this process stands in for it)
        with pytest.raises(StoreError, match=rf"s is being built by another process \(PID {os.getpid()}\); .*another folder"):
            _tiny_store(tmp_path, n=1)
    # a builder that was killed left its PID, now another live process's: it holds no lock
    lock.write_text(str(os.getppid()))
    assert _tiny_store(tmp_path, n=1).n_samples == 2
    assert not lock.exists()


def test_a_build_cut_inside_a_chunk_resumes_without_loss_or_duplicates(tmp_path, monkeypatch):
    """Cut while a chunk is half written (some of its shard parts on disk as .tmp, no record):
    the rerun keeps the finished chunk, writes that chunk again whole, leaves no .tmp, and the
    store equals one never cut."""
    real, seen = store_mod._record_labels, []

    def labels(rec, *a, **k):  # (called once per record, inside its chunk's writer)
        seen.append(rec.id)
        if len(seen) == 5:  # chunk 1's second record: its first record's window is in a .tmp part
            raise KeyboardInterrupt
        return real(rec, *a, **k)

    monkeypatch.setattr(store_mod, "_record_labels", labels)
    with pytest.raises(KeyboardInterrupt):
        _tiny_store(tmp_path, n=6, records_per_chunk=3, shard_size=1)
    folder = tmp_path / "s"
    assert [p.name for p in folder.glob(".chunk-*")] == [".chunk-00000.json"] and list(folder.glob("*.tar.tmp"))
    monkeypatch.setattr(store_mod, "_record_labels", real)
    info = _tiny_store(tmp_path, n=6, records_per_chunk=3, shard_size=1)
    assert not list(folder.glob("*.tmp")) and sorted(p.name for p in folder.glob("shard-*")) == sorted(info.shards)
    keys = [k for _, _, ks in _all(info, global_batch=1, shuffle=False) for k in ks]
    assert len(keys) == len(set(keys)) == info.n_samples == 12
    _assert_same_store(info, _tiny_store(tmp_path, name="whole", n=6, records_per_chunk=3, shard_size=1))


def test_a_record_declaring_an_enormous_length_is_one_failure(tmp_path):
    """A header declaring 10^12 samples is refused from the header, not read: one failure, no hang."""
    import shutil
    import time

    for ext in ("hea", "mat"):
        shutil.copy(DATA / "cinc2021" / f"E07501.{ext}", tmp_path / f"E07501.{ext}")
    hea = tmp_path / "E07501.hea"
    first, rest = hea.read_text().split("\n", 1)
    hea.write_text(" ".join(first.split()[:3] + ["1000000000000"]) + "\n" + rest)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = build_store([DATA / "cinc2021" / "E07500.hea", hea], tmp_path / "s", contract=SMALL_CONTRACT, workers=1)
    assert time.perf_counter() - t0 < 10 and info.n_samples == 2
    assert [p for p, _ in info.failures] == [str(hea)] and "1000000000000 samples" in info.failures[0][1]


def test_a_record_above_the_value_limit_is_stored_with_max_duration(tmp_path, monkeypatch):
    """A record beyond the readers' value limit (a 24-h Holter) failed with "pass max_duration=SECONDS",
    which build_store did not take: now its first max_duration seconds are stored as windows."""
    import ecgfounder
    from ecgfounder.signal.preprocess import preprocess

    hea = write_long_record(tmp_path, monkeypatch)
    opts = {"contract": SMALL_CONTRACT, "workers": 1, "dtype": "float32"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = build_store([hea], tmp_path / "whole", **opts)
        assert whole.n_samples == 0 and "pass max_duration=SECONDS" in whole.failures[0][1]
        info = build_store([hea], tmp_path / "first", max_duration=20, **opts)
        rec = ecgfounder.read(hea, max_duration=20)
        want = preprocess(rec.signal, rec.fs, rec.leads, SMALL_CONTRACT, fill_missing=True)
    assert not info.failures and rec.n_samples == 2500
    got = np.stack([x[0] for x, _, _ in iter_batches(info, global_batch=1, shuffle=False)])
    assert want.shape[0] == 4 and np.array_equal(got, want)  # 20 s in 5-s windows
    with pytest.raises(StoreError, match="max_duration 20.0 then, 30.0 now"):
        build_store([hea], tmp_path / "first", max_duration=30, **opts)  # (another store: its resume is refused)
    for bad in (0, -5.0, float("nan"), "20"):
        with pytest.raises(StoreError, match=r"max_duration=.* is not valid; give a positive number of seconds"):
            build_store([hea], tmp_path / "bad", max_duration=bad, **opts)
