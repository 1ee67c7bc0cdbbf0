"""What a caller wants: the request type, and for consultations the knowledge-base entry.

The learned model (``bot.understanding``) reads the sentence; a few rules stay where a
rule is the right tool. Order of decisions (first that applies wins):

1. danger to life (``bot.safety``: model or cue)          -> emergency (or ask, if unsure)
2. asks for a person (人工, 真人 ...), by cue or model    -> human
3. the caller names a work-order type (我要投诉 ...)       -> that type
   (not in a how/where question: 工资不发到哪里投诉 is a consultation)
4. the model's most probable label:
   a knowledge-base entry: answered at ``bands.answer`` or above, confirmed first
   (「您是想问……吗？」) between ``bands.confirm`` and it, not answered below;
   a work-order type, ``abusive`` or ``unknown``: that label.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.kb import Entry, KnowledgeBase
from bot.lexicon import WORK_ORDER_TYPES, Lexicon
from bot.retrieval import Match
from bot.safety import Danger, Level, SafetyCheck
from bot.text import Prepared
from bot.understanding import Prediction, Understanding

ANSWER = "answer"
SHORT_TEXT = 4
CONFIRM = "confirm"
# A matter goes to the department of its closest knowledge-base entry only when that
# entry has most of the entries' probability (暖气不热 -> 供暖 0.69; 快递丢件 -> 0.30, no
# entry is about it, so an operator dispatches it).
TOPIC_MIN_SHARE = 0.6


@dataclass(slots=True)
class Intent:
    label: str  # a RequestType value, "unknown", or "emergency_check" (ask about danger)
    confidence: float
    match: Match | None = None  # the KB entry, when label == "consultation"
    candidates: list[Match] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    cue: str = ""  # the cue that decided, for logs and the handover reason
    question: bool = False
    band: str = ""  # for a consultation: "answer" (read out) or "confirm" (ask first)
    danger: Danger = Danger.GENERAL

    def closest_entry(self) -> Entry | None:
        """The knowledge-base entry the matter is clearly about, for a work order's topic
        and department when no topic keyword names one: the best candidate when it has
        most of the entries' probability together (暖气不热 is about 供暖 although the
        caller asks nothing); None when no entry clearly stands out."""
        total = sum(match.confidence for match in self.candidates)
        if not self.candidates or total <= 0:
            return None
        best = self.candidates[0]  # ranked, best first
        return best.entry if best.confidence / total >= TOPIC_MIN_SHARE else None

    @property
    def eval_label(self) -> str:
        """The label used by ``hotline bot eval`` (``kb:<id>`` for an answered consultation)."""
        if self.label == "consultation" and self.match is not None:
            return f"kb:{self.match.entry.id}"
        if self.label == "emergency_check":
            return "emergency"  # the caller is asked, and yes hands over at once
        return self.label


class Classifier:
    def __init__(self, lexicon: Lexicon, kb: KnowledgeBase, model: Understanding) -> None:
        self.lexicon = lexicon
        self.kb = kb
        self.model = model
        self.safety = SafetyCheck(lexicon, model.bands)

    def classify(self, text: str, exclude: Iterable[str] = (), ask: bool = True) -> Intent:
        """``exclude``: entry ids the caller has just said they did not mean; ``ask``:
        False when the caller answers one of the bot's questions (a place, a time) or has
        already said that no life is in danger."""
        p = Prepared.of(text)
        if not p.text:
            return Intent("unknown", 0.0)
        prediction = self.model.predict(text)
        return self.decide(p, prediction, exclude, ask)

    def decide(
        self, p: Prepared, prediction: Prediction, exclude: Iterable[str] = (), ask: bool = True
    ) -> Intent:
        lx = self.lexicon
        bands = self.model.bands
        candidates = self._candidates(prediction, exclude)
        top = candidates[0] if candidates else None
        question = p.any(lx.question_markers) is not None
        scores = {label: round(prob, 4) for label, prob in prediction.ranked}
        kb_sure = top is not None and top.confidence >= bands.answer
        verdict = self.safety.check(p, prediction, kb_answers_it=kb_sure, open_request=ask)
        if verdict.level is Level.ACT:
            return Intent("emergency", 1.0, cue=verdict.cue, candidates=candidates,
                          scores=scores, danger=verdict.danger)  # fmt: skip
        cue = p.any(lx.human)
        if cue is not None or prediction.label == "human":
            return Intent("human", 1.0, cue=cue.text if cue else "model", scores=scores)
        if verdict.level is Level.ASK:
            return Intent("emergency_check", verdict.probability, candidates=candidates,
                          scores=scores, danger=verdict.danger, cue="model")  # fmt: skip
        named = self._named_type(p)
        if named:
            return Intent(named, 1.0, None, candidates, scores, cue="named", question=question)
        # Danger was weighed above; what else the caller wants is the best other label.
        label, prob = next(
            ((name, q) for name, q in prediction.ranked if name != "emergency"), ("unknown", 0.0)
        )
        # An entry is offered only when it is the most probable label: with "unknown"
        # on top, 「您是想问……吗？」 about the runner-up was wrong more often than not
        # (5-fold cross-validation: accuracy 0.874 against 0.868).
        if label.startswith("kb:") and label[3:] not in set(exclude):
            if top is not None and top.confidence >= bands.confirm:
                # Four characters or fewer (补贴的事) name a topic, not a question: the
                # model is sure of a topic it cannot be sure of, so the caller confirms.
                sure = top.confidence >= bands.answer and len(p.text) > SHORT_TEXT
                band = ANSWER if sure else CONFIRM
                return Intent("consultation", top.confidence, top, candidates, scores,
                              question=question, band=band)  # fmt: skip
            return Intent("unknown", prob, None, candidates, scores, question=question)
        return Intent(label, prob, None, candidates, scores, question=question)

    def _named_type(self, p: Prepared) -> str:
        """A type the caller names (我要投诉), unless it is a how/where question."""
        if p.any(self.lexicon.consult_markers) is not None:
            return ""
        for kind in WORK_ORDER_TYPES:
            if p.any(self.lexicon.explicit.get(kind, ())) is not None:
                return kind
        return ""

    def _candidates(self, prediction: Prediction, exclude: Iterable[str]) -> list[Match]:
        skip = set(exclude)
        out: list[Match] = []
        for label, prob in prediction.ranked:
            if not label.startswith("kb:") or label[3:] in skip:
                continue
            entry = self.kb.get(label[3:])
            if entry is not None:
                out.append(Match(entry, prob, 0.0, 0.0, entry.question))
        return out
