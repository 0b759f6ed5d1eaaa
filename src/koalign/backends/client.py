"""The model layer every stage uses: named models wrapped with caching, logging, retries,
rate limits and structured-output validation.

Usage::

    pool = ModelPool({"judge": spec}, cache_path=run_dir / "cache.sqlite")
    results = await pool.get("judge").agenerate(requests)   # same length and order
    pool.close()

``LLM.agenerate`` may be called concurrently from many tasks; concurrency and rate limits are
enforced per model across all of them. Each request goes through these steps:

1. sampling defaults from the spec are merged in; a JSON schema adds the prompt contract
   (:mod:`koalign.backends.structured`) to the last user message;
2. the cache is asked (key: backend identity, messages, sampling, schema, sample index); a hit
   returns ``cached=True`` and counts as a cache hit, not a call;
3. otherwise the RPM/TPM limiters and the concurrency cap are passed and the backend is called;
   rate-limit, server, timeout and connection errors are retried with jittered exponential
   backoff (Retry-After wins) up to ``max_retries`` times;
4. the call is logged; a success is cached (an error is not, so a rerun retries it);
5. with a schema, the text is parsed after the cache (JSON is extracted from code fences or
   prose) and validated; a failure triggers up to ``json_repairs`` repair requests, then
   becomes a ``parse``/``schema`` error with the raw text kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from koalign.backends.base import Backend, ModelSpec, create_backend
from koalign.backends.limits import RETRYABLE_KINDS, RateLimiter, backoff_delay, estimate_tokens
from koalign.backends.structured import repair_messages, validate_json, with_schema_contract
from koalign.cache import Cache, CachedResponse, CallRecord, cache_key
from koalign.errors import BackendError, KoalignError, did_you_mean
from koalign.types import CallError, ChatRequest, ChatResult

log = logging.getLogger(__name__)

__all__ = ["LLM", "CallStats", "ModelPool", "validate_json"]


@dataclass
class CallStats:
    """Counters for one model in this process.

    ``calls``: requests sent to the backend (each once, whatever the outcome; repair requests
    included); ``retries``: extra attempts after retryable errors; ``cache_hits``: requests
    answered from the cache; ``errors``: results handed back with an error; ``repairs``: JSON
    repair requests; tokens and cost count backend calls only.
    """

    calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    cost: float = 0.0
    retries: int = 0
    repairs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LLM:
    """A named model: a backend plus the call policy around it."""

    def __init__(
        self, name: str, spec: ModelSpec, backend: Backend, *, cache: Cache | None = None
    ) -> None:
        self.name = name
        self.spec = spec
        self.backend = backend
        self.cache = cache
        self.stats = CallStats()
        self._identity = backend.cache_identity()
        self._rpm = RateLimiter(spec.rpm) if spec.rpm else None
        self._tpm = RateLimiter(spec.tpm) if spec.tpm else None
        self._sems: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    # -- public ------------------------------------------------------------------------------

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests`` (same length and order). Never raises for a failed request: its
        result carries a typed ``error``."""
        prepared = [self._prepare(r) for r in requests]
        if len(prepared) == 1:
            return [await self._one(prepared[0])]
        return list(await asyncio.gather(*(self._one(r) for r in prepared)))

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Synchronous convenience over :meth:`agenerate` (not from inside a running loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests))
        raise BackendError(
            "LLM.generate() was called inside a running event loop",
            where=f"model '{self.name}'",
            hint="use `await llm.agenerate(requests)` in async code",
        )

    # -- steps -------------------------------------------------------------------------------

    def _prepare(self, request: ChatRequest) -> ChatRequest:
        update: dict[str, Any] = {"sampling": self.spec.sampling.merged(request.sampling)}
        if request.json_schema is not None:
            update["messages"] = with_schema_contract(request.messages, request.json_schema)
        return request.model_copy(update=update)

    async def _one(self, request: ChatRequest) -> ChatResult:
        result = await self._call(request)
        schema = request.json_schema
        if schema is None or result.error is not None:
            return result
        parsed, error = validate_json(result.text, schema)
        total_in, total_out, latency = result.tokens_in, result.tokens_out, result.latency_s
        cached = result.cached
        repairs = 0
        while error is not None and error.kind != "other" and repairs < self.spec.json_repairs:
            repairs += 1
            self.stats.repairs += 1
            log.debug("model %s: JSON repair %d after %s", self.name, repairs, error.message)
            fixed = request.model_copy(
                update={
                    "messages": repair_messages(request.messages, result.text, error, schema),
                    "sampling": request.sampling,
                }
            )
            result = await self._call(fixed)
            total_in += result.tokens_in
            total_out += result.tokens_out
            latency += result.latency_s
            cached = cached and result.cached
            if result.error is not None:
                break
            parsed, error = validate_json(result.text, schema)
        if result.error is not None:
            error = result.error
        elif error is not None:
            error = error.model_copy(update={"attempts": repairs + 1})
            self.stats.errors += 1
        return result.model_copy(
            update={
                "parsed": parsed if error is None else None,
                "error": error,
                "tokens_in": total_in,
                "tokens_out": total_out,
                "latency_s": latency,
                "cached": cached,
            }
        )

    def _key(self, request: ChatRequest) -> str:
        sampling = request.sampling.model_dump(exclude_none=True) if request.sampling else {}
        if "stop" in sampling:
            sampling["stop"] = list(sampling["stop"])
        return cache_key(
            self._identity,
            [m.model_dump() for m in request.messages],
            sampling,
            request.json_schema,
            request.sample_index,
        )

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = asyncio.Semaphore(self.spec.max_concurrency)
        return sem

    def _cost(self, tokens_in: int, tokens_out: int) -> float:
        return (
            tokens_in * (self.spec.price_in_per_1m or 0.0)
            + tokens_out * (self.spec.price_out_per_1m or 0.0)
        ) / 1e6

    async def _call(self, request: ChatRequest) -> ChatResult:
        """One request through cache, limits, backend and retries (no JSON handling)."""
        key = self._key(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                self.cache.log(
                    CallRecord(
                        model=self.name,
                        backend=self.backend.name,
                        key=key,
                        tokens_in=hit.tokens_in,
                        tokens_out=hit.tokens_out,
                        cache_hit=True,
                        tag=request.tag,
                    )
                )
                return ChatResult(
                    text=hit.text,
                    finish_reason=hit.finish_reason,
                    tokens_in=hit.tokens_in,
                    tokens_out=hit.tokens_out,
                    latency_s=0.0,
                    cached=True,
                )
        result, attempts = await self._call_backend(request)
        self.stats.calls += 1
        self.stats.tokens_in += result.tokens_in
        self.stats.tokens_out += result.tokens_out
        cost = self._cost(result.tokens_in, result.tokens_out)
        self.stats.cost += cost
        if result.error is not None:
            self.stats.errors += 1
        if self.cache is not None:
            err = result.error
            # the answer is stored before the call is logged: a kill in between must not leave
            # a paid answer uncached (it would be paid again on resume)
            if err is None:
                self.cache.put(
                    key,
                    self.name,
                    self.backend.name,
                    CachedResponse(
                        text=result.text,
                        finish_reason=result.finish_reason,
                        tokens_in=result.tokens_in,
                        tokens_out=result.tokens_out,
                        latency_s=result.latency_s,
                    ),
                )
            self.cache.log(
                CallRecord(
                    model=self.name,
                    backend=self.backend.name,
                    key=key,
                    tokens_in=result.tokens_in,
                    tokens_out=result.tokens_out,
                    latency_s=result.latency_s,
                    cost=cost,
                    error_kind=err.kind if err else None,
                    error_message=err.message if err else None,
                    attempts=attempts,
                    tag=request.tag,
                )
            )
        return result

    async def _call_backend(self, request: ChatRequest) -> tuple[ChatResult, int]:
        spec = self.spec
        attempts = 0
        while True:
            attempts += 1
            estimate = 0
            if self._rpm is not None:
                await self._rpm.acquire(1)
            if self._tpm is not None:
                chars = sum(len(m.content) for m in request.messages)
                estimate = estimate_tokens(chars, request.sampling.max_tokens)
                await self._tpm.acquire(estimate)
            async with self._sem():
                start = time.perf_counter()
                try:
                    result = (await self.backend.agenerate([request]))[0]
                except KoalignError:
                    raise
                except Exception as exc:  # a backend bug must not lose the other requests
                    log.exception("model %s: backend raised", self.name)
                    result = ChatResult(
                        error=CallError(kind="other", message=f"{type(exc).__name__}: {exc}")
                    )
                elapsed = time.perf_counter() - start
            if self._tpm is not None:
                used = result.tokens_in + result.tokens_out if result.error is None else 0
                self._tpm.refund(estimate - used)
            if not result.latency_s:
                result = result.model_copy(update={"latency_s": elapsed})
            error = result.error
            if error is not None and error.kind in RETRYABLE_KINDS and attempts <= spec.max_retries:
                delay = backoff_delay(
                    attempts,
                    base=spec.retry_backoff,
                    cap=spec.retry_backoff_max,
                    retry_after=error.retry_after,
                )
                self.stats.retries += 1
                log.info(
                    "model %s: %s (%s); retry %d/%d in %.2fs",
                    self.name,
                    error.kind,
                    error.message[:200],
                    attempts,
                    spec.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if error is not None:
                result = result.model_copy(
                    update={"error": error.model_copy(update={"attempts": attempts})}
                )
            return result, attempts


class ModelPool:
    """The models of one run, created lazily by name, sharing one cache file."""

    def __init__(
        self,
        specs: Mapping[str, ModelSpec],
        *,
        cache_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.env = dict(os.environ if env is None else env)
        self.cache = Cache(self.cache_path) if self.cache_path is not None else None
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
            self._models[name] = LLM(name, spec, backend, cache=self.cache)
        return self._models[name]

    def stats(self) -> dict[str, CallStats]:
        return {name: llm.stats for name, llm in self._models.items()}

    async def aclose(self) -> None:
        for llm in self._models.values():
            await llm.backend.aclose()
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def close(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.aclose())
            return
        raise BackendError(
            "ModelPool.close() was called inside a running event loop",
            hint="use `await pool.aclose()` in async code",
        )
