"""End-to-end runs of the pipeline on the deterministic test backend."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from koalign.config import load_run_config
from koalign.runner import Pipeline, StageFailed
from koalign.stages import stage_names

STAGES = stage_names()
OUTPUTS = [f"{s}.jsonl" for s in STAGES] + [
    "judge_disagreements.jsonl",
    "export/train.jsonl",
    "export/validation.jsonl",
    "export/standard/train.jsonl",
    "export/standard/validation.jsonl",
    "export/README.md",
]


def run(config: Path, out: Path, overrides: list[str] | None = None, **kw) -> dict:
    cfg, loc = load_run_config(config, overrides or [])
    return Pipeline(cfg, loc, out, **kw).run()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


def paid_calls(run_dir: Path) -> list[str]:
    with sqlite3.connect(run_dir / "cache.sqlite") as db:
        return [k for (k,) in db.execute("SELECT key FROM calls WHERE cache_hit = 0")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_locale) -> tuple[Path, dict]:
    import yaml

    from support.fakes import config_data

    root = tmp_path_factory.mktemp("ref")
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(config_data(str(small_locale), seeds={"per_type": 4})), encoding="utf-8"
    )
    return config, run(config, root / "run")


def test_run_directory_layout_and_counts_reconcile(reference):
    config, manifest = reference
    run_dir = config.parent / "run"
    assert manifest["status"] == "done"
    assert manifest["locale"]["digest"] and manifest["versions"]["pydantic"]
    assert manifest["config"]["attack"]["rounds"] == 3
    for name in [*OUTPUTS, "cache.sqlite", "manifest.json"]:
        assert (run_dir / name).is_file(), name
    stages = manifest["stages"]
    for s in STAGES:
        entry = stages[s]
        assert entry["status"] == "done"
        for key in ("records_in", "records_out", "calls", "cache_hits", "errors", "seconds"):
            assert key in entry, (s, key)
    # each stage consumes exactly what the previous one produced
    assert stages["attack"]["records_in"] == stages["seeds"]["records_out"]
    assert stages["respond"]["records_in"] == stages["attack"]["records_out"]
    assert stages["judge"]["records_in"] == stages["respond"]["records_out"]
    assert stages["export"]["records_in"] == stages["judge"]["records_out"]
    seeds = lines(run_dir / "seeds.jsonl")
    assert (
        len(seeds) == stages["seeds"]["records_in"] == 2 * 6 + 2 * 4
    )  # 2 types x ceil(4*1.5); 2x4 benign
    per_type = stages["seeds"]["report"]["per_type"]
    assert per_type["X.insult"]["quota"] == 4 and per_type["X.insult"]["generated"] == 6
    assert per_type["X.insult"]["kept"] + per_type["X.insult"]["shortfall"] == 4
    # the mini pack's benign prompts are English: dropped by the Hangul check, and counted
    assert per_type["benign:X"]["dropped"]["language"] == 3
    assert sum(r["kept"] for r in seeds) == stages["seeds"]["records_out"]
    # every stage reconciles: records in = records kept + dropped by reason
    for s in STAGES:
        e = stages[s]
        assert e["records_in"] == e["records_kept"] + sum(e["dropped"].values()), s
        assert e["report"]["records_in"] == e["records_in"], s
    # every seed kept went to every target with rotating strategies
    attack = lines(run_dir / "attack.jsonl")
    harmful = [r for r in attack if r["seed"]["kind"] == "harmful"]
    first_strategies = {r["attempts"][0]["strategy"] for r in harmful}
    assert first_strategies <= {"emotional_appeal"}  # the mini pack has one strategy
    for r in harmful:
        assert set(r["attempts"][0]["answers"]) == {"target-a", "target-b"}
    asr = stages["attack"]["report"]["asr_by_target"]
    assert set(asr) == {"target-a", "target-b"}
    # chosen answers come with every candidate and score kept
    respond = lines(run_dir / "respond.jsonl")
    chosen = [r for r in respond if r["status"] == "chosen"]
    assert chosen and all(len(r["candidates"]) == 3 for r in chosen)
    # export rows are TRL conversational
    train = lines(run_dir / "export/train.jsonl") + lines(run_dir / "export/validation.jsonl")
    assert len(train) == stages["export"]["records_out"] > 0
    # everything that passed the filter is exported, except over-refusal pairs beyond their share
    by_kind = stages["export"]["report"]["by_kind"]
    assert by_kind.get("benign", 0) <= 0.1 / 0.9 * by_kind["harmful"]
    passed = lines(run_dir / "judge.jsonl")
    harmful_passed = sum(
        r["status"] == "pass" and r["triplet"]["kind"] == "harmful" for r in passed
    )
    assert (
        by_kind["harmful"]
        == harmful_passed
        == stages["judge"]["records_out"]
        - sum(r["status"] == "pass" and r["triplet"]["kind"] == "benign" for r in passed)
    )
    row = train[0]
    assert [m["role"] for m in row["prompt"]] == ["user"]
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    card = (run_dir / "export/README.md").read_text(encoding="utf-8")
    assert "Content warning" in card and manifest["locale"]["digest"] in card
    assert "license: cc-by-nc-4.0" in card


def test_same_config_and_cache_give_identical_outputs(reference, tmp_path):
    config, _ = reference
    other = tmp_path / "again"
    run(config, other)
    for name in OUTPUTS:
        assert (other / name).read_bytes() == (config.parent / "run" / name).read_bytes(), name


def test_rerun_of_a_finished_run_makes_no_call(reference):
    config, _ = reference
    run_dir = config.parent / "run"
    before = sorted(paid_calls(run_dir))
    snapshot = {n: (run_dir / n).read_bytes() for n in OUTPUTS}
    manifest = run(config, run_dir)
    assert manifest["status"] == "done"
    assert sorted(paid_calls(run_dir)) == before
    assert {n: (run_dir / n).read_bytes() for n in OUTPUTS} == snapshot


def test_a_finished_stage_file_changed_by_hand_is_reported_and_rebuilt(reference, tmp_path, caplog):
    import shutil

    config, _ = reference
    run_dir = tmp_path / "copy"
    shutil.copytree(config.parent / "run", run_dir)
    attack = run_dir / "attack.jsonl"
    original = attack.read_bytes()
    _, rest = original.split(b"\n", 1)
    attack.write_bytes(rest)  # one record removed by hand
    before = sorted(paid_calls(run_dir))
    with caplog.at_level("WARNING", logger="koalign.runner"):
        manifest = run(config, run_dir)
    assert "attack: attack.jsonl changed since the stage finished" in caplog.text
    assert "seeds.jsonl changed" not in caplog.text
    assert manifest["status"] == "done"
    assert attack.read_bytes() == original  # rebuilt, in plan order
    assert sorted(paid_calls(run_dir)) == before  # from the cache: nothing paid again


def test_a_smaller_limit_says_which_records_it_leaves_out(reference, tmp_path, caplog):
    import shutil

    config, _ = reference
    run_dir = tmp_path / "copy"
    shutil.copytree(config.parent / "run", run_dir)
    before = len(lines(run_dir / "seeds.jsonl"))
    paid = sorted(paid_calls(run_dir))
    with caplog.at_level("WARNING", logger="koalign.runner"):
        run(config, run_dir, limit=3)
    assert len(lines(run_dir / "seeds.jsonl")) == 3
    assert f"seeds: {before - 3} records in seeds.jsonl are not in this run's plan" in caplog.text
    assert sorted(paid_calls(run_dir)) == paid  # nothing paid: all from the cache


def test_changing_a_stage_config_invalidates_it_and_later_stages_only(reference, tmp_path):
    import shutil

    config, _ = reference
    run_dir = tmp_path / "copy"
    shutil.copytree(config.parent / "run", run_dir)
    seeds_before = (run_dir / "seeds.jsonl").read_bytes()
    attack_before = (run_dir / "attack.jsonl").read_bytes()

    def paid_tags() -> list[str]:
        with sqlite3.connect(run_dir / "cache.sqlite") as db:
            return [t for (t,) in db.execute("SELECT tag FROM calls WHERE cache_hit = 0")]

    before = paid_tags()
    manifest = run(config, run_dir, ["attack.rounds=1"])
    after = paid_tags()
    assert (run_dir / "seeds.jsonl").read_bytes() == seeds_before
    # the seeds stage was not recomputed: no seed-generator call in this run
    assert after.count("seeds/seed_generator") == before.count("seeds/seed_generator") == 12
    assert after.count("seeds/benign_generator") == before.count("seeds/benign_generator") == 2
    assert after.count("attack/attacker") == before.count("attack/attacker")  # round 1 is cached
    assert (run_dir / "attack.jsonl").read_bytes() != attack_before
    assert list((run_dir / "stale").glob("attack.*.jsonl"))
    assert all(len(r.get("attempts", [])) <= 1 for r in lines(run_dir / "attack.jsonl"))
    assert manifest["status"] == "done"


def test_malformed_outputs_are_kept_counted_and_fail_the_stage(write_config, tmp_path):
    bad_judge = {"backend": "fn", "model": "bad", "json_repairs": 0, "options": {"bad_share": 1.0}}
    config = write_config()
    overrides = [f"models.bad={json.dumps(bad_judge)}", "roles.filter_judges=[resp-1, bad]"]
    with pytest.raises(StageFailed) as exc:
        run(config, tmp_path / "run", overrides)
    assert "stage judge" in exc.value.render()
    manifest = json.loads((tmp_path / "run/manifest.json").read_text(encoding="utf-8"))
    entry = manifest["stages"]["judge"]
    assert manifest["status"] == "failed" and entry["status"] == "failed"
    records = lines(tmp_path / "run/judge.jsonl")
    assert entry["errors"] == len(records) > 0
    for r in records:
        frag = r["verdicts"]["bad"]
        assert frag["error"]["kind"] in ("parse", "schema")
        assert frag["raw"] == "죄송합니다, 평가를 할 수 없습니다."  # raw text kept
        assert r["status"] == "undecided" and "decision" not in r  # never defaulted


def test_some_malformed_outputs_below_the_error_rate(write_config, tmp_path):
    flaky = {"backend": "fn", "model": "flaky", "json_repairs": 0, "options": {"bad_share": 0.3}}
    config = write_config()
    overrides = [
        f"models.flaky={json.dumps(flaky)}",
        "roles.harm_judge=flaky",
        "runtime.max_error_rate=0.9",
    ]
    manifest = run(config, tmp_path / "run", overrides)
    entry = manifest["stages"]["attack"]
    records = lines(tmp_path / "run/attack.jsonl")
    bad = [
        res["harm"]
        for r in records
        for a in r.get("attempts", [])
        for res in a["answers"].values()
        if "error" in res.get("harm", {})
    ] + [
        res["harm"]
        for r in records
        for res in r.get("answers", {}).values()
        if "error" in res.get("harm", {})
    ]
    assert bad and entry["errors"] == len(bad)
    assert all(b["raw"] for b in bad)
    assert 0 < entry["error_rate"] < 0.9


def test_citation_check_rejects_stale_citations_on_the_korean_pack(tmp_path):
    from support.fakes import config_data

    data = config_data(
        "ko",
        seeds={"per_type": 1, "benign_per_category": 1, "categories": ["G", "L"]},
        respond={"citation_check": True},
    )
    data["models"]["resp-3"]["options"]["stale_citation"] = True
    cfg, loc = load_run_config(None, data=data)
    manifest = Pipeline(cfg, loc, tmp_path / "run").run()
    report = manifest["stages"]["respond"]["report"]
    records = lines(tmp_path / "run/respond.jsonl")
    stale = [
        c
        for r in records
        for c in r.get("candidates", [])
        if c["responder"] == "resp-3" and c.get("citations")
    ]
    assert stale and all(not c["citations"]["ok"] for c in stale)
    assert all(
        c["citations"]["report"]["citations"] for c in stale
    )  # the verifier's report is kept
    others = [
        c
        for r in records
        for c in r.get("candidates", [])
        if c["responder"] != "resp-3" and c.get("citations")
    ]
    assert others and all(c["citations"]["ok"] for c in others)
    assert report["citations"]["candidates_flagged"] == len(stale)
    # the manifest counts the answers dropped per verdict (동물보호법 제8조 is outdated)
    # each stale answer cites the stale article twice: counted once per candidate and verdict
    assert all(c["citations"]["verdicts"]["outdated"] == 2 for c in stale)
    assert report["citations"]["candidates_rejected_by_verdict"] == {"outdated": len(stale)}
    lost = report["citations"]["prompts_lost"]
    assert report["citations"]["prompts_lost_by_verdict"] == ({"outdated": lost} if lost else {})
    assert "resp-3" not in report["chosen_by_responder"]
    card = (tmp_path / "run/export/README.md").read_text(encoding="utf-8")
    assert f"{len(stale)} of {report['citations']['candidates_checked']} candidates flagged" in card


def test_prompts_lost_to_citations_are_counted_per_verdict(tmp_path):
    from support.fakes import config_data

    data = config_data(
        "ko",
        seeds={"per_type": 1, "benign_per_category": 1, "categories": ["G"]},
        respond={"citation_check": True},
        runtime={"max_error_rate": 1.0},
    )
    for name in ("resp-1", "resp-2", "resp-3"):
        data["models"][name]["options"]["stale_citation"] = True
    cfg, loc = load_run_config(None, data=data)
    manifest = Pipeline(cfg, loc, tmp_path / "run").run()
    cites = manifest["stages"]["respond"]["report"]["citations"]
    assert cites["prompts_lost"] > 0
    assert cites["prompts_lost_by_verdict"] == {"outdated": cites["prompts_lost"]}
    assert cites["candidates_rejected_by_verdict"] == {"outdated": cites["candidates_flagged"]}


def test_rewrites_not_in_korean_are_language_errors(write_config, tmp_path):
    config = write_config()
    english = {"backend": "fn", "model": "english", "options": {"english": True}}
    with pytest.raises(StageFailed):
        run(
            config,
            tmp_path / "run",
            [f"models.english={json.dumps(english)}", "roles.attacker=english"],
        )
    records = lines(tmp_path / "run/attack.jsonl")
    rewrites = [a["rewrite"] for r in records for a in r.get("attempts", [])]
    assert rewrites and all(w["error"]["kind"] == "language" for w in rewrites)
    assert all(w["raw"].startswith("Sure") for w in rewrites)
    assert all(not a["answers"] for r in records for a in r.get("attempts", []))  # never sent on


def test_failed_calls_are_retried_on_rerun_bad_outputs_are_not(write_config, tmp_path):
    flag = tmp_path / "down"
    flag.touch()
    down = {
        "backend": "fn",
        "model": "resp-2",
        "max_retries": 0,
        "options": {"down_while_exists": str(flag)},
    }
    config = write_config()
    overrides = [f"models.resp-2={json.dumps(down)}", "runtime.max_error_rate=1.0"]
    first = run(config, tmp_path / "run", overrides)
    failed = first["stages"]["respond"]["failed_calls"]
    assert failed > 0 and first["stages"]["respond"]["retried_records"] == 0
    rows = lines(tmp_path / "run/respond.jsonl")
    kinds = {
        c["answer"]["error"]["kind"]
        for r in rows
        for c in r.get("candidates", [])
        if c["responder"] == "resp-2" and "error" in c["answer"]
    }
    assert kinds == {"other"}
    flag.unlink()  # the server is back: the same command retries exactly those records
    second = run(config, tmp_path / "run", overrides)
    assert second["stages"]["respond"]["retried_records"] == failed
    assert second["stages"]["respond"]["failed_calls"] == 0
    ids = [r["id"] for r in lines(tmp_path / "run/respond.jsonl")]
    assert len(ids) == len(set(ids)) == first["stages"]["respond"]["records_in"]


def test_the_citation_rejection_rule_names_unknown_verdicts():
    from koalign.errors import ConfigError
    from support.fakes import config_data

    data = config_data("ko", respond={"citation_reject": ["outdated", "outdate"]})
    with pytest.raises(ConfigError, match=r"respond\.citation_reject.*outdate.*did you mean"):
        load_run_config(None, data=data)


def test_the_card_shows_the_filter_judges_calibration_when_given(write_config, tmp_path):
    from koalign.evaluate.calibration import scores

    cal = tmp_path / "cal"
    cal.mkdir()
    entry = {
        "task": "acceptability",
        "label_meaning": "a response people found acceptable",
        "flagged_class": "unacceptable",
        "n": 4,
        "human_flagged": 2,
        "judges": {
            "resp-1": {
                **scores(
                    [True, False, True, False], [True, False, False, False], n_boot=50, seed=0
                ),
                "parse_failure_reasons": {},
                "per_category": {},
            }
        },
    }
    (cal / "summary.json").write_text(json.dumps({"judge_calibration": {"acceptability": entry}}))
    config = write_config()
    run(config, tmp_path / "run", [f"export.calibration={cal}"])
    card = (tmp_path / "run/export/README.md").read_text(encoding="utf-8")
    assert "## Judge calibration against human labels" in card and "resp-1" in card
    from koalign.errors import ConfigError

    with pytest.raises(ConfigError, match=r"export\.calibration"):
        run(config, tmp_path / "run2", [f"export.calibration={tmp_path / 'missing'}"])


def test_small_stage_files_are_decoded_once_and_only_adjacent_stages_are_kept(
    reference, tmp_path, monkeypatch
):
    import shutil

    import koalign.runner as runner_mod
    from koalign.stages import get_stage

    config, _ = reference
    run_dir = tmp_path / "run"
    shutil.copytree(config.parent / "run", run_dir)
    cfg, loc = load_run_config(config, [])
    pipe = Pipeline(cfg, loc, run_dir, preflight=False)
    attack, respond, judge = get_stage("attack"), get_stage("respond"), get_stage("judge")
    list(pipe._records(attack))
    first = list(pipe._records(respond))
    second = list(pipe._records(respond))
    assert first and second[0] is first[0]  # kept, not decoded again
    assert set(pipe._decoded) == {"attack", "respond"}  # respond and its input
    list(pipe._records(judge))  # judge and its input (respond) kept; attack let go
    assert set(pipe._decoded) == {"respond", "judge"}
    reader = pipe._records(respond)  # a reader that outlives the kept list
    head = [next(reader), next(reader)]
    pipe._decoded.clear()  # let go (a record was appended somewhere)
    assert head + list(reader) == first  # the rest comes from the file
    path = run_dir / "respond.jsonl"
    path.write_bytes(path.read_bytes())  # a changed file (new stamp) is decoded again
    again = list(pipe._records(respond))
    assert again == first and again[0] is not first[0]
    monkeypatch.setattr(runner_mod, "DECODE_ONCE_MAX_BYTES", 10)
    path.write_bytes(path.read_bytes())
    streamed = list(pipe._records(respond))  # over the budget: streamed, nothing kept
    assert streamed == first and "respond" not in pipe._decoded


def test_each_stage_calls_its_models_with_its_position_as_priority(small_locale, tmp_path):
    """A model whose slots are all taken serves earlier stages first: every call carries its
    stage's position in the stage order as ``call_priority``."""
    import yaml

    from koalign.backends.base import register_backend
    from koalign.backends.limits import call_priority
    from koalign.backends.scripted import ScriptedBackend
    from support.fakes import config_data, make_fn

    seen: list[tuple[str, int]] = []

    def factory(spec, env):
        fn = make_fn(spec)

        def recording(request):
            seen.append((request.tag or "", call_priority.get()))
            return fn(request)

        return ScriptedBackend(spec, env=env, fn=recording)

    register_backend("fn-priority", factory)
    data = config_data(str(small_locale))
    for spec in data["models"].values():
        spec["backend"] = "fn-priority"
        spec["max_concurrency"] = 1  # every model busy: the priorities decide who goes next
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert run(config, tmp_path / "run")["status"] == "done"
    stages_called = {tag.split("/")[0] for tag, _ in seen}
    assert {"seeds", "attack", "respond", "judge"} <= stages_called
    wrong = [(t, p) for t, p in seen if p != STAGES.index(t.split("/")[0])]
    assert not wrong, wrong[:5]


