"""The stage summaries a run prints: figures for people, not Python reprs."""

from __future__ import annotations

from koalign.cli.pipeline_cmds import fmt, highlights


def test_report_values_read_as_figures():
    assert fmt(None) == "n/a"
    assert fmt(0.8333333) == "0.833"
    assert fmt({"a": 1, "b": {"x": 0.5}}) == "a 1, b (x 0.500)"
    assert fmt({}) == "none" and fmt([]) == "none"
    assert fmt(True) == "yes"


def test_stage_lines_show_no_python_values():
    judge = {"report": {"pass_rate": None, "failures_by_criterion": {}, "agreement": {}}}
    lines = highlights("judge", judge)
    assert lines == [
        "pass rate n/a; failures by criterion: none",
        "Fleiss kappa n/a; Cohen pairwise: n/a",
    ]
    respond = {"report": {"citations": {"candidates_checked": 6, "rejected": 1}}}
    assert "citations: candidates_checked 6, rejected 1" in highlights("respond", respond)
    text = " ".join(highlights("respond", respond) + lines)
    assert "None" not in text and "{" not in text and "'" not in text


def test_a_limited_run_does_not_report_the_full_quota_as_a_shortfall():
    seeds = {"report": {"kept_harmful": 3, "kept_benign": 1, "shortfall": 1030}}
    assert "shortfall vs quota 1030" in highlights("seeds", seeds)[0]
    limited = highlights("seeds", seeds, limited=True)[0]
    assert "1030" not in limited and "--limit" in limited
