"""General capability: multiple-choice accuracy on local JSONL files.

Two ways to score, chosen per model:

* ``loglik`` (hf models, also base + adapter): transformers computes the log-likelihood of each
  choice after the question, and the highest wins (``acc``); ``acc_norm`` divides by the
  choice's length in characters. Prompt formats: ``numbered`` (question, numbered choices,
  ``정답:``; the continuations are the numbers, as KMMLU-style harness tasks do) or ``cloze``
  (question, ``답:``; the continuations are the choice texts). When a context does not fit the
  model's window, its beginning is cut so the continuation fits; every cut is counted
  (``context_truncated``) and recorded on the item.
* ``generate`` (servers without log-probabilities): the ``mc_answer`` template asks for the
  choice number as JSON, read from the final answer after any reasoning. An answer that
  :func:`koalign.evaluate.answers.read_answer` rejects (empty or only reasoning, truncated at
  the token limit, an echo of the question, runaway repetition) is a **generation failure**:
  its reason is the item's ``generation_error``, it is counted in ``generation_failures`` and
  by reason in ``generation_failure_reasons``, never read for a number, and left out of every
  figure. An answer that was given but cannot be read as a valid number is *unparseable*
  (``parse_error`` on the item): reported apart and left out of ``accuracy``
  (``accuracy_all``, over the answers given, counts it wrong). A call that failed after its
  retries is no answer: it is a call failure (``call_error`` on the item, ``call_failures`` in
  the summary; :mod:`koalign.evaluate.failures`), never a generation failure, unparseable or
  wrong, and left out of every figure.

Accuracy is reported overall and per ``source`` and ``category``, each with the chance level
(mean of 1/number of choices) and a bootstrap interval.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from koalign.backends.base import ModelSpec
from koalign.backends.client import ModelPool
from koalign.errors import BackendError, require
from koalign.evaluate.answers import GENERATION_FAILURE_REASONS, failure_counts, read_answer
from koalign.evaluate.data import MCItem
from koalign.evaluate.failures import call_failure_info
from koalign.evaluate.runs import Progress, call_batched, load_summary, update_summary, write_jsonl
from koalign.evaluate.stats import DEFAULT_BOOT, DEFAULT_SEED, rate
from koalign.extract import extract_json
from koalign.locale import Locale
from koalign.prompts import render_chat
from koalign.types import ChatRequest

Format = Literal["numbered", "cloze"]


def mc_pairs(item: MCItem, fmt: Format) -> list[tuple[str, str]]:
    """``(context, continuation)`` for every choice of ``item``."""
    if fmt == "numbered":
        lines = "\n".join(f"{i}. {c}" for i, c in enumerate(item.choices, 1))
        ctx = f"{item.question.strip()}\n{lines}\n정답:"
        return [(ctx, f" {i}") for i in range(1, len(item.choices) + 1)]
    ctx = f"질문: {item.question.strip()}\n답:"
    return [(ctx, f" {c}") for c in item.choices]


def load_hf_model(spec: ModelSpec) -> tuple[Any, Any, str]:
    """Load ``spec.model`` (and ``options.adapter``) with transformers; returns model, tokenizer,
    device."""
    torch = require("torch", "hf", feature="log-likelihood scoring")
    transformers = require("transformers", "hf", feature="log-likelihood scoring")
    opts = spec.options
    device = opts.get("device") or "auto"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = opts.get("dtype", "auto")
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(spec.model)
        model = transformers.AutoModelForCausalLM.from_pretrained(spec.model, dtype=dtype)
    except OSError as exc:
        raise BackendError(
            f"cannot load model '{spec.model}': {exc}",
            hint="give a local model folder (the Hub may be unreachable)",
        ) from exc
    if opts.get("adapter"):
        peft = require("peft", "eval", feature="evaluating an adapter")
        model = peft.PeftModel.from_pretrained(model, opts["adapter"])
    model.to(device)
    model.eval()
    return model, tokenizer, device


def loglikelihoods(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    device: str,
    batch_size: int = 16,
    truncated: list[int] | None = None,
    max_len: int | None = None,
) -> list[float]:
    """Sum of log-probabilities (nats) of each continuation given its context.

    A context longer than the model's window (``max_len``, default
    ``config.max_position_embeddings``) minus the continuation is cut from the left; the index
    of every such pair is appended to ``truncated`` when a list is given.
    """
    import torch

    if max_len is None:
        max_len = int(getattr(model.config, "max_position_embeddings", 4096) or 4096)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = []
    for n, (ctx, cont) in enumerate(pairs):
        ctx_ids = tokenizer(ctx, add_special_tokens=True)["input_ids"]
        cont_ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
        keep = max(1, max_len - len(cont_ids))
        if len(ctx_ids) > keep:
            ctx_ids = ctx_ids[-keep:]
            if truncated is not None:
                truncated.append(n)
        encoded.append((ctx_ids, cont_ids))
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            seqs = [c + k for c, k in batch]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, (ctx_ids, cont_ids) in enumerate(batch):
                # only the continuation's positions: never a [batch, length, vocab] softmax
                start_pos = len(ctx_ids) - 1
                rows = logits[row, start_pos : start_pos + len(cont_ids)].float()
                logp = torch.log_softmax(rows, dim=-1)
                targets = torch.tensor(cont_ids, device=logp.device).unsqueeze(1)
                scores.append(float(logp.gather(1, targets).sum()))
    return scores


def score_loglik(
    items: Sequence[MCItem],
    spec: ModelSpec,
    *,
    fmt: Format = "numbered",
    batch_size: int = 16,
    max_len: int | None = None,
) -> list[dict[str, Any]]:
    """Per item: the log-likelihood of every choice, the prediction (acc) and acc_norm's, and
    whether a context was cut to fit the window (``context_truncated``)."""
    model, tokenizer, device = load_hf_model(spec)
    pairs, owners = [], []
    for n, item in enumerate(items):
        for pair in mc_pairs(item, fmt):
            pairs.append(pair)
            owners.append(n)
    cut: list[int] = []
    scores = loglikelihoods(
        model, tokenizer, pairs, device=device, batch_size=batch_size, truncated=cut,
        max_len=max_len,
    )  # fmt: skip
    cut_items = {owners[k] for k in cut}
    per_item: dict[int, list[float]] = defaultdict(list)
    for n, s in zip(owners, scores, strict=True):
        per_item[n].append(s)
    out = []
    for n, item in enumerate(items):
        ll = per_item[n]
        conts = [c for _, c in mc_pairs(item, fmt)]
        norm = [s / max(1, len(c.strip())) for s, c in zip(ll, conts, strict=True)]
        pred = max(range(len(ll)), key=ll.__getitem__)
        pred_norm = max(range(len(norm)), key=norm.__getitem__)
        out.append(
            {"loglik": ll, "pred": pred, "pred_norm": pred_norm, "raw": None, "parse_error": None,
             "context_truncated": n in cut_items}
        )  # fmt: skip
    return out


def mc_request(loc: Locale, item: MCItem) -> ChatRequest:
    """The chat request asking the evaluated model one multiple-choice question (the locale's
    ``mc_answer`` template with the question and its numbered choices).

    Raises:
        LocaleError: the template is missing or fails to render.
    """
    return ChatRequest(
        messages=render_chat(loc, "mc_answer", question=item.question, choices=item.choices),
        tag="eval.general.answer",
    )


_NUMBER = re.compile(r"(?:\"answer\"\s*:\s*\"?|정답\s*(?:은|는)?\s*:?\s*|^\s*\(?)(\d{1,2})")


def _has_answer(value: Any) -> bool:
    return isinstance(value, dict) and "answer" in value


def parse_choice(text: str | None, n_choices: int) -> tuple[int | None, str | None]:
    """0-based choice index from an answer (JSON ``answer``, ``정답: 3``, or a leading number),
    read from the final answer after any reasoning (the last JSON with an ``answer`` wins)."""
    found = extract_json(text, is_valid=_has_answer)
    answer_text = found.answer
    if not answer_text.strip():
        return None, "empty answer" if not found.reasoning else "only reasoning, no answer"
    text = answer_text
    value: Any = found.value.get("answer") if found.valid and _has_answer(found.value) else None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool):
        match = _NUMBER.search(text)
        value = int(match.group(1)) if match else None
    if value is None:
        return None, "no choice number found"
    if not 1 <= value <= n_choices:
        return None, f"choice {value} is outside 1..{n_choices}"
    return value - 1, None


async def score_generate(
    items: Sequence[MCItem],
    *,
    loc: Locale,
    pool: ModelPool,
    model: str,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Ask for the choice number; per item the prediction or the reason there is none: a
    failed call (``call_error``), a generation failure (``generation_error``, one of
    :data:`koalign.evaluate.answers.GENERATION_FAILURE_REASONS`) or an unparseable answer
    (``parse_error``)."""
    requests = [mc_request(loc, it) for it in items]
    results = await call_batched(
        pool, model, requests, batch_size=batch_size, what="answered", progress=progress
    )
    out = []
    for item, request, result in zip(items, requests, results, strict=True):
        read = read_answer(result, request.messages[-1].content)
        error: str | None = None
        pred: int | None = None
        call_error = read.detail if read.failure == "call_error" else None
        failed = read.failure if read.failure in GENERATION_FAILURE_REASONS else None
        if call_error is None and failed is None:
            pred, error = parse_choice(result.text, len(item.choices))
        out.append(
            {
                "loglik": None,
                "pred": pred,
                "pred_norm": None,
                "raw": result.text,
                "parse_error": error,
                "call_error": call_error,
                "generation_error": failed,
                "generation_detail": read.detail if failed else None,
                "finish_reason": read.finish_reason,
                "repaired": read.repaired,
            }
        )
    return out


