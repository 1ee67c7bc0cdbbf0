"""The ticket store: the SQL record of every work order and of who did what to it.

Every change goes through one transaction that also appends a history row, so the record
and its audit trail never disagree.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hotline.draft import (
    FiveElements,
    RequestType,
    TicketDraft,
    Urgency,
    request_type_label,
    summary,
)
from hotline.settings import Settings, TicketsSettings
from tickets.db import WRITE_OPTION, default_database_url, make_engine, migrate, seconds_between
from tickets.deadlines import DISPATCHED_TYPES, Deadline, DeadlineRules, DeadlineState
from tickets.models import (
    TicketAssistRow,
    TicketAttachmentRow,
    TicketCounterRow,
    TicketEventRow,
    TicketRow,
    UTCDateTime,
    utcnow,
)
from tickets.ticket import (
    DEPARTMENT_VISIBLE,
    DEPARTMENT_WORKING,
    TRANSITIONS,
    AttachmentInfo,
    CallbackOutcome,
    ExtensionRequest,
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
        counts = {}
        with self.reading() as session:
            for which in ("overdue", "due_soon", "dispatch_late"):
                query = select(func.count(TicketRow.id)).where(
                    TicketRow.status != Status.CLOSED.value,
                    self._deadline_condition(which, now),
                )
                counts[which] = session.scalar(query) or 0
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
            return self._to_tickets(session, rows)

    def _search_deadline(self, query: Any, which: str, limit: int, offset: int) -> list[Ticket]:
        """Decided and paged in SQL (tickets.db.seconds_between does the time arithmetic
        on both backends), most urgent first."""
        query = (
            query.where(TicketRow.status != Status.CLOSED.value)
            .where(self._deadline_condition(which, self.clock()))
            .order_by(TicketRow.due_at, TicketRow.id)
            .limit(limit)
            .offset(offset)
        )
        with self.reading() as session:
            return self._to_tickets(session, session.execute(query).all())

    def _deadline_condition(self, which: str, now: datetime) -> Any:
        """The SQL form of ``DeadlineRules`` for open tickets in the filter ``which``
        (tickets.deadlines.FILTERS); the rules' own methods decide one ticket at a time."""
        at_now = literal(now, UTCDateTime)
        rules = self.rules
        if which == "overdue":
            return TicketRow.due_at < now
        if which == "due_soon":
            left = seconds_between(TicketRow.due_at, at_now)
            whole = seconds_between(TicketRow.due_at, TicketRow.created_at)
            return and_(
                TicketRow.due_at >= now,
                or_(
                    TicketRow.due_at < now + timedelta(hours=rules.due_soon_hours),
                    left < whole * rules.due_soon_share,
                ),
            )
        if which == "dispatch_late":
            if not rules.dispatch_within_min:
                return false()
            within = timedelta(minutes=rules.dispatch_within_min)
            first = _first_dispatch()
            return or_(
                and_(
                    first.is_not(None),
                    seconds_between(first, TicketRow.created_at) > within.total_seconds(),
                ),
                and_(
                    first.is_(None),
                    TicketRow.status == Status.INTAKE.value,
                    TicketRow.type.in_(DISPATCHED_TYPES),
                    TicketRow.created_at < now - within,
                ),
            )
        return true()

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
            return self._to_tickets(session, [(r, None) for r in session.scalars(query)])

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
        with self._changing(number, guard) as change:
            row = change.row
            if not row.callback_promised:
                raise TicketError(f"工单 {number} 没有回电承诺，无需登记回电结果")
            if row.status == Status.CLOSED.value:
                raise InvalidTransition(f"工单 {number} 已办结，不能登记回电")
            row.updated_at = change.now
            change.record(actor, callback_action(outcome), {"note": note.strip()})
        return change.ticket

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

    def open_work_by_assignee(self) -> dict[str, tuple[list[str], int]]:
        """Per person: the work orders in 受理 they hold and how many of theirs are not
        yet closed (the 班长's monitor)."""
        query = (
            select(TicketRow.assigned_to, TicketRow.status, TicketRow.number)
            .where(TicketRow.status != Status.CLOSED.value, TicketRow.assigned_to.is_not(None))
            .order_by(TicketRow.created_at)
        )
        work: dict[str, tuple[list[str], int]] = {}
        with self.reading() as session:
            for assignee, status, number in session.execute(query):
                name = str(assignee)
                intake, count = work.get(name, ([], 0))
                if status == Status.INTAKE.value:
                    intake.append(number)
                work[name] = (intake, count + 1)
        return work

    def count(self) -> int:
        with self.reading() as session:
            return session.scalar(select(func.count(TicketRow.id))) or 0

    # ---- changes ----

    def edit(
        self, number: str, changes: TicketEdit, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        values = changes.model_dump(exclude_none=True)
        with self._changing(number, guard) as change:
            row = change.row
            if row.status == Status.CLOSED.value:
                raise InvalidTransition(f"工单 {number} 已办结，不能修改")
            before = self._snapshot(row)
            _apply_edit(row, values)
            _regenerate_summary(row, before["summary"], values.get("summary"))
            _refresh_copies(row)
            after = self._snapshot(row)
            diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
            if diff:
                row.updated_at = change.now
                change.record(actor, "edited", {"changes": diff})
        return change.ticket

    def assign(
        self,
        number: str,
        username: str | None,
        seat: str | None,
        actor: str,
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        with self._changing(number, guard) as change:
            row = change.row
            # Taking what one already holds is no change: nothing to record.
            if row.assigned_to != username or row.seat != seat:
                row.assigned_to, row.seat = username, seat
                row.updated_at = change.now
                action = "assigned" if username else "released"
                change.record(actor, action, {"user": username, "seat": seat})
        return change.ticket

    def dispatch(
        self,
        number: str,
        department: str,
        actor: str,
        note: str = "",
        *,
        co_departments: list[str] | None = None,
        time_limit_days: int | None = None,
        guard: Guard | None = None,
    ) -> Ticket:
        """转办 to ``department`` (主办) with ``co_departments`` (协办, replacing earlier
        ones). With ``time_limit_days`` (the unit's own limit) the due date is counted
        again from now; a pending 延期 request lapses."""
        department = department.strip()
        if not department:
            raise TicketError("转办需要选择承办单位")
        assists = [d for d in dict.fromkeys(co_departments or []) if d and d != department]
        target = TRANSITIONS["dispatch"][1]
        with self._changing(number, guard) as change:
            row, session = change.row, change.session
            current = self._check_step(row, "dispatch")
            now = change.now
            row.department, row.status, row.updated_at = department, target.value, now
            row.extension_request = None
            detail: dict[str, Any] = {"department": department, "note": note}
            if assists:
                detail["co_departments"] = assists
            if time_limit_days is not None:
                row.due_at = self.calendar.due_at(now, time_limit_days)
                detail["due_at"] = row.due_at.isoformat()
            session.execute(delete(TicketAssistRow).where(TicketAssistRow.ticket_id == row.id))
            session.add_all(TicketAssistRow(ticket_id=row.id, department=d) for d in assists)
            _refresh_copies(row)
            change.record(actor, "dispatch", detail, current, target)
        return change.ticket

    def accept(
        self, number: str, actor: str, note: str = "", *, guard: Guard | None = None
    ) -> Ticket:
        return self._step(number, "accept", actor, {"note": note}, guard)

    def supervise(
        self,
        number: str,
        actor: str,
        note: str = "",
        *,
        escalate: bool = False,
        guard: Guard | None = None,
    ) -> Ticket:
        """督办: a note the department reads; ``escalate`` (升级督办) also makes it urgent."""
        if escalate:
            return self._step(
                number,
                "supervise",
                actor,
                {"note": note, "escalated": True},
                guard,
                urgency=Urgency.URGENT.value,
            )
        return self._step(number, "supervise", actor, {"note": note}, guard)

    # ---- 承办单位: 退单, 延期, 反馈 with files, 协办意见 ----

    def return_ticket(
        self, number: str, reason: str, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        """退单: the department sends the work order back to the hotline, saying why."""
        if not reason.strip():
            raise TicketError("请填写退单理由")
        with self._changing(number, guard) as change:
            row = change.row
            current = self._check_step(row, "return")
            detail = {"reason": reason.strip(), "department": row.department}
            row.status, row.updated_at, row.extension_request = (
                Status.RETURNED.value, change.now, None
            )  # fmt: skip
            change.record(actor, "return", detail, current, Status.RETURNED)
        return change.ticket

    def request_extension(
        self, number: str, days: int, reason: str, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        """延期申请: ``days`` more working days, decided by the hotline."""
        if not 1 <= days <= 60:
            raise TicketError("延期天数应为 1 至 60 个工作日")
        if not reason.strip():
            raise TicketError("请填写延期理由")
        with self._changing(number, guard) as change:
            row = change.row
            if Status(row.status) not in DEPARTMENT_WORKING:
                raise InvalidTransition(
                    f"工单 {number} 当前状态为「{_label(Status(row.status))}」，不能申请延期"
                )
            if row.extension_request:
                raise TicketError("已有一份延期申请等待热线审批")
            request = ExtensionRequest(days=days, reason=reason.strip(), by=actor, at=change.now)
            row.extension_request = request.model_dump(mode="json")
            row.updated_at = change.now
            detail = {"days": days, "reason": request.reason}
            change.record(actor, "extension_requested", detail)
        return change.ticket

    def decide_extension(
        self, number: str, approve: bool, note: str, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        """The hotline approves (the due date moves by the days asked) or refuses."""
        with self._changing(number, guard) as change:
            row = change.row
            if not row.extension_request:
                raise TicketError(f"工单 {number} 没有待审批的延期申请")
            request = ExtensionRequest.model_validate(row.extension_request)
            now = change.now
            detail: dict[str, Any] = {"days": request.days, "note": note.strip()}
            if approve:
                row.due_at = self.calendar.due_at(row.due_at, request.days)
                detail["due_at"] = row.due_at.isoformat()
            row.extension_request = None
            row.updated_at = now
            action = "extension_approved" if approve else "extension_refused"
            change.record(actor, action, detail)
        return change.ticket

    def department_reply(
        self,
        number: str,
        reply: str,
        files: list[tuple[str, str, bytes]],
        actor: str,
        *,
        guard: Guard | None = None,
    ) -> Ticket:
        """反馈 by the department itself, with files (name, content type, bytes)."""
        if not reply.strip():
            raise TicketError("请填写办理结果")
        with self._changing(number, guard) as change:
            row = change.row
            current = self._check_step(row, "reply")
            now = change.now
            for filename, content_type, data in files:
                change.session.add(
                    TicketAttachmentRow(
                        ticket_id=row.id,
                        filename=filename,
                        content_type=content_type,
                        size=len(data),
                        data=data,
                        author=actor,
                        created_at=now,
                    )
                )
            row.department_reply, row.status, row.updated_at = reply, Status.REPORTED.value, now
            row.extension_request = None
            detail: dict[str, Any] = {"reply": reply}
            if files:
                detail["files"] = [name for name, _, _ in files]
            change.record(actor, "reply", detail, current, Status.REPORTED)
        return change.ticket

    def attachment(self, number: str, attachment_id: int) -> tuple[AttachmentInfo, bytes]:
        with self.reading() as session:
            row = self._row(session, number)
            found = session.scalars(
                select(TicketAttachmentRow).where(
                    TicketAttachmentRow.id == attachment_id,
                    TicketAttachmentRow.ticket_id == row.id,
                )
            ).first()
            if found is None:
                raise TicketNotFound("没有这个附件")
            return AttachmentInfo.model_validate(found, from_attributes=True), found.data

    def merge(
        self, number: str, into: str, actor: str, note: str = "", *, guard: Guard | None = None
    ) -> Ticket:
        """并案: ``number`` is closed into ``into``, which carries on (both keep a record)."""
        if number == into:
            raise TicketError("不能与本工单并案")
        with self.writing() as session:
            # The surviving work order is locked first, as it always was, so two merges
            # into each other wait on one another instead of deadlocking half-way.
            main = self._row(session, into, lock=True)
            if main.status == Status.CLOSED.value:
                raise InvalidTransition(f"工单 {into} 已办结，不能并入")
            change = self._change_in(session, number, guard)
            row = change.row
            current = self._check_step(row, "merge")
            now = change.now
            row.status, row.duplicate_of, row.closed_at, row.updated_at = (
                Status.CLOSED.value, into, now, now
            )  # fmt: skip
            row.extension_request = None
            detail = {"into": into, "note": note.strip()}
            change.record(actor, "merge", detail, current, Status.CLOSED)
            self._append(
                session, main, actor, "merged_in", main.status, main.status,
                {"duplicate": number, "note": note.strip()}, now,
            )  # fmt: skip
            return change.finish()

    def pending_extensions(self, limit: int = 200) -> list[Ticket]:
        """Work orders whose department asked for more time, oldest request first."""
        query = (
            select(TicketRow, _first_dispatch().label("dispatched_at"))
            .where(TicketRow.extension_request.is_not(None))
            .where(TicketRow.status != Status.CLOSED.value)
            .order_by(TicketRow.updated_at, TicketRow.id)
            .limit(max(1, min(limit, 500)))
        )
        with self.reading() as session:
            return self._to_tickets(session, session.execute(query).all())

    def department_queue(self, unit: str, limit: int = 200) -> list[tuple[Ticket, str]]:
        """The work orders of a 承办单位 with its part in each ("lead" 主办 or "assist"
        协办): those still with it first by due date, then the ones it answered, newest
        first."""
        assisted = exists().where(
            TicketAssistRow.ticket_id == TicketRow.id, TicketAssistRow.department == unit
        )
        working = TicketRow.status.in_([s.value for s in DEPARTMENT_WORKING])
        query = (
            select(TicketRow, _first_dispatch().label("dispatched_at"))
            .where(or_(TicketRow.department == unit, assisted))
            .where(TicketRow.status.in_([s.value for s in DEPARTMENT_VISIBLE]))
            .order_by(working.desc(), TicketRow.due_at, TicketRow.id.desc())
            .limit(max(1, min(limit, 500)))
        )
        with self.reading() as session:
            rows = session.execute(query).all()
            tickets = self._to_tickets(session, rows)
        return [(t, "lead" if t.department == unit else "assist") for t in tickets]

    def record_reply(
        self, number: str, reply: str, actor: str, *, guard: Guard | None = None
    ) -> Ticket:
        if not reply.strip():
            raise TicketError("请填写承办单位的答复")
        return self._step(
            number, "reply", actor, {"reply": reply}, guard,
            department_reply=reply, extension_request=None,
        )  # fmt: skip

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
        # A note leaves ``updated_at`` alone: it is not a change to the work order itself.
        with self._changing(number, guard) as change:
            change.record(actor, action, {"note": text})
        return change.ticket

    def _step(
        self,
        number: str,
        step: str,
        actor: str,
        detail: dict[str, Any],
        guard: Guard | None = None,
        **fields: Any,
    ) -> Ticket:
        target = TRANSITIONS[step][1]
        with self._changing(number, guard) as change:
            row = change.row
            current = self._check_step(row, step)
            for name, value in fields.items():
                setattr(row, name, value)
            row.status = target.value
            row.updated_at = change.now
            change.record(actor, step, detail, current, target)
        return change.ticket

    # ---- helpers ----

    @contextmanager
    def _changing(self, number: str, guard: Guard | None) -> Iterator[_Change]:
        """One change to one work order: its row locked in a write transaction, and, once the
        block ends without error, ``change.ticket`` as it now stands, history included."""
        with self.writing() as session:
            change = self._change_in(session, number, guard)
            yield change
            change.finish()

    def _change_in(self, session: Session, number: str, guard: Guard | None) -> _Change:
        """The row of ``number`` locked in ``session`` (for a change that must lock another
        work order first, as 并案 does)."""
        return _Change(self, session, self._row(session, number, lock=True, guard=guard))

    @staticmethod
    def _check_step(row: TicketRow, step: str) -> Status:
        """The ticket's status, when ``step`` may start from it; InvalidTransition if not."""
        current = Status(row.status)
        if current not in TRANSITIONS[step][0]:
            raise InvalidTransition(
                f"工单 {row.number} 当前状态为「{_label(current)}」，不能{_STEP_LABELS[step]}"
            )
        return current

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
            assists = session.scalars(
                select(TicketAssistRow.department).where(TicketAssistRow.ticket_id == row.id)
            )
            guard(
                Holding(
                    row.assigned_to, row.seat, row.skill, row.status, row.department, tuple(assists)
                )
            )
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

    def _local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.calendar.timezone).astimezone(UTC)

    def _to_ticket(
        self,
        session: Session,
        row: TicketRow,
        with_history: bool,
        dispatched_at: datetime | None = None,
    ) -> Ticket:
        """One ticket; with its history, files and pending 延期 when ``with_history``."""
        ticket = self._to_tickets(session, [(row, dispatched_at)])[0]
        if not with_history:
            return ticket
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
        files = session.scalars(
            select(TicketAttachmentRow)
            .where(TicketAttachmentRow.ticket_id == row.id)
            .order_by(TicketAttachmentRow.id)
        )
        return ticket.model_copy(
            update={
                "history": history,
                "dispatched_at": ticket.dispatched_at or _aware(min(firsts) if firsts else None),
                "attachments": [
                    AttachmentInfo.model_validate(f, from_attributes=True) for f in files
                ],
            }
        )

    def _to_tickets(
        self, session: Session, rows: Sequence[tuple[TicketRow, datetime | None]]
    ) -> list[Ticket]:
        """Tickets of a list: what each needs from other rows (回电 reached, duplicates,
        协办 units) is read in three queries for the whole list, not three per row."""
        ids = [row.id for row, _ in rows]
        numbers = [row.number for row, _ in rows]
        reached: set[int] = set()
        duplicates: dict[str, list[str]] = {}
        assists: dict[int, list[str]] = {}
        for start in range(0, len(ids), 500):
            chunk_ids, chunk_numbers = ids[start : start + 500], numbers[start : start + 500]
            reached.update(
                session.scalars(
                    select(TicketEventRow.ticket_id).where(
                        TicketEventRow.ticket_id.in_(chunk_ids),
                        TicketEventRow.action == callback_action(CallbackOutcome.REACHED),
                    )
                )
            )
            for number, original in session.execute(
                select(TicketRow.number, TicketRow.duplicate_of)
                .where(TicketRow.duplicate_of.in_(chunk_numbers))
                .order_by(TicketRow.id)
            ):
                duplicates.setdefault(str(original), []).append(number)
            for ticket_id, department in session.execute(
                select(TicketAssistRow.ticket_id, TicketAssistRow.department)
                .where(TicketAssistRow.ticket_id.in_(chunk_ids))
                .order_by(TicketAssistRow.id)
            ):
                assists.setdefault(ticket_id, []).append(department)
        return [
            _ticket_of(
                row,
                dispatched_at,
                called_back=row.callback_promised and row.id in reached,
                duplicates=duplicates.get(row.number, []),
                co_departments=assists.get(row.id, []),
            )
            for row, dispatched_at in rows
        ]


@dataclass
class _Change:
    """A work order being changed inside a write transaction (see ``TicketStore._changing``):
    the actions set its fields, then ``record`` the history row that says who did what."""

    store: TicketStore
    session: Session
    row: TicketRow
    _now: datetime | None = field(default=None, init=False)
    _ticket: Ticket | None = field(default=None, init=False)

    @property
    def now(self) -> datetime:
        # Read the clock once, at first use, so the row and its history row agree on the
        # time and a change that turns out to be none reads no clock at all.
        if self._now is None:
            self._now = self.store.clock()
        return self._now

    def record(
        self,
        actor: str,
        action: str,
        detail: dict[str, Any],
        from_status: Status | str | None = None,
        to_status: Status | str | None = None,
    ) -> None:
        """The history row of this change; without statuses it left the status as it was."""
        status = self.row.status
        self.store._append(
            self.session,
            self.row,
            actor,
            action,
            status if from_status is None else from_status,
            status if to_status is None else to_status,
            detail,
            self.now,
        )

    def finish(self) -> Ticket:
        """The work order as it now stands, with its history (this change's row included)."""
        self.session.flush()
        self._ticket = self.store._to_ticket(self.session, self.row, with_history=True)
        return self._ticket

    @property
    def ticket(self) -> Ticket:
        if self._ticket is None:
            raise RuntimeError("the change has not finished")
        return self._ticket


def _ticket_of(
    row: TicketRow,
    dispatched_at: datetime | None,
    *,
    called_back: bool,
    duplicates: list[str],
    co_departments: list[str],
) -> Ticket:
    return Ticket(
        number=row.number,
        status=Status(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        due_at=row.due_at,
        type=RequestType(row.type),
        topic=row.topic,
        department=row.department,
        co_departments=co_departments,
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
        called_back=called_back,
        assigned_to=row.assigned_to,
        seat=row.seat,
        duplicate_of=row.duplicate_of,
        duplicates=duplicates,
        department_reply=row.department_reply,
        follow_up_result=row.follow_up_result,
        satisfaction=row.satisfaction,
        closed_at=row.closed_at,
        dispatched_at=_aware(dispatched_at),
        extension_request=row.extension_request or None,  # type: ignore[arg-type]
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
    "return": "退单",
    "merge": "并案",
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


def _regenerate_summary(row: TicketRow, before: str, sent: str | None) -> None:
    """After an edit the 摘要 follows the fields (type and five elements), as the bot wrote
    it; a summary the operator rewrote in the same edit is kept as written."""
    if sent is not None and sent.strip() != before.strip():
        return
    elements = FiveElements.model_validate(row.elements)
    row.summary = summary(request_type_label(row.type), elements)


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
