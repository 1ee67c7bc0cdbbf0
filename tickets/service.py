"""The one entry point for calls and consoles: intake, screen pop, seat work, reconcile.

Order of writes: the SQL record first (it is the truth), then the Redis queue, then the
live event. A crash between them loses nothing: ``reconcile`` re-queues every ticket still
in intake that Redis does not hold, and acks queue entries whose ticket moved on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import redis
from sqlalchemy import select

from hotline.metrics import METRICS
from hotline.settings import Settings
from tickets.accounts import Account
from tickets.dialer import Dialer, DialerError
from tickets.draft import TicketDraft, Urgency
from tickets.models import UserRow
from tickets.queue import SeatQueue
from tickets.store import TicketStore
from tickets.ticket import Satisfaction, Status, Ticket, TicketEdit, TicketError

log = logging.getLogger(__name__)

POP_TTL_S = 120  # a console that (re)connects within this time still gets the pop


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
    def __init__(self, store: TicketStore, queue: SeatQueue, dialer: Dialer | None = None) -> None:
        self.store = store
        self.queue = queue
        self.dialer = dialer

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
        return cls(store, queue, dialer)

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

    def screen_pop(self, ticket_number: str, seat: str, account: Account | None = None) -> None:
        """A call carrying ``ticket_number`` reached ``seat``: hand it over and pop it up.

        ``seat`` is the operator's extension (or user name); the operator logged in there
        becomes the ticket's owner.
        """
        self.queue.take_over(seat, ticket_number)
        username = account.username if account else self._user_at_seat(seat)
        self.store.assign(ticket_number, username, seat, actor=f"seat:{seat}")
        event = json.dumps(
            {"type": "pop", "ticket": ticket_number, "seat": seat, "sent_ms": time.time() * 1000}
        )
        pipe = self.queue.redis.pipeline(transaction=False)
        pipe.publish(pop_channel(self.queue.prefix, seat), event)
        pipe.set(pop_key(self.queue.prefix, seat), event, ex=POP_TTL_S)
        pipe.execute()

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
        ticket = self.store.get(number, with_history=False)
        if ticket.status == Status.INTAKE:
            self.queue.release(number)
        return self.store.assign(number, None, None, actor=account.username)

    def edit(self, number: str, changes: TicketEdit, account: Account) -> Ticket:
        return self.store.edit(number, changes, account.username)

    def dispatch(self, number: str, department: str, account: Account, note: str = "") -> Ticket:
        ticket = self.store.dispatch(number, department, account.username, note)
        self._done(number)
        return ticket

    def close(
        self, number: str, satisfaction: Satisfaction, account: Account, note: str = ""
    ) -> Ticket:
        ticket = self.store.close(number, satisfaction, account.username, note)
        self._done(number)
        return ticket

    def follow_up(self, number: str, result: str, account: Account) -> Ticket:
        ticket = self.store.follow_up(number, result, account.username)
        self._done(number)
        return ticket

    def call_back(self, number: str, account: Account) -> Ticket:
        """Click to call: ring the operator's seat, then the caller's callback number."""
        if self.dialer is None:
            raise DialerError("未配置外呼（console.dialer），无法点击呼叫")
        if not account.extension:
            raise DialerError("您的账号没有分机号，无法外呼")
        ticket = self.store.get(number, with_history=False)
        target = ticket.caller.callback_number or ticket.caller.number
        if not target:
            raise DialerError("工单没有可回拨的号码")
        self.dialer.originate(account.extension, target, number)
        return self.store.note(
            number, f"回拨 {account.extension}", account.username, action="call_placed"
        )

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
