"""The backend interface, model declarations and the backend registry.

A backend turns a batch of :class:`~koalign.types.ChatRequest` into a list of
:class:`~koalign.types.ChatResult` of the same length and order. Backends know nothing of
caching, retries across the cache, rate limits, reasoning or logging:
:mod:`koalign.backends.client` wraps them with those. A backend returns the model's content as
it came (``text``, reasoning blocks included), the server's separate reasoning field when there
is one (``reasoning``), ``finish_reason`` and token counts; it reports transport failures as a
typed ``error`` and never raises for one request's failure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from koalign import eventloop
from koalign.errors import BackendError, did_you_mean
from koalign.types import ChatRequest, ChatResult, Message, SamplingParams

_REDACTED = "***"


def _has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return "@" in parts.netloc


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{_REDACTED}@{host}"))


def _hidden_headers(headers: Any) -> Any:
    """``options.headers`` with every value held as a :class:`~pydantic.SecretStr`: it is sent as
    it was written, but every dump, repr or message shows ``**********``."""
    if isinstance(headers, dict):
        return {k: _hidden(v) for k, v in headers.items()}
    return _hidden(headers)  # not a mapping: refused by the backend, never echoed


def _hidden(value: Any) -> Any:
    if isinstance(value, SecretStr) or value is None or isinstance(value, dict | list):
        return value
    return SecretStr(str(value))


def secret_value(value: Any) -> str:
    """The text of a header value held by a ModelSpec (see ``options.headers``)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


OPENAI_KEY_ENV = "OPENAI_API_KEY"
"""The API-key variable of an ``openai`` model that names neither base_url nor api_key_env."""


