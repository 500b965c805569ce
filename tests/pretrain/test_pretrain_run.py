"""Pre-training runs on a small real-record store: exact resume after a kill, 2-process gloo DDP
equal to one process with the doubled batch, gradient accumulation, publishing."""

from __future__ import annotations

import os
import random
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ecgfounder
from ecgfounder.pretrain.config import pretrain_config_from_dict
from ecgfounder.pretrain.loop import pretrain

from _pt_helpers import DATA


def _cfg(store, out, optim=(), **train):
    t = {"out": str(out), "batch_size": 4, "epochs": 1, "ckpt_every": 2, "log_every": 100, "device": "cpu", **train}
    return pretrain_config_from_dict({
        "data": {"store": str(store.location), "shuffle_buffer": 8},
        "model": {"size": "tiny"}, "recipe": {"lead_mask_p": 0.3},
        "optim": {"lr": 3e-3, "warmup_steps": 2, **dict(optim)}, "train": t})


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


class Killed(Exception):
    pass


def test_killed_and_resumed_equals_uninterrupted(small_store, tmp_path):
    cfg = _cfg(small_store, tmp_path / "full", max_steps=7, ema_decay=0.5)
    ref = pretrain(cfg)
    assert ref.steps == 7 and ref.history[-1]["loss"] < ref.history[0]["loss"] * 1.5
    kill_at = random.Random().randint(1, 6)

    def kill(step):
        if step == kill_at:
            raise Killed

    cfg2 = _cfg(small_store, tmp_path / "resumed", max_steps=7, ema_decay=0.5)
    with pytest.raises(Killed):
        pretrain(cfg2, on_step=kill)
    res = pretrain(cfg2)
    d = _max_diff(_weights(ref.model_path), _weights(res.model_path))
    print(f"killed at step {kill_at} of 7, resumed: max |Δ| = {d:.3g}")
    assert d <= 1e-6, (kill_at, d)
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]


def test_accumulation_equals_one_big_batch(small_store, tmp_path):
    a = pretrain(_cfg(small_store, tmp_path / "a", max_steps=3, batch_size=4))
    b = pretrain(_cfg(small_store, tmp_path / "b", max_steps=3, batch_size=4, accum_steps=2))
    assert _max_diff(_weights(a.model_path), _weights(b.model_path)) <= 1e-5


