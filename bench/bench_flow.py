"""Pipeline engine benchmark: ``koalign run`` against its ideal, and against a plain loop.

One invocation, for one fixed latency L:

1. starts the deterministic double (``bench/harness.py``) on loopback with a fixed latency L
   (lognormal sigma 0) and no server-side cap (each model's cap, 64 by default, is enforced by
   the client, as a real per-model server limit would be);
2. runs ``koalign run bench/pipeline.yaml --limit SEEDS`` in a subprocess (fresh run directory,
   fresh cache) and measures its wall time, its CPU time (user + sys of that process, start-up
   and imports included, from ``wait4``), its peak RSS, and the requests the double served;
3. rebuilds every record's call chain from the run's stage files (which model, which calls run
   in parallel, which follow one another) and simulates the same calls with infinitely fast
   clients, fixed latency L and the per-model caps: the ideal wall time with records flowing
   (a record starts when the record it comes from finishes; seeds is a barrier: near-duplicate
   removal needs every candidate) and, beside it, the ideal with every stage a barrier. Each
   model serves its queue first come, first served. koalign serves a model's queue by stage
   (an earlier stage's calls first, see ``koalign.backends.limits.call_priority``), which can
   beat that ideal; the ideal with the same stage priority is reported beside it;
4. replays the same calls with a plain asyncio + openai loop (stages one after another, each
   record's calls in the same order and parallelism, a semaphore of the same cap per model,
   ``AsyncOpenAI.chat.completions.create``) against a fresh double; its request bodies are the
   bodies koalign sent, assigned per model.

Prints one JSON line. At a few dozen seeds the efficiency is mostly start-up time (about a
second before the first request); the figures in docs/benchmarks.md use 400. Example::

    python bench/bench_flow.py --seeds 400 --latency 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness

HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- call trees
@dataclass(frozen=True)
class C:
    model: str


@dataclass(frozen=True)
class Seq:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Par:
    parts: tuple[Any, ...]


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


def _turn(t: dict[str, Any]) -> Seq:
    parts: list[Any] = [C(t["answer"]["model"])]
    if t.get("harm"):
        parts.append(C(t["harm"]["model"]))
    return Seq(tuple(parts))


def attack_tree(rec: dict[str, Any]) -> Seq:
    if rec["seed"]["kind"] == "benign":
        parts: list[Any] = [Par(tuple(_turn(t) for t in rec.get("answers", {}).values()))]
        if rec.get("synthetic_refusal"):
            parts.append(C(rec["synthetic_refusal"]["model"]))
        return Seq(tuple(parts))
    parts = []
    for a in rec.get("attempts", []):
        parts.append(C(a["rewrite"]["model"]))
        if a.get("answers"):
            parts.append(Par(tuple(_turn(t) for t in a["answers"].values())))
    return Seq(tuple(parts))


def respond_tree(rec: dict[str, Any]) -> Seq:
    parts: list[Any] = [C(rec["query"]["model"])] if rec.get("query") else []
    cands = []
    for c in rec.get("candidates", []):
        inner = [C(c["answer"]["model"])]
        if c.get("judge"):
            inner.append(C(c["judge"]["model"]))
        cands.append(Seq(tuple(inner)))
    if cands:
        parts.append(Par(tuple(cands)))
    return Seq(tuple(parts))


def judge_tree(rec: dict[str, Any]) -> Par:
    return Par(tuple(C(v["model"]) for v in rec.get("verdicts", {}).values()))


@dataclass
class Chains:
    """Every record's call tree and what follows it."""

    seeds: list[Any]
    attack: list[tuple[Any, list[str]]]  # (tree, case ids)
    respond: dict[str, tuple[Any, str | None]]  # case id -> (tree, triplet id if passed on)
    judge: dict[str, Any]  # triplet id -> tree

    def calls(self) -> int:
        def n(t: Any) -> int:
            return 1 if isinstance(t, C) else sum(n(p) for p in t.parts)

        return (
            sum(n(t) for t in self.seeds)
            + sum(n(t) for t, _ in self.attack)
            + sum(n(t) for t, _ in self.respond.values())
            + sum(n(t) for t in self.judge.values())
        )


