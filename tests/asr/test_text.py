"""Text helpers of recognition: scoring normalisation and Whisper's repeated sentences."""

from __future__ import annotations

import pytest

from asr.textnorm import cer, normalize
from asr.vosk_engine import join_words
from asr.whisper_engine import collapse_repeats


def test_normalize_simplifies_and_drops_punctuation_and_spaces():
    assert normalize("《廣州市》房地產， 中介協會 分析！") == "广州市房地产中介协会分析"


def test_cer_is_pooled_over_clips():
    pairs = [("公积金", "工基金"), ("社保卡丢了", "社保卡丢了")]
    assert cer(pairs) == pytest.approx(2 / 8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("孩子刚生下来怎么上户口？孩子刚生下来怎么伤户口", "孩子刚生下来怎么上户口？"),
        ("我家楼下，我家楼下，路灯坏了。", "我家楼下，路灯坏了。"),
        ("我想问一下，公积金怎么取。", "我想问一下，公积金怎么取。"),
        ("好的，好的。", "好的，好的。"),  # short acknowledgements are real speech
    ],
)
def test_a_sentence_said_twice_by_the_decoder_is_kept_once(text, expected):
    assert collapse_repeats(text) == expected


def test_vosk_spacing_between_chinese_characters_is_removed():
    assert join_words("我 想 问 一下 公积金") == "我想问一下公积金"
    assert join_words("hello 世界") == "hello 世界"
