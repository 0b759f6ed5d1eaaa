"""The event loop koalign's work runs on.

:func:`run` is ``asyncio.run`` on uvloop's loop (libuv, the loop of uvicorn and vLLM's
server) where uvloop is installed - a dependency of koalign on Linux and macOS - and on
asyncio's own loop otherwise (Windows, or ``loop="asyncio"``). In interleaved runs of
``bench/bench_flow.py`` (docs/benchmarks.md) a pipeline run on uvloop took 7-11% less CPU per
request than on asyncio's selector loop with answers 0.2 s apart, and no measurable difference
with answers 1 s apart. Both loops give the same results: nothing koalign writes depends on the
order in which the loop serves ready callbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
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
