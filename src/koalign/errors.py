"""Exception types. Every message says what went wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

#: What a secret (URL credentials, a header value) is shown as.
HIDDEN = "**********"
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]*@")
_HEADERS_VALUE = re.compile(r"[?&]headers=")
_PLAIN_VALUE_END = re.compile(r"[&\n]")
_ALREADY_HIDDEN = re.compile(re.escape(HIDDEN) + r"(?=$|[&\s:'\")\]])")
_STUCK = re.compile(r"[^&\s:]*")  # characters stuck to a closing bracket (a malformed value)


def hide_secrets(text: str) -> str:
    """``text`` with the secrets a model SPEC may carry hidden: the ``user:password@`` of a URL
    and the value of a ``headers=`` query key (``openai:m@http://h/v1?headers={X-Key: s}``).

    A ``headers=`` value in brackets is hidden to its closing bracket (quotes respected) and any
    characters stuck to it; any other value to the next ``&`` or the end of the line (a
    block mapping ``headers=Authorization: Bearer s`` is a value too). A value already hidden
    is left as it is, so hiding twice changes nothing."""
    text = _URL_CREDENTIALS.sub(rf"\1{HIDDEN}@", text)
    pos = 0
    while match := _HEADERS_VALUE.search(text, pos):
        start = match.end()
        if _ALREADY_HIDDEN.match(text, start):
            pos = start + len(HIDDEN)
            continue
        end = _value_end(text, start)
        text = text[:start] + HIDDEN + text[end:]
        pos = start + len(HIDDEN)
    return text


def _value_end(text: str, start: int) -> int:
    if text[start : start + 1] not in ("{", "["):
        plain = _PLAIN_VALUE_END.search(text, start)
        return plain.start() if plain else len(text)
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                rest = _STUCK.match(text, i + 1)
                return rest.end() if rest else i + 1
    return len(text)


class KoalignError(Exception):
    """Base class for all koalign errors.

    ``where`` names the file, config path or record the error is about; ``hint`` says how to fix it.
    Credentials in a URL and ``headers=`` values of a model SPEC are hidden in all three
    (:func:`hide_secrets`), whoever built the text.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = hide_secrets(message)
        self.where = None if where is None else hide_secrets(where)
        self.hint = None if hint is None else hide_secrets(hint)
        super().__init__(self.render())

    def render(self) -> str:
        """The one-line message: ``where: message (hint)``, each part only when set."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(KoalignError):
    """A configuration file or override is invalid."""


class LocaleError(KoalignError):
    """A locale pack is missing, malformed or inconsistent.

    ``problems`` lists every problem found, each already rendered as ``file:path: message``.
    """

    def __init__(
        self, message: str, *, problems: list[str] | None = None, **kw: str | None
    ) -> None:
        self.problems = problems or []
        super().__init__(message, **kw)


class DataError(KoalignError):
    """Input data (a dataset file, an export) cannot be read or is malformed."""


class BackendError(KoalignError):
    """A model backend cannot be created or used."""


class MissingExtraError(KoalignError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, *, feature: str | None = None) -> None:
        what = (
            f"{feature} needs the Python package '{package}'"
            if feature
            else (f"the Python package '{package}' is not installed")
        )
        super().__init__(what, hint=f'install it with: pip install "koalign[{extra}]"')


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def require(module: str, extra: str, *, feature: str | None = None):
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, feature=feature) from exc
