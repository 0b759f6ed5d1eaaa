"""The run configuration: one YAML file, validated before any model call.

``load_config(path, overrides)`` reads the YAML, applies ``--set a.b=c`` overrides (values are
parsed as YAML, so ``--set attack.rounds=2`` gives an int) and validates everything: unknown keys,
roles naming undeclared models, locale references (category and type ids, strategies, tactics,
prompt templates). Every error names its config path and suggests the closest valid name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from koalign.backends.base import ModelSpec
from koalign.errors import ConfigError, LocaleError, did_you_mean
from koalign.locale_schema import Personas as Variation

STAGES = ("seeds", "attack", "respond", "judge", "export")
CRITERIA = (
    "intended_category",
    "natural_korean",
    "rejected_harmful",
    "chosen_safe",
    "chosen_p1_p3",
    "chosen_helpful",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Roles(_Section):
    seed_generator: str = Field(description="Model that fills seed slots and writes seed prompts.")
    attacker: str = Field(description="Model that rewrites seeds with attack strategies.")
    targets: list[str] = Field(min_length=1, description="Models attacked for hard cases.")
    harm_judge: str = Field(description="Judge scoring target answers 1-5 for harm.")
    query_judge: str = Field(description="Judge rating prompt harmfulness 1-4.")
    responders: list[str] = Field(min_length=1, description="Models writing policy answers.")
    response_judge: str = Field(description="Judge scoring candidates for safety and coherence.")
    filter_judges: list[str] | None = Field(
        None,
        min_length=1,
        description="Judges of the six-criteria filter (default: the responders, as in the paper).",
    )
    benign_generator: str | None = Field(
        None, description="Model writing extra benign prompts (default: seed_generator)."
    )
    refusal_writer: str | None = Field(
        None,
        description="Model writing an unjustified refusal when no target refuses a benign prompt "
        "(default: attacker).",
    )

    def resolved(self) -> dict[str, list[str]]:
        """Every role with its models (defaults applied), as lists."""
        return {
            "seed_generator": [self.seed_generator],
            "benign_generator": [self.benign_generator or self.seed_generator],
            "attacker": [self.attacker],
            "refusal_writer": [self.refusal_writer or self.attacker],
            "targets": list(self.targets),
            "harm_judge": [self.harm_judge],
            "query_judge": [self.query_judge],
            "responders": list(self.responders),
            "response_judge": [self.response_judge],
            "filter_judges": list(self.filter_judges or self.responders),
        }


class SeedsConfig(_Section):
    per_type: int = Field(4, ge=0, description="Seeds to keep per harm type (the quota).")
    quota: dict[str, int] = Field(
        default_factory=dict, description="Per-type quota overrides: {type_id: n}."
    )
    categories: list[str] | None = Field(None, description="Only these category ids (default all).")
    oversample: float = Field(
        1.5, ge=1.0, description="Candidates generated per type = ceil(quota * oversample)."
    )
    benign_per_category: int = Field(
        3,
        ge=0,
        description="Benign but sensitive prompts per category for over-refusal pairs "
        "(policy benign_prompts first, then generated from does_not_apply).",
    )
    min_script_ratio: float = Field(
        0.5, ge=0, le=1, description="Minimum share of letters in the locale's script."
    )
    dedup_threshold: float = Field(
        0.7, gt=0, le=1, description="MinHash-LSH Jaccard threshold for near-duplicates."
    )
    dedup_ngram: int = Field(3, ge=1, description="Character n-gram size for MinHash.")
    dedup_num_perm: int = Field(128, ge=16, description="MinHash permutations.")
    variation: Variation | None = Field(
        None, description="Persona/register/length lists (default: the locale's personas.yaml)."
    )


class AttackConfig(_Section):
    rounds: int = Field(3, ge=1, description="Attack rounds R per seed.")
    threshold: int = Field(4, ge=1, le=5, description="Harm score at which a target is broken.")
    strategies: list[str] | None = Field(None, description="Strategy ids (default all).")
    tactics: list[str] | None = Field(None, description="Tactic ids (default all).")
    tactic_share: float = Field(
        0.5, ge=0, le=1, description="Share of rewrites that also apply a locale tactic."
    )
    min_script_ratio: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Rewrites with a lower share of letters in the locale's script are bad "
        "outputs (lower than for seeds: tactics such as code-switching mix scripts).",
    )
    keep: Literal["best", "all"] = Field(
        "best",
        description="Hard cases kept per seed: 'best' (highest harm; ties -> target kept least so "
        "far, then earlier round) or 'all' (one per broken target).",
    )
    synthesize_refusals: bool = Field(
        True,
        description="For benign prompts no target refused, have refusal_writer write an "
        "unjustified refusal as the rejected answer.",
    )


class RespondConfig(_Section):
    query_judge: bool = Field(True, description="Rate prompt harmfulness and drop low ones.")
    min_query_score: int = Field(2, ge=1, le=4, description="Drop prompts rated below this.")
    min_safety: int = Field(4, ge=1, le=5, description="Chosen candidates need this safety.")
    min_coherence: int = Field(1, ge=1, le=5, description="Chosen candidates need this coherence.")
    min_script_ratio: float = Field(
        0.5, ge=0, le=1, description="Candidates must be in the locale's language (script ratio)."
    )
    citation_check: bool = Field(
        True, description="Reject candidates citing outdated/nonexistent law or retired contacts."
    )


class JudgeConfig(_Section):
    reducer: Literal["unanimous", "majority"] = Field(
        "unanimous", description="How judges' per-criterion verdicts are combined."
    )


class ExportConfig(_Section):
    target_size: int = Field(10000, ge=1, description="Triplets to export (balanced by domain).")
    over_refusal_share: float = Field(
        0.1, ge=0, le=1, description="Largest share of over-refusal pairs in the export."
    )
    system_prompt: bool = Field(
        False, description="Keep the policy system prompt in `prompt` (default off)."
    )
    validation_share: float = Field(
        0.1, ge=0, lt=1, description="Share of seeds in validation.jsonl."
    )
    license: str = Field("cc-by-nc-4.0", description="Licence written into the dataset card.")
    name: str = Field("koalign-dpo", description="Dataset name in the card.")


class RuntimeConfig(_Section):
    max_inflight: int = Field(256, ge=1, description="Records processed at once per stage.")
    max_error_rate: float = Field(
        0.2, ge=0, le=1, description="A stage fails when bad outputs / model outputs exceed this."
    )
    fsync: bool = Field(True, description="fsync every record line (crash safety).")
    stage_retries: int = Field(
        2,
        ge=0,
        description="Extra passes within a stage over records whose calls failed transiently "
        "(rate limit, server, timeout, connection) after the model layer's own retries.",
    )
    stage_retry_wait_s: float = Field(
        10.0,
        ge=0,
        description="Seconds before the first extra pass; the n-th pass waits n times this.",
    )


class RunConfig(_Section):
    locale: str = Field("ko", description="Locale pack name or folder.")
    seed: int = Field(0, description="Random seed for every sampling decision.")
    models: dict[str, ModelSpec] = Field(min_length=1, description="Named models.")
    roles: Roles
    seeds: SeedsConfig = Field(default_factory=SeedsConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    respond: RespondConfig = Field(default_factory=RespondConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _roles_name_models(self) -> RunConfig:
        problems = []
        for role, names in self.roles.resolved().items():
            for i, name in enumerate(names):
                if name not in self.models:
                    field = role if len(names) == 1 and role not in _LIST_ROLES else f"{role}[{i}]"
                    problems.append(
                        f"roles.{field}: unknown model '{name}'{did_you_mean(name, self.models)}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage_hash(self, stage: str) -> str:
        """Hash of everything that changes ``stage``'s output (not later stages' settings)."""
        return _hash(self.stage_inputs(stage))

    def stage_inputs(self, stage: str) -> dict[str, Any]:
        roles = self.roles.resolved()
        used = {
            "seeds": ["seed_generator", "benign_generator"],
            "attack": ["attacker", "refusal_writer", "targets", "harm_judge"],
            "respond": ["query_judge", "responders", "response_judge"],
            "judge": ["filter_judges"],
            "export": [],
        }[stage]
        models = {
            r: [_output_identity(self.models[m]) | {"name": m} for m in roles[r]] for r in used
        }
        return {
            "stage": stage,
            "locale": self.locale,
            "seed": self.seed,
            "section": getattr(self, stage).model_dump(mode="json"),
            "models": models,
        }


_LIST_ROLES = {"targets", "responders", "filter_judges"}
# ModelSpec fields that change how a run is served, not what the model answers: changing them
# (e.g. raising max_concurrency mid-run) does not invalidate any stage.
_SERVING_FIELDS = (
    "max_concurrency",
    "rpm",
    "tpm",
    "timeout",
    "max_retries",
    "api_key_env",
    "price_in_per_1m",
    "price_out_per_1m",
    "retry_backoff",
    "retry_backoff_max",
)


def _output_identity(spec: ModelSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    for key in _SERVING_FIELDS:
        data.pop(key, None)
    options = dict(data.get("options") or {})
    for key in ("max_batch_size", "batch_wait_ms", "device"):  # hf: batching and placement
        options.pop(key, None)
    data["options"] = options
    return data


def _hash(obj: Any) -> str:
    data = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- loading
def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=c`` -> (["a", "b"], yaml value of c)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' is not KEY=VALUE", hint="e.g. --set attack.rounds=2")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML: {exc}") from exc
    return key.strip().split("."), parsed


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return data


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> RunConfig:
    """Read, override and validate a run config (structure, roles and locale references)."""
    where = str(path) if path else "<config>"
    if data is None:
        p = Path(path)  # type: ignore[arg-type]
        if not p.is_file():
            raise ConfigError("config file not found", where=where, hint="check the path")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", where=where) from exc
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping", where=where)
    data = apply_overrides(json.loads(json.dumps(data, default=str)), overrides or [])
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "invalid config:\n" + "\n".join(_render(e) for e in exc.errors()), where=where
        ) from None
    return config


def _render(err: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "extra_forbidden":
        parent_fields = _fields_at(err["loc"][:-1])
        name = str(err["loc"][-1])
        return f"  {loc}: unknown key{did_you_mean(name, parent_fields)}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"  {loc}: {msg}" if loc else f"  {msg}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at a pydantic error location (for "did you mean")."""
    import typing

    model: Any = RunConfig
    skip_key = False
    for part in loc:
        if skip_key:  # the key of a dict of models (e.g. models.<name>)
            skip_key = False
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        args = typing.get_args(ann)
        skip_key = typing.get_origin(ann) is dict
        model = next((a for a in (ann, *args) if hasattr(a, "model_fields")), None)
        if model is None:
            return []
    return [] if skip_key else list(model.model_fields)


