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
import contextvars
import functools
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Literal, TypeVar

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
    first suspension too), and whatever is thrown into it (a task's cancellation, even before
    its first step) reaches ``coro`` where it waits.
    """
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return _returning(stop.value)
    except (Exception, asyncio.CancelledError) as exc:  # for whoever awaits, as a task keeps it
        return _raising(exc)
    return _Rest(coro, yielded)


def started_in(
    task: asyncio.Task[Any], context: contextvars.Context, coro: Coroutine[Any, Any, T]
) -> Coroutine[Any, Any, T] | None:
    """:func:`started`, with ``task`` as the current task and in ``context``: the first steps
    of ``coro`` run now as if ``task`` (which must be waiting, and then awaits the returned
    coroutine) ran them, so what they tie to the current task (a timeout, such as aiohttp's,
    cancels the task it was started in) is tied to ``task``.

    Returns ``None``, having run nothing, where this Python's asyncio cannot switch the current
    task (it can on 3.11 to 3.14); the caller then runs ``coro`` in ``task`` the usual way.
    """
    swap = _task_switch()
    if swap is None:
        return None
    loop = asyncio.get_running_loop()
    running = asyncio.current_task(loop)
    swap(loop, running, task)
    try:
        return context.run(started, coro)
    finally:
        swap(loop, task, running)


@functools.cache
def _task_switch() -> (
    Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any] | None, asyncio.Task[Any] | None], None]
    | None
):
    """A function ``(loop, leaving, entering)`` switching asyncio's current task, or ``None``.
    asyncio keeps the current task per loop and switches it around each task step with
    ``_enter_task`` / ``_leave_task`` (3.7 and later; 3.12 added ``_swap_current_task``)."""
    from asyncio import tasks

    swap = getattr(tasks, "_swap_current_task", None)
    if swap is not None:

        def switch(loop: Any, leaving: Any, entering: Any) -> None:
            swap(loop, entering)

        return switch
    enter = getattr(tasks, "_enter_task", None)
    leave = getattr(tasks, "_leave_task", None)
    if enter is None or leave is None:
        return None

    def enter_leave(loop: Any, leaving: Any, entering: Any) -> None:
        if leaving is not None:
            leave(loop, leaving)
        if entering is not None:
            enter(loop, entering)

    return enter_leave


async def _returning(value: T) -> T:
    return value


async def _raising(exc: BaseException) -> Any:
    raise exc


_HANDED = object()


class _Rest(Coroutine[Any, Any, T]):
    """The rest of a coroutine that has already run to a suspension. Its first step hands the
    driving task the future the coroutine waits on; from then on it is the coroutine."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, T], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def send(self, value: Any) -> Any:
        """The awaited future at the first step, then ``coro.send(value)``."""
        yielded = self._yielded
        if yielded is not _HANDED:
            self._yielded = _HANDED
            return yielded
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Throw into ``coro`` where it waits."""
        self._yielded = _HANDED
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the old three-argument form

    def close(self) -> None:
        """Close ``coro``."""
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, T]:
        return self

    def __iter__(self) -> _Rest[T]:
        return self

    def __next__(self) -> Any:
        return self.send(None)
