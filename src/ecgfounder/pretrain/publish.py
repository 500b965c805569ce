"""Publish a pre-trained model: :func:`ecgfounder.models.hub.save_pretrained`'s folder (weights in
the package's ``.safetensors`` format with labels and preprocessing contract in its header, so
:func:`ecgfounder.load_model`, ``predict``, ``finetune`` and ``evaluate`` take it as it is), its
model card extended with a pre-training section, and the label set and contract beside it.

Folder written::

    model.safetensors  config.json    weights + metadata (save_pretrained)
    README.md                          model card (hub.model_card + the pre-training section)
    labels.txt                         one label per line, in output order
    contract.json                      the preprocessing contract
    training.json                      configuration, loss history ends, held-out AUROC summary

``publish.repo_id`` with ``publish.push: true`` uploads it with
:func:`ecgfounder.models.hub.push_to_hub` (``HF_TOKEN`` / ``huggingface-cli login`` apply).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..models.hub import model_card as hub_model_card
from ..models.hub import push_to_hub, save_pretrained
from ..models.net1d import Net1D

__all__ = ["publish", "training_section"]


def training_section(model: Net1D, *, description: str, store_info: dict[str, Any], history: Sequence[dict],
                     report: dict[str, Any] | None, config: dict[str, Any]) -> str:
    """The card's "Pre-training" section: data, recipe, loss, held-out AUROC, limits."""
    n_params = sum(p.numel() for p in model.parameters())
    r = config["recipe"]
    t = config["train"]
    lines = [
        "## Pre-training", "", description or "Pre-trained from scratch with `ecgfounder pretrain`.", "",
        f"- Net1D size preset `{config['model']['size']}`, {n_params:,} parameters; labels in `labels.txt`, "
        "preprocessing in `contract.json`.",
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
        lines += ["", "### Held-out evaluation", "",
                  f"Mean per-label AUROC {report['mean_auroc']:.3f} over the {report['n_labels_defined']} labels with both "
                  f"classes among {report['n_windows']} held-out windows (per-label values: `auroc.csv` of the run)."]
    lines += ["", "### Limits", "",
              "Not a medical device. Labels come from free-text statements by rules (see the label report); "
              "statements no rule matched are listed there, not guessed. Check performance on your own population "
              "before any use.", ""]
    return "\n".join(lines)


def publish(model: Net1D, folder: str | Path, *, cfg, store, history: Sequence[dict], report: dict | None = None) -> Path:
    """Write the publishable folder (see the module docstring); returns the ``.safetensors`` path."""
    from .store import describe

    out = Path(folder)
    config = cfg.to_dict()
    model.eval()
    model.source = {"init": "random", "trained_with": "ecgfounder pretrain", "name": cfg.publish.name,
                    "store": str(store.location)}
    evaluation = {"held-out mean per-label AUROC": report["mean_auroc"]} if report else {}
    save_pretrained(model, out, repo_id=cfg.publish.repo_id, evaluation=evaluation)
    info = describe(store)
    card = hub_model_card(model, repo_id=cfg.publish.repo_id, evaluation=evaluation, license=cfg.publish.license)
    card += "\n" + training_section(model, description=cfg.publish.description, store_info=info, history=history,
                                    report=report, config=config)
    (out / "README.md").write_text(card, encoding="utf-8")
    (out / "labels.txt").write_text("\n".join(model.labels) + "\n", encoding="utf-8")
    (out / "contract.json").write_text(json.dumps(model.contract.to_dict(), indent=1) + "\n", encoding="utf-8")
    summary = {"config": config, "store": info, "steps": len(history),
               "loss_first": history[0]["loss"] if history else None, "loss_last": history[-1]["loss"] if history else None,
               "heldout": {k: v for k, v in (report or {}).items() if k != "per_label"}}
    (out / "training.json").write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    if cfg.publish.push:
        if not cfg.publish.repo_id:
            raise ValueError("publish.push=true needs publish.repo_id (owner/name of the Hub repository).")
        ref = push_to_hub(model, cfg.publish.repo_id, evaluation=evaluation)
        (out / "pushed.txt").write_text(ref + "\n", encoding="utf-8")
    return out / "model.safetensors"
