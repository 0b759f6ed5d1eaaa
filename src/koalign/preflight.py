"""Everything a run needs, checked before the first model call (and before the run directory
is created).

:func:`check` creates every model's backend (unknown backend names, bad options, API-key
variables: every missing variable is named at once), checks that every ``hf`` model given as a
local path (and every ``options.adapter``) exists, renders every role's prompt template for
every category of the run (a template that fails to render fails here, not after paid calls),
and checks that each role's longest prompt plus its ``max_tokens`` fits the model's context
window. All problems are collected and raised as one :class:`~koalign.errors.ConfigError`; a
model whose window is unknown (not in the config, not given by its server or its config) is
named in a note (logged as a warning and returned) saying how to give ``context_window``.

:func:`check_offline` is the part of :func:`check` that needs no server and no key (for
``koalign run --dry-run --offline``): backends are created with the API-key variables that are
not set standing in as placeholders, local model paths are checked, templates are rendered;
nothing is contacted, so servers, keys and context windows are not checked (the returned notes
say so).

:func:`plan` estimates the work of a run (records per stage, calls, tokens and, where the
models have prices, cost per model, as upper bounds) for ``koalign run --dry-run``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from koalign import eventloop
from koalign.backends.fit import Fit
from koalign.backends.fit import RolePrompt as FitPrompt
from koalign.backends.limits import estimate_prompt_tokens
from koalign.config import RunConfig
from koalign.errors import ConfigError, KoalignError
from koalign.locale import Locale
from koalign.types import Message

log = logging.getLogger(__name__)

__all__ = [
    "RolePrompt",
    "RunPlan",
    "check",
    "check_offline",
    "create_models",
    "hub_problems",
    "longest_prompts",
    "missing_local_models",
    "plan",
    "unreachable_models",
    "window_fits",
    "window_notes",
    "window_problems",
]


@dataclass(frozen=True)
class RolePrompt:
    """The longest rendered prompt of one role over the run's categories."""

    role: str
    category: str
    messages: tuple[Message, ...]

    @property
    def chars(self) -> int:
        """Characters over all the prompt's messages."""
        return sum(len(m.content) for m in self.messages)


def _categories(config: RunConfig, loc: Locale) -> list[str]:
    wanted = config.section("seeds").categories
    return list(wanted or [c.id for c in loc.taxonomy.categories])


def longest_prompts(config: RunConfig, loc: Locale) -> tuple[dict[str, RolePrompt], list[str]]:
    """For each prompt template the stages render, its longest rendering over the run's
    categories (with the policy's longest worked example as the answer where one is judged).
    Returns ``(prompts by role, problems)``; a template that fails to render is a problem."""
    from koalign.stages.base import all_templates
    from koalign.stages.preview import example_context, render_example

    ctx = example_context(loc, config)
    out: dict[str, RolePrompt] = {}
    problems: list[str] = []
    for role in all_templates():
        if role not in loc.prompts:
            continue  # reported by the config's locale check
        for cat in _categories(config, loc):
            try:
                msgs = render_example(loc, role, cat, ctx=ctx, longest=True)
            except KoalignError as exc:
                problems.append(f"prompts/{role}.j2 (category {cat}): {exc.render()}")
                break
            rp = RolePrompt(role, cat, msgs)
            if role not in out or rp.chars > out[role].chars:
                out[role] = rp
    return out, problems


def _models(config: RunConfig, env: Mapping[str, str]) -> tuple[Any, dict[str, Any], list[str]]:
    """A cache-less model pool and every model created from it (problems named, not raised).

    Each problem names the config entry (``models.gpt``), not the model id several entries may
    share; an environment variable that is not set is one problem, naming every entry that
    needs it (the models are created with stand-ins for those variables, so that their other
    problems are found too; models are only used when there is no problem)."""
    missing = missing_variables(config.models, env)
    stand_ins = dict.fromkeys(missing, "not-set")
    pool, made, problems = create_models(config.models, {**env, **stand_ins})
    lines = [_variable_problem(var, names, config.models) for var, names in missing.items()]
    for name, text in problems.items():
        model_id = f"model '{config.models[name].model}'"
        lines.append(
            f"models.{name}{text.removeprefix(model_id)}" if text.startswith(model_id) else text
        )
    return pool, made, lines


