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

import numpy as np

from bot import semantic as embeddings
from bot.kb import Entry, KnowledgeBase
from bot.lexicon import Lexicon
from bot.text import Prepared, words

# Relative weight of each feature kind in the coverage sums.
_KIND_WEIGHT = {"w": 1.0, "b": 0.8, "s": 0.25}
# Logistic calibration: conf = sigmoid(A*q_cov + B*d_cov + M*margin + C), where margin is
# how far (q_cov + d_cov) of this entry lies above the best other entry's. Fitted by
# ``hotline bot calibrate`` on tests/bot/data/calibration-qingchuan.tsv (the project's own
# phrasings for its sample knowledge base; never the evaluation sets).
CALIBRATION = (3.27, 2.28, 2.13, -2.2)
MIN_PHRASING_COVERAGE = 0.25
ANSWER_WEIGHT = 0.5  # a query word found only in the answer counts this much
RERANK = 20  # candidates re-ranked with their answers (and by meaning)
# Logistic weights of (q_cov, d_cov, lexical margin, similarity, similarity margin, bias)
# for one candidate, fitted by ``hotline bot calibrate`` (same calibration phrasings).
SEMANTIC_CALIBRATION = (0.91, 0.88, 1.97, 1.9, 1.98, -2.62)
SEMANTIC_SKIP = 0.85  # words and sounds this sure: no need for the (slower) embeddings


@dataclass(frozen=True, slots=True)
class Match:
    entry: Entry
    confidence: float
    query_coverage: float
    phrasing_coverage: float
    phrasing: str
    similarity: float = 0.0  # sentence-embedding cosine (0 when not computed)


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

    def __init__(self, kb: KnowledgeBase, lexicon: Lexicon, semantic: bool = True) -> None:
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
        self.semantic: SemanticRanker | None = None
        if semantic and embeddings.available():
            self.semantic = SemanticRanker(self, lexicon)

    def idf(self, feature: str) -> float:
        return self._idf.get(feature, self._unseen_idf)

    def search(self, prepared: Prepared, k: int = 3, semantic: bool = True) -> list[Match]:
        """The best ``k`` entries, best first, each with a calibrated confidence in [0, 1].

        Words and sounds first; when they are not decisive (confidence below
        ``SEMANTIC_SKIP``) and ``semantic`` is on, sentence embeddings re-rank the
        candidates and may bring in entries words alone did not reach.
        """
        feats = content_of(prepared, self.lexicon).features
        shortlist = self._lexical(feats) if feats else []
        lexical = self._lexical_matches(shortlist, k)
        if not semantic or self.semantic is None:
            return lexical
        if lexical and lexical[0].confidence >= SEMANTIC_SKIP:
            return lexical
        query = self.lexicon.strip_fillers(prepared)
        if not query:
            return lexical
        return self.semantic.rank(query, shortlist, k)

    def semantic_candidates(self, prepared: Prepared) -> list[tuple[int, tuple[float, ...], float]]:
        """The meaning re-ranker's candidates with their features (for calibration)."""
        if self.semantic is None:
            return []
        feats = content_of(prepared, self.lexicon).features
        query = self.lexicon.strip_fillers(prepared)
        return (
            self.semantic.candidates(query, self._lexical(feats) if feats else []) if query else []
        )

    def _lexical(self, feats: list[str]) -> list[tuple[int, tuple[float, float, str]]]:
        """Entries sharing features with the query, best first: (entry, (q_cov, d_cov, text))."""
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
        return sorted(reranked, key=lambda item: -(item[1][0] + item[1][1]))

    def _lexical_matches(
        self, ranked: list[tuple[int, tuple[float, float, str]]], k: int
    ) -> list[Match]:
        ranked = ranked[: k + 1]
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


