"""Benchmarks 1 and 2: orchestration efficiency of the full pipeline, and the plain-loop floor.

1. Runs ``koalign run bench/pipeline.yaml --limit SEEDS`` (a subprocess, fresh run directory)
   against the deterministic benchmark double (``bench/harness.py``) with a concurrency cap C and
   lognormal latency of mean L. Efficiency = achieved requests/s / (C / L); wall / ideal, where
   ideal = requests x L / C (nominal) and sum of served latencies / C (measured).
2. Replays the identical request bodies (recorded by the double) with a plain ``asyncio`` +
   ``openai`` loop against a fresh double with the same settings: no stages, no cache, no files,
   every request known up front (the floor). distilabel 1.5 runs the same three-step shape when
   ``--distilabel-python`` names an interpreter that has it (see ``bench/distilabel_shape.py``).

Prints one JSON line.

    python bench/bench_pipeline.py --seeds 2000 --cap 64 --latency-mean 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent


async def replay(base_url: str, bodies: list[dict], inflight: int, pool: int = 0) -> dict:
    """Send every body with at most ``inflight`` in flight. ``pool`` > 0 spreads connections
    over several clients of ``pool`` connections each (an httpx pool scans all its connections
    per request; koalign's openai backend does the same with pools of 16)."""
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    http = sys.modules[DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0]]
    per = pool or inflight
    clients = [
        AsyncOpenAI(
            base_url=base_url,
            api_key="bench",
            max_retries=3,
            timeout=60,
            http_client=DefaultAsyncHttpxClient(
                limits=http.Limits(max_connections=per, max_keepalive_connections=per)
            ),
        )
        for _ in range(-(-inflight // per))
    ]
    busy = [0] * len(clients)
    sem = asyncio.Semaphore(inflight)
    errors = 0

    async def one(body: dict) -> None:
        nonlocal errors
        async with sem:
            i = min(range(len(clients)), key=busy.__getitem__)
            busy[i] += 1
            try:
                await clients[i].chat.completions.create(**body)
            except Exception:  # counted, the floor does not retry beyond the SDK's retries
                errors += 1
            finally:
                busy[i] -= 1

    for c in clients:  # connect once
        await c.chat.completions.create(**bodies[0])
    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    wall = time.perf_counter() - start
    for c in clients:
        await c.close()
    return {"wall_s": wall, "errors": errors, "clients": len(clients)}


def plain_loop(work: Path, args: argparse.Namespace, dopts: dict, pool: int) -> dict:
    bodies = [
        json.loads(x) for x in (work / "bodies.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    log = work / f"replay_requests_pool{pool}.jsonl"
    log.unlink(missing_ok=True)
    proc, url = harness.start_double(record=log, **dopts)
    try:
        res = asyncio.run(replay(url, bodies, args.replay_inflight, pool))
    finally:
        harness.stop(proc)
    rlog = harness.read_log(log)[res["clients"] :]  # without the connect requests
    out = efficiency(len(rlog), res["wall_s"], rlog, args.cap, args.latency_mean)
    out.update(errors=res["errors"], clients=res["clients"], inflight=args.replay_inflight)
    return out


def efficiency(n: int, wall: float, log: list[dict], cap: int, mean: float) -> dict:
    served = [r["latency_s"] for r in log if r.get("status") == 200]
    ideal = n * mean / cap
    ideal_measured = sum(served) / cap
    return {
        "requests": n,
        "wall_s": round(wall, 2),
        "achieved_rps": round(n / wall, 2),
        "efficiency": round((n / wall) / (cap / mean), 4),
        "ideal_s": round(ideal, 2),
        "ideal_measured_s": round(ideal_measured, 2),
        "wall_over_ideal": round(wall / ideal, 4),
        "wall_over_ideal_measured": round(wall / ideal_measured, 4),
        "server_mean_latency_s": round(sum(served) / len(served), 4) if served else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=2000)
    p.add_argument("--cap", type=int, default=64)
    p.add_argument("--latency-mean", type=float, default=0.5)
    p.add_argument("--latency-sigma", type=float, default=0.25)
    p.add_argument("--favour", type=float, default=0.8)
    p.add_argument("--config", type=Path, default=HERE / "pipeline.yaml")
    p.add_argument("--replay-inflight", type=int, default=128)
    p.add_argument("--distilabel-python", type=str, default=None)
    p.add_argument("--workdir", type=Path, default=None, help="keep files here (default: temp)")
    p.add_argument(
        "--replay-only",
        action="store_true",
        help="skip the koalign run: replay --workdir's recorded bodies (and run distilabel)",
    )
    p.add_argument("--skip-replay", action="store_true", help="only the koalign run")
    args = p.parse_args()
    out: dict = {"bench": "pipeline_efficiency", "seeds": args.seeds, "cap": args.cap}
    out["latency_mean_s"], out["latency_sigma"] = args.latency_mean, args.latency_sigma
    out["machine_start"] = harness.machine()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dopts = dict(cap=args.cap, latency_mean=args.latency_mean, favour=args.favour)
        dopts["latency_sigma"] = args.latency_sigma
        if args.replay_only:
            out["bench"] = "pipeline_floor"
            out["plain_loop"] = plain_loop(work, args, dopts, 0)
            out["plain_loop_pooled"] = plain_loop(work, args, dopts, 16)
            out["distilabel"] = distilabel(args, work, work / "run", dopts)
            out["machine_end"] = harness.machine()
            print(json.dumps(out, ensure_ascii=False))
            return
        log_path, bodies_path = work / "koalign_requests.jsonl", work / "bodies.jsonl"
        proc, url = harness.start_double(record=log_path, bodies=bodies_path, **dopts)
        try:
            cfg = harness.write_config(args.config, work / "config.yaml", url)
            run_dir = work / "run"
            cmd = harness.koalign_cmd(cfg, run_dir, "--limit", str(args.seeds))
            start = time.perf_counter()
            done = subprocess.run(cmd, env=harness.env(), capture_output=True, text=True)
            wall = time.perf_counter() - start
        finally:
            harness.stop(proc)
        if done.returncode != 0:
            out["error"] = done.stderr[-2000:]
            print(json.dumps(out, ensure_ascii=False))
            sys.exit(1)
        log = harness.read_log(log_path)
        m = harness.manifest(run_dir)
        stage_s = sum(m["stages"][s].get("seconds", 0) for s in m["stages"])
        out["koalign"] = efficiency(len(log), wall, log, args.cap, args.latency_mean)
        out["koalign"]["stage_seconds_sum"] = round(stage_s, 2)
        out["koalign"]["efficiency_in_stages"] = round(
            (len(log) / stage_s) / (args.cap / args.latency_mean), 4
        )
        out["koalign"]["per_stage"] = {
            s: {"calls": e.get("calls"), "seconds": e.get("seconds")}
            for s, e in m["stages"].items()
        }
        out["koalign"]["exported"] = m["stages"]["export"].get("records_out")

        if args.skip_replay:
            out["machine_end"] = harness.machine()
            out["bar_efficiency_0_9_met"] = out["koalign"]["efficiency"] >= 0.9
            print(json.dumps(out, ensure_ascii=False))
            return
        out["plain_loop"] = plain_loop(work, args, dopts, 0)
        out["plain_loop_pooled"] = plain_loop(work, args, dopts, 16)
        floor = min(out["plain_loop"]["wall_s"], out["plain_loop_pooled"]["wall_s"])
        out["koalign_wall_over_plain"] = round(wall / floor, 4)
        out["koalign_stages_over_plain"] = round(stage_s / floor, 4)
        out["distilabel"] = distilabel(args, work, run_dir, dopts)
    out["machine_end"] = harness.machine()
    out["bar_efficiency_0_9_met"] = out["koalign"]["efficiency"] >= 0.9
    print(json.dumps(out, ensure_ascii=False))


def distilabel(args: argparse.Namespace, work: Path, run_dir: Path, dopts: dict) -> dict:
    if not args.distilabel_python:
        return {"status": "not run (no --distilabel-python)"}
    script = HERE / "distilabel_shape.py"
    seeds = work / "seed_prompts.jsonl"
    with open(seeds, "w", encoding="utf-8") as fh:
        for line in (run_dir / "seeds.jsonl").read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec.get("kept"):
                fh.write(json.dumps({"instruction": rec["prompt"]}, ensure_ascii=False) + "\n")
    log3 = work / "distilabel_requests.jsonl"
    proc, url = harness.start_double(record=log3, **dopts)
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [args.distilabel_python, str(script), "--base-url", url, "--seeds", str(seeds)],
            capture_output=True,
            text=True,
            cwd=work,
        )
        wall = time.perf_counter() - start
    finally:
        harness.stop(proc)
    if done.returncode != 0:
        return {"status": "failed", "stderr": done.stderr[-1500:]}
    dlog = harness.read_log(log3)
    res = efficiency(len(dlog), wall, dlog, args.cap, args.latency_mean)
    res["status"] = "ok"
    res["result"] = json.loads(done.stdout.strip().splitlines()[-1])
    return res


if __name__ == "__main__":
    main()
