"""The stage protocol, the stage registry and what every stage shares.

A stage is one subclass of :class:`Stage`, registered with :func:`register_stage`. It declares

* ``name``: one name everywhere: module, CLI command, config section, ``<name>.jsonl``;
* ``Config``: its config section (a pydantic model; ``RunConfig.<name>``);
* ``roles``: the model roles it calls (:class:`RoleSpec`), and ``templates``: the locale prompt
  templates it renders (both checked before the first model call);
* ``Record`` (one line of ``<name>.jsonl``), ``Output`` (what the next stage consumes: the next
  stage's input type) and ``Report`` (the typed report kept in the manifest);
* ``files``: extra files it writes, relative to the run directory.

and implements

* ``plan(ctx, input) -> items``: the work items one input record gives (deterministic, each
  with a stable ``id`` that digests the whole input); a source stage (no previous stage) gets
  ``None`` and returns its whole plan;
* ``async process(ctx, item) -> Record``: the model calls of one item and every decision that
  needs only that item;
* ``outputs(ctx, record) -> [Output]``;
* ``decide(ctx, records) -> records`` (optional): decisions that need every record of the
  stage, in plan order (seeds: near-duplicates and quotas). A stage with ``decide`` is a
  barrier: its outputs leave only after all its records are decided;
* ``gather_inputs`` (class flag) with ``plan_all(ctx, inputs)``: a stage that needs its whole
  input before planning (export: balancing and splits);
* ``report(ctx, records) -> Report`` and ``write_files(ctx, records, root)``: streamed over the
  stage's final file;
* ``warm_up(ctx)`` (optional): builds, on a background thread while the run's first calls are
  out, what the stage's records need later and its first steps do not.

Records of every other stage flow: a record moves to the next stage as soon as it is finished.
The runner (:mod:`koalign.runner`) knows nothing else about any stage.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import KoalignError, did_you_mean
from koalign.gates import bad_char_string
from koalign.jsonio import repair_surrogates
from koalign.types import ChatRequest, ChatResult, Message

if TYPE_CHECKING:
    from koalign.config import RunConfig
    from koalign.locale import Locale

__all__ = [
    "Call",
    "CallFailure",
    "ParseError",
    "RoleSpec",
    "Stage",
    "StageContext",
    "StageReport",
    "get_stage",
    "register_stage",
    "stage_names",
    "stages",
]


# ----------------------------------------------------------------------------- record parts
class Frozen(BaseModel):
    """Base of every stage record: frozen, no unknown keys, JSON round-trip."""

    model_config = ConfigDict(extra="forbid", frozen=True)


T = TypeVar("T")

_SURROGATE = re.compile("[\ud800-\udfff]")

# Kinds of a bad model output: the call succeeded, the text cannot be used. Kept raw, counted,
# reproduced from the cache on a rerun. Every other error kind is a failed call.
OUTPUT_ERRORS = frozenset(
    {
        "parse",
        "schema",
        "empty",
        "language",
        "truncated",
        "placeholder",
        "replacement_char",
        "repetition",
        "echo",
        "leftover",
        "too_short",
    }
)
# Failed calls that may succeed a little later: retried within the stage.
TRANSIENT_ERRORS = frozenset({"rate_limit", "server", "timeout", "connection"})


class CallFailure(Frozen):
    """Why one model call gave no usable value."""

    kind: str = Field(description="An ErrorKind of the model layer, or an output gate's name.")
    message: str = Field(description="What was wrong, in words.")


class Call(Frozen, Generic[T]):
    """One model call inside a record: the parsed value, or the failure with the raw text.

    ``raw`` holds the model's answer when it differs from ``value`` (always on failure);
    ``reasoning`` the reasoning text set apart from the answer, if any; token counts are those
    of the call (answered from the cache or not).
    """

    model: str = Field(description="Name of the model (a key of `models:`).")
    value: T | None = Field(None, description="The parsed value; absent on failure.")
    raw: str | None = Field(None, description="Raw answer text when it differs from value.")
    reasoning: str | None = Field(None, description="Reasoning text kept apart from the answer.")
    error: CallFailure | None = Field(None, description="Why the call gave no usable value.")
    finish_reason: str | None = Field(None, description="The server's finish_reason.")
    tokens_in: int = Field(0, ge=0, description="Prompt tokens.")
    tokens_out: int = Field(0, ge=0, description="Completion tokens.")

    @property
    def ok(self) -> bool:
        """True when the call gave a usable value."""
        return self.error is None

    @property
    def failed_call(self) -> bool:
        """True when the call itself failed (not a bad output): a rerun retries it."""
        return self.error is not None and self.error.kind not in OUTPUT_ERRORS

    @property
    def transient(self) -> bool:
        """True when the call failed in a way that may succeed a little later."""
        return self.error is not None and self.error.kind in TRANSIENT_ERRORS

    @property
    def text(self) -> str | None:
        """The model's answer as text (``raw`` when kept, else the value when it is text)."""
        if self.raw is not None:
            return self.raw
        return self.value if isinstance(self.value, str) else None

    def failed(self, kind: str, message: str) -> Call[T]:
        """This call marked as a bad output of ``kind`` (the raw text is kept)."""
        return self.model_copy(
            update={
                "value": None,
                "raw": self.text,
                "error": CallFailure(kind=kind, message=message),
            }
        )


