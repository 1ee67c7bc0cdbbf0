"""The contract between a call session (ivr/) and the dialogue policy (bot/).

The session turns what happens on the line into events and carries out the actions the
bot returns, in order. Prompts are named (``prompt`` ids a manager can record or
re-render) or free text (knowledge-base answers); the session renders and plays them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hotline.draft import TicketDraft

# ---- events: session -> bot ----


@dataclass(frozen=True, slots=True)
class CallStarted:
    caller_number: str = ""
    seats_available: bool = True  # False at night: no operator logged in


@dataclass(frozen=True, slots=True)
class Utterance:
    text: str
    confidence: float = 1.0


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


@dataclass(slots=True)
class Decision:
    """The bot's answer to one event."""

    actions: list[Action] = field(default_factory=list)
    state: str = ""  # the dialogue state after the event, for logs and the call record
