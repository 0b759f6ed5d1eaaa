"""Shared helpers for CLI modules: the consoles, safe message printing and plain ``--help``.

The CLI modules are the only place that prints. Every message that carries text from outside
(a file name, a model name, an error's message or hint) goes through :func:`escape` (or the
helpers here that call it): rich would otherwise read ``koalign[lmeval]`` as a style tag and
drop it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any, get_args

import typer
from rich.console import Console
from rich.markup import escape as _rich_escape
from rich.table import Table
from typer.core import TyperArgument, TyperGroup, TyperOption

from koalign.errors import KoalignError, LocaleError


def _console(**kwargs: Any) -> Console:
    console = Console(soft_wrap=True, **kwargs)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # a file or a pipe: table rows stay whole (rich assumes 80)
    return console


err = _console(stderr=True)
out = _console()


def fold(table: Table) -> Table:
    """``table`` with every column folding long words onto the next line instead of cutting
    them with an ellipsis (rich's default); returns the same table."""
    for column in table.columns:
        column.overflow = "fold"
    return table


LocaleOpt = "--locale"


def escape(text: Any) -> str:
    """``str(text)`` with rich markup escaped, so ``[lmeval]`` prints as written."""
    return _rich_escape(str(text))


def print_error(problem: KoalignError | str, *, label: str = "error") -> None:
    """``<label>: <message>`` on stderr, the label in bold red, the message exactly as given.

    A :class:`~koalign.errors.KoalignError` is rendered with its ``where`` and ``hint``; the
    problems of a :class:`~koalign.errors.LocaleError` follow, one per line.
    """
    text = problem.render() if isinstance(problem, KoalignError) else str(problem)
    err.print(f"[bold red]{escape(label)}:[/] {escape(text)}", highlight=False)
    if isinstance(problem, LocaleError):
        print_lines(problem.problems)


def print_warning(text: str) -> None:
    """``warning: <text>`` on stderr, the label in yellow, the text exactly as given."""
    err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)


def print_lines(lines: Iterable[str], *, indent: str = "  - ") -> None:
    """Each line on stderr exactly as given (no markup), prefixed with ``indent``."""
    for line in lines:
        err.print(f"{indent}{line}", highlight=False, markup=False)


def print_json(obj: Any) -> None:
    """Write one JSON document to stdout (UTF-8, Korean unescaped)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_jsonl(obj: Any) -> None:
    """Write one JSON value as one line to stdout (UTF-8, Korean unescaped)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


# ----------------------------------------------------------------------------- --help
_TYPE_LABELS: dict[Any, str] = {int: "INTEGER", float: "NUMBER", str: "TEXT", bool: "BOOLEAN"}


def type_label(param: Any) -> str:
    """What ``--help`` shows for a typer parameter's value: ``TEXT``, ``PATH``, ``FILE``,
    ``DIR``, ``INTEGER``, ``NUMBER`` or the choices ``a|b|c``; never a Python type name.

    ``param`` is a :class:`typer.core.TyperArgument` or :class:`typer.core.TyperOption`.
    """
    desc = param.type_descriptor
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    if desc.is_path:
        return desc.path_type.upper()
    if desc.is_file:
        return "FILE"
    if desc.is_datetime:
        return "DATETIME"
    annotation = desc.annotation
    if desc.is_list or desc.is_tuple:
        inner = get_args(annotation)
        annotation = inner[0] if inner else str
    return _TYPE_LABELS.get(annotation, getattr(annotation, "__name__", "value").upper())


class _PlainArgument(TyperArgument):
    """An argument shown as ``CONFIG`` (``[CONFIG]`` when optional), its value type plain."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if not self.required:
            name = f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return type_label(self)


class _PlainOption(TyperOption):
    """An option shown with a plain value label, and none at all for a flag."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return self.metavar if self.metavar is not None else type_label(self)


def plain_help(command: Any) -> None:
    """Make ``command`` and every subcommand show plain value labels in ``--help``.

    typer 0.29 labels values with Python types (``--version <bool>``, ``--set <list[str]>``,
    ``{config}`` in the usage line). This swaps each typer parameter's class, ``--help``
    included, for a subclass that only changes how it is displayed: parsing, defaults and
    errors stay typer's own.
    """
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
        elif type(param) is TyperOption:
            param.__class__ = _PlainOption
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


class KoalignGroup(TyperGroup):
    """The root command group: typer's, with plain ``--help`` labels throughout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)
