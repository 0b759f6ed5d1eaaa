"""The benchmark double (bench/harness.py) as a loopback OpenAI-compatible server for tests, a
run config whose every role goes to it through the ``openai`` backend, and the answer body and
reply helpers the tests' own small servers share."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import harness  # noqa: E402

MODELS = ("gen", "target-a", "target-b", "judge", "resp-1", "resp-2", "resp-3")


def completion(
    model: str,
    content: str | None,
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] = (1, 1),
    ascii_only: bool = False,
    **message: Any,
) -> bytes:
    """A ``chat.completion`` response body with one choice (``message`` adds fields such as
    ``reasoning_content``); ``ascii_only`` escapes non-ASCII text (a lone surrogate too)."""
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, **message},
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        },
    }
    if ascii_only:
        return json.dumps(body).encode("ascii")
    return json.dumps(body, ensure_ascii=False).encode()


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler that logs nothing; :meth:`body` reads the JSON body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def body(self) -> Any:
        """The request's JSON body."""
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a daemon thread: (server, ``/v1`` URL)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"


def reply(handler: Any, payload: bytes, status: int = 200) -> None:
    """Send ``payload`` as a JSON response from a ``BaseHTTPRequestHandler``."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@contextlib.contextmanager
def double(**options: Any) -> Iterator[str]:
    """A running double (its own process); yields its base URL."""
    opts = {"cap": 1000, "latency_mean": 0.0, "latency_sigma": 0.0, "favour": 0.9} | options
    proc, url = harness.start_double(**opts)
    try:
        yield url
    finally:
        harness.stop(proc)


def served(base_url: str) -> int:
    """Requests the double has answered so far."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=30) as r:
        return int(json.loads(r.read())["requests"])


def server_config(locale: str, base_url: str, **sections: Any) -> dict[str, Any]:
    """Every role on the double (openai backend), small sizes."""
    models = {
        m: {
            "backend": "openai",
            "model": m,
            "base_url": base_url,
            "max_concurrency": 16,
            "max_retries": 5,
            "retry_backoff": 0.05,
            "timeout": 30,
        }
        for m in MODELS
    }
    data: dict[str, Any] = {
        "locale": locale,
        "seed": 7,
        "models": models,
        "roles": {
            "seed_generator": "gen",
            "attacker": "gen",
            "targets": ["target-a", "target-b"],
            "harm_judge": "judge",
            "query_judge": "judge",
            "response_judge": "judge",
            "responders": ["resp-1", "resp-2", "resp-3"],
        },
        "seeds": {"per_type": 2, "benign_per_category": 2},
        "attack": {"rounds": 2},
        "respond": {"citation_check": False},
        "export": {"target_size": 1000},
        "runtime": {"fsync": False, "stage_retry_wait_s": 0.1, "max_error_rate": 0.5},
    }
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return data


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m koalign ARGS`` in a subprocess."""
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "koalign", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
    )
