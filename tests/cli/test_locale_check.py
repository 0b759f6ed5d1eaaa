"""`koalign locale check` says what is old: which fact set, its date and the threshold."""

from __future__ import annotations

import re

from support.servers import cli


def test_the_statute_index_line_says_whose_age_it_gives_and_the_threshold() -> None:
    ok = cli("locale", "check")
    assert ok.returncode == 0, ok.stderr
    (line,) = [ln for ln in ok.stdout.splitlines() if ln.startswith("statute index:")]
    found = re.search(
        r"corpus of (\d{4}-\d\d-\d\d) \((\d+) days old; warned about past 365 days, "
        r"--max-age-days\)",
        line,
    )
    assert found, line
    assert re.search(r"; index built \d{4}-\d\d-\d\d$", line), line
    age = int(found[2])
    stale = cli("locale", "check", "--max-age-days", str(age - 1))
    text = " ".join(stale.stderr.split())
    assert (
        f"statute_index.json.gz: the statute corpus is {age} days old (latest text of "
        f"{found[1]}), past the {age - 1} days of --max-age-days: rebuild it" in text
    ), text
