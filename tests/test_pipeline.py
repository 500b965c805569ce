"""Parallel reading/preprocessing, resumable and sharded prediction, merge."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgfounder.pipeline import parse_shard, prepared_records, shard, shard_bounds, shard_from_env

N_RECORDS = 60


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A small Net1D with the 150 labels (fast), saved in our format."""
    import torch

    from ecgfounder.labels import load_labels
    from ecgfounder.models.loading import save_model
    from ecgfounder.models.net1d import Net1D, Net1DConfig
    from ecgfounder.signal.preprocess import PreprocessContract

    torch.manual_seed(0)
    m = Net1D(Net1DConfig(base_filters=8, filter_list=(16, 32), m_blocks_list=(1, 1), n_classes=150))
    m.contract, m.labels = PreprocessContract(), load_labels()
    return save_model(m, tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """N_RECORDS synthetic 12-lead WFDB records (4 s at 500 Hz) and one unreadable file."""
    import wfdb

    from ecgfounder.signal.leads import STANDARD_12

    d = tmp_path_factory.mktemp("recs")
    rng = np.random.default_rng(0)
    t = np.arange(2000) / 500
    for i in range(N_RECORDS):
        sig = np.sin(2 * np.pi * rng.uniform(0.8, 2) * t)[:, None] * rng.uniform(0.5, 1.5, 12)
        sig = sig + 0.05 * rng.standard_normal((2000, 12))
        wfdb.wrsamp(f"r{i:04d}", fs=500, units=["mV"] * 12, sig_name=list(STANDARD_12), p_signal=sig,
                    fmt=["16"] * 12, adc_gain=[1000] * 12, baseline=[0] * 12, write_dir=str(d))
    (d / "r0027.hea").write_text("garbage\n")  # one bad record in the middle
    return d


def _cli(argv: list[str]) -> int:
    from ecgfounder.cli import predict as cli_predict, merge as cli_merge

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli_predict.add_parser(sub)
    cli_merge.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_json(path, lines=True)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a["path"].tolist() == b["path"].tolist()
    num = a.columns[3:]
    np.testing.assert_allclose(a[num].to_numpy(float), b[num].to_numpy(float), atol=1e-5)


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


def test_shard_split_is_a_partition():
    items = [f"f{i:03d}" for i in range(103)][::-1]
    parts = [shard(items, i, 4) for i in range(4)]
    assert sum(parts, []) == sorted(items)
    assert {len(p) for p in parts} == {25, 26}
    assert shard_bounds(10, 2, 3) == (7, 10)
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/3", "a/b", "3"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    assert shard_from_env({"WORLD_SIZE": "1"}) is None


@pytest.mark.parametrize("suffix,workers", [pytest.param(".csv", "1", marks=pytest.mark.slow), (".jsonl", "0")])
def test_interrupted_run_resumes_without_loss_or_duplicates(records, tiny_ckpt, tmp_path, monkeypatch, suffix, workers):
    import importlib

    pred = importlib.import_module("ecgfounder.prediction")

    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", workers, "--batch-size", "8"]
    full = tmp_path / f"full{suffix}"
    assert _cli(base + ["-o", str(full), "--embeddings", str(tmp_path / "full.npy")]) == 1  # one bad record

    out = tmp_path / f"out{suffix}"
    real = pred.result_rows
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 37:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pred, "result_rows", flaky)
    with pytest.raises(KeyboardInterrupt):
        _cli(base + ["-o", str(out), "--embeddings", str(tmp_path / "out.npy")])
    monkeypatch.setattr(pred, "result_rows", real)
    partial = tmp_path / f".out{suffix}.partial"
    state = tmp_path / f".out{suffix}.state.json"
    assert partial.exists() and state.exists() and not out.exists()
    with open(partial, "a", encoding="utf-8") as f:  # a torn last line, as after kill -9
        f.write("r9999,half a row")
    assert json.loads(state.read_text())["done"] > 0
    assert _cli(base + ["-o", str(out), "--embeddings", str(tmp_path / "out.npy"), "--resume"]) == 1
    assert not partial.exists() and not state.exists()
    a, b = _table(full), _table(out)
    assert len(b) == N_RECORDS - 1 and b["path"].is_unique
    _same(a, b)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.load(tmp_path / "full.npy"), atol=1e-5)


def test_shards_merge_to_the_unsharded_run(records, tiny_ckpt, tmp_path):
    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0"]
    full = tmp_path / "full.csv"
    _cli(base + ["-o", str(full), "--embeddings", str(tmp_path / "full.npy")])
    for i in range(3):
        _cli(base + ["-o", str(tmp_path / "p.csv"), "--embeddings", str(tmp_path / "p.npy"), "--shard", f"{i}/3"])
    parts = sorted(str(p) for p in tmp_path.glob("p.shard-*-of-00003.csv"))
    assert len(parts) == 3
    with pytest.raises(ValueError, match="missing shard"):
        _cli(["merge", parts[0], parts[2], "-o", str(tmp_path / "bad.csv")])
    with pytest.raises(ValueError, match="twice"):
        _cli(["merge", parts[0], parts[0], parts[1], parts[2], "-o", str(tmp_path / "bad.csv")])
    assert _cli(["merge", *parts[::-1], "-o", str(tmp_path / "m.csv"), "--embeddings", str(tmp_path / "m.npy")]) == 0
    _same(_table(full), _table(tmp_path / "m.csv"))
    np.testing.assert_allclose(np.load(tmp_path / "m.npy"), np.load(tmp_path / "full.npy"), atol=1e-5)
    # a part cut short is detected
    lines = Path(parts[1]).read_text().splitlines(keepends=True)
    Path(parts[1]).write_text("".join(lines[:-2]))
    with pytest.raises(ValueError, match="rows"):
        _cli(["merge", *parts, "-o", str(tmp_path / "bad.csv")])


def test_resume_refuses_a_different_command(records, tiny_ckpt, tmp_path, monkeypatch):
    import importlib

    pred = importlib.import_module("ecgfounder.prediction")

    out = tmp_path / "o.csv"
    base = ["predict", str(records), "--checkpoint", str(tiny_ckpt), "-q", "--workers", "0", "-o", str(out)]

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pred, "result_rows", boom)
    with pytest.raises(KeyboardInterrupt):
        _cli(base)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="aggregate"):
        _cli(base + ["--resume", "--aggregate", "max"])
