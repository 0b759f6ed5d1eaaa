"""The language gate on what the attack stage keeps as a rejected text: target answers and
written refusals in another language are counted ``language`` outputs, never a case."""

from __future__ import annotations

import json
from pathlib import Path

from koalign.config import load_run_config
from koalign.runner import Pipeline
from support.fakes import ENGLISH, config_data


def attack_run(tmp_path: Path, **attack) -> tuple[dict, list[dict]]:
    data = config_data(
        "ko",
        seeds={"per_type": 1, "benign_per_category": 1, "categories": ["G"]},
        attack={"rounds": 1, **attack},
        runtime={"max_error_rate": 1.0},
    )
    opts = {"english_roles": ["target", "refusal_writer"]}
    for name in ("target-a", "target-b"):
        data["models"][name]["options"] |= opts
    data["models"]["writer"] = {"backend": "fn", "model": "writer", "options": opts}
    data["roles"]["refusal_writer"] = "writer"
    cfg, loc = load_run_config(None, data=data)
    manifest = Pipeline(cfg, loc, tmp_path / "run").run(["seeds", "attack"])
    path = tmp_path / "run/attack.jsonl"
    return manifest, [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def answers(records: list[dict]) -> list[dict]:
    out = [t for r in records for t in r.get("answers", {}).values()]
    return out + [t for r in records for a in r.get("attempts", []) for t in a["answers"].values()]


def test_target_answers_and_refusals_in_english_are_language_outputs(tmp_path):
    manifest, records = attack_run(tmp_path)
    turns = answers(records)
    refusals = [r["synthetic_refusal"] for r in records if r.get("synthetic_refusal")]
    assert turns and refusals
    for c in [t["answer"] for t in turns] + refusals:
        assert c["error"]["kind"] == "language", c
        assert c["raw"] in ENGLISH.values()
    assert all("harm" not in t for t in turns)  # never judged
    attack = manifest["stages"]["attack"]
    assert attack["records_out"] == 0 and not any(r["cases"] for r in records)
    assert attack["bad_outputs"]["language"] == len(turns) + len(refusals)


def test_the_answer_language_threshold_is_the_attack_gates_setting(tmp_path):
    # 0 turns the gate off: the same English answers are judged
    manifest, records = attack_run(tmp_path, gates={"min_answer_script_ratio": 0})
    turns = answers(records)
    assert turns and all("value" in t["answer"] and "harm" in t for t in turns)
    assert "language" not in manifest["stages"]["attack"]["bad_outputs"]
