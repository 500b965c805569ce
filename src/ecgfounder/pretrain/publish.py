"""Publish a pre-trained model: weights in the package's ``.safetensors`` format (labels and
preprocessing contract in its header, so :func:`ecgfounder.load_model`, ``predict``, ``finetune``
and ``evaluate`` take it as it is), a model card, the label set and the contract beside it.

Folder written::

    model.safetensors  model.json     weights + metadata (ecgfounder.save_model)
    README.md                          model card (Hugging Face model-card front matter)
    labels.txt                         one label per line, in output order
    contract.json                      the preprocessing contract
    training.json                      configuration, loss history ends, held-out AUROC summary

Push it to a Hub repository with ``huggingface_hub.upload_folder(repo_id=..., folder_path=...)``
(``huggingface-cli upload REPO FOLDER``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..models.loading import save_model
from ..models.net1d import Net1D

__all__ = ["publish", "model_card"]


def model_card(model: Net1D, *, name: str, description: str, store_info: dict[str, Any], history: Sequence[dict],
               report: dict[str, Any] | None, config: dict[str, Any]) -> str:
    n_params = sum(p.numel() for p in model.parameters())
    c = model.contract
    r = config["recipe"]
    t = config["train"]
    lines = [
        "---", "library_name: ecgfounder", "license: other", "tags: [ecg, electrocardiogram, net1d, ecgfounder]", "---", "",
        f"# {name}", "", description or "An ECGFounder-style Net1D pre-trained from scratch with `ecgfounder pretrain`.", "",
        "## Use", "", "```python", "import ecgfounder", f'model = ecgfounder.load_model("{name}/model.safetensors")',
        'probs = ecgfounder.predict(["ecg.xml"], model)', "```", "",
        "## Model", "",
        f"- Net1D, size preset `{config['model']['size']}`, {n_params:,} parameters, {model.config.in_channels} lead(s) in, "
        f"{model.num_classes} sigmoid outputs (multi-label).",
        f"- Input contract: {len(c.leads)} lead(s) {', '.join(c.leads)}; {c.fs:g} Hz; {c.n_samples} samples "
        f"({c.window_s:g} s); preprocessing mode `{c.mode}` (notch {c.notch_hz:g} Hz Q {c.notch_q:g}, band-pass "
        f"{c.band_hz[0]:g}–{c.band_hz[1]:g} Hz order {c.band_order}, running-median baseline {c.baseline_window_s:g} s, "
        "z-score). `ecgfounder.preprocess` applies it from `contract.json`.",
        "- Labels: `labels.txt` (output order).", "",
        "## Training", "",
        f"- Data: {store_info.get('samples')} windows from {store_info.get('location')} "
        f"({store_info.get('shards')} WebDataset shards); labels extracted from interpretation statements by rules.",
        f"- Loss `{r['loss']}`" + (f" (γ = {r['gamma']}, clip {r['clip']})" if r["loss"] == "asymmetric" else "")
        + f"; uncertain statements: `{r['uncertain']}`; lead augmentation p = {r['lead_augment_p']}"
        f" (single-lead models only); lead masking p = {r['lead_mask_p']}.",
        f"- AdamW lr {config['optim']['lr']}, warm-up {config['optim']['warmup_steps']} steps then cosine; global batch "
        f"{t['batch_size']} ({t['accum_steps']} accumulation steps); bf16 {t['bf16']}; EMA decay {t['ema_decay']}.",
        f"- {len(history)} optimiser steps; loss {history[0]['loss']:.4f} → {history[-1]['loss']:.4f}." if history else "",
    ]
    if report:
        lines += ["", "## Held-out evaluation", "",
                  f"Mean per-label AUROC {report['mean_auroc']:.3f} over the {report['n_labels_defined']} labels with both "
                  f"classes among {report['n_windows']} held-out windows (per-label values: `auroc.csv` of the run)."]
    lines += ["", "## Limits", "",
              "Not a medical device. Labels come from free-text statements by rules (see the label report); "
              "statements no rule matched are listed there, not guessed. Check performance on your own population "
              "before any use.", ""]
    return "\n".join(lines)


def publish(model: Net1D, folder: str | Path, *, cfg, store, history: Sequence[dict], report: dict | None = None) -> Path:
    """Write the publishable folder (see the module docstring); returns the ``.safetensors`` path."""
    from .store import describe

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    config = cfg.to_dict()
    model.eval()
    path = save_model(model, out / "model.safetensors",
                      source={"name": cfg.publish.name, "trained_with": "ecgfounder pretrain", "store": str(store.location)})
    (out / "labels.txt").write_text("\n".join(model.labels) + "\n", encoding="utf-8")
    (out / "contract.json").write_text(json.dumps(model.contract.to_dict(), indent=1) + "\n", encoding="utf-8")
    info = describe(store)
    (out / "README.md").write_text(model_card(model, name=cfg.publish.name, description=cfg.publish.description,
                                              store_info=info, history=history, report=report, config=config),
                                   encoding="utf-8")
    summary = {"config": config, "store": info, "steps": len(history),
               "loss_first": history[0]["loss"] if history else None, "loss_last": history[-1]["loss"] if history else None,
               "heldout": {k: v for k, v in (report or {}).items() if k != "per_label"}}
    (out / "training.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    return path
