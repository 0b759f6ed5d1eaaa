"""The dataset check catches every broken-row kind and the chat-template pitfalls."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from train_rows import make_row, write_jsonl

from koalign.errors import DataError
from koalign.tiny import CHATML_TEMPLATE
from koalign.train.config import TrainConfig
from koalign.train.data import clean_row, load_rows, resolve_sources, sha256_file
from koalign.train.dpo import prepare
from koalign.train.validate import validate_rows

# Gemma-2 style: no system role, the template raises.
RAISE_ON_SYSTEM = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Silently skips the system turn.
DROP_SYSTEM = CHATML_TEMPLATE.replace(
    "{% for message in messages %}",
    "{% for message in messages %}{% if message['role'] == 'system' %}{% continue %}{% endif %}",
).replace("{% for", "{%- for", 1)
# Turns end with a newline only: the model never sees its EOS.
NO_EOS = CHATML_TEMPLATE.replace("'<|im_end|>' + '\n'", "'\n'")
# The generation prompt differs from how an assistant turn starts.
MISMATCH = CHATML_TEMPLATE.replace("{{ '<|im_start|>assistant\n' }}", "{{ '<|im_start|>bot\n' }}")


def _rows(tmp_path: Path, rows: list[Any], name: str = "d.jsonl"):
    path = tmp_path / name
    if rows and isinstance(rows[0], str):
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    else:
        write_jsonl(path, rows)
    return load_rows(resolve_sources([str(path)]))


def _check(tok, tmp_path: Path, rows: list[Any], **kw: Any):
    loaded, problems = _rows(tmp_path, rows)
    return validate_rows(
        loaded, tok, max_length=kw.pop("max_length", 2048), load_problems=problems, **kw
    )


def _with_template(tok, template: str):
    t = copy.deepcopy(tok)
    t.chat_template = template
    return t


def test_good_export_passes_with_stats(tiny_tokenizer, export_dir: Path) -> None:
    sources = resolve_sources([str(export_dir)])
    assert [(Path(f.path).name, f.split) for f in sources.files] == [
        ("train.jsonl", "train"),
        ("validation.jsonl", "eval"),
    ]
    assert sources.cards == {str(export_dir / "README.md"): sha256_file(export_dir / "README.md")}
    rows, problems = load_rows(sources)
    report = validate_rows(rows, tiny_tokenizer, max_length=2048, load_problems=problems)
    assert report.ok, report.summary()
    assert report.rows == {"train": 8, "eval": 2} and report.format == "conversational"
    assert report.stop_tokens == ["<|im_end|>"]
    assert 0 < report.prompt_tokens.min < report.sequence_tokens.min <= report.sequence_tokens.max
    assert report.truncated_rows == 0 and report.problems == []
    assert [f.rows for f in sources.files] == [8, 2]


def test_metadata_is_dropped() -> None:
    row = make_row(0)
    row["prompt"][1]["name"] = "extra"
    clean = clean_row(row)
    assert set(clean) == {"prompt", "chosen", "rejected"}
    assert all(set(m) == {"role", "content"} for m in clean["prompt"])


def _broken(kind: str) -> Any:
    row = make_row(1)
    if kind == "missing_field":
        del row["rejected"]
    elif kind == "bad_type":
        row["chosen"] = "문자열"
    elif kind == "empty_turn":
        row["prompt"][1]["content"] = "   "
    elif kind == "bad_role":
        row["prompt"][1]["role"] = "human"
    elif kind == "role_order":
        row["chosen"] = [{"role": "user", "content": "네"}]
    elif kind == "identical_pair":
        row["rejected"] = copy.deepcopy(row["chosen"])
    elif kind == "mixed_format":
        row = {"prompt": "질문", "chosen": "좋은 답", "rejected": "나쁜 답"}
    elif kind == "eos_duplicated":
        row["chosen"][0]["content"] += "<|im_end|>"
    elif kind == "bad_json":
        return '{"prompt": [oops'
    elif kind == "not_object":
        return "[1, 2]"
    return row


@pytest.mark.parametrize(
    "kind",
    [
        "missing_field",
        "bad_type",
        "empty_turn",
        "bad_role",
        "role_order",
        "identical_pair",
        "mixed_format",
        "eos_duplicated",
        "bad_json",
        "not_object",
    ],
)
def test_each_broken_row_kind_is_caught(tiny_tokenizer, tmp_path: Path, kind: str) -> None:
    good = [make_row(i) for i in range(3)]
    broken = _broken(kind)
    if isinstance(broken, str):
        rows = [json.dumps(r, ensure_ascii=False) for r in good] + [broken]
    else:
        broken["id"] = "broken-1"
        rows = [*good, broken]
    report = _check(tiny_tokenizer, tmp_path, rows)
    assert not report.ok
    assert set(report.problem_counts) == {kind}, report.summary()
    (problem,) = report.problems
    assert problem.location.endswith("d.jsonl:4")
    if not isinstance(broken, str):
        assert problem.id == "broken-1"
    assert kind in report.summary()


def test_role_order_variants(tiny_tokenizer, tmp_path: Path) -> None:
    late_system = make_row(0)
    late_system["prompt"].append({"role": "system", "content": "나중 시스템"})
    ends_with_assistant = make_row(1)
    ends_with_assistant["prompt"].append({"role": "assistant", "content": "네"})
    two_users = make_row(2)
    two_users["prompt"].append({"role": "user", "content": "또 질문"})
    multi_turn = make_row(3)  # a valid multi-turn prompt
    multi_turn["prompt"] += [
        {"role": "assistant", "content": "무엇을 도와드릴까요?"},
        {"role": "user", "content": "다시 묻습니다."},
    ]
    report = _check(
        tiny_tokenizer, tmp_path, [late_system, ends_with_assistant, two_users, multi_turn]
    )
    assert set(report.problem_counts) == {"role_order"}
    assert {p.location[-1] for p in report.problems} == {"1", "2", "3"}  # row 4 is fine


def test_template_that_raises_on_system_is_refused_and_merge_fixes_it(
    tiny_tokenizer, tmp_path: Path
) -> None:
    tok = _with_template(tiny_tokenizer, RAISE_ON_SYSTEM)
    report = _check(tok, tmp_path, [make_row(0), make_row(1)])
    assert report.problem_counts == {"template_error": 2}
    assert "System role not supported" in report.problems[0].message
    assert "system_prompt: merge" in report.problems[0].message
    merged = _check(tok, tmp_path, [make_row(0), make_row(1)], merge_system=True)
    assert merged.ok, merged.summary()


def test_template_that_drops_the_system_turn_is_refused(tiny_tokenizer, tmp_path: Path) -> None:
    tok = _with_template(tiny_tokenizer, DROP_SYSTEM)
    report = _check(tok, tmp_path, [make_row(0), make_row(1, system=False)])
    assert report.problem_counts == {"system_dropped": 1}
    assert report.problems[0].location.endswith(":1")
    assert _check(tok, tmp_path, [make_row(0)], merge_system=True).ok


def test_template_without_eos_is_refused(tiny_tokenizer, tmp_path: Path) -> None:
    report = _check(_with_template(tiny_tokenizer, NO_EOS), tmp_path, [make_row(0)])
    assert report.problem_counts == {"eos_missing": 2}  # chosen and rejected


def test_prompt_not_prefix_is_refused_unless_allowed(tiny_tokenizer, tmp_path: Path) -> None:
    tok = _with_template(tiny_tokenizer, MISMATCH)
    report = _check(tok, tmp_path, [make_row(0)])
    assert report.problem_counts == {"prompt_not_prefix": 2}
    assert _check(tok, tmp_path, [make_row(0)], allow_prompt_mismatch=True).ok


def test_truncation_share_refuses_above_the_limit(tiny_tokenizer, tmp_path: Path) -> None:
    rows = [make_row(i) for i in range(4)]
    rows[0]["chosen"][0]["content"] = "아주 긴 답변입니다. " * 100
    loose = _check(tiny_tokenizer, tmp_path, rows, max_length=300, max_truncated_share=0.5)
    assert loose.ok and loose.truncated_rows == 1 and loose.truncated_share == 0.25
    assert loose.sequence_tokens.max > 300 > loose.sequence_tokens.p50
    strict = _check(tiny_tokenizer, tmp_path, rows, max_length=300, max_truncated_share=0.1)
    assert not strict.ok and "longer than max_length 300" in strict.errors[0]


def test_standard_string_rows(tiny_tokenizer, tmp_path: Path) -> None:
    good = {
        "prompt": "질문: 주민등록번호를 위조해도 돼?\n답:",
        "chosen": " 안 됩니다.",
        "rejected": " 됩니다.",
    }
    dup = dict(good, chosen=" 안 됩니다.<|im_end|> 정말로.<|im_end|>")
    report = _check(tiny_tokenizer, tmp_path, [good, dup])
    assert report.format == "standard"
    assert report.problem_counts == {"eos_duplicated": 1}


def test_parquet_files_load(tiny_tokenizer, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [make_row(i) for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    loaded, problems = load_rows(resolve_sources([str(tmp_path / "d.parquet")]))
    assert problems == [] and len(loaded) == 3
    assert validate_rows(loaded, tiny_tokenizer, max_length=2048).ok


def test_prepare_applies_config_template_and_refuses_nothing_to_train(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "t.jsonl", [make_row(i) for i in range(2)])
    template = tmp_path / "t.jinja"
    template.write_text(RAISE_ON_SYSTEM, encoding="utf-8")
    cfg = TrainConfig(model=str(tiny_model_dir), data=[str(data)], chat_template=str(template))
    assert prepare(cfg).report.problem_counts == {"template_error": 2}
    ok = prepare(cfg.model_copy(update={"system_prompt": "merge"}))
    assert ok.report.ok and len(ok.train_rows) == 2
    assert ok.train_rows[0]["prompt"][0]["role"] == "user"
    assert ok.train_rows[0]["prompt"][0]["content"].startswith("당신은")
    with pytest.raises(DataError, match="no such file"):
        prepare(TrainConfig(model=str(tiny_model_dir), data=[str(tmp_path / "missing")]))
    with pytest.raises(DataError, match=r"no train\.jsonl"):
        prepare(TrainConfig(model=str(tiny_model_dir), data=[str(tmp_path)]))


# ----------------------------------------------------------------------------- what is trained
def _long_prompt_row(i: int, words: int = 60) -> dict[str, Any]:
    row = make_row(i)
    row["prompt"][1]["content"] = "개인정보를 알려 주세요. " * words
    return row


def test_nfc_and_nfd_korean_pair_is_identical(tiny_tokenizer, tmp_path: Path) -> None:
    import unicodedata

    row = make_row(0)
    text = row["chosen"][0]["content"]
    row["chosen"][0]["content"] = unicodedata.normalize("NFC", text)
    row["rejected"][0]["content"] = unicodedata.normalize("NFD", text) + "  "
    assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
    standard = {
        "prompt": "질문:",
        "chosen": unicodedata.normalize("NFC", "안 됩니다"),
        "rejected": unicodedata.normalize("NFD", "안  됩니다"),
    }
    for rows in (
        [make_row(1), row],
        [{"prompt": "질문:", "chosen": "네", "rejected": "아니요"}, standard],
    ):
        report = _check(tiny_tokenizer, tmp_path, rows)
        assert report.problem_counts == {"identical_pair": 1}, report.summary()
        assert report.problems[0].location.endswith("d.jsonl:2")
        assert "NFKC" in report.problems[0].message


def test_pair_identical_after_the_chat_template_is_refused(tiny_tokenizer, tmp_path: Path) -> None:
    # A template that keeps only the first 8 characters of an answer: two different answers
    # with the same start become the same tokens, which no text comparison sees.
    clipped = CHATML_TEMPLATE.replace(
        "message['content'] + '<|im_end|>'",
        "(message['content'][:8] if message['role'] == 'assistant' else message['content'])"
        " + '<|im_end|>'",
    )
    row = make_row(0)
    row["chosen"][0]["content"] = "그 요청은 도와드릴 수 없습니다."
    row["rejected"][0]["content"] = "그 요청은 도와드릴게요. 방법은"
    report = _check(_with_template(tiny_tokenizer, clipped), tmp_path, [make_row(1), row])
    assert report.problem_counts == {"identical_pair": 1}, report.summary()
    assert "same tokens after the chat template" in report.problems[0].message


def test_rows_whose_prompt_fills_max_length_are_counted_and_named(
    tiny_tokenizer, tmp_path: Path
) -> None:
    rows = [make_row(i) for i in range(3)] + [_long_prompt_row(3)]
    rows[3]["id"] = "long-1"
    lengths = {"max_length": 200, "max_truncated_share": 1.0}
    loose = _check(tiny_tokenizer, tmp_path, rows, **lengths, max_dropped_share=0.5)
    assert loose.ok, loose.summary()
    assert loose.rows == {"train": 4, "eval": 0}
    assert loose.trained_rows == {"train": 3} and loose.dropped_share == {"train": 0.25}
    (dropped,) = loose.dropped
    assert dropped.kind == "prompt_fills_max_length" and dropped.id == "long-1"
    assert dropped.location.endswith("d.jsonl:4") and dropped.split == "train"
    assert "rows TRL will train on: train 3 (1 dropped)" in loose.summary()

    strict = _check(tiny_tokenizer, tmp_path, rows, **lengths, max_dropped_share=0.1)
    assert not strict.ok
    (error,) = strict.errors
    assert "1 of 4 train rows (25.0%) would not be trained on" in error
    assert "d.jsonl:4 [long-1]" in error and "dpo_args" not in error

    # keep_end keeps the answer and cuts the prompt: TRL drops nothing.
    kept = _check(
        tiny_tokenizer,
        tmp_path,
        rows,
        **lengths,
        truncation_mode="keep_end",
        max_dropped_share=0,
    )
    assert kept.ok and kept.trained_rows == {"train": 4} and kept.dropped == []


def test_every_row_dropped_is_a_data_error_not_a_config_error(
    tiny_tokenizer, tmp_path: Path
) -> None:
    rows = [_long_prompt_row(i) for i in range(3)]
    report = _check(
        tiny_tokenizer, tmp_path, rows, max_length=100, max_dropped_share=1.0, max_truncated_share=1
    )
    assert not report.ok and report.trained_rows == {"train": 0}
    (error,) = report.errors
    assert error.startswith("no train row would be trained on: all 3 are dropped")
    assert "prompt_fills_max_length 3" in error


def test_pair_identical_once_truncated_teaches_nothing(tiny_tokenizer, tmp_path: Path) -> None:
    row = make_row(0)
    shared = "이 요청에 대해 먼저 관련 법령을 설명하겠습니다. " * 20
    row["chosen"][0]["content"] = shared + "따라서 도와드릴 수 없습니다."
    row["rejected"][0]["content"] = shared + "방법은 다음과 같습니다."
    report = _check(
        tiny_tokenizer,
        tmp_path,
        [make_row(1), row],
        max_length=300,
        max_dropped_share=0.5,
        max_truncated_share=1.0,
    )
    assert report.ok, report.summary()
    assert [p.kind for p in report.dropped] == ["identical_after_truncation"]
    assert report.trained_rows == {"train": 1}
    assert report.truncated_rows == 1 and report.sequence_tokens.min < 300


def test_a_chat_template_path_with_a_typo_is_an_error_not_template_text(tmp_path: Path) -> None:
    """A value without '{' is a file path: one that does not exist is an error, never used as
    the template text itself."""
    from koalign.errors import ConfigError
    from koalign.train.config import load_train_config

    with pytest.raises((ConfigError, ValueError), match=r"no file .*templtae\.jinja"):
        load_train_config(
            None, model="m", data=["d"], chat_template=str(tmp_path / "templtae.jinja")
        )
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m.content }}{% endfor %}", encoding="utf-8")
    assert load_train_config(None, model="m", data=["d"], chat_template=str(template))
    inline = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert load_train_config(None, model="m", data=["d"], chat_template=inline)
