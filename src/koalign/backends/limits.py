"""Client-side rate limits (requests and tokens per minute), retry backoff and token estimates."""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from koalign import eventloop

T = TypeVar("T")

RETRYABLE_KINDS = frozenset({"rate_limit", "server", "timeout", "connection"})

RETRY_AFTER_MAX_S = 300.0
"""The longest wait a server's Retry-After can impose between two attempts, in seconds. A
Retry-After above ``retry_backoff_max`` is honoured (and logged) up to this cap."""

CONNECT_RETRIES = 2
"""Retries for a connection that cannot be opened (refused, unknown host): a server that is not
there fails within about a second instead of after the whole backoff schedule."""

CONNECT_BACKOFF_S = 0.25
"""Base seconds between connection retries (doubling, no jitter): 0.25 s then 0.5 s."""


class RateLimiter:
    """A token bucket refilled at ``per_minute / 60`` units per second.

    ``acquire(n)`` reserves ``n`` units at once and sleeps until the reservation is covered, so
    waiting callers are served in arrival order without a lock held across ``await``. The bucket
    holds at most ``burst_s`` seconds of refill. A request larger than the bucket waits until the
    bucket is full and then takes it into debt, so it never waits forever. ``refund(n)``
    corrects an estimate afterwards (a negative ``n`` charges more).
    """

    def __init__(self, per_minute: float, *, burst_s: float = 1.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self._level = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    def reserve(self, n: float) -> float:
        """Take ``n`` units now and return how many seconds the caller must wait."""
        with self._lock:
            now = time.monotonic()
            self._refill(now)
            take = min(n, self.capacity)
            wait = max(0.0, (take - self._level) / self.rate)
            self._level -= n
            return wait

    async def acquire(self, n: float = 1.0) -> float:
        """Reserve ``n`` units and sleep until they are covered; returns the seconds waited."""
        wait = self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    def refund(self, n: float) -> None:
        """Give back ``n`` units (a negative ``n`` charges more)."""
        with self._lock:
            self._refill(time.monotonic())
            self._level = min(self.capacity, self._level + n)


call_priority: contextvars.ContextVar[int] = contextvars.ContextVar("call_priority", default=0)
"""The priority of the model calls made in the current context (lower goes first), read by
:class:`PrioritySemaphore`. The pipeline runner sets it to each stage's position in the stage
order, so that when a model's slots are all taken, a call from an earlier stage (whose record
still has the longest chain of calls ahead of it) gets the next free slot before a call from a
later stage. Calls of equal priority are served in arrival order."""


class PrioritySemaphore:
    """An asyncio semaphore of ``value`` slots whose waiters are served by priority, then in
    arrival order.

    ``acquire(priority)`` takes a free slot at once, or waits; ``release()`` hands the slot
    directly to the waiter of lowest ``(priority, arrival)``, so a newcomer never takes a slot
    a waiter was promised and at most ``value`` holders exist at any time. A waiter cancelled
    while it waits leaves the queue; one cancelled after it was handed a slot gives the slot
    on. Use one per event loop (its waiters are futures of the loop that awaits them).

    :meth:`run` holds a slot for one piece of work; when that work waited for its slot, the
    caller that frees the slot also starts it, up to its first wait (a request is on the wire
    before the releasing step ends), instead of leaving the slot idle until the loop next gets
    to the waiting task, which after a wave of answers is the time the rest of the wave takes.
    """

    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"a semaphore needs at least one slot, not {value}")
        self._free = value
        self._waiters: list[tuple[int, int, asyncio.Future[Any]]] = []
        self._starters: dict[asyncio.Future[Any], Callable[[], None]] = {}
        self._arrivals = itertools.count()
        self._starting = False

    @property
    def free(self) -> int:
        """Slots neither held nor promised to a waiter."""
        return self._free

    def waiting(self) -> int:
        """Callers waiting for a slot (cancelled ones not counted)."""
        return sum(1 for *_, fut in self._waiters if not fut.done())

    async def acquire(self, priority: int | None = None) -> None:
        """Take a slot, waiting while none is free. ``priority`` defaults to
        :data:`call_priority` of the caller's context."""
        if self._free > 0:
            self._free -= 1
            return
        fut = self._wait(priority)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot, then cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter by priority and arrival (starting its work
        when it waits in :meth:`run`), else to the pool."""
        while self._waiters:
            *_, fut = heapq.heappop(self._waiters)
            if fut.done():
                continue
            start = self._starters.pop(fut, None)
            if start is None:
                fut.set_result(None)
            elif self._starting:  # work that gave its slot back before its first wait
                fut.get_loop().call_soon(start)
            else:
                self._starting = True
                try:
                    start()
                finally:
                    self._starting = False
            return
        self._free += 1

    async def run(
        self, work: Callable[[], Coroutine[Any, Any, T]], priority: int | None = None
    ) -> T:
        """``await work()`` holding a slot (taken as :meth:`acquire` takes it, given back when
        the work ends however it ends). A caller that waits for its slot has ``work()`` started
        by the caller that frees the slot, as a step of the waiting task and in its context
        (:func:`koalign.eventloop.started_in`)."""
        if self._free > 0:
            self._free -= 1
            return await self._holding(work)
        task = asyncio.current_task()
        context = contextvars.copy_context()
        fut = self._wait(priority)

        def start() -> None:
            if fut.done():  # cancelled before a deferred start: the slot goes on
                self.release()
                return
            coro = self._holding(work)
            rest = None if task is None else eventloop.started_in(task, context, coro)
            fut.set_result(coro if rest is None else rest)

        self._starters[fut] = start
        try:
            rest = await fut
        except asyncio.CancelledError:
            self._starters.pop(fut, None)
            if fut.done() and not fut.cancelled():  # started, then cancelled: cancel the work
                asyncio.ensure_future(fut.result()).cancel()
            raise
        return await rest

    def _wait(self, priority: int | None) -> asyncio.Future[Any]:
        prio = call_priority.get() if priority is None else priority
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (prio, next(self._arrivals), fut))
        return fut

    async def _holding(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            return await work()
        finally:
            self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def backoff_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    A server's Retry-After wins: it is honoured even above ``cap``, up to
    :data:`RETRY_AFTER_MAX_S` (the caller logs when it exceeds ``cap``). Otherwise exponential
    backoff ``base * 2**(attempt-1)`` with +-50 % jitter, at most ``cap``.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, RETRY_AFTER_MAX_S)
    raw = min(cap, base * 2 ** (attempt - 1))
    return raw * random.uniform(0.5, 1.5)


def estimate_tokens(text_chars: int, max_tokens: int | None) -> int:
    """A rough upper estimate of the tokens a request consumes (for the TPM limiter):
    one token per two characters of prompt (Korean tokenises densely) plus the answer budget."""
    return text_chars // 2 + 1 + (max_tokens or 512)


MESSAGE_OVERHEAD_TOKENS = 8


def estimate_text_tokens(text: str) -> int:
    """An upper bound of the tokens ``text`` costs when the model's tokenizer is not at hand:
    its UTF-8 byte count (a Hangul syllable is 3 bytes, an ASCII character 1).

    Byte-level BPE tokenizers (GPT-2 style: Llama 3, Qwen, SmolLM2 ...) and SentencePiece
    tokenizers with byte fallback (Llama 2, Gemma ...) never spend more than one token per byte,
    so the estimate never says a prompt fits when it does not. It over-counts multilingual
    tokenizers several times over; an English-centric one comes close to it (SmolLM2 spends 0.86
    of it on average, at most 0.96, on the 6,882 SQuARe validation questions; see
    docs/backends.md).
    """
    return len(text.encode("utf-8", "surrogatepass"))


def estimate_prompt_tokens(contents: Sequence[str]) -> int:
    """:func:`estimate_text_tokens` over a chat's message contents, plus
    :data:`MESSAGE_OVERHEAD_TOKENS` per message and once more for the answer's header (the chat
    template's role markers)."""
    total = sum(estimate_text_tokens(c) for c in contents)
    return total + MESSAGE_OVERHEAD_TOKENS * (len(contents) + 1)
