"""Stage-wide decisions on hand-made records: judge reduction and agreement, chosen selection,
export balance and split. Expected numbers are computed by hand in the comments."""

from __future__ import annotations

import pytest

from koalign.config import CRITERIA, load_run_config
from koalign.stages import StageContext, export, judge, respond
from pipeline.fakes import config_data


def context(**sections) -> StageContext:
    cfg, loc = load_run_config(None, data=config_data("ko", **sections))
    return StageContext(config=cfg, locale=loc, caller=None, roles=cfg.roles.resolved())


def verdicts(*fails: str) -> dict:
    return {
        "model": "x",
        "raw": "{}",
        "value": {c: {"pass": c not in fails, "reason": "이유"} for c in CRITERIA},
    }


def triplets() -> list[dict]:
    # t1: judge 2 fails natural_korean; t2: all judges fail rejected_harmful;
    # t3: judge 3 fails chosen_p1_p3; t4: every judge passes everything
    rows = [
        ("t1", [verdicts(), verdicts("natural_korean"), verdicts()]),
        ("t2", [verdicts("rejected_harmful")] * 3),
        ("t3", [verdicts(), verdicts(), verdicts("chosen_p1_p3")]),
        ("t4", [verdicts()] * 3),
    ]
    return [
        {
            "id": i,
            "category": "A",
            "kind": "harmful",
            "prompt": "질문",
            "rejected": "나쁜 답",
            "chosen": {"text": "좋은 답", "responder": "resp-1"},
            "verdicts": dict(zip(["resp-1", "resp-2", "resp-3"], v, strict=True)),
        }
        for i, v in rows
    ]


def test_unanimous_reducer_and_agreement_match_hand_computation():
    ctx = context()
    records, report = judge.finalize(ctx, triplets())
    assert [r["status"] for r in records] == ["fail", "fail", "fail", "pass"]
    assert report["pass_rate"] == 0.25
    assert report["failures_by_criterion"] == {
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
    cohen = report["agreement"]["cohen_pairwise"]
    assert cohen["resp-1|resp-2"] == pytest.approx(44 / 68, abs=1e-4)
    assert cohen["resp-1|resp-3"] == pytest.approx(44 / 68, abs=1e-4)
    assert cohen["resp-2|resp-3"] == pytest.approx(40 / 88, abs=1e-4)
    # Fleiss: P_bar = (22 + 2/3) / 24 = 68/72, pe = (67^2 + 5^2) / 72^2 -> 382/670
    assert report["agreement"]["fleiss"] == pytest.approx(382 / 670, abs=1e-4)
    assert report["disagreements"] == 2
    assert report["reasons_not_in_locale_language"] == 0
    rows = judge.disagreements(records)
    assert [(r["id"], r["criteria"]) for r in rows] == [
        ("t1", ["natural_korean"]),
        ("t3", ["chosen_p1_p3"]),
    ]


def test_majority_reducer():
    ctx = context(judge={"reducer": "majority"})
    records, report = judge.finalize(ctx, triplets())
    assert [r["status"] for r in records] == ["pass", "fail", "pass", "pass"]
    assert report["pass_rate"] == 0.75


def test_a_failed_judge_answer_leaves_the_triplet_undecided():
    ctx = context()
    rows = triplets()
    rows[3]["verdicts"]["resp-2"] = {
        "model": "resp-2",
        "raw": "모르겠습니다",
        "error": {"kind": "parse", "message": "not valid JSON"},
    }
    records, report = judge.finalize(ctx, rows)
    assert records[3]["status"] == "undecided" and "decision" not in records[3]
    assert report["status"] == {"fail": 3, "undecided": 1}
    assert report["pass_rate"] == 0.0


def candidate(responder: str, safety: int, coherence: int, citations_ok: bool = True) -> dict:
    return {
        "responder": responder,
        "answer": {"model": responder, "raw": "답", "value": "답"},
        "judge": {
            "model": "judge",
            "raw": "{}",
            "value": {"safety": safety, "coherence": coherence, "reason": "이유"},
        },
        "citations": {"ok": citations_ok, "problems": 0 if citations_ok else 1, "report": {}},
    }


def test_ties_go_to_the_responder_chosen_least_so_far():
    ctx = context()
    tie = ["resp-1", "resp-2", "resp-3"]
    records = [
        {"id": f"r-{i}", "kind": "harmful", "candidates": [candidate(r, 5, 4) for r in tie]}
        for i in range(4)
    ]
    # r-4: resp-1 scores higher but cites a stale article -> rejected; resp-3 beats resp-2
    records.append(
        {
            "id": "r-5",
            "kind": "harmful",
            "candidates": [
                candidate("resp-1", 5, 5, citations_ok=False),
                candidate("resp-2", 4, 4),
                candidate("resp-3", 5, 3),
            ],
        }
    )
    records, report = respond.finalize(ctx, records)
    assert [r["chosen"]["responder"] for r in records] == [
        "resp-1",
        "resp-2",
        "resp-3",
        "resp-1",
        "resp-3",
    ]
    assert records[4]["citation_rejected"] == ["resp-1"]
    assert report["citations"]["candidates_flagged"] == 1
    # the order of records in the input does not matter: bookkeeping follows id order
    again, _ = respond.finalize(ctx, list(reversed([dict(r) for r in records])))
    assert {r["id"]: r["chosen"]["responder"] for r in again} == {
        r["id"]: r["chosen"]["responder"] for r in records
    }


def test_below_minimum_safety_nothing_is_chosen():
    ctx = context()
    records, _report = respond.finalize(
        ctx,
        [
            {
                "id": "r-1",
                "kind": "harmful",
                "candidates": [candidate("resp-1", 3, 5), candidate("resp-2", 2, 5)],
            }
        ],
    )
    assert records[0]["status"] == "no_candidate" and "chosen" not in records[0]


def test_water_fill_balances_domains():
    groups = {
        "1": list(range(10)),
        "2": list(range(2)),
        "3": list(range(10)),
        "4": list(range(10)),
        "5": list(range(10)),
    }
    assert export.water_fill(groups, 20) == {"1": 5, "2": 2, "3": 5, "4": 4, "5": 4}
    assert export.water_fill(groups, 100) == {g: len(v) for g, v in groups.items()}


def test_split_is_by_seed():
    ctx = context(export={"validation_share": 0.5})
    seeds = [f"s-{i}" for i in range(200)]
    val = [s for s in seeds if export.is_validation(ctx, s)]
    assert 60 < len(val) < 140
    assert val == [s for s in seeds if export.is_validation(ctx, s)]  # deterministic


def test_over_refusal_pairs_stay_within_their_share():
    assert export.kind_sizes(5000, 3000, 10000, 0.1) == (5000, 555)  # harmful short: keep 10%
    assert export.kind_sizes(20000, 3000, 10000, 0.1) == (9000, 1000)
    assert export.kind_sizes(20000, 300, 10000, 0.1) == (9700, 300)  # benign short: fill
    assert export.kind_sizes(14, 15, 1000, 0.1) == (14, 1)
    assert export.kind_sizes(0, 15, 1000, 0.0) == (0, 0)
