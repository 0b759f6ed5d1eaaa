"""Stage D, ``judge``: the filter judges check each triplet on six criteria.

Each judge returns a verdict (pass/fail) and a Korean reason per criterion. The reducer
(:mod:`koalign.agreement`, one documented tie rule) is ``unanimous`` (every judge passes every
criterion, as in the paper) or ``majority`` (more than half of the judges pass each criterion;
a tie fails). A triplet with an unusable judge answer is ``undecided``: never passed or failed.
The report gives the pass rate, failures per criterion, each judge's pass rate, pairwise
Cohen's kappa and Fleiss' kappa (over all criteria and per criterion); triplets on which judges
disagree go to ``judge_disagreements.jsonl`` for human review.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from koalign.agreement import Reducer, fleiss_kappa, pairwise_cohen, percent_agreement, reduce
from koalign.gates import check_verdict
from koalign.jsonio import digest, write_jsonl_atomic
from koalign.stages.base import (
    Call,
    Frozen,
    RoleSpec,
    Stage,
    StageContext,
    StageReport,
    call,
    request,
)
from koalign.stages.respond import Triplet
from koalign.stages.verdicts import CRITERIA, FILTER_SCHEMA, FilterVerdict, parse_filter
from koalign.types import Message

NAME = "judge"
DISAGREEMENTS = "judge_disagreements.jsonl"


class JudgeConfig(BaseModel):
    """The ``judge:`` section."""

    model_config = ConfigDict(extra="forbid")

    reducer: Reducer = Field(
        "unanimous", description="How judges' per-criterion verdicts are combined."
    )


class JudgeItem(Frozen):
    """The work item of one triplet: its record id (``'t-'`` + a digest of the whole triplet) and
    the triplet."""

    id: str
    triplet: Triplet


class JudgedTriplet(Frozen):
    """One line of judge.jsonl: a triplet and its filter verdicts."""

    id: str = Field(description="'t-' + a digest of the whole triplet.")
    triplet: Triplet
    verdicts: dict[str, Call[FilterVerdict]] = Field(description="Judge name -> its verdicts.")
    decision: dict[str, bool] | None = Field(None, description="Criterion -> reduced verdict.")
    status: Literal["pass", "fail", "undecided"] = "undecided"
    disagreement: list[str] = Field(
        default_factory=list, description="Criteria on which the judges disagree."
    )
    reasons_off_language: int | None = Field(
        None,
        description="Reasons (over every judge and criterion) whose share of letters in the "
        "locale's script is below 0.5 (:data:`OFF_LANGUAGE_BELOW`); counted when the record is "
        "made, so the report does not read every reason again. None: not counted (the report "
        "counts it then).",
    )


#: A judge's reason is counted as not in the locale's language when its script ratio is below
#: this share (see :meth:`koalign.locale.Locale.script_ratio`).
OFF_LANGUAGE_BELOW = 0.5


def off_language_reasons(ctx: StageContext, verdicts: dict[str, Call[FilterVerdict]]) -> int:
    """How many reasons of ``verdicts`` (every judge, every criterion) are not in the locale's
    script (:data:`OFF_LANGUAGE_BELOW`)."""
    ratio = ctx.locale.script_ratio
    return sum(
        ratio(getattr(f.value, c).reason) < OFF_LANGUAGE_BELOW
        for f in verdicts.values()
        if f.value is not None
        for c in CRITERIA
    )


class JudgeReport(StageReport):
    """Report of the judge stage (record unit: triplets)."""

    status: dict[str, int] = Field(default_factory=dict)
    pass_rate: float | None = None
    failures_by_criterion: dict[str, int] = Field(default_factory=dict)
    judge_pass_rate: dict[str, float | None] = Field(default_factory=dict)
    reasons_not_in_locale_language: int = 0
    disagreements: int = 0
    unanimity: float | None = None
    agreement: dict[str, Any] = Field(default_factory=dict)
    agreement_by_criterion: dict[str, Any] = Field(default_factory=dict)


def build_prompt(ctx: StageContext, t: Triplet) -> tuple[Message, ...]:
    """The filter judge's chat for one triplet: category, harm type (None for benign pairs), kind,
    prompt, rejected and chosen answers, the category's policy and the six criteria.

    Raises:
        LocaleError: the triplet's category is not in the taxonomy.
    """
    category = ctx.locale.taxonomy.category(t.category)
    htype = next((x for x in category.types if x.id == t.type), None)
    return ctx.render(
        "filter_judge",
        category=category,
        type=htype,
        kind=t.kind,
        prompt=t.prompt,
        rejected=t.rejected,
        chosen=t.chosen.text,
        policy=ctx.policy(category.id),
        criteria=CRITERIA,
    )


def decide_one(rule: Reducer, verdicts: dict[str, Call[FilterVerdict]]) -> dict[str, Any]:
    """Decision fields of one triplet from its judges' verdicts."""
    values = [v.value for v in verdicts.values()]
    if any(v is None for v in values):
        return {"status": "undecided", "decision": None, "disagreement": []}
    decision = {c: reduce([v.passes(c) for v in values if v is not None], rule) for c in CRITERIA}
    disagreement = [c for c in CRITERIA if len({v.passes(c) for v in values if v is not None}) > 1]
    status = "pass" if all(decision.values()) else "fail"
    return {"status": status, "decision": decision, "disagreement": disagreement}


