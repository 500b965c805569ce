"""Multi-label targets that were not assessed (an empty manifest cell, NaN): left out of the loss,
the positive weights and the metrics, never read as negatives; complete tables train as before."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ecgfounder.train import epochs
from ecgfounder.train.config import config_from_dict
from ecgfounder.train.loop import finetune
from ecgfounder.train.manifest import ManifestError
from ecgfounder.train.splits import stratify_key
from ecgfounder.train.tasks import TaskSpec, build_task, quick_metrics

from _train_helpers import base_config

NAN = np.nan


def _table(manifest, rows: dict[str, list[tuple[int, float, float]]]) -> pd.DataFrame:
    """Rows of the cpsc2021 manifest by (patient, window) with their split and targets AF, late."""
    df = pd.read_csv(manifest, dtype={"patient_id": str})
    parts = []
    for split, items in rows.items():
        for patient, k, *y in items:
            r = df[df.patient_id == patient].iloc[[k]].copy()
            r["split"], r["AF"], r["late"] = split, *y
            parts.append(r)
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------ the gradient

def test_masked_gradient_of_a_two_record_batch_is_the_hand_computed_one(tmp_path, cpsc2021_manifest, cache_dir,
                                                                        monkeypatch):
    """y = [[1, -], [0, 1]]: 3 assessed entries; the head's gradient is (sigmoid(z) - y) over them / 3."""
    df = _table(cpsc2021_manifest, {"train": [("8", 0, 1, NAN), ("21", 3, 0, 1)],
                                    "val": [("101", 2, 1, 0), ("101", 0, 0, 1)], "test": [("92", 0, 1, 0)]})
    df.to_csv(tmp_path / "m.csv", index=False)
    seen = {}

    def step(self):  # the gradient of the first step, and what it was computed from
        net = self.model
        rows = self.data.rows["train"]
        x = torch.from_numpy(np.stack([self.data.index.window(int(r), 0) for r in rows]))
        with torch.no_grad():
            seen["h"] = net.forward_features(x).double().numpy()
        seen["W"], seen["b"] = net.dense.weight.detach().double().numpy(), net.dense.bias.detach().double().numpy()
        seen["gW"], seen["gb"] = net.dense.weight.grad.double().numpy(), net.dense.bias.grad.double().numpy()
        seen["y"] = self.data.y_raw[rows]
        return original(self)

    original = epochs._Trainer._optimizer_step
    monkeypatch.setattr(epochs._Trainer, "_optimizer_step", step)
    cfg = base_config(tmp_path / "m.csv", tmp_path / "run", cache_dir, task={"type": "multilabel"},
                      data={"label_columns": ["AF", "late"]}, strategy={"name": "linear_probe", "probe_fast": False},
                      train={"batch_size": 2, "max_steps": 1}, eval={"n_boot": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'late': one class among its assessed training records
        finetune(config_from_dict(cfg))
    y = seen["y"]
    assert np.isnan(y[0, 1]) and y[1].tolist() == [0.0, 1.0] and y[0, 0] == 1.0
    z = seen["h"] @ seen["W"].T + seen["b"]
    p = 1 / (1 + np.exp(-z))
    gb = np.array([(p[0, 0] - 1) + (p[1, 0] - 0), p[1, 1] - 1]) / 3  # record 0 did not assess 'late'
    np.testing.assert_allclose(seen["gb"], gb, rtol=1e-5, atol=1e-7)
    gW = np.stack([(p[0, 0] - 1) * seen["h"][0] + p[1, 0] * seen["h"][1], (p[1, 1] - 1) * seen["h"][1]]) / 3
    np.testing.assert_allclose(seen["gW"], gW, rtol=1e-4, atol=1e-7)
    # what reading the empty cell as a negative would have given: another bias gradient
    assert abs(seen["gb"][1] - (p[0, 1] + p[1, 1] - 1) / 4) > 1e-4


def test_loss_and_weights_of_a_masked_batch():
    spec = TaskSpec("multilabel", ("a", "b"), pos_weight=(2.0, 0.5))
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.7]])
    y = torch.tensor([[1.0, NAN], [0.0, 1.0]])
    per = spec.loss(logits, y)
    bce = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(y), pos_weight=torch.tensor([2.0, 0.5]),
                                             reduction="none")
    np.testing.assert_allclose(per.numpy(), [bce[0, 0] / 2, (bce[1, 0] + bce[1, 1]) / 2], rtol=1e-6)
    w = spec.weights(y.numpy())
    assert w.tolist() == [0.5, 1.0]
    assert float(per.sum()) / w.sum() == pytest.approx(float(bce[0, 0] + bce[1, 0] + bce[1, 1]) / 3, rel=1e-6)
    logits.requires_grad_(True)
    spec.loss(logits, y).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 1] == 0  # no NaN from the masked entry


