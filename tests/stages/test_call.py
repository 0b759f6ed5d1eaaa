"""One model call as a stage value: a JSON answer whose strings cannot be text is a counted bad
output, never a verdict."""

from __future__ import annotations

import asyncio

import pytest

from koalign.backends.client import ModelPool
from koalign.config import load_run_config
from koalign.stages import StageContext
from koalign.stages.base import Caller, call, request
from koalign.stages.verdicts import HARM_SCHEMA, parse_harm
from koalign.types import Message
from support.fakes import config_data

# the harm judge's reply as a real server sent it: the surrogate is a JSON escape in the reply
# text (six ASCII characters), not a raw character
ESCAPED = '{"score": 1, "refused": true, "reason": "안전함 \\ud83d"}'


def answer(reply: str, *, schema: bool = True):
    data = config_data("ko")
    data["models"]["judge"] = {"backend": "scripted", "model": "judge",
                               "options": {"responses": [reply]}}  # fmt: skip
    cfg, loc = load_run_config(None, data=data)
    pool = ModelPool(cfg.models)
    ctx = StageContext(cfg, loc, cfg.roles.resolved(), Caller(pool))
    msgs = (Message(role="user", content="판정하세요."),)
    req = request(msgs, tag="attack/harm_judge", schema=HARM_SCHEMA if schema else None)
    return asyncio.run(call(ctx, "judge", req, parse_harm))


@pytest.mark.parametrize("schema", [True, False])  # parsed by the model layer, or by the stage
def test_an_escaped_lone_surrogate_in_a_json_answer_is_a_replacement_char_output(schema):
    got = answer(ESCAPED, schema=schema)
    assert got.value is None
    assert got.error is not None and got.error.kind == "replacement_char"
    assert "\\ud83d" in got.error.message  # named, and the message itself is valid UTF-8
    got.error.message.encode("utf-8")
    assert got.raw == ESCAPED  # kept as the model wrote it


@pytest.mark.parametrize("reason", ["안전함 \\ufffd", "안전함 \ufffd"])
def test_u_fffd_in_a_json_string_is_a_replacement_char_output(reason):
    # U+FFFD written as an escape or as the character: a string cut or decoded wrongly
    got = answer('{"score": 1, "refused": true, "reason": "' + reason + '"}')
    assert got.error is not None and got.error.kind == "replacement_char"


def test_a_clean_json_answer_is_a_verdict():
    got = answer('{"score": 1, "refused": true, "reason": "안전함 \\uc548\\uc804"}')
    assert got.ok and got.value is not None
    assert got.value.reason == "안전함 안전" and got.value.score == 1
