"""The run configuration: one YAML file, validated before any model call.

The config's shape comes from the stage registry (:mod:`koalign.stages.base`): one section per
registered stage (its ``Config`` model) and one ``roles:`` entry per role a stage declares, next
to ``locale``, ``seed``, ``models`` and ``runtime``. :func:`load_config` reads the YAML, refuses
unknown top-level keys before anything else, applies ``--set a.b=c`` overrides (values are
YAML, so ``--set attack.rounds=2`` gives an int) and validates everything: unknown keys, roles
naming undeclared models, locale references. Every error names its config path and suggests the
closest valid name (a sampling parameter written at model level points under ``sampling:``), and
is blamed on the ``--set`` override that caused it, not on the file, when one did.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from koalign.backends.base import ModelSpec, SamplingParams
from koalign.errors import ConfigError, LocaleError, did_you_mean
from koalign.jsonio import digest
from koalign.stages.base import all_roles, all_templates, get_stage, stages
from koalign.yamlio import apply_overrides, load_yaml


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuntimeConfig(_Section):
    """The ``runtime:`` section: how the run is executed (never what it produces)."""

    max_inflight: int = Field(256, ge=1, description="Records processed at once per stage.")
    max_error_rate: float = Field(
        0.2, ge=0, le=1, description="A stage fails when bad outputs / model outputs exceed this."
    )
    fsync: bool = Field(True, description="fsync stage records (in groups) for crash safety.")
    fsync_interval_ms: float = Field(
        50.0, gt=0, le=1000, description="Stage records are fsynced in groups at most this often."
    )
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
    stop_grace_s: float = Field(
        5.0,
        ge=0,
        description="After SIGINT/SIGTERM, seconds the calls in flight get to finish before "
        "they are cancelled (nothing new starts once a signal arrived).",
    )
    on_truncation: dict[str, Literal["retry", "drop"]] = Field(
        default_factory=dict,
        description="Per role (e.g. {responders: drop}), what to do with an answer cut at "
        "max_tokens: 'retry' once with twice the budget (the default for every role), or "
        "'drop' it at once. Either way a cut answer never becomes data: it is a counted "
        "'truncated' output.",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="The event loop the run's calls go through: 'auto' is uvloop where it is "
        "installed (Linux, macOS; less CPU per request when answers come fast) and asyncio's own "
        "loop elsewhere; 'asyncio' forces asyncio's loop; 'uvloop' requires uvloop.",
    )
    chunk_size: int | None = Field(
        None,
        ge=1,
        description="Items per fixed chunk for stages that call a local batched model (default: "
        "that model's max_batch_size). Chunks make local sampling independent of timing.",
    )

    @field_validator("event_loop")
    @classmethod
    def _uvloop_installed(cls, value: str) -> str:
        import importlib.util

        if value == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ValueError(
                "'uvloop' is not installed here: pip install uvloop, or set 'auto' (uvloop "
                "where installed) or 'asyncio'"
            )
        return value


class PolicyView(_Section):
    """The ``policy:`` section: how much of each category's safe-response policy the prompts
    carry (the responder's system prompt and the judges' policy summary)."""

    view: Literal["full", "compact"] = Field(
        "full",
        description="'full': every principle, statute text, group, contact, procedure and worked "
        "example; 'compact': the first items of each, statutes by name and article only (for "
        "models with small context windows, e.g. 8k tokens).",
    )
    few_shot: int | None = Field(
        None, ge=0, description="Worked examples to include (default: all for full, 0 for compact)."
    )


class RolesBase(_Section):
    """Base of the ``roles:`` section; its fields come from the registered stages' roles."""

    def resolved(self) -> dict[str, list[str]]:
        """Every role with its models (defaults applied), as lists."""
        specs = all_roles()
        out: dict[str, list[str]] = {}

        def value(name: str, depth: int = 0) -> list[str]:
            v = getattr(self, name, None)
            if v is None:
                spec = specs[name]
                if spec.default is None or depth > len(specs):
                    return []
                return value(spec.default, depth + 1)
            return list(v) if isinstance(v, list) else [v]

        for name in specs:
            out[name] = value(name)
        return out


