"""The hf backend on the tiny random model: batches, micro-batching, schema-constrained output."""

from __future__ import annotations

import asyncio

import jsonschema
import pytest

from koalign.backends import ModelPool, ModelSpec
from koalign.backends.hf import HFBackend
from koalign.errors import BackendError
from koalign.types import ChatRequest, Message, SamplingParams

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["safe", "unsafe"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "maxLength": 12},
    },
    "required": ["label", "score", "reason"],
    "additionalProperties": False,
}


def ask(text: str, **kw) -> ChatRequest:
    # a random model rarely stops: its answers are cut at max_tokens, reported as truncated
    kw.setdefault("on_truncation", "drop")
    return ChatRequest(
        messages=(
            Message(role="system", content="한국어로 답하세요."),
            Message(role="user", content=text),
        ),
        **kw,
    )


def answered(r) -> bool:
    """The model produced text: ok, or cut at max_tokens (typed, text kept), or only blanks."""
    return r.ok or (r.error.kind in ("truncated", "empty") and r.text is not None)


@pytest.fixture(scope="module")
def pool(tiny_model_dir):
    spec = ModelSpec(
        backend="hf",
        model=str(tiny_model_dir),
        sampling=SamplingParams(max_tokens=8),
        options={"device": "auto", "max_batch_size": 4},
    )
    pool = ModelPool({"tiny": spec})
    yield pool
    pool.close()


def test_batch_generation_keeps_order_and_counts_tokens(pool):
    llm = pool.get("tiny")
    prompts = ["안녕", "서울의 날씨는 어떤가요? 오늘은 비가 오나요?", "김치"]
    results = llm.generate([ask(p) for p in prompts])
    assert len(results) == 3 and all(answered(r) for r in results)
    # longer prompts have more input tokens: the batch was left-padded, not truncated
    assert results[1].tokens_in > results[0].tokens_in
    assert all(0 < r.tokens_out <= 8 for r in results)
    assert all(r.finish_reason in ("stop", "length") for r in results)
    assert all(
        (r.finish_reason == "length") == (r.error is not None and r.error.kind == "truncated")
        for r in results
    )
    # token counting sees what generation sees
    assert [llm.count_tokens(ask(p).messages) for p in prompts] == [r.tokens_in for r in results]
    # greedy decoding is deterministic and independent of the batch it ran in
    alone = llm.generate([ask(prompts[1])])
    assert alone[0].text == results[1].text


def test_concurrent_single_requests_are_micro_batched(pool):
    llm = pool.get("tiny")
    backend = llm.backend
    seen: list[int] = []
    original = backend.generate_batch

    def spy(requests, *rest):
        seen.append(len(requests))
        return original(requests, *rest)

    backend.generate_batch = spy
    try:

        async def run():
            return await asyncio.gather(*(llm.agenerate([ask(f"질문 {i}")]) for i in range(8)))

        results = asyncio.run(run())
    finally:
        del backend.generate_batch
    assert [len(r) for r in results] == [1] * 8 and all(answered(r[0]) for r in results)
    assert sum(seen) == 8 and max(seen) == 4  # max_batch_size


def test_schema_constrained_output_validates(pool):
    llm = pool.get("tiny")
    reqs = [
        ask(f"판정 {i}", json_schema=SCHEMA, sampling=SamplingParams(max_tokens=48))
        for i in range(3)
    ]
    results = llm.generate(reqs)
    for r in results:
        assert r.ok, (r.error, r.text)
        jsonschema.validate(r.parsed, SCHEMA)
        assert r.parsed["label"] in ("safe", "unsafe") and 1 <= r.parsed["score"] <= 5


def test_system_prompt_is_folded_when_template_has_no_system_role(tiny_model_dir):
    backend = HFBackend(ModelSpec(backend="hf", model=str(tiny_model_dir)))
    backend._tok = backend._make_tokenizer()  # its own copy: the template is changed below
    msgs = (Message(role="system", content="SYS"), Message(role="user", content="USER"))
    assert "<|im_start|>system\nSYS" in backend.render(msgs)
    backend._tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}<turn>assistant\n"
    )
    backend._fold_system = None
    text = backend.render(msgs)
    assert "<turn>user\nSYS\n\nUSER</turn>" in text and "system" not in text


