"""The pipeline on the tiny random model through the hf backend (the `koalign demo` config)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from koalign.config import load_run_config
from koalign.demo import demo_config
from koalign.runner import Pipeline
from koalign.stages import stage_names
from test_runner_faults import reconciles

DRIVE = Path(__file__).parent / "support" / "drive.py"


def test_demo_config_runs_end_to_end_on_the_tiny_model(tmp_path, tiny_model_dir):
    data = demo_config(tmp_path / "run", model_dir=tiny_model_dir)
    data["seeds"]["categories"] = ["G", "K"]
    # one fixed answer per judge, so the outcome depends on the tiny model alone
    for _name, spec in data["models"].items():
        if spec["backend"] == "scripted":
            spec["options"]["responses"] = spec["options"]["responses"][:1]
    cfg, loc = load_run_config(None, data=data)
    assert cfg.roles.resolved()["targets"] == ["tiny"]
    manifest = Pipeline(cfg, loc, tmp_path / "run", limit=4).run()
    assert manifest["status"] == "done"
    stages = manifest["stages"]
    assert stages["seeds"]["records_in"] == 4
    seeds = [json.loads(x) for x in (tmp_path / "run/seeds.jsonl").read_text().splitlines()]
    generated = [r for r in seeds if r.get("call", {}).get("model") == "tiny"]
    assert generated and all(r["call"].get("value") or r["call"].get("raw") for r in generated)
    # the demo model's texts end on their own (finish_reason stop), so none is truncated
    assert all(r["call"]["finish_reason"] == "stop" for r in generated)
    assert stages["seeds"]["calls"] >= len(generated)
    # every kept seed broke the target (the scripted harm judge says 5) and went on
    assert stages["attack"]["records_in"] == stages["seeds"]["records_out"]
    assert stages["export"]["records_out"] == stages["judge"]["records_out"]
    rows = (tmp_path / "run/export/train.jsonl").read_text().splitlines()
    rows += (tmp_path / "run/export/validation.jsonl").read_text().splitlines()
    assert len(rows) == stages["export"]["records_out"] > 0
    card = (tmp_path / "run/export/README.md").read_text(encoding="utf-8")
    assert "demo-scripted-judge-1" in card  # scripted judges are named as such in the card
    # every stage ran and reconciles: records in = records kept + dropped by reason
    assert list(stages) == list(stage_names())
    assert [e["status"] for e in stages.values()] == ["done"] * len(stages)
    reconciles(manifest)


def test_cli_prompt_show_renders_a_role(tmp_path):
    out = subprocess.run(
        [sys.executable, str(DRIVE), "prompt", "show", "responder", "--category", "G"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "--- system ---" in out.stdout and "주민등록" in out.stdout
    bad = subprocess.run(
        [sys.executable, str(DRIVE), "prompt", "show", "responer"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "did you mean 'responder'" in bad.stderr


def test_stage_commands_run_in_order(write_config, tmp_path):
    config = write_config()
    run_dir = tmp_path / "run"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(DRIVE), *args, str(config), "-o", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    early = cli("attack")
    assert early.returncode == 1 and "stage 'seeds' has not finished" in early.stderr
    assert cli("seeds").returncode == 0
    attack = cli("attack", "--json")
    assert attack.returncode == 0, attack.stderr
    manifest = json.loads(attack.stdout)
    assert manifest["stages"]["attack"]["status"] == "done"
    assert "respond" not in manifest["stages"] and manifest["status"] == "partial"
    assert "attack: done" in attack.stderr  # the summary table goes to stderr


def test_pipeline_through_a_real_openai_compatible_server(
    sampling_server, tmp_path, tiny_model_dir
):
    base_url, model = sampling_server
    data = demo_config(tmp_path / "unused", model_dir=tiny_model_dir)
    data["models"]["tiny"] = {
        "backend": "openai",
        "model": model,
        "base_url": base_url,
        "sampling": {"temperature": 1.0, "max_tokens": 48},
        "max_concurrency": 8,
        "timeout": 60,
    }
    data["seeds"]["categories"] = ["G"]
    data["runtime"]["max_error_rate"] = 1.0
    for spec in data["models"].values():
        if spec["backend"] == "scripted":
            spec["options"]["responses"] = spec["options"]["responses"][:1]
    cfg, loc = load_run_config(None, data=data)
    manifest = Pipeline(cfg, loc, tmp_path / "run", limit=3).run()
    assert manifest["status"] == "done"
    stages = manifest["stages"]
    assert stages["seeds"]["calls"] >= 1 and stages["attack"]["calls"] >= 1
    with sqlite3.connect(tmp_path / "run/cache.sqlite") as db:
        backends = {b for (b,) in db.execute("SELECT DISTINCT backend FROM calls")}
    assert "openai" in backends  # real HTTP calls, logged by the model layer
    seeds = [json.loads(x) for x in (tmp_path / "run/seeds.jsonl").read_text().splitlines()]
    for r in seeds:  # each generated seed is text from the server or a typed, kept error
        assert r.get("prompt") or (r["call"]["error"]["kind"] and "raw" in r["call"])
    assert stages["export"]["records_out"] == stages["judge"]["records_out"] > 0


def test_quickstart_config_runs_with_the_tiny_model_in_place_of_the_hub_model(
    tiny_model_dir, tmp_path
):
    """examples/quickstart.yaml as shipped (hf backend, constrained JSON for the judges), with
    only the model path swapped: checks that its options and roles work end to end."""
    import shutil

    from koalign.demo import _well_formed

    root = Path(__file__).resolve().parents[1]
    model_dir = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, model_dir)
    _well_formed(model_dir)  # texts that end before the token limit
    overrides = [f"models.{m}.model={model_dir}" for m in ("qwen", "qwen-judge")] + [
        "models.qwen.sampling.max_tokens=48",
        "models.qwen-judge.sampling.max_tokens=200",
        "seeds.categories=[I]",
        "seeds.min_script_ratio=0",
        "attack.rounds=1",
        "attack.min_script_ratio=0",
        "respond.min_script_ratio=0",
        "runtime.max_error_rate=1.0",
    ]
    cfg, loc = load_run_config(root / "examples" / "quickstart.yaml", overrides)
    manifest = Pipeline(cfg, loc, tmp_path / "run", limit=2).run()
    assert manifest["status"] == "done"
    attack = [json.loads(x) for x in (tmp_path / "run/attack.jsonl").read_text().splitlines()]
    judged = [
        res["harm"]
        for r in attack
        for a in r.get("attempts", [])
        for res in a["answers"].values()
        if "harm" in res
    ]
    judged += [
        res["harm"] for r in attack for res in r.get("answers", {}).values() if "harm" in res
    ]
    assert judged
    for frag in judged:  # constrained decoding: valid verdicts, or typed errors with raw text
        assert ("value" in frag and 1 <= frag["value"]["score"] <= 5) or frag["error"]["kind"]
    # the constrained judge of the quickstart config gives real verdicts, not only errors
    valid = [f for f in judged if "value" in f]
    assert valid, [f.get("error") for f in judged]


def test_a_stage_rerun_invalidates_later_stages_for_single_stage_commands(write_config, tmp_path):
    config = write_config()
    run_dir = tmp_path / "run"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(DRIVE), *args, str(config), "-o", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("run").returncode == 0
    assert cli("attack", "--set", "attack.rounds=1").returncode == 0
    stale = cli("judge")  # respond was computed from the old attack output
    assert stale.returncode == 1 and "stage 'respond' has not finished" in stale.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert [manifest["stages"][s]["status"] for s in ("seeds", "attack", "respond", "judge")] == [
        "done",
        "done",
        "invalidated",
        "invalidated",
    ]


@pytest.mark.slow
def test_the_demo_killed_at_several_moments_equals_an_uninterrupted_run(tmp_path, tiny_model_dir):
    """Local sampling in fixed chunks of plan order, seeded per request: a resumed demo writes
    exactly what an uninterrupted one writes."""
    import os
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))

    def demo(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "koalign", "demo", "-o", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    ref = tmp_path / "ref"
    started = time.monotonic()
    assert demo(ref).wait(timeout=900) == 0
    took = time.monotonic() - started
    run = tmp_path / "run"
    kills = 0
    # kill moments as shares of the uninterrupted demo's time, so that they land inside the run
    # on a fast machine as on a slow one (each resumed run starts again with the model's load)
    for share in (0.3, 0.45, 0.6, 0.75):
        proc = demo(run)
        time.sleep(took * share)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    assert demo(run).wait(timeout=900) == 0
    for name in ("seeds.jsonl", "attack.jsonl", "respond.jsonl", "judge.jsonl",
                 "export/train.jsonl", "export/validation.jsonl"):  # fmt: skip
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name


def test_ctrl_c_while_the_demo_builds_its_model_says_so_and_leaves_nothing(tmp_path):
    import os
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "koalign", "demo", "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300  # a guard, not a measurement
    while not (out / "tiny-model.partial").exists() and not (out / "tiny-model").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the build never started"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    text = " ".join(stderr.split())
    assert "interrupted by SIGINT while building the demo's tiny model" in text
    assert f"nothing was written ({out} was removed again)" in text
    assert "rerun the same command" in text and "Traceback" not in stderr
    assert not out.exists()


def test_a_stopped_model_build_is_never_taken_for_a_finished_one(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    (run / "tiny-model.partial").mkdir(parents=True)  # a build killed midway
    (run / "tiny-model.partial" / "model.safetensors").write_bytes(b"half")
    (run / "tiny-model").mkdir()  # an unfinished build in place, without config.json
    (run / "tiny-model" / "tokenizer.json").write_text("{}", encoding="utf-8")
    data = demo_config(run, model_dir=tiny_model_dir)
    assert data["models"]["tiny"]["model"] == str((run / "tiny-model").resolve())
    assert not (run / "tiny-model.partial").exists()
    generation = json.loads((run / "tiny-model" / "generation_config.json").read_text("utf-8"))
    assert generation["suppress_tokens"]  # made well-formed before it was put in place
    tokenizer = (run / "tiny-model" / "tokenizer.json").read_text("utf-8")
    assert tokenizer == (tiny_model_dir / "tokenizer.json").read_text("utf-8")
