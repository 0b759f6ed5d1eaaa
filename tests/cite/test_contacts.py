"""Hotline and phone numbers: shapes, verdicts, and numbers that are not phone numbers."""

from __future__ import annotations

import pytest

from koalign.cite import CitationIndex
from koalign.cite.contacts import number_key

CUR, RET, UNK = "current", "retired", "unknown"

FOUND = [
    ("자살예방상담전화 109로 전화하세요.", [("109", CUR, None)]),
    ("국번 없이 109", [("109", CUR, None)]),
    ("국번 없이 １０９", [("１０９", CUR, None)]),  # full-width digits
    ("국번없이 1388", [("1388", CUR, None)]),
    ("☎ 112", [("112", CUR, None)]),
    ("☎112로 신고", [("112", CUR, None)]),
    ("📞 1366", [("1366", CUR, None)]),
    ("1393에 전화하세요", [("1393", RET, "109")]),
    ("자살예방상담전화(1393)", [("1393", RET, "109")]),
    ("다누리콜센터 1577-1366", [("1577-1366", CUR, None)]),
    ("1577-5432로 문의", [("1577-5432", RET, "1577-1366")]),
    ("02-735-8994", [("02-735-8994", CUR, None)]),
    ("(02)735-8994", [("(02)735-8994", CUR, None)]),
    ("02.735.8994", [("02.735.8994", CUR, None)]),
    ("02 735 8994", [("02 735 8994", CUR, None)]),
    ("Tel: 02-735-8994", [("02-735-8994", CUR, None)]),
    ("#1388", [("#1388", CUR, None)]),
    ("문자 #1388로 상담", [("#1388", CUR, None)]),
    ("문자 #0117", [("#0117", CUR, None)]),
    ("1899-0893", [("1899-0893", RET, "1342")]),
    ("080-300-8275", [("080-300-8275", RET, "1336")]),
    ("도박 문제 상담은 1336", [("1336", CUR, None)]),  # a current entry wins over a retired one
    ("+82-1345", [("+82-1345", CUR, None)]),
    ("112, 119에 신고", [("112", CUR, None), ("119", CUR, None)]),
    ("109번으로 전화", [("109", CUR, None)]),
    ("112에 신고하세요", [("112", CUR, None)]),
    ("1366이 24시간 운영됩니다", [("1366", CUR, None)]),
    ("1388은 청소년 상담", [("1388", CUR, None)]),
    ("117로 신고", [("117", CUR, None)]),
    ("118 상담센터", [("118", CUR, None)]),
    ("1342 용기한걸음센터", [("1342", CUR, None)]),
    ("109와 1393 중 어디로 전화하죠?", [("109", CUR, None), ("1393", RET, "109")]),
    ("109, 1366 등 상담전화", [("109", CUR, None), ("1366", CUR, None)]),
    ("119구급대를 부르세요", [("119", CUR, None)]),
    ("전화 1234", [("1234", UNK, None)]),
    ("국번 없이 1234", [("1234", UNK, None)]),
    ("전화번호는 5678", [("5678", UNK, None)]),
    ("질병관리청 콜센터 1339", [("1339", UNK, None)]),
    ("상담센터(1234)로 문의", [("1234", UNK, None)]),
    ("긴급전화 1234", [("1234", UNK, None)]),
    ("신고는 112·119", [("112", CUR, None), ("119", CUR, None)]),
    ("전화: **109**", [("109", CUR, None)]),
    ("041-1366", [("041-1366", CUR, None)]),  # regional form of a registry short number
    ("1577–1366", [("1577–1366", CUR, None)]),  # en dash
    ("상담 1899 0893", [("1899 0893", RET, "1342")]),  # space
    ("010-1234-5678", [("010-1234-5678", UNK, None)]),
    ("010 1234 5678", [("010 1234 5678", UNK, None)]),
    ("031-123-4567", [("031-123-4567", UNK, None)]),
    ("1588-1234", [("1588-1234", UNK, None)]),
    ("Tel: 02-123-4567", [("02-123-4567", UNK, None)]),
    ("+82-2-735-8994", [("+82-2-735-8994", CUR, None)]),
]

NOT_NUMBERS = [
    # a registry short number needs a hotline context in its sentence
    "키가 182에 몸무게 75",
    "1366이 적힌 종이",
    "109와 1393",
    "**109**",
    "041-1234",  # area code + a number the registry does not know
    "2024년",
    "1366년",
    "1393년 조선",
    "1,366명",
    "1366명이 상담",
    "1388 명의 상담사",
    "112건의 신고",
    "119개",
    "3조 원",
    "12,900원",
    "1366원",
    "1366 원",
    "₩1366",
    "$112",
    "112달러",
    "109만 명",
    "2024.11.09",
    "2024-11-09",
    "11/09",
    "제109조",
    "형법 제112조",
    "109조",
    "900101-1234567",
    "주민등록번호 880101-2345678",
    "버전 1.109",
    "v1366",
    "Python 3.112",
    "iOS 17.1.1",
    "버전 1366",
    "1950-1953년",
    "1800-1850",
    "09:11",
    "1:12",
    "109-112쪽",
    "pp. 109-112",
    "109번째",
    "112번 버스",
    "1388호",
    "112층",
    "112%",
    "112km",
    "1366kg",
    "총 1366",
    "1234",
    "#2024 회고",
    "card 1234-5678-9012-3456",
    "1588-1234-5678",
    "코로나19",
    "A112",
    "1366.5",
    "1,109",
    "1393~1398년",
    "약 1366",
    "3.1운동",
    "우편번호 1345",
    "https://example.com/112",
    "112동 1102호",
    "센터 1층",
    "회원 번호 1234",
    "대법원 2021도1366 판결",
    "헌법재판소 2019헌바112 결정",
]


@pytest.mark.parametrize(("text", "expected"), FOUND)
def test_contact(index: CitationIndex, text: str, expected: list) -> None:
    got = [(k.number, k.status, k.replacement) for k in index.check(text).contacts]
    assert got == expected


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_not_a_phone_number(index: CitationIndex, text: str) -> None:
    assert index.check(text).contacts == []


def test_numbers_inside_citations_are_not_contacts(index: CitationIndex) -> None:
    report = index.check("형법 제112조 및 제119조, 정보통신망법 제44조의7제1항제109호")
    assert report.contacts == []
    assert [v.article for v in report.citations] == ["112", "119", "44의7"]


def test_contact_span_and_name(index: CitationIndex) -> None:
    text = "위기 상황이면 국번 없이 1393이 아니라 109로 전화하세요."
    old, new = index.check(text).contacts
    assert text[old.span[0] : old.span[1]] == "1393"
    assert (old.contact_id, old.replacement) == ("suicide_line_1393", "109")
    assert (new.name, new.contact_id) == ("자살예방상담전화", "suicide_prevention_line")


@pytest.mark.parametrize(
    ("number", "key"),
    [("02-735-8994", "027358994"), ("#1388", "1388"), ("+82-2-735-8994", "027358994"),
     ("+82-1345", "1345"), ("1577-1366", "15771366")],
)  # fmt: skip
def test_number_key(number: str, key: str) -> None:
    assert number_key(number) == key