def _ddp_worker(rank, port, store, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    pretrain(_cfg(store, out, max_steps=3))


def test_two_process_ddp_equals_one_process(small_store, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children inherit the imported torch (spawning re-imports it: +40 s on the shared machine)
    mp.start_processes(_ddp_worker, args=(port, small_store, tmp_path / "ddp"), nprocs=2, join=True, start_method="fork")
    one = pretrain(_cfg(small_store, tmp_path / "one", max_steps=3))
    d = _max_diff(_weights(tmp_path / "ddp" / "model" / "model.safetensors"), _weights(one.model_path))
    print(f"2-process gloo DDP vs 1 process: max |Δ| = {d:.3g}")
    assert d <= 1e-5, d


def test_published_model_works_with_the_package(small_store, tmp_path):
    res = pretrain(_cfg(small_store, tmp_path / "pub", max_steps=2, bf16=True))
    folder = res.model_path.parent
    assert {"README.md", "labels.txt", "contract.json", "config.json", "training.json"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "trained from a random initialisation" in card and "## Pre-training" in card
    from ecgfounder.models.hub import from_pretrained

    assert from_pretrained(folder).labels == small_store.labels
    model = ecgfounder.load_model(res.model_path)
    assert model.contract == small_store.contract and model.labels == small_store.labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = ecgfounder.predict([str(DATA / "cinc2021" / "E07501.hea")], model)
    assert len(df) == 1 and "ATRIAL FIBRILLATION" in df.columns
    assert np.isfinite(df["ATRIAL FIBRILLATION"].to_numpy(dtype=float)).all()


def test_resume_refuses_changed_config_corrupt_checkpoint_and_silent_restart(small_store, tmp_path):
    """Resuming under another configuration was silently accepted (learning rate, batch size, the
    cosine's length) or failed with torch's RuntimeError (model size); a corrupt last.pt raised an
    UnpicklingError; train.resume=false silently trained over a finished run."""
    from ecgfounder.errors import CheckpointError
    from ecgfounder.train.config import ConfigError

    out = tmp_path / "run"
    sched = {"schedule_steps": 4}  # one schedule for the run and its longer resumes
    pretrain(_cfg(small_store, out, sched, max_steps=1))
    ckpt = out / "checkpoints" / "last.pt"
    saved = ckpt.read_bytes()
    for change, key in (({"batch_size": 2}, "train.batch_size=4 in the checkpoint, 2 now"),):
        with pytest.raises(ConfigError, match="cannot resume from") as e:
            pretrain(_cfg(small_store, out, sched, max_steps=1, **change))
        assert key in str(e.value)
    with pytest.raises(ConfigError, match=r"its cosine schedule spans 4 optimiser steps and this run's would span 2 "
                                          r"\(train.max_steps=2\), which changes the learning rates from step 1 on\. "
                                          r"Keep the checkpoint's schedule with optim.schedule_steps=4"):
        pretrain(_cfg(small_store, out, max_steps=2))  # optim.schedule_steps unset: the run's length
    cfg = _cfg(small_store, out, sched, max_steps=1)
    bigger = pretrain_config_from_dict({**cfg.to_dict(), "model": {"size": "small"}})
    with pytest.raises(ConfigError, match="model.size='tiny' in the checkpoint, 'small' now"):
        pretrain(bigger)
    with pytest.raises(ConfigError, match="already holds a pre-training run"):
        pretrain(_cfg(small_store, out, sched, max_steps=1, resume=False))
    assert ckpt.read_bytes() == saved  # nothing overwritten
    import json
    import shutil
    from types import SimpleNamespace

    copy = SimpleNamespace(location=tmp_path / "copy")  # the same store elsewhere (a mirror) may be resumed on ...
    shutil.copytree(small_store.location, copy.location)
    assert pretrain(_cfg(copy, out, sched, max_steps=2)).steps == 2  # longer training may resume
    index = json.loads((copy.location / "index.json").read_text())
    index["labels"] = index["labels"][::-1]  # ... a store of other labels (the head's columns) may not
    (copy.location / "index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="trained on a store of other labels or preprocessing"):
        pretrain(_cfg(copy, out, sched, max_steps=3))
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable pre-training checkpoint"):
        pretrain(_cfg(small_store, out, sched, max_steps=2))


def test_max_steps_stop_then_longer_resume_equals_uninterrupted(small_store, tmp_path):
    """train.max_steps may change on resume: a run stopped inside an epoch and resumed with the
    epochs deciding goes on at the next batch (the position follows from the step), and a resume
    with max_steps already reached trains nothing and publishes the same model again.  With
    optim.schedule_steps (before: the cosine's length was the run's) the pieces follow one schedule."""
    from ecgfounder.pretrain.store import steps_per_epoch

    per_epoch = steps_per_epoch(small_store, 4)
    assert per_epoch >= 2
    const = {"optim": {"lr": 3e-3, "warmup_steps": 1, "schedule_steps": per_epoch + 1, "min_lr_ratio": 0.1}}

    def cfg(out, **train):
        return pretrain_config_from_dict({**_cfg(small_store, out, **train).to_dict(), **const})

    ref = pretrain(cfg(tmp_path / "full"))
    assert ref.steps == per_epoch
    stop = per_epoch // 2
    cut = pretrain(cfg(tmp_path / "cut", max_steps=stop))
    published = _weights(cut.model_path)

    def no_step(step):
        raise Killed(step)

    again = pretrain(cfg(tmp_path / "cut", max_steps=stop), on_step=no_step)
    assert again.steps == stop and again.history == cut.history
    assert _max_diff(_weights(again.model_path), published) == 0
    res = pretrain(cfg(tmp_path / "cut"))
    assert res.steps == ref.steps
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]
    assert [h["lr"] for h in res.history] == [h["lr"] for h in ref.history]
    assert len({h["lr"] for h in ref.history}) == per_epoch  # a schedule, not a constant
    assert _max_diff(_weights(ref.model_path), _weights(res.model_path)) <= 1e-6


def test_disk_full_while_checkpointing_is_one_clear_error(small_store, tmp_path):
    """torch.save on a full disk raised torch's RuntimeError ("unexpected pos ..."), a traceback
    on the command line; the checkpoint before stays and the run resumes from it."""
    import resource
    import signal

    from ecgfounder.errors import CheckpointError

    cfg = _cfg(small_store, tmp_path / "run", max_steps=3, ckpt_every=1)
    before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:  # after step 1's checkpoint every write past 4 kB fails, as on a full disk
        with pytest.raises(CheckpointError, match=r"cannot write .*checkpoints/last.pt \(the write failed; \d+ MB free "
                                                  r"there\).*run the same command again to resume"):
            pretrain(cfg, on_step=lambda step: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limit[1])))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, before)
    ckpt = tmp_path / "run" / "checkpoints"
    assert torch.load(ckpt / "last.pt", weights_only=True)["step"] == 1
    assert [p.name for p in ckpt.iterdir()] == ["last.pt"]
    assert pretrain(cfg).steps == 3


