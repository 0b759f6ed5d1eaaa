"""The model layer every stage uses: named models wrapped with caching, logging, retries,
rate limits, reasoning, truncation and structured-output handling.

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
   rate-limit, server and timeout errors are retried with jittered exponential backoff (a
   server's Retry-After wins, up to :data:`~koalign.backends.limits.RETRY_AFTER_MAX_S`) up to
   ``max_retries`` times; a connection that cannot be opened is retried only
   :data:`~koalign.backends.limits.CONNECT_RETRIES` times, quickly;
4. the raw answer is committed to the cache together with its call-log row (a group commit
   off the event loop) before the result is handed back; a failed call is logged, not cached;
5. the answer is read after the cache: reasoning is set apart (``ChatResult.reasoning``); an
   answer cut at ``max_tokens`` is retried once with twice the budget (``on_truncation:
   retry``) and otherwise ends as a ``truncated`` error, text kept; an answer with no text is
   an ``empty`` error;
6. with a schema, the JSON value is chosen by :func:`koalign.extract.extract_json` (never one
   echoed from the prompt) and validated; a failure triggers up to ``json_repairs`` repair
   requests, then becomes a ``parse``/``schema`` error with the raw text kept.

With ``fixed_batch=True`` and a batch-sensitive backend (``hf``), a list is one unit: when any
member misses the cache the backend generates the whole list, in order, alone, and every answer
is cached; follow-up calls (larger budgets, repairs) are fixed units too. So a resumed run
computes exactly what an uninterrupted one did.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from koalign import eventloop
from koalign.backends.answers import read_answer
from koalign.backends.base import Backend, ModelSpec, create_backend
from koalign.backends.limits import (
    CONNECT_BACKOFF_S,
    CONNECT_RETRIES,
    RETRYABLE_KINDS,
    PrioritySemaphore,
    RateLimiter,
    backoff_delay,
    estimate_prompt_tokens,
    estimate_tokens,
)
from koalign.backends.structured import (
    repair_messages,
    schema_contract_parts,
    schema_instruction,
    validate_json,
    with_schema_contract,
)
from koalign.cache import Cache, CachedResponse, CallRecord, KeyBuilder
from koalign.errors import BackendError, KoalignError, did_you_mean
from koalign.types import CallError, ChatRequest, ChatResult, Message, SamplingParams

log = logging.getLogger(__name__)

__all__ = ["LLM", "MAX_RETRY_TOKENS", "CallStats", "ModelPool", "validate_json"]

MAX_RETRY_TOKENS = 32768
"""The largest answer budget a truncation retry asks for. The retry budget is ``max_tokens x
2``, at most the model's context window minus the prompt's tokens (when the window is known),
and at most this."""


@dataclass
class CallStats:
    """Counters for one model in this process.

    ``calls``: requests sent to the backend (each once, whatever the outcome; truncation retries
    and repair requests included); ``retries``: extra attempts after retryable errors;
    ``cache_hits``: requests answered from the cache; ``errors``: results handed back with an
    error; ``repairs``: JSON repair requests; ``truncated``: answers cut at ``max_tokens``
    (cached ones included); ``truncation_retries``: requests re-sent with a larger budget;
    ``recomputed``: cached members of a fixed batch generated again with their unit;
    ``nondeterministic``: of those, how many came out different from the cached answer (the
    cached one is kept). Tokens and cost count backend calls only.
    """

    calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    cost: float = 0.0
    retries: int = 0
    repairs: int = 0
    truncated: int = 0
    truncation_retries: int = 0
    recomputed: int = 0
    nondeterministic: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain mapping."""
        return asdict(self)


class _Job:
    """One request as sent: merged sampling, schema contract, cache key and prompt texts.

    A request with a schema is kept as the caller's request (``origin``) plus its merged
    sampling; the copy whose last user message carries the schema contract (``req``) is built
    when it is sent, so a request waiting for a model slot holds its prompt once. Follow-ups
    (a larger budget, a repair turn) carry their own request (``sent``)."""

    __slots__ = ("_sent", "key", "origin", "prompt", "retried", "sampling")

    def __init__(
        self,
        origin: ChatRequest,
        key: str,
        prompt: tuple[str, ...],
        sampling: SamplingParams | None,
        sent: ChatRequest | None = None,
    ) -> None:
        self.origin = origin
        self.key = key
        self.prompt = prompt
        self.sampling = sampling
        self._sent = sent
        self.retried = False

    @property
    def req(self) -> ChatRequest:
        """The request as the backend receives it (built anew for a schema request)."""
        if self._sent is not None:
            return self._sent
        return self.origin.model_copy(
            update={
                "sampling": self.sampling,
                "messages": with_schema_contract(self.origin.messages, self.schema or {}),
            }
        )

    @property
    def schema(self) -> dict[str, Any] | None:
        return (self._sent or self.origin).json_schema