def missing_variables(specs: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, list[str]]:
    """The API-key and header variables (``api_key_env``, ``options.headers_env``) not set in
    ``env``, each with the names of the models that need it, in the order of ``specs``."""
    missing: dict[str, list[str]] = {}
    for name, spec in specs.items():
        for var in spec.secret_env_vars():
            if not env.get(var):
                missing.setdefault(var, []).append(name)
    return missing


def _variable_problem(var: str, names: list[str], specs: Mapping[str, Any]) -> str:
    needs = [specs[n] for n in names]
    how = "api_key_env names the variable, never its value"
    if any(var != s.api_key_env for s in needs):
        how = "api_key_env and headers_env name the variables, never the values"
    local = any(var == s.api_key_env and not s.base_url for s in needs)
    return (
        f"{', '.join(f'models.{n}' for n in names)}: the environment variable {var} is not set "
        f"(export {var}=...; {how}{', or set base_url for a local server' if local else ''})"
    )


def create_models(
    specs: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """Create every model of ``specs`` (name -> ModelSpec) from a cache-less pool, as a run or an
    evaluation would before its first call: unknown backends, bad options, missing API-key
    variables. Returns ``(pool, models by name, problem by name)``; close the pool after."""
    from koalign.backends.client import ModelPool

    pool = ModelPool(specs, env=dict(env))
    made: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in specs:
        try:
            made[name] = pool.get(name)
        except KoalignError as exc:
            problems[name] = exc.render()
    return pool, made, problems


_SCHEMAS = {
    "harm_judge": "HARM_SCHEMA",
    "query_judge": "QUERY_SCHEMA",
    "response_judge": "RESPONSE_SCHEMA",
    "filter_judge": "FILTER_SCHEMA",
}


def _template_role(template: str) -> str:
    # every template is named after the role that uses it, but for the list roles
    return {"responder": "responders", "filter_judge": "filter_judges"}.get(template, template)


# Generated texts a template embeds (by the role that writes them): the window check adds
# their max_tokens to the rendered prompt, so a long real answer cannot overflow a judge.
EMBEDS = {
    "attacker": ("seed_generator",),
    "refusal_writer": ("seed_generator",),
    "harm_judge": ("attacker", "targets"),
    "query_judge": ("attacker",),
    "responder": ("attacker",),
    "response_judge": ("attacker", "responders"),
    "filter_judge": ("attacker", "targets", "responders"),
}


def _budget(config: RunConfig, models: dict[str, Any], role: str) -> int:
    """The largest answer budget (max_tokens) among a role's models."""
    best = 0
    for m in config.roles.resolved().get(role, []):
        llm = models.get(m)
        if llm is not None:
            best = max(best, llm.spec.sampling.max_tokens or llm.backend.default_max_tokens() or 0)
    return best


def role_prompts(
    config: RunConfig, prompts: dict[str, RolePrompt], models: dict[str, Any]
) -> dict[str, list[FitPrompt]]:
    """Model name -> the longest prompt of each role it serves, as the model layer's
    :class:`~koalign.backends.fit.RolePrompt` (schema contract and quoted texts included)."""
    from koalign.stages import verdicts

    roles = config.roles.resolved()
    out: dict[str, list[FitPrompt]] = {}
    for template, rp in sorted(prompts.items()):
        role = _template_role(template)
        schema = getattr(verdicts, _SCHEMAS[template]) if template in _SCHEMAS else None
        reserved = sum(_budget(config, models, r) for r in EMBEDS.get(template, ()))
        for model in roles.get(role, []):
            out.setdefault(model, []).append(
                FitPrompt(
                    role=role,
                    messages=rp.messages,
                    json_schema=schema,
                    label=f"prompts/{template}.j2, category {rp.category}",
                    reserved_tokens=reserved,
                )
            )
    # a target gets no template: its prompt is a seed or the attacker's rewrite, each at most
    # its generator's max_tokens
    quoted = max(_budget(config, models, r) for r in ("seed_generator", "attacker"))
    for model in roles.get("targets", []):
        out.setdefault(model, []).append(
            FitPrompt(
                role="targets",
                messages=(Message(role="user", content=""),),
                label="a seed or the attacker's rewrite, no template",
                reserved_tokens=quoted,
            )
        )
    return out


def window_fits(
    config: RunConfig, prompts: dict[str, RolePrompt], models: dict[str, Any]
) -> list[Fit]:
    """Each role's longest prompt (with room for the texts it quotes) plus ``max_tokens``
    measured against each of its models' context window (:func:`koalign.backends.fit.check_fit`).

    Called inside a running event loop (a library caller that builds a pipeline in async code),
    the windows cannot be read from the servers here: the windows written in the config
    (``context_window``) are used, and a model without one is measured as having an unknown
    window (see :func:`window_notes`)."""
    import asyncio

    from koalign.backends.fit import check_fit, fit_in

    wanted = [
        (m, p)
        for m, ps in sorted(role_prompts(config, prompts, models).items())
        if m in models
        for p in ps
    ]

    async def measure() -> list[Fit]:
        return list(await asyncio.gather(*(check_fit(models[m], p) for m, p in wanted)))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return eventloop.run(measure())
    return [fit_in(models[m], p, models[m].spec.context_window) for m, p in wanted]


def window_problems(
    config: RunConfig, prompts: dict[str, RolePrompt], models: dict[str, Any]
) -> list[str]:
    """Roles whose longest prompt (with room for the texts it quotes) plus ``max_tokens`` does
    not fit a model's context window (see :func:`window_fits`)."""
    return _misfits(window_fits(config, prompts, models))


def _misfits(fits: list[Fit]) -> list[str]:
    return [f"roles.{f.role}: {f.message()}" for f in fits if f.fits is False]


def window_notes(fits: list[Fit], models: dict[str, Any]) -> list[str]:
    """One note per model whose context window is unknown (its prompts were not checked), saying
    how to give it; scripted test backends have no window and get none."""
    from koalign.backends.fit import has_window, unknown_window_note

    unknown = sorted({f.model for f in fits if f.window is None})
    return [unknown_window_note(m) for m in unknown if m in models and has_window(models[m])]


def unreachable(config: RunConfig, timeout_s: float = 3.0) -> list[str]:
    """Models whose server refuses connections (a TCP connect to the ``base_url``'s host and
    port; no HTTP request is made, nothing is paid)."""
    return [
        f"models.{name}: {problem}"
        for name, problem in unreachable_models(config.models, timeout_s).items()
    ]


def unreachable_models(specs: Mapping[str, Any], timeout_s: float = 3.0) -> dict[str, str]:
    """Name -> problem for each model of ``specs`` (name -> ModelSpec) whose ``base_url``
    refuses a TCP connection (one connect per host and port; no HTTP request, nothing paid)."""
    import socket
    from urllib.parse import urlsplit

    problems: dict[str, str] = {}
    tried: dict[tuple[str, int], str | None] = {}
    for name, spec in specs.items():
        if not spec.base_url:
            continue
        parts = urlsplit(spec.base_url)
        if not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.hostname, port)
        if key not in tried:
            try:
                socket.create_connection(key, timeout=timeout_s).close()
                tried[key] = None
            except OSError as exc:
                tried[key] = exc.strerror or str(exc)
        if tried[key] is not None:
            problems[name] = (
                f"cannot connect to {spec.base_url} ({tried[key]}): start the server, or fix "
                "base_url"
            )
    return problems