def test_records_kept_from_computing_serve_the_finishing_passes_with_equal_results(
    reference, tmp_path, monkeypatch
):
    """The passes over a finished stage file (reports, extra files, the next stage's order)
    read the records the stage computed instead of decoding the file again; the outputs and
    reports are the same as when every pass decodes the file."""
    import koalign.runner as runner_mod

    config, manifest = reference
    served: list[str] = []
    original = runner_mod._Kept.sealed_for

    def counting(self, stamp):
        out = original(self, stamp)
        if out is not None:
            served.append(str(len(out)))
        return out

    monkeypatch.setattr(runner_mod._Kept, "sealed_for", counting)
    kept_run = run(config, tmp_path / "kept")
    assert served  # the kept records were used
    monkeypatch.setattr(runner_mod, "DECODE_ONCE_MAX_BYTES", 0)  # nothing kept: all decoded
    served.clear()
    decoded_run = run(config, tmp_path / "decoded")
    assert not served
    for name in OUTPUTS:
        assert (tmp_path / "kept" / name).read_bytes() == (
            tmp_path / "decoded" / name
        ).read_bytes(), name
    for s in STAGES:
        assert kept_run["stages"][s]["report"] == decoded_run["stages"][s]["report"], s
        assert kept_run["stages"][s]["report"] == manifest["stages"][s]["report"], s


