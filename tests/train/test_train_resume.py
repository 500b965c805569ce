"""Resuming a run stopped by ``train.max_steps`` or early stopping: the saved position is the true
one, so a longer resumed run equals an uninterrupted one, and a resume with nothing left to train
trains nothing."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from ecgfounder.train.config import config_from_dict
from ecgfounder.train.loop import finetune, run as run_with_hook

from _train_helpers import SimulatedInterrupt, base_config

_TIMING = ("seconds", "ecg_per_s")


def _cfg(manifest, out, cache, **sections):
    return config_from_dict(base_config(manifest, out, cache, **sections))


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _same_rows(a, b):
    """Two histories equal but for the timings (NaN equal to NaN)."""
    a, b = ([{k: v for k, v in row.items() if k not in _TIMING} for row in h] for h in (a, b))
    assert [r.keys() for r in a] == [r.keys() for r in b]
    for r, s in zip(a, b):
        assert r == pytest.approx(s, nan_ok=True), (r, s)


def _no_step(step):
    raise SimulatedInterrupt(f"trained step {step}, expected none")


@pytest.mark.parametrize("accum", [1, 2])
def test_max_steps_stop_mid_epoch_resumes_at_the_next_batch(tmp_path, cpsc2021_manifest, cache_dir, accum, caplog):
    """Stopped by train.max_steps mid-epoch, the checkpoint said "next epoch, batch 0": a resume
    with a larger max_steps (or none) skipped the rest of the interrupted epoch."""
    # 40 training windows, batch 8: 5 micro-batches per epoch (accum 2: 3 steps of 2, 2, 1)
    kw = dict(optim={"scheduler": "none"}, eval={"n_boot": 0})
    train = {"epochs": 2, "grad_accum": accum}
    full = finetune(_cfg(cpsc2021_manifest, tmp_path / "full", cache_dir, train=train, **kw))
    per_epoch = full.global_step // 2
    assert full.global_step == 2 * per_epoch and per_epoch >= 3

    cut = tmp_path / "cut"
    first = per_epoch - 1  # a step before the end of epoch 1
    res = finetune(_cfg(cpsc2021_manifest, cut, cache_dir, train={**train, "max_steps": first}, **kw))
    state = torch.load(cut / "checkpoints" / "last.pt", weights_only=True)
    assert (res.global_step, state["global_step"], state["epoch"]) == (first, first, 0)
    assert 0 < state["batch_in_epoch"] < 5 and state["history"] == []
    # the stopped run reports: the partial epoch in the history and log, a model, scores
    assert [(r["epoch"], r["step"], r.get("partial")) for r in res.history] == [(1, first, True)]
    assert "val_auroc" in res.history[0] and len(pd.read_csv(cut / "log.csv")) == 1
    assert res.best_epoch is None and (cut / "model.safetensors").exists() and (cut / "metrics.json").exists()
    last = _weights(cut / "last.safetensors")
    for k, v in _weights(cut / "model.safetensors").items():  # no epoch ended: the final model is the last one
        assert torch.equal(v, last[k]), k

    # resuming with max_steps already reached trains nothing and reports the same
    saved = (cut / "checkpoints" / "last.pt").read_bytes()
    with caplog.at_level("INFO", logger="ecgfounder.train"):
        again = run_with_hook(_cfg(cpsc2021_manifest, cut, cache_dir, train={**train, "max_steps": first}, **kw),
                              step_hook=_no_step)
    assert again.global_step == first
    # (said as done: the line read 'resuming from ... (epoch 1, micro-batch k, step n)', as if to train on)
    assert f"its training is done (step {first}): nothing is trained" in caplog.text
    _same_rows(again.history, res.history)
    assert again.test_metrics == pytest.approx(res.test_metrics)
    assert (cut / "checkpoints" / "last.pt").read_bytes() == saved

    # longer, in two resumes (the second one also stops mid-epoch), equals the uninterrupted run
    mid = finetune(_cfg(cpsc2021_manifest, cut, cache_dir, train={**train, "max_steps": per_epoch + 1}, **kw))
    assert mid.global_step == per_epoch + 1 and [r["epoch"] for r in mid.history] == [1, 2]
    resumed = finetune(_cfg(cpsc2021_manifest, cut, cache_dir, train=train, **kw))
    assert resumed.global_step == full.global_step
    a, b = _weights(tmp_path / "full" / "last.safetensors"), _weights(cut / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    _same_rows(resumed.history, full.history)
    assert resumed.best_epoch == full.best_epoch
    assert resumed.test_metrics == pytest.approx(full.test_metrics)
    assert len(pd.read_csv(cut / "log.csv")) == 2


def test_resume_after_early_stopping_trains_nothing(tmp_path, cpsc2021_manifest, cache_dir):
    """An early-stopped run started again with the same settings trained one more epoch (and
    stopped again), each time it was started."""
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df.loc[df.split == "val", "AF"] = 0  # val AUROC undefined: every epoch counts as bad
    df.to_csv(tmp_path / "m.csv", index=False)
    kw = dict(train={"epochs": 3, "early_stopping": 1}, eval={"n_boot": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = finetune(_cfg(tmp_path / "m.csv", tmp_path / "run", cache_dir, **kw))
        assert [r["epoch"] for r in res.history] == [1]
        again = run_with_hook(_cfg(tmp_path / "m.csv", tmp_path / "run", cache_dir, **kw), step_hook=_no_step)
    assert again.global_step == res.global_step
    _same_rows(again.history, res.history)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["global_step"] == res.global_step
    # a higher early_stopping (a setting a resume may change) continues the run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        longer = finetune(_cfg(tmp_path / "m.csv", tmp_path / "run", cache_dir,
                               **{**kw, "train": {"epochs": 3, "early_stopping": 2}}))
    assert [r["epoch"] for r in longer.history] == [1, 2]


def test_resumed_tensorboard_keeps_the_checkpoint_step(tmp_path, cpsc2021_manifest, cache_dir):
    """A resumed run hid the TensorBoard events of its checkpoint's own step (the train loss of
    that step, the validation of the epoch that ended there), which it does not write again."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for max_steps in (5, None):  # stopped at the end of epoch 1 (5 steps), then resumed
        finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, train={"epochs": 2, "max_steps": max_steps},
                      optim={"schedule_steps": 10}, output={"tensorboard": True}, eval={"n_boot": 0}))
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 11))
    assert [e.step for e in events.Scalars("val/auroc")] == [5, 10]


