"""The koalign command line. Each feature registers its commands from its own module."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from koalign.cli import (
    backend_cmds,
    cite_cmds,
    eval_cmds,
    locale_cmds,
    pipeline_cmds,
    train_cmds,
)
from koalign.cli.common import KoalignGroup, err, print_error
from koalign.errors import KoalignError

app = typer.Typer(
    name="koalign",
    cls=KoalignGroup,
    help="Culturally coherent Korean alignment data, DPO training and evaluation for LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from koalign import __version__

        typer.echo(f"koalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    handler: logging.Handler
    if err.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=err, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # a file or a pipe: one plain line per message, nothing padded or wrapped
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # HTTP clients log every request at INFO: at 100+ requests/s that floods stderr.
    for name in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # huggingface_hub prints through a handler of its own: passed on to ours too, each of its
    # warnings would appear twice
    logging.getLogger("huggingface_hub").propagate = False


for module in (locale_cmds, backend_cmds, cite_cmds, pipeline_cmds, train_cmds, eval_cmds):
    module.register(app)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown of the heap (about 0.4 s after a
    400-seed run: millions of objects freed one by one). Only used after a pipeline run that
    closed its stage files, cache and connections itself; logs and streams are flushed first."""
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Console entry point: runs the app and turns koalign errors into messages and exit code 1."""
    try:
        app()
    except SystemExit as exc:
        if pipeline_cmds.RUN_CLOSED and exc.code in (0, None):
            _exit_now(0)
        raise
    except KoalignError as exc:  # a LocaleError's problems follow, one per line
        code = getattr(exc, "exit_code", 1)  # 130/143 for SIGINT/SIGTERM
        if code in (130, 143):
            _ignore_stop_signals()
        print_error(exc)
        sys.exit(code)
    except KeyboardInterrupt:
        _ignore_stop_signals()
        err.print("[yellow]interrupted[/]; rerun the same command to resume")
        sys.exit(130)


def _ignore_stop_signals() -> None:
    """After a stop by signal, the same signal delivered again while the process exits (GNU
    timeout signals the child, then its process group) must not kill it mid-exit and turn
    exit status 130 into death by signal."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
