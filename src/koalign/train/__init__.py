"""DPO training on koalign exports with TRL (LoRA, QLoRA or full fine-tuning).

Heavy dependencies (torch, transformers, trl, peft, datasets, matplotlib) are imported only when
a function needs them.
"""

from __future__ import annotations

from koalign.train.config import LoraSettings, TrainConfig, load_train_config
from koalign.train.dpo import TrainResult, prepare, train
from koalign.train.validate import ValidationReport

__all__ = [
    "LoraSettings",
    "TrainConfig",
    "TrainResult",
    "ValidationReport",
    "load_train_config",
    "prepare",
    "train",
]