def _logged_lrs(monkeypatch) -> dict[int, float]:
    """The learning rate the runs log after each optimiser step (filled as they train)."""
    from ecgfounder.train.logs import RunLog

    seen: dict[int, float] = {}
    step = RunLog.step

    def record(self, global_step, loss, lr):
        seen[global_step] = lr
        step(self, global_step, loss, lr)

    monkeypatch.setattr(RunLog, "step", record)
    return seen


def test_one_cosine_schedule_trained_in_pieces(tmp_path, cpsc2021_manifest, cache_dir, monkeypatch):
    """optim.schedule_steps did not exist: the cosine's length was train.max_steps, so a run of 3
    steps resumed to 6 decayed to the floor at step 3 and then followed another curve.  With it,
    the pieces follow the learning rates and reach the weights of one uninterrupted run."""
    lrs = _logged_lrs(monkeypatch)
    lr, floor, length, warm = 3e-3, 0.1, 9, 2  # warm-up: round(0.25 * 9) steps
    kw = dict(optim={"lr": lr, "schedule_steps": length, "warmup_ratio": 0.25, "min_lr_ratio": floor},
              eval={"n_boot": 0})
    full = finetune(_cfg(cpsc2021_manifest, tmp_path / "full", cache_dir, train={"epochs": 2, "max_steps": 6}, **kw))
    ref = dict(lrs)
    lrs.clear()
    cut = tmp_path / "cut"  # 5 steps per epoch: stopped inside the first, resumed across the epoch's end
    finetune(_cfg(cpsc2021_manifest, cut, cache_dir, train={"epochs": 2, "max_steps": 3}, **kw))
    assert torch.load(cut / "checkpoints" / "last.pt", weights_only=True)["schedule_steps"] == length
    resumed = finetune(_cfg(cpsc2021_manifest, cut, cache_dir, train={"epochs": 2, "max_steps": 6}, **kw))
    assert full.global_step == resumed.global_step == 6
    assert sorted(lrs) == sorted(ref) == list(range(1, 7))

    def f(s):  # the multiplier after s steps: linear warm-up, then cosine over the remaining steps
        if s < warm:
            return (s + 1) / warm
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (s - warm) / (length - warm)))

    assert [lrs[s] for s in range(1, 7)] == pytest.approx([lr * f(s) for s in range(1, 7)], rel=1e-9, abs=0)
    assert [lrs[s] for s in range(1, 7)] == pytest.approx([ref[s] for s in range(1, 7)], rel=1e-12, abs=0)
    a, b = _weights(tmp_path / "full" / "last.safetensors"), _weights(cut / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_resume_under_another_schedule_length_refused(tmp_path, cpsc2021_manifest, cache_dir, monkeypatch):
    """A cosine run stopped by train.max_steps and resumed with more steps (or more epochs) was
    silently given a longer cosine from the checkpoint's step on.  Now refused before anything is
    written, naming both lengths and the fix; optim.schedule_steps set to the checkpoint's length
    keeps its schedule (at the floor past its end)."""
    from ecgfounder.train.config import ConfigError

    run = tmp_path / "run"
    kw = dict(eval={"n_boot": 0})
    finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"epochs": 2, "max_steps": 3},
                  optim={"min_lr_ratio": 0.1}, **kw))
    files = {f: (run / f).read_bytes() for f in ("config.yaml", "checkpoints/last.pt")}
    for train, optim, now, why in (({"max_steps": 6}, {}, 6, "train.max_steps=6"),
                                   ({"max_steps": None}, {}, 10, "train.epochs=2 of 5 steps"),
                                   ({"max_steps": 6}, {"schedule_steps": 8}, 8, "optim.schedule_steps=8")):
        with pytest.raises(ConfigError, match=r"cannot resume from .*last.pt: its cosine schedule spans 3 optimiser "
                                              rf"steps and this run's would span {now} \({why}\)") as e:
            finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"epochs": 2, **train},
                          optim={"min_lr_ratio": 0.1, **optim}, **kw))
        assert "from step 3 on" in str(e.value) and "optim.schedule_steps=3" in str(e.value)
        assert {f: (run / f).read_bytes() for f in files} == files
    lrs = _logged_lrs(monkeypatch)
    res = finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"epochs": 2, "max_steps": 5},
                        optim={"min_lr_ratio": 0.1, "schedule_steps": 3}, **kw))
    assert res.global_step == 5 and sorted(lrs) == [4, 5]
    assert lrs[4] == lrs[5] == pytest.approx(0.1 * 3e-3)


