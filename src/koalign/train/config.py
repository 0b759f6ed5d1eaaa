"""Training configuration: what to train, on which data, with which adapter and TRL arguments.

``dpo_args`` is passed straight to ``trl.DPOConfig`` over koalign's defaults (see
:func:`koalign.train.dpo.default_dpo_args`); koalign does not mirror TRL's fields.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from koalign.errors import ConfigError, did_you_mean
from koalign.yamlio import apply_overrides, load_yaml
from koalign.yamlio import parse_override as parse_override  # re-exported
from koalign.yamlio import set_dotted as set_dotted  # re-exported

Quantization = Literal["auto", "4bit-nf4", "none"]


#: All attention and MLP projections of Llama-style decoders (the paper's LoRA targets).
DEFAULT_TARGET_MODULES = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
]


#: trl.DPOConfig arguments people often set, for "did you mean" on a key given outside
#: ``dpo_args`` (names only: koalign passes ``dpo_args`` to TRL as they are, and importing TRL
#: to list them all takes seconds).
COMMON_DPO_ARGS = (
    "learning_rate", "num_train_epochs", "max_steps", "beta", "loss_type", "max_length",
    "truncation_mode", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type", "weight_decay",
    "max_grad_norm", "optim", "seed", "bf16", "fp16", "logging_steps", "save_steps",
    "save_strategy", "eval_steps", "eval_strategy", "report_to", "run_name",
    "gradient_checkpointing", "activation_checkpointing", "precompute_ref_log_probs",
    "model_init_kwargs", "use_cpu",
)  # fmt: skip

#: Short names people type -> the trl.DPOConfig argument (under ``dpo_args``).
DPO_ARG_ALIASES = {
    "lr": "learning_rate", "epochs": "num_train_epochs", "num_epochs": "num_train_epochs",
    "steps": "max_steps", "batch_size": "per_device_train_batch_size",
    "train_batch_size": "per_device_train_batch_size",
    "eval_batch_size": "per_device_eval_batch_size",
    "grad_accum": "gradient_accumulation_steps", "gradient_accumulation": "gradient_accumulation_steps",
    "warmup": "warmup_steps", "scheduler": "lr_scheduler_type", "max_len": "max_length",
    "dpo_beta": "beta",
}  # fmt: skip

#: Short names people type for the LoRA settings (PEFT's own names) -> the ``peft`` key.
LORA_ALIASES = {"rank": "r", "lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
                "target": "target_modules", "modules": "target_modules"}  # fmt: skip


def key_suggestion(key: str, section: str | None = None) -> str:
    """``" (did you mean 'x'?)"`` for an unknown config key: the closest key of its section
    (``None``: top level, ``"peft"``, ``"validation"``, ``"dpo_args"``), a short name
    (``lr``, ``epochs``, ``rank``), or, at the top level, a trl.DPOConfig argument, which
    belongs under ``dpo_args`` (``lr`` -> ``dpo_args.learning_rate``)."""
    if section == "dpo_args":
        name = DPO_ARG_ALIASES.get(key)
        return f" (did you mean '{name}'?)" if name else did_you_mean(key, COMMON_DPO_ARGS)
    if section == "peft":
        if key in LORA_ALIASES:
            return f" (did you mean '{LORA_ALIASES[key]}'?)"
        return did_you_mean(key, LoraSettings.model_fields)
    if section == "validation":
        return did_you_mean(key, ValidationSettings.model_fields)
    found = did_you_mean(key, TrainConfig.model_fields)
    if found:
        return found
    name = DPO_ARG_ALIASES.get(key, key if key in COMMON_DPO_ARGS else None)
    if name is None:
        close = difflib.get_close_matches(key, COMMON_DPO_ARGS, n=1, cutoff=0.75)
        name = close[0] if close else None
    return f" (did you mean 'dpo_args.{name}'? TRL's arguments go under dpo_args)" if name else ""


class LoraSettings(BaseModel):
    """LoRA adapter settings (defaults follow the paper: r=16, alpha=16, dropout 0.05)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(16, gt=0, description="LoRA scaling alpha (lora_alpha).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch.")
    target_modules: list[str] | str = Field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        description=(
            "Module names to adapt: a list of names, 'all-linear', or one regular expression "
            "matched against full module names (useful to skip a vision tower)."
        ),
    )


class ValidationSettings(BaseModel):
    """Thresholds of the dataset check that runs before training."""

    model_config = ConfigDict(extra="forbid")

    max_truncated_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Refuse to train when a larger share of rows is longer than dpo_args.max_length.",
    )
    max_dropped_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description=(
            "Refuse to train when a larger share of a split's rows would not be trained on: "
            "rows whose templated prompt alone fills dpo_args.max_length (TRL drops them) and "
            "rows whose chosen and rejected are the same tokens once cut to max_length. A split "
            "with no row left is always refused."
        ),
    )
    allow_prompt_mismatch: bool = Field(
        False,
        description=(
            "Accept rows whose templated prompt is not a token prefix of prompt+answer "
            "(TRL then trains on a context that differs from inference)."
        ),
    )