def _prompt_texts(parts: list[tuple[str, str | tuple[str, str]]], schema: Any) -> tuple[str, ...]:
    """The texts of a prompt that an answer must not copy a JSON value from: every
    non-assistant message, with the schema contract appended to the last user message as a text
    of its own (the same string for every request with that schema, so the JSON values in it
    are read once). ``parts`` are ``(role, content)`` pairs where a content that carries the
    contract may be given as ``(text, "\n\n" + contract)``."""
    texts = [c for r, c in parts if r != "assistant"]
    out = [c if isinstance(c, str) else c[0] + c[1] for c in texts[:-1]]
    if not texts:
        return ()
    last = texts[-1]
    if schema is None:
        return (*out, last if isinstance(last, str) else last[0] + last[1])
    contract = schema_instruction(schema)
    if not isinstance(last, str):
        return (*out, last[0], contract)
    tail = "\n\n" + contract
    if last.endswith(tail):
        return (*out, last[: -len(tail)], contract)
    return (*out, last)


def _combine(first: ChatResult, last: ChatResult) -> ChatResult:
    """``last`` with the tokens and latency of ``first`` added (and cached only if both were)."""
    return last.model_copy(
        update={
            "tokens_in": first.tokens_in + last.tokens_in,
            "tokens_out": first.tokens_out + last.tokens_out,
            "latency_s": first.latency_s + last.latency_s,
            "cached": first.cached and last.cached,
        }
    )


