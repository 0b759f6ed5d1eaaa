"""Help texts that list exit codes list every code the command can exit with, including 2,
which every usage error (an unknown option, a missing argument) exits with; a Ctrl-C while
the command line loads exits 130."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from koalign.cli import app

runner = CliRunner()
ROOT = typer.main.get_command(app)


def command(*path: str) -> Any:
    cmd: Any = ROOT
    for name in path:
        cmd = cmd.commands[name]
    return cmd


EVAL = sorted(command("eval").commands)


@pytest.mark.parametrize("name", EVAL)
def test_a_usage_error_of_every_eval_command_exits_2_as_eval_help_says(name: str) -> None:
    res = runner.invoke(app, ["eval", name, "--no-such-option"])
    assert res.exit_code == 2
    help_text = " ".join((command("eval").help or "").split())
    codes = re.search(r"Exit codes: (.*)", help_text)
    assert codes, help_text
    listed = re.findall(r"(?:^|; )(\d+) ", codes[1])
    assert listed == ["0", "1", "2", "3", "130"], listed
    assert "2 usage error" in codes[1]


def test_statutes_check_lists_its_usage_error_code() -> None:
    assert runner.invoke(app, ["statutes", "check"]).exit_code == 2  # --from is required
    help_text = " ".join((command("statutes", "check").help or "").split())
    assert "Exit status: 0 " in help_text and "; 2 a usage error" in help_text


def test_cite_check_lists_its_usage_error_code() -> None:
    assert runner.invoke(app, ["cite", "check"]).exit_code == 2  # FILE is required
    help_text = " ".join((command("cite", "check").help or "").split())
    assert "Exit status: 0 " in help_text and "2 a usage error" in help_text


def test_ctrl_c_while_the_command_line_loads_exits_130_without_a_traceback() -> None:
    import subprocess
    import sys

    # the interrupt is raised where a Ctrl-C would land: inside the import of the CLI
    script = (
        "import sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'koalign.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "from koalign.__main__ import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130
    assert done.stderr == "koalign: interrupted while starting; nothing was run\n"