def chains(run_dir: Path) -> Chains:
    seeds = [
        Seq((C(r["call"]["model"]),)) for r in _lines(run_dir / "seeds.jsonl") if r.get("call")
    ]
    attack = [
        (attack_tree(r), [c["id"] for c in r.get("cases", [])])
        for r in _lines(run_dir / "attack.jsonl")
    ]
    respond = {
        r["case"]["id"]: (respond_tree(r), r["case"]["id"] if r.get("chosen") else None)
        for r in _lines(run_dir / "respond.jsonl")
    }
    judge = {r["triplet"]["id"]: judge_tree(r) for r in _lines(run_dir / "judge.jsonl")}
    return Chains(seeds, attack, respond, judge)


def timeline(run_dir: Path, t0: float, t1: float) -> dict[str, float]:
    """Where koalign's wall time goes outside the model calls, from the cache's call log:
    seconds from process start to the first request, the span from the first request to the
    last answer, and seconds from the last answer to process exit."""
    con = sqlite3.connect(run_dir / "cache.sqlite")
    try:
        first, last = con.execute("SELECT min(ts - latency_s), max(ts) FROM calls").fetchone()
    finally:
        con.close()
    return {
        "start_to_first_request_s": round(first - t0, 3),
        "first_request_to_last_answer_s": round(last - first, 3),
        "last_answer_to_exit_s": round(t1 - last, 3),
    }


# ----------------------------------------------------------------------------- simulation
class Sim:
    """Discrete-event simulation: per-model queues with a cap, fixed latency. A model serves
    its queue by ``(priority, arrival)``; with every priority 0 that is first come, first
    served."""

    def __init__(self, cap: int, latency: float) -> None:
        self.cap, self.latency = cap, latency
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._busy: dict[str, int] = defaultdict(int)
        self._queue: dict[str, list[tuple[int, int, Callable[[float], None]]]] = defaultdict(list)

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def call(self, model: str, done: Callable[[float], None], prio: int = 0) -> None:
        if self._busy[model] < self.cap:
            self._busy[model] += 1
            self.at(self.now + self.latency, lambda: self._finish(model, done))
        else:
            heapq.heappush(self._queue[model], (prio, next(self._seq), done))

    def _finish(self, model: str, done: Callable[[float], None]) -> None:
        self._busy[model] -= 1
        if self._queue[model]:
            nxt = heapq.heappop(self._queue[model])[2]
            self._busy[model] += 1
            self.at(self.now + self.latency, lambda: self._finish(model, nxt))
        done(self.now)

    def run_tree(self, tree: Any, done: Callable[[float], None], prio: int = 0) -> None:
        if isinstance(tree, C):
            self.call(tree.model, done, prio)
        elif isinstance(tree, Seq):
            parts = list(tree.parts)

            def step(i: int) -> None:
                if i == len(parts):
                    done(self.now)
                else:
                    self.run_tree(parts[i], lambda _t: step(i + 1), prio)

            step(0)
        else:
            left = [len(tree.parts)]
            if not left[0]:
                done(self.now)
                return

            def one(_t: float) -> None:
                left[0] -= 1
                if left[0] == 0:
                    done(self.now)

            for p in tree.parts:
                self.run_tree(p, one, prio)

    def loop(self) -> float:
        while self._events:
            t, _, fn = heapq.heappop(self._events)
            self.now = t
            fn()
        return self.now


