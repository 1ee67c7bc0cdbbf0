"""Understanding every hypothesis the recogniser heard, and picking the best joint reading.

The recogniser hands over its n-best (``Utterance.alternatives``: text and log-probability
per token). Each hypothesis, and each hypothesis with the hotline's terms respelled by
sound (``bot.phonetic``), is a *reading*; understanding classifies every reading, and each
reading's joint score

    joint = recognition prior x understanding confidence

is summed per meaning (readings that agree add up). The bot acts on the most confident
reading of the meaning with the highest sum. The prior is the hypothesis's share of the
n-best's sequence probability, times a penalty for each respelling (the recogniser did
not write that word). A reading the model
cannot interpret (``unknown``) is worth ``UNKNOWN_MEANING``: a garbled first hypothesis
must not outweigh a second one that asks a clear question.

Doubt is said out loud (``Understood.doubt``): when the reading chosen means something
else than the recogniser's first hypothesis does, the bot confirms (「您是说低保吗？」)
instead of acting. Danger comes first: when any reading is an emergency the caller is
at least asked whether a life is in danger (``Understood.danger``); the bot hands over
without asking only when the recogniser's first hypothesis is itself sure of the danger.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.classifier import Intent
from bot.events import Hypothesis
from bot.phonetic import Kind, Respelling, TermSpeller

# Weight of a respelled reading's prior, by the kind of match (bot.phonetic).
RESPELL_PENALTY = {Kind.EXACT: 0.7, Kind.FUZZY: 0.5, Kind.NEAR: 0.3}
UNKNOWN_MEANING = 0.35  # what a reading the model cannot interpret is worth
MAX_HYPOTHESES = 4  # each reading costs one classification (~3 ms)
_DANGER = ("emergency", "emergency_check")


@dataclass(frozen=True, slots=True)
class Reading:
    text: str  # what understanding read (a hypothesis, perhaps respelled)
    heard: str  # the recogniser's hypothesis it came from
    rank: int  # that hypothesis's place in the n-best (0 = first)
    prior: float  # recognition share x respelling penalties
    intent: Intent
    respelled: tuple[Respelling, ...] = ()

    @property
    def meaning(self) -> float:
        if self.intent.label in ("unknown", "ask_again"):
            return UNKNOWN_MEANING
        return max(self.intent.confidence, UNKNOWN_MEANING)

    @property
    def joint(self) -> float:
        return self.prior * self.meaning

    def as_dict(self) -> dict[str, object]:
        """For the call record: what was read, how likely, what it meant."""
        respelled = [f"{r.heard}->{r.term} {r.kind.value}" for r in self.respelled]
        return {"text": self.text, "heard": self.heard, "prior": round(self.prior, 3),
                "label": self.intent.eval_label, "confidence": round(self.intent.confidence, 3),
                "joint": round(self.joint, 3), "respelled": respelled}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Doubt:
    """What the bot should confirm before acting on the chosen reading."""

    term: str  # the deciding word as the bot understood it (低保), or "" for the question
    heard: str  # what the recogniser wrote there (底宝), or its first hypothesis


@dataclass(frozen=True, slots=True)
class Understood:
    chosen: Reading
    readings: tuple[Reading, ...]
    doubt: Doubt | None = None
    danger: Reading | None = None  # a reading that is an emergency, when chosen is not

    @property
    def intent(self) -> Intent:
        return self.chosen.intent

    @property
    def text(self) -> str:
        return self.chosen.text

    @property
    def wording(self) -> Doubt | None:
        """What a confirm question should name: the doubt, else the respelled word the
        chosen reading turns on (「您是说低保吗？」 rather than a paraphrase of the entry)."""
        if self.doubt is not None:
            return self.doubt
        label = self.chosen.intent.eval_label
        for reading in (self.chosen, *self.readings):
            if reading.respelled and reading.intent.eval_label == label:
                return Doubt(reading.respelled[0].term, reading.respelled[0].heard)
        return None


def recognition_priors(hypotheses: Sequence[Hypothesis]) -> list[float]:
    """Each hypothesis's share of the n-best's probability.

    Scores are log-probabilities per token; a Chinese character is about one token, so
    score x characters approximates the sequence's log-probability."""
    logs = [h.score * max(1, len(h.text)) for h in hypotheses]
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = sum(weights)
    return [w / total for w in weights]


def understand(
    hypotheses: Sequence[Hypothesis],
    classify: Callable[[str], Intent],
    speller: TermSpeller | None,
) -> Understood:
    """Classify every reading of the n-best; pick the best joint one (see the module doc)."""
    hypotheses = [h for h in hypotheses if h.text.strip()][:MAX_HYPOTHESES]
    readings: list[Reading] = []
    seen: set[str] = set()
    priors = recognition_priors(hypotheses)
    for rank, (hyp, prior) in enumerate(zip(hypotheses, priors, strict=True)):
        if hyp.text not in seen:
            seen.add(hyp.text)
            readings.append(Reading(hyp.text, hyp.text, rank, prior, classify(hyp.text)))
        if speller is None:
            continue
        respelled, fixes = speller.respell(hyp.text)
        if fixes and respelled not in seen:
            seen.add(respelled)
            penalty = math.prod(RESPELL_PENALTY[f.kind] for f in fixes)
            readings.append(Reading(respelled, hyp.text, rank, prior * penalty,
                                    classify(respelled), fixes))  # fmt: skip
    first = readings[0]
    chosen = _choose(readings)
    if chosen.intent.label == "emergency" and chosen.rank > 0 and first.intent.label != "emergency":
        # Danger only a lesser hypothesis is sure of (钓鱼 heard, 跳河 second): asked
        # about at once rather than handed over on a guess; a yes hands over.
        calm = [r for r in readings if r.intent.label not in _DANGER]
        chosen = _choose(calm) if calm else first
    danger = None
    if chosen.intent.label not in _DANGER:
        danger = next((r for r in readings if r.intent.label in _DANGER), None)
    return Understood(chosen, tuple(readings), _doubt(first, chosen), danger)


def _choose(readings: list[Reading]) -> Reading:
    """The meaning with the most evidence, then its most confident reading.

    A meaning's evidence is the sum of its readings' joint scores (P(label) = sum over
    hypotheses of P(hypothesis) x P(label | hypothesis)), so hypotheses that agree add
    up. Within that meaning the bot acts on the reading understanding is surest of: when
    店提 -> 电梯 makes the entry certain that the first hypothesis only made likely, the
    answer is read out instead of a confirm question (both readings mean the same)."""
    evidence: dict[str, float] = {}
    for reading in readings:
        label = reading.intent.eval_label
        evidence[label] = evidence.get(label, 0.0) + reading.joint
    order = {r.intent.eval_label: -i for i, r in reversed(list(enumerate(readings)))}
    best = max(evidence, key=lambda label: (evidence[label], order[label]))
    same = [r for r in readings if r.intent.eval_label == best]
    return max(same, key=lambda r: (r.intent.confidence, r.joint, -r.rank))


def _doubt(first: Reading, chosen: Reading) -> Doubt | None:
    """The chosen reading means something else than what the recogniser wrote first."""
    if chosen is first or chosen.intent.eval_label == first.intent.eval_label:
        return None
    deciding = chosen.respelled[0] if chosen.respelled else None
    if deciding is not None:
        return Doubt(deciding.term, deciding.heard)
    return Doubt("", first.text)
