"""How lists and the dashboard sort customers into the states a subscriber would name.

A subscriber sees three states, not the status column: *active* (in
service, paid time ahead or no expiry), *expired* (paid time over, or
suspended by billing for not paying), *suspended* (by an operator, or
because an operator above could not pay; disabled ones too), or deleted.
"""

from datetime import datetime

from schema.engine import as_utc
from schema.tables import UNPAID_REASONS


def states_of_standings(standings: dict[str, int], lapsed: int) -> dict[str, int]:
    """The states' counts from the standings' counts (customer_state_totals: in service, unpaid,
    suspended) and how many of those in service have lapsed (paid time over) by now."""
    return {
        "active": standings.get("in_service", 0) - lapsed,
        "expired": standings.get("unpaid", 0) + lapsed,
        "suspended": standings.get("suspended", 0),
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
