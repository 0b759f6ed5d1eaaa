"""The paper's whole evaluation table for one model in one command (``koalign eval all``).

A YAML file (``--config eval.yaml``) declares the models (the same ``models:`` mapping every
``eval`` command reads) and one section per part; a part left out is not run. Paths are
relative to the file's folder. Example::

    models:
      judge: {backend: openai, model: gpt-4.1, api_key_env: OPENAI_API_KEY}
    model: hf:/models/qwen2.5-7b          # default for --model
    judges: [judge]                       # default for --judge
    safety:      {data: [korset/*.parquet], limit: 100}
    overrefusal: {data: [square/questions_valid.jsonl], prompt_field: question, limit: 20}
    citations:   {}
    general:     {data: [my_mc.jsonl], tasks: [kmmlu, hrm8k, humaneval_plus],
                  include_path: tasks/, allow_code_execution: true}
    kobbq:       {data: kobbq/samples_dev.jsonl, prompts: kobbq/0_evaluation_prompts.tsv}
    mtbench:     {data: ko_mt_bench.jsonl}
    paper_tasks: {KMMLU: kmmlu}          # lm-eval task per paper column, when not the default

Resuming: each part records its status and a fingerprint (its settings, the models' specs and
the locale) in ``summary.json`` under ``all``. Rerunning the command skips parts that finished
with the same fingerprint, reruns failed or changed ones, and answers every model call that was
already made from the cache (``cache.sqlite``). A failing part (any exception; an unexpected one
is also logged with its traceback) is recorded with its error and does not stop the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from koalign.errors import ConfigError, KoalignError
from koalign.jsonio import digest

log = logging.getLogger(__name__)
PARTS = ("safety", "overrefusal", "citations", "general", "kobbq", "mtbench")


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SafetyPart(_Part):
    """``safety:``: safe rate on prompt files (KorSET parquet or JSONL), judged by the rubric;
    ``limit`` samples at most N prompts per category (seeded), ``category_map`` maps the files'
    labels to category ids, ``system_prompt`` is given to the evaluated model."""

    data: list[str] = Field(min_length=1, description="Prompt files or globs.")
    prompt_field: str = "prompt"
    category_field: str | None = None
    category_map: str | None = Field(None, description="YAML/JSON label -> category id.")
    limit: int | None = Field(None, ge=1, description="At most N prompts per category.")
    system_prompt: str | None = None


class OverrefusalPart(_Part):
    """``overrefusal:``: refusal rate on benign but sensitive prompts from ``data``, the policy's
    ``benign_prompts`` (``policy_prompts``) and ``generate`` new prompts per category written by
    ``generator`` (a model name; default the first judge); at least one source is needed."""

    data: list[str] = []
    prompt_field: str = "prompt"
    category_field: str | None = None
    category_map: str | None = None
    policy_prompts: bool = True
    generate: int = Field(0, ge=0)
    generator: str | None = None
    limit: int | None = Field(None, ge=1)
    system_prompt: str | None = None


class CitationsPart(_Part):
    """``citations:``: citation validity of the model's answers (no settings)."""

    pass


class GeneralPart(_Part):
    """``general:``: multiple-choice accuracy on local files (``data``) and lm-evaluation-harness
    ``tasks`` (with local task YAMLs under ``include_path``); ``method`` is ``auto``, ``loglik`` (hf
    models) or ``generate`` (servers), ``format`` is ``numbered`` or ``cloze``; ``limit`` is
    questions per source or task; code tasks run the model's code only with
    ``allow_code_execution``."""

    data: list[str] = []
    tasks: list[str] = []
    include_path: str | None = None
    num_fewshot: int | None = Field(None, ge=0)
    limit: int | None = Field(None, ge=1)
    allow_code_execution: bool = False
    method: str = "auto"
    format: str = "numbered"


class KoBBQPart(_Part):
    """``kobbq:``: KoBBQ bias figures from the samples file ``data`` and the authors' evaluation
    prompts TSV ``prompts``."""

    data: str
    prompts: str
    limit: int | None = Field(None, ge=1, description="At most N items per category.")


