"""Kill the CLI with SIGKILL inside every stage, rerun it, and compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from koalign.config import load_run_config
from koalign.runner import Pipeline
from support.fakes import config_data

DRIVE = Path(__file__).parent / "support" / "drive.py"
OUTPUTS = [
    "seeds.jsonl",
    "attack.jsonl",
    "respond.jsonl",
    "judge.jsonl",
    "judge_disagreements.jsonl",
    "export/train.jsonl",
    "export/validation.jsonl",
    "export/standard/train.jsonl",
    "export/README.md",
]


def paid(run_dir: Path) -> Counter:
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        return Counter(k for (k,) in db.execute("SELECT key FROM calls WHERE cache_hit = 0"))


def complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def stage_status(run_dir: Path, stage: str) -> str | None:
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return manifest.get("stages", {}).get(stage, {}).get("status")


def test_sigkill_in_every_stage_then_resume(tmp_path, small_locale):
    config = tmp_path / "config.yaml"
    data = config_data(str(small_locale), runtime={"fsync": True})
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    cmd = [sys.executable, str(DRIVE), "run", str(config), "-o", str(tmp_path / "run")]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    run_dir = tmp_path / "run"
    flags = tmp_path / "flags"
    flags.mkdir()
    killed_in = []
    # the fake model blocks on the n-th call of the stage: the process is killed mid-stage,
    # after some records were written, whatever the machine's load
    for stage, n in (("seeds", 3), ("attack", 45), ("respond", 8), ("judge", 4)):
        pause = {**env, "KOALIGN_TEST_PAUSE": f"{stage}:{n}:{flags}"}
        proc = subprocess.Popen(cmd, env=pause, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not (flags / stage).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, (stage, proc.stderr.read().decode()[-3000:])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_in.append(stage_status(run_dir, stage))
        if stage != "judge":  # judge records all finish together at this size
            assert complete_lines(run_dir / f"{stage}.jsonl") >= 1, stage
        # a torn last line is possible at any moment; simulate the worst case once
        if stage == "attack":
            with open(run_dir / "attack.jsonl", "ab") as fh:
                fh.write(b'{"id": "a-torn", "kind": "harm')
    assert killed_in == ["running"] * 4
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(run_dir)

    # reference: the same config, uninterrupted, in a fresh directory with a fresh cache
    cfg, loc = load_run_config(config)
    Pipeline(cfg, loc, tmp_path / "ref").run()
    for name in OUTPUTS:
        assert (run_dir / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    # no record lost or duplicated
    for stage in ("seeds", "attack", "respond", "judge"):
        ids = [json.loads(x)["id"] for x in (run_dir / f"{stage}.jsonl").read_text().splitlines()]
        assert len(ids) == len(set(ids))
    # no paid call repeated: every request was paid once, exactly as in the uninterrupted run
    got, ref = paid(run_dir), paid(tmp_path / "ref")
    assert set(got) == set(ref)
    assert max(got.values()) == 1 and sum(got.values()) == sum(ref.values())
    # the manifest counts what every invocation spent, the killed ones included: per stage the
    # same calls, tokens and cost as the uninterrupted run
    got_m = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["stages"]
    ref_m = json.loads((tmp_path / "ref" / "manifest.json").read_text(encoding="utf-8"))["stages"]
    for stage in ("seeds", "attack", "respond", "judge"):
        for k in ("calls", "tokens_in", "tokens_out", "cost"):
            assert got_m[stage][k] == ref_m[stage][k], (stage, k)
        assert "invocation" not in got_m[stage]