class JudgeStage(Stage[Triplet, JudgeItem, JudgedTriplet, JudgedTriplet]):
    """Stage D: records flow; the agreement statistics are a report over the final file."""

    name = NAME
    Config = JudgeConfig
    Record = JudgedTriplet
    Output = JudgedTriplet
    Report = JudgeReport
    roles = (
        RoleSpec(
            "filter_judges",
            "Judges of the six-criteria filter (default: the responders, as in the paper).",
            many=True,
            default="responders",
        ),
    )
    templates = ("filter_judge",)
    uses_policy = True
    files = (DISAGREEMENTS,)
    summary = "three judges check each triplet on six criteria; unanimity by default"

    def plan(self, ctx: StageContext, inp: Triplet | None) -> list[JudgeItem]:
        """One work item per triplet."""
        assert inp is not None
        return [JudgeItem(id="t-" + digest(inp.model_dump(mode="json"), n=16), triplet=inp)]

    async def process(self, ctx: StageContext, item: JudgeItem) -> JudgedTriplet:
        """Every filter judge's verdicts on one triplet (the same prompt to each, in parallel),
        reduced by ``judge.reducer`` (:func:`decide_one`)."""
        msgs = build_prompt(ctx, item.triplet)
        judges = ctx.roles["filter_judges"]
        caller = ctx.caller
        assert caller is not None

        async def one(j: str) -> Call[FilterVerdict]:
            req = request(msgs, tag=f"{NAME}/filter_judge", schema=FILTER_SCHEMA)
            return check_verdict(await call(ctx, j, req, parse_filter), msgs)

        results = await caller.gather(*(one(j) for j in judges))
        verdicts = dict(zip(judges, results, strict=True))
        cfg: JudgeConfig = ctx.section(NAME)
        return JudgedTriplet(
            id=item.id,
            triplet=item.triplet,
            verdicts=verdicts,
            **decide_one(cfg.reducer, verdicts),
            reasons_off_language=off_language_reasons(ctx, verdicts),
        )

    def calls(self, record: JudgedTriplet) -> list[Call[Any]]:
        """One call per filter judge."""
        return list(record.verdicts.values())

    def outputs(self, ctx: StageContext, record: JudgedTriplet) -> list[JudgedTriplet]:
        """The judged triplet when it passed, else nothing."""
        return [record] if record.status == "pass" else []

    def drop_reason(self, record: JudgedTriplet) -> str | None:
        """``fail`` or ``undecided`` (an unusable judge answer); None for a pass."""
        return None if record.status == "pass" else record.status

    def report(
        self, ctx: StageContext, records: Callable[[], Iterator[JudgedTriplet]]
    ) -> JudgeReport:
        """Statuses, the pass rate over decided triplets, failures per criterion, each judge's pass
        rate over all criteria, reasons not in the locale's script (ratio < 0.5), disagreements, the
        unanimous share, and agreement (pairwise Cohen's kappa, Fleiss' kappa with two judges or
        more, pairwise percent agreement) overall and per criterion; rates 0-1 rounded to 4 places,
        None when there is nothing to rate."""
        judges = ctx.roles["filter_judges"]
        status: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        ratings: dict[str, list[bool | None]] = {j: [] for j in judges}
        per_criterion: dict[str, dict[str, list[bool | None]]] = {
            c: {j: [] for j in judges} for c in CRITERIA
        }
        items: list[list[bool]] = []
        items_c: dict[str, list[list[bool]]] = {c: [] for c in CRITERIA}
        off_language = disagreements = unanimous = decided = 0
        for r in records():
            status[r.status] += 1
            off = r.reasons_off_language
            off_language += off if off is not None else off_language_reasons(ctx, r.verdicts)
            if r.decision is not None:
                decided += 1
                failures.update(c for c, ok in r.decision.items() if not ok)
                disagreements += bool(r.disagreement)
                unanimous += not r.disagreement
            for c in CRITERIA:
                labels: list[bool | None] = []
                for j in judges:
                    frag = r.verdicts.get(j)
                    v = frag.value if frag is not None else None
                    label = v.passes(c) if v is not None else None
                    ratings[j].append(label)
                    per_criterion[c][j].append(label)
                    labels.append(label)
                if all(x is not None for x in labels):
                    full = [bool(x) for x in labels]
                    items.append(full)
                    items_c[c].append(full)
        many = len(judges) > 1
        return JudgeReport(
            status=dict(sorted(status.items())),
            pass_rate=_r(status["pass"] / decided) if decided else None,
            failures_by_criterion={c: failures[c] for c in CRITERIA},
            judge_pass_rate={j: _mean([x for x in ratings[j] if x is not None]) for j in judges},
            reasons_not_in_locale_language=off_language,
            disagreements=disagreements,
            unanimity=_r(unanimous / decided) if decided else None,
            agreement={
                "cohen_pairwise": _round(pairwise_cohen(ratings)),
                "fleiss": _r(fleiss_kappa(items) if many else None),
                "percent_pairwise": {
                    f"{a}|{b}": _r(percent_agreement(ratings[a], ratings[b]))
                    for i, a in enumerate(sorted(judges))
                    for b in sorted(judges)[i + 1 :]
                },
            },
            agreement_by_criterion={
                c: {
                    "cohen_pairwise": _round(pairwise_cohen(per_criterion[c])),
                    "fleiss": _r(fleiss_kappa(items_c[c]) if many else None),
                }
                for c in CRITERIA
            },
        )

    def write_files(
        self, ctx: StageContext, records: Callable[[], Iterator[JudgedTriplet]], root: Path
    ) -> None:
        """judge_disagreements.jsonl: triplets on which the judges disagree."""
        write_jsonl_atomic(
            root / DISAGREEMENTS,
            (disagreement_row(r) for r in records() if r.disagreement and r.decision is not None),
            fsync=ctx.config.runtime.fsync,
        )


def disagreement_row(r: JudgedTriplet) -> dict[str, Any]:
    """A row for human review."""
    t = r.triplet
    return {
        "id": r.id,
        "category": t.category,
        "kind": t.kind,
        "prompt": t.prompt,
        "rejected": t.rejected,
        "chosen": t.chosen.text,
        "criteria": r.disagreement,
        "decision": r.decision,
        "verdicts": {
            j: f.value.model_dump(by_alias=True) if f.value is not None else None
            for j, f in r.verdicts.items()
        },
    }


def _mean(xs: list[bool]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _round(d: dict[str, float | None]) -> dict[str, float | None]:
    return {k: _r(v) for k, v in d.items()}


STAGE = JudgeStage()
