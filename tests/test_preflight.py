"""The whole config is checked before the first paid call: 0 requests reach the server and no
run directory is created when any model, key, template or size is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from koalign.config import load_run_config
from koalign.errors import ConfigError
from koalign.runner import Pipeline
from support.servers import cli, double, served, server_config


def refused(data: dict, run_dir: Path) -> str:
    """The rendered ConfigError the preflight raises for the run config ``data``."""
    cfg, loc = load_run_config(None, data=data)
    with pytest.raises(ConfigError) as exc:
        Pipeline(cfg, loc, run_dir)
    return exc.value.render()


def write(path, data) -> str:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_a_typo_in_a_late_role_fails_before_any_call(small_locale, tmp_path):
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["late"] = {"backend": "opneai", "model": "x", "base_url": url}
        data["roles"]["filter_judges"] = ["resp-1", "late"]
        error = refused(data, tmp_path / "run")
        assert "models.late: unknown backend 'opneai' (did you mean 'openai'?)" in error
        assert not (tmp_path / "run").exists()
        # the same through the CLI: exit 1, one message, nothing created, nothing called
        out = cli("run", write(tmp_path / "c.yaml", data), "-o", str(tmp_path / "run2"))
        assert out.returncode == 1 and "unknown backend 'opneai'" in out.stderr
        assert "Traceback" not in out.stderr and not (tmp_path / "run2").exists()
        assert served(url) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "sampling",
            {"temprature": 0.2},
            "models.late.sampling.temprature: unknown key (did you mean 'temperature'?)",
        ),
        (
            "options",
            {"extra_bdy": {"top_k": 20}},
            "unknown openai option 'extra_bdy' (did you mean 'extra_body'?)",
        ),
    ],
)
def test_a_misspelt_option_in_a_late_role_fails_before_any_call(
    small_locale, tmp_path, field, value, message
):
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["late"] = {"backend": "openai", "model": "x", "base_url": url, field: value}
        data["roles"]["filter_judges"] = ["resp-1", "late"]
        out = cli("run", write(tmp_path / "c.yaml", data), "-o", str(tmp_path / "run"))
        assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
        assert "Traceback" not in out.stderr
        assert served(url) == 0
    assert not (tmp_path / "run").exists()


def test_every_missing_api_key_is_named_at_once(small_locale, tmp_path, monkeypatch):
    monkeypatch.delenv("KOALIGN_TEST_KEY_A", raising=False)
    monkeypatch.delenv("KOALIGN_TEST_KEY_B", raising=False)
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["judge"]["api_key_env"] = "KOALIGN_TEST_KEY_A"
        data["models"]["resp-3"]["api_key_env"] = "KOALIGN_TEST_KEY_B"
        text = refused(data, tmp_path / "run")
        assert "KOALIGN_TEST_KEY_A" in text and "KOALIGN_TEST_KEY_B" in text
        assert served(url) == 0 and not (tmp_path / "run").exists()


def test_a_missing_variable_is_named_once_with_the_config_entries_that_need_it(
    small_locale, tmp_path, monkeypatch
):
    """Two entries on the same model id and key: one line for the variable, naming both
    entries (models.NAME, as other problems do), not the model id twice."""
    for name in ("KOALIGN_TEST_KEY_S", "KOALIGN_TEST_HDR_S"):
        monkeypatch.delenv(name, raising=False)
    data = server_config(str(small_locale), _closed_url())
    models = data["models"]
    models["judge"].update(model="shared-id", api_key_env="KOALIGN_TEST_KEY_S")
    models["resp-3"].update(model="shared-id", api_key_env="KOALIGN_TEST_KEY_S")
    models["resp-3"]["options"] = {"headers_env": {"X-Team": "KOALIGN_TEST_HDR_S"}}
    models["resp-2"]["options"] = {"headers_env": {"X-Team": 5}}
    error = refused(data, tmp_path / "run")
    lines = error.splitlines()
    key = [line for line in lines if "KOALIGN_TEST_KEY_S" in line]
    assert key == [
        "  models.judge, models.resp-3: the environment variable KOALIGN_TEST_KEY_S is not set "
        "(export KOALIGN_TEST_KEY_S=...; api_key_env names the variable, never its value)"
    ]
    assert [line.split(":")[0] for line in lines if "KOALIGN_TEST_HDR_S" in line] == [
        "  models.resp-3"
    ]
    assert any(line.startswith("  models.resp-2.options.headers_env") for line in lines), lines
    assert "shared-id" not in error
    assert not (tmp_path / "run").exists()


def test_every_missing_header_variable_is_named_at_once(small_locale, tmp_path, monkeypatch):
    for name in ("KOALIGN_TEST_HDR_A", "KOALIGN_TEST_HDR_B", "KOALIGN_TEST_KEY_C"):
        monkeypatch.delenv(name, raising=False)
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["judge"]["options"] = {"headers_env": {"X-Gateway": "KOALIGN_TEST_HDR_A"}}
        data["models"]["resp-3"]["api_key_env"] = "KOALIGN_TEST_KEY_C"
        data["models"]["resp-3"]["options"] = {"headers_env": {"X-Team": "KOALIGN_TEST_HDR_B"}}
        config = write(tmp_path / "c.yaml", data)
        out = cli("run", config, "-o", str(tmp_path / "run"))
        assert out.returncode == 1, out.stderr[-2000:]
        for name in ("KOALIGN_TEST_HDR_A", "KOALIGN_TEST_HDR_B", "KOALIGN_TEST_KEY_C"):
            assert name in out.stderr
        assert served(url) == 0 and not (tmp_path / "run").exists()
        # offline, the variables the run needs are named, not required
        out = cli("run", config, "-o", str(tmp_path / "run"), "--dry-run", "--offline", "--json")
        assert out.returncode == 0, out.stderr[-2000:]
        notes = json.loads(out.stdout)["notes"]
        assert (
            "API-key and header variables the run needs: KOALIGN_TEST_HDR_A, KOALIGN_TEST_HDR_B, "
            "KOALIGN_TEST_KEY_C (not set here: KOALIGN_TEST_HDR_A, KOALIGN_TEST_HDR_B, "
            "KOALIGN_TEST_KEY_C)"
        ) in notes
        assert served(url) == 0 and not (tmp_path / "run").exists()


def test_a_template_that_cannot_render_fails_before_any_call(small_locale, tmp_path):
    broken = tmp_path / "locale"
    shutil.copytree(small_locale, broken)
    path = broken / "prompts" / "response_judge.j2"
    path.write_text(
        path.read_text(encoding="utf-8").replace("{{ answer }}", "{{ answer }}{{ no_such_value }}"),
        encoding="utf-8",
    )
    with double() as url:
        cfg, loc = load_run_config(None, data=server_config(str(broken), url))
        with pytest.raises(ConfigError, match=r"prompts/response_judge\.j2"):
            Pipeline(cfg, loc, tmp_path / "run")
        assert served(url) == 0


def test_a_prompt_that_does_not_fit_the_context_window_fails_before_any_call(
    small_locale, tmp_path
):
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["resp-2"]["context_window"] = 512
        data["models"]["resp-2"]["sampling"] = {"max_tokens": 256}
        text = refused(data, tmp_path / "run")
        assert "roles.responders: role 'responders'" in text and "model 'resp-2'" in text
        assert "> 512 window" in text
        # what to do: the compact policy, no worked examples, a smaller budget, another model
        assert "policy: {view: compact}" in text and "policy: {few_shot: 0}" in text
        assert served(url) == 0


def test_an_unknown_context_window_is_named_with_how_to_give_it(small_locale, tmp_path, caplog):
    from koalign import preflight

    with double() as url:  # the double's model list gives no window
        data = server_config(str(small_locale), url)
        for name, spec in data["models"].items():
            if name != "judge":
                spec["context_window"] = 32768
        cfg, loc = load_run_config(None, data=data)
        with caplog.at_level("WARNING", logger="koalign.preflight"):
            notes = preflight.check(cfg, loc)
        assert served(url) == 0
    assert len(notes) == 1 and notes[0].startswith("models.judge: the context window is unknown")
    assert "set context_window under models.judge" in notes[0]
    assert "--set models.judge.context_window=8192" in notes[0]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == notes


def test_inside_a_running_event_loop_the_windows_in_the_config_are_checked(small_locale):
    # a library caller that builds a pipeline in async code: the servers' model lists cannot be
    # read there, the windows written in the config still are
    import asyncio

    from koalign import preflight

    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["resp-2"]["context_window"] = 512
        data["models"]["resp-2"]["sampling"] = {"max_tokens": 256}
        cfg, loc = load_run_config(None, data=data)

        async def inside() -> None:
            preflight.check(cfg, loc)

        with pytest.raises(ConfigError, match=r"model 'resp-2'.*> 512 window"):
            asyncio.run(inside())
        data["models"]["resp-2"]["context_window"] = 32768
        cfg, loc = load_run_config(None, data=data)

        async def fits() -> list[str]:
            return preflight.check(cfg, loc)

        notes = asyncio.run(fits())  # the others' windows are not in the config: named
        assert served(url) == 0
    # the targets too: their prompt is a seed or a rewrite, bounded by its generator's budget
    named = sorted(n.split(":", 1)[0] for n in notes)
    assert named == [
        "models.gen",
        "models.judge",
        "models.resp-1",
        "models.resp-3",
        "models.target-a",
        "models.target-b",
    ]


def test_a_target_whose_window_cannot_hold_a_rewrite_fails_before_any_call(small_locale, tmp_path):
    """A target's prompt is a seed or the attacker's rewrite (no template): the larger of their
    generators' max_tokens, plus the target's own, must fit its window."""
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["gen"]["sampling"] = {"max_tokens": 1024}
        data["models"]["target-b"]["context_window"] = 1200
        data["models"]["target-b"]["sampling"] = {"max_tokens": 256}
        text = refused(data, tmp_path / "run")
        assert "roles.targets: role 'targets'" in text and "model 'target-b'" in text
        assert "> 1,200 window" in text
        data["models"]["target-b"]["context_window"] = 4096
        cfg, loc = load_run_config(None, data=data)
        Pipeline(cfg, loc, tmp_path / "run2")  # fits
        assert served(url) == 0


@pytest.mark.parametrize("limit", ["-3", "0"])
def test_limit_must_be_positive(small_locale, tmp_path, limit):
    with double() as url:
        config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
        out = cli("run", config, "-o", str(tmp_path / "run"), "--limit", limit)
        # a usage error (exit 2, as for the eval commands), refused before the config is read
        assert out.returncode == 2 and "--limit" in out.stderr
        assert "greater than or equal to 1" in out.stderr
        assert "checking" not in out.stderr
        assert not (tmp_path / "run").exists() and served(url) == 0


def test_dry_run_prints_the_plan_and_calls_nothing(small_locale, tmp_path):
    with double() as url:
        config = write(tmp_path / "c.yaml", server_config(str(small_locale), url))
        out = cli("run", config, "-o", str(tmp_path / "run"), "--dry-run", "--json", "--limit", "6")
        assert out.returncode == 0, out.stderr
        plan = json.loads(out.stdout)
        assert plan["stages"] == ["seeds", "attack", "respond", "judge", "export"]
        assert plan["records"]["seeds"] == 6
        assert set(plan["models"]) == {
            "gen",
            "target-a",
            "target-b",
            "judge",
            "resp-1",
            "resp-2",
            "resp-3",
        }
        assert all(v["calls_at_most"] > 0 for v in plan["models"].values())
        assert not (tmp_path / "run").exists() and served(url) == 0
        # the double's model list gives no window: each such model is a note of the plan
        # (with --json too), not a warning printed beside it
        unknown = [n for n in plan["notes"] if "the context window is unknown" in n]
        assert unknown and all(n.startswith("models.") for n in unknown)
        assert "the context window is unknown" not in out.stderr


def test_the_compact_policy_fits_an_8k_window_where_the_full_one_does_not(tmp_path):
    # the Korean pack's longest prompts against an 8,192-token window (SmolLM2's), 512 each
    with double() as url:
        _compact_fits(tmp_path, url)


def test_a_server_that_refuses_connections_is_named_before_anything(small_locale, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = server_config(str(small_locale), f"http://127.0.0.1:{port}/v1")
    error = refused(data, tmp_path / "run")
    assert f"models.gen: cannot connect to http://127.0.0.1:{port}/v1" in error
    assert "start the server, or fix base_url" in error
    assert not (tmp_path / "run").exists()


def _compact_fits(tmp_path, url) -> None:
    data = server_config("ko", url)
    for spec in data["models"].values():
        spec["context_window"] = 8192
        spec["sampling"] = {"max_tokens": 512}
    cfg, loc = load_run_config(None, data=data)
    with pytest.raises(
        ConfigError, match=r"roles\.responders: role 'responders' \(prompts/responder"
    ):
        Pipeline(cfg, loc, tmp_path / "full")
    data["policy"] = {"view": "compact"}
    cfg, loc = load_run_config(None, data=data)
    from koalign import preflight

    preflight.check(cfg, loc)  # fits: no error
    assert not (tmp_path / "full").exists()


def test_models_check_measures_every_role_of_a_run_config(small_locale, tmp_path):
    with double() as url:
        data = server_config(str(small_locale), url)
        data["models"]["judge"]["context_window"] = 600  # the judges' prompts do not fit
        out = cli("models", "check", write(tmp_path / "c.yaml", data), "--json")
    rows = {r["model"]: r for r in json.loads(out.stdout)}
    judge_roles = {f["role"]: f for f in rows["judge"]["roles"]}
    assert {"harm_judge", "query_judge", "response_judge"} <= set(judge_roles)
    assert all(f["fits"] is False for f in judge_roles.values())
    assert {f["role"] for f in rows["resp-1"]["roles"]} == {"responders", "filter_judges"}
    assert out.returncode == 1  # a role that does not fit fails the check


def _closed_url() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_offline_dry_run_plans_cost_without_servers_or_keys(small_locale, tmp_path, monkeypatch):
    monkeypatch.delenv("KOALIGN_TEST_KEY_OFF", raising=False)
    data = server_config(str(small_locale), _closed_url())
    data["models"]["judge"].update(
        api_key_env="KOALIGN_TEST_KEY_OFF", price_in_per_1m=2.0, price_out_per_1m=8.0
    )
    data["models"]["judge"]["sampling"] = {"max_tokens": 100}
    config = write(tmp_path / "c.yaml", data)
    run = str(tmp_path / "run")
    # the default dry run still checks keys and servers
    out = cli("run", config, "-o", run, "--dry-run", "--limit", "6")
    assert out.returncode == 1 and "KOALIGN_TEST_KEY_OFF is not set" in out.stderr
    out = cli("run", config, "-o", run, "--dry-run", "--offline", "--json", "--limit", "6")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["offline"] is True
    assert plan["not_checked"] == ["servers", "api_keys", "context_windows"]
    assert plan["notes"][0].startswith("offline: no server was contacted and no API key")
    assert "KOALIGN_TEST_KEY_OFF (not set here: KOALIGN_TEST_KEY_OFF)" in plan["notes"][1]
    judge = plan["models"]["judge"]
    assert (
        judge["calls_at_most"] > 0 and judge["tokens_out_at_most"] == judge["calls_at_most"] * 100
    )
    expected = (judge["tokens_in_at_most"] * 2.0 + judge["tokens_out_at_most"] * 8.0) / 1e6
    assert judge["cost_at_most"] == pytest.approx(expected)
    assert plan["models"]["gen"]["cost_at_most"] is None  # no prices: no bound
    assert plan["cost_at_most"] == pytest.approx(expected)
    unpriced = sorted(m for m in plan["models"] if m != "judge")
    assert unpriced and plan["unpriced"] == unpriced and plan["half_priced"] == []
    assert not (tmp_path / "run").exists()
    text = cli("run", config, "-o", run, "--dry-run", "--offline", "--limit", "6")
    assert text.returncode == 0, text.stderr
    lines = text.stderr.splitlines()
    assert f"cost at most: {expected:.4f} for the priced models (judge)" in lines
    assert (
        f"no price set for: {', '.join(unpriced)} (set price_in_per_1m / price_out_per_1m); "
        "their cost is not in the total"
    ) in lines
    assert "offline dry run: servers and API keys were not checked" in text.stderr
    assert text.stdout.strip() == (
        "dry run (offline): nothing was called; servers and API keys were not checked"
    )


def test_offline_dry_run_still_checks_backends_and_needs_dry_run(small_locale, tmp_path):
    data = server_config(str(small_locale), _closed_url())
    data["models"]["gen"]["backend"] = "opneai"
    config = write(tmp_path / "c.yaml", data)
    out = cli("run", config, "-o", str(tmp_path / "run"), "--dry-run", "--offline")
    assert out.returncode == 1 and "unknown backend 'opneai' (did you mean 'openai'?)" in out.stderr
    out = cli("run", config, "-o", str(tmp_path / "run"), "--offline")
    assert out.returncode == 1 and "--offline only applies to --dry-run" in out.stderr
    assert not (tmp_path / "run").exists()


def test_an_existing_relative_path_is_local_and_org_name_is_a_hub_id(tmp_path, monkeypatch):
    from koalign.backends.base import ModelSpec
    from koalign.preflight import _looks_local, missing_local_models

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodels" / "qwen").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "smol.gguf").write_bytes(b"GGUF")
    assert _looks_local("mymodels/qwen") and _looks_local("models/smol.gguf")
    assert not _looks_local("Qwen/Qwen2.5-7B-Instruct") and not _looks_local("mymodels/nope")
    models = {"folder": "mymodels/qwen", "gguf": "models/smol.gguf",
              "hub": "Qwen/Qwen2.5-7B-Instruct", "gone": "models/gone.gguf",
              "dot": "./mymodels/gone"}  # fmt: skip
    specs = {name: ModelSpec(backend="hf", model=model) for name, model in models.items()}
    assert sorted(missing_local_models(specs)) == ["dot", "gone"]


def test_a_missing_local_hf_model_stops_a_run_before_anything_is_loaded(small_locale, tmp_path):
    data = server_config(str(small_locale), _closed_url())
    data["models"]["local"] = {"backend": "hf", "model": str(tmp_path / "nope" / "model.gguf")}
    data["roles"]["targets"] = ["local"]
    config = write(tmp_path / "c.yaml", data)
    # offline too: whether a local file exists needs no server and no key
    out = cli("run", config, "-o", str(tmp_path / "run"), "--dry-run", "--offline")
    assert out.returncode == 1
    text = " ".join(out.stderr.split())
    assert (
        f"models.local: local model path {tmp_path / 'nope' / 'model.gguf'} does not exist" in text
    )
    assert "Traceback" not in out.stderr and not (tmp_path / "run").exists()


def _cached(cache: Path, model: str, filename: str = "config.json") -> None:
    """A Hugging Face cache entry for ``model`` as huggingface_hub lays it out."""
    repo = cache / f"models--{model.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40, encoding="utf-8")
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / filename).write_text("{}", encoding="utf-8")


def test_a_hub_model_that_cannot_be_had_is_named_before_anything_is_loaded(tmp_path, caplog):
    from koalign.backends.base import ModelSpec
    from koalign.preflight import hub_problems

    cache = tmp_path / "hub"
    cache.mkdir()
    _cached(cache, "org/cached")
    specs = {
        "a": ModelSpec(backend="hf", model="org/missing"),
        "b": ModelSpec(backend="hf", model="org/missing"),
        "c": ModelSpec(backend="hf", model="org/cached"),
        "local": ModelSpec(backend="hf", model=str(tmp_path)),
        "server": ModelSpec(backend="openai", model="org/missing", base_url=_closed_url()),
    }
    offline = hub_problems(specs, offline=True, cache_dir=str(cache))
    assert sorted(offline) == ["a", "b"]
    assert offline["a"].startswith(
        "org/missing is not in the local Hugging Face cache and offline mode is on "
        "(HF_HUB_OFFLINE): give a local model folder instead, or download it"
    )
    endpoint = _closed_url().removesuffix("/v1")  # a Hub that does not answer
    unreachable = hub_problems(specs, offline=False, endpoint=endpoint, cache_dir=str(cache))
    assert sorted(unreachable) == ["a", "b"]
    assert f"and the Hub ({endpoint}) does not answer" in unreachable["a"]
    assert "`hf download org/missing`" in unreachable["a"]
    # cached: usable, but transformers would retry the Hub first; the log says how to avoid it
    assert "org/cached" in caplog.text and "HF_HUB_OFFLINE=1" in caplog.text


def test_the_readme_run_fails_at_once_where_the_hub_does_not_answer(tmp_path):
    from support.servers import ROOT

    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": _closed_url().removesuffix("/v1")}  # fmt: skip
    config = str(ROOT / "examples" / "quickstart.yaml")
    out = cli("run", config, "-o", str(tmp_path / "run"), "--limit", "2", env=env)
    assert out.returncode == 1
    text = " ".join(out.stderr.split())
    assert "models.qwen: Qwen/Qwen2.5-1.5B-Instruct is not in the local Hugging Face cache" in text
    assert "Retrying" not in out.stderr and not (tmp_path / "run").exists()


def test_offline_dry_run_names_hub_models_missing_from_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from koalign.backends.base import ModelSpec
    from koalign.preflight import uncached_hub_models

    cache = tmp_path / "hub"
    cache.mkdir()
    _cached(cache, "org/cached")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    specs = {
        "a": ModelSpec(backend="hf", model="org/missing"),
        "c": ModelSpec(backend="hf", model="org/cached"),
        "local": ModelSpec(backend="hf", model=str(tmp_path)),
    }
    assert uncached_hub_models(specs) == {"a": "org/missing"}
    from koalign.preflight import check_offline
    from support.servers import ROOT

    config, loc = load_run_config(ROOT / "examples" / "quickstart.yaml")
    notes = " ".join(check_offline(config, loc, env={}))
    expected = "not in this machine's Hugging Face cache: models.qwen (Qwen/Qwen2.5-1.5B-Instruct)"
    assert expected in notes
