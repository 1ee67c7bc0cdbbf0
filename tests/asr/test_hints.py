"""Phonetic correction towards the hinted phrases of the knowledge base and menus."""

from __future__ import annotations

import pytest

from asr.hints import HintCorrector

HINTS = ["公积金", "医保", "养老保险", "失业", "社保卡", "住房", "租房", "人工"]


@pytest.mark.parametrize(
    ("heard", "written"),
    [
        ("我换单位了以前的工基金怎么办", "我换单位了以前的公积金怎么办"),  # same syllables
        ("我在外地住院依保怎么报", "我在外地住院医保怎么报"),  # two characters, same tones
        ("央老保险要交几年", "养老保险要交几年"),
        ("我要转仁工", "我要转人工"),
    ],
)
def test_words_that_sound_like_a_hint_are_written_as_the_hint(heard, written):
    assert HintCorrector.build(HINTS).correct(heard) == written


@pytest.mark.parametrize(
    "text",
    [
        "我在事业单位上班",  # 事业 shi4 ye4 is not 失业 shi1 ye4: short words need the tones
        "我想问一下住房补贴",  # 住房 is itself a hint: never rewritten into 租房
        "今天天气很好",
        "ok 好的",
    ],
)
def test_other_words_are_left_alone(text):
    assert HintCorrector.build(HINTS).correct(text) == text


def test_hints_that_sound_alike_cancel_out():
    corrector = HintCorrector.build(["公积金", "工基金"])  # cannot tell which was said
    assert corrector.correct("攻击金") == "攻击金"


def test_no_hints_changes_nothing():
    assert HintCorrector.build([]).correct("工基金") == "工基金"
