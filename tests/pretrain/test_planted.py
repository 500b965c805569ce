"""From scratch on real records (several rates and lead sets) with a planted label: the loss falls,
the per-label AUROC report is written and the planted label is learnt on held-out records."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ecgfounder.labels import load_labels
from ecgfounder.pretrain.config import pretrain_config_from_dict
from ecgfounder.pretrain.loop import pretrain
from ecgfounder.pretrain.statements import load_rules
from ecgfounder.pretrain.store import build_store

from _pt_helpers import SMALL_CONTRACT, real_records, write_planted


def planted_stores(tmp_path, contract):
    recs = write_planted(real_records(), tmp_path / "records")
    rules_csv = tmp_path / "rules.csv"
    rules_csv.write_text("label,pattern,kind\nPLANTED,phrase:planted oscillation,\n", encoding="utf-8")
    rules = load_rules(rules_csv, labels=load_labels() + ("PLANTED",), auto_phrases=True)
    held = [p for i, (p, _) in enumerate(recs) if i % 4 == 1 or i % 4 == 2]  # half planted, half not
    train = [p for p, _ in recs if p not in held]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = build_store(train, tmp_path / "train", contract=contract, rules=rules, workers=1, dtype="float32")
        va = build_store(held, tmp_path / "val", contract=contract, rules=rules, workers=1, dtype="float32")
    return tr, va, len(train), len(held)


@pytest.mark.slow
def test_planted_label_is_learnt(tmp_path):
    tr, va, n_train, n_held = planted_stores(tmp_path, SMALL_CONTRACT)
    cfg = pretrain_config_from_dict({
        "data": {"store": str(tr.location), "val_store": str(va.location), "shuffle_buffer": 64},
        "model": {"size": "tiny"}, "recipe": {"lead_mask_p": 0.2},
        "optim": {"lr": 3e-3, "warmup_steps": 5},
        "train": {"out": str(tmp_path / "run"), "batch_size": 16, "epochs": 20, "device": "cpu", "ckpt_every": 50,
                  "ema_decay": 0.9}})
    res = pretrain(cfg)
    losses = [h["loss"] for h in res.history]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    auroc = pd.read_csv(tmp_path / "run" / "auroc.csv").set_index("label")["auroc"]
    print(f"train records {n_train}, held-out records {n_held}, steps {res.steps}, loss {first:.4f} -> {last:.4f}, "
          f"planted AUROC {auroc['PLANTED']:.3f}, mean AUROC {res.report['mean_auroc']:.3f} "
          f"over {res.report['n_labels_defined']} labels")
    assert last < first
    assert auroc["PLANTED"] >= 0.9