class ParseError(ValueError):
    """A model output that cannot be used; ``kind`` names why (an OUTPUT_ERRORS kind)."""

    def __init__(self, message: str, kind: str = "parse") -> None:
        super().__init__(message)
        self.kind = kind


class StageReport(Frozen):
    """What every stage's report carries, in the stage's own record unit.

    ``records_in = records_kept + sum(dropped.values())``; ``records_out`` counts the outputs
    handed to the next stage (more than ``records_kept`` when one record fans out).
    """

    records_in: int = Field(0, ge=0, description="Records the stage planned.")
    records_kept: int = Field(0, ge=0, description="Records that gave at least one output.")
    records_out: int = Field(0, ge=0, description="Outputs handed to the next stage.")
    dropped: dict[str, int] = Field(default_factory=dict, description="Dropped records by reason.")
    model_outputs: int = Field(0, ge=0, description="Model calls inside the records.")
    bad_outputs: dict[str, int] = Field(
        default_factory=dict, description="Model outputs that could not be used, by kind."
    )


# ----------------------------------------------------------------------------- roles
@dataclass(frozen=True)
class RoleSpec:
    """A model role of a stage, as written under ``roles:`` in the run config.

    ``many``: the role takes a list of models. ``default``: another role whose models it uses
    when not set (``None``: required). ``description``: for the config docs.
    """

    name: str
    description: str
    many: bool = False
    default: str | None = None


# ----------------------------------------------------------------------------- calling models
class Caller:
    """Sends requests to the models of the pool (cached, logged, retried by the model layer).

    Inside a chunk (see :class:`ChunkBatcher`), calls to batch-sensitive local models are
    collected and sent as fixed batches, so their text does not depend on timing.
    """

    def __init__(self, pool: Any, batcher: ChunkBatcher | None = None) -> None:
        self.pool = pool
        self.batcher = batcher

    async def chat(self, model: str, request: ChatRequest) -> ChatResult:
        """One request to the model named ``model``; never raises for a failed call."""
        if self.batcher is not None and model in self.batcher.models:
            return await self.batcher.chat(model, request)
        return (await self.pool.get(model).agenerate([request]))[0]

    async def gather(self, *aws: Awaitable[T]) -> list[T]:
        """``asyncio.gather`` that a chunk's batcher can account for."""
        if self.batcher is not None:
            return await self.batcher.gather(*aws)
        return list(await asyncio.gather(*aws))

    def child(self, key: Any) -> Caller:
        """A caller for one item of a chunk (its requests sort by ``key`` inside a batch)."""
        if self.batcher is None:
            return self
        return _ItemCaller(self.pool, self.batcher, key)