def _accuracy(rows: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    parsed = [r for r in rows if r["pred"] is not None]
    # a failed call is no answer, and a generation failure no answer to read
    answered = [r for r in rows if not r.get("call_error") and not r.get("generation_error")]
    failures = [r.get("generation_error") for r in rows]
    acc = rate([r["correct"] for r in parsed], n_boot=n_boot, seed=seed)
    out = {
        "n": len(rows),
        "n_parsed": len(parsed),
        "accuracy": acc["rate"],
        "ci": acc["ci"],
        "accuracy_all": sum(r["correct"] for r in answered) / len(answered) if answered else None,
        "chance": sum(1 / len(r["choices"]) for r in rows) / len(rows) if rows else None,
        "unparseable": len(answered) - len(parsed),
        "generation_failures": sum(f is not None for f in failures),
        "generation_failure_reasons": failure_counts(failures),
        "answers_repaired": sum(bool(r.get("repaired")) for r in rows),
        **call_failure_info(len(rows), sum(bool(r.get("call_error")) for r in rows), 0),
        "context_truncated": sum(bool(r.get("context_truncated")) for r in rows),
    }
    norm = [r["correct_norm"] for r in rows if r.get("correct_norm") is not None]
    if norm:
        out["accuracy_norm"] = sum(norm) / len(norm)
    return out


def summarise_mc(
    items: Sequence[MCItem], scored: Sequence[dict[str, Any]], *, n_boot: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Join each item with its score (``pred``/``pred_norm``: 0-based choice indexes, None when
    unparsed) into result rows with ``correct`` and ``correct_norm``, and summarise.

    Returns:
        ``(rows, summary)``: the summary has, overall, per source and per category, ``n``,
            ``n_parsed``, ``accuracy`` (0-1, over parsed answers) with its bootstrap ``ci``,
            ``accuracy_all`` (over the answers given: unparsed counted wrong; generation
            failures and failed calls left out), ``chance`` (mean 1/choices), ``unparseable``,
            ``generation_failures`` with ``generation_failure_reasons``, ``answers_repaired``
            (lone surrogates replaced), the ``call_failures`` fields,
            ``context_truncated`` and, for log-likelihood scoring, ``accuracy_norm``
            (length-normalised).

    Raises:
        ValueError: ``items`` and ``scored`` differ in length.
    """
    rows = []
    for item, s in zip(items, scored, strict=True):
        rows.append(
            {
                **item.model_dump(),
                **s,
                "correct": s["pred"] == item.answer_index,
                "correct_norm": None
                if s["pred_norm"] is None
                else s["pred_norm"] == item.answer_index,
            }
        )
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {
        "source": defaultdict(list),
        "category": defaultdict(list),
    }
    for r in rows:
        groups["source"][r["source"]].append(r)
        if r["category"] is not None:
            groups["category"][str(r["category"])].append(r)
    summary = {
        **_accuracy(rows, n_boot, seed),
        "per_source": {k: _accuracy(v, n_boot, seed) for k, v in sorted(groups["source"].items())},
        "per_category": {
            k: _accuracy(v, n_boot, seed) for k, v in sorted(groups["category"].items())
        },
    }
    return rows, summary


async def arun_general(
    items: Sequence[MCItem],
    *,
    spec: ModelSpec,
    out_dir: Path,
    method: Literal["auto", "loglik", "generate"] = "auto",
    fmt: Format = "numbered",
    loc: Locale | None = None,
    pool: ModelPool | None = None,
    model: str | None = None,
    batch_size: int = 16,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    extra_info: dict[str, Any] | None = None,
    progress: Progress | None = None,
    max_len: int | None = None,
) -> dict[str, Any]:
    """Score ``items``; write ``general.jsonl``; return the ``mc`` part of the ``general``
    section (store it with :func:`write_general_summary`)."""
    if method == "auto":
        method = "loglik" if spec.backend == "hf" else "generate"
    if method == "loglik":
        if spec.backend != "hf":
            raise BackendError(
                f"log-likelihood scoring needs an hf model, not '{spec.backend}'",
                hint="use --method generate for servers",
            )
        if progress is not None:
            progress("log-likelihood", 0, len(items))
        scored = score_loglik(items, spec, fmt=fmt, batch_size=batch_size, max_len=max_len)
        if progress is not None:
            progress("log-likelihood", len(items), len(items))
    else:
        if pool is None or loc is None or model is None:
            raise ValueError("generate scoring needs a pool, a model name and a locale")
        scored = await score_generate(
            items, loc=loc, pool=pool, model=model, batch_size=batch_size, progress=progress
        )
    rows, summary = summarise_mc(items, scored, n_boot=n_boot, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "general.jsonl", rows)
    summary.update(
        method=method,
        format=fmt if method == "loglik" else None,
        items_file="general.jsonl",
        **(extra_info or {}),
    )
    return summary


def write_general_summary(out_dir: Path, mc: dict[str, Any] | None, lm_eval: dict | None) -> None:
    """Store the ``general`` section: ``mc`` (local files) and/or ``lm_eval`` (harness tasks).

    A part not given is kept from an earlier run in the same directory.
    """
    section: dict[str, Any] = dict(load_summary(out_dir).get("general", {}))
    section.pop("created", None)
    if mc is not None:
        section["mc"] = mc
        section["n"] = mc["n"]
        section["accuracy"] = mc["accuracy"]
    if lm_eval is not None:
        section["lm_eval"] = lm_eval
    update_summary(out_dir, "general", section)
