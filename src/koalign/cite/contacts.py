"""Finding hotline and phone numbers in free Korean text.

Four shapes are read:

* full numbers: ``02-735-8994``, ``(02)735-8994``, ``010.1234.5678``, ``02 735 8994``,
  ``1577-1366`` (the 15xx-18xx national numbers), ``+82-1345``. Hyphens may be any dash
  (``1577–1366``). A national number written with a space (``1899 0893``) is read when the
  registry knows it or a phone word comes before it. A pair that reads as a range of years
  (``1800-1850``) is not a number unless the registry knows it.
* regional forms of a registry short number: area code + number (``041-1366``, a regional
  1366 centre), reported under the short number's entry.
* short numbers of 3-4 digits: ``109``, ``1366``, ``#1388``. A registry number is read only
  with a hotline context in its sentence: a phone word before or after it (``전화``, ``번``,
  ``국번 없이``, ``☎``, ``신고``, ``상담``, ``센터``, ``문의``, ``연락``, ``24시간`` ...), a ``#``
  (text-message codes), or a list partner that has one (``112, 119에 신고``). So a bare
  ``182`` (a height) is not a hotline. Other short numbers only right after a phone word
  (``국번 없이``, ``☎``, ``전화``, ``콜센터``, ``센터``, ``Tel``).
  A short number is never read when it is glued to other digits or to separators of
  decimals, thousands, times and ranges (``1,366``, ``3.112``, ``11:09``, ``109-112``), is
  preceded by ``제`` or a label word (``버전``, ``우편번호``, ``버스`` ...), or is followed by a
  unit or counter (``년``, ``원``, ``명``, ``건``, ``조``, ``호``, ``번째``, ``%``, ``km`` ...).
  Court case numbers (``2021도1366``) are not read either. Resident-registration-number shapes
  (``YYMMDD-NNNNNNN``) never match any shape.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

_AREA = r"(?:2|[3-6][1-5]|1[016-9]|[678]0|50[2-8])"  # after the leading 0
_NATIONAL = r"(?:5(?:22|33|44|66|77|88|99)|6(?:00|44|61|66|68|70|88)|8(?:00|11|33|55|77|99))"
_DASH = "\\-\u2010\u2011\u2012\u2013\u2014\u2212"  # - ‐ ‑ ‒ – — −
# Each alternative starts with a literal, so the regex engine skips non-candidate positions.
_FULL = re.compile(
    r"\(0" + _AREA + r"\)\s?\d{3,4}[" + _DASH + r"]\d{4}"
    r"|0" + _AREA + r"(?:(?P<s>[" + _DASH + r".])\d{3,4}(?P=s)\d{4}| \d{3,4} \d{4})"
    r"|1" + _NATIONAL + r"(?:[" + _DASH + r"]|(?P<sp> ))(?P<n2>\d{4})"
    r"|\+82[\s"
    + _DASH
    + r"]?(?:1\d{2,3}(?![\d"
    + _DASH
    + r"])|"
    + _AREA
    + r"[\s"
    + _DASH
    + r"]\d{3,4}[\s"
    + _DASH
    + r"]\d{4})"
)
_REGIONAL = re.compile(r"(?:\(0" + _AREA + r"\)\s?|0" + _AREA + r"[" + _DASH + r"])(1\d{2,3})")
_SHORT = re.compile(r"[#\d]\d{2,4}")
_BAD_BEFORE = set("0123456789.,-/:~∼+_₩$€£¥\u2010\u2011\u2012\u2013\u2014\u2212")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_UNITS = (
    r"년|월|일|원|만|억|천|백|명|개|건|조|항|호|회|차|세|살|시|분|초|층|쪽|페이지|위|등|배|점"
    r"|달러|위안|엔|마리|대|권|편|곳|가지|동|통|장|병|잔|평|석|표|개월|주|킬로|미터|그램|리터|톤"
    r"|볼트|와트|기|인분"
)
_BAD_AFTER = re.compile(
    r"[.,:]\d|[~∼" + _DASH + r"]\s*\d|\s*%|[A-Za-z]"
    r"|(?:번째|번지|번\s*(?:버스|출구|국도|도로|게이트|좌석|트랙|문제|항목|선수|타자|방)"
    r"|" + _UNITS + r")"
    r"|\s+(?:년|월|일|원|억|명|개|건|회|세|살|달러|개월|번째|번지|페이지|쪽|마리|가지|층"
    r"|km|kg|cm|mm|만\s*원|천\s*원)(?:$|[^가-힣]|[이의을를은는에도과와가])"
)
_BAD_LABEL = re.compile(
    r"(?:(?<![가-힣])(?:제|第|버전|버젼|빌드|우편번호|번지|코드|모델|사번|학번|호실|버스|노선|국도"
    r"|지방도|페이지|총|약|평균|최대|최소|합계|무려)"
    r"|(?<![A-Za-z])(?:version|ver|No|no|p|pp|v|V))\.?\s*$"
)
_PHONE_WORDS = re.compile(
    r"(?:국번\s*없이|☎|☏|📞|전화(?:번호)?(?:는|은)?|콜센터|센터|헬프라인|핫라인|Tel|TEL|tel|문자)"
    r"\s*[:：(]?\s*$"
)
_CASE_NUMBER = re.compile(r"\d[가-힣]{1,3}$")  # court case numbers: 2021도1366, 2019헌바112
_YEARISH = re.compile(r"1[5-9]\d\d|20\d\d")
_YEAR_AFTER = re.compile(r"\s*년")
_GLUED_AFTER = re.compile(r"[." + _DASH + r"]\d")
# Hotline context for a registry short number: a phone word before it in its sentence ...
_CONTEXT_BEFORE = re.compile(
    r"국번|☎|☏|📞|전화|번호|신고|상담|콜센터|센터|헬프라인|핫라인|문의|연락|긴급|다이얼|통화|문자"
    r"|Tel|TEL|tel|구급|긴급출동"
)
# ... or right after it: 번 glued to it, or a phone word within a few characters
# (로 전화, 에 신고, 용기한걸음센터, 청소년 상담, 24시간 ...).
_NUMBER_SUFFIX = re.compile(r"\**\s*번(?!째|지)")
_CONTEXT_AFTER = re.compile(
    r"전화|신고|상담|센터|콜센터|헬프라인|핫라인|문의|연락|24\s*시간|구급|긴급|통화|걸어|걸면|걸으|누르|눌러|출동|문자"
)
_LIST_JOIN = re.compile(r"\**\s*(?:,|·|ㆍ|/|와|과|및|또는|이나|나|or)\s*\**\s*$")
_SENTENCE_END = re.compile(r"[.?!。](?!\d)|\n")


class Found(NamedTuple):
    """A phone number found in a text: as written, its digits as dialled in Korea (the registry
    key), its character span ``[start, end)`` and whether it is reported only when the registry
    knows it."""

    number: str  # as written
    key: str  # digits for registry lookup
    start: int
    end: int
    registry_only: bool  # True: report only if the registry knows the key


def number_key(number: str) -> str:
    """Digits of a number as dialled in Korea (``+82-2-...`` -> ``02...``)."""
    intl = number.lstrip().startswith("+82")
    digits = "".join(str(unicodedata.digit(ch)) for ch in number if ch.isdecimal())
    if intl:
        digits = digits[2:]
        if len(digits) >= 8 and not digits.startswith("0"):
            digits = "0" + digits
    return digits


def _phone_context_before(text: str, s: int) -> bool:
    window = text[max(0, s - 24) : s]
    cut = max((m.end() for m in _SENTENCE_END.finditer(window)), default=0)
    return bool(_CONTEXT_BEFORE.search(window, cut))


def _phone_context_after(text: str, e: int) -> bool:
    if _NUMBER_SUFFIX.match(text, e):
        return True
    window = text[e : e + 14]
    end = _SENTENCE_END.search(window)
    return bool(_CONTEXT_AFTER.search(window, 0, end.start() if end else len(window)))


def find_numbers(text: str, short_keys: frozenset[str]) -> list[Found]:
    """Every phone-shaped number in ``text`` (see the module docstring for the rules)."""
    out: list[Found] = []
    taken: list[tuple[int, int]] = []
    for m in _FULL.finditer(text):
        s, e = m.span()
        if s > 0 and (text[s - 1] in _BAD_BEFORE or _ASCII_LETTER.match(text, s - 1)):
            continue
        if e < len(text) and (text[e].isdigit() or _GLUED_AFTER.match(text, e)):
            continue
        registry_only = False
        if m.group("n2"):
            a, b = m.group(0)[:4], m.group("n2")
            if _YEARISH.fullmatch(b) and 0 < int(b) - int(a) <= 300:
                registry_only = True  # reads as a range of years
            if _YEAR_AFTER.match(text, e):
                continue
            if m.group("sp"):  # "1899 0893": a space is a weaker separator
                if _BAD_AFTER.match(text, e):
                    continue
                if not _phone_context_before(text, s):
                    registry_only = True
        number = m.group(0)
        out.append(Found(number, number_key(number), s, e, registry_only))
        taken.append((s, e))
    for m in _REGIONAL.finditer(text):
        s, e = m.span()
        if any(ts <= s < te for ts, te in taken):
            continue
        if s > 0 and (text[s - 1] in _BAD_BEFORE or _ASCII_LETTER.match(text, s - 1)):
            continue
        if e < len(text) and (text[e].isdigit() or _GLUED_AFTER.match(text, e)):
            continue
        key = number_key(m.group(1))
        if key in short_keys:
            out.append(Found(m.group(0), key, s, e, False))
            taken.append((s, e))
    pending: list[tuple[Found, bool]] = []
    for m in _SHORT.finditer(text):
        s, e = m.span()
        if any(ts <= s < te for ts, te in taken):
            continue
        got = _short(text, s, e, short_keys)
        if got is not None:
            pending.append(got)
    # A registry number without context of its own is read when a list partner has one.
    for i, (found, ok) in enumerate(pending):
        if not ok:
            for j in (i - 1, i + 1):
                if 0 <= j < len(pending) and pending[j][1]:
                    left, right = (pending[j][0], found) if j < i else (found, pending[j][0])
                    if _LIST_JOIN.fullmatch(text, left.end, right.start):
                        ok = True
        if ok:
            out.append(found)
    out.sort(key=lambda f: f.start)
    return out


def _short(text: str, s: int, e: int, short_keys: frozenset[str]) -> tuple[Found, bool] | None:
    """A short-number candidate and whether it has a hotline context (None: not a number)."""
    number = text[s:e]
    hashed = number.startswith("#")
    if not 3 <= len(number) - hashed <= 4:
        return None
    if s > 0 and (text[s - 1] in _BAD_BEFORE or text[s - 1] == "#"):
        return None
    if s > 0 and _ASCII_LETTER.match(text, s - 1):
        return None
    if e < len(text) and (text[e].isdigit() or _BAD_AFTER.match(text, e)):
        return None
    before = text[max(0, s - 12) : s]
    if _BAD_LABEL.search(before) or _CASE_NUMBER.search(before):
        return None
    digits = number.lstrip("#")
    key = number_key(digits)
    if hashed and key not in short_keys:
        key = key.lstrip("0")
    if key in short_keys:
        context = hashed or _phone_context_before(text, s) or _phone_context_after(text, e)
        return Found(number, key, s, e, False), context
    if not hashed and _PHONE_WORDS.search(before):
        return Found(number, key, s, e, False), True
    return None