# ------------------------------------------------------------------------------ complete tables

def test_complete_tables_give_the_old_losses():
    """The masked loss of a complete table is the plain BCE mean (old formula) to 1e-6."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=g) * 3
    y = (torch.rand(6, 3, generator=g) > 0.5).float()
    for pw in (None, (1.5, 0.3, 4.0)):
        spec = TaskSpec("multilabel", ("a", "b", "c"), pos_weight=pw)
        old = F.binary_cross_entropy_with_logits(logits, y, pos_weight=None if pw is None else torch.tensor(pw),
                                                 reduction="none").mean(-1)
        torch.testing.assert_close(spec.loss(logits, y), old, atol=1e-6, rtol=0)
        assert spec.weights(y.numpy()).tolist() == [1.0] * 6
    s = torch.sigmoid(logits).double().numpy()
    yy = y.double().numpy()
    old_loss = float(-(yy * np.log(s) + (1 - yy) * np.log(1 - s)).mean())
    assert spec.score_loss(s, yy) == pytest.approx(old_loss, abs=1e-6)


def test_complete_table_run_equals_the_old_loop(tmp_path, cpsc2021_manifest, cache_dir, monkeypatch):
    """A complete multi-label table trains as with the old per-example loss normalised by the number
    of real examples (same train/val losses to 1e-6, same weights)."""
    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df["late"] = (df.start_s >= 30).astype(int)
    df.to_csv(tmp_path / "m.csv", index=False)

    def run(out):
        cfg = base_config(tmp_path / "m.csv", out, cache_dir, task={"type": "multilabel", "class_weighting": "balanced"},
                          data={"label_columns": ["AF", "late"]}, train={"batch_size": 16, "max_steps": 3, "grad_accum": 2},
                          eval={"n_boot": 10})
        return finetune(config_from_dict(cfg))

    new = run(tmp_path / "new")

    def old_loss(self, logits, target):
        pw = torch.as_tensor(self.pos_weight, dtype=torch.float32) if self.pos_weight else None
        return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=pw, reduction="none").mean(-1)

    monkeypatch.setattr(TaskSpec, "loss", old_loss)
    monkeypatch.setattr(TaskSpec, "weights", lambda self, t: np.ones(len(t)))  # normaliser: the real examples
    old = run(tmp_path / "old")
    assert len(new.history) == len(old.history) > 0  # (zip below would pass on an empty history)
    for a, b in zip(new.history, old.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-6)
    from safetensors.torch import load_file

    wa, wb = load_file(new.out_dir / "last.safetensors"), load_file(old.out_dir / "last.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ weights, metrics

def test_positive_weights_count_assessed_entries_only():
    df = pd.DataFrame({"a": [1, 0, 0, 1, 0], "b": [NAN, 1, NAN, 0, 0]})
    spec, y = build_task("multilabel", df, ["a", "b"], np.ones(5, bool), class_weighting="balanced")
    assert spec.pos_weight == (1.5, 2.0)  # b: 1 positive, 2 negatives (not 4)
    assert np.isnan(y[[0, 2], 1]).all()


def test_validation_metrics_are_scikit_learns_on_the_assessed_records():
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(3)
    s = rng.uniform(0.05, 0.95, (12, 3))
    y = np.array([[1, 0, 1], [0, NAN, 1], [1, 1, NAN], [0, 0, 1], [NAN, 1, 1], [1, NAN, NAN],
                  [0, 0, 1], [1, 1, 1], [NAN, 0, NAN], [0, 1, 1], [1, NAN, 1], [0, 0, NAN]])
    spec = TaskSpec("multilabel", ("a", "b", "c"))
    m = quick_metrics(spec, y, s)
    a, b = ~np.isnan(y[:, 0]), ~np.isnan(y[:, 1])
    # 'c' holds positives only among its assessed records: undefined, left out (as before)
    assert m["val_auroc"] == pytest.approx((roc_auc_score(y[a, 0], s[a, 0]) + roc_auc_score(y[b, 1], s[b, 1])) / 2)
    seen = ~np.isnan(y)
    assert m["val_loss"] == pytest.approx(log_loss(y[seen], s[seen]), rel=1e-9)


def test_run_with_empty_cells_reports_on_assessed_records(tmp_path, cpsc2021_manifest, cache_dir):
    """A fine-tune and a fast linear probe on a table with empty cells: the test report's AUROC and
    counts are scikit-learn's on the records that assessed each label; the probe is fitted on them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    df = pd.read_csv(cpsc2021_manifest, dtype={"patient_id": str})
    df["late"] = (df.start_s >= 30).astype(float)
    df.loc[df.start_s % 30 == 10, "late"] = NAN  # windows that did not assess 'late' (test: 0, -, 0, 1)
    df.loc[df.start_s.isin([20, 50]), "AF"] = NAN  # (test: 0, 1, -, 0)
    df.to_csv(tmp_path / "m.csv", index=False)
    for strategy in ({"name": "full"}, {"name": "linear_probe", "probe_c_grid": [1.0]}):
        res = finetune(config_from_dict(base_config(
            tmp_path / "m.csv", tmp_path / strategy["name"], cache_dir, task={"type": "multilabel"},
            data={"label_columns": ["AF", "late"]}, strategy=strategy, train={"max_steps": 2}, eval={"n_boot": 20})))
        pred = pd.read_csv(res.out_dir / "test_predictions.csv")
        rep = pd.read_csv(res.out_dir / "test_report.csv", index_col=0)
        for lab in ("AF", "late"):
            ok = pred[f"target:{lab}"].notna()
            assert 0 < ok.sum() < len(pred)  # some test records did not assess it
            assert rep.loc[lab, "n"] == ok.sum()
            assert rep.loc[lab, "auroc"] == pytest.approx(roc_auc_score(pred.loc[ok, f"target:{lab}"], pred.loc[ok, lab]))
    emb = np.load(next(res.out_dir.glob("embeddings-*.npz")))
    man = pd.read_csv(res.out_dir / "manifest.csv")
    y = man[man.split == "train"].late.to_numpy()
    Xtr = emb["train"].astype(np.float64)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd < 1e-12] = 1
    ok = ~np.isnan(y)
    clf = LogisticRegression(C=1.0, max_iter=3000).fit(((Xtr - mu) / sd)[ok], y[ok])
    from ecgfounder.models.loading import load_model

    with torch.no_grad():
        got = torch.sigmoid(load_model(res.model_path).forward_head(torch.from_numpy(emb["test"]))).numpy()[:, 1]
    np.testing.assert_allclose(got, clf.predict_proba((emb["test"] - mu) / sd)[:, 1], atol=1e-4)
    assert json.loads((res.out_dir / "metrics.json").read_text())["test"]["test_auroc"] is not None


