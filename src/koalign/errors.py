"""Exception types. Every message says what went wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class KoalignError(Exception):
    """Base class for all koalign errors.

    ``where`` names the file, config path or record the error is about; ``hint`` says how to fix it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
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
