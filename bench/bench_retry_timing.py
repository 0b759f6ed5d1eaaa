"""Timing checks of the model layer's waits over a real wire (kept out of the test suite, which
has no wall-clock assertions): backoff growth, Retry-After in seconds and as an HTTP date, a
Retry-After above ``retry_backoff_max``, the RPM and TPM limits, and how fast a refused
connection fails. Each check prints one JSON line with what it measured and whether it met its
bar; the exit code is 1 when any did not.

    python bench/bench_retry_timing.py
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from double import Double, DoubleConfig

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message, SamplingParams


def request(i: int = 0, max_tokens: int | None = None) -> ChatRequest:
    sampling = SamplingParams(max_tokens=max_tokens) if max_tokens else None
    return ChatRequest(messages=(Message(role="user", content=f"질문 {i}"),), sampling=sampling)


def serve(**config) -> Double:
    return Double(DoubleConfig(cap=64, latency_mean=0.0, latency_sigma=0.0, **config))


def gaps(double: Double) -> list[float]:
    t = [r["t"] for r in double.records]
    return [b - a for a, b in itertools.pairwise(t)]


def run(url: str, requests: list[ChatRequest], **spec) -> tuple[list, float]:
    pool = ModelPool({"m": ModelSpec(backend="openai", model="double", base_url=url, **spec)})
    start = time.monotonic()
    results = pool.get("m").generate(requests)
    elapsed = time.monotonic() - start
    pool.close()
    return results, elapsed


def check(name: str, ok: bool, **measured) -> bool:
    print(json.dumps({"check": name, "ok": ok, **measured}))
    return ok


def main() -> int:
    oks = []
    with serve(script="500,500,500").running() as d:
        run(d.base_url, [request()], retry_backoff=0.2)
        g = gaps(d)
    # base 0.2 s doubling with jitter in [0.5, 1.5]: at least 0.1, 0.2, 0.4 s
    oks.append(check("backoff", g[0] >= 0.1 and g[1] >= 0.2 and g[2] >= 0.4, gaps_s=g))
    with serve(script="429", retry_after=1.0).running() as d:
        run(d.base_url, [request()], retry_backoff=0.0)
        g = gaps(d)
    oks.append(check("retry_after_seconds", g[0] >= 0.95, asked_s=1.0, gap_s=g[0]))
    with serve(script="429", retry_after=2.0, retry_after_format="date").running() as d:
        run(d.base_url, [request()], retry_backoff=0.0)
        g = gaps(d)
    # an HTTP date has one-second resolution: 2 s ahead means a wait in (1, 2]
    oks.append(check("retry_after_http_date", 0.95 <= g[0] <= 2.3, asked_s=2.0, gap_s=g[0]))
    with serve(script="429", retry_after=1.5).running() as d:
        run(d.base_url, [request()], retry_backoff=0.0, retry_backoff_max=0.5)
        g = gaps(d)
    oks.append(check("retry_after_above_max", g[0] >= 1.45, asked_s=1.5, max_s=0.5, gap_s=g[0]))
    with serve().running() as d:
        _, elapsed = run(d.base_url, [request(i) for i in range(21)], rpm=600)
    # a bucket of one second (10 requests), then 10/s: 21 requests need >= 1.0 s
    oks.append(check("rpm", elapsed >= 1.0, requests=21, rpm=600, elapsed_s=elapsed))
    with serve().running() as d:
        _, elapsed = run(d.base_url, [request(i, 50) for i in range(4)], tpm=6000)
    # each estimated at ~53 tokens against 100 tokens/s with a one-second bucket
    oks.append(check("tpm", elapsed >= 0.8, requests=4, tpm=6000, elapsed_s=elapsed))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results, elapsed = run(f"http://127.0.0.1:{port}/v1", [request()], max_retries=5)
    kind = results[0].error.kind if results[0].error else None
    oks.append(
        check("refused_fails_fast", kind == "connection" and elapsed < 2.0, elapsed_s=elapsed)
    )
    return 0 if all(oks) else 1


if __name__ == "__main__":
    sys.exit(main())
