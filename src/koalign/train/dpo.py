"""DPO training, thin over ``trl.DPOTrainer``: validation, defaults, QLoRA and reporting around it."""

from __future__ import annotations

import dataclasses
import difflib
import gc
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import ConfigError, DataError, require
from koalign.jsonio import read_text
from koalign.train.config import DPO_ARG_ALIASES, LoraSettings, TrainConfig
from koalign.train.data import DataSources, clean_row, load_rows, resolve_sources
from koalign.train.hub import model_source
from koalign.train.validate import ValidationReport, stop_token_ids, validate_rows

log = logging.getLogger(__name__)

#: DPOConfig/TrainingArguments names that older TRL/transformers had, with the replacement.
RENAMED_ARGS = {
    "max_prompt_length": "max_length with truncation_mode",
    "max_completion_length": "max_length with truncation_mode",
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "tokenizer": "(nothing: the tokenizer is passed as processing_class by koalign)",
    "warmup_ratio": "warmup_steps (a value below 1 is a ratio)",
}


class TrainResult(BaseModel):
    """What a training run produced."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str
    model_dir: str = Field(description="Directory to load the trained model or adapter from.")
    adapter_dir: str | None = None
    merged: bool = False
    quantization: str
    metrics: dict[str, float] = Field(default_factory=dict, description="Last logged values.")
    files: dict[str, str] = Field(default_factory=dict, description="Output name -> path.")
    report: ValidationReport


class Prepared(BaseModel):
    """A checked config with its data, ready for the trainer."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    config: TrainConfig
    cuda: bool
    quantization: str
    dpo_args: dict[str, Any]
    sources: DataSources
    report: ValidationReport
    train_rows: list[dict[str, Any]] = Field(default_factory=list)
    eval_rows: list[dict[str, Any]] = Field(default_factory=list)


def cuda_available() -> bool:
    """True when torch sees a CUDA device.

    Raises:
        MissingExtraError: torch is not installed (the ``train`` extra).
    """
    torch = require("torch", "train", feature="DPO training")
    return bool(torch.cuda.is_available())


def resolve_quantization(cfg: TrainConfig, cuda: bool) -> str:
    """'auto' -> 4bit-nf4 with CUDA and LoRA, else none; 4bit-nf4 without CUDA is refused."""
    if cfg.quantization == "auto":
        return "4bit-nf4" if cuda and cfg.use_lora else "none"
    if cfg.quantization == "4bit-nf4" and not cuda:
        raise ConfigError(
            "4-bit NF4 quantization (QLoRA) needs a CUDA GPU and none was found",
            where="quantization",
            hint="set quantization: none to train LoRA in full precision, or run on a CUDA machine",
        )
    return cfg.quantization


def default_dpo_args(cfg: TrainConfig, *, cuda: bool, output_dir: Path) -> dict[str, Any]:
    """koalign's defaults for trl.DPOConfig (documented in docs/training.md)."""
    return {
        "output_dir": str(output_dir / "checkpoints"),
        "beta": 0.1,
        "learning_rate": 5e-6 if cfg.use_lora else 5e-7,
        "num_train_epochs": 1,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "gradient_accumulation_steps": 8,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,
        "max_length": 2048,
        "precompute_ref_log_probs": cfg.use_lora,
        "bf16": cuda,
        "use_cpu": not cuda,
        "activation_checkpointing": cuda,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 200,
        "save_total_limit": 2,
        "report_to": "none",
        "seed": 42,
        "trust_remote_code": cfg.trust_remote_code,
        "model_init_kwargs": {"dtype": "bfloat16" if cuda else "float32"},
    }


def resolve_dpo_args(cfg: TrainConfig, *, cuda: bool, has_eval: bool) -> dict[str, Any]:
    """The ``trl.DPOConfig`` arguments of a run: koalign's defaults (:func:`default_dpo_args`),
    per-step evaluation at a quarter of the run when there is eval data, then the config's
    ``dpo_args`` on top (``model_init_kwargs`` merged key by key; a user ``gradient_checkpointing``
    replaces the default ``activation_checkpointing``)."""
    args = default_dpo_args(cfg, cuda=cuda, output_dir=cfg.output_dir())
    if has_eval:
        args.update(eval_strategy="steps", eval_steps=0.25)
    if "gradient_checkpointing" in cfg.dpo_args:  # the old name, still honoured by transformers
        args.pop("activation_checkpointing")
    user = dict(cfg.dpo_args)
    if isinstance(user.get("model_init_kwargs"), dict):  # merged key by key, so dtype stays
        user["model_init_kwargs"] = {**args["model_init_kwargs"], **user["model_init_kwargs"]}
    args.update(user)
    return args


