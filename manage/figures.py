"""The figures managers are judged on, for a chosen period, from the SQL record.

Definitions (shown on the dashboard and in the report):

- calls: call records started in the period (``calls``).
- connect rate 15 s (接通率): share of calls the bot answered within 15 s of the offer.
- handled: ``bot`` (answered from the knowledge base, no person), ``person`` (transferred
  to a seat or a work order made), ``abandoned`` (neither).
- direct-answer rate (直接答复率): of calls not abandoned, the share settled without
  dispatch to a department: answered by the bot, or their work order closed without ever
  being dispatched (转办).
- satisfaction (满意率): of calls that rated the service (key 1-3), the share with 1 满意
  or 2 基本满意; follow-up satisfaction likewise over tickets closed in the period.
- tickets overdue: tickets open at the end of the period whose due time has passed;
  on-time completion (按时办结率): of tickets closed in the period, closed by their due time.
- dispatch-rule compliance (按时派单率): of tickets created in the period that the 30-minute
  rule applies to (dispatched, or still in 受理 past the limit at the period's end or now),
  the share first dispatched within ``tickets.dispatch_within_min`` of their creation
  (tickets.deadlines); tickets settled without dispatch are not counted. 派单超时 counts
  the others.
- average seat wait: mean ``seat_wait_s`` of transferred calls that report it; ticket
  queue wait: mean time from intake to the first seat assignment of tickets created in
  the period.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from manage.spreadsheet import escape_cell
from tickets.deadlines import DeadlineRules
from tickets.models import CallRow, CallTurnRow, TicketEventRow, TicketRow

CLOSED = "closed"
SATISFIED = ("satisfied", "basically")
RATED = ("satisfied", "basically", "dissatisfied")


def period_bounds(period: str, day: date | None, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local day, week (Monday first) or month holding ``day``."""
    zone = ZoneInfo(timezone)
    day = day or datetime.now(zone).date()
    if period == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
    else:
        first, last = day, day + timedelta(days=1)
    return (
        datetime.combine(first, time(), zone).astimezone(UTC),
        datetime.combine(last, time(), zone).astimezone(UTC),
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class FigureSet:
    start: datetime
    end: datetime
    timezone: str
    calls: int = 0
    per_hour: list[int] = field(default_factory=lambda: [0] * 24)
    per_day: dict[str, int] = field(default_factory=dict)
    by_type: list[tuple[str, int]] = field(default_factory=list)
    by_topic: list[tuple[str, int]] = field(default_factory=list)
    by_district: list[tuple[str, int]] = field(default_factory=list)
    handled: dict[str, int] = field(default_factory=dict)
    connect_rate_15s: float | None = None
    direct_answer_rate: float | None = None
    satisfaction: dict[int, int] = field(default_factory=dict)
    satisfaction_rate: float | None = None
    follow_up_satisfaction_rate: float | None = None
    tickets_created: int = 0
    tickets_closed: int = 0
    tickets_overdue: int = 0
    on_time_rate: float | None = None
    dispatch_late: int = 0
    dispatch_on_time_rate: float | None = None
    avg_seat_wait_s: float | None = None
    avg_ticket_wait_s: float | None = None
    kb_hits: list[tuple[str, int]] = field(default_factory=list)
    unanswered: list[tuple[str, int]] = field(default_factory=list)
    followed_by_human: list[tuple[str, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "connect_rate_15s": self.connect_rate_15s,
            "handled_bot": self.handled.get("bot", 0),
            "handled_person": self.handled.get("person", 0),
            "abandoned": self.handled.get("abandoned", 0),
            "direct_answer_rate": self.direct_answer_rate,
            "satisfaction_rate": self.satisfaction_rate,
            "follow_up_satisfaction_rate": self.follow_up_satisfaction_rate,
            "tickets_created": self.tickets_created,
            "tickets_closed": self.tickets_closed,
            "tickets_overdue": self.tickets_overdue,
            "on_time_rate": self.on_time_rate,
            "dispatch_late": self.dispatch_late,
            "dispatch_on_time_rate": self.dispatch_on_time_rate,
            "avg_seat_wait_s": self.avg_seat_wait_s,
            "avg_ticket_wait_s": self.avg_ticket_wait_s,
        }

    def rows(self) -> list[tuple[str, str, Any]]:
        out: list[tuple[str, str, Any]] = [("summary", k, v) for k, v in self.summary().items()]
        out += [("calls_per_hour", f"{h:02d}", n) for h, n in enumerate(self.per_hour)]
        out += [("calls_per_day", d, n) for d, n in sorted(self.per_day.items())]
        out += [("by_type", k, n) for k, n in self.by_type]
        out += [("by_topic", k, n) for k, n in self.by_topic]
        out += [("by_district", k, n) for k, n in self.by_district]
        out += [("satisfaction", str(k), n) for k, n in sorted(self.satisfaction.items())]
        out += [("kb_hits", k, n) for k, n in self.kb_hits]
        out += [("unanswered", k, n) for k, n in self.unanswered]
        out += [("followed_by_human", k, n) for k, n in self.followed_by_human]
        return out

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        zone = ZoneInfo(self.timezone)
        writer.writerow(["section", "key", "value"])
        writer.writerow(["period", "start", self.start.astimezone(zone).isoformat()])
        writer.writerow(["period", "end", self.end.astimezone(zone).isoformat()])
        for section, key, value in self.rows():
            # Keys include what callers said (unanswered questions): no formulas.
            cells = [section, key, "" if value is None else value]
            writer.writerow([escape_cell(cell) for cell in cells])
        return out.getvalue()


class Figures:
    def __init__(self, store: Any, timezone: str = "Asia/Shanghai") -> None:
        self.store = store
        self.timezone = timezone

    def compute(
        self, start: datetime, end: datetime, now: datetime | None = None, top: int = 15
    ) -> FigureSet:
        now = now or self.store.clock()  # the store's clock: tests move it
        f = FigureSet(start, end, self.timezone)
        in_period = (CallRow.started_at >= start) & (CallRow.started_at < end)
        with self.store.reading() as s:
            calls = s.execute(
                select(
                    CallRow.local_hour,
                    CallRow.local_day,
                    CallRow.type,
                    CallRow.topic,
                    CallRow.district,
                    CallRow.handled_by,
                    CallRow.answered_ms,
                    CallRow.satisfaction,
                    CallRow.seat_wait_s,
                    CallRow.ticket,
                ).where(in_period)
            ).all()
            f.calls = len(calls)
            for c in calls:
                f.per_hour[c.local_hour] += 1
                f.per_day[c.local_day] = f.per_day.get(c.local_day, 0) + 1
            f.by_type = Counter(c.type or "unknown" for c in calls).most_common()
            f.by_topic = Counter(c.topic or "（未分类）" for c in calls).most_common(top)
            f.by_district = Counter(c.district or "（未知）" for c in calls).most_common(top)
            f.handled = dict(Counter(c.handled_by for c in calls))
            f.connect_rate_15s = _rate(sum(1 for c in calls if c.answered_ms <= 15000), f.calls)
            f.satisfaction = dict(Counter(c.satisfaction for c in calls if c.satisfaction))
            rated = sum(f.satisfaction.values())
            f.satisfaction_rate = _rate(f.satisfaction.get(1, 0) + f.satisfaction.get(2, 0), rated)
            waits = [c.seat_wait_s for c in calls if c.seat_wait_s is not None]
            f.avg_seat_wait_s = round(sum(waits) / len(waits), 1) if waits else None
            f.direct_answer_rate = self._direct(s, calls)
            self._tickets(s, f, start, end, now)
            self._kb(s, f, start, end, top)
        return f

    def _direct(self, s: Any, calls: list[Any]) -> float | None:
        settled = [c for c in calls if c.handled_by != "abandoned"]
        numbers = [c.ticket for c in settled if c.handled_by == "person" and c.ticket]
        closed: set[str] = set()
        dispatched: set[str] = set()
        for chunk in range(0, len(numbers), 500):
            part = numbers[chunk : chunk + 500]
            closed |= set(
                s.scalars(
                    select(TicketRow.number).where(
                        TicketRow.number.in_(part), TicketRow.status == CLOSED
                    )
                ).all()
            )
            dispatched |= set(
                s.scalars(
                    select(TicketRow.number)
                    .join(TicketEventRow, TicketEventRow.ticket_id == TicketRow.id)
                    .where(TicketRow.number.in_(part), TicketEventRow.action == "dispatch")
                ).all()
            )
        direct = sum(
            1
            for c in settled
            if c.handled_by == "bot" or (c.ticket in closed and c.ticket not in dispatched)
        )
        return _rate(direct, len(settled))

    def _tickets(self, s: Any, f: FigureSet, start: datetime, end: datetime, now: datetime) -> None:
        f.tickets_created = int(
            s.scalar(
                select(func.count(TicketRow.id)).where(
                    TicketRow.created_at >= start, TicketRow.created_at < end
                )
            )
            or 0
        )
        cutoff = min(end, now)
        f.tickets_overdue = int(
            s.scalar(
                select(func.count(TicketRow.id)).where(
                    TicketRow.created_at < end,
                    TicketRow.due_at < cutoff,
                    (TicketRow.closed_at.is_(None)) | (TicketRow.closed_at >= cutoff),
                )
            )
            or 0
        )
        closed = s.execute(
            select(TicketRow.closed_at, TicketRow.due_at, TicketRow.satisfaction).where(
                TicketRow.closed_at >= start, TicketRow.closed_at < end
            )
        ).all()
        f.tickets_closed = len(closed)
        f.on_time_rate = _rate(sum(1 for c in closed if c.closed_at <= c.due_at), len(closed))
        rated = [c for c in closed if c.satisfaction in RATED]
        f.follow_up_satisfaction_rate = _rate(
            sum(1 for c in rated if c.satisfaction in SATISFIED), len(rated)
        )
        self._dispatch_rule(s, f, start, end, cutoff)
        first_assign = (
            select(TicketEventRow.ticket_id, func.min(TicketEventRow.at).label("at"))
            .where(TicketEventRow.action == "assigned")
            .group_by(TicketEventRow.ticket_id)
            .subquery()
        )
        waits = s.execute(
            select(TicketRow.created_at, first_assign.c.at)
            .join(first_assign, first_assign.c.ticket_id == TicketRow.id)
            .where(TicketRow.created_at >= start, TicketRow.created_at < end)
        ).all()
        values = [(_aware(at) - created).total_seconds() for created, at in waits]
        f.avg_ticket_wait_s = round(sum(values) / len(values), 1) if values else None

    def _dispatch_rule(
        self, s: Any, f: FigureSet, start: datetime, end: datetime, cutoff: datetime
    ) -> None:
        rules: DeadlineRules = getattr(self.store, "rules", DeadlineRules())
        if not rules.dispatch_within_min:
            return
        first_dispatch = (
            select(TicketEventRow.ticket_id, func.min(TicketEventRow.at).label("at"))
            .where(TicketEventRow.action == "dispatch")
            .group_by(TicketEventRow.ticket_id)
            .subquery()
        )
        rows = s.execute(
            select(TicketRow.created_at, TicketRow.status, first_dispatch.c.at, TicketRow.type)
            .outerjoin(first_dispatch, first_dispatch.c.ticket_id == TicketRow.id)
            .where(TicketRow.created_at >= start, TicketRow.created_at < end)
        ).all()
        late = kept = 0
        for created, status, dispatched, kind in rows:
            if dispatched is None and status != "intake":
                continue  # settled without dispatch (answered on the call)
            when = _aware(dispatched) if dispatched is not None else None
            if rules.dispatch_late(created, status, when, cutoff, kind):
                late += 1
            elif when is not None:
                kept += 1  # still in 受理 within the limit: not decided yet
        f.dispatch_late = late
        f.dispatch_on_time_rate = _rate(kept, kept + late)

    def _kb(self, s: Any, f: FigureSet, start: datetime, end: datetime, top: int) -> None:
        when = (CallTurnRow.started_at >= start) & (CallTurnRow.started_at < end)
        count = func.count(CallTurnRow.id)
        f.kb_hits = [
            (k, int(n))
            for k, n in s.execute(
                select(CallTurnRow.kb_id, count)
                .where(when, CallTurnRow.kb_id != "")
                .group_by(CallTurnRow.kb_id)
                .order_by(count.desc(), CallTurnRow.kb_id)
                .limit(top)
            ).all()
        ]
        f.unanswered = [
            (k, int(n))
            for k, n in s.execute(
                select(CallTurnRow.text, count)
                .where(when, CallTurnRow.unanswered.is_(True))
                .group_by(CallTurnRow.text)
                .order_by(count.desc(), CallTurnRow.text)
                .limit(top)
            ).all()
        ]
        f.followed_by_human = [
            (k, int(n))
            for k, n in s.execute(
                select(CallTurnRow.kb_id, count)
                .where(when, CallTurnRow.followed_by_human.is_(True))
                .group_by(CallTurnRow.kb_id)
                .order_by(count.desc(), CallTurnRow.kb_id)
                .limit(top)
            ).all()
        ]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
