"""Failed model calls in an evaluation, and when they leave its result incomplete.

A call that failed after its retries (server down, connection refused, timeouts, server errors)
says nothing about the model or the judge: it is counted as a **call failure**, apart from the
judges' parse failures and the model's bad answers, and the item is left out of every rate. The
raw rows stay on disk; failed calls are never cached, so rerunning the same command calls only
them again (every answered call comes from the cache).

An evaluation section carries ``call_failures`` (items without a result because a call failed:
the evaluated model's, or every judge's for that answer), split into ``call_failures_model``
and ``call_failures_judges``, and ``call_failure_share`` (of the section's items). A failed call
is never also a generation failure, a parse failure, a wrong or an out-of-choice answer.

:func:`incomplete` applies the rule the ``koalign eval`` commands exit on (code
:data:`EXIT_CALLS_FAILED`): no figure could be computed (the section has items but nothing was
judged or scored, whatever the cause: failed calls, judge parse failures, generation failures),
more than :data:`MAX_CALL_FAILURE_SHARE` of the items have no result because of failed
calls, or more than :data:`MAX_PARSE_FAILURE_SHARE` of the answers put to the judges have no
verdict because the judges' output could not be read. :func:`section_problems` applies it to
a ``summary.json`` section by name (every ``eval`` command and ``eval all`` go through it),
knowing which count is each section's items (:data:`SECTION_COUNTS`).
"""

from __future__ import annotations

from typing import Any

MAX_CALL_FAILURE_SHARE = 0.05
"""Above this share of items lost to failed calls, an evaluation's figures are incomplete."""

MAX_PARSE_FAILURE_SHARE = 0.2
"""Above this share of the answers put to the judges that no judge verdict could be read from
(judge parse failures), a judged figure is incomplete: it would rest on the answers the judge
happened to format, not on the sample (the same bound as a run's ``runtime.max_error_rate``)."""

EXIT_CALLS_FAILED = 3
"""Exit code of ``koalign eval`` commands whose figures are incomplete: no figure at all, too
many items lost to failed calls, or too many answers whose judge verdict could not be read."""


def call_failure_info(n: int, model_failed: int, judges_failed: int) -> dict[str, Any]:
    """The summary fields for ``n`` items, of which ``model_failed`` have no answer and
    ``judges_failed`` no verdict because calls failed."""
    total = model_failed + judges_failed
    return {
        "call_failures": total,
        "call_failures_model": model_failed,
        "call_failures_judges": judges_failed,
        "call_failure_share": total / n if n else None,
    }


_CAUSES = (
    ("parse_failures", "judge parse failures"),
    ("generation_failures", "generation failures"),
    ("unparseable", "unparseable answers"),
    ("out_of_choice", "out-of-choice answers"),
)
"""Per-item failure counts a section may carry (key, what it counts), named when nothing
could be judged."""


def incomplete(
    section: dict[str, Any],
    judged_key: str = "n_judged",
    n_key: str = "n",
    *,
    empty_is_failure: bool = True,
) -> str | None:
    """Why a summary ``section`` is unusable, or ``None``.

    ``judged_key`` names the count of items the figure is computed over, ``n_key`` the count of
    all items. A section with items but no figure at all (nothing judged or scored) is unusable
    whatever the cause: failed calls, judge parse failures, generation failures
    (``empty_is_failure=False`` for a section whose figure may legitimately be over nothing,
    e.g. citations when the answers cite nothing). Otherwise judge parse failures make it
    unusable above :data:`MAX_PARSE_FAILURE_SHARE` of the answers put to the judges (the judged
    ones and the parse failures), and failed calls above :data:`MAX_CALL_FAILURE_SHARE` of the
    items.
    """
    failed = int(section.get("call_failures") or 0)
    n = int(section.get(n_key) or 0)
    judged = section.get(judged_key)
    where = (
        f"{section.get('call_failures_model', 0)} of the evaluated model's calls and "
        f"{section.get('call_failures_judges', 0)} answers' judge calls failed"
    )
    if judged == 0 and n and (failed or empty_is_failure):
        causes = [f"{section[k]} {what}" for k, what in _CAUSES if section.get(k)]
        if failed:
            causes.insert(0, where)
        why = "; ".join(causes) or "no item has a result"
        return (
            f"no figure could be computed: {why} (0 of {n} items judged); see the rows for "
            "the raw answers"
        )
    parsed_out = int(section.get("parse_failures") or 0)
    if parsed_out and isinstance(judged, int) and not isinstance(judged, bool):
        asked = judged + parsed_out
        share = parsed_out / asked
        if share > MAX_PARSE_FAILURE_SHARE:
            return (
                f"judge parse failures: {parsed_out} of the {asked} answers put to the judges "
                f"({share:.0%}, more than {MAX_PARSE_FAILURE_SHARE:.0%}) have no verdict, so "
                f"the figure would rest on {judged} of {n} items"
            )
    if not failed:
        return None
    share = failed / n if n else 1.0
    if share > MAX_CALL_FAILURE_SHARE:
        return (
            f"{where}: {share:.0%} of {n} items have no result, more than "
            f"{MAX_CALL_FAILURE_SHARE:.0%}"
        )
    return None


def calls_failed(problem: str) -> bool:
    """Whether a problem of :func:`incomplete` comes from failed calls (rerunning once the
    servers answer may fix it), rather than from answers that could not be judged."""
    return "calls failed" in problem


def problem_label(problem: str) -> str:
    """The label a problem of :func:`incomplete` is shown under: ``calls failed``, ``no
    figure`` (nothing judged or scored) or ``incomplete figure`` (too many judge parse
    failures)."""
    if calls_failed(problem):
        return "calls failed"
    return "no figure" if problem.startswith("no figure") else "incomplete figure"


SECTION_COUNTS: dict[str, tuple[str, str]] = {
    "safety": ("n", "n_judged"),
    "overrefusal": ("n", "n_judged"),
    "mtbench": ("n", "n_graded"),
    "kobbq": ("n_answers", "n_scored"),
    "citations": ("n_prompts", "n"),
    "general": ("n", "n_parsed"),
    "judge_calibration": ("n", "n_judged"),
}
"""Section name -> (key of its item count, key of the count its figures are computed over)."""


def section_problems(name: str, section: dict[str, Any]) -> list[str]:
    """What :func:`incomplete` finds in the ``summary.json`` section ``name``: one line per
    unusable part (``general``: its multiple-choice part ``mc``; ``judge_calibration``: each
    task, prefixed by its name); ``[]`` when the figures stand."""
    n_key, judged_key = SECTION_COUNTS.get(name, ("n", "n_judged"))
    if name == "general":
        parts = {"": section.get("mc")}
    elif name == "judge_calibration":
        parts = {f"{task}: ": v for task, v in section.items() if isinstance(v, dict)}
    else:
        parts = {"": section}
    out = []
    for prefix, part in parts.items():
        problem = (
            incomplete(part, judged_key, n_key, empty_is_failure=name != "citations")
            if isinstance(part, dict)
            else None
        )
        if problem:
            out.append(prefix + problem)
    return out
