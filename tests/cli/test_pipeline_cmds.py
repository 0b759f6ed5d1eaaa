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


def test_offline_dry_run_prints_figures_not_python_values(tmp_path):
    import re

    from support.servers import ROOT, cli

    config = str(ROOT / "examples" / "hosted.yaml")
    out = cli("run", config, "-o", str(tmp_path / "run"), "--dry-run", "--offline")
    assert out.returncode == 0, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("records at most:")]
    assert re.fullmatch(
        r"records at most: seeds [\d,]+, attack [\d,]+, respond [\d,]+, judge [\d,]+, "
        r"export [\d,]+",
        line,
    ), line
    assert re.search(r"\d,\d{3}", line)  # thousands separated, as the table's figures
    assert "{'" not in out.stderr and "['" not in out.stderr and "None" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_the_cost_bound_names_the_models_it_leaves_out():
    from koalign.cli.pipeline_cmds import cost_lines

    models = {"a": {}, "b": {}, "c": {}}
    fix = "set price_in_per_1m / price_out_per_1m"
    every = {"models": models, "cost_at_most": 12.5, "unpriced": [], "half_priced": []}
    assert cost_lines(every) == ["cost at most: 12.50"]
    some = {**every, "unpriced": ["b", "c"], "half_priced": ["a"]}
    assert cost_lines(some) == [
        "cost at most: 12.50 for the priced models (a)",
        f"no price set for: b, c ({fix}); their cost is not in the total",
        "only one of price_in_per_1m / price_out_per_1m set for: a (the other is counted as 0)",
    ]
    none = {**every, "cost_at_most": None, "unpriced": ["a", "b", "c"]}
    assert cost_lines(none) == [f"cost: n/a, no model has a price ({fix} for a bound)"]


def test_a_log_file_gets_plain_progress_lines_per_stage(monkeypatch):
    """When stderr is a file, each running stage writes a start line and then a plain progress
    line at most every ``line_every_s`` seconds (no live bar), and its table at the end."""
    import io
    import re

    from rich.console import Console

    import koalign.cli.pipeline_cmds as cmds

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    monkeypatch.setattr(cmds, "err", console)
    clock = [100.0]
    monkeypatch.setattr(cmds.time, "monotonic", lambda: clock[0])
    progress = cmds.RichProgress(line_every_s=30.0)
    stats = {"calls": 1200, "cache_hits": 3, "tokens_in": 50000, "tokens_out": 7000}
    progress.start("attack", None, 0)
    progress.start("seeds", 40, 40)  # skipped as already done: no start line
    progress.end("seeds", {"status": "done", "records_in": 40})
    progress.update("attack", 10, None, stats)  # too soon after the start: no line
    clock[0] += 31
    progress.update("attack", 120, None, stats)
    clock[0] += 5
    progress.update("attack", 130, None, stats)  # too soon again
    clock[0] += 30
    progress.update("attack", 400, 400, stats)
    progress.end("attack", {"status": "done", "records_in": 400, "calls": 1500, "seconds": 30.532})
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")  # as the log lines
    text = buf.getvalue().splitlines()
    dated = ("records ·", ": started", ": done")
    assert all(stamp.match(x) for x in text if any(d in x for d in dated))
    lines = [stamp.sub("", x).rstrip() for x in text]
    lines = [x for x in lines if x.startswith(("attack:", "seeds:"))]
    assert lines == [
        "attack: started",
        "seeds: done",
        "attack: 120 records · calls 1200 · cache 3 · tok 50000/7000 · 31 s",
        "attack: 400/400 records · calls 1200 · cache 3 · tok 50000/7000 · 66 s",
        "attack: done",
    ]
    table = buf.getvalue().split("attack: done", 1)[1]
    assert "1,500" in table and "30.5" in table and "30.532" not in table  # figures for people
