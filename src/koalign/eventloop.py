"""The event loop koalign's work runs on.

:func:`run` is ``asyncio.run`` on uvloop's loop (libuv, the loop of uvicorn and vLLM's
server) where uvloop is installed - a dependency of koalign on Linux and macOS - and on
asyncio's own loop otherwise (Windows, or ``loop="asyncio"``). In interleaved runs of
``bench/bench_flow.py`` (docs/benchmarks.md) a pipeline run on uvloop took 7-11% less CPU per
request than on asyncio's selector loop with answers 0.2 s apart, and no measurable difference
with answers 1 s apart. Both loops give the same results: nothing koalign writes depends on the
order in which the loop serves ready callbacks.

:func:`started` runs a coroutine up to its first wait at once, as Python 3.12's eager tasks do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

LoopName = Literal["auto", "uvloop", "asyncio"]
LOOPS: tuple[str, ...] = ("auto", "uvloop", "asyncio")


def loop_factory(loop: LoopName = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop named: ``auto`` is uvloop's when it can be imported, else
    ``None`` (asyncio's default loop); ``asyncio`` is ``None``; ``uvloop`` is uvloop's.

    Raises:
        ImportError: ``loop="uvloop"`` and uvloop is not installed.
        ValueError: a name other than those in :data:`LOOPS`.
    """
    if loop not in LOOPS:
        raise ValueError(f"unknown event loop {loop!r}: use one of {', '.join(LOOPS)}")
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(coro: Coroutine[Any, Any, T], *, loop: LoopName = "auto") -> T:
    """Run ``coro`` to completion on a new event loop (see :func:`loop_factory`) and close the
    loop, as ``asyncio.run`` does: async generators are shut down, the default executor is
    joined, and a ``KeyboardInterrupt`` cancels the main task before it propagates.

    Raises:
        RuntimeError: called while an event loop is running in this thread.
        ImportError, ValueError: see :func:`loop_factory` (``coro`` is closed first).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError("eventloop.run() cannot be called from a running event loop")
    try:
        factory = loop_factory(loop)
    except (ImportError, ValueError):
        coro.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def started(coro: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    """Run ``coro`` now, up to its first suspension, and return a coroutine that finishes it.

    This is what ``asyncio.Task(..., eager_start=True)`` does on Python 3.12 and later: work a
    coroutine can do without waiting (such as writing a request to a socket with room in its
    buffer) happens at once, instead of after every callback already waiting on the loop. The
    returned coroutine gives ``coro``'s result or raises its exception (one raised before the
    first suspension too, when it is awaited), and passes cancellation on to ``coro``.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return _returning(stop.value)
    except (Exception, asyncio.CancelledError) as exc:  # for whoever awaits, as a task keeps it
        return _raising(exc)
    return _finishing(_Rest(coro, yielded))


async def _returning(value: T) -> T:
    return value


async def _raising(exc: BaseException) -> Any:
    raise exc


async def _finishing(rest: _Rest[T]) -> T:
    return await rest


class _Rest(Generic[T]):
    """The rest of a coroutine that has already run to a suspension: awaiting it first hands
    the future it is suspended on to the task that awaits, then goes on as ``await coro``."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value
