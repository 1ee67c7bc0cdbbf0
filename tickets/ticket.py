"""The work order (工单) as the rest of the program sees it: statuses, the ticket, its history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from hotline.draft import (
    Caller,
    FiveElements,
    RequestType,
    TranscriptLine,
    Urgency,
    request_type_label,
)


class Status(StrEnum):
    INTAKE = "intake"  # 受理
    DISPATCHED = "dispatched"  # 转办
    IN_PROGRESS = "in_progress"  # 办理
    SUPERVISED = "supervised"  # 督办
    REPORTED = "reported"  # 反馈
    FOLLOW_UP = "follow_up"  # 回访
    CLOSED = "closed"  # 办结


STATUS_LABELS = {
    Status.INTAKE: "受理",
    Status.DISPATCHED: "转办",
    Status.IN_PROGRESS: "办理",
    Status.SUPERVISED: "督办",
    Status.REPORTED: "反馈",
    Status.FOLLOW_UP: "回访",
    Status.CLOSED: "办结",
}


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASICALLY = "basically"  # 基本满意
    DISSATISFIED = "dissatisfied"  # 不满意
    UNREACHED = "unreached"  # 回访未接通
    NOT_NEEDED = "not_needed"  # 无需回访 (answered on the call)


SATISFACTION_LABELS = {
    Satisfaction.SATISFIED: "满意",
    Satisfaction.BASICALLY: "基本满意",
    Satisfaction.DISSATISFIED: "不满意",
    Satisfaction.UNREACHED: "未接通",
    Satisfaction.NOT_NEEDED: "无需回访",
}

# Which statuses each workflow step may start from. Dispatch again after a reply the
# citizen was not satisfied with; close straight from intake when answered on the call.
TRANSITIONS: dict[str, tuple[set[Status], Status]] = {
    "dispatch": (
        {Status.INTAKE, Status.DISPATCHED, Status.REPORTED, Status.FOLLOW_UP},
        Status.DISPATCHED,
    ),
    "accept": ({Status.DISPATCHED, Status.SUPERVISED}, Status.IN_PROGRESS),
    "supervise": ({Status.DISPATCHED, Status.IN_PROGRESS, Status.SUPERVISED}, Status.SUPERVISED),
    "reply": ({Status.DISPATCHED, Status.IN_PROGRESS, Status.SUPERVISED}, Status.REPORTED),
    "follow_up": ({Status.REPORTED, Status.FOLLOW_UP, Status.INTAKE}, Status.FOLLOW_UP),
    "close": ({Status.INTAKE, Status.REPORTED, Status.FOLLOW_UP}, Status.CLOSED),
}


class TicketError(Exception):
    """A ticket operation that cannot be done; the message says why (shown to the user)."""


class TicketNotFound(TicketError):
    pass


class InvalidTransition(TicketError):
    pass


class TicketForbidden(TicketError):
    """The ticket is someone else's to work on (the API answers 403)."""


@dataclass(frozen=True)
class Holding:
    """Who holds a ticket, read inside the transaction that changes it."""

    assigned_to: str | None
    seat: str | None
    skill: str


# Checked by the store under the row lock, so nobody takes the ticket between the check
# and the change; raises TicketForbidden to refuse.
Guard = Callable[[Holding], None]


class HistoryEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str = ""
    to_status: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class Ticket(BaseModel):
    number: str
    status: Status
    created_at: datetime
    updated_at: datetime
    due_at: datetime
    type: RequestType
    topic: str = ""
    department: str = ""
    urgency: Urgency = Urgency.NORMAL
    skill: str = "general"
    caller: Caller = Field(default_factory=Caller)
    elements: FiveElements = Field(default_factory=FiveElements)
    summary: str = ""
    handover_reason: str = ""
    kb_answers: list[str] = Field(default_factory=list)
    caller_words: list[str] = Field(default_factory=list)
    call_id: str = ""
    call_started_at: datetime | None = None
    call_ended_at: datetime | None = None
    menu_path: list[str] = Field(default_factory=list)
    dtmf: str = ""
    transcript: list[TranscriptLine] = Field(default_factory=list)
    recording_path: str = ""
    callback_promised: bool = False
    called_back: bool = False  # a 回电 was recorded as reached (action "callback_reached")
    assigned_to: str | None = None
    seat: str | None = None
    duplicate_of: str | None = None
    duplicates: list[str] = Field(default_factory=list)  # open tickets linked to this one
    department_reply: str = ""
    follow_up_result: str = ""
    satisfaction: str = ""
    closed_at: datetime | None = None
    dispatched_at: datetime | None = None  # the first 转办 (the 30-minute dispatch rule)
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def type_label(self) -> str:
        return request_type_label(self.type)

    @property
    def is_open(self) -> bool:
        return self.status != Status.CLOSED

    @property
    def needs_callback(self) -> bool:
        """需回电: the caller was promised a call back (night, 留言) and nobody reached them."""
        return self.callback_promised and not self.called_back and self.is_open


class TicketEdit(BaseModel):
    """Fields an operator may correct before dispatch; None leaves a field as it is."""

    type: RequestType | None = None
    topic: str | None = Field(None, max_length=100)
    department: str | None = Field(None, max_length=100)
    urgency: Urgency | None = None
    skill: str | None = Field(None, max_length=40)
    summary: str | None = Field(None, max_length=5000)
    caller_name: str | None = Field(None, max_length=80)
    callback_number: str | None = Field(None, max_length=40)
    confidential: bool | None = None
    where: str | None = Field(None, max_length=500)
    when: str | None = Field(None, max_length=200)
    who_what: str | None = Field(None, max_length=500)
    what_happened: str | None = Field(None, max_length=5000)
    caller_wants: str | None = Field(None, max_length=2000)


class CallbackOutcome(StrEnum):
    """The result of one 回电 attempt; only REACHED takes the ticket off the 回电清单."""

    REACHED = "reached"  # 已回电
    UNREACHED = "unreached"  # 未接通
    WRONG_NUMBER = "wrong_number"  # 号码错误


CALLBACK_OUTCOME_LABELS = {
    CallbackOutcome.REACHED: "已回电",
    CallbackOutcome.UNREACHED: "未接通",
    CallbackOutcome.WRONG_NUMBER: "号码错误",
}


def callback_action(outcome: CallbackOutcome) -> str:
    """The history action an outcome is recorded under (``callback_reached`` ...)."""
    return f"callback_{outcome.value}"


def mask_phone(number: str) -> str:
    """13812345678 -> 138****5678: caller numbers are personal data, never logged whole."""
    if len(number) <= 4:
        return "*" * len(number)
    keep_head = 3 if len(number) >= 8 else 1
    return number[:keep_head] + "*" * (len(number) - keep_head - 4) + number[-4:]
