"""The archive job: resumable and sharded prediction, merge, lock, finished runs, setup errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_RECORDS = 60


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


@pytest.mark.parametrize("suffix,workers", [pytest.param(".csv", "1", marks=pytest.mark.slow), (".jsonl", "0")])
def test_interrupted_run_resumes_without_loss_or_duplicates(records, tiny_ckpt, tmp_path, monkeypatch, suffix, workers):
    import importlib

    pred = importlib.import_module("ecgfounder.prediction.stream")

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

    pred = importlib.import_module("ecgfounder.prediction.stream")

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
