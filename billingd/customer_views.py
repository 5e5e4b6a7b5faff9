"""How lists and the dashboard sort customers into the states a subscriber would name.

A subscriber sees three states, not the status column: *active* (in
service, paid time ahead or no expiry), *expired* (paid time over, or
suspended by billing for not paying), *suspended* (by an operator, or
because an operator above could not pay; disabled ones too), or deleted.
"""

from datetime import datetime

from sqlalchemy import ColumnElement

from schema.engine import as_utc
from schema.tables import UNPAID_REASONS, customers


def state_conditions(now: datetime) -> dict[str, ColumnElement]:
    """SQL conditions for each state of a not-deleted customer at ``now``."""
    lapsed = customers.c.expires_at.is_not(None) & (customers.c.expires_at <= now)
    unpaid = (customers.c.status == "suspended") & customers.c.status_reason.in_(UNPAID_REASONS)
    in_service = customers.c.status == "active"
    return {
        "active": in_service & ~lapsed,
        "expired": unpaid | (in_service & lapsed),
        "suspended": ~in_service & ~unpaid,
    }


def state_of(record: dict, now: datetime) -> str:
    """The state of one customer record (as shown by show_customer), the same rule in Python."""
    if record.get("deleted_at") is not None:
        return "deleted"
    expires_at = as_utc(record["expires_at"])
    lapsed = expires_at is not None and expires_at <= now
    if record["status"] == "suspended" and record["status_reason"] in UNPAID_REASONS:
        return "expired"
    if record["status"] == "active":
        return "expired" if lapsed else "active"
    return "suspended"
