"""Two hf models naming the same weights share one loaded copy; different dtypes do not."""

from __future__ import annotations

from koalign.backends import ModelPool, ModelSpec
from koalign.backends.hf import _SHARED
from koalign.types import ChatRequest, Message, SamplingParams


def test_same_weights_load_once_and_are_released_on_close(tiny_model_dir) -> None:
    base = {"backend": "hf", "model": str(tiny_model_dir), "options": {"device": "cpu"}}
    specs = {
        "writer": ModelSpec(**base, sampling=SamplingParams(temperature=1.0, seed=1, max_tokens=4)),
        "judge": ModelSpec(**base, sampling=SamplingParams(temperature=0, max_tokens=4)),
        "half": ModelSpec(**{**base, "options": {"device": "cpu", "dtype": "bfloat16"}}),
    }
    pool = ModelPool(specs)
    key = (str(tiny_model_dir), "cpu", "auto", "", "")
    users_before = _SHARED.get(key, {}).get("users", 0)  # other tests may hold this model
    request = ChatRequest(
        messages=(Message(role="user", content="안녕하세요"),),
        sampling=SamplingParams(max_tokens=4),
        on_truncation="drop",
    )
    for name in specs:
        [result] = pool.get(name).generate([request])
        assert result.ok or result.error.kind in ("truncated", "empty")  # a random model
    writer, judge, half = (pool.get(n).backend for n in specs)
    assert writer._model is judge._model
    assert writer._lock is judge._lock
    assert half._model is not writer._model
    assert _SHARED[key]["users"] == users_before + 2
    pool.close()
    assert _SHARED.get(key, {}).get("users", 0) == users_before
    assert (str(tiny_model_dir), "cpu", "bfloat16", "", "") not in _SHARED
