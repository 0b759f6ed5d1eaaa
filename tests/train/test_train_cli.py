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


def test_a_cp949_data_file_names_the_file_the_line_and_the_fix(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from support.servers import cli

    first = (json.dumps(make_row(0), ensure_ascii=False) + "\n").encode("utf-8")
    second = (json.dumps(make_row(1), ensure_ascii=False) + "\n").encode("cp949")
    data = tmp_path / "cp949.jsonl"
    data.write_bytes(first + second)
    try:
        second.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = len(first) + exc.start
    out = cli("train", "-m", str(tiny_model_dir), "-d", str(data), "--check-only")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert f"{data}:2: not UTF-8 text (byte {byte} of the file)" in out.stderr
    fix = f"iconv -f cp949 -t utf-8 {data} > {tmp_path / 'cp949.utf8.jsonl'}"
    assert fix in " ".join(out.stderr.split())


def test_a_cp949_chat_template_file_names_the_file_and_the_fix(
    tiny_model_dir: Path, export_dir: Path, tmp_path: Path
) -> None:
    from support.servers import cli

    template = tmp_path / "chat.j2"
    text = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}{# 대화 형식 #}\n"
    template.write_bytes(text.encode("cp949"))
    out = cli(
        "train", "-m", str(tiny_model_dir), "-d", str(export_dir), "--check-only",
        "--set", f"chat_template={template}",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert f"chat_template {template}: not UTF-8 text" in out.stderr
    fix = f"iconv -f cp949 -t utf-8 {template} > {template.parent / 'chat.utf8.j2'}"
    assert fix in " ".join(out.stderr.split())


def test_a_utf8_bom_is_not_a_broken_row(tmp_path: Path) -> None:
    from koalign.train.data import load_rows, resolve_sources

    data = tmp_path / "bom.jsonl"
    data.write_bytes(
        b"\xef\xbb\xbf" + write_jsonl(tmp_path / "x.jsonl", [make_row(0)]).read_bytes()
    )
    rows, problems = load_rows(resolve_sources([str(data)]))
    assert problems == [] and [r.id for r in rows] == ["row-000"]