def build_dpo_config(args: dict[str, Any]):
    """``trl.DPOConfig(**args)``, with TRL's errors re-raised naming the config key."""
    trl = require("trl", "train", feature="DPO training")
    known = {f.name for f in dataclasses.fields(trl.DPOConfig)}
    for key in args:
        if key not in known:
            alias = DPO_ARG_ALIASES.get(key)
            close = [alias] if alias in known else difflib.get_close_matches(key, known, n=1)
            hint = (
                f"renamed: use {RENAMED_ARGS[key]}"
                if key in RENAMED_ARGS
                else (f"did you mean '{close[0]}'? " if close else "")
                + "see the trl.DPOConfig documentation"
            )
            raise ConfigError(
                f"trl.DPOConfig has no argument {key!r}", where=f"dpo_args.{key}", hint=hint
            )
    try:
        return trl.DPOConfig(**args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"trl.DPOConfig refused the arguments: {exc}", where=_key_named(args, exc)
        ) from exc


def _key_named(args: dict[str, Any], exc: Exception) -> str:
    """``dpo_args.<key>`` for the argument TRL's message names first, else ``dpo_args``."""
    text = str(exc)
    found = []
    for key in args:
        for form in (f"`{key}`", f"'{key}'", key):
            pos = text.find(form)
            if pos >= 0:
                found.append((pos, -len(key), key))
                break
    return f"dpo_args.{min(found)[2]}" if found else "dpo_args"


def _revision(cfg: TrainConfig) -> str | None:
    """The Hub revision pinned with dpo_args.model_init_kwargs.revision, if any."""
    kwargs = cfg.dpo_args.get("model_init_kwargs")
    return kwargs.get("revision") if isinstance(kwargs, dict) else None


def _template_file(path: Path) -> str:
    """The text of a ``chat_template`` file; :class:`ConfigError` naming the key and the file
    when it cannot be read or is not UTF-8 (with the ``iconv`` fix for CP949/EUC-KR)."""
    try:
        return read_text(path)
    except DataError as exc:
        raise ConfigError(exc.message, where=f"chat_template {path}", hint=exc.hint) from None


def load_tokenizer(cfg: TrainConfig, *, local_only: bool = False):
    """The model's tokenizer, with ``chat_template`` (a file path or the template text) applied when
    the config gives one; a tokenizer without a chat template is logged as a warning (only standard
    rows then work). ``local_only``: read only local files (see :func:`local_files_only`).

    Raises:
        ConfigError: the tokenizer cannot be loaded (not local, not cached, Hub unreachable), or
            the ``chat_template`` file cannot be read or is not UTF-8.
        MissingExtraError: transformers is not installed.
    """
    transformers = require("transformers", "train", feature="DPO training")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(
            cfg.model,
            trust_remote_code=cfg.trust_remote_code,
            revision=_revision(cfg),
            local_files_only=local_only,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot load the tokenizer: {exc}",
            where="model",
            hint="give a local model directory or a Hub id that is cached or reachable",
        ) from exc
    if cfg.chat_template:
        path = Path(cfg.chat_template)
        is_file = len(cfg.chat_template) < 4096 and "{" not in cfg.chat_template and path.is_file()
        tok.chat_template = _template_file(path) if is_file else cfg.chat_template
    if not getattr(tok, "chat_template", None):
        log.warning("%s has no chat template: only standard (string) rows can be used", cfg.model)
    return tok


def generation_eos(cfg: TrainConfig, *, local_only: bool = False) -> int | list[int] | None:
    """The model's end-of-sequence token id(s) from its generation config, or None when it has none
    or none can be loaded.

    Raises:
        MissingExtraError: transformers is not installed.
    """
    transformers = require("transformers", "train", feature="DPO training")
    try:
        gen = transformers.GenerationConfig.from_pretrained(
            cfg.model,
            trust_remote_code=cfg.trust_remote_code,
            revision=_revision(cfg),
            local_files_only=local_only,
        )
    except (OSError, ValueError):
        return None
    return gen.eos_token_id


