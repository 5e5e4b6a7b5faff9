"""Billing days and periods: which local day an instant falls on, when it ends, monthly cycles.

Pure functions: no database, no clock. A billing day is a day in the
operator's time zone; it ends at the next local midnight, whatever DST does.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    """The billing day an instant falls on, in the operator time zone."""
    return instant.astimezone(zone).date()


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day ends (the next local midnight), DST-safe."""
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return next_midnight.astimezone(UTC)


def add_months(day: date, months: int, cycle_day: int) -> date:
    """The cycle day ``months`` months after ``day``'s month (cycle days are 1..28)."""
    month_index = day.year * 12 + day.month - 1 + months
    return date(month_index // 12, month_index % 12 + 1, cycle_day)


def billing_period(day: date, cycle_day: int) -> tuple[date, date]:
    """The monthly period [start, end) that contains ``day`` for a cycle day."""
    start = add_months(day, 0 if day.day >= cycle_day else -1, cycle_day)
    return start, add_months(start, 1, cycle_day)
