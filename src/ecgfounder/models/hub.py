"""Share a (fine-tuned) model the Hugging Face way: ``save_pretrained`` / ``from_pretrained`` /
``push_to_hub``, and ``load_model("hf://owner/name[@revision]")``.

A shared model is a folder (or Hub repository) in huggingface_hub's layout:

``model.safetensors``  the weights, with the package's metadata in the safetensors header
                       (architecture, labels, preprocessing contract, task, source): loadable by
                       :func:`ecgfounder.load_model` on its own
``config.json``        the same metadata as JSON (what a reader or a tool looks at first)
``README.md``          the model card: YAML front matter (``library_name``, ``license``, ``tags``,
                       ``base_model`` when the base is the published ECGFounder) and a text naming
                       the base weights, the task, the labels, the preprocessing contract, the
                       evaluation when known, and how to load it

Pushing goes through ``huggingface_hub.HfApi`` (``create_repo`` + ``upload_folder``: one commit),
so ``HF_ENDPOINT``, ``HF_TOKEN`` and the usual login apply.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .._fileio import atomic_write
from .hubref import CARD_NAME, CONFIG_NAME, HF_SCHEME, WEIGHTS_NAME, fetch_pretrained, parse_hf_reference
from .loading import load_model, save_model
from .net1d import Net1D
from .weights import HUB_REPO, KNOWN_WEIGHTS

__all__ = ["save_pretrained", "from_pretrained", "push_to_hub", "model_card"]


def _base_weights(source: Mapping[str, Any]) -> tuple[str | None, str]:
    """``(Hub repository of the base weights or None, a sentence naming them)`` from a model's source."""
    init = source.get("init")
    base = source.get("base") if isinstance(source.get("base"), Mapping) else {}
    name = base.get("name") or (init if init in KNOWN_WEIGHTS else None)
    if name in KNOWN_WEIGHTS:
        w = KNOWN_WEIGHTS[name]
        sha = f", SHA-256 `{w.sha256}`" if w.sha256 else ""
        return HUB_REPO, f"the published ECGFounder {name} weights (`{w.repo_id}/{w.filename}`{sha})"
    if init == "random":
        return None, "none: trained from a random initialisation"
    if init:
        return None, f"`{init}`"
    if source.get("file"):
        return None, f"`{source['file']}`"
    return None, "not recorded"


def _metrics_table(metrics: Mapping[str, Any]) -> list[str]:
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not rows:
        return []
    return ["| metric | value |", "|---|---|"] + [f"| {k} | {float(v):.4f} |" for k, v in rows]


def model_card(model: Net1D, *, repo_id: str | None = None, evaluation: Mapping[str, Any] | None = None,
               license: str = "mit") -> str:
    """The README.md model card of ``model`` (front matter + text; see the module documentation)."""
    source = dict(model.source or {})
    base_repo, base_text = _base_weights(source)
    task = dict(model.task_meta or {}).get("task", "multilabel")
    contract = model.contract.to_dict() if model.contract is not None else None
    evaluation = dict(evaluation) if evaluation is not None else {
        **{f"validation {k}": v for k, v in (source.get("val_metrics") or {}).items()},
        **{f"test {k}": v for k, v in (source.get("test_metrics") or {}).items()}}
    front = ["---", "library_name: ecgfounder", f"license: {license}",
             "tags:", "- ecg", "- electrocardiogram", "- ecgfounder", "- safetensors"]
    if base_repo:
        front.append(f"base_model: {base_repo}")
    front.append("---")
    labels = list(model.labels or ())
    shown = ", ".join(f"`{x}`" for x in labels[:40]) + (f" … ({len(labels)} in all)" if len(labels) > 40 else "")
    ref = f"{HF_SCHEME}{repo_id}" if repo_id else "./this-folder"
    text = [
        f"# {repo_id.split('/')[-1] if repo_id else 'ECGFounder model'}", "",
        "An ECGFounder (Net1D) model saved with the `ecgfounder` package.", "",
        f"- **Base weights:** {base_text}",
        f"- **Task:** {task} ({model.num_classes} output(s))",
        f"- **Labels:** {shown or 'not named'}",
        f"- **Architecture:** Net1D, {model.config.in_channels} input lead(s), {model.num_features} features",
        "", "## Preprocessing contract", "",
        *(["The input must be prepared exactly like this (`ecgfounder.preprocess` does it from the model):", "",
            "```json", json.dumps(contract, indent=2), "```"] if contract else ["Not recorded."]), "",
        "## Evaluation", "",
        *(_metrics_table(evaluation) or ["No evaluation recorded."]), "",
        "## Use", "", "```python", "import ecgfounder", "",
        f'model = ecgfounder.load_model("{ref}")', 'scores = ecgfounder.predict("record.hea", model=model)', "```", "",
        f"Command line: `ecgfounder predict record.hea {'--weights' if repo_id else '--checkpoint'} {ref}`", "",
    ]
    return "\n".join(front + [""] + text)


def save_pretrained(model: Net1D, save_directory: str | os.PathLike, *, repo_id: str | None = None,
                    evaluation: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` to ``save_directory`` as ``model.safetensors`` + ``config.json`` + ``README.md``
    (huggingface_hub's layout); returns the folder.  ``evaluation`` (metric → value) replaces the
    validation/test metrics the model's source records, in the card."""
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    weights = save_model(model, out / WEIGHTS_NAME)
    os.replace(weights.with_suffix(".json"), out / CONFIG_NAME)  # the metadata copy, under the Hub's name
    atomic_write(out / CARD_NAME, model_card(model, repo_id=repo_id, evaluation=evaluation))
    return out


def from_pretrained(dir_or_repo: str | os.PathLike, *, revision: str | None = None,
                    cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                    map_location: Any = "cpu", strict: bool = True) -> Net1D:
    """Load a model written by :func:`save_pretrained`: a local folder, or a Hub repository
    (``"owner/name"`` or ``"hf://owner/name[@revision]"``) downloaded into the Hugging Face cache."""
    p = Path(dir_or_repo)
    if p.is_dir() and not (p / WEIGHTS_NAME).is_file():
        from ..errors import CheckpointError

        raise CheckpointError(f"{p}: no {WEIGHTS_NAME} in this folder; save it with save_pretrained(model, '{p}').")
    if p.exists():  # the folder, or its weights file
        return load_model(p, map_location=map_location, strict=strict)
    path = fetch_pretrained(str(dir_or_repo), revision=revision, cache_dir=cache_dir, token=token)
    return load_model(path, map_location=map_location, strict=strict)


def push_to_hub(model: Net1D, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                revision: str | None = None, commit_message: str = "Upload ECGFounder model",
                evaluation: Mapping[str, Any] | None = None, endpoint: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload the :func:`save_pretrained` folder of ``model`` in
    one commit; returns ``"hf://repo_id@commit"``, a reference that pins what was pushed."""
    from huggingface_hub import HfApi

    repo_id, _ = parse_hf_reference(repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory(prefix="ecgfounder-push-") as tmp:
        save_pretrained(model, tmp, repo_id=repo_id, evaluation=evaluation)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, revision=revision, commit_message=commit_message,
                                 repo_type="model")
    return f"{HF_SCHEME}{repo_id}@{info.oid}"
