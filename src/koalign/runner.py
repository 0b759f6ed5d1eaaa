"""Runs the stages in order over a run directory, resumably.

Each stage: plan its work items from the previous stage's output, skip items already recorded
in ``<stage>.jsonl``, process the rest concurrently (each finished record is appended at once),
check the bad-output rate, make the stage-wide decisions (``finalize``) and rewrite the file in
plan order. The manifest records per stage status, counts, calls, cache hits, errors, seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from koalign.config import STAGES, RunConfig
from koalign.errors import KoalignError
from koalign.locale import Locale
from koalign.rundir import RunDir, dumps, write_atomic
from koalign.stages import Caller, StageContext, attack, export, judge, respond, seeds

log = logging.getLogger(__name__)
MODULES: dict[str, Any] = {"seeds": seeds, "attack": attack, "respond": respond, "judge": judge}


class StageFailed(KoalignError):
    """A stage produced too many bad outputs (past runtime.max_error_rate)."""


class Progress(Protocol):
    def start(self, stage: str, total: int, done: int) -> None: ...
    def update(self, stage: str, done: int, stats: dict[str, Any]) -> None: ...
    def end(self, stage: str, summary: dict[str, Any]) -> None: ...


class _NoProgress:
    def start(self, stage: str, total: int, done: int) -> None:
        pass

    def update(self, stage: str, done: int, stats: dict[str, Any]) -> None:
        pass

    def end(self, stage: str, summary: dict[str, Any]) -> None:
        pass


# Bad outputs: kept, and reproduced from the cache on a rerun. Any other error is a failed call
# (rate limit, server, timeout, connection, auth, bad request, backend failure): nothing was
# cached, so a rerun of the stage computes that record again.
OUTPUT_ERRORS = frozenset({"parse", "schema", "empty", "language"})
# Failed calls that may succeed a little later: retried within the stage, and a stage left with
# them stops the run (later stages would otherwise work on incomplete input).
TRANSIENT_ERRORS = frozenset({"rate_limit", "server", "timeout", "connection"})


def failed_calls(stage: str, record: dict[str, Any]) -> bool:
    return any(
        f.get("error", {}).get("kind") not in OUTPUT_ERRORS
        for f in fragments_of(stage, record)
        if "error" in f
    )


def transient_failures(stage: str, record: dict[str, Any]) -> bool:
    return any(
        f.get("error", {}).get("kind") in TRANSIENT_ERRORS
        for f in fragments_of(stage, record)
        if "error" in f
    )


def _bad(stage: str, record: dict[str, Any]) -> int:
    return sum("error" in f for f in fragments_of(stage, record))


def fragments_of(stage: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    if stage == "seeds":
        return record.get("calls", [])
    return MODULES[stage].fragments(record)


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
    ) -> None:
        self.config = config
        self.locale = locale
        self.rundir = RunDir(root, config, locale_digest=locale.digest)
        self.limit = limit
        self.progress = progress or _NoProgress()
        self._pool = pool
        self._own_pool = pool is None
        self.roles = config.roles.resolved()

    # ------------------------------------------------------------------ model pool
    @property
    def pool(self) -> Any:
        if self._pool is None:
            from koalign.backends.client import ModelPool

            self._pool = ModelPool(self.config.models, cache_path=self.rundir.cache_path)
        return self._pool

    def _stats(self) -> dict[str, float]:
        if self._pool is None:
            return {"calls": 0, "cache_hits": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0}
        total: dict[str, float] = {}
        for st in self._pool.stats().values():
            for k, v in st.as_dict().items():
                if k != "errors":
                    total[k] = total.get(k, 0) + v
        return total

    def context(self, caller: Caller | None) -> StageContext:
        return StageContext(
            config=self.config,
            locale=self.locale,
            caller=caller,
            roles=self.roles,
            limit=self.limit,
            extra={"reports": self.reports()},
        )

    def reports(self) -> dict[str, Any]:
        return {s: e.get("report", {}) for s, e in self.rundir.manifest["stages"].items()}

    # ------------------------------------------------------------------ running
    def run(self, stages: Sequence[str] = STAGES) -> dict[str, Any]:
        return asyncio.run(self.arun(stages))

    async def arun(self, stages: Sequence[str] = STAGES) -> dict[str, Any]:
        self.rundir.lock()
        try:
            return await self._arun(stages)
        finally:
            self.rundir.unlock()

    async def _arun(self, stages: Sequence[str]) -> dict[str, Any]:
        self.rundir.set_status("running")
        try:
            for stage in stages:
                summary = await self.run_stage(stage)
                if summary.get("transient_failures"):
                    log.warning(
                        "%s: %d records still have calls that failed (rate limit, server, "
                        "timeout, connection); later stages were not run. Rerun the same command "
                        "to retry them: finished records and answered calls are kept.",
                        stage,
                        summary["transient_failures"],
                    )
                    break
        except KoalignError:
            self.rundir.set_status("failed")
            raise
        except BaseException:
            self.rundir.set_status("interrupted")
            raise
        finally:
            if self._pool is not None and self._own_pool:
                await self._pool.aclose()
                self._pool = None
        done = all(
            self.rundir.manifest["stages"].get(s, {}).get("status") == "done" for s in STAGES
        )
        self.rundir.set_status("done" if done else "partial")
        return self.rundir.manifest

    def _inputs(self, stage: str) -> tuple[list[dict[str, Any]], str | None]:
        index = STAGES.index(stage)
        if index == 0:
            return [], None
        prev = STAGES[index - 1]
        entry = self.rundir.manifest["stages"].get(prev, {})
        path = self.rundir.root / f"{prev}.jsonl"
        if entry.get("status") not in ("done", "partial") or not path.is_file():
            raise KoalignError(
                f"stage '{prev}' has not finished in this run directory",
                where=str(self.rundir.root),
                hint=f"run `koalign {prev}` (or `koalign run`) first",
            )
        if entry.get("transient_failures"):
            raise KoalignError(
                f"stage '{prev}' has {entry['transient_failures']} records whose calls failed "
                "(rate limit, server, timeout, connection)",
                where=str(self.rundir.root),
                hint=f"rerun `koalign {prev}` (or `koalign run`) to retry them first",
            )
        data = path.read_bytes()
        records = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
        import hashlib

        return MODULES[prev].outputs(records), hashlib.sha256(data).hexdigest()

    async def run_stage(self, stage: str) -> dict[str, Any]:
        if stage not in STAGES:
            raise KoalignError(f"unknown stage '{stage}'", hint=f"stages: {', '.join(STAGES)}")
        inputs, digest = self._inputs(stage)
        key = self.rundir.stage_key(stage, digest)
        if stage == "seeds":  # the plan also depends on --limit
            key += f":{self.limit}"
        if self.rundir.is_done(stage, key):
            log.info("%s: already done for this config and input; skipped", stage)
            entry = self.rundir.manifest["stages"][stage]
            self.progress.start(stage, entry.get("records_in", 0), entry.get("records_in", 0))
            self.progress.end(stage, entry)
            return entry
        self.rundir.prepare(stage, key)
        started = time.monotonic()
        if stage == "export":
            return self._export(inputs, started)
        module = MODULES[stage]
        ctx = self.context(Caller(self.pool))
        items = module.plan(ctx, inputs) if stage != "seeds" else module.plan(ctx)
        rlog = self.rundir.log(stage)
        existing = rlog.load()
        retry = {i for i, rec in existing.items() if failed_calls(stage, rec)}
        todo = [it for it in items if it["id"] not in existing or it["id"] in retry]
        if len(todo) < len(items):
            log.info(
                "%s: resuming, %d of %d records already done (%d with failed calls retried)",
                stage,
                len(items) - len(todo),
                len(items),
                len(retry),
            )
        self.progress.start(stage, len(items), len(items) - len(todo))
        before = self._stats()
        new: dict[str, dict[str, Any]] = {}
        sem = asyncio.Semaphore(self.config.runtime.max_inflight)
        bad = 0

        async def one(item: dict[str, Any]) -> None:
            nonlocal bad
            async with sem:
                rec = await module.process(ctx, item)
            rlog.append(rec)  # a retried record is appended again; the last line wins
            old = new.get(item["id"])
            bad += _bad(stage, rec) - (_bad(stage, old) if old is not None else 0)
            new[item["id"]] = rec
            self.progress.update(
                stage, len(items) - len(todo) + len(new), self._delta(before) | {"errors": bad}
            )

        async def run_all(batch: list[dict[str, Any]]) -> None:
            tasks = [asyncio.ensure_future(one(it)) for it in batch]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

        runtime = self.config.runtime
        try:
            await run_all(todo)
            # Records whose calls failed transiently get more passes before the stage-wide
            # decisions; their answered calls come from the cache.
            for attempt in range(runtime.stage_retries):
                again = [it for it in todo if transient_failures(stage, new[it["id"]])]
                if not again:
                    break
                wait = runtime.stage_retry_wait_s * (attempt + 1)
                log.info(
                    "%s: %d records had failed calls; retry pass %d/%d in %.0f s",
                    stage,
                    len(again),
                    attempt + 1,
                    runtime.stage_retries,
                    wait,
                )
                await asyncio.sleep(wait)
                await run_all(again)
        finally:
            rlog.close()
        records = [new.get(it["id"]) or existing[it["id"]] for it in items]
        outputs_n = errors = 0
        for rec in records:
            frags = fragments_of(stage, rec)
            outputs_n += len(frags)
            errors += sum("error" in f for f in frags)
        records, report = module.finalize(ctx, records)
        rlog.rewrite(records)
        if stage == "judge":
            write_atomic(
                self.rundir.root / "judge_disagreements.jsonl",
                "".join(dumps(r) + "\n" for r in judge.disagreements(records)),
            )
        rate = errors / outputs_n if outputs_n else 0.0
        summary = self._summary(
            stage, started, before, len(items), len(module.outputs(records)), errors, report
        )
        summary["model_outputs"] = outputs_n
        summary["retried_records"] = len(retry)
        summary["failed_calls"] = sum(failed_calls(stage, r) for r in records)
        summary["transient_failures"] = sum(transient_failures(stage, r) for r in records)
        if summary["failed_calls"]:
            # usable, but the next run of the same command retries the failed calls
            summary["status"] = "partial"
        summary["error_rate"] = round(rate, 4)
        if rate > self.config.runtime.max_error_rate:
            summary["status"] = "failed"
            self.rundir.finish(stage, summary)
            self.progress.end(stage, summary)
            raise StageFailed(
                f"{errors} of {outputs_n} model outputs were unusable ({rate:.1%} > "
                f"runtime.max_error_rate {self.config.runtime.max_error_rate:.0%})",
                where=f"stage {stage}",
                hint=f"inspect the error rows in {stage}.jsonl (raw text is kept), fix the model "
                "or prompts, or raise runtime.max_error_rate",
            )
        self.rundir.finish(stage, summary)
        self.progress.end(stage, summary)
        return summary

    def _delta(self, before: dict[str, float]) -> dict[str, float]:
        now = self._stats()
        return {k: round(now.get(k, 0) - before.get(k, 0), 6) for k in now}

    def _summary(
        self,
        stage: str,
        started: float,
        before: dict[str, float],
        n_in: int,
        n_out: int,
        errors: int,
        report: dict[str, Any],
    ) -> dict[str, Any]:
        entry = self.rundir.manifest["stages"][stage]
        delta = self._delta(before)
        return {
            "status": "done",
            "records_in": n_in,
            "records_out": n_out,
            "calls": int(entry.get("calls", 0) + delta.get("calls", 0)),
            "cache_hits": int(entry.get("cache_hits", 0) + delta.get("cache_hits", 0)),
            "tokens_in": int(entry.get("tokens_in", 0) + delta.get("tokens_in", 0)),
            "tokens_out": int(entry.get("tokens_out", 0) + delta.get("tokens_out", 0)),
            "cost": round(entry.get("cost", 0) + delta.get("cost", 0), 6),
            "errors": errors,
            "seconds": round(entry.get("seconds", 0) + time.monotonic() - started, 3),
            "report": report,
        }

    def _export(self, inputs: list[dict[str, Any]], started: float) -> dict[str, Any]:
        ctx = self.context(None)
        self.progress.start("export", len(inputs), 0)
        report = export.run(ctx, inputs, self.rundir.export_dir)
        summary = self._summary(
            "export", started, self._stats(), len(inputs), report["exported"], 0, report
        )
        self.rundir.finish("export", summary)
        self.progress.end("export", summary)
        return summary
