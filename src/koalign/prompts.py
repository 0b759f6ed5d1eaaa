"""Rendering the locale pack's Jinja2 prompt templates into chat messages.

A template ``prompts/<role>.j2`` defines ``{% block system %}`` (optional) and
``{% block user %}``. Rendering is strict: an undefined variable is an error, never an empty
string, so a broken template fails before the first model call.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from koalign.errors import LocaleError, did_you_mean
from koalign.locale import Locale
from koalign.types import Message

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
)


def template_names(loc: Locale) -> list[str]:
    return sorted(loc.prompts)


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def _template(loc: Locale, role: str) -> jinja2.Template:
    text = loc.prompts.get(role)
    if text is None:
        raise LocaleError(
            f"the locale has no prompt template for role '{role}'{did_you_mean(role, loc.prompts)}",
            where=f"{loc.path}/prompts",
            hint=f"add prompts/{role}.j2 (templates: {', '.join(sorted(loc.prompts)) or 'none'})",
        )
    return _compile(text)


def render_chat(loc: Locale, role: str, **context: Any) -> tuple[Message, ...]:
    """Render ``prompts/<role>.j2`` with ``context`` (plus ``locale``) into system/user messages."""
    template = _template(loc, role)
    if "user" not in template.blocks:
        raise LocaleError(
            "template has no {% block user %}",
            where=f"prompts/{role}.j2",
            hint="see docs/locale-format.md",
        )
    ctx = template.new_context({"locale": loc, **context})
    try:
        parts = {name: "".join(fn(ctx)).strip() for name, fn in template.blocks.items()}
    except jinja2.UndefinedError as exc:
        raise LocaleError(
            f"template needs a value it was not given: {exc.message}", where=f"prompts/{role}.j2"
        ) from exc
    messages = []
    if parts.get("system"):
        messages.append(Message(role="system", content=parts["system"]))
    messages.append(Message(role="user", content=parts["user"]))
    return tuple(messages)