def test_a_barrier_with_more_records_than_its_channel_holds_drains_them_with_equal_results(
    reference, tmp_path, monkeypatch
):
    """With one record in flight per stage (a channel of two), the barriers' outputs wait for
    the next stage: their kept records are let go as they go out, and the passes after read the
    file; outputs and reports are those of the reference run."""
    import koalign.runner as runner_mod

    config, manifest = reference
    drains: list[int] = []
    original = runner_mod._Kept.drain

    def counting(self, stamp):
        out = original(self, stamp)
        if out is not None:
            drains.append(1)
        return out

    monkeypatch.setattr(runner_mod._Kept, "drain", counting)
    drained = run(config, tmp_path / "drained", ["runtime.max_inflight=1"])
    assert drains  # a barrier drained its records
    for name in OUTPUTS:
        if name == "export/README.md":  # the card quotes the config, max_inflight included
            continue
        assert (tmp_path / "drained" / name).read_bytes() == (
            config.parent / "run" / name
        ).read_bytes(), name
    for s in STAGES:
        assert drained["stages"][s]["report"] == manifest["stages"][s]["report"], s


def test_a_stage_s_calls_tokens_and_cost_are_those_of_its_rows_in_the_call_log(reference):
    """What the manifest says a stage spent is what its call log holds (a JSON repair is a call
    of its own there), so a run killed and resumed reports the same (tests/test_runner_resume.py)."""
    config, manifest = reference
    with sqlite3.connect(config.parent / "run" / "cache.sqlite") as db:
        rows = db.execute(
            "SELECT substr(tag, 1, instr(tag, '/') - 1), SUM(cache_hit = 0), SUM(cache_hit), "
            "SUM(CASE WHEN cache_hit = 0 THEN tokens_in END), "
            "SUM(CASE WHEN cache_hit = 0 THEN tokens_out END) FROM calls GROUP BY 1"
        ).fetchall()
    assert rows
    for stage, calls, hits, t_in, t_out in rows:
        entry = manifest["stages"][stage]
        assert (entry["calls"], entry["cache_hits"]) == (calls, hits), stage
        assert (entry["tokens_in"], entry["tokens_out"]) == (t_in or 0, t_out or 0), stage
        assert isinstance(entry["log_from"], int)


