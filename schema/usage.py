"""Which billing period a customer's volume usage belongs to.

``customer_usage`` holds one row per customer per period; radiusd adds to it
and the authorization side reads it for the remaining quota, so both must
agree on the period. A customer's period is the ``period_days`` that end at
``expires_at`` (a renewal moves the expiry and so opens a fresh period); a
customer without an expiry counts by calendar month. Days are those of the
operator time zone (FIELD-NOTES 17).
"""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


def usage_period_start(expires_at: datetime | None, period_days: int, zone: ZoneInfo, now: datetime) -> date:
    """The first day of the billing period that ``now`` is counted in."""
    if expires_at is None:
        return now.astimezone(zone).date().replace(day=1)
    return (expires_at - timedelta(days=period_days)).astimezone(zone).date()
