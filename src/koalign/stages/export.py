"""Stage E, ``export``: DPO triplets for TRL, balanced by domain, split by seed, with a card.

A barrier: selection and splits need every triplet that passed the filter. Selection: harmful
triplets are balanced over the domains by water-filling (each domain gets an equal share of
the target size; what a small domain cannot fill goes to the others), inside a domain in a
deterministic shuffled order; over-refusal pairs are at most ``over_refusal_share`` of the
export, balanced the same way. Split: a seed goes to validation when a hash of (run seed,
seed id) falls below ``validation_share``, so every pair of one seed (and its rewrites) stays on
one side; neither split is left empty when there are two seeds or more.

``export.jsonl`` holds one record per passed triplet (its row, or why it was not exported);
``export/`` holds the TRL files (``train.jsonl``, ``validation.jsonl``, ``standard/``) and the
dataset card. Both are streamed: memory does not grow with the number of triplets.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from koalign.jsonio import stable_int, write_jsonl_atomic, write_text_atomic
from koalign.stages.base import Frozen, Stage, StageContext, StageReport
from koalign.stages.judge import JudgedTriplet
from koalign.stages.respond import Triplet, system_prompt

NAME = "export"
FILES = (
    "export/train.jsonl",
    "export/validation.jsonl",
    "export/standard/train.jsonl",
    "export/standard/validation.jsonl",
    "export/README.md",
)


class ExportConfig(BaseModel):
    """The ``export:`` section."""

    model_config = ConfigDict(extra="forbid")

    target_size: int = Field(10000, ge=1, description="Triplets to export (balanced by domain).")
    over_refusal_share: float = Field(
        0.1, ge=0, le=1, description="Largest share of over-refusal pairs in the export."
    )
    system_prompt: bool = Field(
        False, description="Keep the policy system prompt in `prompt` (default off)."
    )
    validation_share: float = Field(
        0.1, ge=0, lt=1, description="Share of seeds in validation.jsonl."
    )
    license: str = Field("cc-by-nc-4.0", description="Licence written into the dataset card.")
    name: str = Field("koalign-dpo", description="Dataset name in the card.")
    calibration: str | None = Field(
        None,
        description="Output folder (or its summary.json) of `koalign eval judge` run on the "
        "filter judges: the card then shows how they agree with human labels.",
    )


class ExportItem(Frozen):
    """The work item of one judged triplet: its id, the triplet, and the decision made over the
    whole input (``split``, or ``drop`` with the reason it was not selected)."""

    id: str
    triplet: Triplet
    split: Literal["train", "validation"] | None = None
    drop: str | None = None


class ExportRecord(Frozen):
    """One line of export.jsonl: a passed triplet and where it went."""

    id: str = Field(description="The judged triplet's id.")
    split: Literal["train", "validation"] | None = Field(
        None, description="None when not exported."
    )
    drop: str | None = Field(None, description="Why the triplet was not exported.")
    row: dict[str, Any] | None = Field(None, description="The TRL conversational row.")
    standard: dict[str, Any] | None = Field(None, description="The same row as plain strings.")


class ExportReport(StageReport):
    """Report of the export stage (record unit: triplets in, rows out)."""

    available: int = 0
    exported: int = 0
    target_size: int = 0
    splits: dict[str, int] = Field(default_factory=dict)
    by_kind: dict[str, int] = Field(default_factory=dict)
    by_domain: dict[str, int] = Field(default_factory=dict)
    by_category: dict[str, int] = Field(default_factory=dict)
    by_type: dict[str, int] = Field(default_factory=dict)
    by_strategy: dict[str, int] = Field(default_factory=dict)
    by_tactic: dict[str, int] = Field(default_factory=dict)
    by_target: dict[str, int] = Field(default_factory=dict)
    by_responder: dict[str, int] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- selection
def water_fill(groups: dict[str, int], total: int) -> dict[str, int]:
    """How many items to take from each group (group -> size) to reach ``total`` as evenly as
    possible."""
    take = dict.fromkeys(groups, 0)
    left = min(total, sum(groups.values()))
    while left > 0:
        open_groups = sorted(g for g in groups if take[g] < groups[g])
        share, extra = divmod(left, len(open_groups))
        for i, g in enumerate(open_groups):
            add = min(share + (i < extra), groups[g] - take[g])
            take[g] += add
            left -= add
    return take


def kind_sizes(n_harmful: int, n_benign: int, target: int, share: float) -> tuple[int, int]:
    """(harmful, benign) counts: benign pairs are at most ``share`` of the export (also when
    harmful triplets are short); either kind fills in when the other runs out."""
    benign_quota = int(target * share)
    h = min(n_harmful, target - benign_quota)
    if h < target - benign_quota:  # harmful short: keep the ratio
        cap = n_benign if share >= 1 else int(h * share / (1 - share))
        benign_quota = min(benign_quota, cap)
    b = min(n_benign, benign_quota)
    h = min(n_harmful, target - b)
    return h, b


def is_validation(ctx: StageContext, seed_id: str) -> bool:
    """True when the seed's split hash (run seed, seed id; uniform in [0, 1)) falls below
    ``export.validation_share``."""
    share = ctx.section(NAME).validation_share
    return (stable_int(ctx.config.seed, seed_id, "split") % 1_000_000) / 1_000_000 < share


def validation_seeds(ctx: StageContext, seed_ids: set[str]) -> set[str]:
    """Seeds of the validation split. With a positive share and at least two seeds, both splits
    get at least one seed (the one with the smallest split hash), so neither file is empty."""
    seeds = sorted(seed_ids)
    val = {s for s in seeds if is_validation(ctx, s)}
    if ctx.section(NAME).validation_share > 0 and len(seeds) >= 2:
        by_hash = sorted(seeds, key=lambda s: stable_int(ctx.config.seed, s, "split"))
        if not val:
            val = {by_hash[0]}
        elif len(val) == len(seeds):
            val.discard(by_hash[-1])
    return val


def select(ctx: StageContext, keys: Sequence[tuple[str, str, str, str]]) -> dict[str, str | None]:
    """``keys``: (id, kind, domain, seed_id) of every triplet. Returns id -> None (selected) or
    the reason it was not."""
    cfg: ExportConfig = ctx.section(NAME)
    seed = ctx.config.seed
    groups: dict[str, dict[str, list[str]]] = {
        "harmful": defaultdict(list),
        "benign": defaultdict(list),
    }
    for tid, kind, domain, _ in keys:
        groups[kind][domain].append(tid)
    for by_domain in groups.values():
        for g in by_domain.values():
            g.sort(key=lambda t: (stable_int(seed, t, "order"), t))
    n_h = sum(map(len, groups["harmful"].values()))
    n_b = sum(map(len, groups["benign"].values()))
    h, b = kind_sizes(n_h, n_b, cfg.target_size, cfg.over_refusal_share)
    out: dict[str, str | None] = {}
    for kind, size in (("harmful", h), ("benign", b)):
        by_domain = groups[kind]
        take = water_fill({d: len(v) for d, v in by_domain.items()}, size)
        # a benign pair left out is always over its share (the share caps benign pairs)
        reason = "over_refusal_share" if kind == "benign" else "over_target_size"
        for d, ids in by_domain.items():
            for i, tid in enumerate(ids):
                if i < take[d]:
                    out[tid] = None
                else:
                    out[tid] = reason
    return out


# ----------------------------------------------------------------------------- rows
def conversational(ctx: StageContext, t: Triplet) -> dict[str, Any]:
    """The TRL conversational row of a triplet: ``prompt`` as a list of messages (the policy system
    prompt first when ``export.system_prompt`` is on), ``chosen`` and ``rejected`` as one assistant
    message each, plus :func:`metadata`."""
    prompt = []
    if ctx.section(NAME).system_prompt:
        sp = system_prompt(ctx, t.category, t.kind)
        if sp:
            prompt.append({"role": "system", "content": sp})
    prompt.append({"role": "user", "content": t.prompt})
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": t.chosen.text}],
        "rejected": [{"role": "assistant", "content": t.rejected}],
        **metadata(t),
    }


def standard(ctx: StageContext, t: Triplet) -> dict[str, Any]:
    """The TRL standard row of a triplet: ``prompt``, ``chosen`` and ``rejected`` as plain strings
    (the system prompt, when on, before the prompt with a blank line), plus :func:`metadata`."""
    prompt = t.prompt
    if ctx.section(NAME).system_prompt:
        sp = system_prompt(ctx, t.category, t.kind)
        prompt = f"{sp}\n\n{prompt}" if sp else prompt
    return {"prompt": prompt, "chosen": t.chosen.text, "rejected": t.rejected, **metadata(t)}


def metadata(t: Triplet) -> dict[str, Any]:
    """The metadata columns of a row: id, seed_id, kind, domain, category, type, strategy, tactic
    (``""`` when absent), target and the chosen responder."""
    return {
        "id": t.id,
        "seed_id": t.seed_id,
        "kind": t.kind,
        "domain": t.domain,
        "category": t.category,
        "type": t.type or "",
        "strategy": t.strategy or "",
        "tactic": t.tactic or "",
        "target": t.target,
        "responder": t.chosen.responder,
    }


# ----------------------------------------------------------------------------- the stage
class ExportStage(Stage[JudgedTriplet, ExportItem, ExportRecord, ExportRecord]):
    """Stage E (gathers its whole input: balancing and splits)."""

    name = NAME
    Config = ExportConfig
    Record = ExportRecord
    Output = ExportRecord
    Report = ExportReport
    files = FILES
    gather_inputs = True
    uses_policy = True  # the policy system prompt, when export.system_prompt is on
    summary = "TRL-ready DPO data, balanced over the 5 domains, split by seed, with a card"

    def plan_all(
        self, ctx: StageContext, inputs: Callable[[], Iterator[JudgedTriplet]]
    ) -> Iterator[ExportItem]:
        """One item per judged triplet in input order, with the selection (:func:`select`) and the
        split by seed (:func:`validation_seeds`) decided over the whole input; ``inputs()`` is read
        twice."""
        keys = [(j.id, j.triplet.kind, j.triplet.domain, j.triplet.seed_id) for j in inputs()]
        decision = select(ctx, keys)
        val = validation_seeds(ctx, {k[3] for k in keys if decision[k[0]] is None})
        for j in inputs():
            drop = decision[j.id]
            split: Literal["train", "validation"] | None = None
            if drop is None:
                split = "validation" if j.triplet.seed_id in val else "train"
            yield ExportItem(id=j.id, triplet=j.triplet, split=split, drop=drop)

    async def process(self, ctx: StageContext, item: ExportItem) -> ExportRecord:
        """The record of one item: both row forms for a selected triplet, or just its drop
        reason."""
        if item.split is None:
            return ExportRecord(id=item.id, split=None, drop=item.drop)
        return ExportRecord(
            id=item.id,
            split=item.split,
            row=conversational(ctx, item.triplet),
            standard=standard(ctx, item.triplet),
        )

    def validate(self, config: Any, locale: Any) -> list[str]:
        """``export.calibration`` must name an ``eval judge`` output that can be read (checked
        before any call: the dataset card that shows it is written last)."""
        from koalign.errors import DataError

        path = config.section(NAME).calibration
        if not path:
            return []
        if not _calibration_file(path).is_file():
            return [f"export.calibration: {path} has no summary.json of `koalign eval judge`"]
        try:
            read_calibration(path)
        except DataError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            return [f"export.calibration: {exc.where}: {exc.message}{hint}"]
        return []

    def outputs(self, ctx: StageContext, record: ExportRecord) -> list[ExportRecord]:
        """Exported rows (the end of the pipeline: nothing consumes them but the files)."""
        return [record] if record.split is not None else []

    def drop_reason(self, record: ExportRecord) -> str | None:
        """``over_target_size`` or ``over_refusal_share`` for a triplet not exported; None when
        exported."""
        return record.drop if record.split is None else None

    def report(
        self, ctx: StageContext, records: Callable[[], Iterator[ExportRecord]]
    ) -> ExportReport:
        """Triplets available and exported, the target size, rows per split and rows by kind, domain
        (id and English name), category, type, strategy, tactic, target and responder."""
        tax = ctx.locale.taxonomy
        names = {d.id: d.name_en for d in tax.domains}
        tallies: dict[str, Counter[str]] = defaultdict(Counter)
        splits: Counter[str] = Counter({"train": 0, "validation": 0})
        available = 0
        for r in records():
            available += 1
            if r.row is None or r.split is None:
                continue
            splits[r.split] += 1
            m = r.row
            tallies["kind"][m["kind"]] += 1
            tallies["domain"][f"{m['domain']} {names.get(m['domain'], '')}".strip()] += 1
            tallies["category"][m["category"]] += 1
            tallies["type"][m["type"] or f"benign:{m['category']}"] += 1
            tallies["strategy"][m["strategy"] or "(none: over-refusal)"] += 1
            tallies["tactic"][m["tactic"] or "(none)"] += 1
            tallies["target"][m["target"]] += 1
            tallies["responder"][m["responder"]] += 1

        def t(k: str) -> dict[str, int]:
            return dict(sorted(tallies[k].items()))

        return ExportReport(
            available=available,
            exported=sum(splits.values()),
            target_size=ctx.section(NAME).target_size,
            splits=dict(splits),
            by_kind=t("kind"),
            by_domain=t("domain"),
            by_category=t("category"),
            by_type=t("type"),
            by_strategy=t("strategy"),
            by_tactic=t("tactic"),
            by_target=t("target"),
            by_responder=t("responder"),
        )

    def write_files(
        self, ctx: StageContext, records: Callable[[], Iterator[ExportRecord]], root: Path
    ) -> None:
        """The TRL files and the dataset card under ``export/``."""
        from koalign.stages.card import dataset_card

        out = root / "export"
        (out / "standard").mkdir(parents=True, exist_ok=True)
        fsync = ctx.config.runtime.fsync
        for split in ("train", "validation"):
            write_jsonl_atomic(
                out / f"{split}.jsonl",
                (r.row for r in records() if r.split == split and r.row is not None),
                fsync=fsync,
            )
            write_jsonl_atomic(
                out / "standard" / f"{split}.jsonl",
                (r.standard for r in records() if r.split == split and r.standard is not None),
                fsync=fsync,
            )
        report = self.report(ctx, records)
        write_text_atomic(out / "README.md", dataset_card(ctx, report), fsync=fsync)


def _calibration_file(path: str) -> Path:
    p = Path(path)
    return p / "summary.json" if p.is_dir() or not p.suffix else p


def read_calibration(path: str) -> dict[str, Any]:
    """The ``judge_calibration`` section of the ``koalign eval judge`` output at ``path`` (a
    folder holding ``summary.json``, or the file).

    Raises :class:`~koalign.errors.DataError` naming the file when it cannot be read, is not
    UTF-8 (with the ``iconv`` fix for CP949/EUC-KR), is not JSON, has no such section, or has a
    task entry the dataset card cannot show (a field missing or of the wrong type).
    """
    from koalign.errors import DataError
    from koalign.evaluate.calibration import markdown_table
    from koalign.jsonio import read_json

    file = _calibration_file(path)
    hint = "export.calibration names the summary.json written by `koalign eval judge`, unedited"
    data = read_json(file, hint=hint)
    section = data.get("judge_calibration") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise DataError("no judge_calibration section", where=str(file), hint=hint)
    for task, entry in section.items():
        if not isinstance(entry, dict) or "judges" not in entry:
            continue
        try:
            markdown_table(entry)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            what = (
                f"the field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            )
            raise DataError(
                f"the judge_calibration entry of task '{task}' cannot be shown ({what})",
                where=str(file),
                hint=hint,
            ) from None
    return section


def calibration(ctx: StageContext) -> dict[str, Any] | None:
    """The ``judge_calibration`` section of ``export.calibration`` (None when not set).

    Raises :class:`~koalign.errors.DataError` as :func:`read_calibration`.
    """
    path = ctx.section(NAME).calibration
    return read_calibration(path) if path else None


STAGE = ExportStage()
