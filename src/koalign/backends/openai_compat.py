"""The ``openai`` backend: any OpenAI-compatible chat server (vLLM, SGLang, TGI, Ollama,
llama.cpp, ``transformers serve``, hosted APIs) through the official async SDK.

The backend makes exactly one HTTP attempt per request (the SDK's own retries are off) and turns
every failure into a typed :class:`~koalign.types.CallError`, with the server's Retry-After
when it sent one; :mod:`koalign.backends.client` does the retrying, rate limiting and caching.

Options (``spec.options``): ``extra_body`` (a mapping merged into every request body, e.g.
``{"top_k": 20}`` for vLLM), ``schema_name`` (the name sent with ``response_format``,
default ``answer``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any

from koalign.backends.base import Backend, ModelSpec
from koalign.errors import BackendError, did_you_mean
from koalign.types import CallError, ChatRequest, ChatResult

log = logging.getLogger(__name__)

JSON_MODES = ("prompt", "response_format")
POOL_SIZE = 16  # connections per HTTP client (see OpenAIBackend._client)


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (a number; HTTP dates are ignored)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            continue
    return None


def classify_exception(exc: BaseException) -> CallError:
    """Map an SDK or transport exception to a typed error (never includes the API key)."""
    import openai

    http = _http_module()
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError | http.TimeoutException):
        return CallError(kind="timeout", message="the request timed out")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"HTTP {status}: {_short(exc.message)}"
        retry_after = _retry_after(exc.response.headers if exc.response is not None else None)
        if status == 429:
            kind = "rate_limit"
        elif status >= 500:
            kind = "server"
        elif status == 408:
            kind = "timeout"
        elif status in (401, 403):
            kind = "auth"
        else:
            kind = "bad_request"
        return CallError(kind=kind, message=message, status=status, retry_after=retry_after)
    if isinstance(exc, openai.APIConnectionError | http.TransportError):
        cause = exc.__cause__ or exc
        return CallError(kind="connection", message=f"connection failed: {_short(str(cause))}")
    if isinstance(
        exc, json.JSONDecodeError | UnicodeDecodeError | openai.APIResponseValidationError
    ):
        return CallError(kind="server", message=f"malformed response body: {_short(str(exc))}")
    return CallError(kind="other", message=f"{type(exc).__name__}: {_short(str(exc))}")


def _http_module() -> Any:
    """The HTTP library the installed openai SDK is built on (httpx2 in openai 3.x, else httpx)."""
    import openai

    name = openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]
    import importlib

    return importlib.import_module(name)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Shard:
    __slots__ = ("busy", "client")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.busy = 0


class OpenAIBackend(Backend):
    """One model on an OpenAI-compatible server."""

    name = "openai"

    def __init__(self, spec: ModelSpec, *, env: dict[str, str] | None = None) -> None:
        super().__init__(spec, env=env)
        if spec.json_mode not in JSON_MODES:
            raise BackendError(
                f"unknown json_mode '{spec.json_mode}'{did_you_mean(spec.json_mode, JSON_MODES)}",
                where=f"model '{spec.model}'",
                hint=f"use one of: {', '.join(JSON_MODES)}",
            )
        if spec.api_key_env:
            if not self.env.get(spec.api_key_env):
                raise BackendError(
                    f"the environment variable {spec.api_key_env} is not set",
                    where=f"model '{spec.model}'",
                    hint=f"export {spec.api_key_env}=... (api_key_env names the variable)",
                )
        elif spec.base_url is None:
            raise BackendError(
                "neither base_url nor api_key_env is set",
                where=f"model '{spec.model}'",
                hint="set base_url for a local server, or api_key_env for a hosted API",
            )
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def cache_identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.spec.model,
            "base_url": self.spec.base_url,
            "json_mode": self.spec.json_mode,
            "extra_body": self.spec.options.get("extra_body"),
        }

    def _client(self) -> _Shard:
        """An AsyncOpenAI client for this event loop (an httpx pool cannot cross loops).

        Connections are spread over several small clients, each request going to the least
        busy one: the HTTP pool scans all of its connections on every request and every
        release, so one pool of 64 connections costs far more CPU per request than four
        pools of 16.
        """
        loop = asyncio.get_running_loop()
        shards = self._clients.get(loop)
        if shards is None:
            n = -(-self.spec.max_concurrency // POOL_SIZE)
            per = -(-self.spec.max_concurrency // n)
            shards = self._clients[loop] = [_Shard(self._new_client(per)) for _ in range(n)]
        return min(shards, key=lambda shard: shard.busy)

    def _new_client(self, connections: int) -> Any:
        import openai

        http = _http_module()
        key = self.env.get(self.spec.api_key_env) if self.spec.api_key_env else None
        limits = http.Limits(max_connections=connections, max_keepalive_connections=connections)
        return openai.AsyncOpenAI(
            api_key=key or "unused",
            base_url=self.spec.base_url,
            timeout=self.spec.timeout,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
        )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if s is not None:
            if s.temperature is not None:
                body["temperature"] = s.temperature
            if s.top_p is not None:
                body["top_p"] = s.top_p
            if s.max_tokens is not None:
                body["max_tokens"] = s.max_tokens
            if s.seed is not None:
                body["seed"] = s.seed + request.sample_index
            if s.stop:
                body["stop"] = list(s.stop)
        if request.json_schema is not None and self.spec.json_mode == "response_format":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": self.spec.options.get("schema_name", "answer"),
                    "schema": request.json_schema,
                    "strict": True,
                },
            }
        extra = self.spec.options.get("extra_body")
        if extra:
            body.update(extra)
        return body

    async def _one(self, request: ChatRequest) -> ChatResult:
        start = time.perf_counter()
        try:
            # the SDK's low-level post: the same client, auth and errors as
            # chat.completions.create, without re-walking our plain body through its TypedDicts
            shard = self._client()
            shard.busy += 1
            try:
                resp = await shard.client.post(
                    "/chat/completions",
                    cast_to=dict,
                    body=self._body(request),
                    options={"security": {"bearer_auth": True}},
                )
            finally:
                shard.busy -= 1
        except Exception as exc:
            error = classify_exception(exc)
            if error.kind == "other":
                log.warning("model %s: unexpected %s", self.spec.model, error.message)
            return ChatResult(error=error, latency_s=time.perf_counter() - start)
        latency = time.perf_counter() - start
        return self._result(resp, latency)

    @staticmethod
    def _result(data: Any, latency: float) -> ChatResult:
        """A ChatResult from a chat-completions JSON body (shape errors are server errors)."""
        try:
            usage = data.get("usage") or {}
            tokens_in = int(usage.get("prompt_tokens") or 0)
            tokens_out = int(usage.get("completion_tokens") or 0)
            choices = data.get("choices") or []
            choice = choices[0] if choices else None
            message = choice.get("message") if choice else None
            text = message.get("content") if message else None
            finish = choice.get("finish_reason") if choice else None
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            return ChatResult(
                error=CallError(kind="server", message=f"malformed response: {exc}"),
                latency_s=latency,
            )
        if choice is None:
            return ChatResult(
                error=CallError(kind="server", message="malformed response: no choices"),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_s=latency,
            )
        if text is not None and not isinstance(text, str):
            text = json.dumps(text, ensure_ascii=False)
        result = ChatResult(
            text=text,
            finish_reason=finish,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_s=latency,
        )
        if not text:
            error = CallError(kind="empty", message="the model returned no text")
            return result.model_copy(update={"error": error})
        return result

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        if len(requests) == 1:
            return [await self._one(requests[0])]
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        clients, self._clients = dict(self._clients), weakref.WeakKeyDictionary()
        for owner, shards in clients.items():
            if owner is loop:
                for shard in shards:
                    await shard.client.close()
            # clients of other (finished) loops die with their loop's transports
