"""The ticket store: the SQL record of every work order and of who did what to it.

Every change goes through one transaction that also appends a history row, so the record
and its audit trail never disagree.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, exists, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hotline.draft import RequestType, TicketDraft, Urgency
from hotline.settings import Settings, TicketsSettings
from tickets.db import WRITE_OPTION, default_database_url, make_engine, migrate
from tickets.deadlines import Deadline, DeadlineRules, DeadlineState
from tickets.models import TicketCounterRow, TicketEventRow, TicketRow, UTCDateTime, utcnow
from tickets.ticket import (
    TRANSITIONS,
    CallbackOutcome,
    Guard,
    HistoryEntry,
    Holding,
    InvalidTransition,
    Satisfaction,
    Status,
    Ticket,
    TicketEdit,
    TicketError,
    TicketNotFound,
    callback_action,
    mask_phone,
)
from tickets.workdays import WorkCalendar

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def place_key(text: str) -> str:
    """Normalise a place for duplicate matching: width-folded, no spaces or punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\W_]+", "", folded)[:200]


class TicketStore:
    def __init__(
        self,
        engine: Engine,
        calendar: WorkCalendar,
        time_limits: dict[str, int],
        default_time_limit: int = 10,
        duplicate_window_days: int = 7,
        clock: Clock = utcnow,
        rules: DeadlineRules | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules or DeadlineRules()
        self.calendar = calendar
        self.time_limits = dict(time_limits)
        self.default_time_limit = default_time_limit
        self.duplicate_window = timedelta(days=duplicate_window_days)
        self.clock = clock
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # SQLite takes one writer at a time; threads of this process queue on a lock rather
        # than on SQLite's busy handler, which sleeps in steps of milliseconds.
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, run_migrations: bool = True) -> TicketStore:
        cfg = settings.tickets
        url = cfg.database_url or default_database_url(settings.data_dir)
        store = cls.from_url(url, cfg)
        if run_migrations:
            store.migrate()
        return store

    @classmethod
    def from_url(cls, url: str, cfg: TicketsSettings | None = None) -> TicketStore:
        cfg = cfg or TicketsSettings()  # type: ignore[call-arg]
        calendar = WorkCalendar.build(cfg.timezone, cfg.holidays, cfg.extra_workdays)
        return cls(
            make_engine(url),
            calendar,
            cfg.time_limits,
            cfg.default_time_limit,
            cfg.duplicate_window_days,
            rules=DeadlineRules(cfg.due_soon_share, cfg.due_soon_hours, cfg.dispatch_within_min),
        )

    def migrate(self) -> None:
        migrate(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self._write_lock, self._write.begin() as session:
            yield session

    def number_for_call(self, call_id: str) -> str | None:
        """The work order filed for a call, if any (one per call, see ``intake``)."""
        if not call_id:
            return None
        with self.engine.connect() as connection:
            return _number_for_call(connection, call_id)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    # ---- intake ----

    def time_limit(self, request_type: RequestType | str) -> int:
        key = request_type.value if isinstance(request_type, RequestType) else request_type
        return self.time_limits.get(key, self.default_time_limit)

    def create_from_draft(
        self,
        draft: TicketDraft,
        *,
        skill: str = "general",
        actor: str = "bot",
        callback_promised: bool | None = None,
    ) -> Ticket:
        """A new work order in status 受理, numbered, with its due date and first history row.

        Idempotent per call: a draft whose call already has a work order returns that one
        (a retry after a lost reply, a spooled draft, an orphan of a crashed controller)."""
        filed: Ticket | str | None
        try:
            filed = self._create(draft, skill, actor, callback_promised)
        except IntegrityError:  # another process filed the same call just now
            with self._write_engine.connect() as connection:
                filed = _number_for_call(connection, draft.call_id) if draft.call_id else None
            if filed is None:
                raise
        if isinstance(filed, Ticket):
            return filed
        log.info("call already filed as ticket %s: not filed again", filed)
        return self.get(filed)

    def _create(
        self, draft: TicketDraft, skill: str, actor: str, callback_promised: bool | None
    ) -> Ticket | str:
        """The new work order, or the number of the one this call already has."""
        now = self.clock()
        promised = draft.callback_promised if callback_promised is None else callback_promised
        due_at = self.calendar.due_at(now, self.time_limit(draft.type))
        # A bare connection, not an ORM session: intake is the hot path (hundreds a second).
        with self._write_lock, self._write_engine.begin() as connection:
            if draft.call_id and (filed := _number_for_call(connection, draft.call_id)):
                return filed
            number = self._next_number(connection, now)
            values: dict[str, Any] = {
                "number": number,
                "created_at": now,
                "updated_at": now,
                "status": Status.INTAKE.value,
                "type": draft.type.value,
                "topic": draft.topic,
                "department": draft.department,
                "urgency": draft.urgency.value,
                "skill": skill,
                "caller": draft.caller.model_dump(mode="json"),
                "elements": draft.elements.model_dump(mode="json"),
                "summary": draft.summary,
                "handover_reason": draft.handover_reason,
                "kb_answers": list(draft.kb_answers),
                "caller_words": list(draft.caller_words),
                "call_id": draft.call_id,
                "call_started_at": _aware(draft.started_at),
                "call_ended_at": _aware(draft.ended_at),
                "menu_path": list(draft.menu_path),
                "dtmf": draft.dtmf,
                "transcript": [line.model_dump(mode="json") for line in draft.transcript],
                "recording_path": draft.recording_path,
                "callback_promised": promised,
                "due_at": due_at,
                "assigned_to": None,
                "seat": None,
                "department_reply": "",
                "follow_up_result": "",
                "satisfaction": "",
                "closed_at": None,
            }
            values.update(_copies(values))
            values["duplicate_of"] = self._find_duplicate(connection, values, now)
            ticket_id = connection.execute(_INSERT_TICKET, values).scalar_one()
            detail: dict[str, Any] = {"skill": skill, "call_id": draft.call_id}
            duplicate_of = values["duplicate_of"]
            if duplicate_of:
                detail["duplicate_of"] = duplicate_of
            created = HistoryEntry(
                at=now,
                actor=actor,
                action="created",
                from_status="",
                to_status=Status.INTAKE.value,
                detail=detail,
            )
            self._insert_event(connection, ticket_id, created)
            if duplicate_of:
                original = connection.execute(
                    select(TicketRow.id, TicketRow.status).where(TicketRow.number == duplicate_of)
                ).one()
                self._insert_event(
                    connection,
                    original.id,
                    HistoryEntry(
                        at=now,
                        actor=actor,
                        action="duplicate_linked",
                        from_status=original.status,
                        to_status=original.status,
                        detail={"duplicate": number},
                    ),
                )
        ticket = Ticket(
            number=number,
            status=Status.INTAKE,
            created_at=now,
            updated_at=now,
            due_at=due_at,
            type=draft.type,
            topic=draft.topic,
            department=draft.department,
            urgency=draft.urgency,
            skill=skill,
            caller=draft.caller,
            elements=draft.elements,
            summary=draft.summary,
            handover_reason=draft.handover_reason,
            kb_answers=list(draft.kb_answers),
            caller_words=list(draft.caller_words),
            call_id=draft.call_id,
            call_started_at=values["call_started_at"],
            call_ended_at=values["call_ended_at"],
            menu_path=list(draft.menu_path),
            dtmf=draft.dtmf,
            transcript=list(draft.transcript),
            recording_path=draft.recording_path,
            callback_promised=promised,
            duplicate_of=duplicate_of,
            history=[created],
        )
        log.info(
            "ticket %s created (%s, caller %s)",
            number,
            draft.type.value,
            mask_phone(draft.caller.number),
        )
        return ticket

    def _next_number(self, connection: Connection, now: datetime) -> str:
        """Today's next number; an atomic upsert, safe with many writers on both backends."""
        day = self.calendar.local_date(now).strftime("%Y%m%d")
        statement = _NEXT_NUMBER[connection.dialect.name]
        last = connection.execute(statement, {"day": day}).scalar_one()
        return f"{day}-{last:04d}"

    def _find_duplicate(
        self, connection: Connection, values: dict[str, Any], now: datetime
    ) -> str | None:
        """The open ticket with the same topic at the same place within the window, if any."""
        if not values["topic"] or not values["place_key"]:
            return None
        found = connection.execute(
            _FIND_DUPLICATE,
            {
                "topic": values["topic"],
                "place_key": values["place_key"],
                "since": now - self.duplicate_window,
            },
        ).first()
        if found is None:
            return None
        return found.duplicate_of or found.number  # link to the first report, not a chain

    # ---- reading ----

    def get(self, number: str, *, with_history: bool = True) -> Ticket:
        with self.reading() as session:
            row = self._row(session, number)
            dispatched = session.scalar(select(_first_dispatch()).where(TicketRow.id == row.id))
            return self._to_ticket(session, row, with_history, dispatched)

    # ---- deadlines (tickets.deadlines) ----

    def deadline(self, ticket: Ticket, now: datetime | None = None) -> Deadline:
        """The ticket's deadline state and countdown by the store's clock."""
        now = now or self.clock()
        state = self.rules.state(ticket.created_at, ticket.due_at, not ticket.is_open, now)
        late = self.rules.dispatch_late(
            ticket.created_at, ticket.status.value, ticket.dispatched_at, now, ticket.type.value
        )
        return Deadline(state, ticket.due_at - now, late)

    def matches_deadline(self, ticket: Ticket, which: str, now: datetime) -> bool:
        """Whether ``ticket`` is in the filter ``which`` (see tickets.deadlines.FILTERS)."""
        found = self.deadline(ticket, now)
        if which == "overdue":
            return found.state == DeadlineState.OVERDUE
        if which == "due_soon":
            return found.state == DeadlineState.DUE_SOON
        if which == "dispatch_late":
            return found.dispatch_late and ticket.is_open
        return True

    def deadline_counts(self) -> dict[str, int]:
        """How many open tickets are in each filter: what a 班长's navigation shows."""
        now = self.clock()
        counts = dict.fromkeys(("overdue", "due_soon", "dispatch_late"), 0)
        query = select(
            TicketRow.created_at,
            TicketRow.due_at,
            TicketRow.status,
            _first_dispatch().label("dispatched_at"),
            TicketRow.type,
        ).where(TicketRow.status != Status.CLOSED.value)
        with self.reading() as session:
            for created, due, status, dispatched, kind in session.execute(query):
                state = self.rules.state(created, due, False, now)
                if state.value in counts:
                    counts[state.value] += 1
                if self.rules.dispatch_late(created, status, _aware(dispatched), now, kind):
                    counts["dispatch_late"] += 1
        return counts

    def history(self, number: str) -> list[HistoryEntry]:
        return self.get(number).history

    def exists(self, number: str) -> bool:
        with self.reading() as session:
            found = session.scalar(select(TicketRow.id).where(TicketRow.number == number))
            return found is not None

    def search(
        self,
        *,
        text: str = "",
        phone: str = "",
        number: str = "",
        status: Status | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        assigned_to: str | None = None,
        deadline: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> list[Ticket]:
        """Tickets matching every given criterion, newest first; with ``deadline`` (one of
        tickets.deadlines.FILTERS) open tickets in that state, most urgent first."""
        query = select(TicketRow, _first_dispatch().label("dispatched_at"))
        if text:
            for word in text.split()[:8]:
                query = query.where(TicketRow.search_text.contains(word.lower(), autoescape=True))
        if phone:
            digits = re.sub(r"\D", "", phone)
            if digits:
                query = query.where(
                    or_(
                        TicketRow.caller_number.contains(digits, autoescape=True),
                        TicketRow.callback_number.contains(digits, autoescape=True),
                    )
                )
        if number:
            query = query.where(TicketRow.number.startswith(number.strip(), autoescape=True))
        if status is not None:
            query = query.where(TicketRow.status == status.value)
        if date_from is not None:
            query = query.where(TicketRow.created_at >= self._local_midnight(date_from))
        if date_to is not None and date_to < date.max:
            end = self._local_midnight(date_to + timedelta(days=1))
            query = query.where(TicketRow.created_at < end)
        if assigned_to is not None:
            query = query.where(TicketRow.assigned_to == assigned_to)
        limit, offset = max(1, min(limit, 500)), max(0, offset)
        if deadline:
            return self._search_deadline(query, deadline, limit, offset)
        query = query.order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
        query = query.limit(limit).offset(offset)
        with self.reading() as session:
            rows = session.execute(query).all()
            return [self._to_ticket(session, row, False, at) for row, at in rows]

    def _search_deadline(self, query: Any, which: str, limit: int, offset: int) -> list[Ticket]:
        # The amber share and the dispatch delay compare two columns with arithmetic on
        # times, which SQLite and PostgreSQL spell differently: SQL narrows to open tickets
        # (overdue ones alone when asked), the state itself is decided here.
        now = self.clock()
        query = query.where(TicketRow.status != Status.CLOSED.value)
        if which == "overdue":
            query = query.where(TicketRow.due_at < now)
        elif which == "due_soon":
            query = query.where(TicketRow.due_at >= now)
        query = query.order_by(TicketRow.due_at, TicketRow.id)
        if which == "overdue":  # decided in SQL alone: page there
            query = query.limit(limit).offset(offset)
            offset = 0
        found: list[Ticket] = []
        with self.reading() as session:
            for row, at in session.execute(query):
                ticket = self._to_ticket(session, row, False, at)
                if self.matches_deadline(ticket, which, now):
                    found.append(ticket)
                    if len(found) >= offset + limit:
                        break
        return found[offset:]

    def callbacks_due(self, limit: int = 500) -> list[Ticket]:
        """回电清单: open tickets whose caller was promised a call back and not yet reached,
        oldest first (a night's callers in the order they called)."""
        query = (
            select(TicketRow)
            .where(
                TicketRow.callback_promised.is_(True),
                TicketRow.status != Status.CLOSED.value,
                ~_reached(),
            )
            .order_by(TicketRow.created_at, TicketRow.id)
            .limit(max(1, min(limit, 500)))
        )
        with self.reading() as session:
            rows = session.scalars(query).all()
            return [self._to_ticket(session, row, with_history=True) for row in rows]

    def callbacks_due_holdings(self) -> list[Holding]:
        """Who holds each ticket of the 回电清单: one query, for the count in the menu."""
        query = select(TicketRow.assigned_to, TicketRow.seat, TicketRow.skill).where(
            TicketRow.callback_promised.is_(True),
            TicketRow.status != Status.CLOSED.value,
            ~_reached(),
        )
        with self.reading() as session:
            return [Holding(r.assigned_to, r.seat, r.skill) for r in session.execute(query)]

    def caller_history(self, number: str, limit: int = 5) -> list[Ticket]:
        """Earlier work orders of the same caller: either of this ticket's numbers (来电,
        回拨) matching either number of the other, newest first."""
        with self.reading() as session:
            row = self._row(session, number)
            phones = {p for p in (row.caller_number, row.callback_number) if p}
            if not phones:
                return []
            query = (
                select(TicketRow)
                .where(
                    TicketRow.id < row.id,
                    or_(TicketRow.caller_number.in_(phones), TicketRow.callback_number.in_(phones)),
                )
                .order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
                .limit(max(1, min(limit, 50)))
            )
            return [self._to_ticket(session, r, with_history=False) for r in session.scalars(query)]

    def record_callback(
        self,
        number: str,
        outcome: CallbackOutcome,
        note: str,
        actor: str,
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        """One 回电 attempt in the history (status unchanged); 已回电 keeps the promise."""
        with self.writing() as session:
            row = self._row(session, number, lock=True, guard=guard)
            if not row.callback_promised:
                raise TicketError(f"工单 {number} 没有回电承诺，无需登记回电结果")
            if row.status == Status.CLOSED.value:
                raise InvalidTransition(f"工单 {number} 已办结，不能登记回电")
            row.updated_at = self.clock()
            self._append(
                session,
                row,
                actor,
                callback_action(outcome),
                row.status,
                row.status,
                {"note": note.strip()},
                row.updated_at,
            )
            session.flush()
            return self._to_ticket(session, row, with_history=True)

    def waiting_numbers(self) -> list[tuple[str, str, str]]:
        """(number, skill, urgency) of tickets still in intake and taken by nobody."""
        query = (
            select(TicketRow.number, TicketRow.skill, TicketRow.urgency)
            .where(TicketRow.status == Status.INTAKE.value, TicketRow.assigned_to.is_(None))
            .order_by(TicketRow.created_at)
        )
        with self.reading() as session:
            return [(r.number, r.skill, r.urgency) for r in session.execute(query)]

    def existing(self, numbers: list[str]) -> set[str]:
        """Which of these ticket numbers are in the record."""
        found: set[str] = set()
        with self.reading() as session:
            for start in range(0, len(numbers), 500):
                chunk = numbers[start : start + 500]
                found.update(
                    session.scalars(select(TicketRow.number).where(TicketRow.number.in_(chunk)))
                )
        return found

    def count(self) -> int:
        with self.reading() as session:
            return session.scalar(select(func.count(TicketRow.id))) or 0

    # ---- changes ----

    def edit(
        self, number: str, changes: TicketEdit, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        values = changes.model_dump(exclude_none=True)
        with self.writing() as session:
            row = self._row(session, number, lock=True, guard=guard)
            if row.status == Status.CLOSED.value:
                raise InvalidTransition(f"工单 {number} 已办结，不能修改")
            before = self._snapshot(row)
            _apply_edit(row, values)
            _refresh_copies(row)
            after = self._snapshot(row)
            diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
            if diff:
                row.updated_at = self.clock()
                self._append(
                    session,
                    row,
                    actor,
                    "edited",
                    row.status,
                    row.status,
                    {"changes": diff},
                    row.updated_at,
                )
            return self._to_ticket(session, row, with_history=True)

    def assign(
        self,
        number: str,
        username: str | None,
        seat: str | None,
        actor: str,
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        with self.writing() as session:
            row = self._row(session, number, lock=True, guard=guard)
            if row.assigned_to == username and row.seat == seat:
                return self._to_ticket(session, row, with_history=True)
            row.assigned_to, row.seat = username, seat
            row.updated_at = self.clock()
            action = "assigned" if username else "released"
            self._append(
                session,
                row,
                actor,
                action,
                row.status,
                row.status,
                {"user": username, "seat": seat},
                row.updated_at,
            )
            return self._to_ticket(session, row, with_history=True)

    def dispatch(
        self,
        number: str,
        department: str,
        actor: str,
        note: str = "",
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        if not department.strip():
            raise TicketError("转办需要选择承办单位")
        return self._step(
            number,
            "dispatch",
            actor,
            {"department": department, "note": note},
            guard,
            department=department.strip(),
        )

    def accept(
        self, number: str, actor: str, note: str = "", *, guard: Guard | None = None
    ) -> Ticket:
        return self._step(number, "accept", actor, {"note": note}, guard)

    def supervise(
        self, number: str, actor: str, note: str = "", *, guard: Guard | None = None
    ) -> Ticket:
        return self._step(number, "supervise", actor, {"note": note}, guard)

    def record_reply(
        self, number: str, reply: str, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        if not reply.strip():
            raise TicketError("请填写承办单位的答复")
        return self._step(number, "reply", actor, {"reply": reply}, guard, department_reply=reply)

    def follow_up(
        self, number: str, result: str, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        return self._step(
            number, "follow_up", actor, {"result": result}, guard, follow_up_result=result
        )

    def close(
        self,
        number: str,
        satisfaction: Satisfaction,
        actor: str,
        note: str = "",
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        return self._step(
            number,
            "close",
            actor,
            {"satisfaction": satisfaction.value, "note": note},
            guard,
            satisfaction=satisfaction.value,
            closed_at=self.clock(),
        )

    def note(
        self,
        number: str,
        text: str,
        actor: str,
        action: str = "note",
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        """Append a free note (e.g. a click-to-call was placed) without changing the status."""
        with self.writing() as session:
            row = self._row(session, number, lock=True, guard=guard)
            self._append(
                session, row, actor, action, row.status, row.status, {"note": text}, self.clock()
            )
            return self._to_ticket(session, row, with_history=True)

    def _step(
        self,
        number: str,
        step: str,
        actor: str,
        detail: dict[str, Any],
        guard: Guard | None = None,
        **fields: Any,
    ) -> Ticket:
        allowed, target = TRANSITIONS[step]
        with self.writing() as session:
            row = self._row(session, number, lock=True, guard=guard)
            current = Status(row.status)
            if current not in allowed:
                raise InvalidTransition(
                    f"工单 {number} 当前状态为「{_label(current)}」，不能{_STEP_LABELS[step]}"
                )
            for name, value in fields.items():
                setattr(row, name, value)
            row.status = target.value
            row.updated_at = self.clock()
            self._append(session, row, actor, step, current, target, detail, row.updated_at)
            return self._to_ticket(session, row, with_history=True)

    # ---- helpers ----

    def _row(
        self, session: Session, number: str, lock: bool = False, guard: Guard | None = None
    ) -> TicketRow:
        query = select(TicketRow).where(TicketRow.number == number)
        if lock:
            query = query.with_for_update()
        row = session.scalars(query).first()
        if row is None:
            raise TicketNotFound(f"没有工单 {number}")
        if guard is not None:
            guard(Holding(row.assigned_to, row.seat, row.skill))
        return row

    @staticmethod
    def _append(
        session: Session,
        row: TicketRow,
        actor: str,
        action: str,
        from_status: str,
        to_status: str,
        detail: dict[str, Any],
        at: datetime,
    ) -> None:
        session.add(
            TicketEventRow(
                ticket_id=row.id,
                at=at,
                actor=actor,
                action=action,
                from_status=str(from_status),
                to_status=str(to_status),
                detail=detail,
            )
        )

    @staticmethod
    def _insert_event(connection: Connection, ticket_id: int, entry: HistoryEntry) -> None:
        connection.execute(
            _INSERT_EVENT,
            {
                "ticket_id": ticket_id,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "from_status": entry.from_status,
                "to_status": entry.to_status,
                "detail": entry.detail,
            },
        )

    @staticmethod
    def _snapshot(row: TicketRow) -> dict[str, Any]:
        names = ("type", "topic", "department", "urgency", "skill", "summary")
        snap: dict[str, Any] = {name: getattr(row, name) for name in names}
        snap.update({f"caller.{k}": v for k, v in row.caller.items()})
        snap.update({f"elements.{k}": v for k, v in row.elements.items() if k != "address"})
        return snap

    @staticmethod
    def _reached(session: Session, ticket_id: int) -> bool:
        found = session.scalar(
            select(TicketEventRow.id)
            .where(
                TicketEventRow.ticket_id == ticket_id,
                TicketEventRow.action == callback_action(CallbackOutcome.REACHED),
            )
            .limit(1)
        )
        return found is not None

    def _local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.calendar.timezone).astimezone(UTC)

    def _to_ticket(
        self,
        session: Session,
        row: TicketRow,
        with_history: bool,
        dispatched_at: datetime | None = None,
    ) -> Ticket:
        history: list[HistoryEntry] = []
        if with_history:
            events = session.scalars(
                select(TicketEventRow)
                .where(TicketEventRow.ticket_id == row.id)
                .order_by(TicketEventRow.id)
            )
            history = [
                HistoryEntry(
                    at=e.at,
                    actor=e.actor,
                    action=e.action,
                    from_status=e.from_status,
                    to_status=e.to_status,
                    detail=e.detail,
                )
                for e in events
            ]
            firsts = [entry.at for entry in history if entry.action == "dispatch"]
            dispatched_at = dispatched_at or (min(firsts) if firsts else None)
        duplicates = list(
            session.scalars(
                select(TicketRow.number)
                .where(TicketRow.duplicate_of == row.number)
                .order_by(TicketRow.id)
            )
        )
        return Ticket(
            number=row.number,
            status=Status(row.status),
            created_at=row.created_at,
            updated_at=row.updated_at,
            due_at=row.due_at,
            type=RequestType(row.type),
            topic=row.topic,
            department=row.department,
            urgency=Urgency(row.urgency),
            skill=row.skill,
            caller=row.caller,  # type: ignore[arg-type]
            elements=row.elements,  # type: ignore[arg-type]
            summary=row.summary,
            handover_reason=row.handover_reason,
            kb_answers=row.kb_answers,
            caller_words=row.caller_words,
            call_id=row.call_id,
            call_started_at=row.call_started_at,
            call_ended_at=row.call_ended_at,
            menu_path=row.menu_path,
            dtmf=row.dtmf,
            transcript=row.transcript,  # type: ignore[arg-type]
            recording_path=row.recording_path,
            callback_promised=row.callback_promised,
            called_back=row.callback_promised and self._reached(session, row.id),
            assigned_to=row.assigned_to,
            seat=row.seat,
            duplicate_of=row.duplicate_of,
            duplicates=duplicates,
            department_reply=row.department_reply,
            follow_up_result=row.follow_up_result,
            satisfaction=row.satisfaction,
            closed_at=row.closed_at,
            dispatched_at=_aware(dispatched_at),
            history=history,
        )


def _first_dispatch() -> Any:
    """The time of a ticket's first 转办, as a column of a query over tickets."""
    return (
        select(func.min(TicketEventRow.at))
        .where(TicketEventRow.ticket_id == TicketRow.id, TicketEventRow.action == "dispatch")
        .correlate(TicketRow)
        .scalar_subquery()
    )


def _reached() -> Any:
    """EXISTS a 已回电 row in the ticket's history (correlated with ``TicketRow``)."""
    return exists().where(
        TicketEventRow.ticket_id == TicketRow.id,
        TicketEventRow.action == callback_action(CallbackOutcome.REACHED),
    )


def _number_for_call(connection: Connection, call_id: str) -> str | None:
    found = connection.execute(
        select(TicketRow.number).where(TicketRow.call_id == call_id).limit(1)
    ).first()
    return None if found is None else str(found.number)


def _next_number_statement(dialect_insert: Any) -> Any:
    table = TicketCounterRow.__table__
    return (
        dialect_insert(table)
        .values(day=bindparam("day"), last=1)
        .on_conflict_do_update(index_elements=[table.c.day], set_={"last": table.c.last + 1})
        .returning(table.c.last)
    )


# Statements built once: the intake path runs them hundreds of times a second.
_NEXT_NUMBER = {
    "sqlite": _next_number_statement(sqlite.insert),
    "postgresql": _next_number_statement(postgresql.insert),
}
_TICKET_COLUMNS = [c.key for c in TicketRow.__table__.columns if c.key != "id"]
_TICKETS = cast(Table, TicketRow.__table__)
_INSERT_TICKET = insert(_TICKETS).returning(_TICKETS.c.id)
_INSERT_EVENT = insert(cast(Table, TicketEventRow.__table__))
_FIND_DUPLICATE = (
    select(TicketRow.number, TicketRow.duplicate_of)
    .where(TicketRow.topic == bindparam("topic"), TicketRow.place_key == bindparam("place_key"))
    .where(TicketRow.status != Status.CLOSED.value)
    .where(TicketRow.created_at >= bindparam("since", type_=UTCDateTime))
    .order_by(TicketRow.created_at)
    .limit(1)
)

_STEP_LABELS = {
    "dispatch": "转办",
    "accept": "签收办理",
    "supervise": "督办",
    "reply": "登记反馈",
    "follow_up": "回访",
    "close": "办结",
}


def _label(status: Status) -> str:
    from tickets.ticket import STATUS_LABELS

    return STATUS_LABELS[status]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # the call session records UTC


_CALLER_EDITS = {
    "caller_name": "name",
    "callback_number": "callback_number",
    "confidential": "confidential",
}
_ELEMENT_EDITS = ("where", "when", "who_what", "what_happened", "caller_wants")


def _apply_edit(row: TicketRow, values: dict[str, Any]) -> None:
    caller = dict(row.caller)
    elements = dict(row.elements)
    for key, value in values.items():
        if key in _CALLER_EDITS:
            caller[_CALLER_EDITS[key]] = value
        elif key in _ELEMENT_EDITS:
            elements[key] = value
        else:
            setattr(row, key, value.value if hasattr(value, "value") else value)
    row.caller, row.elements = caller, elements  # new objects: JSON columns track assignment


def _copies(values: dict[str, Any]) -> dict[str, Any]:
    """The searchable copies of a ticket's caller and place (see TicketRow)."""
    caller, elements = values["caller"], values["elements"]
    address = elements.get("address") or {}
    place = "".join(address.get(k, "") for k in ("district", "street", "community", "building"))
    parts = [
        values["number"],
        values["topic"],
        values["department"],
        values["summary"],
        caller.get("name", ""),
        *(str(elements.get(k, "")) for k in _ELEMENT_EDITS),
        place,
        address.get("detail", ""),
        *values["caller_words"],
    ]
    return {
        "place_key": place_key(place or elements.get("where", "") or address.get("detail", "")),
        "caller_number": re.sub(r"\D", "", caller.get("number", ""))[:40],
        "callback_number": re.sub(r"\D", "", caller.get("callback_number", ""))[:40],
        "search_text": " ".join(p for p in parts if p).lower(),
    }


def _refresh_copies(row: TicketRow) -> None:
    names = ("number", "topic", "department", "summary", "caller", "elements", "caller_words")
    for key, value in _copies({name: getattr(row, name) for name in names}).items():
        setattr(row, key, value)
