"""What the 班长's monitor shows: seats and their state, the queues, live bot calls and
today's figures, read fresh on each refresh (the page polls every few seconds).

Presence: a console with its live event stream open (``/events``) marks its seat online
in Redis for ``PRESENCE_TTL_S``, renewed on each of the stream's heartbeats; a console
closed without a word drops out when the mark expires. Live calls: the call controllers'
active list (``ivr.journal.ACTIVE``) and each call's journal (its first entry says when
it started and who called).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time
from enum import StrEnum
from zoneinfo import ZoneInfo

import redis

from ivr.journal import ACTIVE, STREAM
from manage.figures import Figures, FigureSet
from tickets.accounts import Account, Role
from tickets.queue import QueueEntry
from tickets.service import TicketService
from tickets.ticket import mask_phone

PRESENCE_TTL_S = 30
CALL_STALE_S = 60.0  # a controller beats every few seconds; older means it is gone


def presence_key(prefix: str, seat: str) -> str:
    return f"{prefix}:presence:{seat}"


class SeatState(StrEnum):
    OFFLINE = "offline"  # 离线
    IDLE = "idle"  # 空闲
    BUSY = "busy"  # 处理中: holds a work order taken from the queue


SEAT_STATE_LABELS = {SeatState.OFFLINE: "离线", SeatState.IDLE: "空闲", SeatState.BUSY: "处理中"}


@dataclass(frozen=True)
class SeatView:
    account: Account
    state: SeatState
    holding: list[str]  # work orders in 受理 its person holds
    open_tickets: int  # all its work orders not yet closed

    @property
    def state_label(self) -> str:
        return SEAT_STATE_LABELS[self.state]


@dataclass(frozen=True)
class QueueView:
    skill: str
    waiting: int
    urgent: int
    oldest_ms: int | None  # when the longest-waiting entry was queued


@dataclass(frozen=True)
class LiveCall:
    caller: str  # masked
    started: datetime | None
    node: str

    @property
    def seconds(self) -> int:
        return int((datetime.now(UTC) - self.started).total_seconds()) if self.started else 0


@dataclass(frozen=True)
class Monitor:
    seats: list[SeatView]
    queues: list[QueueView]
    calls: list[LiveCall]
    today: FigureSet
    deadlines: dict[str, int]
    at: datetime


def read_monitor(service: TicketService, accounts: list[Account], timezone: str) -> Monitor:
    client = service.queue.redis
    entries = service.queue.entries()
    return Monitor(
        seats=_seats(service, accounts),
        queues=_queues(service.queue.skills, entries),
        calls=_live_calls(client),
        today=_today(service, timezone),
        deadlines=service.store.deadline_counts(),
        at=datetime.now(UTC),
    )


def _seats(service: TicketService, accounts: list[Account]) -> list[SeatView]:
    staff = [a for a in accounts if a.active and a.role in (Role.OPERATOR, Role.MANAGER)]
    prefix, client = service.queue.prefix, service.queue.redis
    online = client.mget([presence_key(prefix, a.seat) for a in staff]) if staff else []
    work = service.store.open_work_by_assignee()  # the record, not the queue: it is the truth
    views = []
    for account, present in zip(staff, online, strict=True):
        holding, open_count = work.get(account.username, ([], 0))
        state = SeatState.OFFLINE
        if present:
            state = SeatState.BUSY if holding else SeatState.IDLE
        views.append(SeatView(account, state, holding, open_count))
    order = {SeatState.BUSY: 0, SeatState.IDLE: 1, SeatState.OFFLINE: 2}
    return sorted(views, key=lambda v: (order[v.state], v.account.seat))


def _queues(skills: tuple[str, ...], entries: list[QueueEntry]) -> list[QueueView]:
    views = []
    for skill in skills:
        waiting = [e for e in entries if e.skill == skill and e.seat is None]
        oldest = min((e.enqueued_ms for e in waiting), default=None)
        views.append(QueueView(skill, len(waiting), sum(e.urgent for e in waiting), oldest))
    return views


def _live_calls(client: redis.Redis) -> list[LiveCall]:
    calls = []
    now = time.time()
    active: dict[str, str] = client.hgetall(ACTIVE)  # type: ignore[assignment]
    for call_id, raw in active.items():
        try:
            beat = json.loads(raw)
        except ValueError:
            continue
        if now - float(beat.get("beat", 0)) > CALL_STALE_S:
            continue  # a controller that died; its orphan recovery files the call
        first: list[tuple[str, dict[str, str]]] = client.xrange(  # type: ignore[assignment]
            STREAM.format(call_id), count=1
        )
        caller, started = "", None
        if first:
            fields = first[0][1]
            data = json.loads(fields.get("data", "{}"))
            caller = mask_phone(str(data.get("caller", "")))
            started = datetime.fromtimestamp(float(fields.get("at", now)), UTC)
        calls.append(LiveCall(caller, started, str(beat.get("node", ""))))
    return sorted(calls, key=lambda c: c.started or datetime.now(UTC))


def _today(service: TicketService, timezone: str) -> FigureSet:
    zone = ZoneInfo(timezone)
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(zone).date(), clock_time(0), zone)
    return Figures(service.store, timezone).compute(midnight.astimezone(UTC), now)