class MTBenchPart(_Part):
    """``mtbench:``: Ko-MT-Bench single-answer grading (1-10) on the question files ``data``."""

    data: list[str] = Field(min_length=1)


class SuiteConfig(BaseModel):
    """``eval.yaml`` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, Any] = {}
    model: str | None = None
    judges: list[str] = []
    locale: str = "ko"
    safety: SafetyPart | None = None
    overrefusal: OverrefusalPart | None = None
    citations: CitationsPart | None = None
    general: GeneralPart | None = None
    kobbq: KoBBQPart | None = None
    mtbench: MTBenchPart | None = None
    paper_tasks: dict[str, str] = {}


def load_suite(path: Path) -> SuiteConfig:
    """Read and validate ``eval.yaml``; errors name the file and the key."""
    from koalign.yamlio import load_yaml

    data = load_yaml(Path(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError("an eval config must be a mapping", where=str(path))
    try:
        return SuiteConfig.model_validate(data)
    except ValidationError as exc:
        from koalign.config import render_error  # unknown keys with a did-you-mean

        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        raise ConfigError(
            "invalid eval config:\n" + "\n".join(render_error(e, SuiteConfig) for e in errors),
            where=str(path),
            hint=f"parts: {', '.join(PARTS)}",
        ) from None


def resolve(base: Path, value: str | None) -> str | None:
    """``value`` relative to the config's folder (absolute paths and globs kept)."""
    if value is None:
        return None
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def fingerprint(part: str, settings: BaseModel, models_info: dict[str, Any], locale: str) -> str:
    """What a finished part depends on: its settings, the models and the locale."""
    return digest(
        {"part": part, "settings": settings.model_dump(), "models": models_info, "locale": locale},
        16,
    )


Runner = Callable[[str, Any], Any]
Event = Callable[[str, str, dict[str, Any]], None]


async def run_parts(
    cfg: SuiteConfig,
    runners: dict[str, Runner],
    *,
    state: dict[str, Any],
    models_info: dict[str, Any],
    locale_digest: str,
    skip: Sequence[str] = (),
    force: bool = False,
    on_event: Event | None = None,
) -> dict[str, Any]:
    """Run the configured parts in :data:`PARTS` order through ``runners[part](part,
    settings)`` (async callables), skipping finished ones with an unchanged fingerprint.

    ``state`` is the previous ``all`` section (``{"parts": {...}}``); returns the new one.
    ``on_event(part, status, info)`` reports ``start``, ``done``, ``failed``, ``skipped`` and
    ``resumed`` (finished earlier, not rerun).
    """
    previous = dict(state.get("parts", {}))
    parts: dict[str, Any] = {}
    for name in PARTS:
        settings = getattr(cfg, name)
        if settings is None:
            continue
        fp = fingerprint(name, settings, models_info, locale_digest)
        if name in skip:
            parts[name] = {
                **previous.get(name, {}),
                "status": previous.get(name, {}).get("status", "skipped"),
            }
            if on_event:
                on_event(name, "skipped", {"reason": "--skip"})
            continue
        old = previous.get(name, {})
        if not force and old.get("status") == "done" and old.get("fingerprint") == fp:
            parts[name] = old
            if on_event:
                on_event(name, "resumed", old)
            continue
        if on_event:
            on_event(name, "start", {})
        started = time.monotonic()
        try:
            result = await runners[name](name, settings)
        except Exception as exc:  # one failing part must not lose the others
            if not isinstance(exc, KoalignError):
                log.exception("eval all: part %s failed", name)
            message = (
                exc.render() if isinstance(exc, KoalignError) else f"{type(exc).__name__}: {exc}"
            )
            parts[name] = {
                "status": "failed", "fingerprint": fp, "error": message,
                "seconds": round(time.monotonic() - started, 2),
            }  # fmt: skip
            if on_event:
                on_event(name, "failed", parts[name])
            continue
        parts[name] = {
            "status": "done", "fingerprint": fp, "seconds": round(time.monotonic() - started, 2),
            **({"headline": result} if isinstance(result, str) else {}),
        }  # fmt: skip
        if on_event:
            on_event(name, "done", parts[name])
    return {"parts": parts, "models": models_info}