def _looks_local(model: str) -> bool:
    """Whether an ``hf`` model name is meant as a local path (not a hub id such as
    ``Qwen/Qwen2.5-7B``): a path that exists (``models/qwen`` for a folder there, as
    transformers loads it), or one written as a path: absolute, ``./``/``../``/``~`` relative,
    more than one ``/``, or a ``.gguf`` file. ``org/name`` that does not exist is a hub id."""
    from pathlib import Path

    return (
        Path(model).expanduser().exists()
        or model.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or model in {".", ".."}
        or model.count("/") >= 2  # a hub id is ORG/NAME
        or model.lower().endswith(".gguf")
        or (len(model) > 2 and model[1] == ":" and model[2] in "/\\")  # C:/...
    )


def missing_local_models(specs: Mapping[str, Any]) -> dict[str, str]:
    """Name -> problem for each ``hf`` model of ``specs`` (name -> ModelSpec) whose ``model`` is
    a local path (see :func:`_looks_local`) that is neither a file nor a folder, and for each
    ``options.adapter`` folder that does not exist. Nothing is loaded."""
    from pathlib import Path

    problems: dict[str, str] = {}
    for name, spec in specs.items():
        if spec.backend != "hf":
            continue
        path = Path(spec.model).expanduser()
        if _looks_local(spec.model) and not path.exists():
            problems[name] = (
                f"local model path {spec.model} does not exist: give an existing model folder "
                "or file (or a hub id such as Qwen/Qwen2.5-7B-Instruct)"
            )
            continue
        adapter = spec.options.get("adapter")
        if adapter and not Path(str(adapter)).expanduser().is_dir():
            problems[name] = f"adapter folder {adapter} does not exist: give a PEFT adapter folder"
    return problems