def test_disk_full_while_checkpointing_is_one_clear_error(tmp_path, cpsc2021_manifest, cache_dir):
    """torch.save on a full disk raised RuntimeError("[enforce fail at inline_container.cc] ...
    unexpected pos ..."): not a package error, so the command line printed a traceback."""
    from ecgfounder.errors import CheckpointError

    from _train_helpers import FullDisk

    kw = dict(train={"max_steps": 3, "checkpoint_every": 1}, eval={"n_boot": 0})
    with FullDisk() as disk:
        with pytest.raises(CheckpointError, match=r"cannot write .*checkpoints/last.pt \(the write failed; \d+ MB free there\)"
                                                  ".*The files written before are kept.*run the same command again"):
            run_with_hook(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, **kw), step_hook=lambda step: disk.fill())
    ckpt = tmp_path / "run" / "checkpoints"
    assert torch.load(ckpt / "last.pt", weights_only=True)["global_step"] == 1
    assert [p.name for p in ckpt.iterdir()] == ["last.pt"]  # no temporary file left
    assert finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, **kw)).global_step == 3


def test_ctrl_c_says_what_was_kept_and_how_to_go_on(cpsc2021_manifest, cache_dir, tmp_path):
    """Ctrl-C during fine-tuning printed "interrupted" only: the user could not tell whether anything
    was kept.  It names the checkpoint the same command goes on from, or says there is none yet."""
    from ecgfounder.train.loop import TrainingInterrupted

    def stop_at(n):
        def hook(step):
            if step == n:
                raise KeyboardInterrupt()
        return hook

    early = _cfg(cpsc2021_manifest, tmp_path / "early", cache_dir, train={"max_steps": 4})
    with pytest.raises(TrainingInterrupted, match="before the first checkpoint: nothing in .*checkpoints to resume from; "
                                                  "train.checkpoint_every=N checkpoints every N steps"):
        run_with_hook(early, step_hook=stop_at(1))
    # a run that sets train.checkpoint_every is not sent to it (it said "train.checkpoint_every=N
    # checkpoints every N steps" to a run stopped before its first one, with checkpoint_every=2)
    every = _cfg(cpsc2021_manifest, tmp_path / "every", cache_dir, train={"max_steps": 4, "checkpoint_every": 2})
    with pytest.raises(TrainingInterrupted) as err:
        run_with_hook(every, step_hook=stop_at(1))
    assert str(err.value) == f"interrupted before the first checkpoint: nothing in {tmp_path / 'every' / 'checkpoints'} to resume from."
    cfg = _cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, train={"max_steps": 4, "checkpoint_every": 1})
    with pytest.raises(TrainingInterrupted) as err:
        run_with_hook(cfg, step_hook=stop_at(2))
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert str(err.value).startswith(f"interrupted: the run goes on from its last checkpoint, {last} (written ")
    assert "\n" not in str(err.value) and last.is_file()


