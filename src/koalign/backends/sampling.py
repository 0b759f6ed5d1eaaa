"""Per-request seeded sampling for local batched generation.

A sampled row draws its randomness from its own ``torch.Generator``, seeded from the model's
sampling seed and the request's identity (its messages and sample index), never from its
position in a batch or from what its neighbours drew. The sampler is a logits processor that
turns greedy decoding into sampling with the Gumbel-max trick: temperature and top-p are applied
first, then each row's log-probabilities get Gumbel noise from the row's generator, so the
argmax that greedy decoding takes is a sample from the tempered, top-p-truncated distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koalign.errors import require
from koalign.jsonio import digest
from koalign.types import ChatRequest


def row_seed(seed: int | None, request: ChatRequest) -> int:
    """The sampling seed of one request: a 60-bit integer from the sha256 of the canonical JSON
    of ``[seed, [[role, content], ...], sample_index]`` (``seed`` ``None`` counts as 0). The
    same request gets the same seed in any batch, process or machine."""
    messages = [[m.role, m.content] for m in request.messages]
    return int(digest([seed or 0, messages, request.sample_index], 15), 16)


class RowSampler:
    """A logits processor (``processor(input_ids, scores) -> scores``) for greedy decoding that
    samples each row with its own generator (see the module docstring).

    ``seeds``: one per batch row; ``temperature`` > 0; ``top_p`` in (0, 1] or ``None``;
    ``device``: where the scores live. The returned scores are log-probabilities plus Gumbel
    noise, ``-inf`` outside the top-p set.
    """

    def __init__(
        self, seeds: Sequence[int], temperature: float, top_p: float | None, device: Any
    ) -> None:
        torch = require("torch", "hf", feature="sampling with the hf backend")
        self.temperature = float(temperature)
        self.top_p = top_p
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Tempered, top-p-truncated log-probabilities plus each row's Gumbel noise; ``scores`` is
        ``(rows, vocab)`` and so is the result (float32).

        Raises:
            ValueError: the number of rows is not the number of seeds.
        """
        torch = require("torch", "hf")
        logits = scores.float() / self.temperature
        if self.top_p is not None and self.top_p < 1.0:
            ordered, index = torch.sort(logits, descending=True, dim=-1)
            probs = ordered.softmax(dim=-1)
            outside = (probs.cumsum(dim=-1) - probs) > self.top_p  # the top token always stays
            ordered = ordered.masked_fill(outside, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, index, ordered)
        logp = torch.log_softmax(logits, dim=-1)
        rows, vocab = logp.shape
        if rows != len(self.generators):
            raise ValueError(f"{rows} rows for {len(self.generators)} row generators")
        uniform = torch.stack(
            [torch.rand(vocab, generator=g, device=logp.device) for g in self.generators]
        )
        tiny = torch.finfo(uniform.dtype).tiny
        gumbel = -torch.log((-torch.log(uniform.clamp_min(tiny))).clamp_min(tiny))
        return logp + gumbel
