"""Text normalisation for scoring: simplified characters, no punctuation or spaces."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import opencc
from rapidfuzz.distance import Levenshtein


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    """Traditional -> simplified; drop punctuation, symbols and whitespace; lower-case."""
    simplified = _t2s().convert(unicodedata.normalize("NFKC", text))
    return "".join(ch.lower() for ch in simplified if unicodedata.category(ch)[0] in "LN")


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance, reference length) in characters after normalisation."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return Levenshtein.distance(ref, hyp), len(ref)


def cer(pairs: list[tuple[str, str]]) -> float:
    """Character error rate over (reference, hypothesis) pairs, pooled."""
    edits = total = 0
    for reference, hypothesis in pairs:
        e, n = char_errors(reference, hypothesis)
        edits, total = edits + e, total + n
    return edits / total if total else 0.0