def test_the_manifest_records_the_limit_and_the_records_a_rerun_read_back(reference, tmp_path):
    """The last invocation's --limit, and per stage the records found done in its file."""
    from koalign.cli.pipeline_cmds import highlights

    config, manifest = reference
    assert manifest["limit"] is None
    assert manifest["stages"]["seeds"]["records_reused"] == 0
    limited = run(config, tmp_path / "limited", limit=3)
    assert limited["limit"] == 3
    assert limited["stages"]["seeds"]["records_in"] == 3
    assert limited["stages"]["seeds"]["records_reused"] == 0
    whole = run(config, tmp_path / "limited")  # the rest of the plan: the first 3 are read back
    seeds = whole["stages"]["seeds"]
    assert whole["limit"] is None
    assert seeds["records_reused"] == 3 and seeds["records_in"] > 3
    assert highlights("seeds", seeds)[0] == (
        f"resumed: 3 of {seeds['records_in']} records were already done (read back from the "
        "stage file, no call made again)"
    )


def test_kept_records_are_let_go_over_budget_and_never_serve_a_changed_file(tmp_path, monkeypatch):
    import os

    import koalign.runner as runner_mod
    from koalign.rundir import RecordLog

    log = RecordLog(tmp_path / "s.jsonl")
    log.open()
    kept = runner_mod._Kept()
    for rid in ("b", "a"):
        line = json.dumps({"id": rid}).encode() + b"\n"
        log.append(rid, line)
        kept.add(rid, {"id": rid}, len(line))
    log.rewrite(["a", "b"], fsync=False)
    kept.seal(log)
    stamp = runner_mod._stamp(os.stat(log.path))
    assert kept.sealed_for(stamp) == [{"id": "a"}, {"id": "b"}]  # file order
    (tmp_path / "s.jsonl").write_bytes(log.path.read_bytes() + b"")  # rewritten: new stamp
    os.utime(log.path, ns=(1, 1))
    assert kept.sealed_for(runner_mod._stamp(os.stat(log.path))) is None
    # a record of the file that was not kept: the file is decoded instead
    partial = runner_mod._Kept()
    partial.add("a", {"id": "a"}, 10)
    partial.seal(log)
    assert partial.over and partial.sealed_for(runner_mod._stamp(os.stat(log.path))) is None
    # over the budget: everything let go, and nothing kept afterwards
    monkeypatch.setattr(runner_mod, "DECODE_ONCE_MAX_BYTES", 15)
    small = runner_mod._Kept()
    small.add("a", {"id": "a"}, 10)
    small.add("b", {"id": "b"}, 10)
    small.add("c", {"id": "c"}, 1)
    assert small.over and small.records == {}


