"""Pre-training an ECGFounder-style model from scratch (see ``docs/pretrain.md``).

- :mod:`.statements`: labels from free-text interpretation statements by rules (negation,
  uncertainty, serial comparisons; statements no rule matches are reported);
- :mod:`.store`: a sharded WebDataset store of preprocessed windows and label states, written in
  parallel, read with shuffling and exact mid-epoch resume, from disk, HTTP or a ``pipe:`` command;
- :mod:`.recipe`: label policy, PU-style asymmetric loss, lead augmentation and masking, schedule,
  model-size presets;
- :mod:`.config`, :mod:`.loop`: the configured run (DDP, bf16, compile, accumulation, EMA,
  checkpoints with exact resume); :mod:`.publish`: weights + model card + labels + contract.
"""

from __future__ import annotations

from .._lazy import lazy_names

_LAZY = {
    "extract_statement": "statements", "extract_record": "statements", "default_rules": "statements",
    "load_rules": "statements", "LabelReport": "statements",
    "build_store": "store", "open_store": "store", "iter_batches": "store", "label_sources": "store",
    "PretrainConfig": "config", "load_pretrain_config": "config",
    "pretrain": "loop", "evaluate_store": "loop", "publish": "publish", "SIZE_PRESETS": "recipe",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
