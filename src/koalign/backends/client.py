"""The model layer every stage uses: named models wrapped with caching, logging, retries,
rate limits and structured-output validation.

Usage::

    pool = ModelPool({"judge": spec}, cache_path=run_dir / "cache.sqlite")
    results = await pool.get("judge").agenerate(requests)   # same length and order
    pool.close()

``LLM.agenerate`` may be called concurrently from many tasks; concurrency and rate limits are
enforced per model across all of them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from koalign.backends.base import Backend, ModelSpec, create_backend
from koalign.errors import BackendError, did_you_mean
from koalign.types import CallError, ChatRequest, ChatResult


@dataclass
class CallStats:
    """Counters for one model in this process."""

    calls: int = 0  # requests answered by the backend (paid)
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_json(text: str | None, schema: dict[str, Any]) -> tuple[Any | None, CallError | None]:
    """Parse ``text`` as JSON and validate it against ``schema``."""
    import jsonschema

    if text is None or not text.strip():
        return None, CallError(kind="empty", message="the model returned no text")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, CallError(kind="parse", message=f"not valid JSON: {exc}")
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return None, CallError(
            kind="schema", message=f"JSON does not match the schema: {exc.message}"
        )
    return value, None


class LLM:
    """A named model: a backend plus the call policy around it."""

    def __init__(self, name: str, spec: ModelSpec, backend: Backend) -> None:
        self.name = name
        self.spec = spec
        self.backend = backend
        self.stats = CallStats()
        self._sem = asyncio.Semaphore(spec.max_concurrency)

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        requests = [self._with_defaults(r) for r in requests]
        async with self._sem:
            results = await self.backend.agenerate(requests)
        out = []
        for request, result in zip(requests, results, strict=True):
            if request.json_schema is not None and result.error is None:
                parsed, error = validate_json(result.text, request.json_schema)
                result = result.model_copy(update={"parsed": parsed, "error": error})
            self.stats.calls += 1
            self.stats.tokens_in += result.tokens_in
            self.stats.tokens_out += result.tokens_out
            self.stats.errors += result.error is not None
            out.append(result)
        return out

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return asyncio.run(self.agenerate(requests))

    def _with_defaults(self, request: ChatRequest) -> ChatRequest:
        return request.model_copy(update={"sampling": self.spec.sampling.merged(request.sampling)})


class ModelPool:
    """The models of one run, created lazily by name."""

    def __init__(
        self,
        specs: Mapping[str, ModelSpec],
        *,
        cache_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.cache_path = cache_path
        self.env = dict(os.environ if env is None else env)
        self._models: dict[str, LLM] = {}

    def get(self, name: str) -> LLM:
        if name not in self._models:
            spec = self.specs.get(name)
            if spec is None:
                raise BackendError(
                    f"unknown model '{name}'{did_you_mean(name, self.specs)}",
                    hint=f"declare it under models: (known: {', '.join(sorted(self.specs))})",
                )
            backend = create_backend(spec, env=self.env, where=f"models.{name}")
            self._models[name] = LLM(name, spec, backend)
        return self._models[name]

    def stats(self) -> dict[str, CallStats]:
        return {name: llm.stats for name, llm in self._models.items()}

    async def aclose(self) -> None:
        for llm in self._models.values():
            await llm.backend.aclose()

    def close(self) -> None:
        asyncio.run(self.aclose())
