"""The ticket record on SQLite and PostgreSQL: numbering, due dates, workflow, history."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, select, update

from hotline.draft import RequestType, TranscriptLine, TranscriptWord, Urgency
from tests.tickets.support import make_draft
from tickets.db import current_revision, head_revision
from tickets.models import Base, TicketEventRow
from tickets.store import TicketStore
from tickets.ticket import InvalidTransition, Satisfaction, Status, TicketEdit, TicketNotFound


def test_schema_is_migrated_and_matches_the_models(store: TicketStore) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    store.migrate()  # idempotent


def test_create_from_draft_numbers_dates_and_records(store: TicketStore) -> None:
    draft = make_draft(
        1,
        transcript=[
            TranscriptLine(
                speaker="caller",
                text="海甸五西路工地",
                confidence=0.5,
                words=[
                    TranscriptWord(text="海甸", confidence=0.4),
                    TranscriptWord(text="五西路工地"),
                ],
            )
        ],
    )
    first = store.create_from_draft(draft, skill="general", actor="bot")
    second = store.create_from_draft(make_draft(2, type=RequestType.CONSULTATION))
    assert re.fullmatch(r"\d{8}-0001", first.number)
    assert second.number == first.number[:9] + "0002"
    assert first.status == Status.INTAKE
    local_created = first.created_at.astimezone(store.calendar.timezone).date()
    assert first.due_at.astimezone(store.calendar.timezone).date() == store.calendar.add_workdays(
        local_created, 15
    )
    assert second.due_at.astimezone(store.calendar.timezone).date() == store.calendar.add_workdays(
        local_created, 2
    )
    loaded = store.get(first.number)
    assert loaded.caller.number == "13907551234"
    assert loaded.elements.address.street == "海甸五西路"
    assert loaded.transcript[0].words[0].confidence == 0.4
    assert loaded.menu_path == ["main", "complaint"] and loaded.dtmf == "2"
    assert loaded.kb_answers == ["kb-noise-01"]
    assert [(h.actor, h.action, h.to_status) for h in loaded.history] == [
        ("bot", "created", "intake")
    ]


def test_numbers_stay_unique_with_concurrent_writers(store: TicketStore) -> None:
    numbers: list[str] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(15):
                numbers.append(store.create_from_draft(make_draft(offset * 100 + i)).number)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(numbers) == len(set(numbers)) == 60
    assert store.count() == 60


def test_full_workflow_and_audit_history(store: TicketStore) -> None:
    number = store.create_from_draft(make_draft()).number
    store.edit(number, TicketEdit(topic="建筑施工噪音", caller_name="王建国"), "op1")
    store.dispatch(number, "市生态环境局", "op1", note="请核查")
    store.accept(number, "dept", "已签收")
    store.supervise(number, "boss", "加快办理")
    store.record_reply(number, "已责令工地停止夜间施工", "dept")
    store.follow_up(number, "市民确认已停工", "op2")
    closed = store.close(number, Satisfaction.SATISFIED, "op2")
    assert closed.status == Status.CLOSED and closed.closed_at is not None
    assert closed.department == "市生态环境局"
    assert closed.department_reply == "已责令工地停止夜间施工"
    assert closed.satisfaction == "satisfied"
    steps = [(h.actor, h.action, h.from_status, h.to_status) for h in closed.history]
    assert steps == [
        ("bot", "created", "", "intake"),
        ("op1", "edited", "intake", "intake"),
        ("op1", "dispatch", "intake", "dispatched"),
        ("dept", "accept", "dispatched", "in_progress"),
        ("boss", "supervise", "in_progress", "supervised"),
        ("dept", "reply", "supervised", "reported"),
        ("op2", "follow_up", "reported", "follow_up"),
        ("op2", "close", "follow_up", "closed"),
    ]
    assert closed.history[1].detail["changes"]["caller.name"] == ["王先生", "王建国"]
    with pytest.raises(InvalidTransition):
        store.edit(number, TicketEdit(topic="x"), "op1")
    with pytest.raises(InvalidTransition):
        store.dispatch(number, "市水务局", "op1")


def test_invalid_steps_are_refused_and_leave_no_trace(store: TicketStore) -> None:
    number = store.create_from_draft(make_draft()).number
    with pytest.raises(InvalidTransition):
        store.record_reply(number, "答复", "dept")  # not dispatched yet
    with pytest.raises(InvalidTransition):
        store.accept(number, "dept")
    with pytest.raises(TicketNotFound):
        store.dispatch("20000101-9999", "市水务局", "op1")
    assert [h.action for h in store.history(number)] == ["created"]


def test_history_rows_cannot_be_changed(store: TicketStore) -> None:
    number = store.create_from_draft(make_draft()).number
    with pytest.raises(PermissionError), store.writing() as session:
        row = session.scalars(select(TicketEventRow)).first()
        assert row is not None
        row.actor = "someone else"
        session.flush()
    with pytest.raises(PermissionError), store.writing() as session:
        row = session.scalars(select(TicketEventRow)).first()
        session.delete(row)
        session.flush()
    assert store.history(number)[0].actor == "bot"


def test_search_by_number_phone_text_status_and_date(store: TicketStore) -> None:
    a = store.create_from_draft(make_draft(1))
    landline = make_draft().caller.model_copy(update={"number": "0898-66661234"})
    b = store.create_from_draft(make_draft(2, topic="路灯不亮", caller=landline))
    store.dispatch(b.number, "市城市管理局", "op")
    assert [t.number for t in store.search(number=a.number)] == [a.number]
    assert [t.number for t in store.search(phone="66661234")] == [b.number]
    assert {t.number for t in store.search(text="海甸五西路")} == {a.number, b.number}
    assert [t.number for t in store.search(text="路灯")] == [b.number]
    assert [t.number for t in store.search(text="路灯 海甸")] == [b.number]
    assert [t.number for t in store.search(status=Status.DISPATCHED)] == [b.number]
    today = datetime.now(UTC).astimezone(store.calendar.timezone).date()
    assert len(store.search(date_from=today, date_to=today)) == 2
    assert store.search(date_to=today - timedelta(days=1)) == []
    assert store.search(text="100%_") == []  # LIKE wildcards are literal
    assert store.search(date_to=date.max) != []


def test_duplicates_link_to_the_first_open_ticket(store: TicketStore) -> None:
    first = store.create_from_draft(make_draft(7))
    second = store.create_from_draft(make_draft(7))
    third = store.create_from_draft(make_draft(7))
    elsewhere = store.create_from_draft(make_draft(8))
    other_topic = store.create_from_draft(make_draft(7, topic="路灯不亮"))
    assert second.duplicate_of == first.number and third.duplicate_of == first.number
    assert elsewhere.duplicate_of is None and other_topic.duplicate_of is None
    original = store.get(first.number)
    assert original.duplicates == [second.number, third.number]
    assert [h.action for h in original.history].count("duplicate_linked") == 2
    # Spoken differently but the same place once normalised.
    spaced = make_draft(9)
    spaced.elements.address.building = "9 号"
    base = store.create_from_draft(make_draft(9))
    assert store.create_from_draft(spaced).duplicate_of == base.number


def test_closed_or_old_tickets_are_not_duplicates(store: TicketStore) -> None:
    first = store.create_from_draft(make_draft(3))
    store.close(first.number, Satisfaction.NOT_NEEDED, "op")
    assert store.create_from_draft(make_draft(3)).duplicate_of is None
    later = TicketStore(
        store.engine,
        store.calendar,
        store.time_limits,
        duplicate_window_days=7,
        clock=lambda: datetime.now(UTC) + timedelta(days=8),
    )
    assert later.create_from_draft(make_draft(3)).duplicate_of is None


def test_edit_keeps_search_copies_in_step(store: TicketStore) -> None:
    number = store.create_from_draft(make_draft(4)).number
    store.edit(
        number,
        TicketEdit(
            where="龙华区滨海大道1号", callback_number="13800001111", urgency=Urgency.URGENT
        ),
        "op",
    )
    assert [t.number for t in store.search(text="滨海大道")] == [number]
    assert [t.number for t in store.search(phone="13800001111")] == [number]
    assert store.get(number).urgency == Urgency.URGENT


def test_database_refuses_history_changes_outside_the_orm(store: TicketStore) -> None:
    store.create_from_draft(make_draft())
    with pytest.raises(Exception, match="append-only"), store.writing() as session:
        session.execute(update(TicketEventRow).values(actor="forger"))
    with pytest.raises(Exception, match="append-only"), store.writing() as session:
        session.execute(delete(TicketEventRow))
    assert [h.actor for h in store.history(store.search()[0].number)] == ["bot"]


def test_naive_datetimes_are_refused(store: TicketStore) -> None:
    with pytest.raises(Exception, match="naive"), store.writing() as session:
        session.execute(update(TicketEventRow).values(at=datetime(2026, 1, 1)))
