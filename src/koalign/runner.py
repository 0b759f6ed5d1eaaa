"""Runs the registered stages over a run directory, resumably, with records flowing.

Every selected stage runs at once, connected by channels: a stage's record leaves for the next
stage as soon as it is finished (after its transient call failures, if any, were retried).
Whole-stage decisions stay explicit barriers, declared by the stage: ``decide`` (seeds:
near-duplicates and quotas; outputs leave after it) and ``gather_inputs`` (export: balancing
and splits need every input). A stage that calls a local batched model (the ``hf`` backend)
gathers its input too and runs in fixed chunks of plan order (:class:`~koalign.stages.base.
ChunkBatcher`), so what the model samples never depends on timing or on what a resumed run
had already done.

For each stage: items already recorded in ``<stage>.jsonl`` are not recomputed (their outputs
are re-emitted); failed calls are retried (transient ones within the stage, after a wait); at
the end the file is rewritten in plan order (byte-identical across runs and resumes), the typed
report is streamed from it, and the manifest records status, counts (with the reconciliation
``records_in = records_kept + sum(dropped)``), calls, cache hits, tokens, cost and seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel

from koalign import eventloop
from koalign.backends.limits import call_priority
from koalign.config import RunConfig
from koalign.errors import ConfigError, KoalignError
from koalign.jsonio import dumps_line
from koalign.locale import Locale
from koalign.rundir import RecordLog, RunDir, file_digest
from koalign.stages.base import (
    OUTPUT_ERRORS,
    Caller,
    ChunkBatcher,
    Stage,
    StageContext,
    get_stage,
    stage_names,
    stages,
)
from koalign.types import ChatRequest, ChatResult

log = logging.getLogger(__name__)

_SAME_SIGNAL_S = 0.2
"""A stop signal this soon after the first one is the same signal delivered twice (seconds)."""

#: A finished stage file up to this size (bytes) is decoded once for the passes that read it
#: one after another after the stage (its report, its extra files, the next stage's plan); a
#: larger one is streamed from disk at every pass, so memory stays bounded whatever the run's
#: size.
DECODE_ONCE_MAX_BYTES = 6 << 20

AnyStage = Stage[Any, Any, Any, Any]
T = TypeVar("T")


class StageFailed(KoalignError):
    """A stage produced too many bad outputs (past runtime.max_error_rate)."""


class Interrupted(KoalignError):
    """The run was stopped by a signal (SIGINT or SIGTERM); ``exit_code`` is 128 + signal."""

    def __init__(self, signum: int) -> None:
        import signal as _signal

        self.signum = signum
        self.exit_code = 128 + signum
        name = _signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}; finished records and answered calls are kept",
            hint="rerun the same command to resume",
        )


class Progress(Protocol):
    """Receives progress events (the CLI draws bars; the library never prints)."""

    def start(self, stage: str, total: int | None, done: int) -> None:
        """A stage starts: ``total`` work items (None while records flow in), ``done`` so far.
        A stage fed by a running one starts with its first input; one that gets none may end
        without a start."""

    def update(self, stage: str, done: int, total: int | None, stats: dict[str, Any]) -> None:
        """Items done so far (at most every 0.2 s, and at the last one); ``stats`` is the stage's
        calls, cache_hits, tokens_in, tokens_out and cost (in the models' price currency) in this
        process."""

    def end(self, stage: str, summary: dict[str, Any]) -> None:
        """A stage ended (done, partial, failed, blocked or skipped); ``summary`` is its manifest
        entry."""


class _NoProgress:
    def start(self, stage: str, total: int | None, done: int) -> None:
        pass

    def update(self, stage: str, done: int, total: int | None, stats: dict[str, Any]) -> None:
        pass

    def end(self, stage: str, summary: dict[str, Any]) -> None:
        pass


# ----------------------------------------------------------------------------- plumbing
class Channel:
    """Outputs of one stage on their way to the next, closed with the producer's final file
    digest and whether its output is complete.

    A consumer that reads items (a flowing stage) gets a bounded queue: a producer that gets
    ``capacity`` items ahead waits (backpressure), so memory does not grow with the run. A
    consumer that gathers its whole input reads the producer's final file instead: it only
    waits for the close, and the items are not kept at all.
    """

    def __init__(self, capacity: int = 1024, *, keep_items: bool = True) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._event = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.capacity = capacity
        self.keep_items = keep_items
        self.closed = False
        self.digest: str | None = None
        self.complete = True

    async def put(self, item: Any) -> None:
        """Queue one item, waiting while the queue is full."""
        if not self.keep_items:
            return
        while len(self._items) >= self.capacity:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
        self._event.set()

    def close(self, digest: str | None, complete: bool) -> None:
        """No more items: ``digest`` of the producer's final file, ``complete`` when no record
        was held back."""
        self.digest, self.complete, self.closed = digest, complete, True
        self._event.set()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            while self._items:
                item = self._items.popleft()
                if len(self._items) < self.capacity:
                    self._room.set()
                yield item
            if self.closed:
                return
            self._event.clear()
            await self._event.wait()

    async def wait_closed(self) -> None:
        """Wait until the producer closed the channel."""
        while not self.closed:
            self._event.clear()
            await self._event.wait()


class _Kept:
    """The records one stage computed in this process (or read back to resume), kept decoded
    for the passes over its finished file: its report and extra files, the next stage's plan
    order, a gathering stage's input. Once the file is final (:meth:`seal`), a pass whose file
    still has the sealed stamp reads them from here instead of decoding every line again.

    Bounded like the decode-once list: when the records' JSON lines add up to more than
    :data:`DECODE_ONCE_MAX_BYTES`, they are all let go and the passes stream from the file."""

    __slots__ = ("ids", "over", "records", "size", "stamp")

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}
        self.size = 0
        self.over = False
        self.ids: list[str] | None = None  # the file's ids in file order, once sealed
        self.stamp: tuple[int, int, int] | None = None

    def add(self, rid: str, record: Any, size: int) -> None:
        """Keep ``record`` (its JSON line is ``size`` bytes) unless over the budget."""
        if self.over:
            return
        self.size += size
        if self.size > DECODE_ONCE_MAX_BYTES:
            self.over, self.records = True, {}
            return
        self.records[rid] = record
        self.ids = self.stamp = None

    def seal(self, rlog: RecordLog) -> None:
        """The stage's file is final: remember its ids in order and its stamp."""
        if self.over:
            return
        ids = rlog.order()
        if any(rid not in self.records for rid in ids):
            self.over, self.records = True, {}
            return
        self.records = {rid: self.records[rid] for rid in ids}
        self.ids = ids
        self.stamp = _stamp(os.stat(rlog.path))

    def sealed_for(self, stamp: tuple[int, int, int]) -> list[Any] | None:
        """The records in file order when the file still has the sealed stamp, else ``None``."""
        if self.ids is None or self.stamp != stamp:
            return None
        return [self.records[rid] for rid in self.ids]

    def drain(self, stamp: tuple[int, int, int]) -> Iterator[Any] | None:
        """The records in file order when the file still has the sealed stamp (else ``None``),
        each let go as it is taken: from then on nothing is kept, and later passes read the
        file."""
        if self.ids is None or self.stamp != stamp:
            return None
        ids, records = self.ids, self.records
        self.over, self.records, self.ids, self.stamp = True, {}, None, None
        return (records.pop(rid) for rid in ids)


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class StageStats:
    """Calls made by one stage in this process, counted from the results it received."""

    calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """``{calls, cache_hits, tokens_in, tokens_out, cost}``; cost from the models'
        per-million-token prices (same currency), rounded to 6 places."""
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": round(self.cost, 6),
        }