def local_files_only(cfg: TrainConfig) -> bool:
    """Check that the base model can be had, before anything is loaded; True when it must be
    read from local files only (cached while the Hub is unreachable or offline mode is on).

    Raises:
        ConfigError: at once, when the model is neither a local folder nor cached and the Hub
            cannot be reached (see :func:`koalign.train.hub.model_source`).
    """
    return model_source(cfg.model, _revision(cfg)) == "cache"


def prepare(cfg: TrainConfig, *, tokenizer: Any = None, local_only: bool | None = None) -> Prepared:
    """Resolve defaults, load the data and validate it against the model's chat template.

    This is all that ``koalign train --check-only`` runs; nothing is trained. ``local_only``:
    the answer of :func:`local_files_only` when the caller already has it.
    """
    cuda = cuda_available()
    quantization = resolve_quantization(cfg, cuda)
    sources = resolve_sources(cfg.data, cfg.eval_data)
    has_eval = any(f.split == "eval" for f in sources.files)
    args = resolve_dpo_args(cfg, cuda=cuda, has_eval=has_eval)
    if local_only is None:  # before TRL's slow import: a model that cannot be had fails at once
        local_only = local_files_only(cfg)
    build_dpo_config(args)  # fail on bad dpo_args before any tokenizing
    tokenizer = tokenizer or load_tokenizer(cfg, local_only=local_only)
    rows, load_problems = load_rows(sources)
    merge_system = cfg.system_prompt == "merge"
    report = validate_rows(
        rows,
        tokenizer,
        max_length=args.get("max_length"),
        stop_ids=stop_token_ids(tokenizer, generation_eos(cfg, local_only=local_only)),
        merge_system=merge_system,
        max_truncated_share=cfg.validation.max_truncated_share,
        allow_prompt_mismatch=cfg.validation.allow_prompt_mismatch,
        load_problems=load_problems,
        truncation_mode=str(args.get("truncation_mode") or "keep_start"),
        max_dropped_share=cfg.validation.max_dropped_share,
    )
    prepared = Prepared(
        config=cfg,
        cuda=cuda,
        quantization=quantization,
        dpo_args=args,
        sources=sources,
        report=report,
    )
    if report.ok:
        # What TRL would drop (or could not learn from) is left out here, so the rows handed
        # to TRL are exactly the rows the report and the model card count as trained.
        dropped = {p.location for p in report.dropped}
        for row in rows:
            if row.location in dropped:
                continue
            clean = clean_row(row.data, merge_system=merge_system)
            (prepared.train_rows if row.split == "train" else prepared.eval_rows).append(clean)
    return prepared


