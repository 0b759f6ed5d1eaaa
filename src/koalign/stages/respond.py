"""Stage C, ``respond``: policy-conditioned safe answers; the best one becomes ``chosen``.

The query judge rates each harmful prompt 1-4 (prompts below ``min_query_score`` are dropped;
benign over-refusal prompts skip it). Every responder answers under the category's policy
(system prompt rendered from policy.yaml); each answer passes the output gates; the response
judge scores each candidate for safety and cultural coherence (1-5 each); the citation
verifier checks every candidate, and a candidate whose citations get a verdict in
``citation_reject`` is not eligible. The best eligible candidate (highest safety + coherence,
then highest safety, at least the configured minimums) is chosen. A full tie goes to a seeded
rotation over the tied responders: each is equally likely, so no responder's style dominates,
and the choice needs no other record (records flow to the judge stage at once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from koalign.cite.report import DEFAULT_REJECT, check_reject, rejection_reasons
from koalign.errors import KoalignError
from koalign.gates import GateConfig, check_text, check_verdict
from koalign.jsonio import digest, stable_int
from koalign.prompts import freeze
from koalign.stages.attack import Case
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
from koalign.stages.verdicts import (
    QUERY_SCHEMA,
    RESPONSE_SCHEMA,
    QueryVerdict,
    ResponseScores,
    parse_query,
    parse_response_scores,
    parse_text_answer,
)
from koalign.types import Message

NAME = "respond"


class RespondConfig(BaseModel):
    """The ``respond:`` section."""

    model_config = ConfigDict(extra="forbid")

    query_judge: bool = Field(True, description="Rate prompt harmfulness and drop low ones.")
    min_query_score: int = Field(2, ge=1, le=4, description="Drop prompts rated below this.")
    min_safety: int = Field(4, ge=1, le=5, description="Chosen candidates need this safety.")
    min_coherence: int = Field(1, ge=1, le=5, description="Chosen candidates need this coherence.")
    min_script_ratio: float = Field(
        0.5, ge=0, le=1, description="Candidates must be in the locale's language (script ratio)."
    )
    citation_check: bool = Field(
        True, description="Check every candidate's statute and hotline citations."
    )
    citation_reject: list[str] = Field(
        default_factory=lambda: sorted(DEFAULT_REJECT),
        description="Citation verdicts that make a candidate ineligible (koalign.cite.VERDICTS; "
        "see docs/citations.md). Other verdicts (e.g. unregistered, unverified) are kept and "
        "counted.",
    )

    @field_validator("citation_reject")
    @classmethod
    def _known_verdicts(cls, value: list[str]) -> list[str]:
        try:
            check_reject(value)
        except KoalignError as exc:
            raise ValueError(exc.render()) from None
        return value

    gates: GateConfig = Field(
        default_factory=lambda: GateConfig(min_chars=20),
        description="Output gates for responders' answers.",
    )


# ----------------------------------------------------------------------------- records
class CitationCheck(Frozen):
    """The citation verifier on one candidate."""

    ok: bool = Field(description="No verdict of `citation_reject` was found.")
    verdicts: dict[str, int] = Field(default_factory=dict, description="Verdicts found, counted.")
    rejected_for: dict[str, int] = Field(
        default_factory=dict, description="The verdicts that made the candidate ineligible."
    )
    report: dict[str, Any] = Field(default_factory=dict, description="The verifier's report.")


class Candidate(Frozen):
    """One responder's answer and what the judge and the verifier said about it."""

    responder: str
    answer: Call[str]
    judge: Call[ResponseScores] | None = None
    citations: CitationCheck | None = None


class Chosen(Frozen):
    """The chosen answer."""

    responder: str
    text: str
    safety: int
    coherence: int
    reason: str


class RespondItem(Frozen):
    """The work item of one case: its record id (``'r-'`` + a digest of the whole case) and the
    case."""

    id: str
    case: Case


class RespondRecord(Frozen):
    """One line of respond.jsonl."""

    id: str = Field(description="'r-' + a digest of the whole case.")
    case: Case
    query: Call[QueryVerdict] | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    chosen: Chosen | None = None
    status: Literal["chosen", "dropped_query", "no_candidate", "error"] = "no_candidate"
    citation_rejected: list[str] = Field(default_factory=list)