class _CallGate:
    """The run's model calls while it may be stopped. Once a stop signal arrived (:meth:`stop`),
    a call that has not started waits until the run is cancelled (a resumed run makes it again,
    from the cache when it was answered before), and when the last call in flight has finished,
    ``on_idle`` cancels the run at once instead of at the end of the grace period: no answer
    that a server was asked for is dropped on a clean stop."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping = False
        self._on_idle: Callable[[], None] | None = None

    def stop(self, on_idle: Callable[[], None]) -> None:
        """No new call from now on; ``on_idle()`` once no call is in flight (now if none is)."""
        self.stopping, self._on_idle = True, on_idle
        if self.in_flight == 0:
            asyncio.get_running_loop().call_soon(on_idle)

    async def enter(self) -> None:
        if self.stopping:
            await asyncio.get_running_loop().create_future()  # until the run is cancelled
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.stopping and self.in_flight == 0 and self._on_idle is not None:
            asyncio.get_running_loop().call_soon(self._on_idle)


class _CountingPool:
    """The model pool as one stage sees it: every result is counted in the stage's stats, and
    every call goes through the run's :class:`_CallGate`."""

    def __init__(self, pool: Any, stats: StageStats, gate: _CallGate | None = None) -> None:
        self._pool = pool
        self.stats = stats
        self.specs = pool.specs
        self._gate = gate or _CallGate()

    def get(self, name: str) -> Any:
        return _CountingLLM(self._pool.get(name), self.stats, self._gate)


class _CountingLLM:
    def __init__(self, llm: Any, stats: StageStats, gate: _CallGate) -> None:
        self._llm = llm
        self.wrapped = llm
        self._stats = stats
        self._gate = gate
        self.backend = llm.backend
        self.spec = llm.spec

    async def agenerate(self, requests: Sequence[ChatRequest], **kw: Any) -> list[ChatResult]:
        await self._gate.enter()
        try:
            results: list[ChatResult] = await self._llm.agenerate(requests, **kw)
        finally:
            self._gate.leave()
        s, spec = self._stats, self.spec
        for r in results:
            if r.cached:
                s.cache_hits += 1
                continue
            s.calls += 1
            s.tokens_in += r.tokens_in
            s.tokens_out += r.tokens_out
            s.cost += (
                r.tokens_in * (spec.price_in_per_1m or 0.0)
                + r.tokens_out * (spec.price_out_per_1m or 0.0)
            ) / 1e6
        return results


@dataclass
class _Tally:
    """Per-record counts of a stage, built while streaming its final file."""

    records_in: int = 0
    kept: int = 0
    out: int = 0
    model_outputs: int = 0
    dropped: collections.Counter[str] = field(default_factory=collections.Counter)
    bad: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_calls: int = 0
    transient: int = 0


