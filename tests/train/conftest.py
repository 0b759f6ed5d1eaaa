"""Fixtures for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_rows import make_row, write_jsonl


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """A koalign export directory: train.jsonl, validation.jsonl and a dataset card."""
    d = tmp_path / "export"
    d.mkdir()
    write_jsonl(d / "train.jsonl", [make_row(i) for i in range(8)])
    write_jsonl(d / "validation.jsonl", [make_row(i) for i in range(8, 10)])
    (d / "README.md").write_text("# koalign export\n\n10 triplets.\n", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
