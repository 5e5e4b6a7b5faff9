"""The change log: a monotonic feed that tells radiusd what to reload.

Every write that can change an authorization decision calls record_change in
the same transaction. On PostgreSQL a NOTIFY (delivered at commit) wakes the
listeners at once; SQLite readers poll.
"""

from collections.abc import Iterable

from sqlalchemy import Connection, Select, insert, literal, select, text

from schema.tables import change_log

NOTIFY_CHANNEL = "radbill_changes"


def record_change(connection: Connection, entity: str, entity_id: int) -> None:
    connection.execute(insert(change_log).values(entity=entity, entity_id=entity_id))
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def record_change_ids(connection: Connection, entity: str, ids: Iterable[int]) -> None:
    """record_change for many ids, in one statement and one NOTIFY (an accounting batch)."""
    ids = sorted(set(ids))
    if not ids:
        return
    if connection.dialect.name == "postgresql":
        # One array: a multi-row VALUES is a new statement to compile for every batch size.
        connection.exec_driver_sql("INSERT INTO change_log (entity, entity_id) SELECT %s, unnest(%s::bigint[])",
                                   (entity, ids))
        connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    else:
        connection.execute(insert(change_log), [dict(entity=entity, entity_id=entity_id) for entity_id in ids])


def record_changes(connection: Connection, entity: str, ids: Select) -> int:
    """record_change for every id a query returns, in one statement (the billing runs)."""
    inserted = connection.execute(
        insert(change_log).from_select(["entity", "entity_id"], select(literal(entity), ids.subquery().c[0]))
    ).rowcount
    if inserted and connection.dialect.name == "postgresql":
        connection.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return inserted
