"""Model specs on the evaluation command line.

A SPEC is either

* the name of a model declared in a config file (``--config FILE`` with a top-level
  ``models:`` mapping of name -> :class:`~koalign.backends.base.ModelSpec` fields), or
* the shorthand ``BACKEND:MODEL[@BASE_URL][?KEY=VALUE&...]``:

  ======================================================  =====================================
  ``hf:/models/qwen2.5-7b``                               local transformers model (path/hub id)
  ``hf:/models/base?device=cuda&dtype=bfloat16``          with backend options
  ``openai:gpt-4.1``                                      OpenAI API (key from the backend's env)
  ``openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1``  any OpenAI-compatible server
  ``openai:judge@http://host/v1?api_key_env=MY_KEY&rpm=60``  ModelSpec fields as query keys
  ======================================================  =====================================

  Query keys that are :class:`ModelSpec` fields (``api_key_env``, ``rpm``, ``tpm``,
  ``max_concurrency``, ``timeout``, ``json_mode`` ...) set that field; any other key goes to
  ``options`` (e.g. hf ``device``, ``dtype``, ``adapter``). Values are read as YAML scalars
  (``8`` is an int, ``true`` a bool).

  A SPEC never shows its secrets: where it is printed or stored (messages, the model's name in
  ``summary.json``, the call cache) the ``user:password@`` of its URL and the value of a
  ``headers`` key read ``**********`` (:func:`shown_spec`). Prefer
  ``headers_env`` (``?headers_env={X-Key: MY_VAR}``), which names the environment variable.

``--adapter DIR`` adds ``options.adapter`` (a PEFT adapter folder) to an ``hf`` spec.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from pydantic import ValidationError

from koalign.backends.base import ModelSpec
from koalign.errors import HIDDEN, ConfigError, did_you_mean, hide_secrets
from koalign.types import SamplingParams
from koalign.yamlio import load_yaml

_SHORTHAND = re.compile(r"^(?P<backend>[a-z][a-z0-9_\-]*):(?P<rest>.+)$")


def load_model_config(path: Path | None) -> dict[str, ModelSpec]:
    """The ``models:`` mapping of a YAML config file (other top-level keys are ignored)."""
    if path is None:
        return {}
    data = load_yaml(path) or {}
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ConfigError(
            "no top-level 'models:' mapping",
            where=str(path),
            hint="declare models as `models: {name: {backend: ..., model: ...}}`",
        )
    from koalign.config import render_error  # unknown keys with a did-you-mean

    specs = {}
    problems: list[str] = []
    for name, body in models.items():
        try:
            specs[str(name)] = ModelSpec.model_validate(body)
        except ValidationError as exc:
            problems += [
                f"  models.{name}.{render_error(e, ModelSpec).strip()}"
                for e in _unknown_first(exc.errors())
            ]
    if problems:
        raise ConfigError("invalid models:\n" + "\n".join(problems), where=str(path))
    return specs


def _unknown_first(errors: list[Any]) -> list[Any]:
    """Pydantic's errors with unknown keys first (a misspelt key also makes its field missing:
    the misspelling is the problem to fix)."""
    return sorted(errors, key=lambda e: e["type"] != "extra_forbidden")


def _scalar(text: str) -> Any:
    try:
        return load_yaml(text, where="--model")
    except ConfigError:
        return text


#: Query keys whose values are secrets (options.headers: sent, never shown).
_SECRET_KEYS = frozenset({"headers"})


def shown_spec(text: str) -> str:
    """``text`` as it may be printed or stored: the credentials of its URL and the values of its
    ``headers`` query keys (however the key is escaped) replaced by ``**********``."""
    head, sep, query = text.partition("?")
    if sep:
        pieces = []
        for piece in query.split("&"):  # as parse_qsl splits
            key, eq, _ = piece.partition("=")
            secret = eq and unquote_plus(key).strip() in _SECRET_KEYS
            pieces.append(f"{key}={HIDDEN}" if secret else piece)
        query = "&".join(pieces)
    return hide_secrets(head + sep + query)


def parse_shorthand(text: str, *, where: str = "--model") -> ModelSpec:
    """Parse ``BACKEND:MODEL[@BASE_URL][?KEY=VALUE&...]`` into a ModelSpec."""
    shown = shown_spec(text)
    match = _SHORTHAND.match(text.strip())
    if not match:
        raise ConfigError(
            f"'{shown}' is neither a configured model name nor BACKEND:MODEL",
            where=where,
            hint="e.g. hf:/path/to/model or openai:MODEL@http://127.0.0.1:8000/v1",
        )
    backend, rest = match["backend"], match["rest"]
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    base_url = None
    at = re.search(r"@(https?://.+)$", rest)
    if at:
        base_url, rest = at.group(1), rest[: at.start()]
    if not rest:
        raise ConfigError(f"'{shown}' names no model after '{backend}:'", where=where)
    fields: dict[str, Any] = {"backend": backend, "model": rest, "base_url": base_url}
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in ModelSpec.model_fields and key not in {"backend", "model", "options"}:
            fields[key] = _scalar(value)
        else:
            options[key] = _scalar(value)
    fields["options"] = options
    try:
        return ModelSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}", where=f"{where} '{shown}'"
        ) from exc


def resolve_spec(
    text: str,
    config: dict[str, ModelSpec],
    *,
    adapter: Path | None = None,
    defaults: SamplingParams | None = None,
    overrides: SamplingParams | None = None,
    where: str = "--model",
) -> tuple[str, ModelSpec]:
    """Return ``(name, spec)`` for a SPEC.

    Sampling precedence: ``overrides`` (command-line flags) over the spec's own ``sampling`` over
    ``defaults`` (the evaluation's defaults, e.g. greedy decoding).
    """
    if text in config:
        name, spec = text, config[text]
    elif _SHORTHAND.match(text.strip()):
        name, spec = shown_spec(text.strip()), parse_shorthand(text, where=where)
    else:
        raise ConfigError(
            f"unknown model '{shown_spec(text)}'{did_you_mean(text, config)}",
            where=where,
            hint=(
                f"configured models: {', '.join(sorted(config))}; "
                if config
                else "no --config given; "
            )
            + "or write BACKEND:MODEL (e.g. hf:/path/to/model)",
        )
    if adapter is not None:
        if spec.backend != "hf":
            raise ConfigError(
                f"--adapter needs an hf model, not backend '{spec.backend}'",
                where=where,
                hint="serve the adapter behind your server, or use hf:PATH",
            )
        if not Path(adapter).is_dir():
            raise ConfigError("adapter folder not found", where=f"--adapter {adapter}")
        spec = spec.model_copy(update={"options": {**spec.options, "adapter": str(adapter)}})
        name = f"{name}+{Path(adapter).name}"
    sampling = (defaults or SamplingParams()).merged(spec.sampling).merged(overrides)
    if sampling != spec.sampling:
        spec = spec.model_copy(update={"sampling": sampling})
    return name, spec


def describe(name: str, spec: ModelSpec) -> dict[str, Any]:
    """What a summary records about a model (never secrets: only the env var name)."""
    return {
        "name": name,
        "backend": spec.backend,
        "model": spec.model,
        "base_url": spec.base_url,
        "adapter": spec.options.get("adapter"),
        "sampling": spec.sampling.model_dump(exclude_none=True),
    }