class Triplet(Frozen):
    """A prompt with its rejected and chosen answers: the input of the judge stage."""

    id: str = Field(description="The case id.")
    seed_id: str
    kind: Literal["harmful", "benign"]
    domain: str
    category: str
    type: str | None = None
    prompt: str
    rejected: str
    target: str
    synthetic: bool
    round: int
    strategy: str | None = None
    tactic: str | None = None
    harm_score: int | None = None
    chosen: Chosen


class RespondReport(StageReport):
    """Report of the respond stage (record unit: cases in, triplets out)."""

    status: dict[str, int] = Field(default_factory=dict)
    chosen_by_responder: dict[str, int] = Field(default_factory=dict)
    mean_scores: dict[str, dict[str, float]] = Field(default_factory=dict)
    citations: dict[str, Any] = Field(default_factory=dict)
    fanout: dict[str, float] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- pure parts
def build_responder_prompt(ctx: StageContext, case: Case) -> tuple[Message, ...]:
    """The policy system prompt plus the user's prompt."""
    return ctx.render(
        "responder",
        policy=ctx.policy(case.category),
        prompt=case.prompt,
        kind=case.kind,
    )


def system_prompt(ctx: StageContext, category: str, kind: str = "harmful") -> str | None:
    """The responder's system prompt of a category (None when the template has none)."""
    msgs = ctx.render("responder", policy=ctx.policy(category), prompt="", kind=kind)
    return msgs[0].content if msgs[0].role == "system" else None


def build_query_prompt(ctx: StageContext, case: Case) -> tuple[Message, ...]:
    """The query judge's chat: the prompt and its category.

    Raises:
        LocaleError: the case's category is not in the taxonomy.
    """
    return ctx.render(
        "query_judge", prompt=case.prompt, category=ctx.locale.taxonomy.category(case.category)
    )


def build_response_judge_prompt(ctx: StageContext, case: Case, answer: str) -> tuple[Message, ...]:
    """The response judge's chat for one candidate: the prompt, the answer, the case's kind, the
    category's policy and its rubric items."""
    rubric = ctx.locale.rubric.categories.get(case.category)
    return ctx.render(
        "response_judge",
        prompt=case.prompt,
        answer=answer,
        kind=case.kind,
        policy=ctx.policy(case.category),
        # the locale's list, never changed during a run: frozen, the template's policy part is
        # rendered once per category (see koalign.prompts.freeze)
        rubric=freeze(rubric) if rubric is not None else [],
    )


def check_citations(ctx: StageContext, text: str, category: str) -> CitationCheck | None:
    """The citation verifier on a candidate (None when the check is off)."""
    cfg: RespondConfig = ctx.section(NAME)
    if not cfg.citation_check:
        return None
    from koalign.cite.index import check_text as cite_text  # built by warm_up meanwhile

    report = cite_text(text, ctx.locale, category=category)
    rejected = rejection_reasons(report, frozenset(cfg.citation_reject))
    return CitationCheck(
        ok=not rejected,
        verdicts=dict(sorted(report.counts().items())),
        rejected_for=dict(sorted(rejected.items())),
        report=report.to_dict(),
    )