def test_resume_after_the_records_moved(cpsc2021_manifest, cache_dir, tmp_path):
    """data.manifest may change on resume (a moved dataset), but the run read the record paths of its
    own manifest.csv, absolute, as they were: every record failed ("none of the manifest records
    could be prepared").  Moved records are found where the new manifest lists them; a manifest of
    other examples is refused by name."""
    import shutil

    from ecgfounder.train.manifest import ManifestError

    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str, "split": str})
    df = df[df.record.str.startswith(("data_8_4#", "data_35_6#", "data_101_6#", "data_92_12#"))].groupby("patient_id").head(4)
    src = Path(df.path.iloc[0]).parent
    (tmp_path / "a" / "recs").mkdir(parents=True)
    for stem in {Path(q).stem for q in df.path}:
        for f in src.glob(f"{stem}.*"):
            shutil.copy(f, tmp_path / "a" / "recs")
    df.assign(path=["recs/" + Path(q).name for q in df.path]).to_csv(tmp_path / "a" / "m.csv", index=False)
    run = tmp_path / "run"
    finetune(_cfg(tmp_path / "a" / "m.csv", run, cache_dir, train={"max_steps": 1, "epochs": 4}, optim={"schedule_steps": 4}, eval={"n_boot": 0}))
    (tmp_path / "a").rename(tmp_path / "b")
    res = finetune(_cfg(tmp_path / "b" / "m.csv", run, cache_dir, train={"max_steps": 2, "epochs": 4}, optim={"schedule_steps": 4}, eval={"n_boot": 0}))
    assert res.global_step == 2
    saved = pd.read_csv(run / "manifest.csv", dtype={"split": str})
    assert all(q.startswith(str(tmp_path / "b" / "recs")) for q in saved.path) and saved.split.tolist() == df.split.tolist()
    (tmp_path / "b").rename(tmp_path / "c")
    pd.read_csv(tmp_path / "c" / "m.csv").iloc[::-1].to_csv(tmp_path / "c" / "m.csv", index=False)  # other order
    with pytest.raises(ManifestError, match=r"cannot resume: the run's .*manifest.csv lists records that are gone .* "
                                            r"does not list the same examples in the same order"):
        finetune(_cfg(tmp_path / "c" / "m.csv", run, cache_dir, train={"max_steps": 3, "epochs": 4}, optim={"schedule_steps": 4}, eval={"n_boot": 0}))


def _best_epoch_of(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["ecgfounder"])["source"]["finetune"]["epoch"]


