"""A loopback ``/v1/completions`` endpoint that scores prompts with a local Hugging Face causal
LM, as vLLM's OpenAI-compatible server does for ``echo: true, logprobs: N, max_tokens: 1``:
the shape lm-evaluation-harness's ``local-completions`` model reads for log-likelihood tasks.
vLLM cannot run on these machines; the scores here come from the real (tiny) model."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.servers import QuietHandler, reply, serve


def _scored(model: Any, tokenizer: Any, ids: list[int], top: int) -> dict[str, Any]:
    """One ``text_completion`` choice: the prompt's token log-probabilities (None for the first
    token) and one greedy token after it."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    next_id = int(logp[-1].argmax())
    seq = [*ids, next_id]
    token_logprobs: list[float | None] = [None]
    top_logprobs: list[dict[str, float] | None] = [None]
    for pos in range(1, len(seq)):
        row = logp[pos - 1]
        token_logprobs.append(float(row[seq[pos]]))
        best = torch.topk(row, top)
        top_logprobs.append(
            {
                tokenizer.decode([int(i)]): float(v)
                for v, i in zip(best.values, best.indices, strict=True)
            }
        )
    return {
        "text": tokenizer.decode(seq),
        "logprobs": {
            "tokens": [tokenizer.decode([t]) for t in seq],
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
        },
        "finish_reason": "length",
    }


@contextlib.contextmanager
def logprob_server(model_dir: Path, name: str = "tiny") -> Iterator[tuple[str, list[dict]]]:
    """Serve ``model_dir`` on 127.0.0.1; yields (``/v1`` base URL, the request bodies seen)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    seen: list[dict] = []
    lock = threading.Lock()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            reply(self, json.dumps({"object": "list", "data": [{"id": name}]}).encode())

        def do_POST(self) -> None:
            body = self.body()
            with lock:
                seen.append(body)
                prompts = body["prompt"]
                if prompts and isinstance(prompts[0], int):
                    prompts = [prompts]
                if not (body.get("echo") and body.get("max_tokens") == 1):
                    reply(self, b'{"error": {"message": "only echo scoring is served"}}', 400)
                    return
                choices = [
                    {"index": i, **_scored(model, tokenizer, list(p), int(body["logprobs"]))}
                    for i, p in enumerate(prompts)
                ]
            payload = {"id": "cmpl-1", "object": "text_completion", "model": name,
                       "choices": choices}  # fmt: skip
            reply(self, json.dumps(payload, ensure_ascii=False).encode())

    httpd, url = serve(Handler)
    try:
        yield url, seen
    finally:
        httpd.shutdown()
