"""Fine-tuning and linear probing of ECGFounder on downstream tasks.

``finetune(load_config("config.yaml", ["train.epochs=3"]))`` runs the whole pipeline (manifest,
patient-level splits, window cache, training, test report); ``ecgfounder finetune run`` is the
command-line form, and ``torchrun --nproc_per_node N -m ecgfounder finetune run ...`` its DDP form.
See docs/finetune.md.
"""

from __future__ import annotations

from .config import ConfigError, FinetuneConfig, config_from_dict, load_config
from .loop import FinetuneResult, finetune

__all__ = ["finetune", "FinetuneResult", "FinetuneConfig", "load_config", "config_from_dict", "ConfigError"]
