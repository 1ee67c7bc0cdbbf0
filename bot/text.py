"""Text normalisation and the two views of an utterance the bot matches on: words and sound.

Recognisers write homophones (租房 -> 租防, 公积金 -> 公基金) and sometimes traditional
characters, so everything the bot compares goes through :func:`normalise` (OpenCC
traditional -> simplified, full-width -> half-width, punctuation dropped) and is also
compared as toneless pinyin with the usual fuzzy pairs merged (zh/z, ch/c, sh/s, n/l,
eng/en, ing/in), which absorbs most of what a recogniser gets wrong on phone audio.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jieba
import opencc
from pypinyin import Style, lazy_pinyin

jieba.setLogLevel(60)

_T2S = opencc.OpenCC("t2s")
_DROP = re.compile(r"[\s\W_]+", re.UNICODE)
_HAN = re.compile(r"[\u4e00-\u9fff]")

# Fuzzy pairs a caller's accent or a recogniser confuses; merged one way.
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FUZZY_FINALS = (("ing", "in"), ("eng", "en"), ("ueng", "un"))


def normalise(text: str) -> str:
    """Simplified characters, half-width ASCII lower-case, no spaces or punctuation."""
    text = unicodedata.normalize("NFKC", text)
    text = _T2S.convert(text)
    return _DROP.sub("", text).lower()


@lru_cache(maxsize=4096)
def fuzzy_syllable(syllable: str) -> str:
    """One toneless syllable with the fuzzy pairs merged (``zhuan`` -> ``zuan``)."""
    for long, short in _FUZZY_INITIALS:
        if syllable.startswith(long) and len(syllable) > len(long):
            syllable = short + syllable[len(long) :]
            break
    for long, short in _FUZZY_FINALS:
        if syllable.endswith(long):
            syllable = syllable[: -len(long)] + short
            break
    return syllable


def syllables(text: str) -> list[str]:
    """Fuzzy toneless pinyin, one item per character (non-Han characters kept as they are)."""
    return list(_syllables(text))


# Training reads every corpus line (and its heard copies) once per cross-validation fold;
# pypinyin was half of the training time before the readings were kept.
@lru_cache(maxsize=65536)
def _syllables(text: str) -> tuple[str, ...]:
    out: list[str] = []
    # errors= may return a list (one item per non-Han character); the stubs say str only.
    keep_apart: Any = list
    for item in lazy_pinyin(text, style=Style.NORMAL, errors=keep_apart):
        out.append(fuzzy_syllable(item) if item.isalpha() and item.isascii() else item)
    return tuple(out)


def words(text: str) -> list[str]:
    return [w for w in jieba.lcut(text) if w.strip()]


def find_syllables(haystack: Sequence[str], needle: Sequence[str]) -> int:
    """Index of the first occurrence of syllable run ``needle`` in ``haystack``, or -1."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return -1
    first = needle[0]
    for i in range(len(haystack) - n + 1):
        if haystack[i] == first and list(haystack[i : i + n]) == list(needle):
            return i
    return -1


@dataclass(frozen=True, slots=True)
class Phrase:
    """A cue phrase prepared once: its characters and its fuzzy pinyin."""

    text: str
    sounds: tuple[str, ...]
    min_sound: int = 2  # match by sound only for phrases at least this long

    @classmethod
    def of(cls, text: str, min_sound: int = 2) -> Phrase:
        norm = normalise(text)
        return cls(norm, tuple(syllables(norm)), min_sound)

    def span_in(self, text: str, sounds: Sequence[str]) -> tuple[int, int] | None:
        """Where the phrase occurs, by characters or (for two or more syllables) by sound."""
        at = text.find(self.text)
        if at >= 0:
            return at, at + len(self.text)
        if len(self.sounds) >= self.min_sound and len(sounds) == len(text):
            at = find_syllables(sounds, self.sounds)
            if at >= 0:
                return at, at + len(self.sounds)
        return None


def phrases(items: Iterable[str], min_sound: int = 2) -> tuple[Phrase, ...]:
    prepared = {Phrase.of(item, min_sound) for item in items if normalise(item)}
    # Longest first so that a longer cue claims its characters before a shorter one.
    return tuple(sorted(prepared, key=lambda p: (-len(p.text), p.text)))


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))


@dataclass(slots=True)
class Prepared:
    """An utterance ready for matching: normalised text and its syllables, aligned."""

    raw: str
    text: str
    sounds: list[str]

    @classmethod
    def of(cls, raw: str) -> Prepared:
        text = normalise(raw)
        sounds = syllables(text)
        if len(sounds) != len(text):  # keep the two views aligned character by character
            sounds = [syllables(ch)[0] if ch else ch for ch in text]
        return cls(raw, text, sounds)

    def find(self, phrase: Phrase) -> tuple[int, int] | None:
        return phrase.span_in(self.text, self.sounds)

    def any(self, cues: Iterable[Phrase]) -> Phrase | None:
        for cue in cues:
            if self.find(cue) is not None:
                return cue
        return None