# ----------------------------------------------------------------------------- the pipeline
class Pipeline:
    """One run: a config, its locale, a run directory and (lazily) a model pool."""

    def __init__(
        self,
        config: RunConfig,
        locale: Locale,
        root: str | Path,
        *,
        limit: int | None = None,
        progress: Progress | None = None,
        pool: Any = None,
        preflight: bool = True,
    ) -> None:
        if limit is not None and limit <= 0:
            raise ConfigError(
                f"--limit {limit}: "
                + ("a negative limit" if limit < 0 else "a limit of 0")
                + " selects no seed candidate, so there is nothing to run",
                hint="give a positive number of seed candidates, or leave --limit out for all",
            )
        self.config = config
        self.locale = locale
        if Path(root).exists() and not Path(root).is_dir():
            raise KoalignError(
                "the run directory path is an existing file",
                where=str(root),
                hint="pass a directory path to -o (a new one, or an earlier run's directory)",
            )
        if preflight:
            from koalign import preflight as checks

            checks.check(config, locale)  # before the run directory exists
        try:
            self.rundir = RunDir(root, config, locale_digest=locale.digest)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise _environment_error(exc, Path(root)) from exc
        self.limit = limit
        self.progress: Progress = progress or _NoProgress()
        self._pool = pool
        self._own_pool = pool is None
        self.roles = config.roles.resolved()
        self.stop_event: asyncio.Event | None = None
        self._gate = _CallGate()
        self._signal: int | None = None
        self._running = False
        self._gc_lock = threading.Lock()
        # stage -> ((inode, size, mtime), records): at most two small stage files, decoded once
        self._decoded: dict[str, tuple[tuple[int, int, int], list[Any]]] = {}
        # stage -> the records it computed in this process (see _Kept)
        self._kept: dict[str, _Kept] = {}

    # ------------------------------------------------------------------ model pool
    @property
    def pool(self) -> Any:
        """The model pool, built from ``config.models`` with the run's ``cache.sqlite`` on first use
        (or the pool passed in)."""
        if self._pool is None:
            from koalign.backends.client import ModelPool

            self._pool = ModelPool(self.config.models, cache_path=self.rundir.cache_path)
        return self._pool

    def context(self, caller: Caller | None = None) -> StageContext:
        """A :class:`StageContext` for this run (config, locale, resolved roles, ``--limit``, the
        reports recorded so far) with ``caller``."""
        return StageContext(
            config=self.config,
            locale=self.locale,
            roles=self.roles,
            caller=caller,
            limit=self.limit,
            reports=self.reports(),
        )

    def reports(self) -> dict[str, BaseModel]:
        """The typed reports of the stages recorded in the manifest."""
        out: dict[str, BaseModel] = {}
        for s in stages():
            entry = self.rundir.manifest["stages"].get(s.name)
            if entry and isinstance(entry.get("report"), dict):
                try:
                    out[s.name] = s.Report.model_validate(entry["report"])
                except ValueError:
                    continue
        return out

    # ------------------------------------------------------------------ running
    def run(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Run the stages named (default all, in registry order); returns the manifest."""
        return eventloop.run(self.arun(names), loop=self.config.runtime.event_loop)

    async def arun(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Async :meth:`run`: holds the run directory's lock for the whole run.

        Raises:
            KoalignError: another process holds the lock, a stage's input is not finished, or a
                machine fault (disk full, no permission, damaged cache).
            StageFailed: a stage's share of bad outputs is past ``runtime.max_error_rate``.
            Interrupted: SIGINT or SIGTERM stopped the run (finished records are kept).
        """
        import gc

        self.rundir.lock()
        self._running = True
        self._warm_up(names)
        # Everything alive now (modules, config, locale pack, statute index) lives for the whole
        # run: frozen, the cyclic garbage collector stops scanning it again and again while
        # thousands of records come and go (13-17% of the CPU of a run on the benchmark).
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(
            max(thresholds[0], 20_000), max(thresholds[1], 50), max(thresholds[2], 100)
        )
        try:
            return await self._arun(list(names) if names is not None else list(stage_names()))
        finally:
            self._decoded.clear()
            self._kept.clear()
            with self._gc_lock:
                self._running = False
                gc.set_threshold(*thresholds)
                gc.unfreeze()
            self.rundir.unlock()

    def _warm_up(self, names: Sequence[str] | None) -> None:
        """Run the selected stages' :meth:`~koalign.stages.base.Stage.warm_up` on a background
        thread while the first calls are out (the citation index, numpy for the seeds'
        near-duplicate signatures); what the thread built is then frozen out of garbage
        collection like the rest of the start-up state."""
        import gc

        selected = [s for s in stages() if names is None or s.name in names]
        ctx = self.context()

        def build() -> None:
            for stage in selected:
                try:
                    stage.warm_up(ctx)
                except Exception:  # met and reported by the stage's own work
                    log.debug("warm-up of stage %s failed", stage.name, exc_info=True)
            with self._gc_lock:
                if self._running:  # never after the run has unfrozen the heap
                    gc.freeze()

        threading.Thread(target=build, name="koalign-warm-up", daemon=True).start()

    async def _arun(self, names: list[str]) -> dict[str, Any]:
        order = list(stage_names())
        for n in names:
            get_stage(n)  # did-you-mean for unknown names
        selected = [s for s in stages() if s.name in names]
        self.stop_event = asyncio.Event()
        self._gate = _CallGate()
        self.rundir.manifest["limit"] = self.limit  # this invocation's --limit (None: none)
        self.rundir.set_status("running")
        channels = self._channels(selected, order)
        skipped = self._skip_plan(selected, order)
        tasks: list[asyncio.Task[None]] = []
        signals = self._install_signals(tasks)
        try:
            for i, s in enumerate(selected):
                idx = order.index(s.name)
                upstream = get_stage(order[idx - 1]) if idx > 0 else None
                inbox = channels.get(upstream.name) if upstream is not None else None
                later = order[idx + 1 :]
                if s.name in skipped:
                    nxt = selected[i + 1].name if i + 1 < len(selected) else None
                    emit = nxt is not None and nxt not in skipped
                    tasks.append(asyncio.create_task(self._skip(s, channels[s.name], emit=emit)))
                    continue
                tasks.append(
                    asyncio.create_task(
                        self._run_stage(s, upstream, inbox, channels[s.name], later),
                        name=f"stage:{s.name}",
                    )
                )
            trimmer = _start_heap_trimmer()
            try:
                await _gather_failfast(tasks)
            except (asyncio.CancelledError, Interrupted):
                if self._signal is None:
                    raise
            finally:
                if trimmer is not None:
                    trimmer.cancel()
            if self._signal is not None:
                raise Interrupted(self._signal)
        except Interrupted:
            self.rundir.set_status("interrupted", best_effort=True)
            raise
        except KoalignError:
            self.rundir.set_status("failed", best_effort=True)
            raise
        except (OSError, sqlite3.DatabaseError) as exc:
            self.rundir.set_status("failed", best_effort=True)
            raise _environment_error(exc, self.rundir.root) from exc
        except BaseException:
            self.rundir.set_status("interrupted", best_effort=True)
            raise
        finally:
            self._remove_signals(signals)
            if self._pool is not None and self._own_pool:
                await self._pool.aclose()
                self._pool = None
        st = self.rundir.manifest["stages"]
        done = all(st.get(n, {}).get("status") == "done" for n in order)
        self.rundir.set_status("done" if done else "partial")
        return self.rundir.manifest

    def _channels(self, selected: list[AnyStage], order: list[str]) -> dict[str, Channel]:
        """One channel per stage; its items are kept only when the next stage reads them (a
        gathering or chunked stage reads the finished file instead)."""
        out = {}
        capacity = 2 * self.config.runtime.max_inflight
        for s in selected:
            idx = order.index(s.name)
            nxt = get_stage(order[idx + 1]) if idx + 1 < len(order) else None
            reads = (
                nxt is not None
                and any(x.name == nxt.name for x in selected)
                and not nxt.gather_inputs
                and not self._chunked(nxt)
            )
            out[s.name] = Channel(capacity, keep_items=reads)
        return out

    def _chunked(self, stage: AnyStage) -> bool:
        models = {m for r in stage.roles for m in self.roles.get(r.name, [])}
        return any(_batch_sensitive(self.pool, m) for m in models)

    # ------------------------------------------------------------------ signals
    def _install_signals(self, tasks: list[asyncio.Task[None]]) -> list[int]:
        """SIGINT and SIGTERM: stop launching work at once, give calls in flight
        ``runtime.stop_grace_s`` to finish, then cancel; a second signal cancels at once."""
        import signal

        self._signal = None
        loop = asyncio.get_running_loop()
        grace = self.config.runtime.stop_grace_s

        def cancel() -> None:
            for t in tasks:
                t.cancel()

        first_at: list[float] = []

        def on_signal(signum: int) -> None:
            assert self.stop_event is not None
            if self.stop_event.is_set():
                # one signal delivered twice (GNU timeout signals the child, then its process
                # group) is not a second request to stop
                if time.monotonic() - first_at[0] < _SAME_SIGNAL_S:
                    return
                log.warning("second signal: stopping now")
                cancel()
                return
            first_at.append(time.monotonic())
            self._signal = signum
            self.stop_event.set()
            log.warning(
                "%s received: no new calls are started; calls in flight get %.0f s to finish, "
                "then the run stops (rerun the same command to resume)",
                signal.Signals(signum).name,
                grace,
            )
            loop.call_later(grace, cancel)
            self._gate.stop(on_idle=cancel)  # sooner when the calls in flight are all answered

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, int(sig))
                installed.append(int(sig))
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
        return installed

    def _remove_signals(self, installed: list[int]) -> None:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)

    @property
    def stopping(self) -> bool:
        """True once a stop signal arrived: no new work may start."""
        return self.stop_event is not None and self.stop_event.is_set()

    # ------------------------------------------------------------------ skipping
    def _key_extra(self, upstream: AnyStage | None) -> str:
        return f"limit={self.limit}" if upstream is None else ""

    def _skip_plan(self, selected: list[AnyStage], order: list[str]) -> set[str]:
        """Stages whose output is already final for this config and input (in order: a stage
        can be skipped only when its input is known before anything runs)."""
        skipped: set[str] = set()
        names = {s.name for s in selected}
        for s in selected:
            idx = order.index(s.name)
            upstream = get_stage(order[idx - 1]) if idx > 0 else None
            if upstream is None:
                digest_in = None
            elif upstream.name in names:
                if upstream.name not in skipped:
                    continue
                digest_in = self.rundir.entry(upstream.name).get("output_digest")
            else:
                digest_in, _ = self._require_done(upstream)
            key = self.rundir.stage_key(s.name, digest_in, self._key_extra(upstream))
            state = self.rundir.done_state(s.name, key)
            if state == "done" and all((self.rundir.root / f).is_file() for f in s.files):
                skipped.add(s.name)
            elif state == "changed":
                log.warning(
                    "%s: %s changed since the stage finished (its digest no longer matches "
                    "manifest.json): the stage runs again; records still in the file are "
                    "kept and calls to remote models come from the cache",
                    s.name,
                    self.rundir.path(s.name).name,
                )
        return skipped

    async def _skip(self, stage: AnyStage, outbox: Channel, *, emit: bool) -> None:
        log.info("%s: already done for this config and input; skipped", stage.name)
        if emit:
            await self._emit_file(stage, outbox)
        entry = self.rundir.entry(stage.name)
        self.progress.start(stage.name, entry.get("records_in"), entry.get("records_in", 0))
        self.progress.end(stage.name, entry)
        outbox.close(entry.get("output_digest"), not entry.get("transient_failures"))

    # ------------------------------------------------------------------ one stage
    async def _run_stage(
        self,
        stage: AnyStage,
        upstream: AnyStage | None,
        inbox: Channel | None,
        outbox: Channel,
        later: list[str],
    ) -> None:
        name = stage.name
        # A model whose slots are all taken serves this stage's calls after those of earlier
        # stages: an earlier stage's record has the longest chain of calls still ahead of it.
        call_priority.set(list(stage_names()).index(name))
        # Input: from the running upstream stage, from its finished file, or none (source).
        upstream_digest: str | None = None
        upstream_complete = True
        if upstream is not None and inbox is None:
            upstream_digest, upstream_complete = self._require_done(upstream)
        key_extra = self._key_extra(upstream)
        started = time.monotonic()
        cache = getattr(self.pool, "cache", None)
        self.rundir.prepare(name, later, log_from=None if cache is None else cache.last_call_id())
        stats = StageStats()
        pool = _CountingPool(self.pool, stats, self._gate)
        ctx = self.context(Caller(pool))
        rlog = self.rundir.log(name)
        rlog.open()
        run = _StageRun(self, stage, ctx, pool, rlog, outbox, stats)
        try:
            if upstream is None:
                plan = stage.plan(ctx, None)
                await run.process_all(iter(plan), total=len(plan))
            elif stage.gather_inputs or run.chunked:
                if inbox is not None:
                    await inbox.wait_closed()
                    upstream_digest, upstream_complete = inbox.digest, inbox.complete
                if not upstream_complete:
                    self._blocked(stage, outbox, upstream)
                    return
                inputs = lambda: self._stream_outputs(upstream)  # noqa: E731
                if stage.gather_inputs:
                    items_iter = stage.plan_all(ctx, inputs)
                else:
                    items_iter = (it for inp in inputs() for it in stage.plan(ctx, inp))
                await run.process_all(items_iter)
            else:
                source: Any = inbox if inbox is not None else _aiter(self._stream_outputs(upstream))

                def plan_order() -> list[str]:
                    """Item ids in plan order, from the upstream file (final once the source is
                    exhausted: worked out while the last records are out). This is the last
                    pass over the upstream's records, so the decoded ones kept for it are let
                    go here rather than when this stage ends."""
                    order = _unique(
                        stage.item_id(it)
                        for inp in self._stream_outputs(upstream)
                        for it in stage.plan(ctx, inp)
                    )
                    self._kept.pop(upstream.name, None)
                    return order

                order = await run.process_stream(source, after_source=plan_order)
                if inbox is not None:
                    upstream_digest, upstream_complete = inbox.digest, inbox.complete
                await run.retry_transient()
                await run.finish_order(order if order is not None else plan_order())
        except BaseException:
            with contextlib.suppress(OSError):
                rlog.close()
            entry = self.rundir.entry(name)
            if entry.get("status") == "running":
                # the calls this invocation paid for count in the stage's totals
                spent = self._spent(name, entry, stats.as_dict(), started)
                with contextlib.suppress(OSError):
                    self.rundir.finish(name, {"status": "interrupted", **spent})
            raise
        key = self.rundir.stage_key(name, upstream_digest, key_extra)
        summary = run.summarize(started, key, upstream_complete)
        self.rundir.finish(name, summary)
        self.progress.end(name, summary)
        if summary["status"] == "failed":
            raise StageFailed(
                f"{summary['bad_outputs_total']} of {summary['model_outputs']} model outputs were "
                f"unusable ({summary['error_rate']:.1%} > runtime.max_error_rate "
                f"{self.config.runtime.max_error_rate:.0%}); kinds: {summary['bad_outputs']}",
                where=f"stage {name}",
                hint=f"inspect the error rows in {name}.jsonl (raw text is kept), fix the model "
                "or prompts, or raise runtime.max_error_rate",
            )
        outbox.close(
            summary["output_digest"], not summary["transient_failures"] and upstream_complete
        )
        if upstream is not None:  # its records were needed up to this stage's summary
            self._kept.pop(upstream.name, None)

    def _spent(
        self, name: str, entry: dict[str, Any], stats: dict[str, Any], started: float
    ) -> dict[str, Any]:
        """Calls, cache hits, tokens, cost and seconds of stage ``name`` over every invocation
        that built it. Calls to cost come from the call log, the record of what was paid: its
        rows tagged ``<stage>/`` after the stage's ``log_from`` (see
        :meth:`~koalign.rundir.RunDir.prepare`), so an invocation that was killed (SIGKILL, a
        power loss), which never added its own, counts too; a JSON repair or a truncation retry
        is a call of its own, as in ``koalign cache stats``. Seconds add up this invocation's
        to ``entry``'s: a killed invocation's are not known. Without a cache, for an entry
        written before ``log_from`` existed, or when the cache cannot be read, each invocation's
        own counts are added up (:func:`_spent`). With a cache that another run shares at the
        same time, that run's rows of the same stage would count too."""
        fallback = _spent(entry, stats, started)
        cache = getattr(self.pool, "cache", None)
        log_from = entry.get("log_from")
        if cache is None or not isinstance(log_from, int):
            return fallback
        try:
            cache.flush()
            totals = cache.tag_totals(f"{name}/", after_id=log_from)
        except (KoalignError, sqlite3.Error):
            return fallback
        return {
            "calls": totals["calls"],
            "cache_hits": totals["cache_hits"],
            "tokens_in": totals["tokens_in"],
            "tokens_out": totals["tokens_out"],
            "cost": round(totals["cost"], 6),
            "seconds": fallback["seconds"],
        }

    def _blocked(self, stage: AnyStage, outbox: Channel, upstream: AnyStage) -> None:
        stages_ = self.rundir.manifest["stages"]
        culprit = next(
            (n for n in stage_names() if stages_.get(n, {}).get("transient_failures")),
            upstream.name,
        )
        log.warning(
            "%s: not run: stage '%s' still has records whose calls failed (rate limit, server, "
            "timeout, connection). Rerun the same command to retry them: finished records and "
            "answered calls are kept.",
            stage.name,
            culprit,
        )
        summary = {"status": "blocked", "blocked_by": culprit}
        self.rundir.finish(stage.name, summary)
        self.progress.end(stage.name, summary)
        outbox.close(None, False)

    def _require_done(self, upstream: AnyStage) -> tuple[str | None, bool]:
        entry = self.rundir.entry(upstream.name)
        path = self.rundir.path(upstream.name)
        if entry.get("status") not in ("done", "partial") or not path.is_file():
            raise KoalignError(
                f"stage '{upstream.name}' has not finished in this run directory",
                where=str(self.rundir.root),
                hint=f"run `koalign {upstream.name}` (or `koalign run`) first",
            )
        if entry.get("transient_failures"):
            raise KoalignError(
                f"stage '{upstream.name}' has {entry['transient_failures']} records whose calls "
                "failed (rate limit, server, timeout, connection)",
                where=str(self.rundir.root),
                hint=f"rerun `koalign {upstream.name}` (or `koalign run`) to retry them first",
            )
        return file_digest(path), True

    def _records(self, stage: AnyStage) -> Iterator[Any]:
        """A finished stage's records, in file order: streamed from its file, or, for a file of
        at most :data:`DECODE_ONCE_MAX_BYTES`, decoded once and kept while the file is unchanged
        (records are frozen) for the passes that follow one another with no record computed in
        between (a stage's report and extra files, then the next stage's plan). Only the
        records of this stage and of the stage before it are kept, and both are let go as soon
        as any stage appends a record, so decoded records never stay while the run goes on."""
        validate = stage.Record.model_validate_json
        log = self.rundir.log(stage.name)
        order = list(stage_names())
        pos = order.index(stage.name)
        near = {stage.name, order[pos - 1]} if pos > 0 else {stage.name}
        for name in [n for n in self._decoded if n not in near]:
            del self._decoded[name]
        try:
            st = os.stat(log.path)
        except FileNotFoundError:
            return
        stamp = _stamp(st)
        kept = self._kept.get(stage.name)
        sealed = kept.sealed_for(stamp) if kept is not None else None
        if sealed is not None:
            yield from sealed
            return
        hit = self._decoded.get(stage.name)
        if hit is None or hit[0] != stamp:
            self._decoded.pop(stage.name, None)
            if st.st_size > DECODE_ONCE_MAX_BYTES:
                for line in log.lines():
                    yield validate(line)
                return
            self._decoded[stage.name] = (stamp, [validate(line) for line in log.lines()])
        del hit
        # read the kept list one record at a time without holding it, so that a long-lived
        # reader (the next stage's plan) does not keep it alive once it is let go; then the rest
        # comes from the file (unchanged: same stamp, same order)
        i = 0
        while True:
            entry = self._decoded.get(stage.name)
            if entry is None or entry[0] != stamp:
                break
            if i >= len(entry[1]):
                return
            record = entry[1][i]
            del entry
            yield record
            i += 1
        for n, line in enumerate(log.lines()):
            if n >= i:
                yield validate(line)

    def _stream_outputs(self, stage: AnyStage) -> Iterator[Any]:
        """A finished stage's outputs in plan order (records with transient failures left out,
        as they were when the stage emitted them)."""
        ctx = self.context()
        for rec in self._records(stage):
            if any(c.transient for c in stage.calls(rec)):
                continue
            yield from stage.outputs(ctx, rec)

    async def _emit_file(self, stage: AnyStage, outbox: Channel) -> None:
        if not outbox.keep_items:
            return
        for out in self._stream_outputs(stage):
            await outbox.put(out)


