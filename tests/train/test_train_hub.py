"""Where the base model comes from: a model that cannot be had fails at once, with what to do.

The Hub is never reached: the subprocess tests point HF_ENDPOINT at a closed port on 127.0.0.1
(huggingface_hub reads it at import, hence a fresh process) and HF_HOME at an empty or a
hand-built cache.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from koalign.errors import ConfigError
from koalign.train.hub import model_source

MISSING = "koalign-test-nobody/model-that-cannot-exist"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train_check(model: str, data: Path, hf_home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(hf_home)}
    cmd = [sys.executable, "-m", "koalign", "train", "-m", model, "-d", str(data), "--check-only"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_uncached_hub_model_with_unreachable_hub_fails_with_what_to_do(
    export_dir: Path, tmp_path: Path
) -> None:
    result = _train_check(MISSING, export_dir, tmp_path / "hf")
    assert result.returncode == 1
    err = " ".join(result.stderr.split())
    assert "model 'koalign-test-nobody/model-that-cannot-exist' is neither" in err
    assert "nor in the local Hugging Face cache" in err and "cannot be reached" in err
    assert f"hf download {MISSING}" in err and "point model: at that folder" in err
    assert "HF_HOME" in err
    assert "Retrying" not in result.stderr  # no download retries before the message


def test_cached_hub_model_loads_from_the_cache_when_the_hub_is_unreachable(
    tiny_model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    # the layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/SHA/...}
    repo = tmp_path / "hf" / "hub" / "models--koalign-test--tiny"
    sha = "0" * 40
    shutil.copytree(tiny_model_dir, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha, encoding="utf-8")
    result = _train_check("koalign-test/tiny", export_dir, tmp_path / "hf")
    assert result.returncode == 0, result.stderr
    assert "data check passed" in result.stderr
    assert "cannot be reached" in result.stderr  # said once, as a warning
    assert "Retrying" not in result.stderr


def test_offline_mode_and_missing_folders_fail_before_loading(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    assert model_source(str(tiny_model_dir)) == "local"
    with pytest.raises(ConfigError, match="offline mode is on") as exc:
        model_source(MISSING)  # tests run with HF_HUB_OFFLINE=1 (tests/conftest.py)
    assert exc.value.where == "model" and "HF_HOME" in (exc.value.hint or "")
    with pytest.raises(ConfigError, match=r"model folder .* not found"):
        model_source(str(tmp_path / "no-such-model"))
