"""Benchmark 5: crash soak. Runs killed with SIGKILL at a random moment, then resumed.

One deterministic benchmark double (``bench/harness.py``, request log on) serves everything.
First an uninterrupted reference run; then ``--runs`` runs, each in a fresh directory: start
``koalign run``, SIGKILL it after a random delay in (0, 0.7 x reference wall time: a run
can be faster than the reference, and a finished run cannot be killed), rerun the same
command to completion. Checks per run:

* every final output (stage files, disagreements, export files, dataset card) is
  byte-identical to the reference run's;
* model calls beyond the reference: from the double's request log, per (model, messages)
  key, requests of the killed and the resumed process minus the reference's. Extras are split
  into repaid calls (a call whose answer the killed process had stored, paid again: a key
  logged twice as paid in the run's call log, ``cache.sqlite``; the bar is 0) and requests in
  flight at the kill (their answer never reached the cache: unavoidable, the server did work the
  process never saw).

Prints one JSON line.

    python bench/soak_crash.py --runs 20 --seeds 300
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
OUTPUTS = [
    "seeds.jsonl",
    "attack.jsonl",
    "respond.jsonl",
    "judge.jsonl",
    "judge_disagreements.jsonl",
    "export/train.jsonl",
    "export/validation.jsonl",
    "export/standard/train.jsonl",
    "export/standard/validation.jsonl",
    "export/README.md",
]


def key(r: dict) -> tuple[str, str]:
    return (r.get("model") or "", r["messages_sha"])


def window(log: list[dict], start: float, end: float) -> list[dict]:
    return [r for r in log if start <= r["t"] <= end]


def paid_twice(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        (n,) = db.execute(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM calls "
            "WHERE cache_hit = 0 AND error_kind IS NULL GROUP BY key)"
        ).fetchone()
    return int(n)


def soak(
    work: Path,
    *,
    runs: int,
    seeds: int,
    cap: int = 64,
    latency_mean: float = 0.05,
    latency_sigma: float = 0.25,
    favour: float = 0.8,
    seed: int = 0,
    config: Path = HERE / "pipeline.yaml",
    kill_window: float = 0.7,
    max_inflight: int | None = None,
) -> dict:
    rng = random.Random(seed)
    log_path = work / "requests.jsonl"
    proc, url = harness.start_double(
        cap=cap,
        latency_mean=latency_mean,
        latency_sigma=latency_sigma,
        favour=favour,
        record=log_path,
    )
    results = []
    try:
        extra = {"runtime.max_inflight": max_inflight} if max_inflight else {}
        cfg = harness.write_config(config, work / "config.yaml", url, **extra)
        ref = work / "ref"
        t0 = time.time()
        subprocess.run(
            harness.koalign_cmd(cfg, ref, "--limit", str(seeds)),
            env=harness.env(),
            check=True,
            capture_output=True,
        )
        t1 = time.time()
        time.sleep(0.2)
        ref_wall = t1 - t0
        ref_counts = Counter(key(r) for r in window(harness.read_log(log_path), t0, t1))
        for i in range(runs):
            run_dir = work / f"run{i}"
            cmd = harness.koalign_cmd(cfg, run_dir, "--limit", str(seeds))
            delay = rng.uniform(0.05, ref_wall * kill_window)
            start = time.time()
            p = subprocess.Popen(
                cmd, env=harness.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                p.wait(delay)
                killed = False  # finished before the kill came
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                killed = True
            kill_t = time.time()
            manifest = run_dir / "manifest.json"
            killed_in = None
            if manifest.is_file():
                try:
                    stages = harness.manifest(run_dir)["stages"]
                    killed_in = next(
                        (s for s, e in stages.items() if e.get("status") == "running"), None
                    )
                except (json.JSONDecodeError, KeyError):
                    killed_in = "unreadable manifest"
            resumed = subprocess.run(cmd, env=harness.env(), capture_output=True, text=True)
            end = time.time()
            time.sleep(0.2)
            log = window(harness.read_log(log_path), start, end)
            counts = Counter(key(r) for r in log)
            extra = counts - ref_counts
            missing = ref_counts - counts
            # copies sent before the kill and answered by the server after it (informational:
            # an answer ready just before the kill may not have reached the cache either)
            answered_after_kill = 0
            for k, n in extra.items():
                cut = sum(r["t"] < kill_t <= r["done_t"] for r in log if key(r) == k)
                answered_after_kill += min(n, cut)
            repaid = paid_twice(run_dir)
            extra_total = sum(extra.values())
            identical = {
                name: (run_dir / name).is_file()
                and (run_dir / name).read_bytes() == (ref / name).read_bytes()
                for name in OUTPUTS
                if (ref / name).is_file()
            }
            results.append(
                {
                    "run": i,
                    "kill_after_s": round(delay, 2),
                    "killed": killed,
                    "killed_in": killed_in,
                    "resume_rc": resumed.returncode,
                    "identical": all(identical.values()),
                    "different_files": [n for n, ok in identical.items() if not ok],
                    "requests": sum(counts.values()),
                    "extra_requests": extra_total,
                    "extra_answered_after_kill": answered_after_kill,
                    "extra_in_flight_at_kill": extra_total - repaid,
                    "extra_repaid": repaid,
                    "missing_requests": sum(missing.values()),
                }
            )
    finally:
        harness.stop(proc)
    return {
        "reference_wall_s": round(ref_wall, 2),
        "reference_requests": sum(ref_counts.values()),
        "runs": results,
        "all_identical": all(r["identical"] for r in results),
        "all_resumed": all(r["resume_rc"] == 0 for r in results),
        "killed_runs": sum(r["killed"] for r in results),
        "extra_requests_total": sum(r["extra_requests"] for r in results),
        "extra_in_flight_at_kill_total": sum(r["extra_in_flight_at_kill"] for r in results),
        "extra_repaid_total": sum(r["extra_repaid"] for r in results),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--cap", type=int, default=64)
    p.add_argument("--latency-mean", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        help="runtime.max_inflight for the runs (default: the config's 512); a small value makes "
        "the barriers' outputs wait for the next stage, so kills also land while they drain",
    )
    args = p.parse_args()
    out: dict = {"bench": "crash_soak", "runs": args.runs, "seeds": args.seeds}
    out["max_inflight"] = args.max_inflight
    out["latency_mean_s"], out["cap"] = args.latency_mean, args.cap
    out["machine_start"] = harness.machine()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out.update(
            soak(
                work,
                runs=args.runs,
                seeds=args.seeds,
                cap=args.cap,
                latency_mean=args.latency_mean,
                seed=args.seed,
                max_inflight=args.max_inflight,
            )
        )
    out["machine_end"] = harness.machine()
    out["bar_identical_met"] = out["all_identical"] and out["all_resumed"]
    out["bar_no_repaid_calls_met"] = out["extra_repaid_total"] == 0
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
