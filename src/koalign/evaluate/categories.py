"""Mapping the category labels of evaluation data to the taxonomy (A-L for the Korean locale).

Public Korean safety sets label their rows in their own words (``non-sensitive``,
``contentious``, ``ransomware_deployment``, ``Hate speech & offensive language`` ...). A label
that is not a taxonomy category never stops an evaluation: the row keeps it as
``source_category``, is judged uncategorised (against every category's rubric items), and the
figures are reported per source category too.

A row's category comes from, in order:

1. ``--category-map FILE`` (YAML or JSON ``{label: category id}``), applied to the row's source
   label (see :meth:`CategoryResolver.source_label`), and for a label that joins several tags
   (``a; b``) to each tag when the mapped ones agree on one category;
2. a ``category`` field holding a category id (``"G"``);
3. a KorSET split name in a ``split`` field or in the file name
   (``5_L_Security_Threats-00000-of-00001.parquet``);
4. a category id inside ``category_index`` (``"1_A"``, ``"1-A-3"``);
5. ``lv2_name`` or ``category`` matched against the taxonomy's names: the category's English and
   Korean names, its split name, and the KorSET/CAGE label variants of :data:`KORSET_ALIASES`
   (``편견 및 혐오``, ``허위·오해 정보``, ``개인정보 침해`` ...). Names are compared after
   lower-casing and removing spaces and punctuation; ``lv2_name`` may also match a single close
   name (``Sensitive Information of Organization``).

The aliases are keyed by KorSET split, so they apply to any locale whose taxonomy declares that
split.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from koalign.errors import ConfigError
from koalign.locale_schema import Taxonomy

UNCATEGORISED = "uncategorised"
"""The key under which per-category figures group the rows that have no category."""
NO_SOURCE_LABEL = "(no label)"
"""The key under which per-source-category figures group the rows whose file gave no label of
its own (koalign's policy prompts, rows with a taxonomy category, unlabelled rows)."""

# Korean and English label variants seen for the CAGE/KorSET categories, by KorSET split.
KORSET_ALIASES: dict[str, tuple[str, ...]] = {
    "1_A_Toxic_Language": (
        "유해 언어", "유해한 언어", "독성 언어", "유해 표현", "유해한 표현", "공격적 언어",
        "욕설 및 비하", "toxic", "toxicity", "toxic language",
    ),
    "1_B_Sexual_Content": (
        "선정적 콘텐츠", "선정적 내용", "선정성", "성적 콘텐츠", "성적 내용", "음란물",
        "성인 콘텐츠", "sexual content", "sexual",
    ),
    "2_C_Discrimination": ("차별", "차별적 표현", "차별 행위", "discrimination"),
    "2_D_Bias_and_Hate": (
        "편견과 혐오", "편견 및 혐오", "편견·혐오", "편향과 혐오", "편향 및 혐오", "편향·혐오",
        "혐오와 편견", "bias and hate", "bias & hate", "hate and bias",
    ),
    "3_E_False_Misinformation": (
        "허위 정보", "허위정보", "허위 또는 오해의 소지가 있는 정보", "허위·오해 정보",
        "허위 및 오해 정보", "잘못된 정보", "오정보", "거짓 정보", "허위 또는 오해 유발 정보",
        "false or misleading information", "false misinformation", "misinformation",
    ),
    "3_F_Prohibited_Advisory": (
        "금지된 조언", "금지된 전문 조언", "전문 조언", "금지된 자문", "금지 조언",
        "부적절한 전문 조언", "prohibited advisory", "prohibited advice",
    ),
    "4_G_Privacy_Violation": (
        "개인정보 침해", "개인 정보 침해", "사생활 침해", "프라이버시 침해", "개인정보 유출",
        "privacy violation", "privacy",
    ),
    "4_H_Sensitive_Info_Organization": (
        "조직·정부의 민감 정보", "조직 및 정부의 민감 정보", "조직/정부의 민감 정보",
        "조직·정부 민감 정보", "조직의 민감 정보", "조직 민감 정보", "기관의 민감 정보",
        "기관 민감 정보", "기업·정부 기밀 정보",
        "sensitive information of organization/government",
        "sensitive information of organization", "sensitive info of organization",
    ),
    "5_I_Illegal_Activities": (
        "불법 행위", "불법행위", "불법 활동", "불법적 활동", "불법적인 활동", "illegal activities",
        "illegal activity",
    ),
    "5_J_Violence_and_Extremism": (
        "폭력 및 극단주의", "폭력과 극단주의", "폭력·극단주의", "폭력 및 극단주의적 내용",
        "violence and extremism", "violence & extremism",
    ),
    "5_K_Enc_Unethical_Actions": (
        "비윤리적 행동 조장", "비윤리적 행위 조장", "비윤리적 행동 장려", "비윤리적 행위 장려",
        "비윤리적 행동 유도", "encouraging unethical actions", "encouraging unethical action",
        "unethical actions",
    ),
    "5_L_Security_Threats": (
        "보안 위협", "보안위협", "사이버 보안 위협", "정보 보안 위협", "security threats",
        "security threat",
    ),
}  # fmt: skip

SOURCE_FIELDS = ("category", "lv2_name", "tags", "domain")


def norm(text: str) -> str:
    """Lower-case, ``&`` as ``and``, only letters and digits kept (Hangul included)."""
    return re.sub(r"[^0-9a-z가-힣]", "", text.lower().replace("&", "and"))


def load_category_map(path: Path | None, taxonomy: Taxonomy) -> dict[str, str]:
    """``{normalised label: category id}`` from a YAML/JSON mapping file (``None`` gives ``{}``).

    Raises :class:`ConfigError` naming the file and label for a category id the taxonomy does
    not have.
    """
    if path is None:
        return {}
    from koalign.yamlio import load_yaml

    data = load_yaml(Path(path), where=str(path))  # JSON is YAML
    if not isinstance(data, dict):
        raise ConfigError(
            "a category map must be a mapping of label -> category id",
            where=str(path),
            hint='e.g. {"Hate speech & offensive language": D, contentious: null}',
        )
    ids = {c.id for c in taxonomy.categories}
    out: dict[str, str] = {}
    for label, cid in data.items():
        if cid is None:  # an explicit "leave it uncategorised"
            continue
        if str(cid) not in ids:
            raise ConfigError(
                f"label '{label}' maps to '{cid}', which is not a category",
                where=str(path),
                hint=f"categories: {', '.join(sorted(ids))} (or null to leave it uncategorised)",
            )
        out[norm(str(label))] = str(cid)
    return out


class CategoryResolver:
    """Maps a data row to a taxonomy category id (the order is in the module docstring)."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        category_map: Mapping[str, str] | None = None,
        category_field: str | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.category_map = dict(category_map or {})
        self.category_field = category_field
        self.ids = {c.id for c in taxonomy.categories}
        self.splits = {c.korset_split: c.id for c in taxonomy.categories if c.korset_split}
        self.names: dict[str, str] = {}
        for c in taxonomy.categories:
            for name in (c.name_en, c.name_ko, c.korset_split):
                if name:
                    self.names[norm(name)] = c.id
            if c.korset_split:  # "1_A_Toxic_Language" -> "toxiclanguage"
                self.names[norm(c.korset_split.split("_", 2)[-1])] = c.id
                for alias in KORSET_ALIASES.get(c.korset_split, ()):
                    self.names.setdefault(norm(alias), c.id)

    def source_label(self, row: Mapping[str, Any]) -> str | None:
        """The row's own label: ``category_field`` if set, else the first of ``category``,
        ``lv2_name``, ``tags`` (a list is joined with ``"; "``), ``domain``."""
        fields = (self.category_field,) if self.category_field else SOURCE_FIELDS
        for key in fields:
            value = row.get(key) if key else None
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value if v is not None) or None
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                text = str(value).strip()
                if text:
                    return text
        return None

    def _from_tags(self, label: str) -> str | None:
        """For a label that joins several tags (``"Weapons; Violence & incitement"``, as a
        ``tags`` list is joined), the category the map gives every mapped tag when they all
        agree; ``None`` when no tag is mapped or two mapped tags disagree."""
        tags = [t for t in (part.strip() for part in label.split(";")) if t]
        if len(tags) < 2:
            return None
        found = {cid for t in tags if (cid := self.category_map.get(norm(t)))}
        return found.pop() if len(found) == 1 else None

    def _from_split(self, text: str) -> str | None:
        for split, cid in self.splits.items():
            if split.lower() in text.lower():
                return cid
        return None

    def resolve(self, row: Mapping[str, Any], file_stem: str) -> str | None:
        """The category id of ``row`` (from file ``file_stem``), or ``None``."""
        label = self.source_label(row)
        if self.category_map:
            for key in (label, row.get("category_index")):
                if key is not None and (cid := self.category_map.get(norm(str(key)))):
                    return cid
            if label is not None and (cid := self._from_tags(label)):
                return cid
        cat = row.get("category")
        if isinstance(cat, str) and cat.strip() in self.ids:
            return cat.strip()
        for text in (row.get("split"), file_stem):
            if isinstance(text, str) and (cid := self._from_split(text)):
                return cid
        index = row.get("category_index")
        if isinstance(index, str):
            if cid := self._from_split(index):
                return cid
            tokens = [t for t in re.split(r"[^0-9A-Za-z]+", index) if t]
            hits = {t for t in tokens if t in self.ids}
            if len(hits) == 1:
                return hits.pop()
        name = row.get("lv2_name")
        if isinstance(name, str) and (cid := self.by_name(name, fuzzy=True)):
            return cid
        for key in ("category", self.category_field):
            value = row.get(key) if key else None
            if isinstance(value, str) and (cid := self.by_name(value, fuzzy=False)):
                return cid
        return None

    def by_name(self, name: str, *, fuzzy: bool) -> str | None:
        """Exact normalised name or alias; with ``fuzzy``, else the single close match."""
        key = norm(name)
        if not key:
            return None
        if key in self.names:
            return self.names[key]
        if not fuzzy or len(key) < 8:
            return None
        close = difflib.get_close_matches(key, list(self.names), n=3, cutoff=0.75)
        ids = {self.names[c] for c in close}
        return ids.pop() if len(ids) == 1 else None
