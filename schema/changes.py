"""The change log: a monotonic feed that tells radiusd what to reload.

Every write that can change an authorization decision calls record_change in
the same transaction. On PostgreSQL a NOTIFY (delivered at commit) wakes the
listeners at once; SQLite readers poll.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Select, delete, insert, literal, select, text

from schema.tables import change_log

NOTIFY_CHANNEL = "radbill_changes"
# radiusd needs only the newest rows (it waits 30 s for a late commit); a week
# covers a follower that lost the database for days.
KEEP = timedelta(days=7)


def _notify(connection: Connection) -> None:
    """Wake radiusd's listeners at commit (PostgreSQL; SQLite readers poll)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def record_change(connection: Connection, entity: str, entity_id: int) -> None:
    connection.execute(insert(change_log).values(entity=entity, entity_id=entity_id))
    _notify(connection)


def record_change_ids(connection: Connection, entity: str, ids: Iterable[int]) -> list[int]:
    """record_change for many ids, in one statement and one NOTIFY (an accounting batch); the new rows' ids."""
    ids = sorted(set(ids))
    if not ids:
        return []
    if connection.dialect.name == "postgresql":
        # One array: a multi-row VALUES is a new statement to compile for every batch size.
        change_ids = connection.exec_driver_sql(
            "INSERT INTO change_log (entity, entity_id) SELECT %s, unnest(%s::bigint[]) RETURNING id",
            (entity, ids),
        )
    else:
        change_ids = connection.execute(
            insert(change_log).returning(change_log.c.id),
            [dict(entity=entity, entity_id=entity_id) for entity_id in ids],
        )
    change_ids = [change_id for (change_id,) in change_ids]
    _notify(connection)
    return change_ids


def record_changes(connection: Connection, entity: str, ids: Select) -> int:
    """record_change for every id a query returns, in one statement (the billing runs)."""
    inserted = connection.execute(
        insert(change_log).from_select(["entity", "entity_id"], select(literal(entity), ids.subquery().c[0]))
    ).rowcount
    if inserted:
        _notify(connection)
    return inserted


def prune_changes(connection: Connection, now: datetime) -> int:
    """Forget changes older than KEEP: every session opened or closed adds one."""
    return connection.execute(delete(change_log).where(change_log.c.created_at < now - KEEP)).rowcount