def test_ctrl_c_names_the_checkpoint_pretraining_goes_on_from(small_store, tmp_path):
    """Ctrl-C printed "interrupted" only; it names the checkpoint the same command goes on from."""
    from ecgfounder.train.checkpoint import TrainingInterrupted

    def ctrl_c(step):
        if step == 3:
            raise KeyboardInterrupt()

    with pytest.raises(TrainingInterrupted) as err:
        pretrain(_cfg(small_store, tmp_path / "run", max_steps=6), on_step=ctrl_c)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert str(err.value).startswith(f"interrupted: the run goes on from its last checkpoint, {last} (written ")
    assert str(err.value).endswith("when the same command is run again (train.resume=true, the default).")


def test_dropout_run_killed_and_resumed_equals_uninterrupted(small_store, tmp_path):
    """With dropout (model.arch.use_do) a resumed run drew other masks than an uninterrupted one
    (max |Δ| of the weights 1e-3): the torch generator was not part of the resumable state."""
    def cfg(out):
        return pretrain_config_from_dict({**_cfg(small_store, out, max_steps=4).to_dict(),
                                          "model": {"size": "tiny", "arch": {"use_do": True}}})

    ref = pretrain(cfg(tmp_path / "full"))

    def kill(step):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        pretrain(cfg(tmp_path / "resumed"), on_step=kill)  # (its last checkpoint: step 2)
    res = pretrain(cfg(tmp_path / "resumed"))
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]
    assert _max_diff(_weights(ref.model_path), _weights(res.model_path)) <= 1e-6


def _index_copy(store, folder, edit):
    """A store folder holding only ``store``'s index.json, edited by ``edit(index)``."""
    import json

    folder.mkdir()
    d = json.loads((Path(store.location) / "index.json").read_text())
    edit(d)
    (folder / "index.json").write_text(json.dumps(d))
    return str(folder)


