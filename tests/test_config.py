from __future__ import annotations

import pytest
import yaml

from koalign.config import load_config, load_run_config, run_config_model
from koalign.errors import ConfigError


def test_overrides_are_yaml_typed(write_config):
    path = write_config()
    cfg = load_config(path, ["attack.rounds=2", "judge.reducer=majority", "seeds.categories=[X]"])
    assert cfg.attack.rounds == 2
    assert cfg.judge.reducer == "majority"
    assert cfg.seeds.categories == ["X"]


def test_unknown_key_gets_did_you_mean(write_config):
    path = write_config()
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["attack.round=2"])
    assert "attack.round: unknown key (did you mean 'rounds'?)" in exc.value.render()


def test_role_must_name_a_declared_model(write_config):
    path = write_config()
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["roles.targets=[target-a, traget-b]"])
    assert (
        "roles.targets[1]: unknown model 'traget-b' (did you mean 'target-b'?)"
        in exc.value.render()
    )


def test_locale_references_are_checked_before_any_call(write_config):
    path = write_config()
    with pytest.raises(ConfigError) as exc:
        load_run_config(path, ["seeds.categories=[X, Z]", "attack.strategies=[emotional_apeal]"])
    text = exc.value.render()
    assert "seeds.categories[1]: unknown category 'Z'" in text
    assert (
        "attack.strategies[0]: unknown id 'emotional_apeal' (did you mean 'emotional_appeal'?)"
        in text
    )


def test_stage_hash_changes_only_for_its_stage(write_config):
    data = yaml.safe_load(write_config().read_text(encoding="utf-8"))
    a = run_config_model().model_validate(data)
    data["attack"]["rounds"] = 1
    b = run_config_model().model_validate(data)
    assert a.stage_hash("seeds") == b.stage_hash("seeds")
    assert a.stage_hash("attack") != b.stage_hash("attack")
    assert a.stage_hash("respond") == b.stage_hash("respond")
    assert a.roles.resolved()["filter_judges"] == ["resp-1", "resp-2", "resp-3"]
    # serving settings do not change answers: raising concurrency mid-run keeps every stage
    data["models"]["judge"]["max_concurrency"] = 64
    data["models"]["judge"]["rpm"] = 600
    c = run_config_model().model_validate(data)
    assert [c.stage_hash(s) for s in ("attack", "respond")] == [
        b.stage_hash("attack"),
        b.stage_hash("respond"),
    ]
    data["models"]["judge"]["sampling"] = {"temperature": 0.5}
    assert run_config_model().model_validate(data).stage_hash("attack") != b.stage_hash("attack")


def test_examples_are_valid_configs():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples"
    for name in ("quickstart.yaml", "vllm.yaml", "hosted.yaml"):
        load_config(root / name)


def test_unknown_model_key_gets_did_you_mean(write_config):
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(), ["models.judge.max_concurency=4"])
    assert "models.judge.max_concurency: unknown key (did you mean 'max_concurrency'?)" in (
        exc.value.render()
    )


def test_override_errors_name_the_override_not_the_file(write_config):
    path = write_config()
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["seed=3", "models.judge.temprature=1"])
    assert exc.value.where == "--set models.judge.temprature=1"
    text = exc.value.render()
    assert str(path) in exc.value.hint and "itself is valid" in exc.value.hint
    # a sampling parameter (or a typo of one) at model level points under sampling:
    assert (
        "models.judge.temprature: unknown key (did you mean 'models.judge.sampling.temperature'?)"
        in text
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["models.judge.max_tokens=9"])
    assert "(did you mean 'models.judge.sampling.max_tokens'?)" in exc.value.render()


def test_file_and_override_errors_each_name_their_source(write_config, tmp_path):
    data = yaml.safe_load(write_config().read_text(encoding="utf-8"))
    data["attack"]["roundz"] = 2
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["policy.view=half", "models.new.backend=scripted"])
    assert exc.value.where == str(path)
    lines = exc.value.message.splitlines()
    assert "  attack.roundz: unknown key (did you mean 'rounds'?)" in lines
    assert any(
        line.startswith("  policy.view:") and line.endswith("[--set policy.view=half]")
        for line in lines
    )
    # a key missing from a model the override created is the override's
    assert "  models.new.model: Field required [--set models.new.backend=scripted]" in lines


def test_an_override_of_an_undeclared_model_names_the_models_that_exist(write_config):
    path = write_config()
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["models.judgr.model=x"])
    assert exc.value.where == "--set models.judgr.model=x"
    assert exc.value.message == "no model 'judgr' in the config (did you mean 'judge'?)"
    assert "models: " in exc.value.hint and "judge" in exc.value.hint
    assert "models.judgr.backend" in exc.value.hint  # how to add one on purpose
    assert "Field required" not in exc.value.render()
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["models.nosuch.sampling.temperature=0.5"])
    assert "no model 'nosuch' in the config" in exc.value.message
    # a new model given its backend and model is declared on purpose
    cfg = load_config(path, ["models.extra.backend=scripted", "models.extra.model=m"])
    assert cfg.models["extra"].model == "m"


def test_the_event_loop_is_checked_with_the_config(write_config, monkeypatch):
    """``runtime.event_loop: uvloop`` without uvloop fails at load, before any call; the event
    loop is how the run executes, so it never changes a stage's hash."""
    import importlib.util

    path = write_config()
    a = load_config(path, ["runtime.event_loop=asyncio"])
    b = load_config(path, [])
    assert b.runtime.event_loop == "auto"
    assert [a.stage_hash(s) for s in ("seeds", "judge")] == [
        b.stage_hash(s) for s in ("seeds", "judge")
    ]
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["runtime.event_loop=trio"])
    assert "runtime.event_loop" in exc.value.render()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["runtime.event_loop=uvloop"])
    text = exc.value.render()
    assert "runtime.event_loop" in text and "pip install uvloop" in text, text
