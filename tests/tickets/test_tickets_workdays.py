from datetime import UTC, date, datetime

from tickets.workdays import WorkCalendar


def test_working_days_skip_weekends_and_holidays_but_count_adjusted_weekends() -> None:
    cal = WorkCalendar.build(
        "Asia/Shanghai",
        holidays=[date(2026, 10, 1), date(2026, 10, 2)],
        extra_workdays=[date(2026, 10, 10)],
    )
    # Monday 2026-09-28 + 2 working days -> Wednesday 09-30.
    assert cal.add_workdays(date(2026, 9, 28), 2) == date(2026, 9, 30)
    # Wednesday 09-30 + 1: Thu/Fri are holidays, weekend off -> Monday 10-05.
    assert cal.add_workdays(date(2026, 9, 30), 1) == date(2026, 10, 5)
    # Friday 10-09 + 1: Saturday 10-10 is an adjusted working day.
    assert cal.add_workdays(date(2026, 10, 9), 1) == date(2026, 10, 10)


def test_due_at_is_end_of_local_working_day() -> None:
    cal = WorkCalendar.build("Asia/Shanghai")
    # Friday 2026-11-20 23:30 in Beijing is 15:30 UTC; +2 working days -> Tuesday 11-24.
    created = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    due = cal.due_at(created, 2)
    assert due.astimezone(cal.timezone).date() == date(2026, 11, 24)
    assert due.astimezone(cal.timezone).hour == 23
    # A zero limit taken on Saturday is due on Monday.
    saturday = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
    assert cal.due_at(saturday, 0).astimezone(cal.timezone).date() == date(2026, 11, 23)