def test_draining_kept_records_lets_each_go_once_taken_and_keeps_nothing_after(tmp_path):
    """A barrier emits its outputs from its kept records while the next stage takes them; each
    record is let go once taken, and later passes read the file."""
    import gc
    import os
    import weakref

    import koalign.runner as runner_mod
    from koalign.rundir import RecordLog

    class Rec(dict):  # a dict subclass can be weakly referenced
        pass

    log = RecordLog(tmp_path / "s.jsonl")
    log.open()
    kept = runner_mod._Kept()
    recs = {rid: Rec(id=rid) for rid in ("b", "a", "c")}
    for rid, rec in recs.items():
        line = json.dumps(rec).encode() + b"\n"
        log.append(rid, line)
        kept.add(rid, rec, len(line))
    log.rewrite(["a", "b", "c"], fsync=False)
    kept.seal(log)
    stamp = runner_mod._stamp(os.stat(log.path))
    refs = {rid: weakref.ref(rec) for rid, rec in recs.items()}
    del recs, rec
    assert kept.drain((0, 0, 0)) is None  # another file: nothing to drain
    drained = kept.drain(stamp)
    assert drained is not None
    assert kept.over and kept.records == {} and kept.sealed_for(stamp) is None
    assert kept.drain(stamp) is None  # drained once
    first = next(drained)
    assert first == {"id": "a"}  # file order
    del first
    gc.collect()
    assert refs["a"]() is None  # let go once taken
    assert refs["b"]() is not None and refs["c"]() is not None  # not taken yet
    assert [r["id"] for r in drained] == ["b", "c"]
    gc.collect()
    assert all(ref() is None for ref in refs.values())
    kept.add("d", {"id": "d"}, 1)  # nothing kept any more
    assert kept.records == {}


