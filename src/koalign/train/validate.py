"""Check preference rows against the model's chat template before training.

Catches the DPO pitfalls TRL users hit most: rows with wrong roles or empty turns, templates
that drop the system turn, duplicated or missing EOS, a templated prompt that is not a prefix
of prompt+answer, and sequences longer than ``max_length``.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from koalign.train.data import Row, RowProblem, check_row, clean_row, row_format

log = logging.getLogger(__name__)


class LengthStats(BaseModel):
    """Token-length statistics of a set of rows: min, mean (1 decimal), median, 95th percentile
    (the sorted value at index ``round(0.95 * (n - 1))``) and max; all 0 for no rows."""

    model_config = ConfigDict(extra="forbid")

    min: int = 0
    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    max: int = 0

    @classmethod
    def of(cls, values: list[int]) -> LengthStats:
        """The statistics of ``values`` (token counts); all 0 when empty."""
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
    truncation_mode: str = Field(
        "keep_start", description="dpo_args.truncation_mode: which end TRL keeps."
    )
    truncated_rows: int = 0
    truncated_share: float = 0.0
    max_truncated_share: float = 1.0
    trained_rows: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "Rows per split that TRL will train on: the rows given, less those TRL drops "
            "(prompt alone fills max_length) and those left without a learning signal after "
            "truncation; counted only when the data has no problems."
        ),
    )
    dropped: list[RowProblem] = Field(
        default_factory=list,
        description=(
            "Rows that would not be trained on: kind 'prompt_fills_max_length' (TRL drops "
            "the row) or 'identical_after_truncation' (chosen and rejected are the same "
            "tokens once cut to max_length, so the row teaches nothing)."
        ),
    )
    dropped_share: dict[str, float] = Field(
        default_factory=dict, description="Dropped rows / rows given, per split."
    )
    max_dropped_share: float = 1.0
    stop_tokens: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list, description="Reasons training is refused.")

    @property
    def ok(self) -> bool:
        """True when training may start (no problem, enough rows survive max_length)."""
        return not self.errors

    def summary(self, limit: int = 10) -> str:
        """A few lines for a person: counts, lengths, problems (first ``limit``), refusals."""
        lines = [
            f"rows: {', '.join(f'{k} {v}' for k, v in self.rows.items())} ({self.format} format)",
            f"sequence tokens: min {self.sequence_tokens.min}, mean {self.sequence_tokens.mean}, "
            f"p95 {self.sequence_tokens.p95:g}, max {self.sequence_tokens.max}; "
            f"max_length {self.max_length}: {self.truncated_rows} rows "
            f"({self.truncated_share:.1%}) would be truncated",
        ]
        if self.trained_rows:
            lines.append(
                "rows TRL will train on: "
                + ", ".join(f"{k} {v}" for k, v in self.trained_rows.items())
                + (f" ({len(self.dropped)} dropped)" if self.dropped else "")
            )
            lines += [f"  - dropped {p.render()}" for p in self.dropped[:limit]]
            if len(self.dropped) > limit:
                lines.append(f"  ... and {len(self.dropped) - limit} more dropped")
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
    truncation_mode: str = "keep_start",
    max_dropped_share: float = 0.01,
) -> ValidationReport:
    """Check every row's shape, then tokenise each valid row exactly as ``trl.DPOTrainer`` does
    and check what TRL will train on.

    Args:
        rows: loaded rows (:func:`koalign.train.data.load_rows`).
        tokenizer: the training tokenizer, with its chat template.
        max_length: ``dpo_args.max_length`` in tokens (None: no truncation, nothing dropped).
        stop_ids: end-of-turn token ids (default: the tokenizer's EOS).
        merge_system: fold a system turn into the first user turn (``system_prompt: merge``).
        max_truncated_share: refuse when a larger share of rows is longer than max_length.
        allow_prompt_mismatch: accept a templated prompt that is not a token prefix of
            prompt+answer.
        load_problems: problems found while reading the files (bad JSON ...).
        truncation_mode: ``dpo_args.truncation_mode`` (``keep_start`` or ``keep_end``).
        max_dropped_share: refuse when a larger share of a split's rows would not be trained
            on (see :attr:`ValidationReport.dropped`); all rows of a split dropped is always
            refused.

    Returns:
        The report; ``report.ok`` is false when training must not start, ``report.errors`` says
        why. Nothing is raised for bad rows: they are listed in ``problems`` and ``dropped``.
    """
    stop_ids = stop_ids if stop_ids is not None else stop_token_ids(tokenizer)
    report = ValidationReport(
        max_length=max_length,
        truncation_mode=truncation_mode,
        max_truncated_share=max_truncated_share,
        max_dropped_share=max_dropped_share,
    )
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
    given: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    dropped: list[RowProblem] = []
    for row in rows:
        shape = check_row(row.data)
        fmt = row_format(row.data)
        if not shape and majority and fmt != majority:
            shape = [("mixed_format", f"{fmt} row in a {majority} dataset; use one format")]
        if shape:
            problems += [_problem(row, kind, msg) for kind, msg in shape]
            continue
        found, tokens = _check_template(
            clean_row(row.data, merge_system=merge_system),
            tokenizer,
            stop_ids,
            allow_prompt_mismatch,
        )
        problems += [_problem(row, kind, msg) for kind, msg in found]
        if tokens is None:
            continue
        prompt_lens.append(len(tokens.prompt))
        seq_lens.append(tokens.longest)
        if found:
            continue
        given[row.split] += 1
        fate = tokens.fate(max_length, truncation_mode)
        if fate is not None:
            dropped.append(_problem(row, *fate))
            lost[row.split] += 1

    report.problems = problems
    report.dropped = dropped
    if not problems:
        report.trained_rows = {s: given[s] - lost[s] for s in ("train", "eval") if given[s]}
        report.dropped_share = {
            s: round(lost[s] / given[s], 4) for s in ("train", "eval") if given[s]
        }
    report.problem_counts = dict(Counter(p.kind for p in problems))
    report.prompt_tokens = LengthStats.of(prompt_lens)
    report.sequence_tokens = LengthStats.of(seq_lens)
    if max_length is not None and seq_lens:
        report.truncated_rows = sum(1 for n in seq_lens if n > max_length)
        report.truncated_share = round(report.truncated_rows / len(seq_lens), 4)
    _decide(report)
    return report


def _problem(row: Row, kind: str, message: str) -> RowProblem:
    return RowProblem(location=row.location, id=row.id, split=row.split, kind=kind, message=message)


def _ids(tokenizer: Any, value: Any, **kw: Any) -> list[int]:
    if isinstance(value, list):
        out = tokenizer.apply_chat_template(value, tokenize=True, return_dict=True, **kw)
    else:
        out = tokenizer(text=value)
    ids = out["input_ids"]
    return list(ids[0]) if ids and isinstance(ids[0], list) else list(ids)


@dataclass(frozen=True)
class _Tokens:
    """One row tokenised as ``trl.DPOTrainer._prepare_dataset`` tokenises it (trl 1.16)."""

    prompt: list[int]  # the templated prompt alone, with the generation prompt
    full: dict[str, list[int]]  # "chosen"/"rejected" -> templated prompt + answer

    @property
    def longest(self) -> int:
        """Tokens of the longer of prompt+chosen and prompt+rejected."""
        return max(len(v) for v in self.full.values())

    @property
    def prompt_len(self) -> int:
        """Where TRL starts the completion: the prompt tokens both full sequences share."""
        return min(_common_prefix(self.prompt, ids) for ids in self.full.values())

    def fate(self, max_length: int | None, truncation_mode: str) -> tuple[str, str] | None:
        """``(kind, message)`` when TRL will not learn from the row, else None.

        Mirrors TRL: rows whose prompt alone fills ``max_length`` are filtered out under
        ``keep_start``; then the collator cuts prompt+chosen and prompt+rejected to
        ``max_length`` (from the start or the end) with a completion mask, and a row whose two
        cut sequences and masks are equal has no learning signal.
        """
        n = self.prompt_len
        if max_length is not None and truncation_mode == "keep_start" and n >= max_length:
            return (
                "prompt_fills_max_length",
                f"the templated prompt alone has {n} tokens, max_length is {max_length}: "
                "TRL drops the row",
            )
        cut = slice(None)
        if max_length is not None:
            cut = (
                slice(None, max_length)
                if truncation_mode == "keep_start"
                else slice(-max_length, None)
            )
        seqs = []
        for ids in self.full.values():
            completion = ids[n:]
            mask = [0] * n + [1] * len(completion)
            seqs.append((ids[:n] + completion)[cut] + [-1] + mask[cut])
        if seqs[0] == seqs[1]:
            return (
                "identical_after_truncation",
                f"chosen and rejected are the same tokens once cut to max_length {max_length}: "
                "the row teaches nothing",
            )
        return None


def _check_template(
    data: dict[str, Any], tokenizer: Any, stop_ids: set[int], allow_prompt_mismatch: bool
) -> tuple[list[tuple[str, str]], _Tokens | None]:
    """Template one clean row like ``trl.DPOTrainer`` does; return problems and its tokens."""
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
        return [("template_error", f"the chat template failed: {exc}{hint}")], None

    tokens = _Tokens(prompt=prompt_ids, full=full)
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
    start = tokens.prompt_len
    if full["chosen"][start:] == full["rejected"][start:]:
        out.append(
            (
                "identical_pair",
                "chosen and rejected are the same tokens after the chat template and the "
                "tokenizer; the pair teaches nothing",
            )
        )
    return out, tokens


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
    for split, kept in report.trained_rows.items():
        given = report.rows.get(split, 0)
        lost = [p for p in report.dropped if p.split == split]
        if kept == 0:
            report.errors.append(
                f"no {split} row would be trained on: all {given} are dropped "
                f"({_kinds(lost)}: {_names(lost)}); the rows are too long for max_length "
                f"{report.max_length}: shorten them, or raise max_length if the model allows it"
            )
        elif report.dropped_share.get(split, 0.0) > report.max_dropped_share:
            report.errors.append(
                f"{given - kept} of {given} {split} rows ({report.dropped_share[split]:.1%}) "
                f"would not be trained on ({_kinds(lost)}; limit "
                f"{report.max_dropped_share:.0%}): {_names(lost)}; shorten those rows, raise "
                "max_length, or raise validation.max_dropped_share"
            )
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


def _kinds(problems: list[RowProblem]) -> str:
    counts = Counter(p.kind for p in problems)
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))


def _names(problems: list[RowProblem], limit: int = 10) -> str:
    names = [p.location + (f" [{p.id}]" if p.id else "") for p in problems[:limit]]
    more = f" and {len(problems) - limit} more" if len(problems) > limit else ""
    return ", ".join(names) + more
