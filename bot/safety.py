"""Danger to life: recognised before anything else, in every dialogue state.

Two detectors, either is enough (recall is the aim, a needless hand-over costs a minute
of an operator's time, a missed one can cost a life):

* the learned model's probability of ``emergency`` (``bot.understanding``), which reads
  word order, ellipsis and homophones it was trained on;
* the emergency cue list of ``cues.yaml`` (characters, and by sound for cues of three or
  more syllables), which a city can extend without retraining.

A middling model probability with no cue is *ambiguous*: the bot asks one question
(「现在有人有生命危险吗？」) rather than guess. The kind of danger picks the number to
advise (119 fire, 120 medical, 110 police, 122 with 120 for road accidents).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.lexicon import Lexicon
from bot.text import Prepared, phrases
from bot.understanding import Bands, Prediction

ANSWER_SURE = 0.8  # model-only hand-over threshold for answers to the bot's questions


class Danger(StrEnum):
    FIRE = "fire"
    MEDICAL = "medical"
    POLICE = "police"
    TRAFFIC = "traffic"
    WATER = "water"
    GENERAL = "general"


class Level(StrEnum):
    NONE = "none"
    ASK = "ask"  # ask whether a life is in danger
    ACT = "act"  # advise 110/119/120 and hand over now


@dataclass(frozen=True, slots=True)
class Verdict:
    level: Level
    danger: Danger = Danger.GENERAL
    cue: str = ""
    probability: float = 0.0


# Words that tell which service to advise; the first kind that matches wins, so the
# order puts the most specific first (a road accident is 122 even if someone bleeds).
_KINDS: tuple[tuple[Danger, tuple[str, ...]], ...] = (
    (Danger.TRAFFIC, ("车祸", "撞人", "被车撞", "撞了", "撞倒", "翻车", "追尾", "压住", "碾")),
    (
        Danger.WATER,
        (
            "落水",
            "溺水",
            "掉河",
            "掉水",
            "掉进河",
            "掉进水",
            "掉到河",
            "掉到水",
            "水里",
            "河里",
            "湖里",
            "淹",
        ),
    ),
    (
        Danger.FIRE,
        (
            "着火",
            "起火",
            "失火",
            "火灾",
            "烧起来",
            "冒烟",
            "浓烟",
            "烟很大",
            "爆炸",
            "火",
            "烟",
            "煤气",
            "燃气",
            "天然气",
            "漏气",
        ),
    ),
    (
        Danger.POLICE,
        (
            "刀",
            "砍",
            "杀",
            "打人",
            "打架",
            "被打",
            "抢",
            "绑",
            "家暴",
            "走丢",
            "走失",
            "找不到",
            "失踪",
            "不见了",
            "跳楼",
            "跳河",
            "自杀",
            "轻生",
            "不想活",
            "枪",
            "闹事",
            "威胁",
            "拐",
        ),
    ),
    (
        Danger.MEDICAL,
        (
            "晕",
            "昏",
            "呼吸",
            "没气",
            "血",
            "心脏",
            "抽搐",
            "抽筋",
            "中毒",
            "触电",
            "电打",
            "摔",
            "掉下来",
            "坠",
            "不行了",
            "农药",
            "吃药",
            "喝药",
            "不省人事",
            "叫不醒",
            "没反应",
            "倒地",
            "倒在地",
        ),
    ),
)
_KIND_PHRASES = tuple((kind, phrases(words, min_sound=3)) for kind, words in _KINDS)


class SafetyCheck:
    def __init__(self, lexicon: Lexicon, bands: Bands) -> None:
        self.lexicon = lexicon
        self.bands = bands

    def check(
        self,
        p: Prepared,
        prediction: Prediction,
        kb_answers_it: bool = False,
        open_request: bool = True,
    ) -> Verdict:
        """``kb_answers_it``: the knowledge base has a confident answer for this very
        situation (闻到煤气味 -> the gas entry's safety advice); deferred cues then yield.
        ``open_request``: the caller is saying what they called about. When they answer
        one of the bot's questions instead (a place, a time, 尽快打开), the model, which
        learnt from first sentences, acts only when it is very sure, and never asks."""
        prob = prediction.prob("emergency")
        cue = p.any(self.lexicon.emergency)
        if cue is not None:
            return Verdict(Level.ACT, danger_of(p), cue.text, prob)
        act_at = self.bands.emergency if open_request else max(self.bands.emergency, ANSWER_SURE)
        if prob >= act_at:
            return Verdict(Level.ACT, danger_of(p), "model", prob)
        deferred = p.any(self.lexicon.emergency_deferred)
        if deferred is not None and not kb_answers_it:
            return Verdict(Level.ACT, danger_of(p), deferred.text, prob)
        if open_request and prob >= self.bands.emergency_ask:
            return Verdict(Level.ASK, danger_of(p), "model", prob)
        return Verdict(Level.NONE, probability=prob)


def danger_of(p: Prepared) -> Danger:
    for kind, words in _KIND_PHRASES:
        if p.any(words) is not None:
            return kind
    return Danger.GENERAL
