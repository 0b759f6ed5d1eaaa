"""Benchmark 6: fault soak. 20% of requests fail, spread over every fault kind.

The deterministic benchmark double (``bench/harness.py``) injects 429 (with Retry-After), 500,
hanging requests (longer than the models' ``timeout``, set to ``--timeout`` here), malformed
JSON bodies and truncated bodies, each at ``--rate / 5``. Each of ``--runs`` runs goes to a
fresh directory; when a stage ends ``partial`` (calls that failed after all retries) the same
command is rerun, as the user would, up to ``--reruns`` times. Checks per run:

* the run completes (exit 0, every stage ``done``);
* every injected fault is accounted for: faults in the double's request log <= failed
  attempts in the run's call log (equal unless a client timeout hit a slow answer) (``cache.sqlite``: attempts - 1 for calls that succeeded after
  retries, all attempts for calls that failed), and every call that failed for good is
  counted in the manifest (``failed_calls``/``retried_records``);
* counts reconcile stage by stage (file lines == ``records_in``; the next stage's
  ``records_in`` == this stage's ``records_out``; no duplicate ids);
* nothing silently missing or changed: every final output is byte-identical to a fault-free
  reference run's (answers are a function of the request, so a retried call gets the same
  answer).

Prints one JSON line.

    python bench/soak_faults.py --runs 3 --seeds 300 --rate 0.2
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
STAGES = ("seeds", "attack", "respond", "judge")
OUTPUTS = [
    "seeds.jsonl",
    "attack.jsonl",
    "respond.jsonl",
    "judge.jsonl",
    "judge_disagreements.jsonl",
    "export/train.jsonl",
    "export/validation.jsonl",
    "export/README.md",
]


def failed_attempts(run_dir: Path) -> dict:
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        rows = db.execute("SELECT error_kind, attempts FROM calls WHERE cache_hit = 0").fetchall()
    retried = sum(a - 1 for e, a in rows if e is None)
    failed = sum(a for e, a in rows if e is not None)
    return {
        "paid_calls": len(rows),
        "failed_attempts": retried + failed,
        "calls_failed_for_good": sum(e is not None for e, _ in rows),
        "failed_kinds": dict(Counter(e for e, _ in rows if e is not None)),
    }


def check_counts(run_dir: Path) -> list[str]:
    m = harness.manifest(run_dir)
    problems = []
    prev_out = None
    for stage in STAGES:
        e = m["stages"].get(stage, {})
        lines = (run_dir / f"{stage}.jsonl").read_text(encoding="utf-8").splitlines()
        ids = [json.loads(x)["id"] for x in lines]
        if e.get("status") != "done":
            problems.append(f"{stage}: status {e.get('status')}")
        if len(ids) != len(set(ids)):
            problems.append(f"{stage}: duplicate ids")
        if len(lines) != e.get("records_in"):
            problems.append(f"{stage}: {len(lines)} lines, records_in {e.get('records_in')}")
        if prev_out is not None and e.get("records_in") != prev_out:
            problems.append(f"{stage}: records_in {e.get('records_in')} != previous out {prev_out}")
        prev_out = e.get("records_out")
    exp = m["stages"].get("export", {})
    if exp.get("records_in") != prev_out:
        problems.append(f"export: records_in {exp.get('records_in')} != judge out {prev_out}")
    return problems


def soak(
    work: Path,
    *,
    runs: int,
    seeds: int,
    rate: float = 0.2,
    reruns: int = 3,
    cap: int = 64,
    latency_mean: float = 0.05,
    timeout: float = 1.0,
    favour: float = 0.8,
    config: Path = HERE / "pipeline.yaml",
) -> dict:
    import yaml

    names = list(yaml.safe_load(config.read_text(encoding="utf-8"))["models"])
    fast = {f"models.{n}.timeout": timeout for n in names}
    # short backoff keeps the soak quick; Retry-After (0.2 s here) is honoured on top
    fast |= {f"models.{n}.retry_backoff": 0.05 for n in names}
    each = rate / 5
    # one port for every double: the config (and so the dataset card) names the same URL
    common = dict(cap=cap, latency_mean=latency_mean, favour=favour, port=harness.free_port())
    # fault-free reference
    proc, url = harness.start_double(**common)
    try:
        cfg = harness.write_config(config, work / "ref.yaml", url, **fast)
        subprocess.run(
            harness.koalign_cmd(cfg, work / "ref", "--limit", str(seeds)),
            env=harness.env(),
            check=True,
            capture_output=True,
        )
    finally:
        harness.stop(proc)
    results = []
    for i in range(runs):
        log_path = work / f"requests{i}.jsonl"
        proc, url = harness.start_double(
            fault_429=each,
            fault_500=each,
            fault_timeout=each,
            fault_malformed=each,
            fault_truncated=each,
            retry_after=0.2,
            timeout_hang=timeout * 3,
            seed=i + 1,
            record=log_path,
            **common,
        )
        run_dir = work / f"run{i}"
        invocations = []
        try:
            cfg = harness.write_config(config, work / f"faults{i}.yaml", url, **fast)
            for _ in range(1 + reruns):
                started = time.perf_counter()
                done = subprocess.run(
                    harness.koalign_cmd(cfg, run_dir, "--limit", str(seeds)),
                    env=harness.env(),
                    capture_output=True,
                    text=True,
                )
                m = harness.manifest(run_dir)
                invocations.append(
                    {
                        "rc": done.returncode,
                        "seconds": round(time.perf_counter() - started, 2),
                        "failed_calls": {
                            s: m["stages"].get(s, {}).get("failed_calls") for s in STAGES
                        },
                        "retried_records": {
                            s: m["stages"].get(s, {}).get("retried_records") for s in STAGES
                        },
                    }
                )
                if done.returncode == 0 and all(
                    m["stages"].get(s, {}).get("status") == "done" for s in STAGES
                ):
                    break
            time.sleep(1.0)
        finally:
            harness.stop(proc)
        log = harness.read_log(log_path)
        faults = Counter(r["fault"] for r in log if r.get("fault"))
        acc = failed_attempts(run_dir)
        problems = check_counts(run_dir)
        identical = {
            name: (run_dir / name).is_file()
            and (run_dir / name).read_bytes() == (work / "ref" / name).read_bytes()
            for name in OUTPUTS
            if (work / "ref" / name).is_file()
        }
        results.append(
            {
                "run": i,
                "invocations": invocations,
                "completed": invocations[-1]["rc"] == 0 and not problems,
                "requests": len(log),
                "faults_injected": sum(faults.values()),
                "faults_by_kind": dict(faults),
                **acc,
                # every injected fault is a failed attempt in the call log; a client timeout on a
                # slow (queued) answer is a failed attempt without a fault, hence >=
                "faults_accounted": acc["failed_attempts"] >= sum(faults.values()),
                "failed_attempts_beyond_faults": acc["failed_attempts"] - sum(faults.values()),
                "count_problems": problems,
                "identical_to_fault_free": all(identical.values()),
                "different_files": [n for n, ok in identical.items() if not ok],
            }
        )
    return {
        "runs": results,
        "all_completed": all(r["completed"] for r in results),
        "all_faults_accounted": all(r["faults_accounted"] for r in results),
        "all_identical": all(r["identical_to_fault_free"] for r in results),
        "faults_injected_total": sum(r["faults_injected"] for r in results),
        "fault_share": round(
            sum(r["faults_injected"] for r in results)
            / max(1, sum(r["requests"] for r in results)),
            4,
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--rate", type=float, default=0.2)
    p.add_argument("--reruns", type=int, default=3)
    p.add_argument("--cap", type=int, default=64)
    p.add_argument("--latency-mean", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    out: dict = {"bench": "fault_soak", "runs": args.runs, "seeds": args.seeds, "rate": args.rate}
    out["machine_start"] = harness.machine()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out.update(
            soak(
                work,
                runs=args.runs,
                seeds=args.seeds,
                rate=args.rate,
                reruns=args.reruns,
                cap=args.cap,
                latency_mean=args.latency_mean,
                timeout=args.timeout,
            )
        )
    out["machine_end"] = harness.machine()
    out["bar_met"] = out["all_completed"] and out["all_faults_accounted"] and out["all_identical"]
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
