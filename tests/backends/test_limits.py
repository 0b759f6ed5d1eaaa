"""The per-model slot semaphore: priority order, arrival order, cancellation, exact cap."""

from __future__ import annotations

import asyncio
import random

import pytest

from koalign import eventloop
from koalign.backends.limits import PrioritySemaphore, call_priority


async def _holders(sem: PrioritySemaphore, n: int) -> None:
    for _ in range(n):
        await sem.acquire()


async def _waiters(
    *specs: tuple[str, int],
) -> tuple[PrioritySemaphore, list[str], list[asyncio.Task[None]]]:
    """A one-slot semaphore held, and one task per ``(name, priority)`` waiting for it, arriving
    in that order; each notes its name once served and gives the slot back."""
    sem = PrioritySemaphore(1)
    await sem.acquire()
    served: list[str] = []

    async def wait(name: str, prio: int) -> None:
        await sem.acquire(prio)
        served.append(name)
        sem.release()

    tasks = []
    for name, prio in specs:
        tasks.append(asyncio.create_task(wait(name, prio)))
        await asyncio.sleep(0)  # arrive in this order
    return sem, served, tasks


def test_waiters_are_served_by_priority_then_arrival() -> None:
    async def main() -> list[str]:
        specs = [("late-1", 3), ("early-1", 1), ("late-2", 3), ("early-2", 1), ("mid", 2)]
        sem, served, tasks = await _waiters(*specs)
        sem.release()
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(main()) == ["early-1", "early-2", "mid", "late-1", "late-2"]


def test_plain_fifo_without_priorities() -> None:
    async def main() -> list[int]:
        sem = PrioritySemaphore(2)
        await _holders(sem, 2)
        served: list[int] = []

        async def wait(i: int) -> None:
            async with sem:
                served.append(i)

        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(wait(i)))
            await asyncio.sleep(0)
        sem.release()
        sem.release()
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(main()) == [0, 1, 2, 3, 4, 5]


def test_priority_comes_from_the_callers_context() -> None:
    async def main() -> list[str]:
        sem = PrioritySemaphore(1)
        await sem.acquire()
        served: list[str] = []

        async def stage(name: str, prio: int) -> None:
            call_priority.set(prio)  # as the runner does at the start of each stage's task
            async with sem:
                served.append(name)

        later = asyncio.create_task(stage("judge", 3))
        await asyncio.sleep(0)
        earlier = asyncio.create_task(stage("attack", 1))
        await asyncio.sleep(0)
        sem.release()
        await asyncio.gather(later, earlier)
        return served

    assert asyncio.run(main()) == ["attack", "judge"]
    assert call_priority.get() == 0  # a task's setting stays in its own context


def test_a_newcomer_never_takes_a_slot_promised_to_a_waiter() -> None:
    async def main() -> tuple[int, list[str]]:
        sem = PrioritySemaphore(1)
        await sem.acquire()
        served: list[str] = []

        async def wait(name: str) -> None:
            await sem.acquire(5)
            served.append(name)

        waiter = asyncio.create_task(wait("waiter"))
        await asyncio.sleep(0)
        sem.release()  # handed to the waiter, which has not run yet
        newcomer = asyncio.create_task(wait("newcomer"))
        await asyncio.sleep(0)
        await waiter
        assert not newcomer.done()  # the only slot is the waiter's
        free = sem.free
        sem.release()
        await newcomer
        return free, served

    free, served = asyncio.run(main())
    assert free == 0
    assert served == ["waiter", "newcomer"]


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> tuple[list[str], int]:
        sem, served, (first, second) = await _waiters(("first", 0), ("second", 1))
        assert sem.waiting() == 2
        first.cancel()
        await asyncio.sleep(0)
        assert sem.waiting() == 1
        sem.release()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first
        return served, sem.free

    served, free = asyncio.run(main())
    assert served == ["second"]
    assert free == 1


def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on() -> None:
    async def main() -> tuple[list[str], int]:
        sem, served, (first, second) = await _waiters(("first", 0), ("second", 1))
        sem.release()  # the slot is promised to "first" ...
        first.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 5)  # a lost slot would leave it waiting forever
        return served, sem.free

    served, free = asyncio.run(main())
    assert served == ["second"]
    assert free == 1


def test_never_more_holders_than_slots_under_churn() -> None:
    async def main() -> tuple[int, int, int]:
        sem = PrioritySemaphore(3)
        rng = random.Random(7)
        holding = peak = 0
        done = 0

        async def worker(i: int) -> None:
            nonlocal holding, peak, done
            for _ in range(20):
                await sem.acquire(rng.randrange(4))
                holding += 1
                peak = max(peak, holding)
                try:
                    await asyncio.sleep(rng.random() / 1000)
                finally:
                    holding -= 1
                    sem.release()
            done += 1

        tasks = [asyncio.create_task(worker(i)) for i in range(12)]
        await asyncio.sleep(0.005)
        tasks[0].cancel()
        tasks[5].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return peak, sem.free, done

    peak, free, done = asyncio.run(main())
    assert peak == 3
    assert free == 3  # every slot came back, cancelled workers' included
    assert done == 10


