"""Cue lexicons (``bot/data/cues.yaml``): the data the classifier and retrieval run on.

A city extends the bot by editing this file (or passing its own), never the code. The
file is validated on load with pydantic and errors name the field.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.text import Phrase, Prepared, normalise, phrases
from hotline.errors import UserFacingError

_M = TypeVar("_M", bound="BaseModel")
WORK_ORDER_TYPES = ("complaint", "help", "report", "suggestion", "praise")


class LexiconError(UserFacingError, ValueError):
    """A cue lexicon file that cannot be used."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TypeCues(_Strict):
    explicit: list[str] = Field(default_factory=list)
    cues: dict[str, float] = Field(default_factory=dict)

    @field_validator("cues")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for phrase, weight in value.items():
            if weight <= 0:
                raise ValueError(f"cue {phrase!r} has weight {weight}; weights must be > 0")
        return value


class EmergencyCues(_Strict):
    cues: list[str]
    defer_to_kb: list[str] = Field(default_factory=list)


class TopicRule(_Strict):
    topic: str
    department: str
    queue: str = "general"
    keywords: list[str]


class LexiconFile(_Strict):
    version: int = 1
    fillers: list[str] = Field(default_factory=list)
    stop_words: list[str] = Field(default_factory=list)
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    question_markers: list[str] = Field(default_factory=list)
    consult_markers: list[str] = Field(default_factory=list)
    closing: list[str] = Field(default_factory=list)
    confirm: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    dont_know: list[str] = Field(default_factory=list)
    anonymous: list[str] = Field(default_factory=list)
    # Context of a conversation (bot.dialogue): say that again / slower; a follow-up on
    # the last answer; a correction (不是X，我问的是Y); asking after an earlier work order.
    repeat: list[str] = Field(default_factory=list)
    follow_up: list[str] = Field(default_factory=list)
    correction: list[str] = Field(default_factory=list)
    ticket_query: list[str] = Field(default_factory=list)
    danger_yes: list[str] = Field(default_factory=list)
    danger_no: list[str] = Field(default_factory=list)
    emergency: EmergencyCues
    human: list[str]
    abusive: list[str] = Field(default_factory=list)
    types: dict[str, TypeCues]
    urgent: list[str] = Field(default_factory=list)
    topics: list[TopicRule] = Field(default_factory=list)
    queues: dict[str, list[str]] = Field(default_factory=dict)
    default_queue: str = "general"

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: dict[str, TypeCues]) -> dict[str, TypeCues]:
        unknown = sorted(set(value) - set(WORK_ORDER_TYPES))
        if unknown:
            raise ValueError(
                f"unknown type {unknown[0]!r}; types are {', '.join(WORK_ORDER_TYPES)}"
            )
        return value