def test_best_weights_always_those_of_the_histories_best_epoch(tmp_path, cpsc2021_manifest, cache_dir, monkeypatch,
                                                               caplog):
    """A kill between best.safetensors and the epoch's checkpoint left best weights of an epoch
    the checkpoint's history did not know: a resume with fewer epochs trained nothing, then gave
    them as the final model while metrics.json named the history's best epoch."""
    import ecgfounder.train.epochs as ep

    kw = dict(optim={"scheduler": "none", "lr": 1e-2}, train={"epochs": 2, "monitor": "val_loss"},
              eval={"n_boot": 0})
    run_dir = tmp_path / "run"
    real_state, real_model = ep.save_state, ep.save_model_file
    seen = {}

    def kill_at_epoch_end(obj, path, *a, **k):  # the kill lands at epoch 2's checkpoint
        if obj["epoch"] == 2 and obj["batch_in_epoch"] == 0:
            seen["best_epoch"] = obj["best_epoch"]
            raise SimulatedInterrupt("killed")
        return real_state(obj, path, *a, **k)

    monkeypatch.setattr(ep, "save_state", kill_at_epoch_end)
    with pytest.raises(SimulatedInterrupt):
        finetune(_cfg(cpsc2021_manifest, run_dir, cache_dir, **kw))
    assert seen["best_epoch"] == 1  # epoch 2 improved the monitor (0-based in the checkpoint)
    monkeypatch.setattr(ep, "save_state", real_state)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["best_epoch"]) == (1, 0)
    res = run_with_hook(_cfg(cpsc2021_manifest, run_dir, cache_dir, **{**kw, "train": {**kw["train"], "epochs": 1}}),
                        step_hook=_no_step)
    assert res.best_epoch == 1 == _best_epoch_of(run_dir / "best.safetensors")
    final, epoch1 = _weights(run_dir / "model.safetensors"), state["model"]
    for k, v in final.items():  # the weights of epoch 1 (those of the checkpoint), not epoch 2's
        assert torch.equal(v, epoch1[k]), k

    # killed after epoch 2's checkpoint, before its best.safetensors: the resume writes it from the checkpoint
    def kill_at_best(model, path, cfg, extra):
        if path.name == "best.safetensors":
            raise SimulatedInterrupt("killed")
        return real_model(model, path, cfg, extra)

    monkeypatch.setattr(ep, "save_model_file", kill_at_best)
    with pytest.raises(SimulatedInterrupt):
        finetune(_cfg(cpsc2021_manifest, run_dir, cache_dir, **kw))
    monkeypatch.setattr(ep, "save_model_file", real_model)
    assert _best_epoch_of(run_dir / "best.safetensors") == 1
    with caplog.at_level("INFO", logger="ecgfounder.train"):
        res = run_with_hook(_cfg(cpsc2021_manifest, run_dir, cache_dir, **kw), step_hook=_no_step)
    assert "did not hold epoch 2's weights, the best (val_loss); written from the checkpoint" in caplog.text
    assert res.best_epoch == 2 == _best_epoch_of(run_dir / "best.safetensors")
    last = _weights(run_dir / "last.safetensors")
    for k, v in _weights(run_dir / "model.safetensors").items():
        assert torch.equal(v, last[k]), k

    # best weights of an epoch the checkpoint does not record as its best (an older version's kill):
    # not taken for the best; the best is chosen again (here no epoch is left: the last weights)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    torch.save({**state, "best_epoch": 0}, run_dir / "checkpoints" / "last.pt")
    caplog.clear()
    res = run_with_hook(_cfg(cpsc2021_manifest, run_dir, cache_dir, **kw), step_hook=_no_step)
    assert "holds the weights of epoch 2, while the checkpoint records epoch 1 as its best" in caplog.text
    assert res.best_epoch is None and not (run_dir / "best.safetensors").exists()


def test_resume_under_another_manifest_refused(cpsc2021_manifest, cache_dir, tmp_path):
    """A resume with data.manifest changed to a manifest of other examples (or labels) trained on
    the run's own manifest.csv, the old data, without a word, while config.yaml named the new one.
    Refused now, naming both manifests, before config.yaml changes; the same examples elsewhere
    (a copy of the manifest) are taken."""
    import yaml

    from ecgfounder.errors import ECGFounderError

    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str, "split": str})
    df = df[df.record.str.startswith(("data_8_4#", "data_35_6#", "data_101_6#", "data_92_12#"))].groupby("patient_id").head(4)
    df.to_csv(tmp_path / "a.csv", index=False)
    run = tmp_path / "run"
    kw = dict(optim={"schedule_steps": 4}, eval={"n_boot": 0})
    finetune(_cfg(tmp_path / "a.csv", run, cache_dir, train={"max_steps": 1, "epochs": 4}, **kw))
    df.assign(AF=1 - df.AF).to_csv(tmp_path / "b.csv", index=False)  # the same records, other labels
    with pytest.raises(ECGFounderError, match=r"(?s)data.manifest=.*b\.csv.*a\.csv.*data.manifest=.*a\.csv"):
        run_with_hook(_cfg(tmp_path / "b.csv", run, cache_dir, train={"max_steps": 2, "epochs": 4}, **kw),
                      step_hook=_no_step)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["manifest"] == str(tmp_path / "a.csv")
    df.to_csv(tmp_path / "copy.csv", index=False)  # the same examples: the run goes on
    res = finetune(_cfg(tmp_path / "copy.csv", run, cache_dir, train={"max_steps": 2, "epochs": 4}, **kw))
    assert res.global_step == 2