class _ItemCaller(Caller):
    def __init__(self, pool: Any, batcher: ChunkBatcher, key: Any) -> None:
        super().__init__(pool, batcher)
        self.key = key

    async def chat(self, model: str, request: ChatRequest) -> ChatResult:
        assert self.batcher is not None
        if model in self.batcher.models:
            return await self.batcher.chat(model, request, key=self.key)
        return (await self.pool.get(model).agenerate([request]))[0]


class ChunkBatcher:
    """Fixed batches for the items of one chunk (a fixed run of plan order).

    Every task of the chunk is counted while it can run. A call to one of ``models`` parks the
    task; when no task of the chunk can run any more (all are parked or finished), the parked
    requests are sent, per model, as one fixed batch sorted by (item key, request). The
    composition of each batch is then a function of the chunk's items and their earlier
    answers alone, never of timing, so a resumed run regenerates exactly the same batches.
    """

    def __init__(self, pool: Any, models: set[str]) -> None:
        self.pool = pool
        self.models = models
        self.running = 0
        self._pending: dict[
            str, list[tuple[Any, str, ChatRequest, asyncio.Future[ChatResult]]]
        ] = {}
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def enter(self) -> None:
        """A task of the chunk starts running."""
        self.running += 1

    def leave(self) -> None:
        """A task of the chunk finished."""
        self.running -= 1
        self._check()

    async def chat(self, model: str, request: ChatRequest, key: Any = ()) -> ChatResult:
        fut: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        order = _request_order(request)
        self._pending.setdefault(model, []).append((key, order, request, fut))
        self.running -= 1
        self._check()
        return await fut

    async def gather(self, *aws: Awaitable[T]) -> list[T]:
        n = len(aws)
        if n == 0:
            return []
        self.running += n - 1  # the caller waits; n children run
        remaining = n

        async def child(aw: Awaitable[T]) -> T:
            nonlocal remaining
            try:
                return await aw
            finally:
                remaining -= 1
                if remaining:  # the last child hands its turn back to the waiting caller
                    self.running -= 1
                    self._check()

        return list(await asyncio.gather(*(child(a) for a in aws)))

    def _check(self) -> None:
        if self.running == 0 and not self._flushing and any(self._pending.values()):
            self._flushing = True
            task = asyncio.ensure_future(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        batches, self._pending = self._pending, {}
        done: list[tuple[asyncio.Future[ChatResult], ChatResult | BaseException]] = []
        try:
            for model in sorted(batches):
                entries = sorted(batches[model], key=lambda e: (e[0], e[1]))
                try:
                    llm = self.pool.get(model)
                    results = await llm.agenerate(
                        [e[2] for e in entries], **_fixed_batch_kwargs(llm)
                    )
                    done += [(e[3], r) for e, r in zip(entries, results, strict=True)]
                except BaseException as exc:  # handed to every parked task
                    done += [(e[3], exc) for e in entries]
        finally:
            self._flushing = False
            for fut, res in done:
                if fut.cancelled():
                    continue
                self.running += 1
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)


def _request_order(request: ChatRequest) -> str:
    from koalign.jsonio import digest

    return digest(
        [[m.role, m.content] for m in request.messages] + [request.tag or "", request.sample_index]
    )


def _fixed_batch_kwargs(llm: Any) -> dict[str, Any]:
    """``{"fixed_batch": True}`` when the model layer supports fixed batches."""
    import inspect

    inner = getattr(llm, "wrapped", llm)
    try:
        params = inspect.signature(inner.agenerate).parameters
    except (TypeError, ValueError):
        return {}
    return {"fixed_batch": True} if "fixed_batch" in params else {}


