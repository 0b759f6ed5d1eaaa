"""Fixtures for the citation checker: a small Korean test registry built straight from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from koalign.cite import CitationIndex
from koalign.locale_schema import Contacts, Policy, Statutes

PACK = Path(__file__).parent / "data" / "pack"


def _yaml(name: str) -> object:
    return yaml.safe_load((PACK / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def pack_dir() -> Path:
    """A complete, tiny locale pack whose statutes.yaml/contacts.yaml are the test registry."""
    return PACK


@pytest.fixture(scope="session")
def index() -> CitationIndex:
    """Index over the test registry (statutes, contacts and the A/G policy)."""
    return CitationIndex(
        Statutes.model_validate(_yaml("statutes.yaml")),
        Contacts.model_validate(_yaml("contacts.yaml")),
        Policy.model_validate(_yaml("policy.yaml")),
    )
