"""Does a role's prompt fit its model's context window? (the preflight and ``models check``).

A role's longest prompt (rendered by the engine) and its answer budget are measured against the
model's window: ``prompt tokens + max_tokens <= context_window``. Prompt tokens are exact where
the model layer can tokenise (``hf``; ``openai`` with ``options.tokenizer``) and a conservative
estimate otherwise (:meth:`koalign.backends.client.LLM.count_tokens`); an unknown window is
reported as such, never as "fits".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from koalign.backends.client import LLM
from koalign.types import Message

FIT_HINT = (
    "use a shorter prompt (the compact policy: policy: {view: compact}; no worked examples: "
    "policy: {few_shot: 0}), a smaller max_tokens, or a model with a larger window"
)


def unknown_window_note(model: str) -> str:
    """What to say when ``model``'s context window is unknown: its prompts were not measured
    against a window, and how to give it."""
    return (
        f"models.{model}: the context window is unknown (not in the config, and neither the "
        "server's model list nor the model's config gives it), so no prompt was checked against "
        f"it: set context_window under models.{model} (e.g. context_window: 8192; on the command "
        f"line --set models.{model}.context_window=8192)"
    )


def has_window(llm: LLM) -> bool:
    """Whether ``llm`` is a model with a context window at all (a scripted test backend, which
    answers from a list or a function, has none)."""
    return getattr(llm.backend, "name", None) != "scripted"


@dataclass(frozen=True)
class RolePrompt:
    """The longest prompt one role sends to one model: the role's name, the messages as
    rendered (without the schema contract: ``json_schema`` adds it), the answer budget
    (``None``: the model's own default), an optional label of what was rendered (e.g. the
    category) and ``reserved_tokens``: room for generated texts the prompt will carry (a judge's
    prompt quotes the rewrite and the answers; the engine adds their writers' ``max_tokens``)."""

    role: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None
    label: str | None = None
    reserved_tokens: int = 0  # generated texts the prompt will quote (their writers' budgets)


@dataclass(frozen=True)
class Fit:
    """The verdict for one role on one model (token counts; ``window`` ``None`` when unknown).

    ``fits`` is ``None`` when the window is unknown. ``exact`` says whether ``prompt_tokens``
    was counted by the model's tokenizer or estimated.
    """

    role: str
    model: str
    prompt_tokens: int
    max_tokens: int | None
    window: int | None
    exact: bool
    label: str | None = None

    @property
    def needed(self) -> int:
        """Prompt tokens plus the answer budget."""
        return self.prompt_tokens + (self.max_tokens or 0)

    @property
    def fits(self) -> bool | None:
        """``needed <= window``, or ``None`` for an unknown window."""
        return None if self.window is None else self.needed <= self.window

    def message(self) -> str:
        """One line saying what was measured and, when it does not fit, what to do."""
        how = "" if self.exact else " (estimated)"
        what = f"role '{self.role}'" + (f" ({self.label})" if self.label else "")
        head = (
            f"{what} on model '{self.model}': {self.prompt_tokens:,} prompt tokens{how} + "
            f"{self.max_tokens or 0:,} max_tokens"
        )
        if self.window is None:
            return (
                f"{head}; the context window is unknown, so the prompt was not checked "
                f"(set context_window under models.{self.model})"
            )
        if self.fits:
            return f"{head} = {self.needed:,} <= {self.window:,} window"
        return f"{head} = {self.needed:,} > {self.window:,} window: {FIT_HINT}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (with ``fits`` and ``message``)."""
        return {
            "role": self.role,
            "model": self.model,
            "label": self.label,
            "prompt_tokens": self.prompt_tokens,
            "max_tokens": self.max_tokens,
            "window": self.window,
            "exact": self.exact,
            "fits": self.fits,
            "message": self.message(),
        }


async def check_fit(llm: LLM, prompt: RolePrompt) -> Fit:
    """Measure ``prompt`` against ``llm``'s window (no model call; an ``openai`` model's window
    may be read from its server's model list, an ``hf`` model's tokenizer is loaded).

    The answer budget is the prompt's ``max_tokens``, else the model's sampling default, else
    the backend's default (``hf``: ``options.max_new_tokens``).
    """
    return fit_in(llm, prompt, await llm.context_window())


def fit_in(llm: LLM, prompt: RolePrompt, window: int | None) -> Fit:
    """Measure ``prompt`` on ``llm`` against a given ``window`` (``None``: unknown); no I/O but
    loading a local tokenizer. The answer budget is as in :func:`check_fit`."""
    tokens = llm.count_tokens(prompt.messages, json_schema=prompt.json_schema)
    tokens += prompt.reserved_tokens
    budget = prompt.max_tokens or llm.spec.sampling.max_tokens or llm.backend.default_max_tokens()
    return Fit(
        role=prompt.role,
        model=llm.name,
        prompt_tokens=tokens,
        max_tokens=budget,
        window=window,
        exact=llm.counts_tokens_exactly,
        label=prompt.label,
    )
