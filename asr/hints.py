"""Phonetic correction towards phrase hints (contextual biasing after decoding).

Whisper-base hears telephone Mandarin by sound and often picks the wrong characters
for the right syllables (公积金 -> 工基金, 医保 -> 依保). When a stretch of the transcript
sounds exactly like a hinted phrase (from the knowledge base and the menus) it is written
as that phrase. Long phrases match on toneless syllables with the initials and finals
callers and recognisers blur (zh/z, ch/c, sh/s, n/l, in/ing, en/eng); two-character
phrases must also match in tone, because short words collide too easily (事业/失业).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

_HAN = re.compile(r"^[\u3400-\u9fff]+$")
_BLUR = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("ing", "in"), ("eng", "en"))


def _blur(syllable: str) -> str:
    for sharp, flat in _BLUR:
        syllable = syllable.replace(sharp, flat)
    return "l" + syllable[1:] if syllable.startswith("n") else syllable


@lru_cache(maxsize=65536)
def _sound(chars: str, with_tone: bool) -> tuple[str, ...]:
    if with_tone:
        return tuple(lazy_pinyin(chars, style=Style.TONE3, neutral_tone_with_five=True))
    return tuple(_blur(s) for s in lazy_pinyin(chars))


@lru_cache(maxsize=64)
def corrector_for(hints: tuple[str, ...]) -> HintCorrector:
    """Calls share hint lists (the bot's), so correctors are built once per list."""
    return HintCorrector.build(hints)


@dataclass(frozen=True)
class HintCorrector:
    """Built once per hint list; ``correct`` is cheap enough for every final."""

    by_length: dict[int, dict[tuple[str, ...], str]]
    phrases: frozenset[str]

    @classmethod
    def build(cls, hints: Iterable[str]) -> HintCorrector:
        by_length: dict[int, dict[tuple[str, ...], str]] = {}
        phrases = set()
        for hint in hints:
            hint = hint.strip()
            if len(hint) < 2 or not _HAN.match(hint):
                continue
            phrases.add(hint)
            key = _sound(hint, with_tone=len(hint) == 2)
            # Two hints that sound alike cancel out: we could not tell which was said.
            table = by_length.setdefault(len(hint), {})
            table[key] = "" if key in table and table[key] != hint else hint
        return cls(by_length, frozenset(phrases))

    def correct(self, text: str) -> str:
        if not self.by_length:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            replaced = self._match_at(text, i)
            if replaced:
                out.append(replaced)
                i += len(replaced)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _match_at(self, text: str, start: int) -> str:
        for length in sorted(self.by_length, reverse=True):  # longest phrase first
            window = text[start : start + length]
            if len(window) < length or not _HAN.match(window):
                continue
            if window in self.phrases:
                return window
            hint = self.by_length[length].get(_sound(window, with_tone=length == 2))
            if hint:
                return hint
        return ""
