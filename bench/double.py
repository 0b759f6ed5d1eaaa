"""A latency-simulating OpenAI-compatible server: a benchmark double, never used by koalign.

It answers ``POST /v1/chat/completions`` (plus ``GET /v1/models``, ``GET /health`` and
``GET /stats``) like a model server would, without a model:

* latency: each request takes a lognormal time with the given mean (``--latency-mean``) and
  shape (``--latency-sigma``, the sigma of the underlying normal; 0 = constant);
* capacity: at most ``--cap`` requests are served at once; the rest queue (FIFO);
* faults, each at its own rate: ``--fault-429`` (429 with ``Retry-After`` in seconds, or as an
  HTTP date with ``--retry-after-format date``, immediate),
  ``--fault-500`` (immediate), ``--fault-timeout`` (the request hangs for ``--timeout-hang``
  seconds), ``--fault-malformed`` (200 with a broken JSON body), ``--fault-truncated`` (a body
  cut short of its Content-Length, then the connection closes); ``--script 429,500,ok`` plays
  the listed faults (or ``ok``) for the first requests in arrival order before the rates apply;
* answers: when the request asks for a JSON schema it returns a valid instance of it,
  otherwise Korean sentences from ``src/koalign/data/corpus_ko.txt``. A schema is detected, in
  this order, from ``response_format`` (``json_schema`` -> its schema; ``json_object`` -> an
  object) or from koalign's prompt contract: the last message that holds
  ``<json_schema>{...}</json_schema>`` (see ``koalign.backends.structured``). Supported
  keywords: type, properties, required, items, min/maxItems, enum, const, anyOf/oneOf/allOf,
  $ref to #/$defs, min/maxLength, minimum/maximum (exclusive too); ``pattern`` and ``format``
  are not honoured;
* answer shapes real models produce, each at its own rate (``--shape-think``,
  ``--shape-reasoning-field``, ``--shape-truncated``, ``--shape-empty``, ``--shape-surrogate``,
  ``--shape-echo``) or scripted for the first answers (``--shape-script think,ok,empty``):
  ``think`` puts a draft (another valid instance for schema requests) in a ``<think>`` block
  before the answer; ``reasoning_field`` sends reasoning in ``reasoning_content``; ``truncated``
  cuts the answer in half with ``finish_reason: length``; ``empty`` sends ``content: null``;
  ``surrogate`` appends a lone surrogate escape (``\\ud83d``) to the answer; ``echo`` answers
  with the last user message;
* it records every request (time, model, schema mode, fault, status, queue wait, latency) in
  memory (``GET /stats`` summarises) and, with ``--record PATH``, as JSON lines.

Run it: ``python bench/double.py --port 8100 --cap 64 --latency-mean 0.5``. In tests or
benchmarks: ``with Double(DoubleConfig(cap=8)).running() as d: ... d.base_url ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import hashlib
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from koalign.backends.structured import SCHEMA_OPEN, schema_from_text

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "src" / "koalign" / "data" / "corpus_ko.txt"
FAULTS = ("429", "500", "timeout", "malformed", "truncated")
SHAPES = ("think", "reasoning_field", "truncated", "empty", "surrogate", "echo")
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


@dataclass
class DoubleConfig:
    host: str = "127.0.0.1"
    port: int = 0
    cap: int = 64
    latency_mean: float = 0.5
    latency_sigma: float = 0.25
    fault_429: float = 0.0
    fault_500: float = 0.0
    fault_timeout: float = 0.0
    fault_malformed: float = 0.0
    fault_truncated: float = 0.0
    retry_after: float = 1.0
    retry_after_format: str = "seconds"
    script: str = ""
    shape_think: float = 0.0
    shape_reasoning_field: float = 0.0
    shape_truncated: float = 0.0
    shape_empty: float = 0.0
    shape_surrogate: float = 0.0
    shape_echo: float = 0.0
    shape_script: str = ""
    timeout_hang: float = 30.0
    seed: int = 0
    record: str | None = None
    model: str = "double"


def find_schema(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``(schema, mode)``: mode is ``response_format``, ``prompt`` or None."""
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return (rf.get("json_schema") or {}).get("schema") or {}, "response_format"
    if rf.get("type") == "json_object":
        return {"type": "object"}, "response_format"
    for message in reversed(body.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str) and SCHEMA_OPEN in content:
            schema = schema_from_text(content)
            if schema is not None:
                return schema, "prompt"
    return None, None