def test_unknown_option_gets_did_you_mean(tiny_model_dir):
    with pytest.raises(BackendError, match="did you mean 'adapter'"):
        HFBackend(ModelSpec(backend="hf", model=str(tiny_model_dir), options={"adaptor": "x"}))


def test_peft_adapter_loads_on_top_and_changes_the_cache_identity(tiny_model_dir, tmp_path):
    peft = pytest.importorskip("peft")
    import torch
    import transformers

    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():  # make the adapter do something (LoRA B starts at zero)
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)
    lora.save_pretrained(tmp_path / "adapter")
    plain = HFBackend(ModelSpec(backend="hf", model=str(tiny_model_dir)))
    spec = ModelSpec(
        backend="hf",
        model=str(tiny_model_dir),
        sampling=SamplingParams(max_tokens=6),
        options={"adapter": str(tmp_path / "adapter")},
    )
    pool = ModelPool({"tuned": spec})
    llm = pool.get("tuned")
    assert llm.backend.cache_identity() != plain.cache_identity()
    [result] = llm.generate([ask("안녕")])
    assert answered(result) and result.tokens_out > 0
    assert type(llm.backend._model).__name__.startswith("Peft")
    pool.close()


@pytest.mark.gpu
def test_auto_device_uses_cuda_in_bf16_with_constrained_decoding(tiny_model_dir):
    import torch

    spec = ModelSpec(backend="hf", model=str(tiny_model_dir), options={"max_batch_size": 16})
    pool = ModelPool({"gpu": spec})
    llm = pool.get("gpu")
    reqs = [
        ask(f"판정 {i}", json_schema=SCHEMA, sampling=SamplingParams(max_tokens=48))
        for i in range(16)
    ]
    results = llm.generate(reqs)
    model = llm.backend._model
    assert next(model.parameters()).device.type == "cuda"
    assert next(model.parameters()).dtype in (torch.bfloat16, torch.float16)
    for r in results:
        assert r.ok, (r.error, r.text)
        jsonschema.validate(r.parsed, SCHEMA)
    pool.close()


def test_a_model_path_under_the_home_folder_is_expanded(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from koalign.backends.hf import fingerprint

    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    backend = HFBackend(
        ModelSpec(backend="hf", model="~/models/tiny", options={"adapter": "~/adapters/a"})
    )
    assert backend.source == str(tmp_path / "models" / "tiny")
    assert backend.adapter == str(tmp_path / "adapters" / "a")
    plain = HFBackend(ModelSpec(backend="hf", model="~/models/tiny"))
    assert plain.cache_identity()["model_fp"] == fingerprint(str(tiny_model_dir))
    spec = ModelSpec(backend="hf", model="~/models/tiny", sampling=SamplingParams(max_tokens=4))
    pool = ModelPool({"m": spec})
    [result] = pool.get("m").generate([ask("안녕하세요")])
    pool.close()
    assert answered(result)


def test_generation_ends_once_nobody_waits_for_it(tiny_model_dir):
    """A stopped run cancels the tasks waiting for answers; the generation in the worker
    thread then ends at the next token instead of running to max_new_tokens."""
    backend = HFBackend(ModelSpec(backend="hf", model=str(tiny_model_dir)))
    long = ask("긴 답을 써 주세요", sampling=SamplingParams(max_tokens=200))
    asked = []

    def after_three() -> bool:
        asked.append(1)
        return len(asked) > 3

    [cut] = backend.generate_batch([long], after_three)
    [full] = backend.generate_batch([long])
    assert cut.tokens_out <= 4 < full.tokens_out

    seen: list[bool] = []
    original = backend.generate_batch

    def spy(requests, abandoned=None):
        result = original(requests, abandoned)
        seen.append(bool(abandoned and abandoned()))
        return result

    backend.generate_batch = spy  # type: ignore[method-assign]

    async def cancel_while_generating() -> None:
        task = asyncio.ensure_future(backend.agenerate([long]))
        while not backend._lock.locked() and not task.done():  # until the thread generates
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_generating())  # the loop's shutdown waits for the thread
    assert seen == [True]  # the generation saw that nobody waited any more