class LLM:
    """A named model: a backend plus the call policy around it (see the module docstring)."""

    def __init__(
        self, name: str, spec: ModelSpec, backend: Backend, *, cache: Cache | None = None
    ) -> None:
        self.name = name
        self.spec = spec
        self.backend = backend
        self.cache = cache
        self.stats = CallStats()
        self._keys = KeyBuilder(backend.cache_identity())
        self._rpm = RateLimiter(spec.rpm) if spec.rpm else None
        self._tpm = RateLimiter(spec.tpm) if spec.tpm else None
        self._sems: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PrioritySemaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._samplings: dict[int, tuple[SamplingParams | None, dict[str, Any]]] = {}
        self._merges: dict[int, tuple[SamplingParams, SamplingParams]] = {}
        self._window: int | None = spec.context_window
        self._window_known = spec.context_window is not None

    # -- public ------------------------------------------------------------------------------

    @property
    def batch_sensitive(self) -> bool:
        """Whether this model's outputs depend on which requests share a batch (``hf``); the
        engine passes ``fixed_batch=True`` for such models to make resumes deterministic."""
        return self.backend.batch_sensitive

    async def agenerate(
        self, requests: Sequence[ChatRequest], *, fixed_batch: bool = False
    ) -> list[ChatResult]:
        """Answer ``requests``: a list of the same length and order.

        Never raises for a failed request: its result carries a typed ``error`` (see
        :class:`~koalign.types.ChatResult`). Raises :class:`~koalign.errors.KoalignError` for
        misuse or an environment fault (a model that cannot be loaded, a cache that cannot be
        written).

        ``fixed_batch``: for a batch-sensitive backend, treat the list as one unit: when any
        member misses the cache, the backend generates the whole list (in list order, split
        into sub-batches of its ``max_batch_size`` that share sampling and schema) without
        merging it with other concurrent requests, and every answer is cached; when all hit,
        nothing is computed. Members already cached keep their cached answer. For other
        backends it changes nothing.
        """
        jobs = [self._prepare(r) for r in requests]
        if fixed_batch and self.backend.batch_sensitive and len(jobs) > 0:
            return await self._process(jobs, fixed=True)
        if len(jobs) == 1:
            return await self._process(jobs, fixed=False)
        done = await asyncio.gather(*(self._process([j], fixed=False) for j in jobs))
        return [r for rs in done for r in rs]

    def generate(
        self, requests: Sequence[ChatRequest], *, fixed_batch: bool = False
    ) -> list[ChatResult]:
        """Synchronous convenience over :meth:`agenerate` (not from inside a running loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:

            async def run() -> list[ChatResult]:
                try:
                    return await self.agenerate(requests, fixed_batch=fixed_batch)
                finally:
                    await self.backend.arelease()

            return eventloop.run(run())
        raise BackendError(
            "LLM.generate() was called inside a running event loop",
            where=f"model '{self.name}'",
            hint="use `await llm.agenerate(requests)` in async code",
        )

    async def context_window(self) -> int | None:
        """Tokens the model holds, prompt and answer together: the spec's ``context_window``,
        else what the backend reads (an OpenAI-compatible server's model list: vLLM's
        ``max_model_len``, others' ``context_length`` / ``context_window``; an hf model's
        config: ``max_position_embeddings`` / the tokenizer's ``model_max_length``), else
        ``None``. Looked up once per model."""
        if not self._window_known:
            self._window = await self.backend.acontext_window()
            self._window_known = True
        return self._window

    def count_tokens(
        self, messages: Sequence[Message], *, json_schema: dict[str, Any] | None = None
    ) -> int:
        """Prompt tokens of ``messages`` as sent to this model (with ``json_schema``, the schema
        contract the layer appends is counted too).

        Exact where the backend can tokenise (``hf``: the model's tokenizer and chat template,
        loading the tokenizer on first use; ``openai`` with ``options.tokenizer``); otherwise an
        upper bound (:func:`~koalign.backends.limits.estimate_prompt_tokens`: the UTF-8 bytes
        of each message, 3 per Hangul syllable, plus 8 per message and 8 for the answer's
        header). :attr:`counts_tokens_exactly` tells which.
        """
        msgs = tuple(messages)
        if json_schema is not None:
            msgs = with_schema_contract(msgs, json_schema)
        exact = self.backend.count_tokens(msgs)
        if exact is not None:
            return exact
        return estimate_prompt_tokens([m.content for m in msgs])

    @property
    def counts_tokens_exactly(self) -> bool:
        """Whether :meth:`count_tokens` uses the model's own tokenizer (else: an estimate)."""
        return self.backend.counts_tokens_exactly()

    # -- preparing ---------------------------------------------------------------------------

    def _sampling_dict(self, sampling: SamplingParams | None) -> dict[str, Any]:
        hit = self._samplings.get(id(sampling))
        if hit is not None and hit[0] is sampling:
            return hit[1]
        data = sampling.model_dump(exclude_none=True) if sampling is not None else {}
        if "stop" in data:
            data["stop"] = list(data["stop"])
        if len(self._samplings) >= 256:
            self._samplings.clear()
        self._samplings[id(sampling)] = (sampling, data)  # the reference keeps id() unique
        return data

    def _job(self, req: ChatRequest, origin: ChatRequest) -> _Job:
        """A job that sends ``req`` as it is (a follow-up of ``origin``)."""
        parts: list[tuple[str, str | tuple[str, str]]] = [(m.role, m.content) for m in req.messages]
        key = self._keys.key(
            parts, self._sampling_dict(req.sampling), req.json_schema, req.sample_index
        )
        return _Job(origin, key, _prompt_texts(parts, req.json_schema), req.sampling, sent=req)

    def _merged(self, sampling: SamplingParams | None) -> SamplingParams:
        """The spec's sampling defaults under ``sampling`` (cached per object: requests of a
        stage usually share one)."""
        if sampling is None:
            return self.spec.sampling
        hit = self._merges.get(id(sampling))
        if hit is not None and hit[0] is sampling:
            return hit[1]
        merged = self.spec.sampling.merged(sampling)
        if len(self._merges) >= 256:
            self._merges.clear()
        self._merges[id(sampling)] = (sampling, merged)  # the reference keeps id() unique
        return merged

    def _prepare(self, request: ChatRequest) -> _Job:
        sampling = self._merged(request.sampling)
        schema = request.json_schema
        if schema is None:
            return self._job(request.model_copy(update={"sampling": sampling}), request)
        parts = schema_contract_parts(request.messages, schema)
        key = self._keys.key(parts, self._sampling_dict(sampling), schema, request.sample_index)
        return _Job(request, key, _prompt_texts(parts, schema), sampling)

    # -- reading an answer -------------------------------------------------------------------

    def _read(
        self,
        text: str | None,
        field: str | None,
        finish: str | None,
        tokens_in: int,
        tokens_out: int,
        latency: float,
        cached: bool,
        max_tokens: int | None,
    ) -> ChatResult:
        """A result from a raw answer (:func:`~koalign.backends.answers.read_answer`)."""
        read = read_answer(
            text,
            reasoning_field=field,
            finish_reason=finish,
            mode=self.spec.reasoning,
            max_tokens=max_tokens,
        )
        return ChatResult(
            text=read.text,
            reasoning=read.reasoning,
            raw=read.raw,
            finish_reason=finish,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_s=latency,
            cached=cached,
            error=read.error,
        )

    def _from_cache(self, job: _Job, hit: CachedResponse) -> ChatResult:
        self.stats.cache_hits += 1
        if self.cache is not None:
            self.cache.log_soon(
                CallRecord(
                    model=self.name,
                    backend=self.backend.name,
                    key=job.key,
                    tokens_in=hit.tokens_in,
                    tokens_out=hit.tokens_out,
                    cache_hit=True,
                    tag=job.origin.tag,
                    finish_reason=hit.finish_reason,
                )
            )
        return self._read(
            hit.text,
            hit.reasoning,
            hit.finish_reason,
            hit.tokens_in,
            hit.tokens_out,
            0.0,
            True,
            job.sampling.max_tokens if job.sampling else None,
        )

    async def _store(self, job: _Job, result: ChatResult, attempts: int) -> ChatResult:
        """Count a backend answer, commit it (an answer) or log it (a failure), and read it."""
        self.stats.calls += 1
        self.stats.tokens_in += result.tokens_in
        self.stats.tokens_out += result.tokens_out
        cost = self._cost(result.tokens_in, result.tokens_out)
        self.stats.cost += cost
        err = result.error
        record = CallRecord(
            model=self.name,
            backend=self.backend.name,
            key=job.key,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            latency_s=result.latency_s,
            cost=cost,
            error_kind=err.kind if err else None,
            error_message=err.message if err else None,
            attempts=attempts,
            tag=job.origin.tag,
            finish_reason=result.finish_reason,
        )
        if err is not None:
            if self.cache is not None:
                self.cache.log_soon(record)
            return result
        if self.cache is not None:
            response = CachedResponse(
                text=result.text,
                finish_reason=result.finish_reason,
                tokens_in=result.tokens_in,
                tokens_out=result.tokens_out,
                latency_s=result.latency_s,
                reasoning=result.reasoning,
            )
            await self.cache.aput(job.key, self.name, self.backend.name, response, record)
        return self._read(
            result.text,
            result.reasoning,
            result.finish_reason,
            result.tokens_in,
            result.tokens_out,
            result.latency_s,
            False,
            job.sampling.max_tokens if job.sampling else None,
        )

    # -- calling -----------------------------------------------------------------------------

    async def _call(self, job: _Job) -> ChatResult:
        """One request through cache, limits, backend and retries (no follow-ups)."""
        if self.cache is not None:
            hit = self.cache.get(job.key)
            if hit is not None:
                return self._from_cache(job, hit)
        result, attempts = await self._call_backend(job)
        return await self._store(job, result, attempts)

    async def _call_fixed(self, jobs: list[_Job]) -> list[ChatResult]:
        """A fixed unit: all from the cache, or the whole list generated together."""
        hits = [self.cache.get(j.key) if self.cache is not None else None for j in jobs]
        if all(h is not None for h in hits):
            return [self._from_cache(j, h) for j, h in zip(jobs, hits, strict=True) if h]
        start = time.perf_counter()
        try:
            raws = await self.backend.agenerate_fixed([j.req for j in jobs])
        except KoalignError:
            raise
        except Exception as exc:  # a backend bug must not lose the caller's other work
            log.exception("model %s: backend raised", self.name)
            err = CallError(kind="other", message=f"{type(exc).__name__}: {exc}")
            raws = [ChatResult(error=err) for _ in jobs]
        elapsed = time.perf_counter() - start
        out: list[ChatResult | None] = [None] * len(jobs)
        stores = []
        for i, (job, hit, raw) in enumerate(zip(jobs, hits, raws, strict=True)):
            if not raw.latency_s:
                raw = raw.model_copy(update={"latency_s": elapsed})
            if hit is not None:
                self.stats.recomputed += 1
                if raw.error is None and (raw.text, raw.finish_reason) != (
                    hit.text,
                    hit.finish_reason,
                ):
                    self.stats.nondeterministic += 1
                    log.warning(
                        "model %s: a fixed batch regenerated a cached answer differently; "
                        "the cached answer is kept",
                        self.name,
                    )
                out[i] = self._from_cache(job, hit)
            else:
                stores.append((i, self._store(job, raw, 1)))
        for (i, _), result in zip(
            stores, await asyncio.gather(*(s for _, s in stores)), strict=True
        ):
            out[i] = result
        return [r for r in out if r is not None]

    async def _calls(self, jobs: list[_Job], fixed: bool) -> list[ChatResult]:
        if fixed:
            return await self._call_fixed(jobs)
        if len(jobs) == 1:
            return [await self._call(jobs[0])]
        return list(await asyncio.gather(*(self._call(j) for j in jobs)))

    def _sem(self) -> PrioritySemaphore:
        """This loop's ``max_concurrency`` slots; a caller waiting for one is served by its
        context's :data:`~koalign.backends.limits.call_priority`, then in arrival order."""
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            sem = self._sems[loop] = PrioritySemaphore(self.spec.max_concurrency)
        return sem

    def _cost(self, tokens_in: int, tokens_out: int) -> float:
        return (
            tokens_in * (self.spec.price_in_per_1m or 0.0)
            + tokens_out * (self.spec.price_out_per_1m or 0.0)
        ) / 1e6

    async def _attempt(self, job: _Job) -> tuple[ChatResult, float]:
        """One request to the backend, holding a slot: its result and seconds taken."""
        request = job.req  # built once a slot is free
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
        return result, time.perf_counter() - start

    async def _call_backend(self, job: _Job) -> tuple[ChatResult, int]:
        spec = self.spec
        attempts = 0
        connect_failures = 0
        while True:
            attempts += 1
            estimate = 0
            if self._rpm is not None:
                await self._rpm.acquire(1)
            if self._tpm is not None:
                chars = sum(len(m.content) for m in job.req.messages)
                estimate = estimate_tokens(chars, job.sampling.max_tokens if job.sampling else None)
                await self._tpm.acquire(estimate)
            result, elapsed = await self._sem().run(functools.partial(self._attempt, job))
            if self._tpm is not None:
                used = result.tokens_in + result.tokens_out if result.error is None else 0
                self._tpm.refund(estimate - used)
            error = result.error
            if error is None:
                if not result.latency_s:
                    result = result.model_copy(update={"latency_s": elapsed})
                return result, attempts
            delay = None
            if error.kind == "connection":
                if connect_failures < CONNECT_RETRIES and attempts <= spec.max_retries:
                    delay = CONNECT_BACKOFF_S * 2**connect_failures
                connect_failures += 1
            elif error.kind in RETRYABLE_KINDS and attempts <= spec.max_retries:
                delay = backoff_delay(
                    attempts,
                    base=spec.retry_backoff,
                    cap=spec.retry_backoff_max,
                    retry_after=error.retry_after,
                )
                if error.retry_after is not None and error.retry_after > spec.retry_backoff_max:
                    log.warning(
                        "model %s: the server asked to wait %.1f s (Retry-After), more than "
                        "retry_backoff_max=%g s; waiting %.1f s",
                        self.name,
                        error.retry_after,
                        spec.retry_backoff_max,
                        delay,
                    )
            if delay is not None:
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
            message = error.message
            if error.kind == "connection":
                message = f"model '{self.name}': {message}"
            error = error.model_copy(update={"attempts": attempts, "message": message})
            return result.model_copy(update={"error": error, "latency_s": elapsed}), attempts

    # -- follow-ups: truncation and JSON -----------------------------------------------------

    async def _retry_budget(self, job: _Job, result: ChatResult) -> int | None:
        """The larger ``max_tokens`` for a truncated answer, or ``None`` when it cannot grow."""
        sampling = job.sampling
        current = (
            (sampling.max_tokens if sampling else None)
            or self.backend.default_max_tokens()
            or result.tokens_out
        )
        if not current:
            return None
        cap = MAX_RETRY_TOKENS
        window = await self.context_window()
        if window is not None:
            prompt = result.tokens_in or self.count_tokens(job.req.messages)
            cap = min(cap, window - prompt)
        budget = min(2 * current, cap)
        return budget if budget > current else None

    async def _complete(self, jobs: list[_Job], fixed: bool) -> list[ChatResult]:
        """Calls with the truncation policy applied (one retry with a larger budget)."""
        results = await self._calls(jobs, fixed)
        retry: list[tuple[int, _Job]] = []
        for i, (job, result) in enumerate(zip(jobs, results, strict=True)):
            if result.error is None or result.error.kind != "truncated":
                continue
            self.stats.truncated += 1
            if job.origin.on_truncation != "retry" or job.retried:
                continue
            budget = await self._retry_budget(job, result)
            if budget is None:
                continue
            assert job.sampling is not None  # merged with the spec's defaults
            sampling = job.sampling.model_copy(update={"max_tokens": budget})
            bigger = self._job(job.req.model_copy(update={"sampling": sampling}), job.origin)
            bigger.retried = True
            retry.append((i, bigger))
        if retry:
            self.stats.truncation_retries += len(retry)
            again = await self._complete([j for _, j in retry], fixed)
            for (i, _), result in zip(retry, again, strict=True):
                results[i] = _combine(results[i], result)
        return results

    async def _json(
        self, jobs: list[_Job], results: list[ChatResult], fixed: bool
    ) -> list[ChatResult]:
        """Parse, validate and repair the answers of requests that carry a schema."""
        current = list(jobs)
        repairs = 0
        while True:
            failing: list[tuple[int, CallError]] = []
            for i, (job, result) in enumerate(zip(current, results, strict=True)):
                schema = job.schema
                if schema is None or result.error is not None or result.parsed is not None:
                    continue
                parsed, error = validate_json(result.text, schema, prompt=job.prompt)
                if error is None:
                    results[i] = result.model_copy(update={"parsed": parsed})
                else:
                    failing.append((i, error))
            repairable = [(i, e) for i, e in failing if e.kind in ("parse", "schema")]
            final = (
                failing
                if repairs >= self.spec.json_repairs
                else [(i, e) for i, e in failing if e.kind not in ("parse", "schema")]
            )
            for i, error in final:
                results[i] = results[i].model_copy(
                    update={"error": error.model_copy(update={"attempts": repairs + 1})}
                )
            if repairs >= self.spec.json_repairs or not repairable:
                return results
            repairs += 1
            self.stats.repairs += len(repairable)
            fixes = []
            for i, error in repairable:
                job = current[i]
                schema = job.schema
                assert schema is not None
                log.debug("model %s: JSON repair %d after %s", self.name, repairs, error.message)
                messages = repair_messages(job.req.messages, results[i].text, error, schema)
                fixes.append(
                    self._job(job.req.model_copy(update={"messages": messages}), job.origin)
                )
            fixed_results = await self._complete(fixes, fixed)
            for (i, _), job, result in zip(repairable, fixes, fixed_results, strict=True):
                current[i] = job
                results[i] = _combine(results[i], result)

    async def _process(self, jobs: list[_Job], fixed: bool) -> list[ChatResult]:
        results = await self._complete(jobs, fixed)
        if any(j.schema is not None for j in jobs):
            results = await self._json(jobs, results, fixed)
        for r in results:
            if r.error is not None:
                self.stats.errors += 1
        return results


class ModelPool:
    """The models of one run, created lazily by name, sharing one cache file.

    ``specs``: model name -> :class:`ModelSpec`; ``cache_path``: the SQLite cache and call log
    (``None``: neither); ``env``: where API-key variables are read (default: the process
    environment).
    """

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
        """The model declared as ``name`` (created on first use). Raises
        :class:`~koalign.errors.BackendError` for an unknown name or a backend that cannot be
        created (unknown backend, missing API key, missing extra)."""
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
        """Per-model counters of the models used so far."""
        return {name: llm.stats for name, llm in self._models.items()}

    async def aclose(self) -> None:
        """Close every backend and the cache (its queued writes are committed first)."""
        for llm in self._models.values():
            await llm.backend.aclose()
        if self.cache is not None:
            cache, self.cache = self.cache, None
            try:
                cache.flush()
            finally:
                cache.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose` (not from inside a running loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            eventloop.run(self.aclose())
            return
        raise BackendError(
            "ModelPool.close() was called inside a running event loop",
            hint="use `await pool.aclose()` in async code",
        )
