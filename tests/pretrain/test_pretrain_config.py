"""Pre-training configuration: every bad value is a ConfigError naming the key, before any work."""

from __future__ import annotations

import pytest

from ecgfounder.pretrain.config import load_pretrain_config, pretrain_config_from_dict
from ecgfounder.train.config import ConfigError, apply_overrides


@pytest.mark.parametrize(
    "override, match",
    [
        ("optim.lr=0", r"optim.lr=0.0 must be positive"),
        ("optim.lr=-1", r"optim.lr=-1.0 must be positive"),
        ("optim.lr=.nan", r"optim.lr must be a finite number"),
        ("optim.weight_decay=-1", r"optim.weight_decay=-1.0 must be >= 0"),
        ("optim.warmup_steps=-1", r"optim.warmup_steps=-1 must be >= 0"),
        ("optim.min_lr_ratio=2", r"optim.min_lr_ratio=2.0 must be in \[0, 1\]"),
        ("optim.grad_clip=-1", r"optim.grad_clip=-1.0 must be >= 0"),
        ("recipe.gamma=-1", r"recipe.gamma=-1.0 must be >= 0"),
        ("recipe.clip=1.5", r"recipe.clip=1.5 must be in \[0, 1\)"),
        ("data.shuffle_buffer=-1", r"data.shuffle_buffer=-1 must be >= 0"),
        ("train.epochs=0", r"train.epochs=0 must be >= 1"),
        ("train.max_steps=0", r"train.max_steps=0 must be >= 1"),
        ("optim.schedule_steps=0", r"optim.schedule_steps=0 must be >= 1 \(null: the run's length\)"),
        ("optim.schedule_steps=1", r"optim.warmup_steps=2 does not fit in optim.schedule_steps=1: the warm-up must end"),
        ("train.log_every=0", r"train.log_every=0 must be >= 1"),
        ("train.accum_steps=0", r"train.accum_steps=0 must be >= 1"),  # (was "train.batch_size=64 must be a multiple of")
        ("train.device=tpu", r"train.device='tpu' is not valid; choose one of \['auto', 'cpu', 'cuda'\]"),
        ("model.arch=3", r"model.arch=3 must be a mapping of Net1DConfig fields"),
        ("model.arch={foo: 1}", r"model.arch: unknown field\(s\) \['foo'\]; valid fields: base_filters"),
        # refused only when the run built its model (a ValueError naming Net1DConfig) or published it (after training)
        ("model.arch={kernel_size: -1}", r"model.arch=\{'kernel_size': -1\} does not make a Net1D of model.size='base': "
                                         r"model.arch.kernel_size must be >= 1; got -1; fix that field or remove it"),
        ("publish.push=true", r"publish.push=true needs publish.repo_id \(owner/name of the Hub repository\); set it"),
        ("publish.repo_id=hf://me/model", r"publish.repo_id='hf://me/model' is not a Hub repository id; write OWNER/NAME"),
        ("publish.repo_id=my model", r"publish.repo_id='my model' is not a Hub repository id"),
    ],
)
def test_bad_values_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        pretrain_config_from_dict(apply_overrides({"data": {"store": "shards"}, "optim": {"warmup_steps": 2}}, [override]))


@pytest.mark.parametrize("text, match", [("data: [1, 2\n", "not valid YAML"),
                                         ("data: shards\n", r"data must be a mapping of \['store'")])
def test_bad_yaml_files_refused(tmp_path, text, match):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_pretrain_config(f)
