"""Core data types shared by every stage: chat messages, model requests and results.

All types are frozen pydantic models that round-trip through JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class ChatRequest(BaseModel):
    """One request to a chat model.

    ``sample_index`` distinguishes repeated samples of the same prompt (it is part of the cache
    key, so sample 0 and sample 1 are cached separately). ``tag`` names the caller (e.g. a stage)
    for the call log and is not part of the cache key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[Message, ...]
    sampling: SamplingParams | None = None
    json_schema: dict[str, Any] | None = Field(
        None, description="JSON schema the answer must satisfy; the result's `parsed` holds it."
    )
    sample_index: int = Field(0, ge=0)
    tag: str | None = None


ErrorKind = Literal[
    "rate_limit",  # 429 after all retries
    "server",  # 5xx after all retries
    "timeout",
    "connection",
    "bad_request",  # other 4xx, not retried
    "auth",
    "parse",  # the answer is not valid JSON when a schema was asked for
    "schema",  # valid JSON that does not satisfy the schema
    "empty",  # the model returned no text
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
    """The outcome of one :class:`ChatRequest`. ``text`` is the raw answer, kept even when
    parsing against the schema failed; ``parsed`` is set only when a schema was given and the
    answer satisfied it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = None
    parsed: Any | None = None
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cached: bool = False
    error: CallError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
