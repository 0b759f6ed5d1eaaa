"""Benchmark: does the model layer keep a server busy?

Starts the benchmark double (bench/double.py) in a subprocess with a concurrency cap C and a
mean latency L, sends N requests through koalign's model layer (``ModelPool`` -> ``LLM`` ->
openai backend, with a fresh SQLite cache and call log), and prints one JSON line: achieved
requests/s, the ceiling C/L and their ratio (the bar is >= 0.9 at C=64, L=0.5 s), and the
model layer's CPU cost: user+sys CPU seconds of this process (the double runs in its own
process) per request, over the timed part (``cpu_ms_per_request``) and over the whole process,
imports and start-up included (``process_cpu_ms_per_request``).

    python bench/bench_backends.py --requests 2048 --cap 64 --latency-mean 0.5
    python bench/bench_backends.py --requests 4096 --cap 64 --latency-mean 0.05   # CPU cost
    python bench/bench_backends.py --requests 4096 --cap 64 --latency-mean 0.05 --mode floor

``--mode floor`` sends the same requests with a bare aiohttp + orjson loop (no koalign), the
floor the model layer's CPU cost is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from koalign.backends import ModelPool, ModelSpec
from koalign.types import ChatRequest, Message, SamplingParams

HERE = Path(__file__).resolve().parent


def cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def start_double(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [
        sys.executable,
        str(HERE / "double.py"),
        "--port",
        "0",
        "--cap",
        str(args.cap),
        "--latency-mean",
        str(args.latency_mean),
        "--latency-sigma",
        str(args.latency_sigma),
        "--seed",
        str(args.seed),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the double did not start: {line!r}")
    return proc, line.split("listening on ", 1)[1].strip()


def requests(n: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=(
                Message(role="system", content="당신은 한국어 안전 응답 도우미입니다."),
                Message(role="user", content=f"질문 {i}: 개인정보 보호법의 목적을 설명해 주세요."),
            ),
            sampling=SamplingParams(max_tokens=64),
        )
        for i in range(n)
    ]


async def floor(base_url: str, args: argparse.Namespace) -> dict:
    """The same requests through a bare aiohttp session (the HTTP client's own cost)."""
    import aiohttp
    import orjson

    sem = asyncio.Semaphore(args.cap)
    connector = aiohttp.TCPConnector(limit=args.cap)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
    url = base_url + "/chat/completions"
    headers = {"Content-Type": "application/json"}

    async def one(q: ChatRequest) -> bool:
        body = {
            "model": "double",
            "messages": [{"role": m.role, "content": m.content} for m in q.messages],
            "max_tokens": 64,
        }
        async with sem, session.post(url, data=orjson.dumps(body), headers=headers) as resp:
            data = orjson.loads(await resp.read())
        return bool(data["choices"][0]["message"]["content"])

    reqs = requests(args.requests)
    await one(reqs[0])
    start = time.perf_counter()
    cpu0 = cpu_s()
    oks = await asyncio.gather(*(one(q) for q in reqs[1:]))
    wall = time.perf_counter() - start
    cpu = cpu_s() - cpu0
    await session.close()
    return {"wall_s": wall, "cpu_s": cpu, "n": len(reqs) - 1, "errors": oks.count(False)}


async def run(base_url: str, args: argparse.Namespace, cache: Path | None) -> dict:
    spec = ModelSpec(
        backend="openai", model="double", base_url=base_url, max_concurrency=args.cap, timeout=30
    )
    pool = ModelPool({"m": spec}, cache_path=cache, env={})
    llm = pool.get("m")
    reqs = requests(args.requests)
    await llm.agenerate(reqs[:1])  # connect once: client set-up is not part of the measure
    start = time.perf_counter()
    cpu0 = cpu_s()
    if args.mode == "tasks":
        results = [
            r for rs in await asyncio.gather(*(llm.agenerate([q]) for q in reqs[1:])) for r in rs
        ]
    else:
        results = await llm.agenerate(reqs[1:])
    wall = time.perf_counter() - start
    cpu = cpu_s() - cpu0
    await pool.aclose()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "n": len(reqs) - 1,
        "errors": sum(not r.ok for r in results),
        "calls": llm.stats.calls,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2048)
    p.add_argument("--cap", type=int, default=64)
    p.add_argument("--latency-mean", type=float, default=0.5)
    p.add_argument("--latency-sigma", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--mode",
        choices=["batch", "tasks", "floor"],
        default="tasks",
        help="one batch call, one single-request call per task, or a bare aiohttp loop",
    )
    p.add_argument("--no-cache", action="store_true", help="run without the SQLite cache")
    args = p.parse_args()
    proc, base_url = start_double(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache = None if args.no_cache else Path(tmp) / "cache.sqlite"
            if args.mode == "floor":
                cache = None
                out = asyncio.run(floor(base_url, args))
            else:
                out = asyncio.run(run(base_url, args, cache))
        server = httpx.get(base_url.removesuffix("/v1") + "/stats", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(10)
    ceiling = args.cap / args.latency_mean
    rps = out["n"] / out["wall_s"]
    print(
        json.dumps(
            {
                "bench": "backends",
                "requests": out["n"],
                "mode": args.mode,
                "cache": cache is not None,
                "cap": args.cap,
                "latency_mean_s": args.latency_mean,
                "latency_sigma": args.latency_sigma,
                "wall_s": round(out["wall_s"], 3),
                "achieved_rps": round(rps, 2),
                "ceiling_rps": round(ceiling, 2),
                "ratio": round(rps / ceiling, 4),
                "server_mean_latency_s": round(server["mean_latency_s"], 4),
                "server_mean_queue_s": round(server["mean_queue_s"], 4),
                "server_requests": server["requests"],
                "errors": out["errors"],
                "cpu_ms_per_request": round(1000 * out["cpu_s"] / out["n"], 3),
                "process_cpu_ms_per_request": round(1000 * cpu_s() / (out["n"] + 1), 3),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