class SemanticRanker:
    """Re-ranks candidates by meaning (sentence embeddings) combined with word overlap.

    Each candidate entry is described by its word/sound coverages and margin and by its
    embedding similarity (best phrasing) and that similarity's margin over the best
    other entry; a logistic function of these (``SEMANTIC_CALIBRATION``, fitted by
    ``hotline bot calibrate`` on the project's own phrasings) is the probability that it
    is the entry the caller asks about. Knowledge bases up to ``EAGER_MAX`` phrasings are
    embedded when loaded and searched whole (an entry words did not reach can still win);
    larger ones embed the word-overlap shortlist lazily (memoised).
    """

    EAGER_MAX = 3000
    SEMANTIC_SHORTLIST = 8

    def __init__(self, retriever: Retriever, lexicon: Lexicon) -> None:
        self.retriever = retriever
        self.lexicon = lexicon
        self.texts: list[list[str]] = []
        for entry in retriever.kb.entries:
            texts = [lexicon.strip_fillers(Prepared.of(p)) for p in entry.phrasings()]
            self.texts.append([t for t in texts if t])
        self.matrix: np.ndarray | None = None
        flat = [t for texts in self.texts for t in texts]
        if len(flat) <= self.EAGER_MAX:
            self.matrix = np.stack(embeddings.embed_passages(flat)) if flat else None
            self.rows = np.array([i for i, ts in enumerate(self.texts) for _ in ts], dtype=np.int64)

    def similarities(self, query_vec: np.ndarray, entries: list[int]) -> dict[int, float]:
        """Best-phrasing cosine similarity per entry (all entries when eagerly embedded)."""
        if self.matrix is not None:
            sims = self.matrix @ query_vec
            best = np.full(len(self.texts), -1.0, dtype=np.float32)
            np.maximum.at(best, self.rows, sims)
            return {i: float(v) for i, v in enumerate(best) if v > -1.0}
        out: dict[int, float] = {}
        for i in entries:
            if self.texts[i]:
                vecs = embeddings.embed_passages(self.texts[i])
                out[i] = float(max(float(v @ query_vec) for v in vecs))
        return out

    def candidates(
        self, query: str, shortlist: list[tuple[int, tuple[float, float, str]]]
    ) -> list[tuple[int, tuple[float, ...], float]]:
        """(entry index, features, similarity) of the word shortlist plus the best by meaning."""
        qv = embeddings.embed_query(query)
        lexical = dict(shortlist)
        sims = self.similarities(qv, list(lexical))
        if not sims:
            return []
        by_meaning = sorted(sims, key=lambda i: -sims[i])[: self.SEMANTIC_SHORTLIST]
        top_sims = [*sorted(sims.values(), reverse=True)[:2], 0.0]
        sums = [*sorted((q + d for q, d, _ in lexical.values()), reverse=True)[:2], 0.0, 0.0]
        out: list[tuple[int, tuple[float, ...], float]] = []
        for i in dict.fromkeys([*lexical, *by_meaning]):
            q_cov, d_cov, _ = lexical.get(i, (0.0, 0.0, ""))
            sim = sims.get(i, 0.0)
            other_sim = top_sims[1] if sim >= top_sims[0] else top_sims[0]
            lex_sum = q_cov + d_cov
            other_sum = sums[1] if lex_sum >= sums[0] else sums[0]
            x = semantic_features(q_cov, d_cov, lex_sum - other_sum, sim, sim - other_sim)
            out.append((i, x, sim))
        return out

    def rank(
        self, query: str, shortlist: list[tuple[int, tuple[float, float, str]]], k: int
    ) -> list[Match]:
        """Candidates by the larger of their word/sound and their meaning confidence.

        Meaning only adds evidence: an entry words and sounds already answer keeps that
        confidence (a recogniser's homophones garble the embedding more than the pinyin).
        """
        by_words = {
            i: m.confidence
            for (i, _), m in zip(
                shortlist, self.retriever._lexical_matches(shortlist, len(shortlist)), strict=True
            )
        }
        scored = []
        for i, x, sim in self.candidates(query, shortlist):
            meaning = 1.0 / (1.0 + math.exp(-semantic_score(x)))
            scored.append((max(meaning, by_words.get(i, 0.0)), i, x, sim))
        if not scored:
            return self.retriever._lexical_matches(shortlist, k)
        scored.sort(key=lambda item: -item[0])
        lexical = dict(shortlist)
        out: list[Match] = []
        for conf, i, x, sim in scored[:k]:
            phrasing = lexical[i][2] if i in lexical else self.retriever.kb.entries[i].question
            out.append(Match(self.retriever.kb.entries[i], conf, x[0], x[1], phrasing, sim))
        return out


def semantic_features(
    q_cov: float, d_cov: float, lex_margin: float, sim: float, sim_margin: float
) -> tuple[float, ...]:
    # e5 cosine similarities of short Chinese sentences lie in about 0.8-1.0: centre and
    # scale them so that the fitted weights are of the same order as the coverages'.
    return (q_cov, d_cov, lex_margin, (sim - 0.9) * 10.0, sim_margin * 10.0)


def semantic_score(x: tuple[float, ...], weights: tuple[float, ...] | None = None) -> float:
    w = weights or SEMANTIC_CALIBRATION
    return sum(a * b for a, b in zip(w[:-1], x, strict=True)) + w[-1]


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
