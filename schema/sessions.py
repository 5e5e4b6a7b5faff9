"""Closing sessions the NAS will never stop: one writer for radiusd and the NOC's ``session close``.

A closed session keeps the counters of its last update (they are already in
the customer's usage, so the last counters are billed); it is stopped at the
time the caller gives (usually its last sign of life), and every radiusd
hears of it through a "sessions" change, so simultaneous use counts it no more.
"""

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, update

from schema.changes import record_change_ids
from schema.engine import as_utc
from schema.tables import radacct, sessions

# Acct-Terminate-Cause values (RFC 2866 section 5.10) radbill writes itself.
NAS_REBOOT = "NAS-Reboot"
LOST_SERVICE = "Lost-Service"
ADMIN_RESET = "Admin-Reset"


def last_seen(row) -> datetime | None:
    """A session's last sign of life: its last update, else its start."""
    return as_utc(row.updated_at or row.started_at)


def close_sessions(
    connection: Connection, open_rows: Sequence, cause: str, stop_time_of: Callable
) -> tuple[list[int], list[int]]:
    """Close the given open sessions (rows with acct_unique_id, started_at,
    customer_id) at ``stop_time_of(row)``; a session closed meanwhile is left
    alone. Returns the customers whose sessions closed and the ids of the
    "sessions" changes logged for them."""
    params = []
    for row in open_rows:
        started = as_utc(row.started_at)
        stopped = stop_time_of(row)
        params.append(
            dict(
                _uid=row.acct_unique_id,
                _stopped=stopped,
                _cause=cause,
                _session_time=int((stopped - started).total_seconds()) if started else None,
            )
        )
    if not params:
        return [], []
    connection.execute(
        update(sessions)
        .where(sessions.c.acct_unique_id == bindparam("_uid"), sessions.c.stopped_at.is_(None))
        .values(
            stopped_at=bindparam("_stopped"),
            updated_at=bindparam("_stopped"),
            terminate_cause=bindparam("_cause"),
            session_time=func.coalesce(sessions.c.session_time, bindparam("_session_time")),
        ),
        params,
    )
    connection.execute(
        update(radacct)
        .where(radacct.c.acctuniqueid == bindparam("_uid"), radacct.c.acctstoptime.is_(None))
        .values(
            acctstoptime=bindparam("_stopped"),
            acctupdatetime=bindparam("_stopped"),
            acctterminatecause=bindparam("_cause"),
            acctsessiontime=func.coalesce(radacct.c.acctsessiontime, bindparam("_session_time")),
        ),
        params,
    )
    customer_ids = [row.customer_id for row in open_rows if row.customer_id is not None]
    return customer_ids, record_change_ids(connection, "sessions", customer_ids)