def ideal(
    ch: Chains, cap: int, latency: float, *, barriers: bool, stage_priority: bool = False
) -> float:
    """Ideal wall time of the chains (see the module docstring); with ``stage_priority`` each
    model serves the calls of earlier stages first, as koalign does."""
    sim = Sim(cap, latency)
    prio = {"seeds": 0, "attack": 1, "respond": 2, "judge": 3}
    if not stage_priority:
        prio = dict.fromkeys(prio, 0)
    pending = [len(ch.seeds)]
    later: dict[str, list[Callable[[], None]]] = {"respond": [], "judge": []}
    counts = {"attack": len(ch.attack), "respond": 0}

    def judge(tid: str) -> None:
        tree = ch.judge.get(tid)
        if tree is not None:
            sim.run_tree(tree, lambda _t: None, prio["judge"])

    def respond(cid: str) -> None:
        tree, tid = ch.respond.get(cid, (None, None))
        if tree is None:
            return

        def after(_t: float) -> None:
            if tid is not None:
                if barriers:
                    later["judge"].append(lambda: judge(tid))
                else:
                    judge(tid)
            counts["respond"] -= 1
            if barriers and counts["respond"] == 0 and counts["attack"] == 0:
                for fn in later["judge"]:
                    fn()

        counts["respond"] += 1
        sim.run_tree(tree, after, prio["respond"])

    def attack_all() -> None:
        for tree, cases in ch.attack:

            def after(_t: float, cases: list[str] = cases) -> None:
                counts["attack"] -= 1
                for cid in cases:
                    if barriers:
                        later["respond"].append(lambda cid=cid: respond(cid))
                    else:
                        respond(cid)
                if barriers and counts["attack"] == 0:
                    fns, later["respond"] = later["respond"], []
                    for fn in fns:
                        fn()
                    if counts["respond"] == 0:
                        for fn in later["judge"]:
                            fn()

            sim.run_tree(tree, after, prio["attack"])

    def seed_done(_t: float) -> None:
        pending[0] -= 1
        if pending[0] == 0:
            attack_all()

    if not ch.seeds:
        attack_all()
    for tree in ch.seeds:
        sim.run_tree(tree, seed_done, prio["seeds"])
    return sim.loop()


