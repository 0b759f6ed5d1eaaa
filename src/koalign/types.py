"""Core data types shared by every stage: chat messages, model requests and results.

All types are frozen pydantic models that round-trip through JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidatorFunctionWrapHandler, WrapValidator

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class SamplingParams(BaseModel):
    """Sampling parameters that change a model's output (all part of the cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, description="Sampling temperature; 0 = greedy.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int | None = Field(None, gt=0, description="Maximum new tokens.")
    seed: int | None = Field(None, description="Sampling seed, where the backend supports it.")
    stop: tuple[str, ...] | None = Field(None, description="Stop strings.")

    def merged(self, override: SamplingParams | None) -> SamplingParams:
        """Return these defaults with every field set in ``override`` taking precedence."""
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(exclude_none=True))
        return SamplingParams(**data)


TruncationPolicy = Literal["retry", "drop"]


def _same_dict(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A dict is kept as the same object (not copied), so caches keyed by a schema's identity
    hit for every request that carries a stage's schema."""
    return value if type(value) is dict else handler(value)


#: A JSON schema as given (validated as a dict, never copied; it must not be mutated).
JsonSchema = Annotated[dict[str, Any], WrapValidator(_same_dict)]


class ChatRequest(BaseModel):
    """One request to a chat model.

    ``sample_index`` distinguishes repeated samples of the same prompt (it is part of the cache
    key, so sample 0 and sample 1 are cached separately). ``tag`` names the caller (e.g. a stage)
    for the call log and ``on_truncation`` says what to do with an answer cut at ``max_tokens``
    (see :class:`ChatResult`); neither is part of the cache key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[Message, ...]
    sampling: SamplingParams | None = None
    json_schema: JsonSchema | None = Field(
        None, description="JSON schema the answer must satisfy; the result's `parsed` holds it."
    )
    sample_index: int = Field(0, ge=0)
    tag: str | None = None
    on_truncation: TruncationPolicy = Field(
        "retry",
        description="An answer cut at max_tokens: 'retry' once with twice the budget (capped by "
        "the model's context window), then report 'truncated'; 'drop': report 'truncated' at once.",
    )


ErrorKind = Literal[
    "rate_limit",  # 429 after all retries
    "server",  # 5xx after all retries
    "timeout",
    "connection",
    "bad_request",  # other 4xx, not retried
    "auth",
    "parse",  # the answer is not valid JSON when a schema was asked for
    "schema",  # valid JSON that does not satisfy the schema
    "empty",  # the model returned no answer (null, "", whitespace, or only reasoning)
    "truncated",  # the answer was cut at max_tokens (finish_reason "length"); text kept
    "other",
]


class CallError(BaseModel):
    """A typed failure of one request, after retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ErrorKind
    message: str
    status: int | None = None
    attempts: int = 1
    retry_after: float | None = Field(
        None, description="Seconds the server asked to wait before a retry (Retry-After)."
    )


class ChatResult(BaseModel):
    """The outcome of one :class:`ChatRequest`.

    ``text`` is the answer only: reasoning (``<think>`` blocks and their variants, see
    :func:`koalign.extract.split_reasoning`, or a ``reasoning_content`` / ``reasoning`` field of
    the server's message) is moved to ``reasoning``. ``raw`` holds the content exactly as the
    model returned it when it differs from ``text`` (``None`` otherwise; see :attr:`raw_text`);
    the cache and call log keep it too. ``text`` is kept when the answer failed: a ``parse`` or
    ``schema`` error, or ``truncated`` (cut at ``max_tokens``, never a success). ``parsed`` is
    set only when a schema was given and the answer satisfied it. ``finish_reason`` is the
    server's (``stop``, ``length``, ...); ``tokens_in`` / ``tokens_out`` count prompt and
    completion tokens of every call made for this result (retries with a larger budget and
    JSON repairs included); ``latency_s`` is wall seconds spent in the backend.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = None
    parsed: Any | None = None
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cached: bool = False
    error: CallError | None = None
    reasoning: str | None = Field(None, description="Reasoning text set apart from the answer.")
    raw: str | None = Field(
        None, description="The content as returned, when it differs from `text`."
    )

    @property
    def ok(self) -> bool:
        """True when the request succeeded (no ``error``)."""
        return self.error is None

    @property
    def raw_text(self) -> str | None:
        """The content exactly as the model returned it (reasoning blocks included)."""
        return self.raw if self.raw is not None else self.text