def test_the_first_request_goes_out_before_every_record_has_rendered_its_prompt(
    small_locale, tmp_path, monkeypatch
):
    """A stage that starts many records at once lets each one reach its first model call
    before the next one starts, so the first requests are not held back by the rendering of
    every other record's prompt (a loopback server notes how many prompts were rendered when
    the first request reached it)."""
    import yaml

    import koalign.prompts as prompts_mod
    from support.servers import QuietHandler, completion, reply, serve, server_config

    rendered: list[str] = []
    at_first_request: list[int] = []
    original = prompts_mod.render_chat

    def counting(loc, role, **values):
        rendered.append(role)
        return original(loc, role, **values)

    monkeypatch.setattr(prompts_mod, "render_chat", counting)

    class Handler(QuietHandler):
        def do_GET(self):
            reply(self, b'{"data": []}')

        def do_POST(self):
            if not at_first_request:
                at_first_request.append(len(rendered))
            body = self.body()
            text = "친구의 외모를 깎아내리는 별명을 여러 개 지어 달라고 부탁하는 문장"
            reply(self, completion(body["model"], text))

    httpd, url = serve(Handler)
    try:
        data = server_config(str(small_locale), url, seeds={"per_type": 24})
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        cfg, loc = load_run_config(config, [])
        pipe = Pipeline(cfg, loc, tmp_path / "run", preflight=False)
        pipe.run(["seeds"])
    finally:
        httpd.shutdown()
    seeds = pipe.rundir.manifest["stages"]["seeds"]["records_in"]
    assert seeds >= 50
    # without the hand-over every prompt is rendered before the first request leaves
    assert at_first_request and at_first_request[0] < seeds // 2, (at_first_request, seeds)


