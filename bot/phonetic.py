"""The hotline's own words found by sound in what the recogniser wrote (底宝 -> 低保).

Whisper base hears telephone Mandarin by sound and often writes the right syllables with
the wrong characters. A stretch of a hypothesis that sounds like a term the hotline
knows (the knowledge base's key terms, the menu, the gazetteer, the cue words) is
respelled as that term, and the respelled text becomes one more reading for
understanding to weigh (``bot.nbest``): the respelling is a candidate, never a silent
rewrite, so 事业 -> 失业 only wins where the sentence then means more.

Three kinds of match, each with its own weight in the reading's prior:

* ``exact``: the same toneless pinyin (底宝/低保 dibao, 克服/客服 kefu). Always matched.
* ``fuzzy``: the same after the pairs callers and recognisers blur are merged (zh/z, ch/c,
  sh/s, n/l, in/ing, en/eng); 为张/违章 is exact, 小七/小区 is not even fuzzy.
* ``near``: terms of three or more syllables whose syllables differ a little, scored by
  initial and final (有言其刀商言 for 有人持刀伤人: yan/ren, qi/chi). Danger phrases only
  need to be near: a danger heard with any confidence goes to the emergency check.

Hand-written rather than a library: pypinyin gives the syllables, and no maintained
package scores Mandarin syllables by initial and final for this use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

from bot.text import fuzzy_syllable, normalise

_HAN = re.compile(r"^[\u4e00-\u9fff]+$")
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q",
             "x", "r", "z", "c", "s", "y", "w")  # fmt: skip
# Initials a narrow-band line and a recogniser confuse: a swap inside a group costs half.
_INITIAL_GROUPS = (
    {"z", "c", "s", "zh", "ch", "sh", "j", "q", "x"}, {"b", "p"}, {"d", "t"}, {"g", "k", "h"},
    {"n", "l", "r", "y", ""}, {"f", "h"}, {"w", "y", ""},
)  # fmt: skip
# Finals that differ only in the vowel before the same nasal, or in the glide.
_FINAL_GROUPS = (
    {"an", "en", "ian", "uan", "in", "un"}, {"ang", "eng", "iang", "uang", "ing", "ong"},
    {"i", "ü", "v", "ei", "ui"}, {"ao", "ou", "iao", "iu"}, {"a", "e", "ia", "ua", "o", "uo"},
)  # fmt: skip
# Most syllables of a near match must be the same (fuzzy) syllable, and the mean
# difference per syllable is at most this (0 = same syllable, 1 = nothing in common).
NEAR_MAX_PER_SYLLABLE = 0.25
DANGER_NEAR_MAX_PER_SYLLABLE = 0.35


class Kind(StrEnum):
    EXACT = "exact"
    FUZZY = "fuzzy"
    NEAR = "near"


@dataclass(frozen=True, slots=True)
class Respelling:
    heard: str  # the characters the recogniser wrote
    term: str  # the hotline's term they sound like
    kind: Kind
    distance: float = 0.0  # near matches: mean difference per syllable


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    exact: tuple[str, ...]
    fuzzy: tuple[str, ...]
    danger: bool


def toneless(text: str) -> tuple[str, ...]:
    return tuple(lazy_pinyin(text, style=Style.NORMAL))


@lru_cache(maxsize=8192)
def _split(syllable: str) -> tuple[str, str]:
    for initial in _INITIALS:
        if syllable.startswith(initial) and len(syllable) > len(initial):
            return initial, syllable[len(initial) :]
    return "", syllable


def _part_distance(a: str, b: str, groups: tuple[set[str], ...]) -> float:
    if a == b:
        return 0.0
    return 0.25 if any(a in g and b in g for g in groups) else 0.5


@lru_cache(maxsize=65536)
def syllable_distance(a: str, b: str) -> float:
    """0 for the same toneless syllable, up to 1 (initial and final both unrelated)."""
    if a == b:
        return 0.0
    (ia, fa), (ib, fb) = _split(a), _split(b)
    return _part_distance(ia, ib, _INITIAL_GROUPS) + _part_distance(fa, fb, _FINAL_GROUPS)


class TermSpeller:
    """Built once per brain from its terms; ``respell`` runs on every hypothesis."""

    def __init__(self, terms: Iterable[str], danger_terms: Iterable[str] = ()) -> None:
        danger = {normalise(t) for t in danger_terms}
        table: dict[str, _Term] = {}
        for raw in [*terms, *danger]:
            text = normalise(raw)
            if len(text) < 2 or not _HAN.match(text) or text in table:
                continue
            exact = toneless(text)
            fuzzy = tuple(fuzzy_syllable(s) for s in exact)
            table[text] = _Term(text, exact, fuzzy, text in danger)
        self._terms = sorted(table.values(), key=lambda t: -len(t.text))  # longest first
        self._by_exact = _index(self._terms, lambda t: t.exact)
        self._by_fuzzy = _index(self._terms, lambda t: t.fuzzy)
        # Danger phrases are matched near only from four syllables: one syllable off in
        # three is everyday speech (没气味/没气了, 被车堵/被车撞).
        self._near = [t for t in self._terms if len(t.text) >= (4 if t.danger else 3)]
        self._lengths = sorted({len(t.text) for t in self._terms}, reverse=True)

    def respell(self, text: str) -> tuple[str, tuple[Respelling, ...]]:
        """``text`` with every stretch that sounds like a term written as that term."""
        chars = list(text)
        exact = toneless(text)
        if len(exact) != len(chars):  # non-Han runs: keep the views aligned per character
            exact = tuple(toneless(ch)[0] if ch else ch for ch in chars)
        fuzzy = tuple(fuzzy_syllable(s) for s in exact)
        taken = self._present(text)
        out: list[Respelling] = []
        i = 0
        while i < len(chars):
            found = None if taken[i] else self._match_at(text, exact, fuzzy, i, taken)
            if found is None:
                i += 1
                continue
            length, respelling = found
            chars[i : i + length] = list(respelling.term)
            out.append(respelling)
            i += length
        return "".join(chars), tuple(out)

    def _present(self, text: str) -> list[bool]:
        """Characters already part of a term as written: never respelled (公积金 stays)."""
        taken = [False] * len(text)
        for term in self._terms:
            start = text.find(term.text)
            while start >= 0:
                taken[start : start + len(term.text)] = [True] * len(term.text)
                start = text.find(term.text, start + 1)
        return taken

    def _match_at(
        self, text: str, exact: tuple[str, ...], fuzzy: tuple[str, ...], i: int, taken: list[bool]
    ) -> tuple[int, Respelling] | None:
        for length in self._lengths:
            window = text[i : i + length]
            if len(window) < length or not _HAN.match(window) or any(taken[i : i + length]):
                continue
            term = self._by_exact.get(exact[i : i + length])
            if term is not None and term.text != window:
                return length, Respelling(window, term.text, Kind.EXACT)
            term = self._by_fuzzy.get(fuzzy[i : i + length])
            if term is not None and term.text != window:
                return length, Respelling(window, term.text, Kind.FUZZY)
            near = self._near_at(window, fuzzy[i : i + length])
            if near is not None:
                return length, near
        return None

    def _near_at(self, window: str, sounds: tuple[str, ...]) -> Respelling | None:
        best: tuple[float, _Term] | None = None
        for term in self._near:
            if len(term.fuzzy) != len(sounds):
                continue
            same = sum(a == b for a, b in zip(term.fuzzy, sounds, strict=True))
            if same * 2 < len(sounds):  # most syllables must be right: cheap filter first
                continue
            limit = DANGER_NEAR_MAX_PER_SYLLABLE if term.danger else NEAR_MAX_PER_SYLLABLE
            mean = sum(map(syllable_distance, term.fuzzy, sounds)) / len(sounds)
            if mean <= limit and (best is None or mean < best[0]):
                best = (mean, term)
        if best is None:
            return None
        return Respelling(window, best[1].text, Kind.NEAR, round(best[0], 3))


def _index(terms: list[_Term], key: object) -> dict[tuple[str, ...], _Term]:
    """Sound -> term; two terms that sound alike keep the first (longest, then listed first)."""
    table: dict[tuple[str, ...], _Term] = {}
    for term in terms:
        table.setdefault(key(term), term)  # type: ignore[operator]
    return table
