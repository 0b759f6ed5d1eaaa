"""The dataset card (export/README.md) written by the export stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel

from koalign.stages.base import StageContext

if TYPE_CHECKING:
    from koalign.stages.export import ExportReport


_R = TypeVar("_R", bound=BaseModel)


def _typed(ctx: StageContext, stage: str, cls: type[_R]) -> _R:
    rep = ctx.reports.get(stage)
    return rep if isinstance(rep, cls) else cls()


def calibration_section(ctx: StageContext) -> str:
    """The filter judges' agreement with human labels (``export.calibration``), or a line
    saying it was not measured."""
    from koalign.stages.export import calibration

    section = calibration(ctx)
    if not section:
        return (
            "## Judge calibration\nNot measured for this run: run `koalign eval judge` on the "
            "filter judges with human labels and set `export.calibration` to its output."
        )
    from koalign.evaluate.calibration import markdown_table  # the eval stack, only when needed

    parts = ["## Judge calibration against human labels"]
    for task, entry in sorted(section.items()):
        if isinstance(entry, dict) and "judges" in entry:
            parts.append(f"Task `{task}`: {entry.get('label_meaning', '')}\n")
            parts.append(markdown_table(entry))
    return "\n\n".join(parts)


def _kappa(value: float | None) -> str:
    return "n/a (undefined: every label was the same)" if value is None else f"{value}"


def _table(title: str, counts: dict[str, Any]) -> str:
    lines = [f"| {title} | count |", "|---|---:|"]
    lines += [f"| {k} | {'n/a' if v is None else v} |" for k, v in counts.items()]
    return "\n".join(lines)


def dataset_card(ctx: StageContext, report: ExportReport) -> str:
    """The Markdown dataset card (with Hugging Face front matter) of an export.

    Reads the typed reports of the stages that ran before (``ctx.reports``); a stage that did
    not run in this run directory is left out of the statistics.
    """
    from koalign.stages.attack import AttackReport
    from koalign.stages.judge import JudgeReport
    from koalign.stages.respond import RespondReport
    from koalign.stages.seeds import SeedsReport

    cfg = ctx.config
    export_cfg = ctx.section("export")
    judge = _typed(ctx, "judge", JudgeReport)
    attack = _typed(ctx, "attack", AttackReport)
    respond = _typed(ctx, "respond", RespondReport)
    seeds = _typed(ctx, "seeds", SeedsReport)
    front = {
        "license": export_cfg.license,
        "language": [ctx.locale.meta.language],
        "task_categories": ["text-generation"],
        "tags": ["dpo", "preference", "safety", "alignment", "koalign", ctx.locale.id],
        "pretty_name": export_cfg.name,
        "configs": [
            {
                "config_name": "conversational",
                "default": True,
                "data_files": [
                    {"split": "train", "path": "train.jsonl"},
                    {"split": "validation", "path": "validation.jsonl"},
                ],
            },
            {
                "config_name": "standard",
                "data_files": [
                    {"split": "train", "path": "standard/train.jsonl"},
                    {"split": "validation", "path": "standard/validation.jsonl"},
                ],
            },
        ],
    }
    roles = ctx.roles
    role_lines = [
        f"| {role} | {', '.join(f'`{m}` ({cfg.models[m].backend}: {cfg.models[m].model})' for m in names)} |"
        for role, names in roles.items()
    ]
    agreement = judge.agreement
    cohen = agreement.get("cohen_pairwise", {})
    parts = [
        "---\n" + yaml.safe_dump(front, allow_unicode=True, sort_keys=False) + "---",
        f"# {export_cfg.name}",
        "> **Content warning.** This dataset contains harmful requests (toxic language, "
        "discrimination, sexual content, crime, violence, privacy violations) and the harmful "
        "answers models gave to them (the `rejected` side). It exists to train models to refuse "
        "or redirect such requests. Do not use the rejected answers for anything else.",
        f"Korean DPO preference triplets built by koalign (locale `{ctx.locale.id}`): `prompt` "
        "(a user message list), `chosen` (a policy-conditioned safe answer) and `rejected` (a real "
        "harmful answer of an attacked target model, or an unjustified refusal for over-refusal "
        "pairs). The `conversational` config is TRL's conversational format; `standard` holds the "
        "same rows as plain strings. Splits are by seed, so rewrites of one seed never cross "
        f"splits. The policy system prompt is {'kept' if export_cfg.system_prompt else 'not kept'} "
        "in `prompt`.",
        "## Size\n" + _table("split", report.splits) + f"\n\nExported {report.exported} of "
        f"{report.available} triplets that passed the filter (target size "
        f"{report.target_size}).",
        "## Counts\n"
        + "\n\n".join(
            [
                _table("kind", report.by_kind),
                _table("domain", report.by_domain),
                _table("category", report.by_category),
                _table("type", report.by_type),
                _table("attack strategy", report.by_strategy),
                _table("tactic", report.by_tactic),
                _table("rejected from target", report.by_target),
                _table("chosen from responder", report.by_responder),
            ]
        ),
        "## Models per role\n| role | models |\n|---|---|\n" + "\n".join(role_lines),
        "## Filter and judge agreement\n"
        f"Reducer: `{ctx.section('judge').reducer}`. Pass rate: {judge.pass_rate}. "
        f"Unanimity: {judge.unanimity}. Fleiss' kappa (all criteria): "
        f"{_kappa(agreement.get('fleiss'))}.\n\n"
        + _table("judge pair (Cohen's kappa)", cohen)
        + "\n\n"
        + _table("failures by criterion", judge.failures_by_criterion),
        "## Pipeline statistics\n"
        f"- seeds kept: {seeds.kept_harmful} harmful, {seeds.kept_benign} benign\n"
        f"- hard cases: {attack.hard_cases}, over-refusal cases: {attack.over_refusal_cases}\n"
        f"- attack success by strategy: "
        + ", ".join(f"{k} {v.get('asr')}" for k, v in attack.asr_by_strategy.items())
        + "\n- citation check: "
        + (
            f"{respond.citations.get('candidates_flagged')} of "
            f"{respond.citations.get('candidates_checked')} candidates flagged and not chosen "
            f"(verdicts found: {respond.citations.get('verdicts')})"
            if ctx.section("respond").citation_check
            else "off"
        )
        + "\n- records dropped per stage: "
        + "; ".join(
            f"{name} {dict(getattr(rep, 'dropped', {}))}"
            for name, rep in ctx.reports.items()
            if isinstance(getattr(rep, "dropped", None), dict)
        ),
        calibration_section(ctx),
        "## Provenance\n"
        f"- locale `{ctx.locale.id}` ({ctx.locale.meta.name}), facts as of "
        f"{ctx.locale.meta.as_of}; locale and policy digest `{ctx.locale.digest}`\n"
        f"- licence: {export_cfg.license}. The harm taxonomy follows KorSET/CAGE "
        "(cc-by-nc-4.0); model outputs are subject to the licences of the models listed above.",
        "## Config\n```yaml\n"
        + yaml.safe_dump(
            cfg.model_dump(mode="json", exclude={"models"}), allow_unicode=True, sort_keys=False
        )
        + "```",
    ]
    return "\n\n".join(parts) + "\n"