def lora_config(cfg: TrainConfig):
    """The ``peft.LoraConfig`` for ``cfg.peft`` (None for full fine-tuning)."""
    p = cfg.peft
    if not isinstance(p, LoraSettings):
        return None
    peft = require("peft", "train", feature="LoRA training")
    return peft.LoraConfig(
        r=p.r,
        lora_alpha=p.alpha,
        lora_dropout=p.dropout,
        target_modules=p.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def quantization_config(quantization: str):
    """The ``BitsAndBytesConfig`` for ``4bit-nf4`` (NF4, bf16 compute, double quantization); None
    for any other value.

    Raises:
        MissingExtraError: torch, transformers or bitsandbytes (the ``qlora`` extra) is missing.
    """
    if quantization != "4bit-nf4":
        return None
    torch = require("torch", "train", feature="QLoRA")
    transformers = require("transformers", "train", feature="QLoRA")
    require("bitsandbytes", "qlora", feature="4-bit NF4 quantization (QLoRA)")
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def train(config: TrainConfig) -> TrainResult:
    """Validate the data, run ``trl.DPOTrainer`` and write every output to ``config.output_dir()``.

    Raises :class:`DataError` when the dataset check refuses the data and :class:`ConfigError`
    when TRL refuses the configuration.
    """
    from koalign.train import report as reporting

    local_only = local_files_only(config)
    tokenizer = load_tokenizer(config, local_only=local_only)
    prep = prepare(config, tokenizer=tokenizer, local_only=local_only)
    if not prep.report.ok:
        raise DataError(
            "the dataset check refused the data:\n" + prep.report.summary(),
            where=", ".join(config.data),
            hint="fix the rows listed above, or run `koalign train --check-only` for the full report",
        )
    datasets = require("datasets", "train", feature="DPO training")
    trl = require("trl", "train", feature="DPO training")
    out = config.output_dir()
    out.mkdir(parents=True, exist_ok=True)
    args = build_dpo_config(prep.dpo_args)
    if local_only:  # the model too, without the Hub's retries
        args.model_init_kwargs = {**(args.model_init_kwargs or {}), "local_files_only": True}
    train_ds = datasets.Dataset.from_list(prep.train_rows)
    eval_ds = datasets.Dataset.from_list(prep.eval_rows) if prep.eval_rows else None
    log.info(
        "training %s on %d rows (%s, quantization %s)",
        config.model,
        len(train_ds),
        "LoRA" if config.use_lora else "full fine-tuning",
        prep.quantization,
    )
    try:
        trainer = trl.DPOTrainer(
            model=config.model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            peft_config=lora_config(config),
            quantization_config=quantization_config(prep.quantization),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"trl.DPOTrainer refused the configuration: {exc}", where=_key_named(prep.dpo_args, exc)
        ) from exc
    _confirm_trained_rows(prep, trainer, config)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint or None)

    merged = config.merge and config.use_lora
    if config.merge and not config.use_lora:
        log.warning("merge: nothing to merge for full fine-tuning; the model is saved as trained")
    adapter_dir = (out / "adapter" if merged else out) if config.use_lora else None
    trainer.save_model(str(adapter_dir or out))
    if adapter_dir is not None:
        tokenizer.save_pretrained(str(adapter_dir))
    history = list(trainer.state.log_history)
    main_process = trainer.is_world_process_zero()
    trainer.accelerator.wait_for_everyone()
    del trainer
    gc.collect()
    if main_process and merged and adapter_dir is not None:
        merge_adapter(config, adapter_dir, out, cuda=prep.cuda, local_only=local_only)
    if main_process:
        tokenizer.save_pretrained(str(out))
    files = {}
    if main_process:
        files = reporting.write_outputs(
            prep, history, out, merged=merged, dpo_config=args.to_dict()
        )
    return TrainResult(
        output_dir=str(out),
        model_dir=str(out),
        adapter_dir=str(adapter_dir) if adapter_dir else None,
        merged=merged,
        quantization=prep.quantization,
        metrics=reporting.last_metrics(history),
        files=files,
        report=prep.report,
    )


def _confirm_trained_rows(prep: Prepared, trainer: Any, config: TrainConfig) -> None:
    """Compare the rows TRL kept with the check's count; the report then holds TRL's count.

    Raises:
        DataError: when TRL kept no training row.
    """
    kept = {"train": len(trainer.train_dataset)}
    if trainer.eval_dataset is not None and hasattr(trainer.eval_dataset, "__len__"):
        kept["eval"] = len(trainer.eval_dataset)
    expected = {"train": len(prep.train_rows), "eval": len(prep.eval_rows)}
    for split, n in kept.items():
        if n != expected[split]:
            log.warning(
                "TRL kept %d %s rows where the dataset check expected %d; the model card "
                "reports TRL's count",
                n,
                split,
                expected[split],
            )
            prep.report.trained_rows[split] = n
    if kept["train"] == 0:
        raise DataError(
            "TRL kept no training row",
            where=", ".join(config.data),
            hint="run `koalign train --check-only` to see which rows are dropped and why",
        )


def merge_adapter(
    cfg: TrainConfig, adapter_dir: Path, out: Path, *, cuda: bool, local_only: bool = False
) -> None:
    """Load the base model unquantized, merge the adapter into it and save it to ``out``."""
    torch = require("torch", "train", feature="merging")
    peft = require("peft", "train", feature="merging")
    transformers = require("transformers", "train", feature="merging")
    if cuda:
        torch.cuda.empty_cache()
    # The same class TRL trained (e.g. Gemma3ForConditionalGeneration), so adapter names match.
    config = transformers.AutoConfig.from_pretrained(
        cfg.model,
        trust_remote_code=cfg.trust_remote_code,
        revision=_revision(cfg),
        local_files_only=local_only,
    )
    arch = getattr(transformers, (config.architectures or [""])[0], None)
    arch = arch or transformers.AutoModelForCausalLM
    base = arch.from_pretrained(
        cfg.model,
        dtype=torch.bfloat16 if cuda else torch.float32,
        trust_remote_code=cfg.trust_remote_code,
        revision=_revision(cfg),
        local_files_only=local_only,
    )
    merged = peft.PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out))
    log.info("merged the adapter into %s and saved it to %s", cfg.model, out)
