import dataclasses
import warnings
from pathlib import Path

import pytest

from ecgfounder.train.config import (
    ConfigError,
    FinetuneConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
)

CONFIGS = Path(__file__).resolve().parents[2] / "src" / "ecgfounder" / "configs"


def test_defaults_and_roundtrip():
    cfg = config_from_dict({"data": {"manifest": "m.csv"}})
    assert isinstance(cfg, FinetuneConfig)
    assert cfg.optim.name == "adamw" and cfg.train.batch_size == 64
    again = config_from_dict(cfg.to_dict())
    assert again == cfg


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  manifest: m.csv\n  split_fractions: [0.8, 0.1, 0.1]\ntrain:\n  epochs: 3\n")
    (tmp_path / "m.csv").write_text("path,y\na.hea,1\n")
    cfg = load_config(f, ["train.epochs=7", "optim.lr=1e-4", "data.label_columns=[y]", "train.max_steps=null"])
    assert cfg.train.epochs == 7 and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.data.label_columns == ("y",) and cfg.data.split_fractions == (0.8, 0.1, 0.1)
    assert Path(cfg.data.manifest) == (tmp_path / "m.csv").resolve()  # relative to the YAML file


@pytest.mark.parametrize("bad", ["train.epoch=3", "trian.epochs=3", "data.manifest.x=1"])
def test_unknown_keys_rejected(bad):
    with pytest.raises(ConfigError) as e:
        config_from_dict(apply_overrides({"data": {"manifest": "m.csv"}}, [bad]))
    assert "valid keys" in str(e.value) or "must be" in str(e.value)


