"""Due dates in working days: weekends and public holidays off, adjusted weekends (调休) on.

China moves working days around public holidays every year, so both the holidays and the
weekend days that become working days are configuration (``tickets.holidays``,
``tickets.extra_workdays``), never code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class WorkCalendar:
    timezone: ZoneInfo
    holidays: frozenset[date] = field(default_factory=frozenset)
    extra_workdays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls, timezone: str, holidays: Iterable[date] = (), extra_workdays: Iterable[date] = ()
    ) -> WorkCalendar:
        return cls(ZoneInfo(timezone), frozenset(holidays), frozenset(extra_workdays))

    def is_workday(self, day: date) -> bool:
        if day in self.extra_workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_workdays(self, start: date, days: int) -> date:
        """The date ``days`` working days after ``start`` (start itself does not count)."""
        day = start
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_workday(day):
                remaining -= 1
        return day

    def due_at(self, created: datetime, days: int) -> datetime:
        """End of the local working day ``days`` working days after ``created``, in UTC.

        A limit of 0 means the same (or, out of hours, the next) working day.
        """
        local_day = created.astimezone(self.timezone).date()
        if days == 0:
            while not self.is_workday(local_day):
                local_day += timedelta(days=1)
            due_day = local_day
        else:
            due_day = self.add_workdays(local_day, days)
        end = datetime.combine(due_day, time(23, 59, 59), tzinfo=self.timezone)
        return end.astimezone(UTC)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.timezone).date()