class _StageRun:
    """The mutable state of one stage while it runs."""

    def __init__(
        self,
        pipe: Pipeline,
        stage: AnyStage,
        ctx: StageContext,
        pool: _CountingPool,
        rlog: RecordLog,
        outbox: Channel,
        stats: StageStats,
    ) -> None:
        self.pipe = pipe
        self.stage = stage
        self.ctx = ctx
        self.pool = pool
        self.rlog = rlog
        self.outbox = outbox
        self.stats = stats
        self.runtime = pipe.config.runtime
        self.sem = asyncio.Semaphore(self.runtime.max_inflight)
        self.transient: dict[str, Any] = {}  # id -> item, records left with transient failures
        self.retried = 0
        self.reused = 0  # records found done in the stage file (an earlier invocation's)
        self.done = 0
        self.total: int | None = None
        self.barrier = stage.has_decide
        self.kept = pipe._kept[stage.name] = _Kept()
        models = {m for r in stage.roles for m in pipe.roles.get(r.name, [])}
        self.batch_models = {m for m in models if _batch_sensitive(pipe.pool, m)}
        self.chunked = bool(self.batch_models)
        self._last_progress = 0.0

    # -- one item --------------------------------------------------------------------------
    def _existing(self, rid: str) -> Any | None:
        if rid not in self.rlog:
            return None
        line = self.rlog.read(rid)
        rec = self.stage.Record.model_validate_json(line)
        if any(c.failed_call for c in self.stage.calls(rec)):
            self.retried += 1
            return None
        self.kept.add(rid, rec, len(line))
        self.reused += 1
        return rec

    async def _settle(self, rid: str, item: Any, rec: Any) -> None:
        if any(c.transient for c in self.stage.calls(rec)):
            self.transient[rid] = item
        else:
            self.transient.pop(rid, None)
            if not self.barrier and self.outbox.keep_items:
                for out in self.stage.outputs(self.ctx, rec):
                    await self.outbox.put(out)
        self.done += 1
        now = time.monotonic()
        if now - self._last_progress > 0.2 or self.done == self.total:
            self._last_progress = now
            self.pipe.progress.update(self.stage.name, self.done, self.total, self.stats.as_dict())

    async def _compute(self, ctx: StageContext, rid: str, item: Any) -> Any:
        rec = await self.stage.process(ctx, item)
        line = dumps_line(rec.model_dump(mode="json", exclude_none=True))
        self.rlog.append(rid, line)
        self.kept.add(rid, rec, len(line))
        if self.pipe._decoded:  # records flow again: decoded files are let go (see _records)
            self.pipe._decoded.clear()
        return rec

    async def _one(self, item: Any) -> None:
        rid = self.stage.item_id(item)
        rec = self._existing(rid)
        if rec is None:
            rec = await self._compute(self.ctx, rid, item)
        await self._settle(rid, item, rec)

    async def _one_held(self, item: Any) -> None:
        try:
            await self._one(item)
        finally:
            self.sem.release()

    # -- driving ---------------------------------------------------------------------------
    async def process_stream(
        self, source: Any, *, after_source: Callable[[], T] | None = None
    ) -> T | None:
        """Process items as their inputs arrive (records flow); at most ``max_inflight``
        records alive; the first failure cancels the rest and is raised. ``after_source`` is
        called once the source is exhausted, while the last records are still out (its result
        is returned; ``None`` when it was not called)."""
        result: T | None = None
        tasks: set[asyncio.Task[None]] = set()
        failures: list[BaseException] = []
        begun = False

        def finished(t: asyncio.Task[None]) -> None:
            tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                failures.append(t.exception())  # type: ignore[arg-type]

        try:
            async for inp in source:
                if self.pipe.stopping:
                    break
                if not begun:  # the stage starts with its first input, not while it waits
                    self.pipe.progress.start(self.stage.name, None, 0)
                    begun = True
                for item in self.stage.plan(self.ctx, inp):
                    await self.sem.acquire()
                    if failures:
                        self.sem.release()
                        raise failures[0]
                    if self.pipe.stopping:
                        self.sem.release()
                        break
                    t = asyncio.create_task(self._one_held(item))
                    tasks.add(t)
                    t.add_done_callback(finished)
                    # let it run to its first wait (its first request on the wire) before the
                    # next one starts: inputs arriving together (after a barrier) would otherwise
                    # all be planned, and the plan order worked out, before any request goes out
                    await asyncio.sleep(0)
            if after_source is not None and not failures and not self.pipe.stopping:
                result = after_source()
            while tasks and not failures:
                await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
            if failures:
                raise failures[0]
            self._check_stop()
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return result

    async def process_all(self, items: Iterator[Any], total: int | None = None) -> None:
        """Process items from an iterator, in plan order (source, gathering and chunked
        stages); only the items alive are in memory, plus the plan's ids."""
        order: list[str] = []

        def planned() -> Iterator[Any]:
            for it in items:
                order.append(self.stage.item_id(it))
                yield it

        self.total = total
        self.pipe.progress.start(self.stage.name, total, 0)
        stop = lambda: self.pipe.stopping  # noqa: E731
        if self.chunked:
            await self._process_chunks(planned())
        else:
            await _bounded(
                (self._one(it) for it in planned()), width=self.runtime.max_inflight, stop=stop
            )
        self.total = len(order)
        self._check_stop()
        await self.retry_transient()
        await self.finish_order(_unique(order))

    async def _process_chunks(self, items: Iterator[Any]) -> None:
        import itertools

        size = self.runtime.chunk_size or min(
            (_max_batch(self.pipe.pool, m) for m in self.batch_models), default=16
        )

        def chunks() -> Iterator[list[Any]]:
            while chunk := list(itertools.islice(items, size)):
                yield chunk

        width = max(1, self.runtime.max_inflight // size)
        await _bounded(
            (self._chunk(c) for c in chunks()), width=width, stop=lambda: self.pipe.stopping
        )

    async def _chunk(self, items: list[Any]) -> None:
        ids = [self.stage.item_id(it) for it in items]
        existing = [self._existing(rid) for rid in ids]
        if all(r is not None for r in existing):
            for rid, it, rec in zip(ids, items, existing, strict=True):
                await self._settle(rid, it, rec)
            return
        # any member missing: the whole chunk again (remote calls come from the cache; local
        # batches are regenerated whole, so they come out exactly as before)
        batcher = ChunkBatcher(self.pool, self.batch_models)
        for _ in items:
            batcher.enter()

        async def member(pos: int, rid: str, item: Any) -> tuple[str, Any, Any]:
            try:
                ctx = self.ctx.with_caller(Caller(self.pool, batcher).child(pos))
                return rid, item, await self._compute(ctx, rid, item)
            finally:
                batcher.leave()

        results = await asyncio.gather(
            *(member(i, rid, it) for i, (rid, it) in enumerate(zip(ids, items, strict=True)))
        )
        for rid, item, rec in results:
            await self._settle(rid, item, rec)

    def _check_stop(self) -> None:
        if self.pipe.stopping:
            raise Interrupted(self.pipe._signal or 2)

    async def retry_transient(self) -> None:
        """Extra passes over records whose calls failed transiently (answered calls come from
        the cache)."""
        for attempt in range(self.runtime.stage_retries):
            if not self.transient:
                return
            again = list(self.transient.items())
            wait = self.runtime.stage_retry_wait_s * (attempt + 1)
            log.info(
                "%s: %d records had failed calls; retry pass %d/%d in %.0f s",
                self.stage.name,
                len(again),
                attempt + 1,
                self.runtime.stage_retries,
                wait,
            )
            await asyncio.sleep(wait)
            self.done -= len(again)
            if self.chunked:
                await self._process_chunks(iter([it for _, it in again]))
            else:
                await _bounded((self._one(it) for _, it in again), width=self.runtime.max_inflight)

    async def finish_order(self, order: list[str]) -> None:
        """Barrier decisions (if any), then the file in plan order; emit a barrier's outputs."""
        missing = [rid for rid in order if rid not in self.rlog]
        if missing:  # cannot happen unless the file was changed under us
            raise KoalignError(
                f"{len(missing)} planned records are missing from {self.rlog.path.name}",
                where=str(self.rlog.path),
                hint="rerun the same command to recompute them",
            )
        fsync = self.runtime.fsync
        self.rlog.flush()
        outside = len(self.rlog) - len(set(order))
        if outside > 0:
            log.warning(
                "%s: %d records in %s are not in this run's plan (a smaller --limit or a "
                "changed input) and are left out of it; their answered calls stay in the cache, "
                "so running with the earlier plan again costs nothing",
                self.stage.name,
                outside,
                self.rlog.path.name,
            )
        if self.stage.has_decide:
            validate = self.stage.Record.model_validate_json
            before = self.kept.records

            def current(rid: str) -> Any:
                rec = before.get(rid)
                return rec if rec is not None else validate(self.rlog.read(rid))

            decided = self.stage.decide(self.ctx, (current(r) for r in order))
            kept = self.kept = self.pipe._kept[self.stage.name] = _Kept()

            def lines() -> Iterator[tuple[str, bytes]]:
                for r in decided:
                    line = dumps_line(r.model_dump(mode="json", exclude_none=True))
                    kept.add(r.id, r, len(line))
                    yield r.id, line

            self.rlog.write_all(lines(), fsync=fsync)
            del before
            kept.seal(self.rlog)
            await self._emit_draining(kept)
        else:
            self.rlog.rewrite(order, fsync=fsync)
            self.kept.seal(self.rlog)

    async def _emit_draining(self, kept: _Kept) -> None:
        """Emit a barrier's outputs in file order. More records than the channel holds go out
        only as fast as the next stage takes them, over the whole of its run when it is the
        slower one: then each record is let go once its outputs are out
        (:meth:`_Kept.drain`) rather than kept alive that long, and the passes that follow (the
        report, the next stage's plan order) read the file. Fewer stay kept for those passes."""
        drained = None
        if self.outbox.keep_items and len(kept.ids or ()) > self.outbox.capacity:
            drained = kept.drain(_stamp(os.stat(self.rlog.path)))
        records = drained if drained is not None else self.pipe._records(self.stage)
        for rec in records:
            if not any(c.transient for c in self.stage.calls(rec)):
                for out in self.stage.outputs(self.ctx, rec):
                    await self.outbox.put(out)

    # -- summary ---------------------------------------------------------------------------
    def _tally(self, tally: _Tally, ctx: StageContext, rec: Any) -> None:
        stage = self.stage
        tally.records_in += 1
        calls = stage.calls(rec)
        tally.model_outputs += len(calls)
        for c in calls:
            if c.error is not None and c.error.kind in OUTPUT_ERRORS:
                tally.bad[c.error.kind] += 1
        tally.failed_calls += any(c.failed_call for c in calls)
        transient = any(c.transient for c in calls)
        tally.transient += transient
        outs = [] if transient else stage.outputs(ctx, rec)
        if outs:
            tally.kept += 1
            tally.out += len(outs)
        else:
            reason = "transient_failures" if transient else (stage.drop_reason(rec) or "no_output")
            tally.dropped[reason] += 1

    def summarize(self, started: float, key: str, upstream_complete: bool) -> dict[str, Any]:
        """The stage's manifest entry after it finished: status (``done``; ``partial`` with failed
        calls or an incomplete input; ``failed`` past ``runtime.max_error_rate``), the record counts
        (``records_in = records_kept + sum(dropped)``), bad outputs by kind, calls, cache hits,
        tokens, cost and seconds summed over every invocation that built the stage, and the
        typed report. Also writes the stage's extra files."""
        stage = self.stage
        ctx = dataclasses.replace(self.ctx, reports=self.pipe.reports())  # earlier stages are done
        tally = _Tally()
        passes = [0]

        def counted() -> Iterator[Any]:
            """The records, tallied on the first pass (the report's pass: one read of the file
            serves both)."""
            passes[0] += 1
            first = passes[0] == 1
            for rec in self.pipe._records(stage):
                if first:
                    self._tally(tally, ctx, rec)
                yield rec

        report = stage.report(ctx, counted)
        if passes[0] == 0:  # a report that read nothing: tally on our own
            for _ in counted():
                pass
        stage.write_files(ctx, lambda: self.pipe._records(stage), self.pipe.rundir.root)
        bad_total = sum(tally.bad.values())
        report = report.model_copy(
            update={
                "records_in": tally.records_in,
                "records_kept": tally.kept,
                "records_out": tally.out,
                "dropped": dict(sorted(tally.dropped.items())),
                "model_outputs": tally.model_outputs,
                "bad_outputs": dict(sorted(tally.bad.items())),
            }
        )
        entry = self.pipe.rundir.entry(stage.name)
        status = "done"
        if tally.failed_calls or not upstream_complete:
            status = "partial"
        rate = bad_total / tally.model_outputs if tally.model_outputs else 0.0
        if rate > self.runtime.max_error_rate and tally.model_outputs:
            status = "failed"
        stats = self.stats.as_dict()
        return {
            "status": status,
            "key": key,
            "output_digest": file_digest(self.pipe.rundir.path(stage.name)),
            "records_in": tally.records_in,
            "records_kept": tally.kept,
            "records_out": tally.out,
            "dropped": dict(sorted(tally.dropped.items())),
            "model_outputs": tally.model_outputs,
            "bad_outputs": dict(sorted(tally.bad.items())),
            "bad_outputs_total": bad_total,
            "errors": bad_total,
            "error_rate": round(rate, 4),
            "failed_calls": tally.failed_calls,
            "transient_failures": tally.transient,
            "retried_records": self.retried,
            "records_reused": self.reused,
            **self.pipe._spent(stage.name, entry, stats, started),
            "report": report.model_dump(mode="json"),
        }


# ----------------------------------------------------------------------------- helpers
def _spent(entry: dict[str, Any], stats: dict[str, Any], started: float) -> dict[str, Any]:
    """Calls, cache hits, tokens, cost and seconds of a stage added up over the invocations that
    built it, by what each counted itself: ``entry``'s figures plus this invocation's ``stats``
    (:meth:`StageStats.as_dict`) and the seconds since ``started`` (monotonic). The fallback of
    :meth:`Pipeline._spent` (a killed invocation counts nothing here)."""
    return {
        "calls": int(entry.get("calls") or 0) + stats["calls"],
        "cache_hits": int(entry.get("cache_hits") or 0) + stats["cache_hits"],
        "tokens_in": int(entry.get("tokens_in") or 0) + stats["tokens_in"],
        "tokens_out": int(entry.get("tokens_out") or 0) + stats["tokens_out"],
        "cost": round(float(entry.get("cost") or 0.0) + stats["cost"], 6),
        "seconds": round(float(entry.get("seconds") or 0.0) + time.monotonic() - started, 3),
    }


def _batch_sensitive(pool: Any, model: str) -> bool:
    try:
        backend = pool.get(model).backend
    except KoalignError:
        return False
    return bool(getattr(backend, "batch_sensitive", False)) or getattr(backend, "name", "") == "hf"


def _max_batch(pool: Any, model: str) -> int:
    backend = pool.get(model).backend
    return int(getattr(backend, "max_batch_size", 16) or 16)


def _environment_error(exc: BaseException, root: Path) -> KoalignError:
    """A one-line error for a fault of the machine (disk, permissions, a damaged cache)."""
    import errno
    import sqlite3 as _sqlite3

    if isinstance(exc, _sqlite3.DatabaseError) and "full" in str(exc):
        return KoalignError(
            "the disk is full", where=str(root), hint="free space, then rerun the same command"
        )
    if isinstance(exc, _sqlite3.DatabaseError):
        return KoalignError(
            f"the response cache cannot be used: {exc}",
            where=str(root / "cache.sqlite"),
            hint="if the file is damaged, move it away and rerun: finished records are kept, "
            "calls not yet recorded in a stage file are paid again",
        )
    assert isinstance(exc, OSError)
    where = exc.filename or str(root)
    if exc.errno == errno.ENOSPC:
        return KoalignError(
            "the disk is full", where=str(where), hint="free space, then rerun the same command"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return KoalignError(
            "cannot write here (read-only or no permission)",
            where=str(where),
            hint="make the run directory writable, or pass another -o, then rerun",
        )
    return KoalignError(f"{exc.strerror or exc}", where=str(where), hint="fix it and rerun")


def _unique(ids: Any) -> list[str]:
    return list(dict.fromkeys(ids))


async def _aiter(it: Iterator[Any]) -> AsyncIterator[Any]:
    for x in it:
        yield x


_TRIM_EVERY_S = 2.0
"""How often a run hands the C heap's free pages back to the system (seconds)."""


def _start_heap_trimmer() -> asyncio.Task[None] | None:
    """On Linux, a task that calls glibc's ``malloc_trim(0)`` every :data:`_TRIM_EVERY_S` for
    the run's length (it ends at once where the C library has no ``malloc_trim``: musl); else
    ``None``.

    Prompts, bodies and answers of more than 512 bytes live on the C heap, and glibc keeps the
    pages they freed: without trimming, the process's RSS grows with the number of records a
    run has seen, not with the records alive. A trim takes about a millisecond. The C library is
    looked up when the first interval has passed, off the start-up's path (finding it by name
    would start a subprocess).
    """
    if sys.platform != "linux":
        return None

    async def loop() -> None:
        await asyncio.sleep(_TRIM_EVERY_S)
        trim = _malloc_trim()
        while trim is not None:
            trim(0)
            await asyncio.sleep(_TRIM_EVERY_S)

    return asyncio.create_task(loop(), name="heap-trim")


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the symbols the process has loaded, or ``None``."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


async def _bounded(
    coros: Any, width: int | None = None, stop: Callable[[], bool] | None = None
) -> None:
    """Run coroutines with at most ``width`` alive (None: all), failing fast; once ``stop()``
    is true no new one starts (those running finish)."""
    pending: set[asyncio.Task[None]] = set()
    try:
        for c in coros:
            if stop is not None and stop():
                c.close()
                break
            if width is not None and len(pending) >= width:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
                if stop is not None and stop():
                    c.close()
                    break
            pending.add(asyncio.ensure_future(c))
            # let it run to its first wait (a model call on its way) before the next one starts:
            # hundreds of records starting at once would otherwise all render their prompts
            # before the first request goes out
            await asyncio.sleep(0)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
    except BaseException:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise


async def _gather_failfast(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for the stages' tasks; the first failure cancels the others and is raised. A stage
    that stops on a signal (:class:`Interrupted`) does not cancel the others: their calls in
    flight may still be answered (the stop's grace period, or the last of those answers,
    cancels them), so they are waited for, then the stop is raised."""
    try:
        await asyncio.gather(*tasks)
    except Interrupted:
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