@pytest.mark.parametrize("case, says", [
    ("val labels", r"data.val_store=.* has other labels than data.store=.*; build it from the held-out records with the "
                   r"same rules and contract as data.store, or unset data.val_store"),
    ("val rate", r"data.val_store=.* does not hold this model's input: fs=250.0, n_samples=1250 where data.store has "
                 r"fs=125.0, n_samples=625; build it"),
    ("val leads", r"data.val_store=.* does not hold this model's input: it lacks the model's lead\(s\) II, III"),
    ("val empty", r"data.val_store=.* holds no windows \(its records all failed\?\); build it"),
    ("1-lead model, no lead I", r"model.leads=1 needs lead\(s\) I that data.store=.* does not hold \(its leads: II\); "
                               r"build the store with 12 leads \(ecgfounder pretrain build-store --leads 12\)\."),
    ("1-lead model, 2-lead store", r"model.leads=1 needs lead\(s\) aVL, aVR, III, aVF that .* or set "
                                   r"recipe.lead_augment_p=0 \(no lead augmentation\)"),
])
def test_stores_the_run_cannot_use_to_its_end_are_refused_before_training(small_store, tmp_path, case, says):
    """A held-out store of other labels or preprocessing was refused by the evaluation after the
    last step (a ValueError, nothing published); a store lacking the leads a single-lead model or
    its augmentation needs, at the first batch or at a random later one."""
    from ecgfounder.train.config import ConfigError

    def contract(**kw):
        return lambda d: d["contract"].update(kw)

    store, val, leads = str(small_store.location), None, 12
    if case == "val labels":
        val = _index_copy(small_store, tmp_path / "v", lambda d: d.update(labels=d["labels"][::-1]))
    elif case == "val rate":
        val = _index_copy(small_store, tmp_path / "v", contract(fs=250.0, n_samples=1250))
    elif case == "val empty":
        val = _index_copy(small_store, tmp_path / "v", lambda d: d.update(shards=[], n_samples=0))
    elif case == "val leads":
        val = _index_copy(small_store, tmp_path / "v", contract(leads=["I"]))
    elif case == "1-lead model, no lead I":
        store, leads = _index_copy(small_store, tmp_path / "s", contract(leads=["II"])), 1
    else:
        store, leads = _index_copy(small_store, tmp_path / "s", contract(leads=["I", "II"])), 1
    cfg = pretrain_config_from_dict({**_cfg(small_store, tmp_path / "run", max_steps=2).to_dict(),
                                     "data": {"store": store, "val_store": val}, "model": {"size": "tiny", "leads": leads}})
    with pytest.raises(ConfigError, match=says):
        pretrain(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before the first step


def test_evaluation_holds_a_batch_of_windows_not_the_store(small_store):
    """The held-out evaluation gathered every window of the store in memory (twice: the list and
    its concatenation), at the end of the run, before publishing: 24 GB for 100 000 windows."""
    import tracemalloc

    from ecgfounder.pretrain.loop import build_pretrain_model, evaluate_store

    torch.manual_seed(0)
    model = build_pretrain_model(_cfg(small_store, "unused"), small_store)
    whole = evaluate_store(model, small_store, batch=64)  # (also loads what the first call imports)
    tracemalloc.start()
    try:
        report = evaluate_store(model, small_store, batch=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report == whole
    windows = small_store.n_samples * len(small_store.contract.leads) * small_store.contract.n_samples * 4
    assert peak < 0.5 * windows, (peak, windows)


def test_resume_on_a_store_of_other_samples_is_refused(small_store, tmp_path):
    """A store of the same labels and contract but other samples (data.store pointed at another
    build) was resumed on silently: the checkpoint's data position went on in other windows (and
    in another epoch, the store having another length). A copy (mirror) is still resumed on."""
    import json
    import shutil
    from types import SimpleNamespace

    from ecgfounder.train.config import ConfigError

    out, sched = tmp_path / "run", {"schedule_steps": 4}
    pretrain(_cfg(small_store, out, sched, max_steps=1))
    other = SimpleNamespace(location=tmp_path / "other")
    shutil.copytree(small_store.location, other.location)
    index = json.loads((other.location / "index.json").read_text())
    index["shards"] = index["shards"][:-1]  # fewer samples, same labels and preprocessing
    (other.location / "index.json").write_text(json.dumps(index))
    n_was = sum(s["count"] for s in json.loads((Path(small_store.location) / "index.json").read_text())["shards"])
    with pytest.raises(ConfigError, match=rf"trained on a store of other samples \({n_was} windows in"):
        pretrain(_cfg(other, out, sched, max_steps=2))
    assert pretrain(_cfg(small_store, out, sched, max_steps=2)).steps == 2


def test_a_warm_up_as_long_as_the_run_is_said(small_store, tmp_path):
    """optim.warmup_steps beyond the run's steps (schedule_steps unset: the run's length) trained at
    a fraction of optim.lr without a word."""
    with pytest.warns(UserWarning, match=r"optim.warmup_steps=50 is not shorter than the cosine schedule of \d+ optimiser "
                                         r"steps \(the steps of train.epochs=2\): the whole run warms up"):
        res = pretrain(_cfg(small_store, tmp_path / "run", {"warmup_steps": 50}, epochs=2))
    # epochs are numbered from 1 in the history and the log lines, as fine-tuning's log.csv (0, 1 before)
    assert sorted({h["epoch"] for h in res.history}) == [1, 2] and res.history[0]["epoch"] == 1


def test_resume_on_a_store_whose_shard_was_replaced_is_refused(small_store, tmp_path):
    """A shard replaced by another of the same name and sample count (a rebuild, a copy gone wrong)
    was resumed on silently: the store was known by its shard names and counts only.  Each local
    shard's size and the hash of its first and last 64 KiB are compared now."""
    import json
    import shutil
    from types import SimpleNamespace

    from ecgfounder.train.config import ConfigError

    copy = SimpleNamespace(location=tmp_path / "store")
    shutil.copytree(small_store.location, copy.location)
    shards = json.loads((copy.location / "index.json").read_text())["shards"]
    a, b = next((s, t) for i, s in enumerate(shards) for t in shards[i + 1:] if s["count"] == t["count"])
    out, sched = tmp_path / "run", {"schedule_steps": 4}
    pretrain(_cfg(copy, out, sched, max_steps=1))
    pa, pb = copy.location / a["name"], copy.location / b["name"]
    data_a = pa.read_bytes()
    pa.write_bytes(pb.read_bytes())  # shard a now holds b's windows: same name, same count
    with pytest.raises(ConfigError, match=rf"shard {a['name']} .*changed since the checkpoint"):
        pretrain(_cfg(copy, out, sched, max_steps=2))
    pa.write_bytes(data_a)
    assert pretrain(_cfg(copy, out, sched, max_steps=2)).steps == 2
