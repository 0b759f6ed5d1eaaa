"""Client-side rate limits (requests and tokens per minute) and retry backoff."""

from __future__ import annotations

import asyncio
import random
import threading
import time

RETRYABLE_KINDS = frozenset({"rate_limit", "server", "timeout", "connection"})


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
        wait = self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    def refund(self, n: float) -> None:
        with self._lock:
            self._refill(time.monotonic())
            self._level = min(self.capacity, self._level + n)


def backoff_delay(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    A server's Retry-After wins (capped at ``cap``); otherwise exponential backoff
    ``base * 2**(attempt-1)`` with +-50 % jitter, capped at ``cap``.
    """
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    raw = min(cap, base * 2 ** (attempt - 1))
    return raw * random.uniform(0.5, 1.5)


def estimate_tokens(text_chars: int, max_tokens: int | None) -> int:
    """A rough upper estimate of the tokens a request consumes (for the TPM limiter):
    one token per two characters of prompt (Korean tokenises densely) plus the answer budget."""
    return text_chars // 2 + 1 + (max_tokens or 512)
