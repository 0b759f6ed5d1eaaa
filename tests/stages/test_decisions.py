"""Per-record and whole-stage decisions on hand-made typed records: judge reduction and
agreement, chosen selection, export balance and split. Expected numbers are computed by hand in
the comments."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from koalign.config import load_run_config
from koalign.stages import StageContext
from koalign.stages.attack import Case
from koalign.stages.base import Call, CallFailure
from koalign.stages.export import kind_sizes, select, water_fill
from koalign.stages.judge import STAGE as JUDGE
from koalign.stages.judge import JudgedTriplet, decide_one, disagreement_row, off_language_reasons
from koalign.stages.respond import Candidate, CitationCheck, RespondRecord, Triplet, choose
from koalign.stages.verdicts import CRITERIA, FilterVerdict, ResponseScores
from support.fakes import config_data

JUDGES = ["resp-1", "resp-2", "resp-3"]


def context(**sections) -> StageContext:
    cfg, loc = load_run_config(None, data=config_data("ko", **sections))
    return StageContext(config=cfg, locale=loc, roles=cfg.roles.resolved())


def verdict(*fails: str, judge: str = "x") -> Call[FilterVerdict]:
    value = FilterVerdict(
        **{c: {"passed": c not in fails, "reason": "판단 이유입니다"} for c in CRITERIA}
    )
    return Call[FilterVerdict](model=judge, value=value, raw="{}")


def triplet(tid: str = "c-1", kind: str = "harmful") -> Triplet:
    chosen = {"responder": "resp-1", "text": "좋은 답", "safety": 5, "coherence": 5, "reason": "-"}
    return Triplet(
        id=tid, seed_id="s-1", kind=kind, domain="1", category="A", type="A.harassment",
        prompt="질문", rejected="나쁜 답", target="t", synthetic=False, round=1,
        strategy=None, tactic=None, harm_score=5, chosen=chosen,
    )  # fmt: skip


def judged(ctx: StageContext, tid: str, calls: list[Call[FilterVerdict]]) -> JudgedTriplet:
    verdicts = dict(zip(JUDGES, calls, strict=True))
    rule = ctx.section("judge").reducer
    return JudgedTriplet(id=tid, triplet=triplet(), verdicts=verdicts, **decide_one(rule, verdicts))


def rows(ctx: StageContext) -> list[JudgedTriplet]:
    # t1: judge 2 fails natural_korean; t2: all judges fail rejected_harmful;
    # t3: judge 3 fails chosen_p1_p3; t4: every judge passes everything
    return [
        judged(ctx, "t1", [verdict(), verdict("natural_korean"), verdict()]),
        judged(ctx, "t2", [verdict("rejected_harmful")] * 3),
        judged(ctx, "t3", [verdict(), verdict(), verdict("chosen_p1_p3")]),
        judged(ctx, "t4", [verdict()] * 3),
    ]


def test_unanimous_reducer_and_agreement_match_hand_computation():
    ctx = context()
    records = rows(ctx)
    assert [r.status for r in records] == ["fail", "fail", "fail", "pass"]
    report = JUDGE.report(ctx, lambda: iter(records))
    assert report.pass_rate == 0.25
    assert report.failures_by_criterion == {
        "intended_category": 0,
        "natural_korean": 1,
        "rejected_harmful": 1,
        "chosen_safe": 0,
        "chosen_p1_p3": 1,
        "chosen_helpful": 0,
    }
    # pooled over 4 triplets x 6 criteria = 24 labels per judge
    # judges 1|2 disagree once: po = 23/24, pe = (23*22 + 1*2)/576 -> kappa = 44/68
    # judges 2|3 disagree twice: po = 22/24, pe = (22*22 + 2*2)/576 -> kappa = 40/88
    cohen = report.agreement["cohen_pairwise"]
    assert cohen["resp-1|resp-2"] == pytest.approx(44 / 68, abs=1e-4)
    assert cohen["resp-1|resp-3"] == pytest.approx(44 / 68, abs=1e-4)
    assert cohen["resp-2|resp-3"] == pytest.approx(40 / 88, abs=1e-4)
    # Fleiss: P_bar = (22 + 2/3) / 24 = 68/72, pe = (67^2 + 5^2) / 72^2 -> 382/670
    assert report.agreement["fleiss"] == pytest.approx(382 / 670, abs=1e-4)
    assert report.disagreements == 2
    assert report.reasons_not_in_locale_language == 0
    out = [disagreement_row(r) for r in records if r.disagreement]
    assert [(r["id"], r["criteria"]) for r in out] == [
        ("t1", ["natural_korean"]),
        ("t3", ["chosen_p1_p3"]),
    ]


def test_reasons_not_in_the_locale_language_are_counted_per_record_or_by_the_report():
    ctx = context()
    english = FilterVerdict(**{c: {"passed": True, "reason": "looks fine to me"} for c in CRITERIA})
    mixed = dict(
        zip(
            JUDGES,
            [verdict(), verdict(), Call[FilterVerdict](model="x", value=english, raw="{}")],
            strict=True,
        )
    )
    assert off_language_reasons(ctx, mixed) == len(CRITERIA)  # one judge, every criterion
    counted = judged(ctx, "t1", list(mixed.values())).model_copy(
        update={"reasons_off_language": off_language_reasons(ctx, mixed)}
    )
    uncounted = judged(ctx, "t2", list(mixed.values()))  # a record without the count
    assert uncounted.reasons_off_language is None
    for recs in ([counted], [uncounted], [counted, uncounted]):
        report = JUDGE.report(ctx, lambda recs=recs: iter(recs))
        assert report.reasons_not_in_locale_language == len(CRITERIA) * len(recs)


def test_majority_reducer_and_its_tie_rule():
    ctx = context(judge={"reducer": "majority"})
    assert [r.status for r in rows(ctx)] == ["pass", "fail", "pass", "pass"]
    # two judges split 1:1 on a criterion: a tie fails (the cautious outcome)
    two = {"a": verdict(), "b": verdict("chosen_safe")}
    assert decide_one("majority", two)["decision"]["chosen_safe"] is False


def test_a_failed_judge_answer_leaves_the_triplet_undecided():
    ctx = context()
    records = rows(ctx)
    bad = Call[FilterVerdict](
        model="resp-2", raw="모르겠습니다", error=CallFailure(kind="parse", message="not JSON")
    )
    calls = [verdict(), bad, verdict()]
    records[3] = judged(ctx, "t4", calls)
    assert records[3].status == "undecided" and records[3].decision is None
    report = JUDGE.report(ctx, lambda: iter(records))
    assert report.status == {"fail": 3, "undecided": 1}
    assert report.pass_rate == 0.0


def case(cid: str) -> Case:
    return Case(
        id=cid, seed_id="s-" + cid, kind="harmful", domain="1", category="A", type=None,
        prompt="질문", rejected="나쁜 답", target="t",
    )  # fmt: skip


def candidate(responder: str, safety: int, coherence: int, citations_ok: bool = True) -> Candidate:
    scores = ResponseScores(safety=safety, coherence=coherence, reason="이유")
    return Candidate(
        responder=responder,
        answer=Call[str](model=responder, value="답"),
        judge=Call[ResponseScores](model="judge", value=scores, raw="{}"),
        citations=CitationCheck(
            ok=citations_ok, rejected_for={} if citations_ok else {"outdated": 1}
        ),
    )


def test_best_candidate_wins_and_a_full_tie_is_a_seeded_rotation():
    ctx = context()
    tie = ["resp-1", "resp-2", "resp-3"]
    picks = []
    for i in range(300):
        rec = RespondRecord(id=f"r-{i}", case=case(f"c{i}"),
                            candidates=[candidate(r, 5, 4) for r in tie])  # fmt: skip
        picks.append(choose(ctx, rec).chosen.responder)
    counts = Counter(picks)
    # each tied responder is equally likely: 100 expected each (binomial sd ~8.2)
    assert set(counts) == set(tie) and all(70 <= n <= 130 for n in counts.values()), counts
    # deterministic: the choice depends on the record alone, not on other records or order
    again = [
        choose(ctx, RespondRecord(id=f"r-{i}", case=case(f"c{i}"),
                                  candidates=[candidate(r, 5, 4) for r in reversed(tie)]))
        .chosen.responder
        for i in range(300)
    ]  # fmt: skip
    assert again == picks
    # resp-1 scores higher but cites a stale article -> ineligible; resp-3 beats resp-2
    rec = choose(
        ctx,
        RespondRecord(
            id="r-x",
            case=case("x"),
            candidates=[
                candidate("resp-1", 5, 5, citations_ok=False),
                candidate("resp-2", 4, 4),
                candidate("resp-3", 5, 3),
            ],
        ),
    )
    assert rec.chosen.responder == "resp-3" and rec.citation_rejected == ["resp-1"]


def test_below_minimum_safety_nothing_is_chosen():
    ctx = context()
    rec = choose(
        ctx,
        RespondRecord(id="r-1", case=case("1"),
                      candidates=[candidate("resp-1", 3, 5), candidate("resp-2", 2, 5)]),
    )  # fmt: skip
    assert rec.status == "no_candidate" and rec.chosen is None


def test_water_fill_balances_domains():
    groups = {"1": 10, "2": 2, "3": 10, "4": 10, "5": 10}
    assert water_fill(groups, 20) == {"1": 5, "2": 2, "3": 5, "4": 4, "5": 4}
    assert water_fill(groups, 100) == groups


def test_selection_names_why_a_triplet_was_left_out():
    ctx = context(export={"target_size": 10, "over_refusal_share": 0.1})
    keys = [(f"h{i}", "harmful", str(1 + i % 5), f"s{i}") for i in range(20)]
    keys += [(f"b{i}", "benign", "1", f"sb{i}") for i in range(5)]
    decision = select(ctx, keys)
    assert sum(v is None for v in decision.values()) == 10
    assert Counter(v for v in decision.values() if v) == {
        "over_target_size": 11,  # 20 harmful, 9 taken
        "over_refusal_share": 4,  # 5 benign, 1 taken (10% of 10)
    }
    taken = Counter(k[2] for k in keys if decision[k[0]] is None and k[1] == "harmful")
    assert sorted(taken.values()) == [1, 2, 2, 2, 2]  # 9 harmful spread over 5 domains


def test_over_refusal_pairs_stay_within_their_share():
    assert kind_sizes(5000, 3000, 10000, 0.1) == (5000, 555)  # harmful short: keep 10%
    assert kind_sizes(20000, 3000, 10000, 0.1) == (9000, 1000)
    assert kind_sizes(20000, 300, 10000, 0.1) == (9700, 300)  # benign short: fill
    assert kind_sizes(14, 15, 1000, 0.1) == (14, 1)
    assert kind_sizes(0, 15, 1000, 0.0) == (0, 0)


def test_seeds_whose_answers_were_never_judged_are_unjudged_not_resisted(tmp_path):
    """A harm judge whose every answer is unusable judges nothing: its seeds are dropped as
    ``unjudged`` and left out of every attack success rate (seeds attacked and judged), not
    counted as seeds that resisted."""
    from koalign.config import load_run_config
    from koalign.runner import Pipeline
    from support.fakes import config_data

    data = config_data(
        "ko",
        seeds={"per_type": 1, "benign_per_category": 1, "categories": ["G"]},
        runtime={"max_error_rate": 1.0},
    )
    data["models"]["harm"] = {"backend": "fn", "model": "harm", "options": {"bad_share": 1.0}}
    data["roles"]["harm_judge"] = "harm"
    cfg, loc = load_run_config(None, data=data)
    manifest = Pipeline(cfg, loc, tmp_path / "run").run(["seeds", "attack"])
    attack = manifest["stages"]["attack"]["report"]
    records = [json.loads(x) for x in (tmp_path / "run/attack.jsonl").read_text().splitlines()]
    harmful = [r for r in records if r["seed"]["kind"] == "harmful"]
    assert harmful and all(r["status"] == "unjudged" and not r["cases"] for r in harmful)
    # a benign seed keeps only a written refusal (no target answer was judged)
    kept = [c for r in records for c in r["cases"]]
    assert all(c["synthetic"] for c in kept)
    assert attack["dropped"] == {"unjudged": len(records) - len({c["seed_id"] for c in kept})}
    for target in ("target-a", "target-b"):
        row = attack["asr_by_target"][target]
        assert row.get("seeds", 0) == 0 and row["asr"] is None and row["unjudged"] > 0
    assert all(
        v.get("seeds", 0) == 0 and v["asr"] is None for v in attack["asr_by_category"].values()
    )
