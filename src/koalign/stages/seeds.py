"""Stage A, ``seeds``: slot-filled Korean seed prompts per harm type, plus benign prompts.

Per type, ``ceil(quota * oversample)`` candidates are generated, each with its own persona,
register and length (registers and lengths rotate so they stay balanced; personas are drawn
deterministically). Slot values are suggested from the taxonomy's slot examples; the generator
fills them with concrete Korean specifics. Candidates are NFC-normalised and go through the
output gates (:mod:`koalign.gates`); then, over the whole stage in plan order (a barrier),
the locale's script ratio is checked, near-duplicates are removed (MinHash-LSH over character
n-grams, earlier candidates win) and the first ``quota`` survivors per type are kept.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from koalign.errors import did_you_mean
from koalign.gates import GateConfig, check_text
from koalign.jsonio import stable_hash, stable_int
from koalign.locale_schema import Personas as Variation
from koalign.stages.base import (
    Call,
    Frozen,
    ParseError,
    RoleSpec,
    Stage,
    StageContext,
    StageReport,
    call,
    request,
    rotate,
)
from koalign.text import clean_generation, near_duplicate_filter, nfc, prepare_presign, presign
from koalign.types import Message

NAME = "seeds"
LABELS = ("질문", "프롬프트", "요청", "사용자 질문", "시드", "Prompt", "Query")
Kind = Literal["harmful", "benign"]


class SeedsConfig(BaseModel):
    """The ``seeds:`` section."""

    model_config = ConfigDict(extra="forbid")

    per_type: int = Field(4, ge=0, description="Seeds to keep per harm type (the quota).")
    quota: dict[str, int] = Field(
        default_factory=dict, description="Per-type quota overrides: {type_id: n}."
    )
    categories: list[str] | None = Field(None, description="Only these category ids (default all).")
    oversample: float = Field(
        1.5, ge=1.0, description="Candidates generated per type = ceil(quota * oversample)."
    )
    benign_per_category: int = Field(
        3,
        ge=0,
        description="Benign but sensitive prompts per category for over-refusal pairs "
        "(policy benign_prompts first, then generated from does_not_apply).",
    )
    min_script_ratio: float = Field(
        0.5, ge=0, le=1, description="Minimum share of letters in the locale's script."
    )
    dedup_threshold: float = Field(
        0.7, gt=0, le=1, description="MinHash-LSH Jaccard threshold for near-duplicates."
    )
    dedup_ngram: int = Field(3, ge=1, description="Character n-gram size for MinHash.")
    dedup_num_perm: int = Field(128, ge=16, description="MinHash permutations.")
    variation: Variation | None = Field(
        None, description="Persona/register/length lists (default: the locale's personas.yaml)."
    )
    gates: GateConfig = Field(
        default_factory=lambda: GateConfig(min_chars=8),
        description="Output gates for generated seed prompts (koalign.gates).",
    )


# ----------------------------------------------------------------------------- records
# Who asks, how, how long: age_group, region, occupation, register, length (each optional).
Persona = dict[str, str | None]


class SeedItem(Frozen):
    """One planned seed candidate."""

    id: str = Field(
        description="'s-' (harmful) or 'b-' (benign) + a digest of (kind, type, index)."
    )
    kind: Kind
    domain: str = Field(description="Domain id (1-5).")
    category: str = Field(description="Category id (A-L).")
    type: str | None = Field(None, description="Harm type id (None for benign prompts).")
    index: int = Field(ge=0, description="Index of the candidate within its type or category.")
    slots: dict[str, str] = Field(default_factory=dict, description="Suggested slot values.")
    variation: Persona
    source: Literal["generated", "policy"] = "generated"
    given: str | None = Field(None, description="The prompt itself, for policy benign prompts.")
    neighbour: str | None = Field(
        None, description="The does_not_apply situation a generated benign prompt is built on."
    )


class SeedRecord(Frozen):
    """One line of seeds.jsonl: a candidate, its generation and the stage's decision."""

    id: str
    kind: Kind
    domain: str
    category: str
    type: str | None = None
    index: int
    slots: dict[str, str]
    variation: Persona
    source: Literal["generated", "policy"]
    call: Call[str] | None = Field(
        None, description="The generator call (None for policy prompts)."
    )
    prompt: str | None = Field(None, description="The seed prompt (None when generation failed).")
    script_ratio: float | None = Field(None, description="Share of letters in the locale's script.")
    kept: bool = False
    drop: str | None = Field(None, description="Why the candidate was not kept.")
    duplicate_of: str | None = Field(None, description="Id of the earlier near-duplicate.")


class Seed(Frozen):
    """A kept seed: the input of the attack stage."""

    id: str
    kind: Kind
    domain: str
    category: str
    type: str | None = None
    index: int
    prompt: str
    variation: Persona
    source: Literal["generated", "policy"]


