"""koalign.eventloop: which loop runs the work, and asyncio.run's contract on both."""

from __future__ import annotations

import asyncio
import builtins
import sys

import pytest

from koalign import eventloop

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (Windows)")


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_when_installed() -> None:
    assert eventloop.run(_loop_module()).startswith("uvloop")
    assert eventloop.run(_loop_module(), loop="uvloop").startswith("uvloop")


def test_asyncio_loop_on_request_and_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert eventloop.run(_loop_module(), loop="asyncio").startswith("asyncio")
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: object, **kwargs: object) -> object:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    monkeypatch.delitem(sys.modules, "uvloop")
    assert eventloop.run(_loop_module()).startswith("asyncio")
    coro = _loop_module()
    with pytest.raises(ImportError):
        eventloop.run(coro, loop="uvloop")
    assert coro.cr_frame is None  # closed, no "never awaited" warning


def test_unknown_loop_name_and_nested_run() -> None:
    coro = _loop_module()
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        eventloop.run(coro, loop="trio")  # type: ignore[arg-type]

    async def nested() -> None:
        inner = _loop_module()
        try:
            eventloop.run(inner)
        finally:
            inner.close()

    with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
        eventloop.run(nested())


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_loop_is_closed_and_async_generators_finalised(loop: eventloop.LoopName) -> None:
    closed: list[str] = []
    seen: list[asyncio.AbstractEventLoop] = []

    async def agen():  # type: ignore[no-untyped-def]
        try:
            yield 1
            yield 2
        finally:
            closed.append("agen")

    async def main() -> int:
        seen.append(asyncio.get_running_loop())
        gen = agen()
        return await gen.__anext__()  # left suspended: run() must finalise it

    assert eventloop.run(main(), loop=loop) == 1
    assert closed == ["agen"]
    assert seen[0].is_closed()


def test_started_runs_a_coroutine_to_its_first_wait_and_finishes_it_when_awaited():
    steps: list[str] = []

    async def at_once() -> int:
        steps.append("at once")
        return 1

    async def waits() -> int:
        steps.append("before")
        await asyncio.sleep(0)
        steps.append("after")
        return 2

    async def fails() -> int:
        raise ValueError("before any wait")

    async def main() -> None:
        first = eventloop.started(at_once())
        second = eventloop.started(waits())
        third = eventloop.started(fails())
        assert steps == ["at once", "before"]  # ran now, up to the first wait
        assert await first == 1
        assert await second == 2
        assert steps == ["at once", "before", "after"]
        with pytest.raises(ValueError, match="before any wait"):
            await third
        # cancelling the task that finishes it cancels the coroutine where it waits
        cancelled: list[bool] = []

        async def sleeper() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        task = asyncio.ensure_future(eventloop.started(sleeper()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled == [True]

    eventloop.run(main())