# ----------------------------------------------------------------------------- context
@dataclass
class StageContext:
    """What a stage sees: the config, the locale, the models of each role, a caller.

    ``reports`` holds the typed reports of stages that finished earlier in this run directory
    (the dataset card reads them).
    """

    config: RunConfig
    locale: Locale
    roles: dict[str, list[str]]
    caller: Caller | None = None
    limit: int | None = None
    reports: dict[str, BaseModel] = field(default_factory=dict)

    def section(self, stage: str) -> Any:
        """The config section of ``stage``."""
        return getattr(self.config, stage)

    def with_caller(self, caller: Caller) -> StageContext:
        """The same context with another caller (one per chunk item)."""
        return StageContext(self.config, self.locale, self.roles, caller, self.limit, self.reports)

    def policy(self, category: str) -> dict[str, Any]:
        """The category's safe-response policy as the config's ``policy:`` section shows it."""
        from koalign.policy import resolved_policy

        view = self.config.policy
        return resolved_policy(self.locale, category, view=view.view, few_shot=view.few_shot)

    def render(self, role: str, **values: Any) -> tuple[Message, ...]:
        """Render the locale's prompt template of ``role`` (compiled templates are cached)."""
        from koalign.prompts import render_chat

        return render_chat(self.locale, role, **values)


def request(
    messages: tuple[Message, ...],
    *,
    tag: str,
    schema: dict[str, Any] | None = None,
    sample_index: int = 0,
) -> ChatRequest:
    """A request with the model's own sampling defaults (requests of a stage share them, so an
    in-process backend can batch them).

    Built without re-validation (the messages are validated already, the schema is one of the
    stage's constants): the request keeps the schema object itself, so the model layer's
    compiled-schema cache finds it by identity instead of serialising it per call.
    """
    return ChatRequest.model_construct(
        messages=messages, json_schema=schema, tag=tag, sample_index=sample_index
    )


async def call(
    ctx: StageContext, model: str, req: ChatRequest, parse: Callable[[Any], T]
) -> Call[T]:
    """One model call as a :class:`Call`: the parsed value, or the failure with the raw text.

    ``parse`` gets the model layer's parsed JSON when the request had a schema, else the answer
    text; it raises :class:`ParseError` for an unusable output. A JSON answer with a string
    holding a lone surrogate or U+FFFD is a ``replacement_char`` output (see
    :func:`_bad_char_json`), for every role that answers JSON.
    """
    assert ctx.caller is not None, "a stage called a model outside a run"
    policy = ctx.config.runtime.on_truncation.get(_tag_role(req.tag))
    if policy is not None and policy != req.on_truncation:
        req = req.model_copy(update={"on_truncation": policy})
    result = await ctx.caller.chat(model, req)
    common: dict[str, Any] = {
        "model": model,
        "finish_reason": result.finish_reason,
        "tokens_in": result.tokens_in,
        "tokens_out": result.tokens_out,
        "reasoning": getattr(result, "reasoning", None),
    }
    if result.text is not None and _SURROGATE.search(result.text):
        return _AnyCall(
            raw=repair_surrogates(result.text),
            error=CallFailure(
                kind="replacement_char",
                message="the answer holds a lone surrogate (text decoded wrongly); kept with "
                "U+FFFD in its place",
            ),
            **common,
        )
    if result.error is not None:
        return _AnyCall(
            raw=result.text,
            error=CallFailure(kind=result.error.kind, message=result.error.message),
            **common,
        )
    source = (
        result.parsed if req.json_schema is not None and result.parsed is not None else result.text
    )
    if (
        not isinstance(source, str)
        and (bad := _bad_char_json(result.text, source, **common)) is not None
    ):
        return bad
    try:
        value = parse(source)
    except ParseError as exc:
        return _AnyCall(
            raw=result.text, error=CallFailure(kind=exc.kind, message=str(exc)), **common
        )
    if (  # JSON the stage's parser read from the text
        isinstance(source, str)
        and not isinstance(value, str)
        and (bad := _bad_char_json(result.text, value, **common)) is not None
    ):
        return bad
    raw = None if value == result.text else result.text
    return _AnyCall(value=value, raw=raw, **common)