class TrainConfig(BaseModel):
    """One DPO training run."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Base model: a Hugging Face Hub id or a local directory.")
    data: list[str] = Field(
        min_length=1,
        description=(
            "JSONL/parquet files or koalign export directories. In a directory, train.jsonl is "
            "the training split and validation.jsonl the evaluation split."
        ),
    )
    eval_data: list[str] = Field(
        default_factory=list, description="Extra evaluation files (added to any validation.jsonl)."
    )
    output: str | None = Field(
        None, description="Output directory; default outputs/<model name>-dpo."
    )
    trust_remote_code: bool = Field(
        False, description="Allow the model's own code from the Hub (needed by EXAONE 3.5)."
    )
    peft: LoraSettings | Literal["none"] = Field(
        default_factory=LoraSettings, description="LoRA settings, or 'none' for full fine-tuning."
    )
    quantization: Quantization = Field(
        "auto",
        description=(
            "'4bit-nf4' loads the base in 4-bit NF4 with bf16 compute (QLoRA, needs CUDA); "
            "'auto' picks it when CUDA is present and LoRA is used, else 'none'."
        ),
    )
    chat_template: str | None = Field(
        None,
        description="Jinja chat template (text or a path to a file) replacing the tokenizer's.",
    )
    system_prompt: Literal["keep", "merge"] = Field(
        "keep",
        description=(
            "'merge' folds a system turn into the first user turn, for templates without a "
            "system role."
        ),
    )
    merge: bool = Field(
        False, description="Merge the LoRA adapter into the base model and save the merged model."
    )
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    dpo_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for trl.DPOConfig, applied over koalign's defaults.",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.quantization == "4bit-nf4" and self.peft == "none":
            raise ValueError(
                "quantization '4bit-nf4' needs a LoRA adapter (a 4-bit base cannot be fully "
                "fine-tuned); set peft to LoRA settings or quantization to 'none'"
            )
        template = self.chat_template
        if template is not None and "{" not in template and not Path(template).is_file():
            # a Jinja chat template always has {% or {{: this is a path with a typo
            raise ValueError(
                f"chat_template: no file '{template}' (relative paths are read from the working "
                "directory), and it is not template text either (no '{{'); give the path of an "
                "existing template file or the template itself"
            )
        return self

    @property
    def use_lora(self) -> bool:
        """True unless ``peft: none`` (full fine-tuning)."""
        return self.peft != "none"

    def output_dir(self) -> Path:
        """``output`` when set, else ``outputs/<last part of model>-dpo`` (relative to the working
        directory)."""
        if self.output:
            return Path(self.output)
        name = self.model.rstrip("/").split("/")[-1] or "model"
        return Path("outputs") / f"{name}-dpo"


def load_train_config(
    path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    **fields: Any,
) -> TrainConfig:
    """Read a YAML config (optional), apply keyword fields and ``key=value`` overrides, validate.

    Keyword fields that are ``None`` are ignored, so CLI options can be passed through as is.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        loaded = load_yaml(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("the config must be a mapping of keys to values", where=str(p))
        data = loaded
    for key, value in fields.items():
        if value is not None and value != []:
            data[key] = value
    where = str(path) if path else "config"
    before = copy.deepcopy(data)
    apply_overrides(data, overrides)
    try:
        return validate_config(data, where=where)
    except ConfigError as exc:
        if not overrides:
            raise
        try:  # the file (and options) alone: valid means the overrides are to blame
            validate_config(before, where=where)
        except ConfigError:
            raise exc from None
        raise ConfigError(
            exc.message,
            where=f"--set {overrides[0]}" if len(overrides) == 1 else "--set",
            hint=f"{where} itself is valid; fix or drop the override"
            + ("" if len(overrides) == 1 else "s")
            + "; config keys: docs/training.md",
        ) from None


def validate_config(data: dict[str, Any], *, where: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig`, turning pydantic errors into one :class:`ConfigError`."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            parts = [str(x) for x in e["loc"]]
            if any(x.startswith("literal[") for x in parts) and not isinstance(e["input"], str):
                continue  # the 'none' branch of peft when a mapping was given
            parts = [
                x for x in parts if x not in ("LoraSettings",) and not x.startswith("literal[")
            ]
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = "unknown key" + key_suggestion(
                    parts[-1], parts[0] if len(parts) > 1 else None
                )
            loc = ".".join(parts)
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError(
            "; ".join(problems),
            where=where,
            hint="see docs/training.md for the config keys",
        ) from exc


def dump_config(cfg: TrainConfig) -> str:
    """The config as YAML (Korean unescaped), loadable by :func:`load_train_config`."""
    return yaml.safe_dump(
        cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False, default_flow_style=False
    )