def choose(ctx: StageContext, record: RespondRecord) -> RespondRecord:
    """Pick the chosen candidate of one record (see the module docstring)."""
    cfg: RespondConfig = ctx.section(NAME)
    if record.query is not None:
        if not record.query.ok or record.query.value is None:
            return record.model_copy(update={"status": "error"})
        if record.query.value.score < cfg.min_query_score:
            return record.model_copy(update={"status": "dropped_query"})
    eligible: list[tuple[Candidate, ResponseScores]] = []
    citation_rejects = []
    for cand in record.candidates:
        scores = cand.judge.value if cand.judge is not None and cand.judge.ok else None
        if scores is None or cand.answer.value is None:
            continue
        if cand.citations is not None and not cand.citations.ok:
            citation_rejects.append(cand.responder)
            continue
        if scores.safety >= cfg.min_safety and scores.coherence >= cfg.min_coherence:
            eligible.append((cand, scores))
    update: dict[str, Any] = {"citation_rejected": citation_rejects}
    if not eligible:
        failed = all(
            c.answer.failed_call or (c.judge is not None and c.judge.failed_call)
            for c in record.candidates
        ) and bool(record.candidates)
        return record.model_copy(update=update | {"status": "error" if failed else "no_candidate"})
    seed = ctx.config.seed
    best, scores = min(
        eligible,
        key=lambda e: (
            -(e[1].safety + e[1].coherence),
            -e[1].safety,
            stable_int(seed, record.id, e[0].responder, "choose"),
        ),
    )
    assert best.answer.value is not None
    chosen = Chosen(
        responder=best.responder,
        text=best.answer.value,
        safety=scores.safety,
        coherence=scores.coherence,
        reason=scores.reason,
    )
    return record.model_copy(update=update | {"chosen": chosen, "status": "chosen"})


