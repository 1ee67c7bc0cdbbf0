"""The contract between a call session (ivr/) and the dialogue policy (bot/).

The session turns what happens on the line into events and carries out the actions the
bot returns, in order. Prompts are named (``prompt`` ids a manager can record or
re-render) or free text (knowledge-base answers); the session renders and plays them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from hotline.draft import TicketDraft

# ---- events: session -> bot ----


@dataclass(frozen=True, slots=True)
class CallStarted:
    caller_number: str = ""
    seats_available: bool = True  # False at night: no operator logged in


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One of the recogniser's hypotheses (its n-best) for what the caller said."""

    text: str
    score: float = 0.0  # log-probability per token: higher is likelier


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    confidence: float = 1.0
    # The recogniser's n-best, best first (the first is ``text``); empty: ``text`` only.
    alternatives: tuple[Hypothesis, ...] = ()

    def hypotheses(self) -> tuple[Hypothesis, ...]:
        if self.alternatives:
            return self.alternatives
        return (Hypothesis(self.text, math.log(max(self.confidence, 1e-6))),)


_SENTENCE_ENDS = "。．.！!？?… 　"  # a recogniser ends almost every cut with one


def join_turns(first: Utterance, then: Utterance) -> Utterance:
    """One utterance of a turn the caller went on with after a pause (the call's turn
    taking joins them; ``bot.heard_eval`` joins a recorded clip's finals the same way)."""
    weight = len(first.text) + len(then.text) or 1
    confidence = (first.confidence * len(first.text) + then.confidence * len(then.text)) / weight
    head = first.text.rstrip(_SENTENCE_ENDS) + "，"
    # The first part was decided; the n-best of the part that followed carries on.
    # Scores are per token: rescaled so each hypothesis keeps its sequence probability.
    alternatives = tuple(
        Hypothesis(head + h.text, h.score * len(h.text) / len(head + h.text))
        for h in then.alternatives
    )
    return Utterance(head + then.text, confidence, alternatives)


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str  # one of 0-9 * #


@dataclass(frozen=True, slots=True)
class SilenceTimeout:
    pass


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller spoke over a prompt (the session already stopped playing it)."""


@dataclass(frozen=True, slots=True)
class CallEnded:
    pass


@dataclass(frozen=True, slots=True)
class TicketStatus:
    """What a caller may hear about an earlier work order (no personal data in it)."""

    number: str
    status: str  # spoken status, e.g. 已转交市城市管理局办理
    department: str = ""


class TicketLookup(Protocol):
    """The ticket store as the dialogue sees it: the session provides one (tickets/);
    the bot itself does no I/O."""

    def ticket_status(self, number: str) -> TicketStatus | None: ...


Event = CallStarted | Utterance | Dtmf | SilenceTimeout | BargeIn | CallEnded

# ---- actions: bot -> session ----


@dataclass(frozen=True, slots=True)
class Say:
    text: str
    prompt: str | None = None  # a named prompt id; text is its current wording
    barge_in: bool = True  # False for emergency advice the caller must hear
    slow: bool = False  # the caller asked to hear it again, more slowly


@dataclass(frozen=True, slots=True)
class Listen:
    hints: tuple[str, ...] = ()  # phrase hints for the recogniser
    timeout_s: float = 8.0
    dtmf_digits: int = 1  # keypad digits accepted as an answer


@dataclass(frozen=True, slots=True)
class CreateTicket:
    ticket: TicketDraft
    callback_promised: bool = False  # night mode: the morning shift calls back
    # What the session says once the ticket is filed (the ``ticket_created_night`` prompt a
    # manager edits); its ``{ticket_no}`` is filled by the session, which alone knows it.
    confirmation: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    queue: str  # skill queue name, e.g. "general"
    reason: str
    ticket: TicketDraft | None = None


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = "done"


Action = Say | Listen | CreateTicket | Transfer | HangUp


class Phase(StrEnum):
    """Where a call's dialogue is (bot/dialogue.py's docstring describes each)."""

    MAIN = "main"
    ANSWERED = "answered"
    REPHRASE = "rephrase"
    SUBMENU = "submenu"
    ASK = "ask"  # detail: the work-order element asked for
    WHERE = "where"  # detail: area or spot
    READBACK = "readback"
    CORRECT = "correct"
    FIX = "fix"  # detail: the element being corrected
    CONFIRM = "confirm"  # detail: the knowledge-base entry asked about
    CONTACT = "contact"  # detail: name, number or digits
    STATUS = "status"  # detail: number (asking for a work order's number)
    EMERGENCY_CHECK = "emergency_check"
    GOODBYE = "goodbye"
    ENDED = "ended"


class DialogueState(str):
    """A dialogue state: its phase and, for some, a detail (``ask:where``). A ``str`` in
    the form records and journals have always kept; read through ``phase`` and
    ``detail``, never by slicing."""

    __slots__ = ()

    @classmethod
    def of(cls, phase: Phase, detail: str = "") -> DialogueState:
        return cls(f"{phase.value}:{detail}" if detail else phase.value)

    @property
    def phase(self) -> Phase:
        return Phase(self.partition(":")[0])

    @property
    def detail(self) -> str:
        return self.partition(":")[2]


@dataclass(slots=True)
class Decision:
    """The bot's answer to one event."""

    actions: list[Action] = field(default_factory=list)
    state: str = ""  # the dialogue state after the event (a DialogueState), for the record
