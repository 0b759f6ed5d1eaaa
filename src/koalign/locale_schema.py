"""The pydantic models of a locale pack's files (see docs/locale-format.md)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import date
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from koalign.errors import LocaleError, did_you_mean

_V = TypeVar("_V")

Confidence = Literal["verified", "high", "unverified"]
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_ARTICLE = re.compile(r"^\d+(의\d+)?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- locale.yaml
class LocaleMeta(_Model):
    """``locale.yaml``: the pack's id, display name, language code, the character ranges counted as
    its script, and the date the pack was last reviewed."""

    id: str
    name: str
    language: str
    script_ranges: list[tuple[str, str]] = Field(min_length=1)
    as_of: date


# ----------------------------------------------------------------------------- taxonomy.yaml
class Slot(_Model):
    """A seed-template slot (``taxonomy.yaml``): a snake_case id, its name and description, and
    whether a seed must fill it."""

    id: str = Field(pattern=_SNAKE.pattern)
    name: str
    description: str
    required: bool = True


class HarmType(_Model):
    """A harm type of a category (``taxonomy.yaml``, id ``<category>.<snake_case>``), with at least
    three local examples per effective slot; ``slots`` (when not None) replaces the category's
    slots."""

    id: str
    name_ko: str
    name_en: str
    description: str
    slots: list[Slot] | None = None
    slot_examples: dict[str, list[str]]


class Category(_Model):
    """A harm category of the taxonomy (upper-case id, e.g. ``A``), its KorSET split, its slots and
    its harm types (at least one)."""

    id: str = Field(pattern=r"^[A-Z]+$")
    korset_split: str | None = None
    name_ko: str
    name_en: str
    description: str
    slots: list[Slot]
    types: list[HarmType] = Field(min_length=1)

    def slots_for(self, harm_type: HarmType) -> list[Slot]:
        """The slots in effect for ``harm_type``: the type's own list when it has one, else the
        category's."""
        return harm_type.slots if harm_type.slots is not None else self.slots


class Domain(_Model):
    """A taxonomy domain: an id, names in the pack's language and English, and its categories (at
    least one)."""

    id: str
    name_ko: str
    name_en: str
    categories: list[Category] = Field(min_length=1)


def _first_wins(pairs: Iterable[tuple[str, _V]]) -> dict[str, _V]:
    """``{key: value}`` keeping the first value of a repeated key (a scan in order finds it)."""
    out: dict[str, _V] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


class Taxonomy(_Model):
    """``taxonomy.yaml``: domains -> categories -> harm types."""

    domains: list[Domain] = Field(min_length=1)

    @property
    def categories(self) -> list[Category]:
        """Every category of every domain, in file order."""
        return [c for d in self.domains for c in d.categories]

    @property
    def types(self) -> list[HarmType]:
        """Every harm type of every category, in file order."""
        return [t for c in self.categories for t in c.types]

    # lookups by id, built on first use (a taxonomy is frozen; seeds plan every candidate with
    # them). The first of equal ids wins, as a scan in file order would find it.
    @functools.cached_property
    def _category_by_id(self) -> dict[str, Category]:
        return _first_wins((c.id, c) for c in self.categories)

    @functools.cached_property
    def _domain_by_category(self) -> dict[str, Domain]:
        return _first_wins((c.id, d) for d in self.domains for c in d.categories)

    @functools.cached_property
    def _category_by_type(self) -> dict[str, Category]:
        return _first_wins((t.id, c) for c in self.categories for t in c.types)

    def category(self, category_id: str) -> Category:
        """The category with id ``category_id``.

        Raises:
            LocaleError: no such category (with a did-you-mean and the list of ids).
        """
        category = self._category_by_id.get(category_id)
        if category is not None:
            return category
        ids = [c.id for c in self.categories]
        raise LocaleError(
            f"unknown category '{category_id}'{did_you_mean(category_id, ids)}",
            hint=f"categories: {', '.join(ids)}",
        )

    def domain_of(self, category_id: str) -> Domain:
        """The domain that holds category ``category_id``.

        Raises:
            LocaleError: no domain holds that category.
        """
        domain = self._domain_by_category.get(category_id)
        if domain is None:
            raise LocaleError(f"unknown category '{category_id}'")
        return domain

    def category_of_type(self, type_id: str) -> Category:
        """The category that holds harm type ``type_id`` (e.g. ``A.harassment``).

        Raises:
            LocaleError: no category has that type (with a did-you-mean).
        """
        category = self._category_by_type.get(type_id)
        if category is not None:
            return category
        raise LocaleError(
            f"unknown type '{type_id}'{did_you_mean(type_id, [t.id for t in self.types])}"
        )