class RunConfig(_Section):
    """A run config. Stage sections (``seeds``, ``attack`` ...) are added from the stage
    registry by :func:`run_config_model`; read them with :meth:`section`."""

    locale: str = Field("ko", description="Locale pack name or folder.")
    seed: int = Field(0, description="Random seed for every sampling decision.")
    models: dict[str, ModelSpec] = Field(min_length=1, description="Named models.")
    roles: RolesBase
    policy: PolicyView = Field(default_factory=PolicyView)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    def section(self, stage: str) -> Any:
        """The config section of a registered stage."""
        return getattr(self, stage)

    @model_validator(mode="after")
    def _roles_name_models(self) -> RunConfig:
        specs = all_roles()
        problems = []
        for role, names in self.roles.resolved().items():
            for i, name in enumerate(names):
                if name not in self.models:
                    many = specs[role].many
                    field = f"{role}[{i}]" if many else role
                    problems.append(
                        f"roles.{field}: unknown model '{name}'{did_you_mean(name, self.models)}"
                    )
        for role in self.runtime.on_truncation:
            if role not in specs:
                problems.append(
                    f"runtime.on_truncation.{role}: unknown role{did_you_mean(role, specs)}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage_hash(self, stage: str) -> str:
        """Hash of everything that changes ``stage``'s output (not later stages' settings)."""
        return digest(self.stage_inputs(stage))

    def stage_inputs(self, stage: str) -> dict[str, Any]:
        """What a stage's output depends on: its section, its roles' models, seed, locale."""
        roles = self.roles.resolved()
        used = [r.name for r in get_stage(stage).roles]
        models = {
            r: [_output_identity(self.models[m]) | {"name": m} for m in roles.get(r, [])]
            for r in used
        }
        out = {
            "stage": stage,
            "locale": self.locale,
            "seed": self.seed,
            "section": self.section(stage).model_dump(mode="json"),
            "models": models,
        }
        if get_stage(stage).uses_policy:
            out["policy"] = self.policy.model_dump(mode="json")
        return out


@functools.lru_cache(maxsize=16)
def _model_for(key: tuple[tuple[str, int], ...]) -> type[RunConfig]:
    role_fields: dict[str, Any] = {}
    for spec in all_roles().values():
        typ: Any = list[str] if spec.many else str
        if spec.default is None:
            role_fields[spec.name] = (typ, Field(description=spec.description))
        else:
            role_fields[spec.name] = (typ | None, Field(None, description=spec.description))
    roles_model = create_model("Roles", __base__=RolesBase, **role_fields)
    fields: dict[str, Any] = {"roles": (roles_model, ...)}
    for s in stages():
        fields[s.name] = (s.Config, Field(default_factory=s.Config, description=s.summary))
    return create_model("RunConfig", __base__=RunConfig, **fields)


def run_config_model() -> type[RunConfig]:
    """The RunConfig model of the stages registered now (cached per registry state)."""
    return _model_for(tuple((s.name, id(s.Config)) for s in stages()))


def top_level_keys() -> list[str]:
    """The keys a run config may have at its top level."""
    return list(run_config_model().model_fields)


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
    "context_window",
)
# RuntimeConfig changes how a run is executed, never its output, so no stage hash includes it.