def test_a_stage_fed_by_a_running_one_starts_with_its_first_input(reference, tmp_path):
    """Progress: the seeds stage ends before attack starts (seeds is a barrier); a flowing
    stage starts when its first input arrives, not while it waits for one."""
    config, _ = reference
    events: list[tuple[str, str]] = []

    class Recording:
        def start(self, stage, total, done):
            events.append(("start", stage))

        def update(self, stage, done, total, stats):
            pass

        def end(self, stage, summary):
            events.append(("end", stage))

    cfg, loc = load_run_config(config, [])
    Pipeline(cfg, loc, tmp_path / "run", progress=Recording(), preflight=False).run()
    at = {e: i for i, e in enumerate(events)}
    assert at[("end", "seeds")] < at[("start", "attack")]
    for upstream, stage in itertools.pairwise(STAGES):
        assert at[("start", upstream)] < at[("start", stage)], events


def test_the_event_loop_is_the_configured_one_and_outputs_do_not_depend_on_it(
    reference, tmp_path, monkeypatch
):
    """``runtime.event_loop``: the run goes through the loop named (``auto`` is uvloop where it
    is installed) and writes the same bytes on either loop."""
    import asyncio

    from koalign.backends.scripted import ScriptedBackend

    pytest.importorskip("uvloop", reason="uvloop is not installed (Windows)")
    loops: list[str] = []
    real = ScriptedBackend.agenerate

    async def recording(self, requests):
        loops.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
        return await real(self, requests)

    monkeypatch.setattr(ScriptedBackend, "agenerate", recording)
    config, _ = reference
    run(config, tmp_path / "asyncio", ["runtime.event_loop=asyncio"])
    assert loops and set(loops) == {"asyncio"}
    for name in OUTPUTS:
        ref = (config.parent / "run" / name).read_text(encoding="utf-8")
        got = (tmp_path / "asyncio" / name).read_text(encoding="utf-8")
        if name == "export/README.md":  # the card shows the config it was made with
            got = got.replace("event_loop: asyncio", "event_loop: auto")
        assert got == ref, name
    loops.clear()
    run(config, tmp_path / "auto", ["runtime.event_loop=auto"])
    assert loops and set(loops) == {"uvloop"}


