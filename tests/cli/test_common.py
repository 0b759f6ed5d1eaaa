"""The CLI's shared behaviour: plain --help labels on every command, messages printed as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from koalign.cli import app
from koalign.cli.common import err, escape, print_error, print_warning
from koalign.errors import ConfigError, LocaleError, MissingExtraError

runner = CliRunner()

# A Python type where a value label belongs: `<bool>`, `<list[str]>`, `<path>`, `<a|b>` ...
TYPE_NAME = re.compile(
    r"<(?:bool|str|int|float|path|file|dir|datetime|list\[[^>]*\]|\w+(?:\|\w+)+)>"
)
USAGE_BRACES = re.compile(r"Usage:.*\{\w+\}")


def _command_paths(command, path: list[str]):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, [*path, name])


def test_every_command_help_shows_plain_labels() -> None:
    paths = list(_command_paths(typer.main.get_command(app), []))
    assert len(paths) > 20  # every registered command and group, not a sample
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=120)
        assert result.exit_code == 0, (path, result.output)
        assert not TYPE_NAME.findall(result.output), (path, TYPE_NAME.findall(result.output))
        assert not USAGE_BRACES.search(result.output), (path, result.output)


def test_help_labels_values_and_not_flags() -> None:
    result = runner.invoke(app, ["train", "--help"], terminal_width=120)
    assert "Usage: koalign train [OPTIONS] [CONFIG]" in result.output
    assert re.search(r"--set\s+TEXT", result.output)
    assert re.search(r"--check-only\s+Only validate", result.output)  # no label for a flag
    root = runner.invoke(app, ["--help"], terminal_width=120)
    assert re.search(r"--version\s+Show the version", root.output)
    run = runner.invoke(app, ["run", "--help"], terminal_width=120)
    assert "Usage: koalign run [OPTIONS] CONFIG" in run.output
    assert re.search(r"--limit\s+INTEGER", run.output)


def test_messages_print_brackets_as_written() -> None:
    with err.capture() as captured:
        print_error(MissingExtraError("lm_eval", "lmeval", feature="general evaluation"))
        print_error(ConfigError("bad value [x]", where="run.yaml:3", hint="use [bold] text"))
        print_error(LocaleError("broken", problems=["rubric.yaml:2: [A] unknown"]))
        print_warning("model [qwen] is slow")
    text = captured.get()
    assert 'pip install "koalign[lmeval]"' in text
    assert "run.yaml:3: bad value [x] (use [bold] text)" in text
    assert "  - rubric.yaml:2: [A] unknown" in text
    assert "warning: model [qwen] is slow" in text
    assert escape("[red]x[/]") == "\\[red]x\\[/]"


def test_cli_errors_keep_user_text(tmp_path: Path) -> None:
    """End to end: the console entry point prints a path with brackets as written."""
    missing = tmp_path / "cfg[lmeval].yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "koalign", "train", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"error: {missing}: file not found" in proc.stderr.replace("\n", "")


@pytest.mark.parametrize("args", [["train", "--check-only"]])
def test_train_without_model_is_a_clean_error(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError) and "model" in str(result.exception)


def test_cite_check_prints_an_error_label_not_markup(tmp_path: Path) -> None:
    data = tmp_path / "answers[v2].jsonl"
    data.write_text('{"id": "a", "text": "112에 신고하세요"}\n{"id": oops\n', encoding="utf-8")
    result = runner.invoke(app, ["cite", "check", str(data)])
    assert f"error: {data}:2: not valid JSON" in result.stderr
    assert "[bold red]" not in result.stderr


def test_a_huggingface_hub_warning_is_printed_once() -> None:
    # the hub logs through a handler of its own; a copy passed on to koalign's would print twice
    script = (
        "import sys\n"
        "from koalign.cli import main\n"
        "from huggingface_hub.utils import logging as hub_logging\n"
        "sys.argv = ['koalign', 'locale', 'check']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "hub_logging.get_logger('huggingface_hub.file_download').warning('HUB-NOTE')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stderr.count("HUB-NOTE") == 1, done.stderr
