"""`koalign cache stats|clear` and `koalign models check` against real servers and caches."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from koalign.backends import ModelPool, ModelSpec
from koalign.cli import app
from koalign.types import ChatRequest, Message

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from double import Double, DoubleConfig

runner = CliRunner()


def test_models_check_reports_ok_errors_and_json_support(fault_server, tiny_model_dir, tmp_path):
    with (
        Double(DoubleConfig(cap=4, latency_mean=0.01)).running() as d,
        fault_server() as echo,
    ):
        config = {
            "run": {"ignored": True},
            "models": {
                "double": {
                    "backend": "openai",
                    "model": "double",
                    "base_url": d.base_url,
                    "json_mode": "response_format",
                },
                "echo": {"backend": "openai", "model": "echo", "base_url": echo.base_url},
                "local": {"backend": "hf", "model": str(tiny_model_dir)},
                "typo": {"backend": "opneai", "model": "x"},
                "dead": {
                    "backend": "openai",
                    "model": "x",
                    "base_url": "http://127.0.0.1:9/v1",
                    "max_retries": 0,
                    "timeout": 2,
                },
                "bad": {"backend": "openai", "model": "x", "max_concurrency": 0},
            },
        }
        path = tmp_path / "models.yaml"
        path.write_text(yaml.safe_dump(config))
        result = runner.invoke(app, ["models", "check", str(path), "--json"])
    assert result.exit_code == 1, result.output
    rows = {r["model"]: r for r in json.loads(result.stdout[result.stdout.index("[") :])}
    assert rows["double"]["ok"] and rows["double"]["json"] is True
    assert rows["echo"]["ok"] and rows["echo"]["json"] is False
    assert rows["echo"]["json_error"].startswith("parse:")
    assert rows["local"]["ok"] and rows["local"]["json"] is True  # constrained decoding
    assert not rows["typo"]["ok"] and "did you mean 'openai'" in rows["typo"]["error"]
    assert not rows["dead"]["ok"] and rows["dead"]["error"].startswith("connection:")
    assert not rows["bad"]["ok"] and "max_concurrency" in rows["bad"]["error"]


def test_cache_stats_and_clear(tmp_path):
    db = tmp_path / "cache.sqlite"
    spec = ModelSpec(
        backend="scripted", model="s", options={"responses": ["답"]}, price_in_per_1m=1.0
    )
    pool = ModelPool({"judge": spec}, cache_path=db)
    reqs = [ChatRequest(messages=(Message(role="user", content=f"q{i}"),)) for i in range(3)]
    pool.get("judge").generate(reqs)
    pool.get("judge").generate(reqs)
    pool.close()

    result = runner.invoke(app, ["cache", "stats", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    [row] = stats["models"]
    assert (row["model"], row["calls"], row["cache_hits"], row["errors"]) == ("judge", 3, 3, 0)
    assert row["tokens_in"] == 6 and stats["cached_responses"] == 3

    table = runner.invoke(app, ["cache", "stats", "--db", str(db)])
    assert table.exit_code == 0 and "judge" in table.stdout

    cleared = runner.invoke(app, ["cache", "clear", "--db", str(db)])
    assert cleared.exit_code == 0 and "3 responses" in cleared.stdout
    again = json.loads(runner.invoke(app, ["cache", "stats", "--db", str(db), "--json"]).stdout)
    assert again["models"] == [] and again["cached_responses"] == 0


def test_cache_stats_on_a_missing_file_says_so(tmp_path):
    from koalign.errors import KoalignError

    result = runner.invoke(app, ["cache", "stats", "--db", str(tmp_path / "nope.sqlite")])
    assert result.exit_code != 0
    assert isinstance(result.exception, KoalignError)
    assert "not found" in str(result.exception)