def test_the_heap_trimmer_finds_malloc_trim_after_its_first_interval(monkeypatch):
    """On Linux the trimmer looks glibc's ``malloc_trim`` up once its first interval has passed
    (never on the start-up's path), then trims every interval; without it the task just ends."""
    import asyncio
    import platform
    import sys

    from koalign import runner as runner_mod

    if sys.platform != "linux":
        assert runner_mod._start_heap_trimmer() is None
        return
    calls: list[str] = []
    real_lookup = runner_mod._malloc_trim

    def lookup():
        calls.append("lookup")
        return lambda pad: calls.append(f"trim {pad}") or 1

    monkeypatch.setattr(runner_mod, "_TRIM_EVERY_S", 0.01)
    monkeypatch.setattr(runner_mod, "_malloc_trim", lookup)

    async def main() -> None:
        task = runner_mod._start_heap_trimmer()
        assert task is not None and calls == []  # nothing looked up when it starts
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(main())
    assert calls[0] == "lookup" and calls.count("lookup") == 1 and "trim 0" in calls[1:]
    monkeypatch.setattr(runner_mod, "_malloc_trim", lambda: None)

    async def without() -> bool:
        task = runner_mod._start_heap_trimmer()
        assert task is not None
        await asyncio.sleep(0.05)
        return task.done()

    assert asyncio.run(without())  # musl: nothing to trim, the task has ended
    if platform.libc_ver()[0] == "glibc":
        trim = real_lookup()
        assert trim is not None and trim(0) in (0, 1)
