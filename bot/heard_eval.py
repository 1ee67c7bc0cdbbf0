"""What the bot does with what the recogniser heard: the first turn of a call, scored.

Cases are recorded (or written) n-best lists with the label the call should reach. The
outcome of the bot's first turn is one of: the label it acted on (``kb:<id>`` answered,
a work-order type taken down, ``human``, ``emergency`` handed over or asked about
(「现在有人有生命危险吗？」), ``abusive``), ``confirm:<label>`` (it asked 「您是说……吗？」
first: a yes gets that label) or ``unknown`` (not understood: asked to rephrase).

Scores: ``right`` (acted on the expected label), ``confirmed`` (asked to confirm exactly
it), ``wrong`` (acted on another label: the harm), ``unsure`` (everything else).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.brain import Brain
from bot.events import (
    CallStarted,
    CreateTicket,
    Decision,
    DialogueState,
    Hypothesis,
    Phase,
    Say,
    Transfer,
    Utterance,
    join_turns,
)
from hotline.draft import RequestType

_NOT_TAKING_DOWN = {Phase.MAIN, Phase.ANSWERED, Phase.REPHRASE, Phase.SUBMENU, Phase.ENDED}


@dataclass(frozen=True, slots=True)
class HeardCase:
    name: str
    expected: str
    hypotheses: tuple[Hypothesis, ...]
    confidence: float = 1.0


def load_heard_jsonl(path: str | Path) -> list[HeardCase]:
    """``{"heard": [[text, score], ...], "expected": label}`` one a line."""
    cases = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        hyps = tuple(Hypothesis(text, float(score)) for text, score in row["heard"])
        cases.append(HeardCase(f"line {number}", row["expected"], hyps, _confidence(hyps)))
    return cases


def load_recorded(path: str | Path, whole_clip: bool = False) -> list[HeardCase]:
    """A recorded Whisper fixture (``tests/bot/data/whisper-nbest-*.json``, or ``hotline
    clips record``): one case per clip, its first utterance; ``whole_clip``: all of its
    utterances joined as a call's turn taking joins a turn the caller went on with (a
    long request the recogniser cut at a pause is one turn on a call)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    cases = []
    for clip in data["clips"]:
        parts = [_utterance(u) for u in clip["utterances"]]
        if not parts:
            cases.append(HeardCase(clip["clip"], clip["expected"], ()))
            continue
        heard = parts[0]
        for then in parts[1:] if whole_clip else ():
            heard = join_turns(heard, then)
        cases.append(HeardCase(clip["clip"], clip["expected"], heard.hypotheses(),
                               heard.confidence))  # fmt: skip
    return cases


def _utterance(recorded: dict[str, Any]) -> Utterance:
    hyps = tuple(Hypothesis(text, float(score)) for text, score in recorded["alternatives"])
    return Utterance(recorded["text"], float(recorded["confidence"]), hyps)


def _confidence(hyps: tuple[Hypothesis, ...]) -> float:
    return min(1.0, math.exp(hyps[0].score)) if hyps else 0.0


def first_turn(brain: Brain, case: HeardCase, nbest: bool = True) -> str:
    """The outcome of the bot's first turn on this case (see the module doc)."""
    dialogue = brain.new_dialogue()
    dialogue.start(CallStarted())
    if not case.hypotheses:
        return "unknown"
    top = case.hypotheses[0]
    hyps = case.hypotheses if nbest else ()
    decision = dialogue.handle(Utterance(top.text, case.confidence, hyps))
    return outcome_of(decision, dialogue)


def outcome_of(decision: Decision, dialogue: Any) -> str:
    for action in decision.actions:
        ticket = action.ticket if isinstance(action, Transfer | CreateTicket) else None
        if ticket is not None and ticket.type != RequestType.CONSULTATION:
            return str(ticket.type.value)
        if isinstance(action, Say):
            if action.prompt == "emergency_check":
                return "confirm:emergency"  # asked, and a yes hands over at once
            if action.prompt in ("abusive_warning", "abusive_end"):
                return "abusive"
            if action.prompt == "human_night":
                return "human"
    state = DialogueState(decision.state)
    if state and state.phase is Phase.CONFIRM:
        return f"confirm:kb:{state.detail}"
    if state and state.phase is Phase.ANSWERED and dialogue.s.last_entry:
        return f"kb:{dialogue.s.last_entry}"
    ticket = dialogue.ticket
    if ticket is not None and state and state.phase not in _NOT_TAKING_DOWN:
        return str(ticket.type.value)
    return "unknown"


def score(brain: Brain, cases: list[HeardCase], nbest: bool = True) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    per_label: dict[str, Counter[str]] = defaultdict(Counter)
    rows = []
    for case in cases:
        outcome = first_turn(brain, case, nbest)
        verdict = _verdict(case.expected, outcome)
        counts[verdict] += 1
        per_label[case.expected.split(":")[0]][verdict] += 1
        heard = case.hypotheses[0].text if case.hypotheses else ""
        rows.append({"case": case.name, "expected": case.expected, "outcome": outcome,
                     "verdict": verdict, "heard": heard})  # fmt: skip
    n = len(cases) or 1
    return {
        "cases": len(cases),
        "right": round(counts["right"] / n, 3),
        "right_or_confirmed": round((counts["right"] + counts["confirmed"]) / n, 3),
        "wrong": counts["wrong"],
        "unsure": counts["unsure"],
        "emergency_missed": sum(
            1
            for r in rows
            if r["expected"] == "emergency"
            and r["outcome"] not in ("emergency", "confirm:emergency")
        ),
        "per_label": {k: dict(v) for k, v in sorted(per_label.items())},
        "rows": rows,
    }


def _verdict(expected: str, outcome: str) -> str:
    if outcome == expected:
        return "right"
    if outcome == f"confirm:{expected}":
        return "confirmed"
    if outcome == "unknown" or outcome.startswith("confirm:"):
        return "unsure"
    return "wrong"
