"""Queueing a router action in the enforcement outbox (``enforcement_jobs``).

Billing, the CLI and radiusd's accounting queue a job in the same transaction
as the change that needs it (a transactional outbox); this module is the only
writer of new jobs, and nas/outbox.py and nas/worker.py claim and carry them
out. It lives here because radiusd may import only schema.
"""

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from schema.errors import require_one_of
from schema.tables import JOB_ACTIONS, enforcement_jobs


def enqueue(
    connection: Connection,
    *,
    customer_id: int,
    action: str,
    reason: str,
    payload: dict | None = None,
    nas_id: int | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Queue a job in the caller's transaction; return its id, or None if
    ``dedupe_key`` was queued before (the job is then not queued twice)."""
    require_one_of(action, JOB_ACTIONS, "enforcement action")
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(enforcement_jobs)
        .values(
            customer_id=customer_id,
            nas_id=nas_id,
            action=action,
            reason=reason,
            payload=payload or {},
            dedupe_key=dedupe_key,
            not_before=not_before,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(enforcement_jobs.c.id)
    )
    return connection.execute(statement).scalar()


def enqueue_selected(connection: Connection, jobs) -> int:
    """Queue one job per row of the query ``jobs`` in one statement; return how many were queued.

    For the daily run's sets of customers. ``jobs`` yields the columns
    ``customer_id, action, reason, dedupe_key`` and has a WHERE clause (SQLite
    needs one before ON CONFLICT); a ``dedupe_key`` queued before is skipped,
    as in :func:`enqueue`, and the table's CHECK refuses an unknown action.
    """
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(enforcement_jobs)
        .from_select(["customer_id", "action", "reason", "dedupe_key"], jobs)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(enforcement_jobs.c.id)
    )
    return len(connection.execute(statement).all())
