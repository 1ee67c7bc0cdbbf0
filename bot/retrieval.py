"""Finding the knowledge-base entry a caller asks about, robust to recognition errors.

Each entry's phrasings (question + ``also``) and the caller's words are reduced to
*content* (fillers and function words removed, synonyms mapped to one word) and then to
features on two levels:

- words (jieba), which carry meaning when recognition is clean;
- fuzzy toneless pinyin syllable bigrams and unigrams, which survive homophone errors
  (租防 and 租房 are both ``zu fan``).

Features are IDF-weighted over all phrasings. For a candidate phrasing the match is
scored on both sides: how much of what the caller said the phrasing explains
(query coverage) and how much of the phrasing the caller said (phrasing coverage).
Words the knowledge base has never seen count against the match, which is what keeps
out-of-scope questions (火星上能种菜吗) from being answered. The confidence is a
logistic function of these coverages; its weights were fitted on the project's own
synthetic phrasings (see ``docs/bot.md``), not on an evaluation set.

Hand-written rather than a library (rank-bm25 etc.): BM25 scores are not comparable
across queries, and the bot needs a calibrated "is this really the entry" confidence,
not a ranking alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from bot.kb import Entry, KnowledgeBase
from bot.lexicon import Lexicon
from bot.text import Prepared, words

# Relative weight of each feature kind in the coverage sums.
_KIND_WEIGHT = {"w": 1.0, "b": 0.8, "s": 0.25}
# Logistic calibration: conf = sigmoid(A*q_cov + B*d_cov + M*margin + C), where margin is
# how far (q_cov + d_cov) of this entry lies above the best other entry's. Fitted by
# ``hotline bot calibrate`` on tests/bot/data/calibration-qingchuan.tsv (the project's own
# phrasings for its sample knowledge base; never the evaluation sets).
CALIBRATION = (3.12, 1.54, 4.48, -3.35)
MIN_PHRASING_COVERAGE = 0.25
ANSWER_WEIGHT = 0.5  # a query word found only in the answer counts this much
RERANK = 20  # candidates re-ranked with their answers


@dataclass(frozen=True, slots=True)
class Match:
    entry: Entry
    confidence: float
    query_coverage: float
    phrasing_coverage: float
    phrasing: str


class Content:
    """The content of a text: features with their kinds."""

    __slots__ = ("features", "text")

    def __init__(self, text: str, features: list[str]) -> None:
        self.text = text
        self.features = features


def content_of(prepared: Prepared, lexicon: Lexicon) -> Content:
    """Drop fillers and function words, map synonyms, and list word and sound features."""
    text = lexicon.strip_fillers(prepared)
    text = lexicon.map_synonyms(text)
    kept = [w for w in words(text) if w not in lexicon.stop_words]
    content = "".join(kept)
    sounds = Prepared.of(content).sounds if content else []
    han = [
        s
        for s, ch in zip(sounds, content, strict=False)
        if "\u4e00" <= ch <= "\u9fff" or ch.isalnum()
    ]
    feats = [f"w:{w}" for w in kept]
    feats += [f"b:{a}_{b}" for a, b in pairwise(han)]
    feats += [f"s:{s}" for s in han]
    return Content(content, list(dict.fromkeys(feats)))


def _weight(feature: str, idf: float) -> float:
    return _KIND_WEIGHT[feature[0]] * idf


class Retriever:
    """An immutable index over a knowledge base; safe to share between calls and threads."""

    def __init__(self, kb: KnowledgeBase, lexicon: Lexicon) -> None:
        self.kb = kb
        self.lexicon = lexicon
        docs: list[tuple[int, str, list[str]]] = []
        # Answers are weak evidence: a caller may use the answer's words (异地就医) rather
        # than the question's; they only re-rank the best candidates (ANSWER_WEIGHT).
        self._answer_feats = [
            frozenset(f for f in content_of(Prepared.of(e.answer), lexicon).features if f[0] != "s")
            for e in kb.entries
        ]
        for i, entry in enumerate(kb.entries):
            for phrasing in entry.phrasings():
                feats = content_of(Prepared.of(phrasing), lexicon).features
                if feats:
                    docs.append((i, phrasing, feats))
        df: dict[str, int] = defaultdict(int)
        for _, _, feats in docs:
            for f in feats:
                df[f] += 1
        n = max(len(docs), 1)
        self._unseen_idf = math.log(1.0 + n)
        self._idf = {f: math.log(1.0 + n / c) for f, c in df.items()}
        self._docs = [
            (i, phrasing, sum(_weight(f, self._idf[f]) for f in feats))
            for i, phrasing, feats in docs
        ]
        self._doc_feats = [frozenset(feats) for _, _, feats in docs]
        postings: dict[str, list[int]] = defaultdict(list)
        for d, (_, _, feats) in enumerate(docs):
            for f in feats:
                postings[f].append(d)
        self._postings = dict(postings)

    def idf(self, feature: str) -> float:
        return self._idf.get(feature, self._unseen_idf)

    def search(self, prepared: Prepared, k: int = 3) -> list[Match]:
        """The best ``k`` entries, best first, each with a calibrated confidence in [0, 1]."""
        feats = content_of(prepared, self.lexicon).features
        if not feats:
            return []
        q_total = sum(_weight(f, self.idf(f)) for f in feats)
        matched: dict[int, float] = defaultdict(float)
        for f in feats:
            docs = self._postings.get(f)
            if docs is None:
                continue
            w = _weight(f, self._idf[f])
            for d in docs:
                matched[d] += w
        best: dict[int, tuple[float, float, str, int]] = {}
        for d, m in matched.items():
            entry_index, phrasing, d_total = self._docs[d]
            q_cov = m / q_total
            d_cov = min(1.0, m / d_total)
            current = best.get(entry_index)
            if current is None or q_cov + d_cov > current[0] + current[1]:
                best[entry_index] = (q_cov, d_cov, phrasing, d)
        shortlist = sorted(best.items(), key=lambda item: -(item[1][0] + item[1][1]))[:RERANK]
        reranked: list[tuple[int, tuple[float, float, str]]] = []
        for entry_index, (q_cov, d_cov, phrasing, d) in shortlist:
            in_doc = self._doc_feats[d]
            answer = self._answer_feats[entry_index]
            extra = sum(_weight(f, self.idf(f)) for f in feats if f not in in_doc and f in answer)
            reranked.append(
                (entry_index, (q_cov + ANSWER_WEIGHT * extra / q_total, d_cov, phrasing))
            )
        ranked = sorted(reranked, key=lambda item: -(item[1][0] + item[1][1]))[: k + 1]
        sums = [q + d for _, (q, d, _) in ranked]
        out: list[Match] = []
        for rank, (entry_index, (q_cov, d_cov, phrasing)) in enumerate(ranked[:k]):
            other = max((s for j, s in enumerate(sums) if j != rank), default=0.0)
            conf = calibrated(q_cov, d_cov, sums[rank] - other)
            if d_cov < MIN_PHRASING_COVERAGE:  # one common word (没有) is not a question
                conf *= d_cov / MIN_PHRASING_COVERAGE
            out.append(Match(self.kb.entries[entry_index], conf, q_cov, d_cov, phrasing))
        return out

    def key_terms(self, limit: int = 200) -> list[str]:
        """Distinctive words of the knowledge base, for the recogniser's phrase hints."""
        terms = [f[2:] for f in self._idf if f.startswith("w:") and len(f) > 3]
        terms.sort(key=lambda t: (-self._idf[f"w:{t}"], t))
        return terms[:limit]


def calibrated(
    q_cov: float, d_cov: float, margin: float, weights: tuple[float, ...] = CALIBRATION
) -> float:
    a, b, m, c = weights
    return 1.0 / (1.0 + math.exp(-(a * q_cov + b * d_cov + m * margin + c)))


def top_terms(texts: Iterable[str], lexicon: Lexicon) -> list[str]:
    out: list[str] = []
    for text in texts:
        out.extend(w for w in words(text) if len(w) > 1 and w not in lexicon.stop_words)
    return list(dict.fromkeys(out))