# ----------------------------------------------------------------------------- statutes.yaml
class Article(_Model):
    """One statute article entry (``statutes.yaml``): number as text (``"307"``, ``"14의2"``), the
    paragraphs it covers (``[]`` = the whole article), a one-line summary, penalty, dates, status
    (``outdated`` entries name ``replaced_by``), confidence and sources. An int article number is
    read as text."""

    article: str = Field(pattern=_ARTICLE.pattern)
    title: str | None = None
    paragraphs: list[str] = Field(default_factory=list)
    summary: str
    penalty: str | None = None
    effective: date | None = None
    promulgated: date | None = None
    status: Literal["current", "outdated", "repealed"] = "current"
    replaced_by: str | None = None
    confidence: Confidence
    sources: list[str] = Field(default_factory=list)
    note: str | None = None

    @field_validator("article", "replaced_by", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class Law(_Model):
    """A law of the registry (``statutes.yaml``): snake_case id, official name, aliases, the last
    article number (None = unknown) and the article entries the pack uses."""

    id: str = Field(pattern=_SNAKE.pattern)
    name: str
    name_en: str | None = None
    aliases: list[str] = Field(default_factory=list)
    last_article: int | None = None
    promulgated: date | None = None
    articles: list[Article] = Field(default_factory=list)

    def article(self, number: str) -> Article | None:
        """The entry for article ``number`` (text, e.g. ``"14의2"``), or None when the pack lists no
        such article."""
        for a in self.articles:
            if a.article == number:
                return a
        return None


class Statutes(_Model):
    """``statutes.yaml``: the source id -> URL map and the laws (at least one)."""

    source_ids: dict[str, str] = Field(default_factory=dict)
    laws: list[Law] = Field(min_length=1)

    def law(self, law_id: str) -> Law | None:
        """The law with id ``law_id``, or None."""
        for law in self.laws:
            if law.id == law_id:
                return law
        return None


# ----------------------------------------------------------------------------- contacts.yaml
class Contact(_Model):
    """A help line or reporting channel (``contacts.yaml``): number as dialled and/or url, operator,
    purpose, hours, status (``retired`` entries name ``replaced_by``), confidence, sources and the
    date it was last checked."""

    id: str = Field(pattern=_SNAKE.pattern)
    name: str
    number: str | None = None
    url: str | None = None
    operator: str | None = None
    purpose: str
    hours: str | None = None
    status: Literal["current", "retired"] = "current"
    replaced_by: str | None = None
    since: date | None = None
    confidence: Confidence
    sources: list[str] = Field(default_factory=list)
    checked: date
    note: str | None = None


class Institution(_Model):
    """A public body the answers may name (``contacts.yaml``), with its former names (flagged by the
    citation checker when used as today's name) and the rename date."""

    id: str = Field(pattern=_SNAKE.pattern)
    name: str
    former_names: list[str] = Field(default_factory=list)
    renamed_on: date | None = None
    url: str | None = None
    purpose: str
    confidence: Confidence
    sources: list[str] = Field(default_factory=list)
    checked: date
    note: str | None = None


class Contacts(_Model):
    """``contacts.yaml``: contacts (at least one) and institutions."""

    contacts: list[Contact] = Field(min_length=1)
    institutions: list[Institution] = Field(default_factory=list)

    def contact(self, contact_id: str) -> Contact | None:
        """The contact with id ``contact_id``, or None."""
        for c in self.contacts:
            if c.id == contact_id:
                return c
        return None


# ----------------------------------------------------------------------------- policy.yaml
class StatuteRef(_Model):
    """A statute a category's policy cites (P1): a ``law_id`` or ``law_id:article`` reference and
    why it applies."""

    ref: str
    why: str


class Population(_Model):
    """A group the category affects (P2), its protections and optional statute references."""

    group: str
    protections: list[str] = Field(default_factory=list)
    refs: list[str] = Field(default_factory=list)


class Example(_Model):
    """A worked example of a policy: a user prompt and the exemplary answer."""

    prompt: str
    answer: str


class CategoryPolicy(_Model):
    """The policy of one category (``policy.yaml``): principles, when it applies and its benign
    neighbours, at least three benign prompts, the P1 statutes and norms, P2 affected groups, P3
    kernel/contacts/procedures, do/don't lists and at least two worked examples."""

    principles: list[str] = Field(min_length=1)
    applies_when: list[str] = Field(min_length=1)
    does_not_apply: list[str] = Field(min_length=1)
    benign_prompts: list[str] = Field(min_length=3)
    p1_statutes: list[StatuteRef] = Field(default_factory=list)
    p1_norms: list[str] = Field(default_factory=list)
    p2_populations: list[Population] = Field(default_factory=list)
    p3_kernel: list[str] = Field(default_factory=list)
    p3_contacts: list[str] = Field(default_factory=list)
    p3_procedures: list[str] = Field(default_factory=list)
    do: list[str] = Field(default_factory=list)
    dont: list[str] = Field(default_factory=list)
    examples: list[Example] = Field(min_length=2)


class Policy(_Model):
    """``policy.yaml``: category id -> its policy."""

    policies: dict[str, CategoryPolicy]


# ----------------------------------------------------------------------------- rubric.yaml
class RubricItem(_Model):
    """A yes/no rubric question (yes means unsafe) with its id, e.g. ``A1``."""

    id: str
    text: str


class Rubric(_Model):
    """``rubric.yaml``: rules for every category and category id -> rubric items; an answer is safe
    only when every item of its category is answered no."""

    general: list[str] = Field(default_factory=list)
    categories: dict[str, list[RubricItem]]


# ----------------------------------------------------------------------------- tactics.yaml
class Strategy(_Model):
    """An attack-rewrite strategy (``tactics.yaml``): id, names and the attacker's instructions in
    the pack's language."""

    id: str = Field(pattern=_SNAKE.pattern)
    name_ko: str
    name_en: str
    instructions: str


class TacticExample(_Model):
    """A before/after example of a surface tactic."""

    before: str
    after: str


class Tactic(_Model):
    """A locale-specific surface tactic (e.g. initial-consonant spelling) with examples."""

    id: str = Field(pattern=_SNAKE.pattern)
    name_ko: str
    description: str
    examples: list[TacticExample] = Field(default_factory=list)


class Tactics(_Model):
    """``tactics.yaml``: the attack strategies (at least one) and the surface tactics."""

    strategies: list[Strategy] = Field(min_length=1)
    tactics: list[Tactic] = Field(default_factory=list)


# ----------------------------------------------------------------------------- personas.yaml
class Personas(_Model):
    """Variation axes for seed prompts: who asks, in which register, how long (optional file)."""

    age_groups: list[str] = Field(default_factory=list, description="Persona age groups.")
    regions: list[str] = Field(default_factory=list, description="Persona regions.")
    occupations: list[str] = Field(default_factory=list, description="Persona occupations.")
    registers: list[str] = Field(default_factory=list, description="Speech registers.")
    lengths: list[str] = Field(default_factory=list, description="Prompt length instructions.")
