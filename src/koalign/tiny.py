"""Build a tiny random Llama chat model with a Korean BPE tokenizer.

Used by ``koalign demo`` and by the test suite to exercise every code path offline in seconds.
The model's weights are random: its text is meaningless, only shapes, counts and files matter.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from koalign.errors import require

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def korean_corpus() -> str:
    """The few KB of Korean text bundled with koalign."""
    return resources.files("koalign.data").joinpath("corpus_ko.txt").read_text(encoding="utf-8")


def build_tokenizer(vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer on the bundled Korean corpus (nothing is out of vocabulary)."""
    tokenizers = require("tokenizers", "hf", feature="the tiny model")
    transformers = require("transformers", "hf", feature="the tiny model")
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in korean_corpus().splitlines() if line.strip()]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        padding_side="left",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 1024) -> Path:
    """Write a ~140k-parameter random Llama chat model and its tokenizer to ``out_dir``.

    Deterministic for a given seed. Returns the directory.
    """
    torch = require("torch", "hf", feature="the tiny model")
    transformers = require("transformers", "hf", feature="the tiny model")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
