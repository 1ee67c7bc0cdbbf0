"""The one entry point for calls and consoles: intake, screen pop, seat work, reconcile.

Order of writes: the SQL record first (it is the truth), then the Redis queue, then the
live event. A crash between them loses nothing: ``reconcile`` re-queues every ticket still
in intake that Redis does not hold, and acks queue entries whose ticket moved on.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import redis
from sqlalchemy import select

from hotline.draft import TicketDraft, Urgency, evidence_fields
from hotline.metrics import METRICS
from hotline.settings import Settings, TicketsSettings
from tickets import access
from tickets.accounts import Account, Role
from tickets.dialer import Dialer, DialerError
from tickets.models import UserRow
from tickets.queue import SeatQueue
from tickets.store import TicketStore
from tickets.ticket import (
    CallbackOutcome,
    Holding,
    InvalidTransition,
    Satisfaction,
    Status,
    Ticket,
    TicketEdit,
    TicketError,
)

log = logging.getLogger(__name__)

POP_TTL_S = 120  # a console that (re)connects within this time still gets the pop


def _holding(ticket: Ticket) -> Holding:
    return Holding(ticket.assigned_to, ticket.seat, ticket.skill)


def pop_channel(prefix: str, seat: str) -> str:
    return f"{prefix}:seat:{seat}"


def pop_key(prefix: str, seat: str) -> str:
    return f"{prefix}:pop:{seat}"


@dataclass
class ReconcileReport:
    requeued: list[str]
    acked: list[str]
    returned: list[str]


class TicketService:
    """Seat work takes the console user's ``Account`` and is refused (TicketForbidden)
    on tickets that user may not work on: see ``tickets.access``."""

    def __init__(
        self,
        store: TicketStore,
        queue: SeatQueue,
        dialer: Dialer | None = None,
        departments: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.dialer = dialer
        # The units a ticket may be dispatched to (settings.tickets.departments).
        self.departments = list(
            TicketsSettings().departments  # type: ignore[call-arg]
            if departments is None
            else departments
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, redis_url: str | None = None, dialer: Dialer | None = None
    ) -> TicketService:
        cfg = settings.tickets
        store = TicketStore.from_settings(settings)
        queue = SeatQueue(
            redis.Redis.from_url(redis_url or cfg.redis_url, decode_responses=True),
            cfg.skills,
            prefix=cfg.key_prefix,
            claim_idle_s=cfg.claim_idle_s,
        )
        return cls(store, queue, dialer, cfg.departments)

    # ---- the call side ----

    def intake(
        self,
        draft: TicketDraft,
        *,
        skill: str = "general",
        callback_promised: bool | None = None,
        actor: str = "bot",
    ) -> Ticket:
        """Record a work order from the bot's draft and queue it for the seats of ``skill``."""
        if skill not in self.queue.skills:
            log.warning("unknown skill %r: queued on %r", skill, self.queue.skills[0])
            skill = self.queue.skills[0]
        ticket = self.store.create_from_draft(
            draft, skill=skill, actor=actor, callback_promised=callback_promised
        )
        self._enqueue(ticket)
        METRICS.ticket_created(ticket.type)
        return ticket

    def _enqueue(self, ticket: Ticket) -> None:
        try:
            self.queue.enqueue(ticket.number, ticket.skill, urgent=ticket.urgency != Urgency.NORMAL)
        except redis.RedisError:
            # The record is safe in SQL; reconcile queues it once Redis is back.
            log.exception("ticket %s recorded but not queued (Redis down)", ticket.number)

    def screen_pop(
        self,
        ticket_number: str,
        seat: str,
        account: Account | None = None,
        *,
        requested_by: Account | None = None,
    ) -> None:
        """A call carrying ``ticket_number`` reached ``seat``: hand it over and pop it up.

        ``seat`` is the operator's extension (or user name); the operator logged in there
        becomes the ticket's owner. ``requested_by`` is the console user who asked over the
        API, held to ``tickets.access.check_may_pop``; None is the call controller in this
        process, which connected the call and is trusted.
        """
        guard = None
        if requested_by is not None:
            access.check_may_pop(requested_by, seat, self._holding(ticket_number))
            guard = partial(access.check_may_pop, requested_by, seat)
        self.queue.take_over(seat, ticket_number)
        username = account.username if account else self._user_at_seat(seat)
        actor = requested_by.username if requested_by else f"seat:{seat}"
        self.store.assign(ticket_number, username, seat, actor=actor, guard=guard)
        event = json.dumps(
            {"type": "pop", "ticket": ticket_number, "seat": seat, "sent_ms": time.time() * 1000}
        )
        pipe = self.queue.redis.pipeline(transaction=False)
        pipe.publish(pop_channel(self.queue.prefix, seat), event)
        pipe.set(pop_key(self.queue.prefix, seat), event, ex=POP_TTL_S)
        pipe.execute()

    def seat_for_phone(self, endpoint: str) -> str:
        """The seat id (``Account.seat``) of the operator whose phone is PJSIP endpoint
        ``endpoint`` (``seat-101``): the account whose seat is that name, else, for accounts
        made with the old ``--extension 101``, the one whose extension is its trailing
        number; else the endpoint name itself."""
        digits = re.search(r"(\d+)$", endpoint)
        names = [endpoint, digits.group(1)] if digits else [endpoint]
        with self.store.reading() as session:
            rows = session.execute(
                select(UserRow.extension, UserRow.username).where(UserRow.extension.in_(names))
            ).all()
        found = {row.extension: row.extension or row.username for row in rows}
        return next((found[name] for name in names if name in found), endpoint)

    def _user_at_seat(self, seat: str) -> str | None:
        with self.store.reading() as session:
            return session.scalar(
                select(UserRow.username)
                .where((UserRow.extension == seat) | (UserRow.username == seat))
                .order_by(UserRow.extension.desc())
                .limit(1)
            )

    def pending_pop(self, seat: str) -> dict[str, object] | None:
        raw = self.queue.redis.get(pop_key(self.queue.prefix, seat))
        return json.loads(str(raw)) if raw else None

    def clear_pop(self, seat: str) -> None:
        self.queue.redis.delete(pop_key(self.queue.prefix, seat))

    # ---- the seat side ----

    def claim_next(self, account: Account) -> Ticket | None:
        """The next ticket of the operator's skills, recorded as theirs."""
        while True:
            entry = self.queue.claim(account.seat, account.skills or None)
            if entry is None:
                return None
            try:
                ticket = self.store.get(entry.ticket, with_history=False)
            except TicketError:
                log.error("queue held unknown ticket %s; dropped", entry.ticket)
                self.queue.ack(entry.ticket)
                continue
            if ticket.status != Status.INTAKE:
                self.queue.ack(entry.ticket)  # already handled elsewhere
                continue
            return self.store.assign(
                ticket.number, account.username, account.seat, actor=account.username
            )

    def keep_alive(self, account: Account) -> int:
        mine = [
            t.number
            for t in self.store.search(
                assigned_to=account.username, status=Status.INTAKE, limit=200
            )
        ]
        return self.queue.touch(account.seat, mine) if mine else 0

    def release(self, number: str, account: Account) -> Ticket:
        guard = access.guard_for(account)
        ticket = self.store.get(number, with_history=False)
        guard(_holding(ticket))  # before the queue is touched
        if ticket.status == Status.INTAKE:
            self.queue.release(number)
        return self.store.assign(number, None, None, actor=account.username, guard=guard)

    def reassign(self, number: str, username: str, account: Account) -> Ticket:
        """A 班长 hands a ticket to another person (e.g. its holder's shift ended)."""
        access.check_leads_shift(account, "改派工单")
        seat = self._seat_of(username)
        ticket = self.store.get(number, with_history=False)
        if not ticket.is_open:
            raise InvalidTransition(f"工单 {number} 已办结，不能改派")
        if ticket.status == Status.INTAKE:
            self.queue.take_over(seat, number)  # off the shared queue, held by that seat
        return self.store.assign(number, username, seat, actor=account.username)

    def _seat_of(self, username: str) -> str:
        """The seat of an active person who works tickets; TicketError when there is none."""
        with self.store.reading() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is None or not row.active or row.role == Role.SERVICE.value:
            raise TicketError(f"没有可接办工单的在岗用户 {username}")
        return row.extension or row.username

    def edit(self, number: str, changes: TicketEdit, account: Account) -> Ticket:
        return self.store.edit(number, changes, account.username, guard=access.guard_for(account))

    def dispatch(self, number: str, department: str, account: Account, note: str = "") -> Ticket:
        department = department.strip()
        if department and department not in self.departments:
            raise TicketError(f"「{department}」不是已配置的承办单位，请从承办单位列表中选择")
        ticket = self.store.dispatch(
            number, department, account.username, note, guard=access.guard_for(account)
        )
        self._done(number)
        return ticket

    def accept(self, number: str, account: Account, note: str = "") -> Ticket:
        """The department signed for the ticket (recorded by the seat working on it)."""
        return self.store.accept(number, account.username, note, guard=access.guard_for(account))

    def supervise(self, number: str, account: Account, note: str = "") -> Ticket:
        access.check_leads_shift(account, "督办")  # on anyone's ticket
        return self.store.supervise(number, account.username, note)

    def record_reply(self, number: str, reply: str, account: Account) -> Ticket:
        return self.store.record_reply(
            number, reply, account.username, guard=access.guard_for(account)
        )

    def close(
        self, number: str, satisfaction: Satisfaction, account: Account, note: str = ""
    ) -> Ticket:
        ticket = self.store.close(
            number, satisfaction, account.username, note, guard=access.guard_for(account)
        )
        self._done(number)
        return ticket

    def follow_up(self, number: str, result: str, account: Account) -> Ticket:
        ticket = self.store.follow_up(
            number, result, account.username, guard=access.guard_for(account)
        )
        self._done(number)
        return ticket

    def may_work_on(self, ticket: Ticket, account: Account) -> bool:
        return access.may_work_on(account, _holding(ticket))

    def _holding(self, number: str) -> Holding:
        return _holding(self.store.get(number, with_history=False))

    def call_back(self, number: str, account: Account) -> Ticket:
        """Click to call: ring the operator's seat, then the caller's callback number."""
        if self.dialer is None:
            raise DialerError("未配置外呼（console.dialer），无法点击呼叫")
        if not account.extension:
            raise DialerError(
                "您的账号没有座席话机（管理员用 hotline users add --seat 设置），无法外呼"
            )
        guard = access.guard_for(account)
        ticket = self.store.get(number, with_history=False)
        guard(_holding(ticket))  # before the phone rings
        target = ticket.caller.callback_number or ticket.caller.number
        if not target:
            raise DialerError("工单没有可回拨的号码")
        self.dialer.originate(account.extension, target, number)
        return self.store.note(
            number, f"回拨 {account.extension}", account.username, action="call_placed", guard=guard
        )

    def file_by_hand(
        self, draft: TicketDraft, account: Account, *, skill: str, callback_promised: bool
    ) -> Ticket:
        """新建工单: a person takes a call down that the bot did not (a direct line, a
        walk-in). It carries no call evidence (hotline.draft.EVIDENCE_FIELDS: a number a
        person types is the 回拨号码) and is held by its author, as a claimed ticket is."""
        if evidence_fields(draft):
            raise TicketError("人工登记的工单不能带通话证据（来电号码、转写、录音等）")
        if not draft.elements.what_happened.strip():
            raise TicketError("请填写事情经过")
        ticket = self.intake(
            draft, skill=skill, callback_promised=callback_promised, actor=account.username
        )
        try:
            self.queue.take_over(account.seat, ticket.number)
        except redis.RedisError:
            log.exception("ticket %s filed by hand but not taken off the queue", ticket.number)
        return self.store.assign(
            ticket.number, account.username, account.seat, actor=account.username
        )

    # ---- 回电 (callbacks promised at night or on a 留言) ----

    def callbacks_for(self, account: Account) -> list[Ticket]:
        """The 回电清单 of this account: promised, not yet reached, tickets they may work
        on (a 班长 sees all), oldest first."""
        due = self.store.callbacks_due()
        return [t for t in due if self.may_work_on(t, account)]

    def count_callbacks_for(self, account: Account) -> int:
        holdings = self.store.callbacks_due_holdings()
        return sum(1 for h in holdings if access.may_work_on(account, h))

    def record_callback(
        self, number: str, outcome: CallbackOutcome, note: str, account: Account
    ) -> Ticket:
        return self.store.record_callback(
            number, outcome, note, account.username, guard=access.guard_for(account)
        )

    def caller_history(self, number: str, limit: int = 5) -> list[Ticket]:
        return self.store.caller_history(number, limit)

    def _done(self, number: str) -> None:
        try:
            self.queue.ack(number)
        except redis.RedisError:
            log.exception("ticket %s handled but not acked (Redis down); reconcile will", number)

    # ---- recovery ----

    def reconcile(self) -> ReconcileReport:
        """Make Redis agree with the record: nothing waiting is missing, nothing done lingers."""
        returned = self.queue.return_abandoned()
        # Queue first, record second: a ticket created in between is then only re-queued
        # (idempotent), never acked by mistake.
        queued = self.queue.queued_tickets()
        waiting = self.store.waiting_numbers()
        requeued = []
        for number, skill, urgency in waiting:
            if number not in queued:
                lane = skill if skill in self.queue.skills else self.queue.skills[0]
                if self.queue.enqueue(number, lane, urgent=urgency != Urgency.NORMAL.value):
                    requeued.append(number)
        still_waiting = {number for number, _, _ in waiting}
        acked = [n for n in queued - still_waiting if self.queue.ack(n)]
        if requeued or acked or returned:
            log.warning(
                "reconcile: requeued %d, acked %d, returned %d",
                len(requeued),
                len(acked),
                len(returned),
            )
        return ReconcileReport(requeued, acked, returned)
