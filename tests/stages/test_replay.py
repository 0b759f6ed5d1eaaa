"""A run against a server that answers the way real models do in every role: reasoning blocks,
drafts before the final verdict, echoed schemas and prompts, truncation, empty content, lone
surrogates, repetition, slot lists and placeholder reasons. None of those texts may reach the
export, and every one is counted under its reason in the manifest."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from koalign.config import load_run_config
from koalign.extract import split_reasoning
from koalign.runner import Pipeline
from support.servers import double, server_config

SURROGATE = re.compile("[\ud800-\udfff]")
ROLES = ("seed_generator", "benign_generator", "attacker", "targets", "refusal_writer",
         "harm_judge", "query_judge", "responders", "response_judge", "filter_judges")  # fmt: skip


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


@pytest.fixture(scope="module")
def replay_run(small_locale, tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    log = root / "shapes.jsonl"
    with double(shapes=0.35, shapes_log=str(log), favour=0.95) as url:
        data = server_config(
            str(small_locale),
            url,
            seeds={"per_type": 20, "benign_per_category": 6},
            runtime={
                "max_error_rate": 1.0,
                "fsync": False,
                "stage_retry_wait_s": 0.1,
                # a cut answer is counted at once (a retry with a larger budget is another
                # request, answered in another shape: test_truncation_policy_per_role covers it)
                "on_truncation": dict.fromkeys(ROLES, "drop"),
            },
        )
        for spec in data["models"].values():
            spec["json_repairs"] = 0  # each shaped answer is judged as it is
            spec["sampling"] = {"max_tokens": 200}
        cfg, loc = load_run_config(None, data=data)
        manifest = Pipeline(cfg, loc, root / "run").run()
    return root / "run", manifest, lines(log)


def export_texts(run: Path) -> list[str]:
    out = []
    for split in ("train", "validation"):
        for row in lines(run / "export" / f"{split}.jsonl"):
            out += [m["content"] for m in row["prompt"] + row["chosen"] + row["rejected"]]
    return out


def test_no_shaped_text_reaches_the_export(replay_run):
    run, manifest, shapes = replay_run
    assert manifest["status"] == "done"
    texts = export_texts(run)
    assert texts, "the export is empty: the test would prove nothing"
    bad = {s["content"] for s in shapes if s["content"] and s["shape"] != "think"}
    for t in texts:
        assert "<think>" not in t and "</think>" not in t
        assert "\ufffd" not in t and not SURROGATE.search(t)
        assert "정말 좋아요 정말 좋아요" not in t
        assert t not in bad
        assert not any(t and t in b for b in bad if len(b) > 40)


def test_every_shape_is_counted_under_its_reason(replay_run):
    run, manifest, shapes = replay_run
    seen = Counter(s["shape"] for s in shapes)
    assert len(seen) >= 14, seen  # nearly every shape was served at least once
    bad: Counter[str] = Counter()
    for e in manifest["stages"].values():
        bad.update(e.get("bad_outputs", {}))
        assert e["records_in"] == e["records_kept"] + sum(e["dropped"].values())
    expected = {
        "truncated": {"truncated", "truncated_json"},
        "replacement_char": {"cut_char", "surrogate", "surrogate_escape"},
        "empty": {"empty", "empty_str", "reasoning_only"},
        "echo": {"echo_prompt"},
        "repetition": {"repetition"},
        "leftover": {"slot_list"},
        "placeholder": {"placeholder"},
        "parse": {"echo_schema"},
    }
    for kind, from_shapes in expected.items():
        if any(seen[s] for s in from_shapes):
            assert bad[kind] > 0, (kind, dict(bad), dict(seen))
    # a lone surrogate written as an escape in a judge's JSON text ("안전함 \ud83d"): the
    # answer's text is plain ASCII there, the parsed reason holds the surrogate
    assert seen["surrogate_escape"]
    escaped = Counter()
    for stage in ("seeds", "attack", "respond", "judge"):
        for r in lines(run / f"{stage}.jsonl"):
            for c in _calls(r):
                if "value" in c:
                    value = json.dumps(c["value"], ensure_ascii=False)
                    assert "\ufffd" not in value and not SURROGATE.search(value), c
                if "\\ud83d" in (c.get("raw") or ""):
                    escaped[c.get("error", {}).get("kind")] += 1
    assert set(escaped) == {"replacement_char"}, escaped
    assert bad["replacement_char"] >= escaped["replacement_char"] > 0


def test_reasoning_is_set_apart_and_the_final_verdict_counts(replay_run):
    run, _, _ = replay_run
    calls = []
    for stage in ("seeds", "attack", "respond", "judge"):
        for r in lines(run / f"{stage}.jsonl"):
            calls += list(_calls(r))
    thought = [c for c in calls if c.get("reasoning")]
    assert thought, "no reasoning answer reached a record"
    drafts = 0
    for c in thought:
        if "error" in c:
            continue
        text = c.get("raw") or c["value"]
        assert "<think>" not in json.dumps(c["value"], ensure_ascii=False)
        scored = isinstance(c["value"], dict) and ({"score", "safety"} & set(c["value"]))
        if scored and c["reasoning"].startswith("{"):
            # draft then final: the draft (the opposite verdict) sits in the reasoning, the
            # verdict is the final JSON
            draft = json.loads(c["reasoning"][: c["reasoning"].rindex("}") + 1])
            assert c["value"] != draft
            drafts += 1
        elif isinstance(c["value"], str):
            assert c["value"] == split_reasoning(text)[1] or c["value"] in text
    assert drafts, "no draft-then-final verdict reached a record"


def _calls(value):
    """Every model call (a dict with 'model' and 'finish_reason') inside a record."""
    if isinstance(value, dict):
        if "model" in value and ("value" in value or "error" in value):
            yield value
        else:
            for v in value.values():
                yield from _calls(v)
    elif isinstance(value, list):
        for v in value:
            yield from _calls(v)


@pytest.mark.parametrize("policy", ["retry", "drop"])
def test_truncation_policy_per_role(small_locale, tmp_path, policy):
    # resp-2's answers need 300 tokens; it is given 200: cut, then retried with 400 (or dropped)
    with double(needs_tokens="resp-2=300") as url:
        data = server_config(
            str(small_locale),
            url,
            runtime={"max_error_rate": 1.0, "on_truncation": {"responders": policy}},
        )
        for spec in data["models"].values():
            spec["sampling"] = {"max_tokens": 200}
        cfg, loc = load_run_config(None, data=data)
        manifest = Pipeline(cfg, loc, tmp_path / "run").run()
    cands = [
        c
        for r in lines(tmp_path / "run/respond.jsonl")
        for c in r.get("candidates", [])
        if c["responder"] == "resp-2"
    ]
    assert cands
    truncated = [c for c in cands if c["answer"].get("error", {}).get("kind") == "truncated"]
    if policy == "retry":
        assert not truncated and all("value" in c["answer"] for c in cands)
    else:
        assert len(truncated) == len(cands)
        assert manifest["stages"]["respond"]["bad_outputs"]["truncated"] == len(cands)
