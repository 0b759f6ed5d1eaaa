"""The ideal-time simulator of bench/bench_flow.py, on call chains small enough to follow by
hand."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from bench_flow import C, Chains, Par, Seq, ideal  # noqa: E402


def test_stage_priority_can_beat_first_come_first_served():
    # One slot per model, 1 s per call. Attack: A0 = a (then respond R = j), A1 = j, j, a and
    # A2 = j. First come, first served: at t = 1, R (from A0) queues on j before A1's second
    # call, so j serves A2, R, A1b and A1's last call on `a` ends at 5 s. Serving the attack
    # stage first: j serves A2, A1b, then R, while A1's last call runs on `a`: 4 s.
    ch = Chains(
        seeds=[],
        attack=[
            (Seq((C("a"),)), ["c0"]),
            (Seq((C("j"), C("j"), C("a"))), []),
            (Seq((C("j"),)), []),
        ],
        respond={"c0": (Seq((C("j"),)), None)},
        judge={},
    )
    assert ideal(ch, 1, 1.0, barriers=False) == 5.0
    assert ideal(ch, 1, 1.0, barriers=False, stage_priority=True) == 4.0


def test_parallel_calls_and_a_seeds_barrier():
    # Two seeds, then one attack record whose two turns run in parallel on two targets, each
    # judged on the same judge. Two slots per model: 1 + 1 + 1 s. One slot: the seeds and the
    # two judge calls go one after the other: 2 + 1 + 2 s.
    ch = Chains(
        seeds=[Seq((C("gen"),)), Seq((C("gen"),))],
        attack=[(Seq((Par((Seq((C("t1"), C("j"))), Seq((C("t2"), C("j"))))),)), [])],
        respond={},
        judge={},
    )
    assert ideal(ch, 2, 1.0, barriers=False) == 3.0
    assert ideal(ch, 1, 1.0, barriers=False) == 5.0
