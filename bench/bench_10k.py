"""Benchmarks 3 and 7: a 10,000-triplet run's peak memory, then its warm reruns.

Runs ``koalign run bench/pipeline_10k.yaml`` (one target, one responder, one filter judge,
~12,700 seeds) against the deterministic benchmark double (``bench/harness.py``) with a short
latency, so the run is bound by koalign's own work. Measures:

* 7: the peak RSS of the ``koalign run`` process (``wait4`` rusage; bar < 1 GB);
* 3: a warm rerun of the finished run (same command, same directory): wall time and requests
  the double received (bars: 0 calls, < 30 s); and a cache-only rerun: a fresh run directory
  holding only a copy of ``cache.sqlite``, where every call is answered from the cache (not a
  bar, reported: 0 calls expected, outputs byte-identical).

Prints one JSON line.

    python bench/bench_10k.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
OUTPUTS = ["seeds.jsonl", "attack.jsonl", "respond.jsonl", "judge.jsonl", "export/train.jsonl"]


def run_measured(cmd: list[str], log_path: Path) -> dict:
    """Run ``cmd``; wall time, peak RSS (MB), exit code and requests the double logged."""
    before = len(harness.read_log(log_path))
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=harness.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    stderr_chunks = []
    assert proc.stderr is not None
    for chunk in iter(lambda: proc.stderr.read(65536), b""):
        stderr_chunks.append(chunk)
        del stderr_chunks[:-4]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    time.sleep(0.3)
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "requests": len(harness.read_log(log_path)) - before,
        "stderr_tail": b"".join(stderr_chunks)[-800:].decode("utf-8", "replace")
        if proc.returncode
        else "",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "pipeline_10k.yaml")
    p.add_argument("--cap", type=int, default=256)
    p.add_argument("--latency-mean", type=float, default=0.02)
    p.add_argument("--favour", type=float, default=0.97)
    p.add_argument("--per-type", type=int, default=240)
    p.add_argument("--workdir", type=Path, default=None, help="keep the run here (default: temp)")
    args = p.parse_args()
    out: dict = {"bench": "run_10k", "machine_start": harness.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log_path = work / "requests.jsonl"
        proc, url = harness.start_double(
            cap=args.cap, latency_mean=args.latency_mean, favour=args.favour, record=log_path
        )
        try:
            cfg = harness.write_config(
                args.config, work / "config.yaml", url, **{"seeds.per_type": args.per_type}
            )
            run_dir = work / "run"
            cmd = harness.koalign_cmd(cfg, run_dir)
            first = run_measured(cmd, log_path)
            m = harness.manifest(run_dir)
            first["exported"] = m["stages"].get("export", {}).get("records_out")
            first["seeds_kept"] = m["stages"].get("seeds", {}).get("records_out")
            first["calls"] = sum(e.get("calls", 0) for e in m["stages"].values())
            out["first_run"] = first
            out["warm_rerun"] = run_measured(cmd, log_path)
            cache_only = work / "cache_only"
            cache_only.mkdir(exist_ok=True)
            shutil.copy(run_dir / "cache.sqlite", cache_only / "cache.sqlite")
            out["cache_only_rerun"] = run_measured(harness.koalign_cmd(cfg, cache_only), log_path)
            out["cache_only_rerun"]["identical"] = all(
                (cache_only / n).read_bytes() == (run_dir / n).read_bytes() for n in OUTPUTS
            )
        finally:
            harness.stop(proc)
    out["machine_end"] = harness.machine()
    out["bar_10k_triplets_reached"] = (first.get("exported") or 0) >= 10000
    out["bar_rss_1gb_met"] = first["peak_rss_mb"] < 1024
    w = out["warm_rerun"]
    out["bar_warm_rerun_met"] = w["rc"] == 0 and w["requests"] == 0 and w["wall_s"] < 30
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
