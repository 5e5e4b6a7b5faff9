"""Closing sessions by hand: ``radbill session close`` for the NOC (issue 15).

A session a router lost without a Stop counts towards simultaneous use until
the sweep closes it (three interim intervals). The NOC closes it at once:
the books only (schema.sessions, Acct-Terminate-Cause Admin-Reset, stopped at
its last update, its counters kept); it sends nothing to the router
(``radbill customer disconnect`` does that).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, or_, select

from schema.audit import audit
from schema.engine import as_utc
from schema.errors import NotFound, RadbillError
from schema.identity import canonical_username
from schema.sessions import ADMIN_RESET, close_sessions, last_seen
from schema.tables import customers, sessions
from schema.tenancy import Actor, require_visible


@dataclass(frozen=True)
class ClosedSession:
    id: int
    username: str
    nas_ip_address: str
    acct_session_id: str
    stopped_at: datetime | None


def close_open_sessions(
    connection: Connection, actor: Actor, *, session_id: int | None = None, username: str | None = None
) -> list[ClosedSession]:
    """Close one open session by its id (``radbill online`` shows it), or every open session of a
    user name; only sessions of customers the actor can see (sessions of no customer: the admin)."""
    actor.require("sessions.close", "close sessions")
    if (session_id is None) == (username is None):
        raise RadbillError("give a session id or --user, not both")
    query = (
        select(
            sessions.c.id,
            sessions.c.acct_unique_id,
            sessions.c.acct_session_id,
            sessions.c.nas_ip_address,
            sessions.c.username,
            sessions.c.customer_id,
            sessions.c.started_at,
            sessions.c.updated_at,
            sessions.c.stopped_at,
            customers.c.operator_id,
        )
        .select_from(sessions.outerjoin(customers, customers.c.id == sessions.c.customer_id))
        .order_by(sessions.c.id)
        .with_for_update(of=sessions)
    )
    if session_id is not None:
        rows = connection.execute(query.where(sessions.c.id == session_id)).all()
        if not rows:
            raise RadbillError(f"no session {session_id}")
        if rows[0].stopped_at is not None:
            raise RadbillError(f"session {session_id} is already closed")
    else:
        name = canonical_username(username)
        rows = connection.execute(
            query.where(
                or_(customers.c.username == name, sessions.c.username == username),
                sessions.c.stopped_at.is_(None),
            )
        ).all()
        if not rows:
            raise RadbillError(f"{name} has no open session")
    for row in rows:
        if row.operator_id is None:
            if not actor.is_admin:
                raise NotFound(f"session {row.id} is not visible to {actor.login}")
        else:
            require_visible(connection, actor, row.operator_id, f"session {row.id}")
    close_sessions(connection, rows, ADMIN_RESET, last_seen)
    for row in rows:
        audit(
            connection,
            "session.close",
            actor_id=actor.caller_id,
            acting_as_id=actor.id,
            target_type="session",
            target_id=row.id,
            username=row.username,
            acct_session_id=row.acct_session_id,
        )
    return [
        ClosedSession(row.id, row.username, row.nas_ip_address, row.acct_session_id, as_utc(last_seen(row)))
        for row in rows
    ]