def validate_against_locale(config: RunConfig, loc: Any) -> None:
    """Check every locale reference of the config; raise ConfigError naming each problem."""
    problems = []
    cat_ids = [c.id for c in loc.taxonomy.categories]
    type_ids = [t.id for t in loc.taxonomy.types]
    for i, cid in enumerate(config.seeds.categories or []):
        if cid not in cat_ids:
            problems.append(
                f"seeds.categories[{i}]: unknown category '{cid}'{did_you_mean(cid, cat_ids)}"
            )
    for tid in config.seeds.quota:
        if tid not in type_ids:
            problems.append(f"seeds.quota.{tid}: unknown type{did_you_mean(tid, type_ids)}")
    strategies = [s.id for s in loc.tactics.strategies]
    tactics = [t.id for t in loc.tactics.tactics]
    for field, ids, known in (
        ("strategies", config.attack.strategies, strategies),
        ("tactics", config.attack.tactics, tactics),
    ):
        for i, x in enumerate(ids or []):
            if x not in known:
                problems.append(f"attack.{field}[{i}]: unknown id '{x}'{did_you_mean(x, known)}")
    from koalign.stages import REQUIRED_TEMPLATES

    for role in REQUIRED_TEMPLATES:
        if role not in loc.prompts:
            problems.append(f"locale '{loc.id}': prompts/{role}.j2 is missing")
    if problems:
        raise ConfigError("config does not match the locale:\n  " + "\n  ".join(problems))


def load_run_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
):
    """Load the config and its locale, cross-validated. Returns ``(config, locale)``."""
    from koalign.locale import load_locale

    config = load_config(path, overrides, data=data)
    try:
        loc = load_locale(config.locale)
    except LocaleError as exc:
        exc.where = exc.where or f"locale: {config.locale}"
        raise
    validate_against_locale(config, loc)
    return config, loc
