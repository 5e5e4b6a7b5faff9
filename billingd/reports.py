"""Read models: what the operators look at, each decided for an :class:`Actor`.

Who is online, why a subscriber could not log in, which billing days ran.
Every front end (the CLI, the API) calls these and prints or serves what they
return, so the same actor sees the same rows everywhere.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from nas.registry import get_nas
from schema.engine import as_utc
from schema.errors import RadbillError
from schema.identity import canonical_username
from schema.tables import billing_runs, customers, nas, radpostauth, sessions
from schema.tenancy import Actor, require_visible, visible_operator_ids

ATTEMPT_COLUMNS = ("authdate", "reply", "reason", "nasipaddress", "callingstationid")


@dataclass(frozen=True)
class OnlineSession:
    username: str
    nas: str
    ip: str | None
    mac: str | None
    started_at: datetime | None
    duration: int | None
    upload_bytes: int
    download_bytes: int
    acct_session_id: str


def online_sessions(
    connection: Connection, actor: Actor, now: datetime, nas_name: str | None = None
) -> list[OnlineSession]:
    """Open sessions of the customers the actor sees, oldest first; the NAS by
    name where radbill knows it, else by address. The admin also sees sessions
    of user names that are no customer."""
    actor.require("customers.view", "list online sessions")
    if nas_name is not None:
        get_nas(connection, nas_name)  # an unknown name is an error, not an empty list
    query = (
        select(sessions, nas.c.name.label("nas_name"))
        .select_from(sessions.outerjoin(nas, nas.c.id == sessions.c.nas_id))
        .where(sessions.c.stopped_at.is_(None))
        .order_by(sessions.c.started_at, sessions.c.id)
    )
    if nas_name is not None:
        query = query.where(nas.c.name == nas_name)
    operator_ids = visible_operator_ids(connection, actor)
    if operator_ids is not None:
        query = query.join(customers, customers.c.id == sessions.c.customer_id).where(
            customers.c.operator_id.in_(sorted(operator_ids))
        )
    result = []
    for row in connection.execute(query):
        started = as_utc(row.started_at)
        result.append(
            OnlineSession(
                username=row.username,
                nas=row.nas_name or row.nas_ip_address,
                ip=row.framed_ip_address,
                mac=row.calling_station_id,
                started_at=started,
                duration=int((now - started).total_seconds()) if started else None,
                upload_bytes=row.upload_bytes,
                download_bytes=row.download_bytes,
                acct_session_id=row.acct_session_id,
            )
        )
    return result


def attempts(connection: Connection, actor: Actor, username: str, limit: int = 20) -> list[dict]:
    """A subscriber's latest authentication attempts (radpostauth), newest first.

    A customer's attempts are seen by whoever sees the customer; those of a
    user name that is no customer only by the admin.
    """
    if limit < 1:
        raise RadbillError(f"the limit must be at least 1, got {limit}")
    actor.require("customers.view", "see authentication attempts")
    name = canonical_username(username)
    owner = connection.execute(select(customers.c.operator_id).where(customers.c.username == name)).scalar()
    if owner is not None:
        require_visible(connection, actor, owner, f"customer {name!r}")
    elif not actor.is_admin:
        raise RadbillError(f"no customer {name!r}")
    query = (
        select(*(radpostauth.c[column] for column in ATTEMPT_COLUMNS))
        .where(radpostauth.c.username == name)
        .order_by(radpostauth.c.authdate.desc(), radpostauth.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def recent_runs(connection: Connection, actor: Actor, limit: int = 30) -> list[dict]:
    """The last billing days run, newest first."""
    actor.require("money", "see billing runs")
    query = select(billing_runs).order_by(billing_runs.c.day.desc()).limit(limit)
    return [dict(row) for row in connection.execute(query).mappings()]
