"""The caller's name and callback number, taken down with a work order.

Both are optional: a caller may stay anonymous (匿名, 不留名) and may ask for their
details to be kept confidential (保密). Phone numbers are spoken digit by digit
(幺三八…), so a digit table is enough; a number library (cn2an) would read 一百 as 100,
which no caller means in a phone number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.lexicon import Lexicon
from bot.text import Prepared, normalise

_DIGITS = str.maketrans("零〇洞幺一二两三四五六七八九", "00011223456789")
_PHONE = re.compile(r"\d{7,12}")
_DECLINE = ("不想说", "不方便", "不愿意", "不用了", "不留", "算了", "不告诉", "不想留")
_CONFIDENTIAL = ("保密", "别透露", "不要透露", "不要告诉", "别告诉")
_NAME = re.compile(
    r"(?:我叫|我是|叫我|我姓|姓)([\u4e00-\u9fff]{1,4}?)(?:先生|女士|老师|师傅|阿姨|大爷|$)"
)
_TITLE = re.compile(r"^([\u4e00-\u9fff]{1,3}?)(先生|女士|老师|师傅|阿姨|大爷)$")


@dataclass(frozen=True, slots=True)
class NameAnswer:
    name: str  # empty when the caller declined
    anonymous: bool
    confidential: bool


def parse_name(text: str, lexicon: Lexicon) -> NameAnswer:
    """What the caller said when asked how to address them."""
    p = Prepared.of(text)
    confidential = any(w in p.text for w in _CONFIDENTIAL)
    declined = p.any(lexicon.anonymous) is not None or any(w in p.text for w in _DECLINE)
    if declined and not (confidential and _name_in(p.text)):
        return NameAnswer("", True, True)
    return NameAnswer(_name_in(lexicon.strip_fillers(p) or p.text), False, confidential)


def _name_in(text: str) -> str:
    for word in (*_CONFIDENTIAL, "请", "帮我", "一下", "的", "就行", "就好", "吧"):
        text = text.replace(word, "")
    m = _NAME.search(text)
    if m:
        surname_only = "姓" in text[: m.start(1)] and len(m.group(1)) == 1
        title = text[m.end(1) : m.end()]
        return m.group(1) + (title or ("（姓）" if surname_only else ""))
    if _TITLE.match(text) or 2 <= len(text) <= 4:
        return text
    return ""


def spoken_digits(text: str) -> str:
    """``text`` with spoken digits (幺三八, 洞, 两) written as 0-9."""
    return text.translate(_DIGITS)


def parse_phone(text: str) -> str | None:
    """A 7-12 digit number spoken or typed in ``text`` (幺三八… included), or None."""
    digits = spoken_digits(normalise(text))
    digits = re.sub(r"(?<=\d)[^\d]{1,2}(?=\d)", "", digits)  # 138 一二 (pauses, 杠)
    m = _PHONE.search(digits)
    return m.group(0) if m else None