def _bad_char_json(text: str | None, value: Any, **common: Any) -> Call[Any] | None:
    """A ``replacement_char`` bad output when a string of a JSON answer (``value``: the parsed
    JSON, or what the stage's parser made of it) holds a lone surrogate or U+FFFD.

    A JSON escape such as ``"\\ud83d"`` decodes to a lone surrogate that the answer's text does
    not show (the text is plain ASCII there), and a repair by the model layer turns it into U+FFFD:
    either way the string was cut or decoded wrongly and is not a verdict. Plain-text answers are
    left to the output gates (:func:`koalign.gates.gate_text`), which name the same kind.
    """
    found = bad_char_string(value)
    if found is None:
        return None
    return _AnyCall(
        raw=text,
        error=CallFailure(
            kind="replacement_char",
            message="a string of the JSON answer holds a lone surrogate or U+FFFD "
            f"({found[:60]!r}): the text was cut or decoded wrongly",
        ),
        **common,
    )


#: ``Call[Any]``, parametrised once (pydantic's lookup of a parametrised class costs more than
#: building the call record).
_AnyCall = Call[Any]

_TAG_ROLES = {"target": "targets", "responder": "responders", "filter_judge": "filter_judges"}


def _tag_role(tag: str | None) -> str:
    """The config role of a request tag ``stage/role``."""
    role = (tag or "").rsplit("/", 1)[-1]
    return _TAG_ROLES.get(role, role)


def rotate(items: Sequence[T], offset: int) -> T:
    """``items[offset % len(items)]``."""
    return items[offset % len(items)]


