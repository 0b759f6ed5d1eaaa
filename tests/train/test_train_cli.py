"""`koalign train`: the command from the issue, --check-only and error reporting."""

from __future__ import annotations

import json
import math
from pathlib import Path

from train_rows import make_row, write_jsonl
from typer.testing import CliRunner

from koalign.cli import app
from koalign.errors import ConfigError

runner = CliRunner()


def test_train_command_writes_every_output(
    tiny_model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(export_dir),
            "--output",
            str(out),
            "--set",
            "dpo_args.max_steps=2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    expected = [
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "koalign_train.yaml",
        "dpo_config.json",
        "metrics.json",
        "metrics.png",
        "validation.json",
        "README.md",
    ]
    missing = [name for name in expected if not (out / name).is_file()]
    assert missing == []
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["train"]) == 2
    assert all(math.isfinite(e["loss"]) for e in metrics["train"])
    assert {"rewards/accuracies", "rewards/margins"} <= set(metrics["train"][-1])
    dpo = json.loads((out / "dpo_config.json").read_text(encoding="utf-8"))
    assert dpo["max_steps"] == 2 and dpo["beta"] == 0.1 and dpo["use_cpu"] is True


def test_config_file_and_check_only_json(
    tiny_model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        f"model: {tiny_model_dir}\ndata: [{export_dir}]\npeft: {{r: 8, alpha: 16}}\n"
        "dpo_args: {beta: 0.05, learning_rate: 1e-5}\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["train", str(cfg), "--check-only", "--json", "--set", "dpo_args.max_length=64"]
    )
    assert result.exit_code == 1  # the rows are longer than 64 tokens
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["report"]["truncated_share"] == 1.0
    assert report["dpo_args"]["beta"] == 0.05 and report["dpo_args"]["learning_rate"] == 1e-5
    ok = runner.invoke(app, ["train", str(cfg), "--check-only", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["report"]["rows"] == {"train": 8, "eval": 2}
    assert "data check passed" in ok.stderr


def test_check_only_lists_broken_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = make_row(2)
    bad["prompt"][1]["role"] = "human"
    data = write_jsonl(tmp_path / "rows.jsonl", [make_row(0), bad])
    result = runner.invoke(
        app, ["train", "-m", str(tiny_model_dir), "-d", str(data), "--check-only"]
    )
    assert result.exit_code == 1
    assert "bad_role" in result.stderr and "rows.jsonl:2 [row-002]" in result.stderr


def test_unknown_dpo_arg_is_a_config_error(tiny_model_dir: Path, export_dir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "-m",
            str(tiny_model_dir),
            "-d",
            str(export_dir),
            "--check-only",
            "--set",
            "dpo_args.bta=0.1",
        ],
    )
    assert isinstance(result.exception, ConfigError)
    assert result.exception.where == "dpo_args.bta"
