"""The backend interface, model declarations and the backend registry.

A backend turns a batch of :class:`~koalign.types.ChatRequest` into a list of
:class:`~koalign.types.ChatResult` of the same length and order. Backends know nothing of
caching, retries across the cache, rate limits or logging: :mod:`koalign.backends.client` wraps
them with those.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import BackendError, did_you_mean
from koalign.types import ChatRequest, ChatResult, SamplingParams


class ModelSpec(BaseModel):
    """A model declared in config by name (``models: {name: spec}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(description="Backend name: openai, hf, scripted, ...")
    model: str = Field(description="Model id on the server, or a local path / hub id for hf.")
    base_url: str | None = Field(None, description="Server URL for OpenAI-compatible backends.")
    api_key_env: str | None = Field(
        None, description="NAME of the environment variable holding the API key (never the key)."
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
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend-specific options (e.g. hf: device, dtype, adapter).",
    )


class Backend(ABC):
    """One model behind one interface. Subclasses set ``name`` and implement :meth:`agenerate`."""

    name: ClassVar[str]

    def __init__(self, spec: ModelSpec, *, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.env = env or {}

    @abstractmethod
    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests``; the result list has the same length and order.

        A failure of one request is reported in that result's ``error``; the method raises only
        for misuse (e.g. a model that cannot be loaded).
        """

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Synchronous convenience over :meth:`agenerate`."""
        return asyncio.run(self.agenerate(requests))

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this model's outputs in the cache key (beyond the request)."""
        return {"backend": self.name, "model": self.spec.model}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or GPU memory."""


BackendFactory = Callable[[ModelSpec, dict[str, str]], Backend]

_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Register a backend under ``name`` (plugins call this)."""
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
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

    plugins = dict(_REGISTRY)
    builtin.register_all()
    _REGISTRY.update(plugins)
    _BUILTIN_LOADED = True
