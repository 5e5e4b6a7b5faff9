"""How lists and the dashboard sort customers into states, and the searchable, paged customer list.

A subscriber sees three states, not the status column: *active* (in
service, paid time ahead or no expiry), *expired* (paid time over, or
suspended by billing for not paying), *suspended* (by an operator, or
because an operator above could not pay; disabled ones too). Deleted
customers are a fourth list of their own.
"""

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, false, or_

from billingd.customers import _view, _view_query
from billingd.tenancy import Actor, visible_operator_ids
from schema.engine import as_utc
from schema.tables import UNPAID_REASONS, customers

STATES = ("active", "expired", "suspended", "deleted")
PAGE_SIZE = 50


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


def find_customers(
    connection: Connection,
    actor: Actor,
    now: datetime,
    *,
    search: str | None = None,
    state: str | None = None,
    after: str | None = None,
    limit: int = PAGE_SIZE,
) -> list[dict]:
    """One page of the visible customers in username order, after ``after`` (keyset paging).

    ``search`` matches the start of the username or customer ID, or any part
    of the name or phone, case-insensitively; ``state`` is one of STATES.
    """
    actor.require("customers.view", "list customers")
    query = _view_query()
    if state == "deleted":
        query = query.where(customers.c.deleted_at.is_not(None))
    else:
        query = query.where(customers.c.deleted_at.is_(None))
        if state is not None:
            query = query.where(state_conditions(now).get(state, false()))
    visible = visible_operator_ids(connection, actor)
    if visible is not None:
        query = query.where(customers.c.operator_id.in_(visible))
    text = (search or "").strip().lower()
    if text:
        pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            or_(
                customers.c.username.like(f"{pattern}%", escape="\\"),
                customers.c.customer_code.ilike(f"{pattern}%", escape="\\"),
                customers.c.name.ilike(f"%{pattern}%", escape="\\"),
                customers.c.phone.like(f"%{pattern}%", escape="\\"),
            )
        )
    if after:
        query = query.where(customers.c.username > after)
    rows = connection.execute(query.order_by(customers.c.username).limit(limit)).mappings()
    return [{**_view(actor, row), "state": state_of(dict(row), now)} for row in rows]