def test_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        PrioritySemaphore(0)


# -- run(): a freed slot starts the waiting work at once --------------------------------------


def _first_and_second(switch: bool, loop: eventloop.LoopName = "auto") -> list[object]:
    """One slot: ``first`` holds it until a gate opens, queues a callback and returns; ``second``
    waits for the slot in its own task and context. Returns what happened, in order."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    log: list[object] = []
    second_task: list[asyncio.Task[int]] = []

    async def main() -> None:
        sem = PrioritySemaphore(1)
        gate = asyncio.Event()

        async def first() -> int:
            await gate.wait()
            asyncio.get_running_loop().call_soon(log.append, "a callback queued before release")
            return 1

        async def second() -> int:
            log.append(("second starts", asyncio.current_task() is second_task[0], var.get()))
            await asyncio.sleep(0.01)
            log.append(("second goes on", asyncio.current_task() is second_task[0], var.get()))
            return 2

        async def waiter() -> int:
            var.set("the waiter's")
            return await sem.run(second)

        holder = asyncio.ensure_future(sem.run(first))
        await asyncio.sleep(0)
        second_task.append(asyncio.ensure_future(waiter()))
        await asyncio.sleep(0)
        assert sem.waiting() == 1
        gate.set()
        assert await holder == 1
        assert await second_task[0] == 2
        assert sem.free == 1

    if switch:
        eventloop.run(main(), loop=loop)
    else:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(eventloop, "_task_switch", lambda: None)
            eventloop.run(main(), loop=loop)
    return log


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
def test_a_freed_slot_starts_the_waiting_work_at_once_as_its_task(loop: eventloop.LoopName) -> None:
    log = _first_and_second(switch=True, loop=loop)  # uvloop where installed, and asyncio's
    assert log == [
        ("second starts", True, "the waiter's"),  # in the releasing step, as the waiter's task
        "a callback queued before release",
        ("second goes on", True, "the waiter's"),
    ]


def test_without_a_task_switch_the_waiter_starts_its_work_itself() -> None:
    log = _first_and_second(switch=False)
    assert log == [
        "a callback queued before release",
        ("second starts", True, "the waiter's"),
        ("second goes on", True, "the waiter's"),
    ]


def test_run_serves_waiters_by_priority_and_gives_every_slot_back() -> None:
    order: list[int] = []

    async def main() -> None:
        sem = PrioritySemaphore(1)
        gate = asyncio.Event()

        async def hold() -> None:
            await gate.wait()

        async def work(p: int) -> int:
            order.append(p)
            await asyncio.sleep(0)
            return p

        holder = asyncio.ensure_future(sem.run(hold))
        await asyncio.sleep(0)
        waiters = [
            asyncio.ensure_future(sem.run(lambda p=p: work(p), priority=p)) for p in (2, 0, 1)
        ]
        await asyncio.sleep(0)
        gate.set()
        await holder
        assert [await w for w in waiters] == [2, 0, 1]
        assert sem.free == 1 and sem.waiting() == 0

    eventloop.run(main())
    assert order == [0, 1, 2]


def test_a_waiter_cancelled_after_its_work_started_cancels_the_work_and_frees_the_slot() -> None:
    seen: list[str] = []

    async def main() -> None:
        sem = PrioritySemaphore(1)
        gate = asyncio.Event()

        async def hold() -> None:
            await gate.wait()

        async def work() -> None:
            seen.append("started")
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                seen.append("cancelled where it waits")
                raise

        holder = asyncio.ensure_future(sem.run(hold))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(sem.run(work))
        cancelled_early = asyncio.ensure_future(sem.run(work))
        await asyncio.sleep(0)
        cancelled_early.cancel()  # still waiting: leaves the queue, nothing started
        gate.set()
        await holder  # its release started `waiter`'s work; the waiter has not run since
        assert seen == ["started"]
        waiter.cancel()
        for t in (waiter, cancelled_early):
            with pytest.raises(asyncio.CancelledError):
                await t
        await asyncio.sleep(0)
        assert seen == ["started", "cancelled where it waits"]
        assert sem.free == 1 and sem.waiting() == 0

    eventloop.run(main())


def test_work_failing_before_its_first_wait_reaches_its_caller_and_frees_the_slot() -> None:
    async def main() -> None:
        sem = PrioritySemaphore(1)
        gate = asyncio.Event()

        async def hold() -> None:
            await gate.wait()

        async def fail(i: int) -> None:
            raise ValueError(f"failure {i}")

        holder = asyncio.ensure_future(sem.run(hold))
        await asyncio.sleep(0)
        n = 3000  # each failure frees the slot for the next: no recursion through them
        waiters = [asyncio.ensure_future(sem.run(lambda i=i: fail(i))) for i in range(n)]
        await asyncio.sleep(0)
        gate.set()
        await holder
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert [str(r) for r in results] == [f"failure {i}" for i in range(n)]
        assert sem.free == 1 and sem.waiting() == 0

    eventloop.run(main())
