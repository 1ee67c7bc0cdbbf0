"""How much time a work order has left, and whether it reached a department in time.

Every open ticket is in one of three deadline states, computed from the store's clock:

- 正常 (``normal``);
- 即将超期 (``due_soon``, amber): less than ``tickets.due_soon_share`` of its whole time
  limit (created -> due) is left, or less than ``tickets.due_soon_hours`` hours;
- 已超期 (``overdue``, red): the due time has passed.

The dispatch rule (派单超时): a ticket must reach a department (转办) within
``tickets.dispatch_within_min`` minutes of its creation. It is broken by a ticket still in
受理 past that time, and by one whose first dispatch came later. Tickets closed or followed
up from 受理 (answered on the call) never needed a dispatch and are not counted; 0 turns
the rule off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class DeadlineState(StrEnum):
    NORMAL = "normal"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    CLOSED = "closed"


DEADLINE_LABELS = {
    DeadlineState.NORMAL: "正常",
    DeadlineState.DUE_SOON: "即将超期",
    DeadlineState.OVERDUE: "已超期",
    DeadlineState.CLOSED: "已办结",
}

# What the search and the overdue list filter on (the form's values).
FILTERS = {
    "overdue": "超期",
    "due_soon": "即将超期",
    "dispatch_late": "派单超时",
}


DISPATCHED_TYPES = ("complaint", "report", "help")  # must reach a department in time


@dataclass(frozen=True)
class DeadlineRules:
    due_soon_share: float = 0.2
    due_soon_hours: float = 4.0
    dispatch_within_min: int = 30

    def dispatch_late(
        self,
        created_at: datetime,
        status: str,
        dispatched_at: datetime | None,
        now: datetime,
        ticket_type: str = "complaint",
    ) -> bool:
        if not self.dispatch_within_min:
            return False
        limit = created_at + timedelta(minutes=self.dispatch_within_min)
        if dispatched_at is not None:
            return dispatched_at > limit
        # Waiting in 受理 breaks the rule only for the types a department must act on (the
        # ticket page's "须在 HH:MM 前转办"); a consultation may wait for its answer.
        return status == "intake" and ticket_type in DISPATCHED_TYPES and now > limit

    def state(
        self, created_at: datetime, due_at: datetime, closed: bool, now: datetime
    ) -> DeadlineState:
        if closed:
            return DeadlineState.CLOSED
        left = due_at - now
        if left.total_seconds() < 0:
            return DeadlineState.OVERDUE
        share = (due_at - created_at) * self.due_soon_share
        warn = max(share, timedelta(hours=self.due_soon_hours))
        return DeadlineState.DUE_SOON if left < warn else DeadlineState.NORMAL


@dataclass(frozen=True)
class Deadline:
    state: DeadlineState
    left: timedelta  # negative when overdue
    dispatch_late: bool

    @property
    def label(self) -> str:
        return DEADLINE_LABELS[self.state]

    @property
    def css(self) -> str:
        """The class of the countdown in console.css: dl-normal, dl-due_soon, dl-overdue."""
        return f"dl-{self.state.value}"

    @property
    def text(self) -> str:
        """剩余 X 天 Y 小时 / 已超期 Z 小时 (whole hours, rounded down)."""
        if self.state == DeadlineState.CLOSED:
            return "已办结"
        if self.left.total_seconds() < 0:
            hours = int(-self.left.total_seconds() // 3600)
            days, rest = divmod(hours, 24)
            return f"已超期 {days} 天 {rest} 小时" if days else f"已超期 {hours} 小时"
        hours = int(self.left.total_seconds() // 3600)
        days, rest = divmod(hours, 24)
        return f"剩余 {days} 天 {rest} 小时" if days else f"剩余 {rest} 小时"
