"""The per-model slot semaphore: priority order, arrival order, cancellation, exact cap."""

from __future__ import annotations

import asyncio
import random

import pytest

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
