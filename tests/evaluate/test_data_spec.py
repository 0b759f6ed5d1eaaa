"""Reading evaluation inputs and model specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from koalign.errors import ConfigError, DataError
from koalign.evaluate.data import limit_per_group, load_mc, load_prompts
from koalign.evaluate.spec import load_model_config, parse_shorthand, resolve_spec
from koalign.types import SamplingParams


def test_korset_parquet_maps_split_names_to_categories(ko, korset_files) -> None:
    items = load_prompts(korset_files, ko.taxonomy)
    assert [i.category for i in items] == ["L", "L", "L", "G", "G"]
    assert [i.domain for i in items] == ["5", "5", "5", "4", "4"]
    assert items[0].id == "5_L_Security_Threats-00000-of-00001#0"
    assert items[0].type == "Cyber Attack" and items[0].meta["lv2_name"] == "Security Threats"


def test_korset_rows_without_split_in_the_file_name(ko, tmp_path, korset_writer) -> None:
    # category from category_index tokens or from lv2_name when the file name says nothing
    rows = {
        "mixed": [
            ("1_A", "Toxic Contents", "Toxic Language", "Harassment", "p1"),
            ("x", "Malicious Use", "Violence and Extremism", "Violent Crimes", "p2"),
            (
                "3_F_Prohibited_Advisory",
                "Misinformation Harms",
                "Prohibited Advisory",
                "Legal",
                "p3",
            ),
        ],
        "numbered": [
            (7, "Information & Safety Harms", "Sensitive Information of Organization", "x", "p4"),
            (4, "Misinformation Harms", "False Misinformation", "Rumors", "p5"),
            (11, "Malicious Use", "보안 위협", "사이버 공격", "p6"),
        ],
    }
    items = load_prompts(korset_writer(tmp_path, rows), ko.taxonomy)
    assert [i.category for i in items] == ["A", "J", "F", "H", "E", "L"]
    bad = {"bad": [("x", "y", "Cooking Recipes", "z", "p")]}
    with pytest.raises(DataError, match="cannot map category 'Cooking Recipes'"):
        load_prompts(korset_writer(tmp_path, bad), ko.taxonomy)


def test_plain_jsonl_with_optional_category(ko, tmp_path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "a", "category": "D", "id": "q1"}\n\n{"prompt": "b"}\n', "utf-8")
    items = load_prompts([path], ko.taxonomy)
    assert [(i.id, i.category, i.domain) for i in items] == [
        ("q1", "D", "2"),
        ("mine#1", None, None),
    ]
    path.write_text('{"prompt": "a", "category": "Q"}\n', "utf-8")
    with pytest.raises(DataError, match="row 1"):
        load_prompts([path], ko.taxonomy)
    path.write_text('{"text": "a"}\n', "utf-8")
    with pytest.raises(DataError, match="prompt"):
        load_prompts([path], ko.taxonomy)
    with pytest.raises(DataError, match="not found"):
        load_prompts([tmp_path / "nope.jsonl"], ko.taxonomy)


def test_mc_rows_are_validated(tmp_path) -> None:
    path = tmp_path / "mc.jsonl"
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer_index": 1}\n', "utf-8")
    (item,) = load_mc([path])
    assert item.source == "mc" and item.answer_index == 1
    path.write_text('{"question": "q", "choices": ["a", "b"], "answer_index": 2}\n', "utf-8")
    with pytest.raises(DataError, match="answer_index"):
        load_mc([path])


def test_limit_per_group_is_seeded(ko, korset_files) -> None:
    items = load_prompts(korset_files, ko.taxonomy)
    one = limit_per_group(items, 1, key="category", seed=1)
    assert sorted(i.category for i in one) == ["G", "L"]
    assert one == limit_per_group(items, 1, key="category", seed=1)
    assert limit_per_group(items, None, key="category") == items


def test_shorthand_specs() -> None:
    spec = parse_shorthand("hf:/models/base?device=cuda&dtype=bfloat16&max_concurrency=2")
    assert (spec.backend, spec.model) == ("hf", "/models/base")
    assert spec.options == {"device": "cuda", "dtype": "bfloat16"}
    assert spec.max_concurrency == 2
    srv = parse_shorthand("openai:Qwen/Qwen2.5-7B@http://127.0.0.1:8000/v1?api_key_env=K")
    assert srv.model == "Qwen/Qwen2.5-7B" and srv.base_url == "http://127.0.0.1:8000/v1"
    assert srv.api_key_env == "K"
    assert parse_shorthand("openai:llama3:8b").model == "llama3:8b"
    with pytest.raises(ConfigError, match="BACKEND:MODEL"):
        parse_shorthand("just-a-name")
    with pytest.raises(ConfigError, match="max_concurrency"):
        parse_shorthand("hf:/m?max_concurrency=0")


def test_resolve_spec_config_adapter_and_sampling(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        "models:\n  judge: {backend: openai, model: gpt-4.1, sampling: {max_tokens: 99}}\n", "utf-8"
    )
    cfg = load_model_config(cfg_path)
    name, spec = resolve_spec(
        "judge", cfg, defaults=SamplingParams(temperature=0, max_tokens=5),
        overrides=SamplingParams(temperature=0.5),
    )  # fmt: skip
    assert name == "judge"
    assert spec.sampling.max_tokens == 99 and spec.sampling.temperature == 0.5
    with pytest.raises(ConfigError, match="did you mean 'judge'"):
        resolve_spec("judgee", cfg)
    with pytest.raises(ConfigError, match="--adapter needs an hf model"):
        resolve_spec("judge", cfg, adapter=tmp_path)
    name, spec = resolve_spec("hf:/m", {}, adapter=tmp_path)
    assert spec.options["adapter"] == str(tmp_path) and name.startswith("hf:/m+")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  x: {backend: hf}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"models\.x\.model"):
        load_model_config(bad)
