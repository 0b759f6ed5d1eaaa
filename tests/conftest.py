"""Shared fixtures: offline environment and a tiny random Korean chat model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"
KO = Path(__file__).resolve().parents[1] / "src" / "koalign" / "locales" / "ko"
MINI = DATA / "locales" / "mini"

from support.fakes import config_data, register  # noqa: E402  (tests/ is on sys.path)

register()  # the deterministic test backend ``fn`` (tests/support/fakes.py)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~150k-parameter random Llama chat model with a Korean BPE tokenizer (built once)."""
    from koalign.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def mini_locale_dir() -> Path:
    """A tiny second locale pack (English, two categories) used to prove the engine is generic."""
    return DATA / "locales" / "mini"


@pytest.fixture(scope="session")
def start_model_server(tmp_path_factory: pytest.TempPathFactory):
    """Start a real OpenAI-compatible server on 127.0.0.1 (a free port) and return its base URL.

    ``start_model_server(cmd, ready_timeout=60)``: ``cmd`` is the command line with ``{port}``
    where the port goes (e.g. ``transformers serve DIR --host 127.0.0.1 --port {port}``).
    Servers are stopped by PID at the end of the session; a server that does not come up fails
    the test with the end of its log.
    """
    import signal
    import socket
    import subprocess
    import time

    import httpx

    procs: list[subprocess.Popen] = []

    def start(cmd: list[str], *, ready_timeout: float = 60) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log_path = tmp_path_factory.mktemp("server") / "server.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [part.format(port=port) for part in cmd],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        procs.append(proc)
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"server {cmd[0]} did not start on port {port}; log:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    return f"http://127.0.0.1:{port}/v1"
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: children go too
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="session")
def transformers_exe() -> str:
    """The `transformers` command of this environment, or skip the test."""
    import shutil
    import sys

    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which(
        "transformers"
    )
    if exe is None:
        pytest.skip("the `transformers` CLI is not installed (pip install 'koalign[serve]')")
    return exe


@pytest.fixture(scope="session")
def small_locale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-category test pack with the Korean pack's script ranges, personas and pipeline
    prompt templates: small enough for many end-to-end runs."""
    dst = tmp_path_factory.mktemp("locale") / "small"
    shutil.copytree(MINI, dst)
    shutil.copy(KO / "locale.yaml", dst / "locale.yaml")
    shutil.copy(KO / "personas.yaml", dst / "personas.yaml")
    for p in (KO / "prompts").glob("*.j2"):
        shutil.copy(p, dst / "prompts" / p.name)
    return dst


@pytest.fixture
def write_config(tmp_path: Path, small_locale: Path):
    def make(name: str = "config.yaml", locale: str | None = None, **kw) -> Path:
        path = tmp_path / name
        data = config_data(locale or str(small_locale), **kw)
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="module")
def sampling_server(tiny_model_dir: Path, tmp_path_factory, start_model_server, transformers_exe):
    """`transformers serve` on a copy of the tiny model that samples (the server ignores the
    request's temperature; a greedy random model mostly emits newlines). Returns (url, model)."""
    import json

    model = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_model_dir, model)
    gen = json.loads((model / "generation_config.json").read_text())
    gen.update(do_sample=True, temperature=1.0, top_k=0)
    (model / "generation_config.json").write_text(json.dumps(gen))
    from koalign.demo import _well_formed

    _well_formed(model)  # whole characters only, and texts that end before the token limit
    cmd = [transformers_exe, "serve", str(model), "--host", "127.0.0.1", "--port", "{port}"]
    return start_model_server([*cmd, "--device", "cpu"]), str(model)
