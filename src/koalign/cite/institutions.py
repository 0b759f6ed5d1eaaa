"""Former names of renamed institutions (``former_names`` in contacts.yaml) in free text.

An answer that names 여성가족부 or 방송통신위원회 as today's body after their renames of
2025-10-01 is outdated, like a retired hotline number. Each former name found is reported:

* ``historical``: its sentence marks it as past: the current name appears in it (``여성가족부(현
  성평등가족부)``), a marker stands before it (``구``, ``옛``, ``당시``, ``과거``, ``이전``, ``전신``)
  or after it (``였던``, ``시절``, ``바뀐``, ``개칭``, ``(현``), a verb in the past tense follows
  it in its clause (``강화했다``), or a year before the rename is written in the sentence
  (``2019년 여성가족부 조사``);
* ``renamed``: otherwise, when it is named as a body that acts or is contacted today: a role
  or referral word near it (``신고``, ``문의``, ``상담``, ``운영``, ``담당``, ``소관``, ``산하``,
  ``홈페이지``, ``전화``, ``지원`` ...);
* ``mentioned``: neither (``여성가족부가 꼭 필요한가?``): reported, not rejected by default.

A former name glued to a preceding letter is part of another word and is not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from koalign.cite.report import InstitutionStatus, InstitutionVerdict
from koalign.locale_schema import Institution

_WORD = re.compile(r"[가-힣A-Za-z0-9]")
_SENTENCE_END = re.compile(r"[.?!。](?!\d)|\n")
_PAST_BEFORE = re.compile(r"(?:^|[^가-힣])(?:구|옛|舊|前|전|당시|과거|이전|예전|전신인?|종전)\s*$")
_PAST_AFTER = re.compile(
    r"^\s*(?:\(\s*현|\(\s*지금의|\(\s*現|였던|이었던|이던|시절|시기|당시)"
    r"|개칭|개편|명칭\s*변경|이름이\s*바뀌|바뀌었|바뀐|변경되었|변경된|통합되었|전환되었"
)
_PAST_VERB = re.compile(r"(?:았|었|였|했|됐|웠)(?:다|던|습니다|었다)")
_ROLE = re.compile(
    r"신고|문의|상담|연락|도움|운영|담당|관할|소관|주관|산하|소속|홈페이지|누리집|전화|민원|접수"
    r"|맡|관리|지정|요청|신청|제출|안내|지원|주무|부처|장관|위원장"
)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)\s*년")


def _pattern(name: str) -> str:
    return r"\s*".join(re.escape(part) for part in name.split())


class InstitutionScanner:
    """Finds former names of the institutions in a registry; built once."""

    def __init__(self, institutions: Iterable[Institution]) -> None:
        self._by_name: dict[str, Institution] = {}
        for inst in institutions:
            for former in inst.former_names:
                self._by_name[re.sub(r"\s+", "", former)] = inst
        names = sorted(self._by_name, key=len, reverse=True)
        self._pattern = re.compile("|".join(_pattern(n) for n in names)) if names else None

    def scan(self, text: str) -> list[InstitutionVerdict]:
        """Every former name in ``text``, in order, with its verdict."""
        if self._pattern is None:
            return []
        out: list[InstitutionVerdict] = []
        for m in self._pattern.finditer(text):
            start, end = m.span()
            if start > 0 and _WORD.match(text, start - 1):
                continue
            inst = self._by_name[re.sub(r"\s+", "", m.group(0))]
            status = self._status(text, start, end, inst)
            out.append(
                InstitutionVerdict(
                    name=m.group(0),
                    status=status,
                    span=(start, end),
                    institution_id=inst.id,
                    current_name=inst.name,
                    renamed_on=inst.renamed_on.isoformat() if inst.renamed_on else None,
                    confidence=inst.confidence,
                )
            )
        return out

    @staticmethod
    def _status(text: str, start: int, end: int, inst: Institution) -> InstitutionStatus:
        left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
        right_m = _SENTENCE_END.search(text, end)
        right = right_m.start() if right_m else len(text)
        sentence = text[left:right]
        after = text[end : min(right, end + 30)]
        if re.sub(r"\s+", "", inst.name) in re.sub(r"\s+", "", sentence):
            return "historical"
        if _PAST_BEFORE.search(text, max(left, start - 12), start) or _PAST_AFTER.search(after):
            return "historical"
        clause_end = re.search(r"[,;]|(?:고|며|지만|는데)\s", after)
        if _PAST_VERB.search(after[: clause_end.start() if clause_end else len(after)]):
            return "historical"
        if inst.renamed_on is not None:
            years = [int(y) for y in _YEAR.findall(sentence)]
            if years and max(years) < inst.renamed_on.year:
                return "historical"
        if _ROLE.search(text[max(left, start - 15) : start]) or _ROLE.search(after):
            return "renamed"
        return "mentioned"
