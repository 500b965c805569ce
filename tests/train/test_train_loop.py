"""End-to-end fine-tuning on small real data: tasks, strategies, outputs, resume, probe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgfounder.models.loading import load_model
from ecgfounder.train.config import config_from_dict
from ecgfounder.train.loop import finetune, run as run_with_hook
from ecgfounder.train.model import configure_trainable, param_groups
from ecgfounder.train.splits import LeakageError

from _train_helpers import SimulatedInterrupt, DATA, SMALL, base_config


def _cfg(manifest, out, cache, **sections):
    return config_from_dict(base_config(manifest, out, cache, **sections))


def test_binary_run_outputs_and_model_roundtrip(cpsc2021_manifest, cache_dir, tmp_path):
    res = finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, train={"epochs": 2}))
    out = res.out_dir
    for name in ("config.yaml", "manifest.csv", "checkpoints/last.pt", "best.safetensors", "last.safetensors",
                 "model.safetensors", "log.csv", "test_predictions.csv", "test_report.csv", "metrics.json"):
        assert (out / name).exists(), name
    log = pd.read_csv(out / "log.csv")
    assert len(log) == 2
    # the best epoch is numbered as log.csv numbers it (metrics.json and best.safetensors counted from 0)
    best_row = int(log.loc[log["val_auroc"].idxmax(), "epoch"])
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == res.best_epoch == best_row
    assert load_model(str(out / "best.safetensors")).source["finetune"]["epoch"] == best_row
    rep = pd.read_csv(out / "test_report.csv", index_col=0)
    assert {"auroc", "auroc_lo", "auroc_hi"} <= set(rep.columns)
    # one test patient (92): a patient-level bootstrap has nothing to resample, so no interval, and
    # metrics.json says why (it reported a zero-width or a record-level Newcombe interval before)
    assert np.isfinite(rep.loc["AF", "auroc"]) and rep.loc["AF", ["auroc_lo", "auroc_hi", "f1_lo"]].isna().all()
    info = json.loads((out / "metrics.json").read_text())["test_report"]
    assert info["bootstrap_unit"] == "patient" and info["n_test_patients"] == 1
    assert info["n_test_examples"] == len(pd.read_csv(out / "test_predictions.csv"))
    assert "validation split" in info["thresholds"] and any("one patient" in n for n in info["notes"])
    # the test report AUROC is scikit-learn's on the saved predictions
    from sklearn.metrics import roc_auc_score

    pred = pd.read_csv(out / "test_predictions.csv")
    assert rep.loc["AF", "auroc"] == pytest.approx(roc_auc_score(pred["target:AF"], pred["AF"]))
    assert set(pred.patient) == {"patient:92"}
    model = load_model(res.model_path)
    assert model.labels == ("AF",) and model.task_meta["task"] == "binary"
    assert model.contract.leads == ("I",) and model.config.in_channels == 1
    meta = json.loads(Path(str(res.model_path).replace(".safetensors", ".json")).read_text())
    assert meta["source"]["finetune"]["config"]["task"]["type"] == "binary"
    # predict() on one cached window reproduces the saved test score
    from ecgfounder.train.cache import load_windows, RecordRef

    row = pred.iloc[0]
    man = pd.read_csv(out / "manifest.csv")
    seg = man[man.record == row.record].iloc[0]
    x = load_windows(RecordRef(seg.path, seg.start_s, seg.duration_s), model.contract)
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(x))).mean().item()
    assert p == pytest.approx(row["AF"], abs=1e-5)


def test_predict_accepts_finetuned_model(cpsc2021_manifest, cache_dir, tmp_path):
    pytest.importorskip("ecgfounder.prediction")
    from ecgfounder.prediction import predict

    res = finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, train={"max_steps": 2}))
    df = predict([str(DATA / "cpsc2021" / "data_8_4.hea")], model=str(res.model_path))
    assert "AF" in df.columns and df["AF"].between(0, 1).all()


def test_regression_standardised_targets(tmp_path, cache_dir):
    from ecgfounder.train.presets import cpsc2019_manifest
    from ecgfounder.train.manifest import write_manifest

    df = cpsc2019_manifest(DATA / "cpsc2019", tmp_path).iloc[:20].copy()
    df["split"] = ["train"] * 12 + ["val"] * 4 + ["test"] * 4
    m = write_manifest(df, tmp_path / "m.csv")
    res = finetune(_cfg(m, tmp_path / "run", cache_dir, data={"lead": "ECG"}, task={"type": "regression"},
                        train={"epochs": 2, "monitor": "val_mae"}))
    model = load_model(res.model_path)
    tr = df.heart_rate[:12]
    assert model.task_meta["target_mean"] == pytest.approx(tr.mean())
    assert model.task_meta["target_std"] == pytest.approx(tr.std(ddof=0))
    rep = pd.read_csv(res.out_dir / "test_report.csv", index_col=[0, 1])
    pred = pd.read_csv(res.out_dir / "test_predictions.csv")
    mae = np.abs(pred["heart_rate"] - pred["target:heart_rate"]).mean()
    assert rep.loc[("heart_rate", "mae"), "value"] == pytest.approx(mae)
    assert res.test_metrics["test_mae"] == pytest.approx(mae)


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_multiclass_and_multilabel(kind, tmp_path, cpsc2021_manifest, cache_dir):
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    if kind == "multiclass":
        df["rhythm"] = np.where(df.AF == 1, "af", np.where(df.start_s < 30, "early", "late"))
        cols = ["rhythm"]
    else:
        df["late"] = (df.start_s >= 30).astype(int)
        cols = ["AF", "late"]
    m = tmp_path / "m.csv"
    df.to_csv(m, index=False)
    res = finetune(_cfg(m, tmp_path / "run", cache_dir, task={"type": kind}, data={"label_columns": cols},
                        train={"max_steps": 3}, eval={"n_boot": 20}))
    model = load_model(res.model_path)
    pred = pd.read_csv(res.out_dir / "test_predictions.csv")
    if kind == "multiclass":
        assert model.labels == ("af", "early", "late")
        np.testing.assert_allclose(pred[list(model.labels)].sum(axis=1), 1.0, atol=1e-5)
    else:
        assert model.labels == ("AF", "late")
    rep = pd.read_csv(res.out_dir / "test_report.csv", index_col=0)
    assert set(model.labels) <= set(rep.index)
    # labels the report's summary rows set apart (under 10 test positives) while metrics.json's
    # test_auroc averages them: metrics.json says so (the two "macro" AUROCs differed unexplained)
    rare = [lab for lab in model.labels if rep.loc[lab, "defined"] and rep.loc[lab, "n_pos"] < 10]
    assert rare and int(rep.loc["[macro]", "n_rare"]) == len(rare)
    notes = json.loads((res.out_dir / "metrics.json").read_text())["test_report"]["notes"]
    assert [n for n in notes if n.startswith("test_report.csv's [macro], [weighted] and [micro] rows leave out "
                                             f"{len(rare)} of {len(model.labels)} labels with fewer than 10 test "
                                             f"positives ({', '.join(rare)})")], notes


def test_leakage_refused(tmp_path, cpsc2021_manifest, cache_dir):
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df.loc[df.index[0], "split"] = "test"  # one window of a training patient moved to test
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(LeakageError, match="more than one split"):
        finetune(_cfg(tmp_path / "m.csv", tmp_path / "run", cache_dir))


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_after_interrupt_is_exact(tmp_path, cpsc2021_manifest, cache_dir, accum):
    kw = dict(train={"epochs": 2, "batch_size": 16, "grad_accum": accum, "checkpoint_every": 1},
              optim={"scheduler": "cosine", "warmup_steps": 2})
    full = finetune(_cfg(cpsc2021_manifest, tmp_path / "full", cache_dir, **kw))
    steps = full.global_step
    assert steps >= 4

    def kill(step):
        if step == steps // 2 + 1:  # mid-epoch 1 or in epoch 2
            raise SimulatedInterrupt("killed")

    with pytest.raises(SimulatedInterrupt):
        run_with_hook(_cfg(cpsc2021_manifest, tmp_path / "cut", cache_dir, **kw), step_hook=kill)
    state = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert state["global_step"] == steps // 2 + 1
    resumed = finetune(_cfg(cpsc2021_manifest, tmp_path / "cut", cache_dir, **kw))
    assert resumed.global_step == steps
    a, b = _weights(tmp_path / "full" / "last.safetensors"), _weights(tmp_path / "cut" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert resumed.test_metrics == pytest.approx(full.test_metrics)


def test_resume_with_another_configuration_refused(tmp_path, cpsc2021_manifest, cache_dir):
    """A checkpoint is continued only under the settings it was written with: a changed learning
    rate was silently ignored (the optimiser state brings the old one), a changed task or
    architecture failed with torch's load_state_dict RuntimeError; config.yaml keeps the run's."""
    from ecgfounder.train.config import ConfigError

    run = tmp_path / "run"
    sched = {"schedule_steps": 4}  # the cosine's length, kept when train.max_steps changes
    finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"max_steps": 1}, optim=sched, eval={"n_boot": 0}))
    before = (run / "config.yaml").read_text()
    for change, key in (({"optim": {"lr": 0.1}}, "optim.lr=0.003 in the checkpoint, 0.1 now"),
                        ({"task": {"type": "multiclass"}}, "task.type='binary' in the checkpoint, 'multiclass' now")):
        with pytest.raises(ConfigError, match="cannot resume from .*last.pt") as e:
            finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"max_steps": 1}, eval={"n_boot": 0}, **change))
        assert key in str(e.value) and "output.dir" in str(e.value)
        assert (run / "config.yaml").read_text() == before
    # how long to train, how to run and what to report may change
    res = finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"epochs": 2, "max_steps": 2, "threads": 1},
                        optim=sched, eval={"n_boot": 5}))
    assert res.global_step == 2 and [(h["epoch"], h.get("partial")) for h in res.history] == [(1, True)]


def test_finished_probe_run_not_overwritten(tmp_path, cpsc2021_manifest, cache_dir):
    """A fast linear probe writes no checkpoints/last.pt: another run in its folder overwrote its
    model and report silently, even with output.resume=never ("refuse a non-empty run folder")."""
    from ecgfounder.train.config import ConfigError

    run = tmp_path / "run"
    finetune(_cfg(cpsc2021_manifest, run, cache_dir, strategy={"name": "linear_probe"}, eval={"n_boot": 0}))
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"is not empty \(it holds config.yaml.*output.resume=never starts only"):
        finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"max_steps": 1}, output={"resume": "never"}))
    with pytest.raises(ConfigError, match="already holds the results of a run with another configuration "
                                          r"\(strategy.name='linear_probe' in its config.yaml, 'full' now\)"):
        finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"max_steps": 1}))
    assert (run / "model.safetensors").read_bytes() == before
    # a run that ended before writing any result (a wrong setting found at the start) may start over
    # with other settings in its folder
    for name in ("model.safetensors", "best.safetensors", "last.safetensors", "metrics.json"):
        (run / name).unlink(missing_ok=True)
    finetune(_cfg(cpsc2021_manifest, run, cache_dir, train={"max_steps": 1}, eval={"n_boot": 0}))
    assert (run / "model.safetensors").exists()


def test_validation_without_positives_is_reported(tmp_path, cpsc2021_manifest, cache_dir):
    """No AF in the validation split: val AUROC is undefined, so the monitor never picks a best
    epoch and early stopping counts every epoch as bad; this was silent."""
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df.loc[df.split == "val", "AF"] = 0
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.warns(UserWarning, match=r"label\(s\) \['AF'\] have no positive or no negative validation example.*"
                                         "train.monitor=val_loss"):
        res = finetune(_cfg(tmp_path / "m.csv", tmp_path / "run", cache_dir, train={"max_steps": 1},
                            eval={"n_boot": 0}))
    assert res.best_epoch is None


def test_partial_and_layer_decay():
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    m = Net1D(Net1DConfig(in_channels=1, n_classes=2, **{k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}))
    configure_trainable(m, "partial", 1)
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("stage_list") else "") for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"stage_list.2", "dense"}
    configure_trainable(m, "linear_probe")
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {"dense.weight", "dense.bias"}
    configure_trainable(m, "full")
    groups = param_groups(m, lr=1.0, weight_decay=0.1, layer_decay=0.5)
    lr_by_depth = {g["depth"]: g["lr"] for g in groups}
    assert lr_by_depth == {0: 0.0625, 1: 0.125, 2: 0.25, 3: 0.5, 4: 1.0}
    assert all(g["weight_decay"] == 0.0 for g in groups if all(p.ndim == 1 for p in g["params"]))


def test_frozen_backbone_unchanged_by_probe_training(tmp_path, cpsc2021_manifest, cache_dir):
    res = finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir,
                        strategy={"name": "linear_probe", "probe_fast": False}, train={"max_steps": 3}))
    torch.manual_seed(0)
    from ecgfounder.train.loop import build_model

    start = build_model(_cfg(cpsc2021_manifest, tmp_path / "x", cache_dir)).state_dict()
    end = _weights(res.model_path)
    for k, v in start.items():
        if not k.startswith("dense."):
            assert torch.equal(v, end[k]), k


def test_linear_probe_fast_path_matches_sklearn(tmp_path, cpsc2021_manifest, cache_dir):
    from sklearn.linear_model import LogisticRegression

    res = finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir,
                        strategy={"name": "linear_probe", "probe_c_grid": [0.1, 1.0]},
                        eval={"n_boot": 200, "bootstrap_unit": "record"}))  # one test patient: records for an interval
    model = load_model(res.model_path)
    emb = np.load(next(res.out_dir.glob("embeddings-*.npz")))
    man = pd.read_csv(res.out_dir / "manifest.csv")
    y = man[man.split == "train"].AF.to_numpy()
    Xtr = emb["train"].astype(np.float64)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd < 1e-12] = 1
    summary = json.loads((res.out_dir / "metrics.json").read_text())
    C = summary["C"]
    # its log: each C tried with its validation metrics, the one kept marked (it wrote no log.csv)
    log = pd.read_csv(res.out_dir / "log.csv")
    assert log["C"].tolist() == [0.1, 1.0] and log.loc[log["chosen"], "C"].tolist() == [C]
    assert log.loc[log["chosen"], "val_auroc"].item() == pytest.approx(summary["val"]["val_auroc"])
    clf = LogisticRegression(C=C, max_iter=3000).fit((Xtr - mu) / sd, y)
    expect = clf.predict_proba((emb["test"] - mu) / sd)[:, 1]
    with torch.no_grad():
        got = torch.sigmoid(model.forward_head(torch.from_numpy(emb["test"]))).numpy()[:, 0]
    np.testing.assert_allclose(got, expect, atol=1e-4)
    rep = pd.read_csv(res.out_dir / "test_report.csv", index_col=0)
    assert rep.loc["AF", "auroc_lo"] <= rep.loc["AF", "auroc"] <= rep.loc["AF", "auroc_hi"]


def test_pretrained_published_format_init(tmp_path, cpsc2021_manifest, cache_dir):
    from ecgfounder.models.net1d import Net1D, Net1DConfig

    # the published format (a torch.save'd dict: numpy scalars beside a 150-output state_dict) of a
    # small architecture: loading infers the architecture from the tensor shapes
    torch.manual_seed(0)
    small = Net1D(Net1DConfig(in_channels=1, n_classes=150, **SMALL))
    ckpt = tmp_path / "1lead.pth"
    torch.save({"epoch": 0, "step": np.int64(0), "state_dict": small.state_dict(), "val_auroc": np.float64(0.5)}, ckpt)
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df = df[df.record.str.startswith(("data_8_4", "data_35_6#0", "data_35_6#1", "data_92_12", "data_101_6#1", "data_101_6#2"))]
    df.to_csv(tmp_path / "m.csv", index=False)
    cfg = base_config(tmp_path / "m.csv", tmp_path / "run", cache_dir, strategy={"name": "linear_probe"},
                      eval={"n_boot": 20})
    cfg["model"] = {"init": str(ckpt)}
    cfg["data"].pop("leads")
    res = finetune(config_from_dict(cfg))
    model = load_model(res.model_path)
    assert model.num_features == SMALL["filter_list"][-1] and model.labels == ("AF",)
    sd = load_model(ckpt).state_dict()
    end = model.state_dict()
    assert all(torch.equal(sd[k], end[k]) for k in sd if not k.startswith("dense."))
    cfg["data"]["leads"] = 12
    with pytest.raises(ValueError, match="data.leads"):
        finetune(config_from_dict({**cfg, "output": {"dir": str(tmp_path / "r2"), "tensorboard": False}}))


def test_a_model_fine_tuned_on_lead_ii_reads_lead_ii(cpsc2021_manifest, cache_dir, tmp_path):
    """data.lead=II fed lead II of the records to the one-lead model, but the saved model said lead
    I: predict (without lead=) then read lead I of the same files, a lead it was never trained on."""
    from ecgfounder.prediction import predict

    res = finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, data={"lead": "II"}, train={"max_steps": 2}))
    model = load_model(res.model_path)
    assert model.contract.leads == ("II",)
    rec = str(DATA / "cpsc2021" / "data_8_4.hea")  # leads I and II
    plain, as_ii, as_i = (predict([rec], model=model, **kw)["AF"].iloc[0] for kw in ({}, {"lead": "II"}, {"lead": "I"}))
    assert plain == as_ii != as_i


def test_record_bootstrap_of_one_patients_windows_is_flagged(cpsc2021_manifest, cache_dir, tmp_path):
    """eval.bootstrap_unit=record over the windows of one test patient: the intervals treat
    correlated windows as independent; metrics.json and the log now say so."""
    res = finetune(_cfg(cpsc2021_manifest, tmp_path / "run", cache_dir, eval={"bootstrap_unit": "record", "n_boot": 20}))
    info = json.loads((res.out_dir / "metrics.json").read_text())["test_report"]
    assert info["bootstrap_unit"] == "record" and info["n_test_patients"] == 1 and info["n_test_examples"] > 1
    assert any("as if independent" in n and "1 patient(s)" in n for n in info["notes"])