class ModelSpec(BaseModel):
    """A model declared in config by name (``models: {name: spec}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(description="Backend name: openai, hf, scripted, ...")
    model: str = Field(description="Model id on the server, or a local path / hub id for hf.")
    base_url: str | None = Field(
        None,
        description="Server URL for OpenAI-compatible backends, e.g. http://127.0.0.1:8000/v1. "
        "Credentials in the URL (user:password@) are refused: name the key's variable in "
        "api_key_env.",
    )
    api_key_env: str | None = Field(
        None,
        description="NAME of the environment variable holding the API key (never the key). "
        "An openai model with neither base_url nor api_key_env uses the OpenAI API with "
        f"{OPENAI_KEY_ENV}.",
    )
    sampling: SamplingParams = Field(
        default_factory=SamplingParams, description="Default sampling parameters."
    )
    max_concurrency: int = Field(16, ge=1, description="Requests in flight at once.")
    rpm: float | None = Field(None, gt=0, description="Client-side requests-per-minute limit.")
    tpm: float | None = Field(None, gt=0, description="Client-side tokens-per-minute limit.")
    timeout: float = Field(120.0, gt=0, description="Seconds before one request times out.")
    max_retries: int = Field(
        5, ge=0, description="Retries on 429, 5xx, timeouts, connection errors."
    )
    retry_backoff: float = Field(
        0.5, ge=0, description="Base seconds of the jittered exponential backoff between retries."
    )
    retry_backoff_max: float = Field(
        30.0, ge=0, description="Longest wait between two retries (Retry-After included)."
    )
    json_mode: str = Field(
        "prompt",
        description="How a JSON schema is requested: 'response_format' (server-side constrained "
        "decoding, e.g. vLLM) or 'prompt' (schema in the prompt, validated and repaired client-side).",
    )
    json_repairs: int = Field(2, ge=0, description="Repair retries when JSON output is invalid.")
    price_in_per_1m: float | None = Field(None, ge=0, description="Price per 1M input tokens.")
    price_out_per_1m: float | None = Field(None, ge=0, description="Price per 1M output tokens.")
    context_window: int | None = Field(
        None,
        gt=0,
        description="Tokens the model holds, prompt and answer together. Unset: read from the "
        "server's model list (vLLM max_model_len; context_length / context_window elsewhere) or "
        "the hf model's config, else unknown.",
    )
    reasoning: Literal["auto", "yes", "no"] = Field(
        "auto",
        description="Whether the model writes reasoning before its answer. auto: split off "
        "<think>-style blocks (and a server's reasoning field) where present; yes: the model "
        "always reasons first (e.g. its chat template opens <think> in the prompt), so a "
        "completion with no closing reasoning tag and no reasoning field is unfinished "
        "reasoning with no answer; no: the content is the answer as it is, tags and all.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend-specific options (e.g. hf: device, dtype, adapter). The values of "
        "options.headers are never written or shown (every dump of the spec shows **********); "
        "prefer options.headers_env, which names the environment variable of each header.",
    )

    @model_validator(mode="before")
    @classmethod
    def _hide_header_values(cls, data: Any) -> Any:
        # before validation, so that no error message (which quotes the input) carries them
        if isinstance(data, dict) and isinstance(data.get("options"), dict):
            options = data["options"]
            if "headers" in options:
                data = {
                    **data,
                    "options": {**options, "headers": _hidden_headers(options["headers"])},
                }
        return data

    @model_validator(mode="before")
    @classmethod
    def _hide_url_credentials(cls, data: Any) -> Any:
        # redact first, so that no error message (which quotes the input) carries the secret
        if isinstance(data, dict):
            url = data.get("base_url")
            if isinstance(url, str) and _has_credentials(url):
                data = {**data, "base_url": _redact(url)}
        return data

    @model_validator(mode="before")
    @classmethod
    def _openai_api_by_default(cls, data: Any) -> Any:
        # `openai:gpt-4.1` and `{backend: openai, model: gpt-4.1}` mean the OpenAI API
        if (
            isinstance(data, dict)
            and data.get("backend") == "openai"
            and data.get("base_url") is None
            and data.get("api_key_env") is None
        ):
            data = {**data, "api_key_env": OPENAI_KEY_ENV}
        return data

    @field_validator("reasoning", mode="before")
    @classmethod
    def _yes_no(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare yes / no as a boolean
        if isinstance(value, bool):
            return "yes" if value else "no"
        return value

    def secret_env_vars(self) -> list[str]:
        """The environment variables this model reads secrets from: ``api_key_env`` and the
        values of ``options.headers_env`` (in that order, each once)."""
        names = [self.api_key_env] if self.api_key_env else []
        headers_env = self.options.get("headers_env")
        if isinstance(headers_env, dict):
            names += [str(v) for v in headers_env.values() if isinstance(v, str) and v]
        return list(dict.fromkeys(names))

    @field_validator("base_url")
    @classmethod
    def _no_url_credentials(cls, value: str | None) -> str | None:
        if value is not None and _has_credentials(value):
            raise ValueError(
                "base_url must not carry credentials (user:password@...): put the key in an "
                "environment variable and give its NAME as api_key_env"
            )
        return value


class Backend(ABC):
    """One model behind one interface. Subclasses set ``name`` and implement :meth:`agenerate`.

    ``batch_sensitive`` is true for backends whose output for one request can depend on which
    other requests share its batch (local batched generation: padding and batched kernels
    change low bits); :meth:`koalign.backends.client.LLM.agenerate` with ``fixed_batch=True``
    then generates a whole list as one unit through :meth:`agenerate_fixed`.
    """

    name: ClassVar[str]
    batch_sensitive: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, *, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.env = env or {}

    @abstractmethod
    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests``; the result list has the same length and order.

        A failure of one request is reported in that result's ``error``; the method raises only
        for misuse (e.g. a model that cannot be loaded).
        """

    async def agenerate_fixed(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests`` as one unit, in list order, not merged with any other request.

        Backends whose outputs do not depend on batch composition need not override it (the
        default is :meth:`agenerate`).
        """
        return await self.agenerate(requests)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Synchronous convenience over :meth:`agenerate`."""
        return eventloop.run(self.agenerate(requests))

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this model's outputs in the cache key (beyond the request)."""
        return {"backend": self.name, "model": self.spec.model}

    async def acontext_window(self) -> int | None:
        """Tokens the model holds (prompt + answer) as the backend can find out, or ``None``.

        Only called when the spec sets no ``context_window``; may do I/O (a server's model
        list, a config file) and must not raise for an unknown window.
        """
        return None

    def count_tokens(self, messages: Sequence[Message]) -> int | None:
        """Exact prompt tokens of ``messages`` as the model would see them (chat template
        included), or ``None`` when the backend cannot count exactly (the model layer then
        estimates, see :func:`koalign.backends.limits.estimate_prompt_tokens`)."""
        return None

    def counts_tokens_exactly(self) -> bool:
        """Whether :meth:`count_tokens` returns exact counts (it never does by default)."""
        return False

    def default_max_tokens(self) -> int | None:
        """The answer budget the backend uses when a request sets no ``max_tokens`` (``None``:
        the server decides)."""
        return None

    async def arelease(self) -> None:  # noqa: B027 - optional hook
        """Release what belongs to the running event loop (HTTP connections); the backend stays
        usable from another loop. Called at the end of a synchronous ``generate``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or GPU memory."""


BackendFactory = Callable[[ModelSpec, dict[str, str]], Backend]

_REGISTRY: dict[str, BackendFactory] = {}
_CLASSES: dict[str, Callable[[], type[Backend]]] = {}


def register_backend(
    name: str,
    factory: BackendFactory,
    *,
    cls: type[Backend] | Callable[[], type[Backend]] | None = None,
) -> None:
    """Register a backend under ``name`` (plugins call this).

    ``factory(spec, env)`` creates the backend; ``cls`` (the class, or a function returning it,
    so a heavy module can load lazily) lets :func:`backend_class` answer without creating one.
    """
    _REGISTRY[name] = factory
    if cls is None:
        _CLASSES.pop(name, None)
    elif isinstance(cls, type):
        known: type[Backend] = cls
        _CLASSES[name] = lambda: known
    else:
        _CLASSES[name] = cls


def backend_class(name: str) -> type[Backend] | None:
    """The class behind a backend name, without creating a backend (to read class attributes
    such as ``batch_sensitive``); ``None`` for an unknown name or a plugin registered without
    ``cls``."""
    _load_builtin()
    loader = _CLASSES.get(name)
    return loader() if loader is not None else None


def backend_names() -> list[str]:
    """Names of every registered backend, built-in ones included, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def create_backend(
    spec: ModelSpec, *, env: dict[str, str] | None = None, where: str = ""
) -> Backend:
    """Instantiate the backend a spec names; unknown names get a did-you-mean error."""
    _load_builtin()
    factory = _REGISTRY.get(spec.backend)
    if factory is None:
        raise BackendError(
            f"unknown backend '{spec.backend}'{did_you_mean(spec.backend, _REGISTRY)}",
            where=where or None,
            hint=f"known backends: {', '.join(sorted(_REGISTRY))}",
        )
    return factory(spec, env or {})


_BUILTIN_LOADED = False


def _load_builtin() -> None:
    """Register the built-in backends once; a plugin's own registration never hides them, and a
    plugin registered under a built-in name keeps its registration."""
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    from koalign.backends import builtin

    plugins, classes = dict(_REGISTRY), dict(_CLASSES)
    builtin.register_all()
    _REGISTRY.update(plugins)
    for name in plugins:
        _CLASSES.pop(name, None)
    _CLASSES.update(classes)
    _BUILTIN_LOADED = True