class SynonymFile(_Strict):
    version: int = 1
    groups: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def _one_group_each(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for canonical, variants in value.items():
            for word in (canonical, *variants):
                key = normalise(word)
                if not key:
                    raise ValueError(f"group {canonical!r}: empty word")
                other = seen.setdefault(key, canonical)
                if other != canonical:
                    raise ValueError(f"{word!r} is in group {other!r} and in group {canonical!r}")
        return value


class Lexicon:
    """The lexicons, prepared for matching (phrases compiled to characters + sounds)."""

    def __init__(
        self, data: LexiconFile, source: str = "", synonyms: SynonymFile | None = None
    ) -> None:
        self.data = data
        self.source = source
        # Multi-character function words are removed by sound too (a recogniser may
        # write 怎磨 for 怎么); single characters only by character.
        self.fillers = phrases([*data.fillers, *(w for w in data.stop_words if len(w) > 1)])
        self.stop_words = frozenset(normalise(w) for w in data.stop_words)
        # One regex pass, longest alternative first, canonical words mapping to themselves,
        # so that 执照 -> 营业执照 does not turn 营业执照 into 营业营业执照.
        # The city's cue-file synonyms first: they take precedence over the general lexicon.
        table: dict[str, str] = {}
        groups = [*data.synonyms.items(), *(synonyms.groups.items() if synonyms else ())]
        for canonical, variants in groups:
            for word in (canonical, *variants):
                if normalise(word):
                    table.setdefault(normalise(word), normalise(canonical))
        self.synonyms = table
        alternatives = sorted(table, key=lambda w: (-len(w), w))
        self._synonym_re = re.compile("|".join(map(re.escape, alternatives))) if table else None
        self.question_markers = phrases(data.question_markers)
        self.closing = phrases(data.closing)
        self.confirm = phrases(data.confirm)
        self.deny = phrases(data.deny)
        self.dont_know = phrases(data.dont_know)
        self.anonymous = phrases(data.anonymous)
        self.repeat = phrases(data.repeat)
        self.follow_up = phrases(data.follow_up)
        self.correction = phrases(data.correction)
        self.ticket_query = phrases(data.ticket_query)
        self.danger_yes = phrases(data.danger_yes)
        self.danger_no = phrases(data.danger_no)
        # Two-syllable emergency and abuse cues match by characters only: by sound,
        # 拿到 would be 拿刀 and 出生 would be 畜生.
        self.emergency = phrases(data.emergency.cues, min_sound=3)
        self.emergency_deferred = phrases(data.emergency.defer_to_kb, min_sound=3)
        self.human = phrases(data.human)
        self.abusive = phrases(data.abusive, min_sound=3)
        self.consult_markers = phrases(data.consult_markers)
        self.explicit = {t: phrases(c.explicit) for t, c in data.types.items()}
        self.cues: dict[str, list[tuple[Phrase, float]]] = {
            t: sorted(((Phrase.of(p), w) for p, w in c.cues.items()), key=lambda x: -len(x[0].text))
            for t, c in data.types.items()
        }
        self.urgent = phrases(data.urgent)
        self.topics = [(rule, phrases(rule.keywords, min_sound=3)) for rule in data.topics]

    def strip_fillers(self, prepared: Prepared) -> str:
        """The text without filler phrases and multi-character function words."""
        keep = [True] * len(prepared.text)
        for phrase in self.fillers:
            start = 0
            while True:
                span = phrase.span_in(prepared.text[start:], prepared.sounds[start:])
                if span is None:
                    break
                a, b = span[0] + start, span[1] + start
                if any(keep[a:b]):
                    for i in range(a, b):
                        keep[i] = False
                start = b
        return "".join(ch for ch, k in zip(prepared.text, keep, strict=True) if k)

    def map_synonyms(self, text: str) -> str:
        if self._synonym_re is None:
            return text
        return self._synonym_re.sub(lambda m: self.synonyms[m.group(0)], text)

    def queue_for(self, *texts: str) -> str:
        for queue, words in self.data.queues.items():
            if any(w in t for t in texts for w in words):
                return queue
        return self.data.default_queue


def load_lexicon(path: str | Path | None = None, synonyms: str | Path | None = None) -> Lexicon:
    """Load a cue lexicon and a synonym lexicon; ``None`` loads the ones shipped with the bot."""
    text, source = _read("cue lexicon", path, "data/cues.yaml")
    data = _parse(LexiconFile, "cue lexicon", text, source)
    syn_text, syn_source = _read("synonym lexicon", synonyms, "data/synonyms.yaml")
    groups = _parse(SynonymFile, "synonym lexicon", syn_text, syn_source)
    return Lexicon(data, source, groups)


def _read(kind: str, path: str | Path | None, default: str) -> tuple[str, str]:
    if path is None:
        return resources.files("bot").joinpath(default).read_text(
            encoding="utf-8"
        ), f"bot/{default}"
    path = Path(path)
    if not path.is_file():
        raise LexiconError(f"{kind} {path}: file not found")
    return path.read_text(encoding="utf-8"), str(path)


def _parse(model: type[_M], kind: str, text: str, source: str) -> _M:
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LexiconError(f"{kind} {source}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise LexiconError(f"{kind} {source}: {_problems(exc)}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
    )
