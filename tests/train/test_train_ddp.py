"""Two gloo processes (torchrun, CPU) give the same model and metrics as one process (also when
stopped inside an epoch and resumed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ecgfounder.train.config import config_from_dict
from ecgfounder.train.distributed import DistInfo, epoch_plan, gather_by_index
from ecgfounder.train.loop import finetune

from _train_helpers import base_config


@pytest.mark.parametrize("n, world, batch", [(10, 2, 4), (11, 2, 4), (7, 3, 3), (5, 1, 2)])
def test_epoch_plan_covers_each_item_once(n, world, batch):
    plans = [epoch_plan(n, epoch=1, seed=5, global_batch=batch, rank=r, world_size=world) for r in range(world)]
    single = epoch_plan(n, epoch=1, seed=5, global_batch=batch)
    assert len({len(p) for p in plans}) == 1
    real = np.concatenate([np.concatenate(p.batches)[np.concatenate(p.real)] for p in plans])
    assert sorted(real.tolist()) == list(range(n))
    for k in range(len(plans[0])):  # micro-batch k over all ranks = micro-batch k of one process
        union = sorted(np.concatenate([p.batches[k][p.real[k]] for p in plans]).tolist())
        assert union == sorted(single.batches[k].tolist())
        assert plans[0].global_real[k] == len(single.batches[k])
        assert all(sorted(p.global_items[k].tolist()) == union for p in plans)  # the loss normaliser's items


@pytest.mark.parametrize("world, batch, ok", [(2, 5, False), (3, 7, False), (3, 4, False), (2, 4, True), (3, 6, True),
                                              (1, 5, True)])
def test_epoch_plan_refuses_batches_not_divisible_by_world(world, batch, ok):
    if ok:
        plans = [epoch_plan(10, epoch=0, seed=0, global_batch=batch, rank=r, world_size=world) for r in range(world)]
        assert all(len(p.batches[0]) == batch // world for p in plans)
    else:
        with pytest.raises(ValueError, match=rf"train.batch_size={batch} must be divisible .*\({world}\)"):
            epoch_plan(10, epoch=0, seed=0, global_batch=batch, rank=0, world_size=world)


def test_gather_drops_padding_duplicates():
    out = gather_by_index(DistInfo(), np.array([2, 0, 1, 0]), np.array([[20.0], [0.0], [10.0], [0.0]]), 3)
    assert out.ravel().tolist() == [0.0, 10.0, 20.0]
    with pytest.raises(RuntimeError, match="miss"):
        gather_by_index(DistInfo(), np.array([0]), np.array([1.0]), 2)


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path, cpsc2021_manifest, cache_dir):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not installed beside the interpreter")
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    # an odd number of training examples, so that the sampler pads
    df = df.drop(df.index[df.split == "train"][:1]).reset_index(drop=True)
    assert (df.split == "train").sum() % 2 == 1
    # a second label not assessed for some windows: the loss is normalised by the assessed entries of
    # the micro-batch over both processes
    df["late"] = (df.start_s >= 30).astype(float).where(df.start_s % 30 != 10)
    df.to_csv(tmp_path / "m.csv", index=False)
    # no cosine schedule: its length follows train.max_steps, which the first two-process run sets
    sections = dict(train={"epochs": 2, "batch_size": 8, "grad_accum": 2, "eval_batch_size": 5}, eval={"n_boot": 100},
                    optim={"scheduler": "none"}, task={"type": "multilabel"}, data={"label_columns": ["AF", "late"]})
    one = finetune(config_from_dict(base_config(tmp_path / "m.csv", tmp_path / "one", cache_dir, **sections)))

    cfg = base_config(tmp_path / "m.csv", tmp_path / "two", cache_dir, **sections)
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    # stopped by train.max_steps inside the first epoch (3 steps of 2, 2, 1 micro-batches), then resumed
    for overrides in (["train.max_steps=2"], []):
        proc = subprocess.run(
            [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "ecgfounder", "finetune", "run",
             str(tmp_path / "two.yaml"), *overrides], capture_output=True, text=True, env=env, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)
    assert state["global_step"] == one.global_step and state["world_size"] == 2
    log = pd.read_csv(tmp_path / "two" / "log.csv")
    np.testing.assert_allclose(log.train_loss, [h["train_loss"] for h in one.history], rtol=1e-5)
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "one" / "last.safetensors")), load_file(str(tmp_path / "two" / "last.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    import json

    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m1["n"] == m2["n"]
    for split in ("val", "test"):
        for k, v in m1[split].items():
            assert m2[split][k] == pytest.approx(v, abs=1e-5), (split, k)
    p1 = pd.read_csv(tmp_path / "one" / "test_predictions.csv")
    p2 = pd.read_csv(tmp_path / "two" / "test_predictions.csv")
    assert list(p1.record) == list(p2.record) and p2.record.is_unique
    np.testing.assert_allclose(p1.AF, p2.AF, atol=1e-5)
    r1 = pd.read_csv(tmp_path / "one" / "test_report.csv", index_col=0)
    r2 = pd.read_csv(tmp_path / "two" / "test_report.csv", index_col=0)
    assert r1.loc["AF", "auroc"] == pytest.approx(r2.loc["AF", "auroc"], abs=1e-6)
