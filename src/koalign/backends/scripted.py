"""A scripted backend for tests and documentation examples.

It answers from a list (cycled) or from a Python function, and is never used as a fallback for a
user's run: it must be named explicitly (``backend: scripted``).

Two ways to script it:

* in config: ``options: {responses: ["...", "..."]}`` answers in order, cycling; with
  ``options.pick: hash`` the answer is chosen by a hash of the request instead, so it does not
  depend on the order calls arrive in (resumed runs give the same answers);
* in Python: ``ScriptedBackend.from_function(fn)`` where ``fn(request) -> str``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

from koalign.backends.base import Backend, ModelSpec
from koalign.errors import BackendError
from koalign.types import ChatRequest, ChatResult

Responder = Callable[[ChatRequest], str]


class ScriptedBackend(Backend):
    """Answers from ``options.responses`` (cycled) or from a function; ``calls`` counts the
    requests it answered. Token counts are characters (prompt characters in, answer out)."""

    name = "scripted"

    def __init__(
        self, spec: ModelSpec, *, env: dict[str, str] | None = None, fn: Responder | None = None
    ) -> None:
        super().__init__(spec, env=env)
        responses = spec.options.get("responses")
        if fn is None and not responses:
            raise BackendError(
                "the scripted backend needs answers",
                where=f"model '{spec.model}'",
                hint="set options.responses to a list of strings, or use ScriptedBackend.from_function",
            )
        self._fn = fn
        self._responses: list[str] = list(responses or [])
        self._next = 0
        self._by_hash = spec.options.get("pick", "cycle") == "hash"
        if spec.options.get("pick", "cycle") not in ("cycle", "hash"):
            raise BackendError(
                f"unknown options.pick {spec.options.get('pick')!r}",
                where=f"model '{spec.model}'",
                hint="use cycle (in order) or hash (a function of the request)",
            )
        self.calls = 0

    @classmethod
    def from_function(cls, fn: Responder, model: str = "scripted") -> ScriptedBackend:
        """A backend whose answer to a request is ``fn(request)`` (a str, or a JSON-ready value
        that is serialised)."""
        return cls(ModelSpec(backend="scripted", model=model), fn=fn)

    async def agenerate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One scripted answer per request, ``finish_reason`` ``stop``."""
        results = []
        for request in requests:
            self.calls += 1
            if self._fn is not None:
                text = self._fn(request)
            elif self._by_hash:
                key = json.dumps(
                    [[m.role, m.content] for m in request.messages] + [request.sample_index],
                    ensure_ascii=False,
                ).encode("utf-8")
                index = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
                text = self._responses[index % len(self._responses)]
            else:
                text = self._responses[self._next % len(self._responses)]
                self._next += 1
            if not isinstance(text, str):  # a function may return a dict for convenience
                text = json.dumps(text, ensure_ascii=False)
            tokens_in = sum(len(m.content) for m in request.messages)
            results.append(
                ChatResult(
                    text=text, finish_reason="stop", tokens_in=tokens_in, tokens_out=len(text)
                )
            )
        return results
