"""The enforcement outbox: jobs for nas/ written with the change that needs them.

A suspension, an expiry, a package change or a reactivation after expiry
must reach a live session on the router (FIELD-NOTES 13/14): a Disconnect
when service is denied or the subscriber must log in again into another
profile, a CoA when only the rate changes. The job is written in the same
transaction as the change, so it exists exactly when the change does; its
dedupe key stops the same cause from being queued twice.
"""

from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from schema.tables import enforcement_jobs


def queue_job(connection: Connection, customer_id: int, action: str, reason: str, *, cause: str,
              payload: dict | None = None) -> None:
    """Queue ``action`` (disconnect or coa) for a customer, once per reason and cause."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(insert(enforcement_jobs).values(
        customer_id=customer_id, action=action, reason=reason, payload=payload or {},
        dedupe_key=f"{reason}:{customer_id}:{cause}").on_conflict_do_nothing(index_elements=["dedupe_key"]))


def instant_cause(now: datetime) -> str:
    """A cause for a command typed at ``now`` (each command is its own cause)."""
    return now.isoformat(timespec="microseconds")
