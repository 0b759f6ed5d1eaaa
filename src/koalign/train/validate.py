"""Check preference rows against the model's chat template before training.

Catches the DPO pitfalls TRL users hit most: rows with wrong roles or empty turns, templates
that drop the system turn, duplicated or missing EOS, a templated prompt that is not a prefix
of prompt+answer, and sequences longer than ``max_length``.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from koalign.train.data import Row, RowProblem, check_row, clean_row, row_format

log = logging.getLogger(__name__)


class LengthStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    max: int = 0

    @classmethod
    def of(cls, values: list[int]) -> LengthStats:
        if not values:
            return cls()
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return cls(
            min=ordered[0],
            mean=round(statistics.fmean(ordered), 1),
            p50=float(statistics.median(ordered)),
            p95=float(p95),
            max=ordered[-1],
        )


class ValidationReport(BaseModel):
    """What the dataset check found. ``ok`` is false when training must not start."""

    model_config = ConfigDict(extra="forbid")

    rows: dict[str, int] = Field(default_factory=dict, description="Rows per split.")
    format: str = "unknown"
    problems: list[RowProblem] = Field(default_factory=list)
    problem_counts: dict[str, int] = Field(default_factory=dict)
    prompt_tokens: LengthStats = Field(default_factory=LengthStats)
    sequence_tokens: LengthStats = Field(
        default_factory=LengthStats, description="Longer of prompt+chosen and prompt+rejected."
    )
    max_length: int | None = None
    truncated_rows: int = 0
    truncated_share: float = 0.0
    max_truncated_share: float = 1.0
    stop_tokens: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="Reasons training is refused.")

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self, limit: int = 10) -> str:
        lines = [
            f"rows: {', '.join(f'{k} {v}' for k, v in self.rows.items())} ({self.format} format)",
            f"sequence tokens: min {self.sequence_tokens.min}, mean {self.sequence_tokens.mean}, "
            f"p95 {self.sequence_tokens.p95:g}, max {self.sequence_tokens.max}; "
            f"max_length {self.max_length}: {self.truncated_rows} rows "
            f"({self.truncated_share:.1%}) would be truncated",
        ]
        if self.problem_counts:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(self.problem_counts.items()))
            lines.append(f"problems: {counts}")
            lines += [f"  - {p.render()}" for p in self.problems[:limit]]
            if len(self.problems) > limit:
                lines.append(f"  ... and {len(self.problems) - limit} more")
        lines += [f"refused: {e}" for e in self.errors]
        return "\n".join(lines)


def stop_token_ids(tokenizer: Any, generation_eos: int | list[int] | None = None) -> set[int]:
    """The tokenizer's EOS plus the model's generation EOS ids (e.g. Gemma's <end_of_turn>)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if isinstance(generation_eos, int):
        ids.add(generation_eos)
    elif generation_eos:
        ids.update(int(i) for i in generation_eos)
    return ids


def validate_rows(
    rows: list[Row],
    tokenizer: Any,
    *,
    max_length: int | None,
    stop_ids: set[int] | None = None,
    merge_system: bool = False,
    max_truncated_share: float = 0.1,
    allow_prompt_mismatch: bool = False,
    load_problems: list[RowProblem] | None = None,
) -> ValidationReport:
    """Check every row's shape, then template each valid row the way TRL will and check it."""
    stop_ids = stop_ids if stop_ids is not None else stop_token_ids(tokenizer)
    report = ValidationReport(max_length=max_length, max_truncated_share=max_truncated_share)
    report.stop_tokens = [tokenizer.convert_ids_to_tokens(i) for i in sorted(stop_ids)]
    problems = list(load_problems or [])
    split_counts = Counter(r.split for r in rows)
    report.rows = {s: split_counts.get(s, 0) for s in ("train", "eval")}
    formats = Counter(row_format(r.data) for r in rows)
    formats.pop("unknown", None)
    report.format = "+".join(sorted(formats)) or "unknown"
    majority = formats.most_common(1)[0][0] if formats else None

    prompt_lens: list[int] = []
    seq_lens: list[int] = []
    for row in rows:
        shape = check_row(row.data)
        fmt = row_format(row.data)
        if not shape and majority and fmt != majority:
            shape = [("mixed_format", f"{fmt} row in a {majority} dataset; use one format")]
        if shape:
            problems += [_problem(row, kind, msg) for kind, msg in shape]
            continue
        found, plen, slen = _check_template(
            clean_row(row.data, merge_system=merge_system),
            tokenizer,
            stop_ids,
            allow_prompt_mismatch,
        )
        problems += [_problem(row, kind, msg) for kind, msg in found]
        if plen is not None:
            prompt_lens.append(plen)
            seq_lens.append(slen)

    report.problems = problems
    report.problem_counts = dict(Counter(p.kind for p in problems))
    report.prompt_tokens = LengthStats.of(prompt_lens)
    report.sequence_tokens = LengthStats.of(seq_lens)
    if max_length is not None and seq_lens:
        report.truncated_rows = sum(1 for n in seq_lens if n > max_length)
        report.truncated_share = round(report.truncated_rows / len(seq_lens), 4)
    _decide(report)
    return report


def _problem(row: Row, kind: str, message: str) -> RowProblem:
    return RowProblem(location=row.location, id=row.id, kind=kind, message=message)


def _ids(tokenizer: Any, value: Any, **kw: Any) -> list[int]:
    if isinstance(value, list):
        out = tokenizer.apply_chat_template(value, tokenize=True, return_dict=True, **kw)
    else:
        out = tokenizer(text=value)
    ids = out["input_ids"]
    return list(ids[0]) if ids and isinstance(ids[0], list) else list(ids)


def _check_template(
    data: dict[str, Any], tokenizer: Any, stop_ids: set[int], allow_prompt_mismatch: bool
) -> tuple[list[tuple[str, str]], int | None, int]:
    """Template one clean row like ``trl.DPOTrainer`` does; return problems and lengths."""
    out: list[tuple[str, str]] = []
    conversational = isinstance(data["prompt"], list)
    try:
        if conversational:
            rendered = tokenizer.apply_chat_template(
                data["prompt"], tokenize=False, add_generation_prompt=True
            )
            for m in data["prompt"]:
                if m["role"] == "system" and m["content"].strip() not in rendered:
                    out.append(
                        (
                            "system_dropped",
                            "the chat template drops the system turn; set system_prompt: merge "
                            "to fold it into the first user turn",
                        )
                    )
            prompt_ids = _ids(tokenizer, data["prompt"], add_generation_prompt=True)
            full = {k: _ids(tokenizer, data["prompt"] + data[k]) for k in ("chosen", "rejected")}
        else:
            eos = tokenizer.eos_token or ""
            prompt_ids = _ids(tokenizer, data["prompt"])
            full = {}
            for k in ("chosen", "rejected"):
                text = data[k] if data[k].endswith(eos) else data[k] + eos  # what TRL does
                full[k] = _ids(tokenizer, data["prompt"] + text)
    except Exception as exc:  # jinja2 TemplateError and friends: the template rejects the row
        hint = " (set system_prompt: merge if it has no system role)" if conversational else ""
        return [("template_error", f"the chat template failed: {exc}{hint}")], None, 0

    bos = tokenizer.bos_token_id
    if bos is not None and prompt_ids[:2] == [bos, bos]:
        out.append(("bos_duplicated", "the templated prompt starts with two BOS tokens"))
    for key, ids in full.items():
        if ids[: len(prompt_ids)] != prompt_ids:
            if not allow_prompt_mismatch:
                out.append(
                    (
                        "prompt_not_prefix",
                        f"the templated prompt is not a token prefix of prompt+{key}; TRL would "
                        "train on a context that differs from inference",
                    )
                )
            start = _common_prefix(prompt_ids, ids)
        else:
            start = len(prompt_ids)
        n_stop = sum(1 for t in ids[start:] if t in stop_ids)
        if n_stop == 0:
            out.append(
                (
                    "eos_missing",
                    f"{key} has no end-of-turn token after templating; the model would not learn "
                    "to stop (check the tokenizer's eos_token against the chat template)",
                )
            )
        elif n_stop > 1:
            out.append(
                (
                    "eos_duplicated",
                    f"{key} has {n_stop} end-of-turn tokens after templating; remove EOS text "
                    "from the data, the template adds it",
                )
            )
    return out, len(prompt_ids), max(len(v) for v in full.values())


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _decide(report: ValidationReport) -> None:
    hard = report.problem_counts
    if hard:
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(hard.items()))
        report.errors.append(f"{sum(hard.values())} problem(s) in the data: {kinds}")
    if report.rows.get("train", 0) == 0:
        report.errors.append("no training rows")
    if report.truncated_share > report.max_truncated_share:
        report.errors.append(
            f"{report.truncated_share:.1%} of rows are longer than max_length "
            f"{report.max_length} (limit {report.max_truncated_share:.0%}); raise "
            "dpo_args.max_length or validation.max_truncated_share"
        )
    elif report.truncated_rows:
        log.warning(
            "%d rows (%.1f%%) are longer than max_length %s and will be truncated",
            report.truncated_rows,
            100 * report.truncated_share,
            report.max_length,
        )
