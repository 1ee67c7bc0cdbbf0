"""What a caller wants: the request type, and for consultations the knowledge-base entry.

Order of decisions (first that applies wins), all driven by ``cues.yaml``:

1. emergency cues (fire, injury, violence ...)            -> emergency
2. asks for a person (人工, 真人 ...)                      -> human
3. abuse with no matter in it                             -> abusive
4. the caller names a work-order type (我要投诉 ...)       -> that type
   (not when it is a question: 工资不发到哪里投诉 is a consultation)
5. a knowledge-base match with high confidence (unless strong work-order cues
   in a statement: 物业乱收停车费 is a complaint)        -> consultation answered
6. work-order cues strong enough                          -> that type
7. a knowledge-base match above the threshold             -> consultation answered
8. an emergency cue deferred to the knowledge base that it does not answer -> emergency
9. weak work-order cues (non-question)                    -> that type
10. otherwise                                             -> consultation not answerable
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.lexicon import WORK_ORDER_TYPES, Lexicon
from bot.retrieval import Match, Retriever
from bot.text import Prepared

KB_THRESHOLD = 0.35  # below: never answer (ask to rephrase, then hand over)
KB_HIGH = 0.85  # above: answer even if some work-order cues are present
TYPE_STRONG = 2.0
TYPE_WEAK = 1.0
QUESTION_FACTOR = 0.7  # work-order cues count less in a question
EXPLICIT_SCORE = 3.0


@dataclass(slots=True)
class Intent:
    label: str  # a RequestType value, or "unknown" (consultation the KB cannot answer)
    confidence: float
    match: Match | None = None  # the KB entry, when label == "consultation"
    candidates: list[Match] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    cue: str = ""  # the cue that decided, for logs and the handover reason
    question: bool = False

    @property
    def eval_label(self) -> str:
        """The label used by ``hotline bot eval`` (``kb:<id>`` for an answered consultation)."""
        if self.label == "consultation" and self.match is not None:
            return f"kb:{self.match.entry.id}"
        return self.label


class Classifier:
    def __init__(self, lexicon: Lexicon, retriever: Retriever) -> None:
        self.lexicon = lexicon
        self.retriever = retriever

    def type_scores(self, p: Prepared, question: bool) -> tuple[dict[str, float], dict[str, str]]:
        scores: dict[str, float] = {}
        explicit: dict[str, str] = {}
        for kind in WORK_ORDER_TYPES:
            score = 0.0
            named = p.any(self.lexicon.explicit.get(kind, ()))
            if named is not None and p.any(self.lexicon.consult_markers) is None:
                explicit[kind] = named.text
                score += EXPLICIT_SCORE
            claimed = [False] * len(p.text)
            for phrase, weight in self.lexicon.cues.get(kind, []):
                span = p.find(phrase)
                if span is None or all(claimed[span[0] : span[1]]):
                    continue  # a shorter cue inside a longer one already counted
                for i in range(*span):
                    claimed[i] = True
                score += weight
            scores[kind] = score * (QUESTION_FACTOR if question else 1.0)
        return scores, explicit

    def classify(self, text: str) -> Intent:
        p = Prepared.of(text)
        if not p.text:
            return Intent("unknown", 0.0)
        lx = self.lexicon
        cue = p.any(lx.emergency)
        if cue is not None:
            return Intent("emergency", 1.0, cue=cue.text)
        cue = p.any(lx.human)
        if cue is not None:
            return Intent("human", 1.0, cue=cue.text)
        question = p.any(lx.question_markers) is not None
        scores, explicit = self.type_scores(p, question)
        cue = p.any(lx.abusive)
        if cue is not None and not explicit and max(scores.values(), default=0.0) < TYPE_STRONG:
            return Intent("abusive", 1.0, scores=scores, cue=cue.text)
        # A statement with strong work-order cues (楼下饭店油烟太大) is not worth the
        # sentence encoder's 20-40 ms: words decide whether the KB answers it anyway.
        strong_statement = not question and max(scores.values(), default=0.0) >= TYPE_STRONG
        matches = self.retriever.search(p, semantic=not strong_statement)
        top = matches[0] if matches else None
        kb_conf = top.confidence if top else 0.0
        best_type = max(scores, key=lambda k: scores[k]) if scores else ""
        best_score = scores.get(best_type, 0.0)

        def answered() -> Intent:
            return Intent("consultation", kb_conf, top, matches, scores, question=question)

        def work_order(cue_text: str = "") -> Intent:
            conf = min(1.0, best_score / (TYPE_STRONG * 2))
            return Intent(best_type, conf, None, matches, scores, cue=cue_text, question=question)

        if explicit:
            best_type = max(explicit, key=lambda k: scores[k])
            return work_order(explicit[best_type])
        if top is not None and kb_conf >= KB_HIGH and (question or best_score < TYPE_STRONG + 1):
            return answered()
        if best_score >= TYPE_STRONG:
            return work_order()
        if top is not None and kb_conf >= KB_THRESHOLD:
            return answered()
        deferred = p.any(lx.emergency_deferred)
        if deferred is not None:
            return Intent("emergency", 1.0, cue=deferred.text, candidates=matches)
        if best_score >= TYPE_WEAK and not question:
            return work_order()
        return Intent("unknown", 1.0 - kb_conf, None, matches, scores, question=question)