def _output_identity(spec: ModelSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    for key in _SERVING_FIELDS:
        data.pop(key, None)
    options = dict(data.get("options") or {})
    for key in ("max_batch_size", "batch_wait_ms", "device"):  # hf: batching and placement
        options.pop(key, None)
    data["options"] = options
    return data


# ----------------------------------------------------------------------------- loading
def read_config_file(path: str | Path) -> dict[str, Any]:
    """A run config file as a mapping, read by the bounded YAML reader
    (:func:`koalign.yamlio.load_yaml`: size and alias limits, duplicate keys refused, YAML 1.2
    floats, non-UTF-8 named with the ``iconv`` fix)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config file not found", where=str(p), hint="check the path")
    data = load_yaml(p, where=str(p)) or {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping", where=str(p))
    return data


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> RunConfig:
    """Read, override and validate a run config (structure, roles and models).

    Raises :class:`ConfigError` naming every problem (config path, did-you-mean).
    """
    where = str(path) if path else "<config>"
    if data is None:
        if path is None:
            raise ConfigError("no config given", hint="pass a config file")
        data = read_config_file(path)
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping", where=where)
    known = top_level_keys()
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            "invalid config:\n"
            + "\n".join(f"  {k}: unknown key{did_you_mean(str(k), known)}" for k in unknown),
            where=where,
            hint=f"top-level keys: {', '.join(known)}",
        )
    original = data
    data = apply_overrides(copy.deepcopy(data), overrides or [])
    _no_new_partial_models(original, data, overrides or [])
    model = run_config_model()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, model, where, original, overrides or []) from None


def _invalid(
    exc: ValidationError,
    model: type[BaseModel],
    where: str,
    original: dict[str, Any],
    overrides: list[str],
) -> ConfigError:
    """One ConfigError for every validation error, each blamed on what caused it: the file, or
    the ``--set`` override behind it (named as typed on the command line). An error is the
    file's own when validating the file without the overrides gives it too."""
    file_lines: set[str] = set()
    if overrides:
        try:
            model.model_validate(original)
        except ValidationError as plain:
            file_lines = {render_error(e, model) for e in plain.errors()}
    from_file: list[str] = []
    from_set: list[tuple[str, str]] = []
    for err in exc.errors():
        line = render_error(err, model)
        if not overrides or line in file_lines:
            from_file.append(line)
        else:
            from_set.append((line, _override_cause(tuple(err["loc"]), overrides)))
    causes = list(dict.fromkeys(c for _, c in from_set))
    if not from_file:
        one = len(causes) == 1 and causes[0] != ""
        lines = [line if one else _tagged(line, c) for line, c in from_set]
        return ConfigError(
            ("invalid override:\n" if one else "invalid --set overrides:\n") + "\n".join(lines),
            where=f"--set {causes[0]}" if one else "--set",
            hint=(
                f"{where if where != '<config>' else 'the config'} itself is valid; "
                if not file_lines
                else ""
            )
            + f"fix or drop the override{'' if one else 's'}",
        )
    lines = from_file + [_tagged(line, c) for line, c in from_set]
    return ConfigError("invalid config:\n" + "\n".join(lines), where=where)


def _no_new_partial_models(
    original: dict[str, Any], data: dict[str, Any], overrides: list[str]
) -> None:
    """Refuse a ``--set models.NAME.KEY=...`` that names a model the config does not declare
    (a typo, most likely) unless the overrides give the new model its backend: a new model is
    declared on purpose by its backend (its other missing fields are then reported as such)."""
    before = original.get("models")
    after = data.get("models")
    if not isinstance(after, dict):
        return
    known = [str(k) for k in before] if isinstance(before, dict) else []
    required = [n for n, f in ModelSpec.model_fields.items() if f.is_required()]
    for name, entry in after.items():
        if str(name) in known or not isinstance(entry, dict):
            continue
        if "backend" in entry:
            continue  # a new model, declared on purpose
        cause = next(
            (
                t
                for t in overrides
                if t.partition("=")[0].strip().split(".")[:2] == ["models", str(name)]
            ),
            None,
        )
        if cause is None:
            continue
        missing = ", ".join(f"models.{name}.{k}" for k in required if k not in entry)
        raise ConfigError(
            f"no model '{name}' in the config{did_you_mean(str(name), known)}",
            where=f"--set {cause}",
            hint=(f"models: {', '.join(known)}; " if known else "the config declares no models; ")
            + f"to add a model, set {missing} as well",
        )


def _tagged(line: str, override: str) -> str:
    return f"{line} [--set {override}]" if override else f"{line} [--set]"


def _override_cause(loc: tuple[Any, ...], overrides: list[str]) -> str:
    """The ``--set`` override (as typed) behind the error at ``loc``: the last one whose key is
    on the path to ``loc`` (or, for a missing key, to the mapping it belongs to); when none is,
    the one override given, else ``""``."""
    path = [str(x) for x in loc]
    for size in (len(path), len(path) - 1):
        for text in reversed(overrides):  # the last override touching loc is the one that stuck
            parts = text.partition("=")[0].strip().split(".")
            n = min(len(parts), size)
            if n and parts[:n] == path[:n]:
                return text
    return overrides[0] if len(overrides) == 1 else ""


def render_error(err: Any, model: type[BaseModel]) -> str:
    """One line for a pydantic validation error of ``model``: the dotted key and the message,
    an unknown key with its did-you-mean (a sampling parameter at model level is pointed to
    ``sampling``)."""
    loc = ".".join(str(x) for x in err["loc"])
    if err["type"] == "extra_forbidden":
        parent = _model_at(err["loc"][:-1], model)
        name = str(err["loc"][-1])
        hint = did_you_mean(name, list(parent.model_fields) if parent else [])
        if parent is ModelSpec and (not hint or name in SamplingParams.model_fields):
            # a sampling parameter at model level belongs under sampling:
            close = difflib.get_close_matches(name, list(SamplingParams.model_fields), 1, 0.6)
            if close:
                prefix = ".".join(str(x) for x in (*err["loc"][:-1], "sampling"))
                hint = f" (did you mean '{prefix}.{close[0]}'?)"
        return f"  {loc}: unknown key{hint}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"  {loc}: {msg}" if loc else f"  {msg}"


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model at a pydantic error location, or None (a dict key, a plain value)."""
    import typing

    model: Any = root
    skip_key = False
    for part in loc:
        if skip_key:  # the key of a dict of models (e.g. models.<name>)
            skip_key = False
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        args = typing.get_args(ann)
        skip_key = typing.get_origin(ann) is dict
        model = next((a for a in (ann, *args) if hasattr(a, "model_fields")), None)
        if model is None:
            return None
    return None if skip_key else model


def validate_against_locale(config: RunConfig, loc: Any) -> None:
    """Check every locale reference of the config (each stage checks its own section, every
    prompt template the stages render must exist); raise ConfigError naming each problem."""
    problems: list[str] = []
    for s in stages():
        problems += s.validate(config, loc)
    for role in all_templates():
        if role not in loc.prompts:
            problems.append(f"locale '{loc.id}': prompts/{role}.j2 is missing")
    if problems:
        raise ConfigError("config does not match the locale:\n  " + "\n  ".join(problems))


def load_run_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> tuple[RunConfig, Any]:
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