def test_unknown_key_in_file_rejected(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  manifest: m.csv\n  lable_columns: [a]\n")
    with pytest.raises(ConfigError, match="data.lable_columns"):
        load_config(f)


@pytest.mark.parametrize(
    "override, match",
    [
        ("task.type=ordinal", "task.type"),
        ("train.epochs=two", "integer"),
        ("train.bf16=maybe", "true or false"),
        ("data.split_fractions=[0.5,0.5,0.5]", "sum"),
        ("optim.scheduler=step", "optim.scheduler"),
        ("model.arch=small", "applies only to model.init=random"),
    ],
)
def test_bad_values(override, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(apply_overrides({"data": {"manifest": "m.csv"}}, [override]))


def test_missing_manifest_is_explained():
    with pytest.raises(ConfigError, match="data.manifest"):
        config_from_dict({})


def test_parse_override_forms():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=text") == (["a"], "text")
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_example_configs_load():
    files = sorted(CONFIGS.glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        text = f.read_text()
        cfg = load_config(f, ["data.root=/somewhere"] if "preset:" in text else ["data.manifest=m.csv"])
        assert text.startswith("# ")  # first line: what the example does (listed by 'finetune examples')
        assert cfg.task.type in ("binary", "multilabel", "multiclass", "regression")


@pytest.mark.parametrize(
    "override, match",
    [
        ("optim.lr=.nan", "optim.lr must be a finite number"),
        ("optim.lr=nan", "optim.lr must be a finite number"),
        ("augment.noise_std=.nan", "augment.noise_std must be a finite number"),
        ("data.split_fractions=[.nan,0.5,0.5]", "data.split_fractions must be a finite number"),
        ("eval.n_boot=.nan", "eval.n_boot must be an integer"),
        ("train.epochs=.inf", "train.epochs must be an integer"),
        ("optim.weight_decay=-1", r"optim.weight_decay=-1.0 .*>= 0"),
        ("optim.betas=[1.5,0.9]", r"optim.betas=\[1.5, 0.9\] must be two numbers in \[0, 1\)"),
        ("optim.warmup_steps=-5", r"optim.warmup_steps=-5 .*>= 0"),
        ("data.leads=[I,II,I]", r"data.leads=\['I', 'II', 'I'\] names a lead more than once"),  # (was accepted)
        ("optim.min_lr_ratio=2", r"optim.min_lr_ratio=2.0 must be in \[0, 1\]"),
        ("optim.plateau_factor=2", r"optim.plateau_factor=2.0 must be in \(0, 1\)"),
        ("optim.plateau_patience=-1", r"optim.plateau_patience=-1 .*>= 0"),
        ("optim.clip_grad_norm=-1", r"optim.clip_grad_norm=-1.0 .*>= 0"),
        ("train.max_steps=0", r"train.max_steps=0 .*>= 1"),
        ("optim.schedule_steps=0", r"optim.schedule_steps=0 .*>= 1 \(null: train.max_steps or the steps of train.epochs\)"),
        ("train.threads=-2", r"train.threads=-2 .*>= 1"),
        ("train.early_stopping=-1", r"train.early_stopping=-1 .*>= 0"),
        ("train.checkpoint_every=-1", r"train.checkpoint_every=-1 .*>= 0"),
        ("train.num_workers=-1", r"train.num_workers=-1 .*>= 0"),
        ("data.cache_workers=-1", r"data.cache_workers=-1 .*>= 0"),
        ("data.min_positives=-1", r"data.min_positives=-1 .*>= 0"),
        ("data.format=bogus", r"data.format: unknown format 'bogus'; choose one of .*edf"),
        ("data.leads=7", r"data.leads=7: no default lead set for 7 leads; use 12, 1 or the lead names \(e.g. "
                         r"data.leads=\[I, II\]\)\.$"),  # (it said "e.g. leads=('I', 'II')", the library's argument)
        ("data.leads=[]", r"data.leads=\[\] names no lead"),
        ("strategy.probe_c_grid=[]", r"strategy.probe_c_grid=\[\] must be one or more positive numbers"),
        ("strategy.probe_c_grid=[-1]", r"strategy.probe_c_grid=\[-1.0\] must be one or more positive numbers"),
    ],
)
def test_out_of_range_values_refused_before_training(override, match):
    """Each of these was accepted by validation and failed (or misbehaved) only inside training."""
    with pytest.raises(ConfigError, match=match):
        config_from_dict(apply_overrides({"data": {"manifest": "m.csv"}}, [override]))


@pytest.mark.parametrize("overrides, match", [
    (["optim.scheduler=plateau", "optim.schedule_steps=100"],
     r"optim.schedule_steps=100 applies only to optim.scheduler=cosine \(now 'plateau'\); remove it or set"),
    (["optim.warmup_steps=10", "optim.schedule_steps=10"],
     r"optim.warmup_steps=10 does not fit in optim.schedule_steps=10: the warm-up must end before the schedule"),
])
def test_schedule_steps_refused_where_it_cannot_apply(overrides, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(apply_overrides({"data": {"manifest": "m.csv"}}, overrides))
    ok = config_from_dict(apply_overrides({"data": {"manifest": "m.csv"}}, ["optim.schedule_steps=100",
                                                                            "optim.warmup_steps=99"]))
    assert ok.optim.schedule_steps == 100


def test_a_warm_up_as_long_as_the_run_is_said():
    """optim.warmup_steps=100 in a run of 9 optimiser steps trained at a tenth of optim.lr at most,
    without a word (optim.schedule_steps, when set, is checked at once)."""
    import torch

    from ecgfounder.train.model import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    cfg = config_from_dict({"data": {"manifest": "m.csv"}, "optim": {"warmup_steps": 100}, "train": {"epochs": 3}})
    with pytest.warns(UserWarning, match=r"optim.warmup_steps=100 is not shorter than the cosine schedule of 9 optimiser "
                                         r"steps \(train.epochs=3 of 3 steps\): the whole run warms up \(its learning "
                                         r"rate reaches 9e-05 at its last step; optim.lr=0.001\)"):
        make_scheduler(cfg, opt, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_scheduler(cfg.replace(optim=dataclasses.replace(cfg.optim, warmup_steps=8)), opt, 9)


def test_weights_trained_from_published_ones_do_not_claim_their_name_and_hash(tmp_path, tiny12):
    """A model fine-tuned from the published 12-lead weights kept their name and SHA-256: its saved
    file loaded as "12-lead", and its report gave the published file's hash as the weights'.  They
    are now its source's base, and the trained model has neither."""
    import copy

    from ecgfounder.models.loading import load_model, save_model
    from ecgfounder.train.model import build_model

    published = copy.deepcopy(tiny12)
    published.description = published.description.replace(name="12-lead", sha256="ab" * 32, revision="r1")
    path = save_model(published, tmp_path / "published.safetensors")
    assert load_model(path).description.name == "12-lead"  # (the file claims it, as a converted download does)
    model = build_model(config_from_dict({"data": {"manifest": "m.csv"}, "model": {"init": str(path)}}))
    d = model.description
    assert (d.name, d.sha256, d.revision) == (None, None, None)
    assert d.source["init"] == str(path) and d.source["base"]["name"] == "12-lead"
    assert d.source["base"]["sha256"] == "ab" * 32 and d.source["base"]["revision"] == "r1"
    again = load_model(save_model(model, tmp_path / "tuned.safetensors")).description
    assert again.name is None and again.sha256 is None and again.source["base"]["name"] == "12-lead"
