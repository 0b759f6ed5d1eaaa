"""Benchmark: a "billion laughs" YAML alias bomb is refused fast and small.

Writes a run config (examples/quickstart.yaml) with an alias bomb added, once under an unknown
top-level key and once inside a known section (``models.qwen.options``), and measures, each in
a fresh process:

* ``loader``: ``koalign.yamlio.load_yaml`` on the file (import time included);
* ``run``: the whole ``koalign run CONFIG -o DIR`` command, start-up and imports included.

For each: exit status, wall seconds, CPU seconds (user + system) and peak RSS of that process
(``ru_maxrss`` from ``wait4``) and the last line of stderr. On a shared machine the wall time
follows the load (most of it is importing the CLI); CPU seconds do not. The bar (issue 13): refused in under 2 s with under 200 MB peak
RSS. The child gets an address-space cap (``--mem-cap-mb``, default 2048) and a timeout so that
an unbounded reader cannot take the shared machine down; hitting either counts as a failure.
Prints one JSON line per case and a summary line.

    python bench/bench_yaml_bomb.py                  # levels 9, width 9: 387,420,489 strings
    python bench/bench_yaml_bomb.py --only loader
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
BAR_SECONDS = 2.0
BAR_RSS_MB = 200.0


def bomb_lines(levels: int, width: int, indent: str) -> list[str]:
    """``width ** levels`` copies of "lol" from ``levels`` anchors of ``width`` aliases each."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return lines


def write_configs(folder: Path, levels: int, width: int) -> dict[str, Path]:
    base = QUICKSTART.read_text(encoding="utf-8")
    unknown = folder / "bomb_unknown_key.yaml"
    unknown.write_text(
        base + "\nx_bomb:\n" + "\n".join(bomb_lines(levels, width, "  ")) + "\n", encoding="utf-8"
    )
    known = folder / "bomb_in_options.yaml"
    marker = "    options: {device: auto, dtype: auto, max_batch_size: 8}\n"
    assert marker in base, "examples/quickstart.yaml changed: update the benchmark"
    nested = "    options:\n      device: auto\n" + "\n".join(bomb_lines(levels, width, "      "))
    known.write_text(base.replace(marker, nested + "\n", 1), encoding="utf-8")
    return {"unknown_key": unknown, "in_options": known}


def measure(cmd: list[str], *, timeout: float, mem_cap_mb: int, cwd: Path) -> dict:
    """Run ``cmd``; wall seconds, peak RSS (MB) of the process, exit status, last stderr line."""
    cap = mem_cap_mb << 20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit, cwd=cwd, env=env
        )
        timer = threading.Timer(timeout, lambda: os.kill(proc.pid, signal.SIGKILL))
        timer.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timed_out = not timer.is_alive()
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = [line for line in err.read().decode("utf-8", "replace").splitlines() if line]
    return {
        "exit": proc.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stderr_tail": tail[-1][:300] if tail else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=9)
    parser.add_argument("--width", type=int, default=9)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    parser.add_argument("--mem-cap-mb", type=int, default=2048, help="address-space cap per case")
    parser.add_argument("--only", choices=["loader", "run"], default=None)
    args = parser.parse_args()

    koalign = Path(sys.executable).with_name("koalign")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        configs = write_configs(folder, args.levels, args.width)
        for case, path in configs.items():
            commands = {
                "loader": [
                    sys.executable,
                    "-c",
                    "import sys; from koalign.yamlio import load_yaml\n"
                    "try:\n    load_yaml(__import__('pathlib').Path(sys.argv[1]))\n"
                    "except Exception as exc:\n    print(exc, file=sys.stderr); sys.exit(1)\n",
                    str(path),
                ],
                "run": [str(koalign), "run", str(path), "-o", str(folder / f"run-{case}")],
            }
            for mode, cmd in commands.items():
                if args.only and mode != args.only:
                    continue
                row = measure(cmd, timeout=args.timeout, mem_cap_mb=args.mem_cap_mb, cwd=ROOT)
                row["refused_as_bomb"] = row["exit"] == 1 and "alias bomb" in row["stderr_tail"]
                row["meets_bar"] = (
                    row["refused_as_bomb"]
                    and row["wall_s"] < BAR_SECONDS
                    and row["peak_rss_mb"] < BAR_RSS_MB
                )
                row.update(case=case, mode=mode, expanded_strings=args.width**args.levels)
                results.append(row)
                print(json.dumps(row, ensure_ascii=False), flush=True)
    print(
        json.dumps(
            {
                "summary": "all cases meet the bar"
                if all(r["meets_bar"] for r in results)
                else "some cases miss the bar",
                "bar": {"wall_s": BAR_SECONDS, "peak_rss_mb": BAR_RSS_MB},
            }
        )
    )


if __name__ == "__main__":
    main()
