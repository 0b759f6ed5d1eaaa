"""The ``openai`` backend: any OpenAI-compatible chat server (vLLM, SGLang, TGI, Ollama,
llama.cpp, ``transformers serve``, hosted APIs).

Requests are posted as pre-built JSON bodies (orjson) over aiohttp's connection pool and the
answers parsed with orjson: about a quarter of the CPU per request of the official SDK over
httpx (figures and command in docs/backends.md). The error semantics are the SDK's:

* one HTTP attempt per request; :mod:`koalign.backends.client` retries;
* status classes: 429 ``rate_limit``; 408 ``timeout``; 409 and 5xx ``server``; 401/403
  ``auth``; other 4xx ``bad_request``; the server's error message is kept (shortened);
* ``Retry-After`` (seconds or an HTTP date) and ``retry-after-ms`` are passed on;
* no answer within ``timeout`` seconds: ``timeout``;
* a connection that cannot be opened (refused, unknown host): ``connection``, naming the
  address; a connection dropped mid-answer, a body cut short of its Content-Length, a body that
  is not JSON (or not UTF-8), or JSON without ``choices``: ``server`` (all retryable).

The answer's ``content`` is returned as it came (reasoning tags included); a ``reasoning_content``
or ``reasoning`` field of the message is returned as ``reasoning``. A lone surrogate escaped in
the body (``"\\ud83d"``) is decoded, not an error; a prompt holding one is sent escaped.

Options (``spec.options``): ``extra_body`` (a mapping merged into every request body, e.g.
``{"top_k": 20}`` for vLLM), ``schema_name`` (the name sent with ``response_format``, default
``answer``), ``headers`` (extra HTTP headers, e.g. for a gateway: their values are never
written or shown), ``headers_env`` (header name -> NAME of the environment variable holding its
value, for secrets), ``tokenizer`` (a local tokenizer folder or cached hub id used to count
prompt tokens exactly; needs ``koalign[hf]``).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import sys
import time
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from koalign import eventloop
from koalign.backends.base import Backend, ModelSpec, secret_value
from koalign.errors import BackendError, did_you_mean
from koalign.types import CallError, ChatRequest, ChatResult, ErrorKind, Message

log = logging.getLogger(__name__)

JSON_MODES = ("prompt", "response_format")
OPTIONS = ("extra_body", "schema_name", "headers", "headers_env", "tokenizer")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
WINDOW_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")
"""Fields of a ``/models`` entry read as the model's context window, in this order (vLLM's
``max_model_len``; ``context_length`` / ``context_window`` / ``max_context_length`` elsewhere)."""


def parse_retry_after(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or an HTTP
    date, RFC 9110 10.2.3); ``None`` when absent or unreadable. A date in the past gives 0."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def env_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (``HTTP_PROXY`` / ``HTTPS_PROXY`` /
    ``ALL_PROXY``, honouring ``NO_PROXY``), or ``None``."""
    import urllib.request

    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme) or urllib.request.getproxies().get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loads(raw: bytes) -> Any:
    """JSON from a response body; the stdlib takes over for what orjson refuses (a lone
    surrogate escape). Raises ``ValueError`` for a body that is not JSON or not UTF-8."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw.decode("utf-8"))


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # a lone surrogate in a prompt: send it as a \\uXXXX escape
        return json.dumps(body).encode("ascii")


def _error_message(raw: bytes) -> str:
    try:
        data = _loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _short(raw.decode("utf-8", "replace"))
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return _short(str(err["message"]))
        if isinstance(err, str):
            return _short(err)
        if data.get("message"):
            return _short(str(data["message"]))
    return _short(raw.decode("utf-8", "replace"))


def status_error(status: int, raw: bytes, headers: Any) -> CallError:
    """The typed error of an HTTP error status (see the module docstring for the classes)."""
    kind: ErrorKind
    if status == 429:
        kind = "rate_limit"
    elif status >= 500 or status == 409:
        kind = "server"
    elif status == 408:
        kind = "timeout"
    elif status in (401, 403):
        kind = "auth"
    else:
        kind = "bad_request"
    return CallError(
        kind=kind,
        message=f"HTTP {status}: {_error_message(raw)}",
        status=status,
        retry_after=parse_retry_after(headers),
    )


def _text_of(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(t for t in texts if isinstance(t, str))
    return json.dumps(content, ensure_ascii=False)


def parse_completion(data: Any, latency: float) -> ChatResult:
    """A ChatResult from a chat-completions JSON body: ``content`` as it came (a refusal when
    content is null), the reasoning field, finish reason and usage. A body without a usable
    choice is a retryable ``server`` error."""
    try:
        usage = data.get("usage") or {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
        choices = data.get("choices") or []
        choice = choices[0] if choices else None
        message = choice.get("message") if choice is not None else None
        if choice is None or not isinstance(message, dict):
            return ChatResult(
                error=CallError(kind="server", message="malformed response: no choices"),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_s=latency,
            )
        text = _text_of(message.get("content"))
        if text is None and isinstance(message.get("refusal"), str):
            text = message["refusal"]
        reasoning = message.get("reasoning_content")
        if reasoning is None:
            reasoning = message.get("reasoning")
        reasoning = _text_of(reasoning) or None
        finish = choice.get("finish_reason")
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        return ChatResult(
            error=CallError(kind="server", message=f"malformed response: {_short(str(exc))}"),
            latency_s=latency,
        )
    return ChatResult(
        text=text,
        reasoning=reasoning,
        finish_reason=finish if isinstance(finish, str) else None,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        latency_s=latency,
    )


def _mapping(spec: ModelSpec, option: str) -> dict[str, Any]:
    value = spec.options.get(option)
    if value is None:
        return {}
    if not isinstance(value, dict):  # the value itself is never quoted: it may be a secret
        raise BackendError(
            f"options.{option} must be a mapping of header name to "
            + ("value" if option == "headers" else "environment variable NAME"),
            where=f"model '{spec.model}'.options.{option}",
            hint=f"e.g. {option}: {{X-Gateway-Token: "
            + ("...}" if option == "headers" else "GATEWAY_TOKEN}"),
        )
    return value


def _extra_headers(spec: ModelSpec, env: dict[str, str]) -> dict[str, str]:
    """The headers of ``options.headers`` and ``options.headers_env`` (values read from ``env``).

    Raises one BackendError naming every environment variable that is not set (the API key's
    included) and never quoting a header value."""
    literal = _mapping(spec, "headers")
    named = _mapping(spec, "headers_env")
    where = f"model '{spec.model}'.options"
    for name, value in literal.items():
        if value is None or isinstance(value, dict | list):
            raise BackendError(
                f"the value of header '{name}' must be a string",
                where=f"{where}.headers",
                hint="write the header's value as text, or name its variable in headers_env",
            )
    twice = sorted({str(k).lower() for k in literal} & {str(k).lower() for k in named})
    if twice:
        raise BackendError(
            f"header {', '.join(repr(n) for n in twice)} is set in both headers and headers_env",
            where=where,
            hint="keep one of the two (headers_env keeps the value out of the config)",
        )
    for name, var in named.items():
        if not isinstance(var, str) or not var:
            raise BackendError(
                f"headers_env.{name} must name an environment variable",
                where=f"{where}.headers_env",
                hint=f"e.g. headers_env: {{{name}: GATEWAY_TOKEN}} and export GATEWAY_TOKEN=...",
            )
    missing = [v for v in spec.secret_env_vars() if not env.get(v)]
    if missing:
        local = ""
        if spec.api_key_env in missing and not spec.base_url:
            local = ", or set base_url for a local server"
        names = ", ".join(missing)
        how = "api_key_env names the variable"
        if named:
            how = "api_key_env and headers_env name the variables, never the values"
        raise BackendError(
            f"the environment variable{'s' if len(missing) > 1 else ''} {names} "
            f"{'are' if len(missing) > 1 else 'is'} not set",
            where=f"model '{spec.model}'",
            hint=f"export {'=... '.join(missing)}=... ({how}){local}",
        )
    headers = {str(k): secret_value(v) for k, v in literal.items()}
    headers.update({str(k): env[v] for k, v in named.items()})
    return headers


@functools.cache
def _request_class() -> Any:
    """aiohttp's request class, writing the request at once.

    aiohttp writes a request's body (and the headers it holds back to send with it) from a new
    task. On Python 3.12 and later that task starts eagerly, so the request is on the socket
    before ``post`` first waits; on 3.11 it starts only after every callback already waiting on
    the event loop, which, when a wave of answers has just arrived, holds each new request back
    by the time it takes to handle the rest of the wave - time a model's slot is held with
    nothing at the server. On 3.11 the body writer is started the way 3.12 starts it
    (:func:`koalign.eventloop.started`)."""
    import aiohttp

    if sys.version_info >= (3, 12):
        return aiohttp.ClientRequest

    class EagerBodyRequest(aiohttp.ClientRequest):
        def write_bytes(self, *args: Any, **kwargs: Any) -> Any:
            return eventloop.started(super().write_bytes(*args, **kwargs))

    return EagerBodyRequest


async def _close_at_shutdown(session: Any) -> AsyncGenerator[None, None]:
    """Suspended for the loop's lifetime; closing it (by the loop's shutdown of async
    generators, or explicitly) closes ``session``."""
    try:
        yield
    finally:
        await session.close()


class OpenAIBackend(Backend):
    """One model on an OpenAI-compatible server (see the module docstring)."""

    name = "openai"

    def __init__(self, spec: ModelSpec, *, env: dict[str, str] | None = None) -> None:
        super().__init__(spec, env=env)
        if spec.json_mode not in JSON_MODES:
            raise BackendError(
                f"unknown json_mode '{spec.json_mode}'{did_you_mean(spec.json_mode, JSON_MODES)}",
                where=f"model '{spec.model}'",
                hint=f"use one of: {', '.join(JSON_MODES)}",
            )
        for option in spec.options:
            if option not in OPTIONS:
                raise BackendError(
                    f"unknown openai option '{option}'{did_you_mean(option, OPTIONS)}",
                    where=f"model '{spec.model}'.options",
                    hint=f"known options: {', '.join(OPTIONS)}",
                )
        extra_headers = _extra_headers(spec, self.env)
        key = self.env.get(spec.api_key_env) if spec.api_key_env else None
        self.base_url = (spec.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._url = self.base_url + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._headers.update(extra_headers)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()
        self._schema_name = str(spec.options.get("schema_name", "answer"))
        self._extra = dict(spec.options.get("extra_body") or {})
        self._tokenizer: Any = None

    def cache_identity(self) -> dict[str, Any]:
        """Backend, model, base URL, JSON mode and extra body (the API key never)."""
        return {
            "backend": self.name,
            "model": self.spec.model,
            "base_url": self.spec.base_url,
            "json_mode": self.spec.json_mode,
            "extra_body": self.spec.options.get("extra_body"),
        }

    # -- HTTP --------------------------------------------------------------------------------

    async def _session(self) -> Any:
        """The aiohttp session of the running event loop (a connection pool cannot cross
        loops), holding at most ``max_concurrency`` connections. It is closed by
        :meth:`arelease` / :meth:`aclose`, or when the loop shuts its async generators down
        (``asyncio.run`` does), so no connection outlives its loop."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not session.closed:
            return session
        import aiohttp

        # no TLS context for a plain-http server (building one loads the CA store)
        ssl: bool = not self.base_url.startswith("http://")
        connector = aiohttp.TCPConnector(
            limit=self.spec.max_concurrency, limit_per_host=0, ttl_dns_cache=300, ssl=ssl
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.spec.timeout),
            headers=self._headers,
            # the environment's proxy is read once here, not per request (aiohttp's trust_env
            # costs two thread hand-offs per request)
            proxy=env_proxy(self.base_url),
            skip_auto_headers=("User-Agent",),
            request_class=_request_class(),
        )
        self._sessions[loop] = session
        closer = _close_at_shutdown(session)
        self._closers[loop] = closer
        await closer.__anext__()
        return session

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
                    "name": self._schema_name,
                    "schema": request.json_schema,
                    "strict": True,
                },
            }
        if self._extra:
            body.update(self._extra)
        return body

    def _transport_error(self, exc: BaseException) -> CallError:
        import aiohttp

        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return CallError(kind="timeout", message=f"no answer within {self.spec.timeout:g} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            os_error = exc.os_error
            reason = (os_error.strerror or str(os_error)) if os_error is not None else str(exc)
            return CallError(
                kind="connection",
                message=f"cannot connect to {self.base_url}: {_short(str(reason))}",
            )
        if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            return CallError(
                kind="server",
                message=f"the answer was cut off: {_short(str(exc) or type(exc).__name__)}",
            )
        if isinstance(exc, aiohttp.ClientResponseError):  # an unreadable status line or headers
            return CallError(kind="server", message=f"malformed response: {_short(str(exc))}")
        if isinstance(exc, aiohttp.ClientError | OSError):
            return CallError(
                kind="server",
                message=f"connection to {self.base_url} failed: "
                f"{_short(str(exc) or type(exc).__name__)}",
            )
        return CallError(kind="other", message=f"{type(exc).__name__}: {_short(str(exc))}")

    async def _one(self, request: ChatRequest) -> ChatResult:
        start = time.perf_counter()
        try:
            session = await self._session()
            async with session.post(self._url, data=_dumps(self._body(request))) as resp:
                raw = await resp.read()
                status = resp.status
                headers = resp.headers
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._transport_error(exc)
            if error.kind == "other":
                log.warning("model %s: unexpected %s", self.spec.model, error.message)
            return ChatResult(error=error, latency_s=time.perf_counter() - start)
        latency = time.perf_counter() - start
        if status >= 400:
            return ChatResult(error=status_error(status, raw, headers), latency_s=latency)
        try:
            data = _loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            error = CallError(kind="server", message=f"malformed response body: {_short(str(exc))}")
            return ChatResult(error=error, latency_s=latency)
        if not isinstance(data, dict):
            error = CallError(kind="server", message="malformed response: not a JSON object")
            return ChatResult(error=error, latency_s=latency)
        return parse_completion(data, latency)

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer ``requests`` concurrently (one HTTP request each; see the module docstring
        for the error kinds)."""
        if len(requests) == 1:
            return [await self._one(requests[0])]
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    # -- model facts -------------------------------------------------------------------------

    async def acontext_window(self) -> int | None:
        """The model's window from ``GET {base_url}/models`` (the entry whose ``id`` is the
        model; fields :data:`WINDOW_FIELDS`), or ``None`` (no such field, or no answer)."""
        try:
            session = await self._session()
            async with session.get(self.base_url + "/models") as resp:
                if resp.status != 200:
                    return None
                data = _loads(await resp.read())
        except Exception as exc:  # an unknown window, not a failure
            log.info("model %s: no model list from %s (%s)", self.spec.model, self.base_url, exc)
            return None
        entries = data.get("data") if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == self.spec.model:
                for name in WINDOW_FIELDS:
                    value = entry.get(name)
                    if isinstance(value, int) and value > 0:
                        return value
        return None

    def counts_tokens_exactly(self) -> bool:
        """True with ``options.tokenizer``."""
        return bool(self.spec.options.get("tokenizer"))

    def count_tokens(self, messages: Sequence[Message]) -> int | None:
        """Exact prompt tokens with ``options.tokenizer`` (its chat template applied), else
        ``None`` (the model layer estimates)."""
        name = self.spec.options.get("tokenizer")
        if not name:
            return None
        if self._tokenizer is None:
            from koalign.errors import require

            transformers = require("transformers", "hf", feature="options.tokenizer")
            try:
                self._tokenizer = transformers.AutoTokenizer.from_pretrained(name)
            except (OSError, ValueError) as exc:
                raise BackendError(
                    f"cannot load the tokenizer: {exc}",
                    where=f"model '{self.spec.model}'.options.tokenizer",
                    hint="give a local tokenizer folder or a hub id that is cached",
                ) from exc
        tok = self._tokenizer
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        else:
            text = "\n".join(m["content"] for m in msgs)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    # -- lifecycle ---------------------------------------------------------------------------

    async def arelease(self) -> None:
        """Close the running loop's connections."""
        loop = asyncio.get_running_loop()
        self._sessions.pop(loop, None)
        closer = self._closers.pop(loop, None)
        if closer is not None:
            await closer.aclose()

    async def aclose(self) -> None:
        """Close the running loop's connections (those of finished loops went with them)."""
        await self.arelease()