def hub_problems(
    specs: Mapping[str, Any],
    *,
    offline: bool | None = None,
    endpoint: str | None = None,
    cache_dir: str | None = None,
    timeout_s: float = 5.0,
) -> dict[str, str]:
    """Name -> problem for each ``hf`` model of ``specs`` given as a Hub id (not a local path)
    that cannot be had: not in the local Hugging Face cache while offline mode is on
    (``HF_HUB_OFFLINE``), or while the Hub does not answer, or unknown to the Hub. Without this
    check transformers retries an unreachable Hub for each file before failing (minutes).

    The Hub is asked once per model id (``model_info``, ``timeout_s``, no retry, nothing
    downloaded); in offline mode nothing is asked. A cached model while the Hub does not answer
    is no problem, but is logged: transformers retries the Hub before it uses the cache.
    ``offline``, ``endpoint`` and ``cache_dir`` default to huggingface_hub's settings
    (``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, ``HF_HOME``)."""
    users: dict[str, list[str]] = {}
    for name, spec in specs.items():
        if spec.backend == "hf" and not _looks_local(spec.model):
            users.setdefault(spec.model, []).append(name)
    if not users:
        return {}
    try:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
    except ImportError:  # the hf backend names its missing extra when it is created
        return {}
    offline = constants.HF_HUB_OFFLINE if offline is None else offline
    endpoint = endpoint or constants.ENDPOINT
    cache = cache_dir or constants.HF_HUB_CACHE
    problems: dict[str, str] = {}
    fix = (
        "give a local model folder instead, or download it where the Hub is reachable (`hf "
        f"download {{model}}`) into the cache ({cache})"
    )
    missing = uncached_hub_models(specs, cache_dir)
    for model, names in users.items():
        cached = not any(name in missing for name in names)
        reason = None
        if offline:
            reason = None if cached else "offline mode is on (HF_HUB_OFFLINE)"
        else:
            try:
                HfApi(endpoint=endpoint).model_info(model, timeout=timeout_s)
            except RepositoryNotFoundError:
                for name in names:
                    problems[name] = (
                        f"no model {model} on the Hub ({endpoint}): check the id; for a private "
                        "model log in first (`hf auth login`), or give a local model folder"
                    )
                continue
            except HfHubHTTPError:
                pass  # the Hub answered (gated, rate limited ...): transformers says what to do
            except Exception as exc:  # no answer: DNS, connection refused, timeout, proxy
                if cached:
                    log.warning(
                        "the Hugging Face Hub (%s) does not answer (%s): %s is in the local "
                        "cache, but transformers retries the Hub for each file before using it "
                        "(minutes); set HF_HUB_OFFLINE=1 to load it from the cache at once",
                        endpoint, exc, model,
                    )  # fmt: skip
                else:
                    reason = f"the Hub ({endpoint}) does not answer ({exc})"
        if reason:
            for name in names:
                problems[name] = (
                    f"{model} is not in the local Hugging Face cache and {reason}: "
                    + fix.format(model=model)
                )
    return problems