# ----------------------------------------------------------------------------- plain loop
async def plain_loop(
    ch: Chains, bodies: dict[str, list[dict[str, Any]]], base_url: str, cap: int
) -> dict[str, Any]:
    """The same calls with a plain asyncio + openai loop, stages one after another."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=3, timeout=120)
    sems: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(cap))
    cursor: dict[str, itertools.cycle] = {m: itertools.cycle(b) for m, b in bodies.items()}
    errors = 0

    async def run(tree: Any) -> None:
        nonlocal errors
        if isinstance(tree, C):
            body = dict(next(cursor[tree.model]))
            async with sems[tree.model]:
                try:
                    await client.chat.completions.create(**body)
                except Exception:
                    errors += 1
        elif isinstance(tree, Seq):
            for p in tree.parts:
                await run(p)
        else:
            await asyncio.gather(*(run(p) for p in tree.parts))

    start = time.perf_counter()
    await asyncio.gather(*(run(t) for t in ch.seeds))
    await asyncio.gather(*(run(t) for t, _ in ch.attack))
    await asyncio.gather(*(run(t) for t, _ in ch.respond.values()))
    await asyncio.gather(*(run(t) for t in ch.judge.values()))
    wall = time.perf_counter() - start
    await client.close()
    return {"wall_s": round(wall, 3), "errors": errors}


def plain_loop_process(run_dir: Path, bodies_path: Path, base_url: str, cap: int) -> dict[str, Any]:
    """Run the plain loop in its own process (its own CPU, measured with wait4)."""
    code = (
        "import asyncio, json, sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(HERE)!r}); import bench_flow as b; "
        f"ch = b.chains(Path({str(run_dir)!r})); bodies = json.load(open({str(bodies_path)!r})); "
        f"print(json.dumps(asyncio.run(b.plain_loop(ch, bodies, {base_url!r}, {cap}))))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=harness.env()
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, _, ru = os.wait4(proc.pid, 0)
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
    return result


# ----------------------------------------------------------------------------- main
def served(base_url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=30) as r:
        return int(json.loads(r.read())["requests"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=400, help="koalign run --limit (seed candidates)")
    p.add_argument("--latency", type=float, default=0.2, help="the double's fixed latency, seconds")
    p.add_argument(
        "--cap",
        type=int,
        default=64,
        help="each model's max_concurrency in koalign's config (the double has no cap of its own)",
    )
    p.add_argument(
        "--favour",
        type=float,
        default=0.8,
        help="chance that a JSON answer keeps its record going (see bench/harness.py)",
    )
    p.add_argument(
        "--workdir", type=Path, default=None, help="where the run goes (default: a temp folder)"
    )
    p.add_argument("--no-plain", action="store_true", help="skip the plain-loop replay")
    p.add_argument(
        "--per-type",
        type=int,
        default=None,
        help="seeds.per_type (the config has 40: about 2,200 candidates; raise it for more)",
    )
    p.add_argument(
        "--event-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="koalign's runtime.event_loop (auto: uvloop where installed)",
    )
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_flow_"))
    work.mkdir(parents=True, exist_ok=True)
    if (work / "run").exists():
        raise SystemExit(
            f"{work / 'run'} exists: give a fresh --workdir (the run must start empty)"
        )
    bodies_path = work / "bodies.jsonl"
    bodies_path.unlink(missing_ok=True)
    opts = {
        "cap": 100000,
        "latency_mean": args.latency,
        "latency_sigma": 0.0,
        "favour": args.favour,
    }
    proc, base_url = harness.start_double(**opts, bodies=str(bodies_path))
    run_dir = work / "run"
    try:
        config = harness.write_config(
            HERE / "pipeline.yaml",
            work / "pipeline.yaml",
            base_url,
            **{
                f"models.{m}.max_concurrency": args.cap
                for m in ("gen", "target-a", "target-b", "judge", "resp-a", "resp-b", "resp-c")
            },
            **({"seeds.per_type": args.per_type} if args.per_type else {}),
            **{"runtime.event_loop": args.event_loop},
        )
        before = served(base_url)
        t0 = time.perf_counter()
        t0_epoch = time.time()
        kp = subprocess.Popen(
            harness.koalign_cmd(config, run_dir, "--limit", str(args.seeds)),
            env=harness.env(),
            stdout=subprocess.DEVNULL,
            stderr=open(work / "koalign.stderr", "w"),  # noqa: SIM115
        )
        _, status, ru = os.wait4(kp.pid, 0)
        wall = time.perf_counter() - t0
        t1_epoch = time.time()
        requests = served(base_url) - before
    finally:
        harness.stop(proc)
    if status != 0:
        raise SystemExit(f"koalign run failed: see {work / 'koalign.stderr'}")
    cpu = ru.ru_utime + ru.ru_stime
    ch = chains(run_dir)
    flow = ideal(ch, args.cap, args.latency, barriers=False)
    barrier = ideal(ch, args.cap, args.latency, barriers=True)
    flow_prio = ideal(ch, args.cap, args.latency, barriers=False, stage_priority=True)
    out: dict[str, Any] = {
        "bench": "flow",
        "seeds": args.seeds,
        "latency_s": args.latency,
        "cap_per_model": args.cap,
        "event_loop": args.event_loop,
        "requests_served": requests,
        "calls_in_records": ch.calls(),
        "koalign_wall_s": round(wall, 3),
        "koalign_cpu_s": round(cpu, 3),
        "koalign_user_s": round(ru.ru_utime, 3),
        "koalign_sys_s": round(ru.ru_stime, 3),
        "cpu_ms_per_request": round(1000 * cpu / max(requests, 1), 3),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "ideal_flow_s": round(flow, 3),
        "ideal_barriers_s": round(barrier, 3),
        "ideal_flow_stage_priority_s": round(flow_prio, 3),
        "efficiency_vs_flow_ideal": round(flow / wall, 4),
        "efficiency_vs_barrier_ideal": round(barrier / wall, 4),
        "efficiency_vs_stage_priority_ideal": round(flow_prio / wall, 4),
        **timeline(run_dir, t0_epoch, t1_epoch),
        "machine": harness.machine(),
    }
    if not args.no_plain:
        bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in bodies_path.read_text(encoding="utf-8").splitlines():
            b = json.loads(line)
            bodies[b["model"]].append(b)
        (work / "bodies.json").write_text(json.dumps(bodies), encoding="utf-8")
        proc, base_url = harness.start_double(**opts)
        try:
            plain = plain_loop_process(run_dir, work / "bodies.json", base_url, args.cap)
        finally:
            harness.stop(proc)
        out["plain_loop"] = plain
        out["plain_over_koalign"] = round(plain["wall_s"] / wall, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
