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
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    models = [{"id": "echo", "object": "model", "max_model_len": 32768}]
    with (
        Double(DoubleConfig(cap=4, latency_mean=0.01)).running() as d,
        fault_server(models=models) as echo,
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
                    "base_url": dead,
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
    assert f"cannot connect to {dead}" in rows["dead"]["error"] and rows["dead"]["address"] == dead
    assert not rows["bad"]["ok"] and "max_concurrency" in rows["bad"]["error"]
    # windows: from the server's model list, from the hf config, unknown for the double
    assert (rows["echo"]["window"], rows["local"]["window"], rows["double"]["window"]) == (
        32768,
        2048,
        None,
    )
    # an unknown window is named with how to give it; a known one is not
    assert rows["double"]["window_note"].startswith("models.double: the context window is unknown")
    assert "context_window" in rows["double"]["window_note"]
    assert "window_note" not in rows["echo"] and "window_note" not in rows["local"]
    # the long probe: half the window (at most 4,096 tokens), 2,048 when unknown
    local, echo_probe = rows["local"]["long_probe"], rows["echo"]["long_probe"]
    assert local["ok"] and local["exact"] and local["prompt_tokens"] == local["counted"]
    assert 1000 <= local["counted"] <= 1024
    assert echo_probe["ok"] and not echo_probe["exact"] and 4000 <= echo_probe["counted"] <= 4096
    assert echo_probe["estimate_ratio"] == round(echo_probe["counted"] / 7, 3)  # usage says 7
    assert 2000 <= rows["double"]["long_probe"]["counted"] <= 2048


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


def narrow(monkeypatch) -> None:
    """An 80-column terminal (a pipe gets 200 columns)."""
    from koalign.cli import common

    monkeypatch.setattr(common.out, "width", 80)


def test_cache_stats_never_cuts_model_names(tmp_path, monkeypatch):
    narrow(monkeypatch)
    db = tmp_path / "cache.sqlite"
    names = [f"demo-scripted-judge-number-{n}-with-a-long-name" for n in ("one", "two")]
    specs = {
        n: ModelSpec(backend="scripted", model="s", options={"responses": ["답"]}) for n in names
    }
    pool = ModelPool(specs, cache_path=db)
    for n in names:
        pool.get(n).generate([ChatRequest(messages=(Message(role="user", content=n),))])
    pool.close()
    table = runner.invoke(app, ["cache", "stats", "--db", str(db)], terminal_width=80)
    assert table.exit_code == 0, table.output
    for n in names:
        assert n in table.stdout
    assert "…" not in table.stdout
    # too narrow for the table: one block per model, every header and figure whole
    assert "  mean latency (s): " in table.stdout and "  tokens out: " in table.stdout


def test_models_check_prints_the_whole_error_in_a_narrow_terminal(tmp_path, monkeypatch):
    narrow(monkeypatch)
    dead = "http://127.0.0.1:9/v1"
    config = {"models": {"dead": {"backend": "openai", "model": "x", "base_url": dead}}}
    config["models"]["dead"].update(max_retries=0, timeout=2)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["models", "check", str(path)], terminal_width=80)
    assert result.exit_code == 1, result.output
    assert "…" not in result.stdout
    flat = "".join(c for c in result.stdout if c not in "│ \n")
    assert "cannotconnectto" + dead.replace(" ", "") in flat


def test_models_check_says_when_a_window_is_unknown(tmp_path):
    with Double(DoubleConfig(cap=4, latency_mean=0.01)).running() as d:
        config = {"models": {"double": {"backend": "openai", "model": "double",
                                        "base_url": d.base_url}}}  # fmt: skip
        path = tmp_path / "models.yaml"
        path.write_text(yaml.safe_dump(config))
        result = runner.invoke(app, ["models", "check", str(path)])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    assert "models.double: the context window is unknown" in flat
    assert "set context_window under models.double" in flat


def test_models_check_measures_role_prompts_against_the_window(tiny_model_dir):
    import asyncio

    from koalign.backends.fit import RolePrompt
    from koalign.cli.backend_cmds import check_model

    spec = ModelSpec(backend="hf", model=str(tiny_model_dir), sampling={"max_tokens": 100})
    short = RolePrompt("judge", (Message(role="user", content="판정"),), label="A")
    long = RolePrompt("responder", (Message(role="user", content="정책 " * 1500),), max_tokens=512)
    row = asyncio.run(check_model("local", spec, [short, long]))
    fits = {f["role"]: f for f in row["roles"]}
    assert fits["judge"]["fits"] is True and fits["judge"]["max_tokens"] == 100
    assert fits["judge"]["window"] == 2048 and fits["judge"]["exact"]
    assert fits["responder"]["fits"] is False and fits["responder"]["prompt_tokens"] > 1600
    assert (
        "> 2,048 window" in fits["responder"]["message"]
        and "policy: {view: compact}" in fits["responder"]["message"]
        and "policy: {few_shot: 0}" in fits["responder"]["message"]
    )


def test_cache_stats_on_a_missing_file_says_so(tmp_path):
    from koalign.errors import KoalignError

    result = runner.invoke(app, ["cache", "stats", "--db", str(tmp_path / "nope.sqlite")])
    assert result.exit_code != 0
    assert isinstance(result.exception, KoalignError)
    assert "not found" in str(result.exception)


def test_cache_stats_of_a_cache_without_calls(tmp_path: Path) -> None:
    from koalign.cache import Cache

    db = tmp_path / "cache.sqlite"
    Cache(db).close()
    table = runner.invoke(app, ["cache", "stats", "--db", str(db)])
    assert table.exit_code == 0, table.output
    assert "no calls recorded yet" in table.output
    as_json = runner.invoke(app, ["cache", "stats", "--db", str(db), "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["models"] == []