class TypeCounts(Frozen):
    """Per harm type (or ``benign:<category>``) counts."""

    quota: int = 0
    generated: int = 0
    kept: int = 0
    shortfall: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)


class SeedsReport(StageReport):
    """Report of the seeds stage (record unit: seed candidates)."""

    per_type: dict[str, TypeCounts] = Field(default_factory=dict)
    kept_harmful: int = 0
    kept_benign: int = 0
    shortfall: int = 0


# ----------------------------------------------------------------------------- pure parts
def variation_lists(ctx: StageContext) -> Variation:
    """The persona, register and length lists in use: the ``seeds.variation`` config when given,
    else the locale's ``personas.yaml``."""
    cfg: SeedsConfig = ctx.section(NAME)
    return cfg.variation if cfg.variation is not None else ctx.locale.personas


def pick_variation(v: Variation, key: str, index: int, seed: int) -> Persona:
    """A persona for candidate ``index`` of ``key``: random axes drawn deterministically,
    register and length rotating so they stay balanced."""
    rng = random.Random(stable_int(seed, key, index, "persona"))
    offset = stable_int(seed, key)
    return {
        "age_group": rng.choice(v.age_groups) if v.age_groups else None,
        "region": rng.choice(v.regions) if v.regions else None,
        "occupation": rng.choice(v.occupations) if v.occupations else None,
        "register": rotate(v.registers, offset + index) if v.registers else None,
        "length": rotate(v.lengths, offset // 7 + index) if v.lengths else None,
    }


def suggest_slots(ctx: StageContext, type_id: str, index: int) -> dict[str, str]:
    """Suggested slot values for candidate ``index`` of a harm type: slot id -> one of the type's
    slot examples, rotating per slot from a seeded offset (slots without examples are left out).

    Raises:
        LocaleError: ``type_id`` is not in the taxonomy.
    """
    cat = ctx.locale.taxonomy.category_of_type(type_id)
    htype = next(t for t in cat.types if t.id == type_id)
    out = {}
    for slot in cat.slots_for(htype):
        examples = htype.slot_examples.get(slot.id, [])
        if examples:
            out[slot.id] = rotate(examples, stable_int(ctx.config.seed, type_id, slot.id) + index)
    return out


def build_prompt(ctx: StageContext, item: SeedItem) -> tuple[Message, ...]:
    """Messages for the seed generator (harmful types) or the benign generator."""
    tax = ctx.locale.taxonomy
    category = tax.category(item.category)
    variation = item.variation
    if item.kind == "benign":
        policy = ctx.locale.policy.policies[category.id]
        return ctx.render(
            "benign_generator",
            category=category,
            neighbour=item.neighbour,
            examples=policy.benign_prompts,
            variation=variation,
        )
    htype = next(t for t in category.types if t.id == item.type)
    slots = [
        {
            "id": s.id,
            "name": s.name,
            "description": s.description,
            "required": s.required,
            "suggestion": item.slots.get(s.id),
            "examples": htype.slot_examples.get(s.id, []),
        }
        for s in category.slots_for(htype)
    ]
    return ctx.render(
        "seed_generator",
        category=category,
        type=htype,
        domain=tax.domain_of(category.id),
        slots=slots,
        variation=variation,
    )


def parse(text: Any) -> str:
    """The seed prompt from the generator's answer (plain text)."""
    if not isinstance(text, str):
        raise ParseError("expected plain text", kind="parse")
    prompt = clean_generation(text, labels=LABELS)
    if not prompt:
        raise ParseError("the model returned no usable text", kind="empty")
    return prompt


def harmful_item(ctx: StageContext, type_id: str, index: int) -> SeedItem:
    """Candidate ``index`` of a harm type (what the plan holds for it)."""
    cat = ctx.locale.taxonomy.category_of_type(type_id)
    domain = ctx.locale.taxonomy.domain_of(cat.id)
    return SeedItem(
        id="s-" + stable_hash("harmful", type_id, index),
        kind="harmful",
        domain=domain.id,
        category=cat.id,
        type=type_id,
        index=index,
        slots=suggest_slots(ctx, type_id, index),
        variation=pick_variation(variation_lists(ctx), type_id, index, ctx.config.seed),
    )


def benign_item(ctx: StageContext, category_id: str, index: int) -> SeedItem:
    """Benign candidate ``index`` of a category (a policy prompt first, then generated)."""
    policy = ctx.locale.policy.policies[category_id]
    domain = ctx.locale.taxonomy.domain_of(category_id)
    given = index < len(policy.benign_prompts)
    return SeedItem(
        id="b-" + stable_hash("benign", category_id, index),
        kind="benign",
        domain=domain.id,
        category=category_id,
        type=None,
        index=index,
        variation=pick_variation(
            variation_lists(ctx), "benign:" + category_id, index, ctx.config.seed
        ),
        source="policy" if given else "generated",
        given=nfc(policy.benign_prompts[index]) if given else None,
        neighbour=None
        if given
        else rotate(policy.does_not_apply, index - len(policy.benign_prompts)),
    )


def quota_for(ctx: StageContext, type_id: str) -> int:
    """Seeds to keep for harm type ``type_id``: its ``seeds.quota`` override, else
    ``seeds.per_type``."""
    cfg: SeedsConfig = ctx.section(NAME)
    return cfg.quota.get(type_id, cfg.per_type)


# ----------------------------------------------------------------------------- the stage


def _dedup_params(ctx: StageContext) -> dict[str, Any]:
    """The near-duplicate filter's parameters for this run."""
    cfg: SeedsConfig = ctx.section(NAME)
    return {
        "threshold": cfg.dedup_threshold,
        "ngram": cfg.dedup_ngram,
        "num_perm": cfg.dedup_num_perm,
        "seed": ctx.config.seed + 1,
    }


class SeedsStage(Stage[BaseModel, SeedItem, SeedRecord, Seed]):
    """Stage A (a source stage and a barrier: dedup and quotas need every candidate)."""

    name = NAME
    Config = SeedsConfig
    Record = SeedRecord
    Output = Seed
    Report = SeedsReport
    roles = (
        RoleSpec("seed_generator", "Model that fills seed slots and writes seed prompts."),
        RoleSpec(
            "benign_generator",
            "Model writing extra benign prompts (default: seed_generator).",
            default="seed_generator",
        ),
    )
    templates = ("seed_generator", "benign_generator")
    has_decide: ClassVar[bool] = True
    summary = "an LLM fills each harm type's slot templates with Korean specifics"

    def plan(self, ctx: StageContext, inp: BaseModel | None) -> list[SeedItem]:
        """Every candidate, interleaved over types and domains (so ``--limit N`` samples the
        whole taxonomy)."""
        cfg: SeedsConfig = ctx.section(NAME)
        wanted = set(cfg.categories or [c.id for c in ctx.locale.taxonomy.categories])
        # a stream is (count, make(i)): items are built only when the plan reaches them, so
        # --limit N builds N items, not the whole plan
        Stream = tuple[int, Callable[[int], SeedItem]]
        per_domain: list[list[Stream]] = []
        for domain in ctx.locale.taxonomy.domains:
            streams: list[Stream] = []
            for cat in domain.categories:
                if cat.id not in wanted:
                    continue
                for t in cat.types:
                    n = math.ceil(quota_for(ctx, t.id) * cfg.oversample)
                    streams.append((n, functools.partial(harmful_item, ctx, t.id)))
                make_benign = functools.partial(benign_item, ctx, cat.id)
                streams.append((cfg.benign_per_category, make_benign))
            per_domain.append(streams)
        ordered: list[Stream] = []
        for k in range(max((len(s) for s in per_domain), default=0)):
            ordered += [s[k] for s in per_domain if k < len(s)]
        limit = ctx.limit
        items: list[SeedItem] = []
        for k in range(max((n for n, _ in ordered), default=0)):
            for n, make in ordered:
                if k < n:
                    if limit is not None and len(items) >= limit:
                        return items
                    items.append(make(k))
        return items

    async def process(self, ctx: StageContext, item: SeedItem) -> SeedRecord:
        """One candidate: a policy benign prompt is taken as written; otherwise the seed (or benign)
        generator writes it and the output gates check it. The record carries the prompt and its
        script ratio (0-1, 4 places), or the failed call with no prompt; keeping is decided later in
        :meth:`decide`."""
        base = item.model_dump(exclude={"given", "neighbour"})
        if item.source == "policy":
            assert item.given is not None
            prompt = item.given
            frag = None
        else:
            role = "benign_generator" if item.kind == "benign" else "seed_generator"
            model = ctx.roles[role][0]
            messages = build_prompt(ctx, item)
            frag = await call(ctx, model, request(messages, tag=f"{NAME}/{role}"), parse)
            if frag.ok:
                frag = check_text(frag, ctx.section(NAME).gates, prompt=messages)
            if not frag.ok:
                return SeedRecord(**base, call=frag)
            assert frag.value is not None
            prompt = frag.value
        ratio = round(ctx.locale.script_ratio(prompt), 4)
        cfg: SeedsConfig = ctx.section(NAME)
        if ratio >= cfg.min_script_ratio:  # the barrier's near-duplicate check then looks it up
            presign(prompt, **_dedup_params(ctx))
        return SeedRecord(**base, call=frag, prompt=prompt, script_ratio=ratio)

    def warm_up(self, ctx: StageContext) -> None:
        """Prepare the near-duplicate signatures (numpy, hash coefficients) that
        :meth:`process` computes for each candidate (:func:`koalign.text.prepare_presign`)."""
        prepare_presign(**_dedup_params(ctx))

    def validate(self, config: Any, locale: Any) -> list[str]:
        """Unknown category ids in ``seeds.categories`` and unknown type ids in ``seeds.quota``, as
        ``seeds.<field>: ...`` messages (empty when all are known)."""
        cfg: SeedsConfig = config.section(NAME)
        problems = []
        cat_ids = [c.id for c in locale.taxonomy.categories]
        type_ids = [t.id for t in locale.taxonomy.types]
        for i, cid in enumerate(cfg.categories or []):
            if cid not in cat_ids:
                problems.append(
                    f"seeds.categories[{i}]: unknown category '{cid}'{did_you_mean(cid, cat_ids)}"
                )
        for tid in cfg.quota:
            if tid not in type_ids:
                problems.append(f"seeds.quota.{tid}: unknown type{did_you_mean(tid, type_ids)}")
        return problems

    def calls(self, record: SeedRecord) -> list[Call[Any]]:
        """The generator call (none for a policy prompt)."""
        return [record.call] if record.call is not None else []

    def decide(self, ctx: StageContext, records: Iterator[SeedRecord]) -> Iterator[SeedRecord]:
        """Language, near-duplicates (earlier wins, per kind) and quotas, in plan order."""
        cfg: SeedsConfig = ctx.section(NAME)
        dedup = {
            kind: near_duplicate_filter(**_dedup_params(ctx)) for kind in ("harmful", "benign")
        }
        kept: Counter[str] = Counter()
        for r in records:
            update: dict[str, Any] = {"kept": False, "drop": None, "duplicate_of": None}
            if r.prompt is None:
                update["drop"] = r.call.error.kind if r.call and r.call.error else "error"
            elif (r.script_ratio or 0.0) < cfg.min_script_ratio:
                update["drop"] = "language"
            else:
                dup = dedup[r.kind].add(r.id, r.prompt)
                if dup is not None:
                    update.update(drop="duplicate", duplicate_of=dup)
                else:
                    key = r.type if r.kind == "harmful" and r.type else "benign:" + r.category
                    limit = quota_for(ctx, key) if r.kind == "harmful" else cfg.benign_per_category
                    if kept[key] >= limit:
                        update["drop"] = "over_quota"
                    else:
                        kept[key] += 1
                        update["kept"] = True
            yield r.model_copy(update=update)

    def outputs(self, ctx: StageContext, record: SeedRecord) -> list[Seed]:
        """The kept seed, or nothing for a dropped candidate."""
        if not record.kept or record.prompt is None:
            return []
        return [
            Seed(
                id=record.id,
                kind=record.kind,
                domain=record.domain,
                category=record.category,
                type=record.type,
                index=record.index,
                prompt=record.prompt,
                variation=record.variation,
                source=record.source,
            )
        ]

    def drop_reason(self, record: SeedRecord) -> str | None:
        """Why the candidate was dropped (``language``, ``duplicate``, ``over_quota`` or the failed
        call's error kind); None when kept."""
        return None if record.kept else (record.drop or "error")

    def report(self, ctx: StageContext, records: Callable[[], Iterator[SeedRecord]]) -> SeedsReport:
        """Per harm type (and per ``benign:<category>``): quota, candidates generated, kept,
        shortfall and drop reasons; totals of kept harmful and benign seeds and the total
        shortfall."""
        cfg: SeedsConfig = ctx.section(NAME)
        per: dict[str, dict[str, Any]] = {}
        for r in records():
            key = r.type if r.kind == "harmful" and r.type else "benign:" + r.category
            row = per.setdefault(key, {"generated": 0, "kept": 0, "dropped": Counter()})
            row["generated"] += 1
            if r.kept:
                row["kept"] += 1
            else:
                row["dropped"][r.drop or "error"] += 1
        per_type = {}
        for key, row in sorted(per.items()):
            quota = cfg.benign_per_category if key.startswith("benign:") else quota_for(ctx, key)
            per_type[key] = TypeCounts(
                quota=quota,
                generated=row["generated"],
                kept=row["kept"],
                shortfall=max(0, quota - row["kept"]),
                dropped=dict(sorted(row["dropped"].items())),
            )
        return SeedsReport(
            per_type=per_type,
            kept_harmful=sum(v.kept for k, v in per_type.items() if not k.startswith("benign:")),
            kept_benign=sum(v.kept for k, v in per_type.items() if k.startswith("benign:")),
            shortfall=sum(v.shortfall for v in per_type.values()),
        )


STAGE = SeedsStage()