# ----------------------------------------------------------------------------- the protocol
In = TypeVar("In", bound=BaseModel)
Item = TypeVar("Item")
Rec = TypeVar("Rec", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class Stage(Generic[In, Item, Rec, Out]):
    """Base class of a pipeline stage (see the module docstring)."""

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    Record: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    Report: ClassVar[type[BaseModel]]
    roles: ClassVar[tuple[RoleSpec, ...]] = ()
    templates: ClassVar[tuple[str, ...]] = ()
    files: ClassVar[tuple[str, ...]] = ()
    gather_inputs: ClassVar[bool] = False
    uses_policy: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    # -- planning -----------------------------------------------------------------------------
    def plan(self, ctx: StageContext, inp: In | None) -> list[Item]:
        """Work items of one input (``None`` for a source stage: its whole plan)."""
        raise NotImplementedError

    def plan_all(self, ctx: StageContext, inputs: Callable[[], Iterator[In]]) -> Iterator[Item]:
        """Work items from the whole input (``gather_inputs`` stages); ``inputs()`` streams it
        again on every call."""
        raise NotImplementedError

    @staticmethod
    def item_id(item: Any) -> str:
        """The stable id of a work item."""
        return str(item.id if hasattr(item, "id") else item["id"])

    # -- processing ---------------------------------------------------------------------------
    async def process(self, ctx: StageContext, item: Item) -> Rec:
        """The model calls of one item, and every decision that needs only this item."""
        raise NotImplementedError

    def calls(self, record: Rec) -> list[Call[Any]]:
        """Every model call of a record (for error accounting and retries)."""
        return []

    def outputs(self, ctx: StageContext, record: Rec) -> list[Out]:
        """What the next stage consumes from one record."""
        return []

    def drop_reason(self, record: Rec) -> str | None:
        """Why a record gave no output (``None`` when it gave some)."""
        return None

    # -- whole-stage work ---------------------------------------------------------------------
    has_decide: ClassVar[bool] = False

    def decide(self, ctx: StageContext, records: Iterator[Rec]) -> Iterator[Rec]:
        """Decisions that need every record, in plan order (barrier stages only)."""
        return records

    def report(self, ctx: StageContext, records: Callable[[], Iterator[Rec]]) -> BaseModel:
        """The stage's typed report, streamed over its final records."""
        return self.Report()

    def write_files(
        self, ctx: StageContext, records: Callable[[], Iterator[Rec]], root: Path
    ) -> None:
        """Write the stage's extra files (declared in ``files``)."""

    def validate(self, config: RunConfig, locale: Locale) -> list[str]:
        """Problems of this stage's config section against the locale (e.g. unknown ids)."""
        return []

    def warm_up(self, ctx: StageContext) -> None:
        """Build what this stage's records need later and its first steps do not (an index, an
        import), so that no record waits for it on the event loop. Runs on a background thread
        while the run's first calls are out; an exception is logged at debug level and left to
        the stage's own work to meet and report."""

    def uses_models(self, ctx: StageContext) -> list[str]:
        """Names of the models this stage calls."""
        return sorted({m for r in self.roles for m in ctx.roles.get(r.name, [])})


# ----------------------------------------------------------------------------- registry
_REGISTRY: list[Stage[Any, Any, Any, Any]] = []
_BUILTIN_LOADED = False


def register_stage(stage: Stage[Any, Any, Any, Any], *, after: str | None = None) -> None:
    """Add a stage to the pipeline: at the end, or right after the stage named ``after``.

    Raises :class:`KoalignError` when the name is taken or ``after`` is unknown.
    """
    _load_builtin()
    _insert(stage, after)


def unregister_stage(name: str) -> None:
    """Remove a registered stage (tests and plugins)."""
    _load_builtin()
    _REGISTRY[:] = [s for s in _REGISTRY if s.name != name]


def _insert(stage: Stage[Any, Any, Any, Any], after: str | None) -> None:
    names = [s.name for s in _REGISTRY]
    if stage.name in names:
        raise KoalignError(f"a stage named '{stage.name}' is already registered")
    if after is None:
        _REGISTRY.append(stage)
        return
    if after not in names:
        raise KoalignError(
            f"unknown stage '{after}'{did_you_mean(after, names)}",
            hint=f"stages: {', '.join(names)}",
        )
    _REGISTRY.insert(names.index(after) + 1, stage)


def _load_builtin() -> None:
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    _BUILTIN_LOADED = True
    from koalign.stages import attack, export, judge, respond, seeds

    for module in (seeds, attack, respond, judge, export):
        _insert(module.STAGE, None)


def stages() -> tuple[Stage[Any, Any, Any, Any], ...]:
    """The registered stages, in pipeline order."""
    _load_builtin()
    return tuple(_REGISTRY)


def stage_names() -> tuple[str, ...]:
    """Names of the registered stages, in pipeline order."""
    return tuple(s.name for s in stages())


def get_stage(name: str) -> Stage[Any, Any, Any, Any]:
    """The registered stage called ``name``; a did-you-mean error otherwise."""
    for s in stages():
        if s.name == name:
            return s
    names = stage_names()
    raise KoalignError(
        f"unknown stage '{name}'{did_you_mean(name, names)}", hint=f"stages: {', '.join(names)}"
    )


def all_roles() -> dict[str, RoleSpec]:
    """Every role of every registered stage, by name."""
    out: dict[str, RoleSpec] = {}
    for s in stages():
        for r in s.roles:
            out.setdefault(r.name, r)
    return out


def all_templates() -> tuple[str, ...]:
    """Every prompt template the registered stages render."""
    seen: dict[str, None] = {}
    for s in stages():
        for t in s.templates:
            seen.setdefault(t)
    return tuple(seen)


# re-exported for typing convenience
Records = Iterable[Any]
Kind = Literal["harmful", "benign"]