class Instances:
    """Valid instances of a JSON schema, with Korean strings."""

    def __init__(self, rng: random.Random, sentences: list[str]) -> None:
        self.rng = rng
        self.sentences = sentences

    def korean(self, min_len: int = 0, max_len: int | None = None) -> str:
        text = self.rng.choice(self.sentences)
        while len(text) < min_len:
            text += " " + self.rng.choice(self.sentences)
        if max_len is not None:
            text = text[:max_len]
        return text

    def make(self, schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
        root = root if root is not None else schema
        if not isinstance(schema, dict) or depth > 12:
            return None
        if "$ref" in schema:
            target: Any = root
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target.get(part, {}) if part else target
            return self.make(target, root, depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.make(schema[key][0], root, depth + 1)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged = {**merged, **part}
            return self.make(merged, root, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        if kind == "object":
            props = schema.get("properties", {})
            return {k: self.make(v, root, depth + 1) for k, v in props.items()}
        if kind == "array":
            lo = int(schema.get("minItems", 1))
            hi = int(schema.get("maxItems", lo + 2))
            n = self.rng.randint(lo, max(lo, hi))
            return [self.make(schema.get("items", {}), root, depth + 1) for _ in range(n)]
        if kind in ("integer", "number"):
            lo = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            hi = schema.get("maximum", schema.get("exclusiveMaximum", lo + 10))
            if kind == "integer":
                lo_i = math.floor(lo) + (1 if "exclusiveMinimum" in schema else 0)
                hi_i = math.ceil(hi) - (1 if "exclusiveMaximum" in schema else 0)
                return self.rng.randint(min(lo_i, hi_i), max(lo_i, hi_i))
            return round(self.rng.uniform(lo, hi), 3)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.korean(int(schema.get("minLength", 0)), schema.get("maxLength"))


@dataclass
class Double:
    """The server. Start it in a running loop (``await start()``) or in a thread
    (``running()`` context manager)."""

    config: DoubleConfig = field(default_factory=DoubleConfig)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)
        sentences = [s.strip() for s in CORPUS.read_text(encoding="utf-8").splitlines()]
        self.instances = Instances(self.rng, [s for s in sentences if s])
        self.records: list[dict[str, Any]] = []
        self.port = self.config.port
        self._server: asyncio.AbstractServer | None = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._record_file = open(self.config.record, "a") if self.config.record else None  # noqa: SIM115
        self._ids = 0
        self._script = [f.strip() for f in self.config.script.split(",") if f.strip()]
        self._shapes = [f.strip() for f in self.config.shape_script.split(",") if f.strip()]

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sem = asyncio.Semaphore(self.config.cap)
        self._server = await asyncio.start_server(
            self._connection, self.config.host, self.config.port, backlog=4096
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        if self._record_file is not None:
            self._record_file.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Double]:
        """Serve from a background thread for the duration of the ``with`` block."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        async def main() -> None:
            await self.start()
            ready.set()
            await stop.wait()
            await self.stop()
            others = asyncio.all_tasks() - {asyncio.current_task()}
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        def serve() -> None:
            loop.run_until_complete(main())
            loop.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("the benchmark double did not start")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(5)

    # -- HTTP --------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                keep = await self._route(method, path.split("?")[0], body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(self, writer, status: int, payload: bytes, extra: dict[str, str] | None = None):
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()

    async def _route(self, method: str, path: str, body: bytes, writer) -> bool:
        if method == "GET" and path in ("/health", "/v1/health"):
            await self._send(writer, 200, b'{"status":"ok"}')
        elif method == "GET" and path == "/v1/models":
            data = {"object": "list", "data": [{"id": self.config.model, "object": "model"}]}
            await self._send(writer, 200, json.dumps(data).encode())
        elif method == "GET" and path == "/stats":
            await self._send(writer, 200, json.dumps(self.stats()).encode())
        elif method == "POST" and path == "/v1/chat/completions":
            return await self._chat(body, writer)
        else:
            await self._send(writer, 404, b'{"error":{"message":"not found"}}')
        return True

    def _fault(self) -> str | None:
        if self._script:
            fault = self._script.pop(0)
            return None if fault == "ok" else fault
        c = self.config
        r = self.rng.random()
        for name, rate in zip(
            FAULTS,
            (c.fault_429, c.fault_500, c.fault_timeout, c.fault_malformed, c.fault_truncated),
            strict=True,
        ):
            if r < rate:
                return name
            r -= rate
        return None

    def _shape(self) -> str | None:
        if self._shapes:
            shape = self._shapes.pop(0)
            return None if shape == "ok" else shape
        c = self.config
        rates = (
            c.shape_think,
            c.shape_reasoning_field,
            c.shape_truncated,
            c.shape_empty,
            c.shape_surrogate,
            c.shape_echo,
        )
        if not any(rates):
            return None
        r = self.rng.random()
        for name, rate in zip(SHAPES, rates, strict=True):
            if r < rate:
                return name
            r -= rate
        return None

    def _record(self, entry: dict[str, Any]) -> None:
        self.records.append(entry)
        if self._record_file is not None:
            self._record_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._record_file.flush()

    async def _chat(self, raw: bytes, writer) -> bool:
        arrived = time.monotonic()
        try:
            body = json.loads(raw)
            messages = body["messages"]
        except (json.JSONDecodeError, KeyError, TypeError):
            await self._send(writer, 400, b'{"error":{"message":"invalid JSON body"}}')
            return True
        schema, mode = find_schema(body)
        fault = self._fault()
        entry = {
            "t": time.time(),
            "model": body.get("model"),
            "messages_sha": hashlib.sha256(
                json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()
            ).hexdigest()[:16],
            "schema_mode": mode,
            "fault": fault,
        }
        if fault == "429":
            entry.update(status=429, queue_s=0.0, latency_s=0.0)
            self._record(entry)
            payload = b'{"error":{"message":"rate limited (double)","type":"rate_limit"}}'
            if self.config.retry_after_format == "date":
                when = time.time() + self.config.retry_after
                value = email.utils.formatdate(when, usegmt=True)
            else:
                value = f"{self.config.retry_after:g}"
            await self._send(writer, 429, payload, {"Retry-After": value})
            return True
        if fault == "500":
            entry.update(status=500, queue_s=0.0, latency_s=0.0)
            self._record(entry)
            await self._send(writer, 500, b'{"error":{"message":"internal error (double)"}}')
            return True
        if fault == "timeout":
            entry.update(status=None, queue_s=0.0, latency_s=self.config.timeout_hang)
            self._record(entry)
            await asyncio.sleep(self.config.timeout_hang)
            return False
        assert self._sem is not None
        async with self._sem:
            started = time.monotonic()
            latency = self._latency()
            await asyncio.sleep(latency)
        entry.update(status=200, queue_s=round(started - arrived, 4), latency_s=round(latency, 4))
        self._record(entry)
        shape = self._shape()
        entry["shape"] = shape
        payload = self._completion(body, messages, schema, shape)
        if fault == "malformed":
            await self._send(writer, 200, payload[: len(payload) // 3])
            return True
        if fault == "truncated":
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload[: len(payload) // 2])
            await writer.drain()
            return False
        await self._send(writer, 200, payload)
        return True

    def _latency(self) -> float:
        c = self.config
        if c.latency_sigma <= 0:
            return c.latency_mean
        mu = math.log(c.latency_mean) - c.latency_sigma**2 / 2
        return self.rng.lognormvariate(mu, c.latency_sigma)

    def _completion(
        self, body: dict[str, Any], messages: list[Any], schema: Any, shape: str | None = None
    ) -> bytes:
        if schema is not None:
            text = json.dumps(self.instances.make(schema), ensure_ascii=False)
        else:
            limit = int(body.get("max_tokens") or 256)
            text = self.instances.korean(max_len=max(1, limit * 2))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if shape == "think":
            draft = (
                json.dumps(self.instances.make(schema), ensure_ascii=False)
                if schema is not None
                else self.instances.korean(max_len=80)
            )
            message["content"] = f"<think>초안: {draft}\n다시 생각해 보자.</think>\n{text}"
        elif shape == "reasoning_field":
            message["reasoning_content"] = self.instances.korean(max_len=120)
        elif shape == "truncated":
            message["content"] = text[: max(1, len(text) // 2)]
            finish = "length"
        elif shape == "empty":
            message["content"] = None
        elif shape == "surrogate":
            message["content"] = text + "\ud83d"
        elif shape == "echo":
            users = [
                m.get("content")
                for m in messages
                if isinstance(m, dict) and m.get("role") == "user"
            ]
            message["content"] = str(users[-1]) if users else text
        content = message["content"] or ""
        chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        self._ids += 1
        data = {
            "id": f"chatcmpl-double-{self._ids}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.config.model),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": chars // 2 + 1,
                "completion_tokens": len(content) // 2 + 1,
                "total_tokens": chars // 2 + len(content) // 2 + 2,
            },
        }
        if shape == "surrogate":  # the escape stays an escape on the wire, as servers send it
            return json.dumps(data).encode("ascii")
        return json.dumps(data, ensure_ascii=False).encode("utf-8")

    def stats(self) -> dict[str, Any]:
        ok = [r for r in self.records if r.get("status") == 200]
        return {
            "requests": len(self.records),
            "status": dict(Counter(str(r.get("status")) for r in self.records)),
            "faults": dict(Counter(r["fault"] for r in self.records if r.get("fault"))),
            "schema_modes": dict(Counter(str(r.get("schema_mode")) for r in self.records)),
            "shapes": dict(Counter(r["shape"] for r in self.records if r.get("shape"))),
            "mean_latency_s": sum(r["latency_s"] for r in ok) / len(ok) if ok else None,
            "mean_queue_s": sum(r["queue_s"] for r in ok) / len(ok) if ok else None,
            "config": asdict(self.config),
        }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = DoubleConfig()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        kind = type(value) if value is not None else str
        p.add_argument(flag, type=kind, default=value)
    args = p.parse_args(argv)
    double = Double(DoubleConfig(**vars(args)))

    async def serve() -> None:
        await double.start()
        print(f"listening on {double.base_url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    sys.exit(0)


if __name__ == "__main__":
    main()