# ------------------------------------------------------------------------------ refusals

def test_a_label_assessed_nowhere_or_in_no_training_row_is_refused(tmp_path, cpsc2021_manifest, cache_dir):
    df = pd.DataFrame({"a": [1, 0, 1, 0], "b": [NAN, NAN, 1, 0], "c": [NAN] * 4})
    train = np.array([True, True, False, False])
    with pytest.raises(ManifestError, match=r"label column\(s\) \['c'\] are empty in every row \(no record assessed them\).*"
                                            r"data.label_columns"):
        build_task("multilabel", df, ["a", "b", "c"], train)
    with pytest.raises(ManifestError, match=r"\['b'\] are empty in every training row \(no training record assessed"):
        build_task("multilabel", df, ["a", "b"], train)
    # through a run: refused by name, not dropped as a label under data.min_positives
    table = _table(cpsc2021_manifest, {"train": [("8", 0, 1, NAN), ("21", 3, 0, NAN)],
                                       "val": [("101", 2, 1, 0)], "test": [("92", 0, 1, 1)]})
    table.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError, match=r"\['late'\] are empty in every training row"):
        finetune(config_from_dict(base_config(tmp_path / "m.csv", tmp_path / "run", cache_dir, task={"type": "multilabel"},
                                              data={"label_columns": ["AF", "late"]})))


@pytest.mark.parametrize("kind, column", [("regression", [70.0, NAN, 80.0]), ("multiclass", [1, NAN, 0])])
def test_other_task_types_still_refuse_missing_targets(kind, column):
    df = pd.DataFrame({"y": column, "z": [0, 1, 1]})
    cols = ["y"] if kind == "regression" else ["y", "z"]
    with pytest.raises(ManifestError, match=r"missing target values, e\.g\. row 1 column 'y' \(1 in all\)"):
        build_task(kind, df, cols, np.ones(3, bool))


def test_binary_rows_with_a_missing_target_are_left_out():
    df = pd.DataFrame({"y": [1, NAN, 0, 0]})
    spec, y = build_task("binary", df, ["y"], np.ones(4, bool), class_weighting="balanced")
    assert spec.pos_weight == (2.0,) and np.isnan(y[1, 0])
    assert spec.weights(spec.encode(y)).tolist() == [1.0, 0.0, 1.0, 1.0]


def test_stratification_ranks_labels_by_their_assessed_prevalence():
    # b: 1 positive among 5 assessed rows (the rarer label), a: 3 of 6
    y = np.array([[1, 1], [1, 0], [1, 0], [0, 0], [0, 0], [0, NAN]])
    assert stratify_key(y, "multilabel").tolist() == [1, 0, 0, -1, -1, -1]
