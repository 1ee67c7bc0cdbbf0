"""Deadline states, countdowns and the dispatch rule, by the store's clock, on real SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hotline.draft import RequestType
from tests.tickets.support import make_draft
from tickets.deadlines import DeadlineState
from tickets.store import TicketStore
from tickets.ticket import Satisfaction

# Monday 2026-11-23 10:00 in Beijing. A consultation (2 working days) is due Wednesday
# 23:59:59 local, i.e. 2 days 13 h 59 min later; a complaint (15) three weeks later.
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def at(store: TicketStore, moment: datetime) -> None:
    store.clock = lambda: moment


def test_states_move_from_normal_to_amber_to_red_with_the_clock(store: TicketStore) -> None:
    at(store, START)
    t = store.create_from_draft(make_draft(1, type=RequestType.CONSULTATION))
    span = t.due_at - t.created_at
    assert span == timedelta(days=2, hours=13, minutes=59, seconds=59)

    d = store.deadline(t)
    assert (d.state, d.css, d.label) == (DeadlineState.NORMAL, "dl-normal", "正常")
    assert d.text == "剩余 2 天 13 小时"

    # 20 % of the span is 12.4 h: amber from then on, though more than 4 h are left.
    at(store, t.due_at - timedelta(hours=12))
    d = store.deadline(store.get(t.number))
    assert (d.state, d.css, d.label) == (DeadlineState.DUE_SOON, "dl-due_soon", "即将超期")
    assert d.text == "剩余 12 小时"
    at(store, t.due_at - timedelta(hours=13))
    assert store.deadline(t).state == DeadlineState.NORMAL

    at(store, t.due_at + timedelta(hours=5, minutes=30))
    d = store.deadline(t)
    assert (d.state, d.css, d.label, d.text) == (
        DeadlineState.OVERDUE,
        "dl-overdue",
        "已超期",
        "已超期 5 小时",
    )
    at(store, t.due_at + timedelta(days=2, hours=3))
    assert store.deadline(t).text == "已超期 2 天 3 小时"


def test_four_hours_left_is_amber_even_when_the_share_is_smaller(store: TicketStore) -> None:
    at(store, START)
    # Three weeks: 20 % would be days; the 4-hour floor only matters for short limits, so
    # narrow the share to show it.
    store.rules = type(store.rules)(due_soon_share=0.0, due_soon_hours=4, dispatch_within_min=30)
    t = store.create_from_draft(make_draft(2))
    at(store, t.due_at - timedelta(hours=5))
    assert store.deadline(t).state == DeadlineState.NORMAL
    at(store, t.due_at - timedelta(hours=3, minutes=59))
    assert store.deadline(t).state == DeadlineState.DUE_SOON


def test_closed_tickets_have_no_countdown(store: TicketStore) -> None:
    at(store, START)
    t = store.create_from_draft(make_draft(3, type=RequestType.CONSULTATION))
    closed = store.close(t.number, Satisfaction.SATISFIED, "op")
    at(store, t.due_at + timedelta(days=3))
    d = store.deadline(closed)
    assert (d.state, d.text, d.dispatch_late) == (DeadlineState.CLOSED, "已办结", False)


def test_dispatch_rule_thirty_minutes_from_creation(store: TicketStore) -> None:
    at(store, START)
    waiting = store.create_from_draft(make_draft(4))
    in_time = store.create_from_draft(make_draft(5))
    late = store.create_from_draft(make_draft(6))
    at(store, START + timedelta(minutes=29))
    store.dispatch(in_time.number, "市城市管理局", "op")
    assert not store.deadline(store.get(waiting.number)).dispatch_late
    at(store, START + timedelta(minutes=31))
    store.dispatch(late.number, "市城市管理局", "op")
    at(store, START + timedelta(hours=2))
    assert store.deadline(store.get(waiting.number)).dispatch_late  # still in 受理
    assert not store.deadline(store.get(in_time.number)).dispatch_late
    got = store.get(late.number, with_history=False)
    assert got.dispatched_at == START + timedelta(minutes=31)
    assert store.deadline(got).dispatch_late
    # Dispatched again later: the first dispatch is what counts.
    store.record_reply(in_time.number, "已处理", "dept")
    store.dispatch(in_time.number, "市城市管理局", "op")
    assert not store.deadline(store.get(in_time.number)).dispatch_late


def test_a_consultation_waiting_for_its_answer_breaks_no_dispatch_rule(
    store: TicketStore,
) -> None:
    """Only what a department must act on (complaint, report, help) has to be dispatched
    within 30 minutes, as the ticket page's 须在 HH:MM 前转办 says."""
    at(store, START)
    question = store.create_from_draft(make_draft(11, type=RequestType.CONSULTATION))
    complaint = store.create_from_draft(make_draft(12))
    at(store, START + timedelta(hours=1))
    assert not store.deadline(store.get(question.number)).dispatch_late
    assert store.deadline(store.get(complaint.number)).dispatch_late
    assert store.deadline_counts()["dispatch_late"] == 1


def test_search_filters_by_deadline_state_most_urgent_first(store: TicketStore) -> None:
    at(store, START)
    normal = store.create_from_draft(make_draft(7))  # complaint: 15 working days
    soon = store.create_from_draft(make_draft(8, type=RequestType.CONSULTATION))
    at(store, START - timedelta(days=10))
    overdue = store.create_from_draft(make_draft(9, type=RequestType.CONSULTATION))
    older = store.create_from_draft(make_draft(10, type=RequestType.CONSULTATION))
    store.dispatch(older.number, "市城市管理局", "op")  # dispatched at once
    at(store, START - timedelta(days=20))
    closed_late = store.create_from_draft(make_draft(11, type=RequestType.CONSULTATION))
    store.close(closed_late.number, Satisfaction.SATISFIED, "op")
    at(store, soon.due_at - timedelta(hours=2))

    def numbers(which: str) -> list[str]:
        return [t.number for t in store.search(deadline=which)]

    assert numbers("overdue") == [overdue.number, older.number]  # same due time: by number
    assert numbers("due_soon") == [soon.number]
    # Still in 受理 long after creation: only the complaint had to be dispatched.
    assert set(numbers("dispatch_late")) == {normal.number}
    # Combined with the other criteria, and paged.
    assert [t.number for t in store.search(deadline="overdue", number=older.number)] == [
        older.number
    ]
    assert len(store.search(deadline="dispatch_late", limit=1, offset=1)) == 0
    assert [t.number for t in store.search(deadline="overdue", limit=1, offset=1)] == [older.number]
    # Countdowns on plain search results carry the first dispatch too.
    listed = {t.number: t for t in store.search(text="噪音")}
    assert listed[older.number].dispatched_at == START - timedelta(days=10)
    assert store.deadline_counts() == {"overdue": 2, "due_soon": 1, "dispatch_late": 1}