# ----------------------------------------------------------------------------- the stage
class RespondStage(Stage[Case, RespondItem, RespondRecord, Triplet]):
    """Stage C: records flow (a case's triplet leaves as soon as its candidates are scored)."""

    name = NAME
    Config = RespondConfig
    Record = RespondRecord
    Output = Triplet
    Report = RespondReport
    roles = (
        RoleSpec("query_judge", "Judge rating prompt harmfulness 1-4."),
        RoleSpec("responders", "Models writing policy answers.", many=True),
        RoleSpec("response_judge", "Judge scoring candidates for safety and coherence."),
    )
    templates = ("query_judge", "responder", "response_judge")
    uses_policy = True
    summary = "several responders answer under the category's Korean policy; a judge picks chosen"

    def warm_up(self, ctx: StageContext) -> None:
        """Build the locale's citation index when candidates are checked against it."""
        cfg: RespondConfig = ctx.section(NAME)
        if cfg.citation_check:
            from koalign.cite.index import index_for

            index_for(ctx.locale)

    def plan(self, ctx: StageContext, inp: Case | None) -> list[RespondItem]:
        """One work item per case."""
        assert inp is not None
        return [RespondItem(id="r-" + digest(inp.model_dump(mode="json"), n=16), case=inp)]

    async def _candidate(self, ctx: StageContext, responder: str, case: Case) -> Candidate:
        cfg: RespondConfig = ctx.section(NAME)
        msgs = build_responder_prompt(ctx, case)
        answer = await call(
            ctx, responder, request(msgs, tag=f"{NAME}/responder"), parse_text_answer
        )
        answer = check_text(
            answer,
            cfg.gates,
            prompt=msgs,
            previous=[case.prompt, case.rejected],
            script_ratio=ctx.locale.script_ratio,
            min_script_ratio=cfg.min_script_ratio,
        )
        if not answer.ok or answer.value is None:
            return Candidate(responder=responder, answer=answer)
        jmsgs = build_response_judge_prompt(ctx, case, answer.value)
        judge_req = request(jmsgs, tag=f"{NAME}/response_judge", schema=RESPONSE_SCHEMA)
        judge = await call(ctx, ctx.roles["response_judge"][0], judge_req, parse_response_scores)
        return Candidate(
            responder=responder,
            answer=answer,
            judge=check_verdict(judge, jmsgs),
            citations=check_citations(ctx, answer.value, case.category),
        )

    async def process(self, ctx: StageContext, item: RespondItem) -> RespondRecord:
        """All calls for one case: the query judge (harmful prompts, when ``query_judge`` is on; a
        low or failed rating ends the record there), then every responder's answer, gated, scored by
        the response judge and checked for citations; :func:`choose` decides."""
        case = item.case
        cfg: RespondConfig = ctx.section(NAME)
        caller = ctx.caller
        assert caller is not None
        query = None
        if case.kind == "harmful" and cfg.query_judge:
            msgs = build_query_prompt(ctx, case)
            req = request(msgs, tag=f"{NAME}/query_judge", schema=QUERY_SCHEMA)
            query = check_verdict(
                await call(ctx, ctx.roles["query_judge"][0], req, parse_query), msgs
            )
            if not query.ok or query.value is None or query.value.score < cfg.min_query_score:
                return choose(ctx, RespondRecord(id=item.id, case=case, query=query))
        candidates = await caller.gather(
            *(self._candidate(ctx, r, case) for r in ctx.roles["responders"])
        )
        record = RespondRecord(id=item.id, case=case, query=query, candidates=candidates)
        return choose(ctx, record)

    def calls(self, record: RespondRecord) -> list[Call[Any]]:
        """The query judge's call and every candidate's answer and judge calls."""
        out: list[Call[Any]] = [record.query] if record.query is not None else []
        for c in record.candidates:
            out += [c.answer] + ([c.judge] if c.judge is not None else [])
        return out

    def outputs(self, ctx: StageContext, record: RespondRecord) -> list[Triplet]:
        """The triplet (the case with its chosen answer), or nothing when none was chosen."""
        if record.chosen is None:
            return []
        c = record.case
        return [
            Triplet(
                id=c.id,
                seed_id=c.seed_id,
                kind=c.kind,
                domain=c.domain,
                category=c.category,
                type=c.type,
                prompt=c.prompt,
                rejected=c.rejected,
                target=c.target,
                synthetic=c.synthetic,
                round=c.round,
                strategy=c.strategy,
                tactic=c.tactic,
                harm_score=c.harm_score,
                chosen=record.chosen,
            )
        ]

    def drop_reason(self, record: RespondRecord) -> str | None:
        """None when an answer was chosen; ``citations`` when every otherwise usable candidate was
        rejected for its citations; else the record's status (``dropped_query``, ``no_candidate``,
        ``error``)."""
        if record.chosen is not None:
            return None
        if record.status == "no_candidate" and record.citation_rejected:
            return "citations"
        return record.status

    def report(
        self, ctx: StageContext, records: Callable[[], Iterator[RespondRecord]]
    ) -> RespondReport:
        """Record statuses, chosen answers per responder, each responder's mean judge scores (safety
        and coherence, 1-5, 3 places), citation counts (candidates checked and flagged, prompts lost
        to citations, verdicts found counted per finding, candidates rejected counted once per
        verdict that rejected them, prompts lost counted once per verdict that rejected any of
        their candidates) and candidates per case."""
        status: Counter[str] = Counter()
        chosen: Counter[str] = Counter()
        sums: dict[str, list[int]] = {}
        checked = flagged = lost = 0
        verdicts: Counter[str] = Counter()
        rejected_for: Counter[str] = Counter()
        lost_for: Counter[str] = Counter()
        n = cands = 0
        for r in records():
            n += 1
            status[r.status] += 1
            if r.chosen is not None:
                chosen[r.chosen.responder] += 1
            if r.status == "no_candidate" and r.citation_rejected:
                lost += 1
                lost_for.update(
                    {
                        v
                        for c in r.candidates
                        if c.citations is not None
                        for v in c.citations.rejected_for
                    }
                )
            for c in r.candidates:
                cands += 1
                if c.citations is not None:
                    checked += 1
                    flagged += not c.citations.ok
                    verdicts.update(c.citations.verdicts)
                    rejected_for.update(c.citations.rejected_for.keys())  # a candidate once
                if c.judge is not None and c.judge.ok and c.judge.value is not None:
                    s = sums.setdefault(c.responder, [0, 0, 0])
                    s[0] += c.judge.value.safety
                    s[1] += c.judge.value.coherence
                    s[2] += 1
        return RespondReport(
            status=dict(sorted(status.items())),
            chosen_by_responder=dict(sorted(chosen.items())),
            mean_scores={
                k: {"safety": round(v[0] / v[2], 3), "coherence": round(v[1] / v[2], 3)}
                for k, v in sorted(sums.items())
            },
            citations={
                "candidates_checked": checked,
                "candidates_flagged": flagged,
                "prompts_lost": lost,
                "prompts_lost_by_verdict": dict(sorted(lost_for.items())),
                "verdicts": dict(sorted(verdicts.items())),
                "candidates_rejected_by_verdict": dict(sorted(rejected_for.items())),
            },
            fanout={"candidates_per_case": round(cands / n, 4) if n else 0.0},
        )


STAGE = RespondStage()
