"""Training config: YAML + overrides, typed values, clear errors, TRL argument mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from koalign.errors import ConfigError
from koalign.train.config import LoraSettings, TrainConfig, load_train_config, parse_override
from koalign.train.dpo import build_dpo_config, resolve_dpo_args, resolve_quantization


def test_overrides_are_yaml_typed_and_dotted(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "model: org/base\ndata: [a.jsonl]\npeft: {r: 8}\ndpo_args: {beta: 0.2, learning_rate: 5e-6}\n",
        encoding="utf-8",
    )
    cfg = load_train_config(
        cfg_file,
        overrides=["dpo_args.max_steps=2", "peft.alpha=32", "dpo_args.loss_type=[sigmoid, sft]"],
        model="local/model",
        output="out",
    )
    assert cfg.model == "local/model"  # option beats file
    assert cfg.peft == LoraSettings(r=8, alpha=32)
    assert cfg.dpo_args == {
        "beta": 0.2,
        "learning_rate": 5e-6,
        "max_steps": 2,
        "loss_type": ["sigmoid", "sft"],
    }
    assert isinstance(cfg.dpo_args["learning_rate"], float)
    assert parse_override("dpo_args.output_dir=") == ("dpo_args.output_dir", "")


def test_train_config_refuses_duplicate_keys_and_alias_bombs(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        "model: org/base\ndata: [a.jsonl]\ndpo_args:\n  beta: 0.1\n  beta: 0.5\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_train_config(dup)
    assert exc.value.where == f"{dup}:5"
    assert "duplicate key 'beta'" in exc.value.message and "line 4" in exc.value.message
    bomb = tmp_path / "bomb.yaml"
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb.write_text("model: m\ndata: [d.jsonl]\ndpo_args:\n  " + "\n  ".join(levels) + "\n")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_train_config(bomb)


def test_peft_none_and_default_output() -> None:
    cfg = load_train_config(model="org/Base-7B", data=["x.jsonl"], overrides=["peft=none"])
    assert cfg.peft == "none" and not cfg.use_lora
    assert cfg.output_dir() == Path("outputs/Base-7B-dpo")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["modle=x"], "did you mean 'model'"),
        (["peft.rr=4"], "peft.rr: unknown key (did you mean 'r'?)"),
        (["peft=none", "quantization=4bit-nf4"], "needs a LoRA adapter"),
        (["quantization=8bit"], "quantization"),
        (["novalue"], "has no '='"),
    ],
)
def test_config_errors_name_the_key(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_train_config(model="m", data=["d.jsonl"], overrides=overrides)
    assert fragment in str(exc.value)


def test_missing_model_and_data_are_reported() -> None:
    with pytest.raises(ConfigError) as exc:
        load_train_config(None)
    assert "model: Field required" in str(exc.value) and "data: Field required" in str(exc.value)


def test_cpu_defaults_and_user_args_win() -> None:
    lora = TrainConfig(model="m", data=["d"], output="o", dpo_args={"beta": 0.5})
    args = resolve_dpo_args(lora, cuda=False, has_eval=True)
    assert args["beta"] == 0.5 and args["learning_rate"] == 5e-6
    assert args["bf16"] is False and args["use_cpu"] is True
    assert args["precompute_ref_log_probs"] is True and args["eval_strategy"] == "steps"
    assert args["logging_steps"] == 1 and args["report_to"] == "none"
    assert args["output_dir"] == str(Path("o") / "checkpoints")
    full = TrainConfig(model="m", data=["d"], peft="none")
    fargs = resolve_dpo_args(full, cuda=True, has_eval=False)
    assert fargs["precompute_ref_log_probs"] is False and fargs["learning_rate"] == 5e-7
    assert fargs["bf16"] is True and fargs["use_cpu"] is False and "eval_strategy" not in fargs
    rev = TrainConfig(model="m", data=["d"], dpo_args={"model_init_kwargs": {"revision": "abc"}})
    assert resolve_dpo_args(rev, cuda=True, has_eval=False)["model_init_kwargs"] == {
        "dtype": "bfloat16",
        "revision": "abc",
    }
    old = TrainConfig(model="m", data=["d"], dpo_args={"gradient_checkpointing": False})
    assert "activation_checkpointing" not in resolve_dpo_args(old, cuda=True, has_eval=False)


def test_quantization_resolution_and_refusal_without_cuda() -> None:
    cfg = TrainConfig(model="m", data=["d"])
    assert resolve_quantization(cfg, cuda=True) == "4bit-nf4"
    assert resolve_quantization(cfg, cuda=False) == "none"
    full = TrainConfig(model="m", data=["d"], peft="none")
    assert resolve_quantization(full, cuda=True) == "none"
    q = TrainConfig(model="m", data=["d"], quantization="4bit-nf4")
    with pytest.raises(ConfigError) as exc:
        resolve_quantization(q, cuda=False)
    assert exc.value.where == "quantization" and "CUDA" in str(exc.value)


def test_trl_errors_are_reraised_naming_the_config_key(tmp_path: Path) -> None:
    base = {"output_dir": str(tmp_path), "use_cpu": True, "bf16": False}
    with pytest.raises(ConfigError) as exc:
        build_dpo_config({**base, "betta": 0.1})
    assert exc.value.where == "dpo_args.betta" and "did you mean 'beta'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:  # a short name people type
        build_dpo_config({**base, "lr": 1e-5})
    assert exc.value.hint == "did you mean 'learning_rate'? see the trl.DPOConfig documentation"
    with pytest.raises(ConfigError) as exc:
        build_dpo_config({**base, "max_prompt_length": 512})
    assert exc.value.where == "dpo_args.max_prompt_length" and "max_length" in str(exc.value)
    with pytest.raises(ConfigError) as exc:  # a ValueError from DPOConfig.__post_init__
        build_dpo_config({**base, "loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]})
    assert exc.value.where == "dpo_args.loss_weights"
    assert build_dpo_config({**base, "beta": 0.3}).beta == 0.3


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_presets_load_with_the_paper_settings() -> None:
    import yaml

    presets = sorted((EXAMPLES / "train").glob("*.yaml"))
    assert len(presets) == 6
    models = set()
    for path in presets:
        cfg = load_train_config(path)
        models.add(cfg.model)
        assert cfg.quantization == "auto"
        assert isinstance(cfg.peft, LoraSettings)
        assert (cfg.peft.r, cfg.peft.alpha, cfg.peft.dropout) == (16, 16, 0.05)
        assert cfg.trust_remote_code == ("EXAONE" in cfg.model)
        build_dpo_config(
            {**resolve_dpo_args(cfg, cuda=False, has_eval=True), "output_dir": "/tmp/x"}
        )
    assert len(models) == 6
    for path in (EXAMPLES / "accelerate").glob("*.yaml"):
        acc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert acc["distributed_type"] in {"DEEPSPEED", "FSDP"} and acc["mixed_precision"] == "bf16"


def test_override_errors_name_the_override_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("model: org/Base-7B\ndata: [x.jsonl]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_train_config(path, overrides=["lr=1"])
    assert exc.value.where == "--set lr=1"
    assert exc.value.message == (
        "lr: unknown key (did you mean 'dpo_args.learning_rate'? TRL's arguments go under dpo_args)"
    )
    assert f"{path} itself is valid" in (exc.value.hint or "")
    path.write_text("model: org/Base-7B\ndata: [x.jsonl]\nepochs: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:  # the file's own error stays the file's
        load_train_config(path, overrides=["peft.r=8"])
    assert exc.value.where == str(path) and "epochs: unknown key" in exc.value.message


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("lr=1e-5", "dpo_args.learning_rate"),
        ("learning_rate=1e-5", "dpo_args.learning_rate"),  # a TRL argument outside dpo_args
        ("epochs=2", "dpo_args.num_train_epochs"),
        ("bf16=true", "dpo_args.bf16"),
        ("peft.rank=8", "r"),
        ("peft.lora_alpha=8", "alpha"),
        ("validation.max_truncated=0.2", "max_truncated_share"),
    ],
)
def test_an_unknown_key_names_the_key_meant(tmp_path: Path, override: str, suggestion: str):
    with pytest.raises(ConfigError) as exc:
        load_train_config(overrides=[override], model="org/m", data=["x.jsonl"])
    assert f"unknown key (did you mean '{suggestion}'?" in exc.value.message


def test_the_suggested_trl_arguments_exist_in_trl() -> None:
    import dataclasses

    import trl

    from koalign.train.config import COMMON_DPO_ARGS, DPO_ARG_ALIASES, LORA_ALIASES

    known = {f.name for f in dataclasses.fields(trl.DPOConfig)}
    assert set(COMMON_DPO_ARGS) <= known
    assert set(DPO_ARG_ALIASES.values()) <= set(COMMON_DPO_ARGS)
    assert set(LORA_ALIASES.values()) <= set(LoraSettings.model_fields)
