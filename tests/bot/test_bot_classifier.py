from __future__ import annotations

import random

import pytest

from bot.brain import Brain
from bot.evaluate import homophone_noise
from bot.text import Prepared, normalise, syllables


def test_normalise_traditional_and_punctuation() -> None:
    assert normalise("轉人工服務！ ") == "转人工服务"
    assert normalise("ＡＢＣ，公積金") == "abc公积金"


def test_fuzzy_pinyin_absorbs_whisper_errors() -> None:
    # Whisper-base heard 转人工服务 as 卻仍公佛物 on phone audio: 仍公 ~ 人工 by sound.
    assert syllables("仍公") == syllables("人工")
    assert syllables("租防") == syllables("租房")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("我的社保卡丢了", "kb:si-card-lost"),
        ("我要投诉楼下的烧烤店油烟太大", "complaint"),
        ("我们小区的路灯坏了好几天了", "help"),
        ("我要举报有人在河边偷倒建筑垃圾", "report"),
        ("我建议在公园门口多设几个公交站", "suggestion"),
        ("我想表扬一下派出所的民警很耐心", "praise"),
        ("帮我转人工", "human"),
        ("卻仍公佛物", "human"),
        ("我家厨房着火了", "emergency"),
        ("有人打架流了很多血", "emergency"),
        ("请问火星上能种菜吗", "unknown"),
        ("你们这群废物", "abusive"),
        ("老板拖欠工资到哪里投诉", "kb:wage-unpaid"),
    ],
)
def test_request_types(brain: Brain, text: str, label: str) -> None:
    assert brain.classify(text).eval_label == label


def test_homophone_errors_still_match(brain: Brain) -> None:
    assert brain.classify("租防能不能用公基金交房租").eval_label == "kb:hf-withdraw-rent"
    assert brain.classify("社保卡调了怎么挂失").eval_label == "kb:si-card-lost"
    assert brain.classify("我要头诉工地半夜施工").eval_label == "complaint"


def test_out_of_scope_is_never_answered(brain: Brain) -> None:
    for text in ("火星上能种菜吗", "明年高考政策有什么变化", "哪个股票会涨"):
        intent = brain.classify(text)
        assert intent.label == "unknown", text


def test_noise_is_seeded_and_keeps_pinyin() -> None:
    text = "我想问一下租房能不能取公积金"
    a = homophone_noise(text, 0.3, random.Random(1))
    b = homophone_noise(text, 0.3, random.Random(1))
    assert a == b and a != text
    assert Prepared.of(a).sounds == Prepared.of(text).sounds or len(a) == len(text)


def test_hints_include_kb_terms_and_person(brain: Brain) -> None:
    hints = brain.hints()
    assert "人工" in hints and "公积金" in hints and "幸福里社区" in hints


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("我家找火了", "emergency"),  # 着火 heard as 找火 (same toneless pinyin)
        ("楼下七火了", "emergency"),  # 起火了
        ("有人运到了快不行了", "emergency"),  # 有人晕倒了
        ("快递什么时候运到", "not handed over"),  # 运到 sounds like 晕倒: may ask, never acts
        ("我想找一下火车站怎么走", "not handed over"),
    ],
)
def test_emergencies_survive_a_homophone_without_reading_one_into_everyday_words(
    brain: Brain, text: str, label: str
) -> None:
    intent = brain.classify(text)
    if label == "emergency":
        assert intent.label == "emergency", intent
    else:
        assert intent.label != "emergency", intent