def uncached_hub_models(specs: Mapping[str, Any], cache_dir: str | None = None) -> dict[str, str]:
    """Name -> Hub id for each ``hf`` model of ``specs`` given as a Hub id whose weights are not
    in the local Hugging Face cache (``cache_dir``, default huggingface_hub's). Nothing is
    asked of the Hub; ``{}`` without huggingface_hub."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return {}
    out = {}
    for name, spec in specs.items():
        if spec.backend == "hf" and not _looks_local(spec.model):
            weights = str(spec.options.get("gguf_file") or "config.json")
            if not isinstance(
                try_to_load_from_cache(spec.model, weights, cache_dir=cache_dir), str
            ):
                out[name] = spec.model
    return out


def _close(pool: Any) -> None:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pool.close()


def _missing_paths(config: RunConfig) -> list[str]:
    return [f"models.{name}: {text}" for name, text in missing_local_models(config.models).items()]


def check(
    config: RunConfig,
    loc: Locale,
    *,
    env: Mapping[str, str] | None = None,
    log_notes: bool = True,
) -> list[str]:
    """Raise one ConfigError naming every problem found (see the module docstring).

    Returns:
        Notes (also logged as warnings unless ``log_notes`` is false, for a caller that shows
        them itself): the models whose context window is unknown, so that their prompts could
        not be checked against it, each with how to give it.
    """
    import os

    notes: list[str] = []
    pool, models, problems = _models(config, os.environ if env is None else env)
    problems += _missing_paths(config)
    if not problems:  # before any model file is read: an unreachable Hub is retried for minutes
        problems += [f"models.{n}: {text}" for n, text in hub_problems(config.models).items()]
    prompts, render_problems = longest_prompts(config, loc)
    problems += render_problems
    if not problems:
        problems += unreachable(config)
    if not problems:  # sizes only once every model and template is right (no request before)
        fits = window_fits(config, prompts, models)
        problems += _misfits(fits)
        notes = window_notes(fits, models)
    _close(pool)
    if problems:
        raise ConfigError(
            "the run cannot start:\n  " + "\n  ".join(problems),
            hint="nothing was called and no run directory was created; fix these and rerun",
        )
    if log_notes:
        for note in notes:
            log.warning("%s", note)
    return notes


#: What an offline dry run does not check (``koalign run --dry-run --offline``).
NOT_CHECKED_OFFLINE = ("servers", "api_keys", "context_windows")


def check_offline(
    config: RunConfig, loc: Locale, *, env: Mapping[str, str] | None = None
) -> list[str]:
    """The checks of :func:`check` that contact nothing and need no API key: every model's
    backend is created (unknown backends, bad options, missing extras; an API-key or
    ``headers_env`` variable that is not set is not a problem here), every template is rendered for every category.

    Returns:
        Notes saying what was not checked: servers, API keys (the variables the run needs, and
        which of them are not set in ``env``) and context windows.

    Raises:
        ConfigError: naming every problem found, as :func:`check`.
    """
    import os

    env = dict(os.environ if env is None else env)
    keys = sorted({v for s in config.models.values() for v in s.secret_env_vars()})
    unset = [k for k in keys if not env.get(k)]
    # stand-ins so that backends can be created; they are closed unused, nothing is sent
    pool, _, problems = _models(config, {**env, **dict.fromkeys(unset, "not-checked")})
    _close(pool)
    problems += _missing_paths(config)
    problems += longest_prompts(config, loc)[1]
    if problems:
        raise ConfigError(
            "the run cannot start:\n  " + "\n  ".join(problems),
            hint="nothing was called and no run directory was created; fix these and rerun",
        )
    notes = [
        "offline: no server was contacted and no API key was checked, nor any context window; "
        "run --dry-run without --offline where the servers are up and the keys are set"
    ]
    if keys:
        missing = f" (not set here: {', '.join(unset)})" if unset else ""
        notes.append(f"API-key and header variables the run needs: {', '.join(keys)}{missing}")
    uncached = uncached_hub_models(config.models)
    if uncached:
        listed = ", ".join(f"models.{n} ({m})" for n, m in uncached.items())
        notes.append(
            f"not in this machine's Hugging Face cache: {listed}; the run downloads them from "
            "the Hub, or stops before loading anything where the Hub cannot be reached"
        )
    return notes


# ----------------------------------------------------------------------------- dry run
@dataclass
class RunPlan:
    """Upper bounds of a run's work (``koalign run --dry-run``)."""

    records: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    tokens_in: dict[str, int] = field(default_factory=dict)
    tokens_out: dict[str, int] = field(default_factory=dict)
    cost: dict[str, float | None] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    half_priced: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the plan: ``records`` per stage, ``roles`` -> models, per model the
        upper bounds ``calls_at_most``, ``tokens_in_at_most``, ``tokens_out_at_most`` and
        ``cost_at_most`` (in the models' price currency; None for a model without prices),
        ``cost_at_most`` of the priced models together (None when no model has a price),
        ``unpriced`` (the models without a price, left out of that total), ``half_priced``
        (models with only one of the two prices; the other counts as 0) and ``notes``."""
        priced = [c for c in self.cost.values() if c is not None]
        return {
            "records": self.records,
            "roles": self.roles,
            "models": {
                m: {
                    "calls_at_most": self.calls[m],
                    "tokens_in_at_most": self.tokens_in.get(m, 0),
                    "tokens_out_at_most": self.tokens_out.get(m, 0),
                    "cost_at_most": self.cost.get(m),
                }
                for m in sorted(self.calls)
            },
            "cost_at_most": round(sum(priced), 6) if priced else None,
            "unpriced": sorted(m for m in self.calls if self.cost.get(m) is None),
            "half_priced": sorted(self.half_priced),
            "notes": self.notes,
        }


def plan(config: RunConfig, loc: Locale, *, limit: int | None = None) -> RunPlan:
    """Records per stage and calls/tokens per model, as upper bounds, without any call."""
    from koalign.stages.preview import example_context
    from koalign.stages.seeds import STAGE as SEEDS

    ctx = example_context(loc, config)
    ctx.limit = limit
    items = SEEDS.plan(ctx, None)
    roles = config.roles.resolved()
    prompts, _ = longest_prompts(config, loc)
    rp = RunPlan(roles=roles)
    harmful = sum(1 for i in items if i.kind == "harmful")
    benign_gen = sum(1 for i in items if i.kind == "benign" and i.source == "generated")
    benign = sum(1 for i in items if i.kind == "benign")
    attack_cfg = config.section("attack")
    rounds = attack_cfg.rounds
    targets = roles["targets"]
    cases = (harmful + benign) * (len(targets) if attack_cfg.keep == "all" else 1)
    rp.records = {"seeds": len(items), "attack": harmful + benign, "respond": cases,
                  "judge": cases, "export": cases}  # fmt: skip

    def add(
        role: str, n: int, template: str | None = None, models: list[str] | None = None
    ) -> None:
        for m in models if models is not None else roles[role]:
            spec = config.models[m]
            rp.calls[m] = rp.calls.get(m, 0) + n
            tin = (
                estimate_prompt_tokens([m.content for m in prompts[template].messages])
                if template in prompts
                else 0
            )
            rp.tokens_in[m] = rp.tokens_in.get(m, 0) + n * tin
            rp.tokens_out[m] = rp.tokens_out.get(m, 0) + n * (spec.sampling.max_tokens or 0)

    add("seed_generator", harmful, "seed_generator")
    add("benign_generator", benign_gen, "benign_generator")
    add("attacker", harmful * rounds, "attacker")
    rewrite = config.models[roles["attacker"][0]].sampling.max_tokens or 0
    for m in targets:  # a target's prompt is a rewrite: at most the attacker's max_tokens
        add("targets", harmful * rounds + benign, models=[m])
        rp.tokens_in[m] += (harmful * rounds + benign) * rewrite
    add("harm_judge", (harmful * rounds + benign) * len(targets), "harm_judge")
    add("refusal_writer", benign, "refusal_writer")
    add("query_judge", cases, "query_judge")
    add("responders", cases, "responder")
    add("response_judge", cases * len(roles["responders"]), "response_judge")
    add("filter_judges", cases, "filter_judge")
    for m in rp.calls:
        spec = config.models[m]
        if spec.price_in_per_1m is None and spec.price_out_per_1m is None:
            rp.cost[m] = None
        else:
            if spec.price_in_per_1m is None or spec.price_out_per_1m is None:
                rp.half_priced.append(m)
            cost = rp.tokens_in[m] * (spec.price_in_per_1m or 0.0) + rp.tokens_out[m] * (
                spec.price_out_per_1m or 0.0
            )
            rp.cost[m] = round(cost / 1e6, 6)
    rp.notes = [
        "upper bounds: every seed kept, every round run, every case passed on; real runs drop "
        "seeds, stop attacking a target once it is broken and filter cases",
        "tokens_in from each role's longest prompt (conservative estimate where the tokenizer "
        "is not local); tokens_out from max_tokens (0 when unset)",
        "JSON repairs and retries come on top",
        "cost from the models' price_in_per_1m and price_out_per_1m (in their currency; n/a "
        "for a model without prices)",
    ]
    return rp
