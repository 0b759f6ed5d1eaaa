"""A deterministic scripted model for pipeline tests: every answer is a function of the model
name and the request, so reruns, resumes and concurrent completion orders give the same data.

Registered as backend ``fn``; ``options`` tune it:
``bad_share`` (share of judge answers that are not JSON), ``harm`` (target answers' harm level),
``english`` (attackers and responders answer in English), ``english_roles`` (these roles answer
in English: ``target``, ``refusal_writer``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time

from koalign.backends.base import ModelSpec, backend_names, register_backend
from koalign.backends.scripted import ScriptedBackend
from koalign.types import ChatRequest

CALLS: list[tuple[str, str]] = []
# answers in English for the roles named in options.english_roles
ENGLISH = {
    "target": "Sure. First, gather the materials; then follow these steps carefully.",
    "refusal_writer": "Sorry, I cannot help with that request.",
}
_PAUSE_COUNT = [0]


def _maybe_pause(tag: str) -> None:
    """``KOALIGN_TEST_PAUSE=stage:n:dir``: on this process's n-th call of ``stage``, write
    ``dir/stage`` and block, so a test can SIGKILL the process at a known point of a stage."""
    spec = os.environ.get("KOALIGN_TEST_PAUSE")
    if not spec:
        return
    stage, n, flag_dir = spec.split(":", 2)
    if not tag.startswith(stage + "/"):
        return
    _PAUSE_COUNT[0] += 1
    if _PAUSE_COUNT[0] == int(n):
        with open(os.path.join(flag_dir, stage), "w") as fh:
            fh.write("paused")
        time.sleep(120)


def hangul(rng: random.Random, n: int) -> str:
    words = []
    for _ in range(n):
        words.append("".join(chr(0xAC00 + rng.randrange(11172)) for _ in range(rng.randint(2, 4))))
    return " ".join(words)


def make_fn(spec: ModelSpec):
    name = spec.model
    bad_share = float(spec.options.get("bad_share", 0.0))
    fail_share = float(spec.options.get("fail_share", 0.25))
    delay_s = float(spec.options.get("delay_s", 0.0))

    def fn(request: ChatRequest) -> str:
        text = "\n".join(m.content for m in request.messages)
        key = f"{name}|{request.tag}|{request.sample_index}|{text}"
        h = hashlib.sha256(key.encode()).digest()
        rng = random.Random(h)
        role = (request.tag or "").split("/")[-1]
        CALLS.append((name, role))
        _maybe_pause(request.tag or "")
        if delay_s:
            time.sleep(delay_s)
        down = spec.options.get("down_while_exists")
        if down and os.path.exists(down):
            raise ConnectionError("the test server is down")  # the model layer types it
        if request.json_schema is not None and rng.random() < bad_share:
            return "죄송합니다, 평가를 할 수 없습니다."  # not JSON: a malformed judge answer
        if spec.options.get("english") and role in ("attacker", "responder"):
            return "Sure, here is a rewritten request in English."
        if role in spec.options.get("english_roles", ()):
            return ENGLISH[role]
        if role in ("seed_generator", "benign_generator", "attacker"):
            return f"질문: {hangul(rng, 12)}?"
        if role == "target":
            if rng.random() < 0.3:
                return f"죄송하지만 그 요청은 도와드릴 수 없습니다. ({hangul(rng, 1)})"
            return f"{hangul(rng, 20)}."
        if role == "refusal_writer":
            return f"죄송하지만 도와드릴 수 없습니다. ({hangul(rng, 1)})"
        if role == "responder":
            stale = (
                " 「동물보호법」 제8조도 참고하세요. 동물보호법 제8조 위반입니다."
                if spec.options.get("stale_citation")
                else ""
            )
            return f"그 요청은 도와드릴 수 없습니다. {hangul(rng, 15)}. 경찰청 112에 문의하세요.{stale}"
        if role == "harm_judge":
            refused = "죄송하지만 그 요청은" in text.split("[AI 응답]")[-1]
            score = 1 if refused else rng.choice([2, 3, 4, 5, 5])
            return json.dumps(
                {"score": score, "refused": refused, "reason": "판단 근거입니다."},
                ensure_ascii=False,
            )
        if role == "query_judge":
            return json.dumps(
                {"score": rng.choice([1, 2, 3, 4, 4]), "reason": "유해한 요청입니다."},
                ensure_ascii=False,
            )
        if role == "response_judge":
            return json.dumps(
                {
                    "safety": rng.choice([3, 4, 5, 5]),
                    "coherence": rng.choice([3, 4, 5]),
                    "reason": "정책을 잘 따랐습니다.",
                },
                ensure_ascii=False,
            )
        if role == "filter_judge":
            out = {}
            for c in (
                "intended_category",
                "natural_korean",
                "rejected_harmful",
                "chosen_safe",
                "chosen_p1_p3",
                "chosen_helpful",
            ):
                ok = rng.random() >= fail_share / 6
                out[c] = {"verdict": "pass" if ok else "fail", "reason": "기준에 대한 판단입니다."}
            return json.dumps(out, ensure_ascii=False)
        raise AssertionError(f"unexpected role {role!r}")

    return fn


def register() -> None:
    backend_names()  # load the built-in backends first (the registry loads them only when empty)
    register_backend("fn", lambda spec, env: ScriptedBackend(spec, env=env, fn=make_fn(spec)))


def config_data(locale: str, *, delay_s: float = 0.0, **sections) -> dict:
    models = {
        "gen": {"backend": "fn", "model": "gen"},
        "target-a": {"backend": "fn", "model": "target-a"},
        "target-b": {"backend": "fn", "model": "target-b"},
        "judge": {"backend": "fn", "model": "judge", "options": {"bad_share": 0.05}},
        "resp-1": {"backend": "fn", "model": "resp-1"},
        "resp-2": {"backend": "fn", "model": "resp-2"},
        "resp-3": {"backend": "fn", "model": "resp-3"},
    }
    data = {
        "locale": locale,
        "seed": 7,
        "models": models,
        "roles": {
            "seed_generator": "gen",
            "attacker": "gen",
            "targets": ["target-a", "target-b"],
            "harm_judge": "judge",
            "query_judge": "judge",
            "response_judge": "judge",
            "responders": ["resp-1", "resp-2", "resp-3"],
        },
        "seeds": {"per_type": 2, "benign_per_category": 4},
        "attack": {"rounds": 3},
        "respond": {"citation_check": False},
        "export": {"target_size": 1000},
        "runtime": {"fsync": False},
    }
    for spec in models.values():
        spec.setdefault("options", {})["delay_s"] = delay_s
    for k, v in sections.items():
        data.setdefault(k, {}).update(v)
    return data
