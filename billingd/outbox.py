"""The enforcement outbox: jobs for nas/ written with the change that needs them.

A suspension, an expiry, a package change or a reactivation after expiry
must reach a live session on the router (FIELD-NOTES 13/14): a Disconnect
when service is denied or the subscriber must log in again into another
profile, a CoA when only the rate changes. The job is written in the same
transaction as the change, so it exists exactly when the change does; its
dedupe key stops the same cause from being queued twice.
"""

from datetime import datetime

from sqlalchemy import Connection, insert

from schema.tables import enforcement_jobs


def queue_job(connection: Connection, customer_id: int, action: str, reason: str, *, cause: str,
              payload: dict | None = None) -> None:
    """Queue ``action`` (disconnect or coa) for a customer; ``cause`` makes the dedupe key unique."""
    connection.execute(insert(enforcement_jobs).values(
        customer_id=customer_id, action=action, reason=reason, payload=payload or {},
        dedupe_key=f"{reason}:{customer_id}:{cause}"))


def instant_cause(now: datetime) -> str:
    """A cause for a command typed at ``now`` (each command is its own cause)."""
    return now.isoformat(timespec="microseconds")
