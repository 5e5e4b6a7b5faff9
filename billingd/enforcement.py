"""What a change of a customer's service asks of the routers, queued in the
caller's transaction (schema/outbox.py; nas/worker.py carries it out).

Two consequences, whatever caused them:

cut off (suspension, expiry, an overdue bill, deletion)
    a Disconnect of every open session (FIELD-NOTES 13: the new state denies
    service), and for a static-IP customer, who has no session to drop, its
    address on the routers' blocked address list.
restored or changed (renewal, payment, resume, a new period, a package change)
    a CoA with the rate the package gives now (and its address list), in
    place, without dropping PPPoE; the static address off the blocked list.

Each is queued once per cause (the dedupe key), so a command or a billing
day that runs twice queues nothing twice.
"""

from sqlalchemy import Connection, select

from schema.outbox import enqueue
from schema.tables import customers


def _static_ip(connection: Connection, customer_id: int) -> str | None:
    return connection.execute(select(customers.c.static_ip).where(customers.c.id == customer_id)).scalar()


def cut_off(connection: Connection, customer_id: int, reason: str, cause: str) -> None:
    """Queue the Disconnect of the customer's sessions and the block of its static address."""
    key = f"{reason}:{customer_id}:{cause}"
    enqueue(connection, customer_id=customer_id, action="disconnect", reason=reason, dedupe_key=key)
    if _static_ip(connection, customer_id):
        enqueue(
            connection,
            customer_id=customer_id,
            action="api_disable",
            reason=reason,
            dedupe_key=f"{key}:block",
        )


def restore(
    connection: Connection, customer_id: int, reason: str, cause: str, *, unblock: bool = True
) -> None:
    """Queue the package's rate by CoA for the open sessions and, with ``unblock``,
    the static address off the blocked list."""
    key = f"{reason}:{customer_id}:{cause}"
    enqueue(connection, customer_id=customer_id, action="coa", reason=reason, dedupe_key=key)
    if unblock and _static_ip(connection, customer_id):
        enqueue(
            connection,
            customer_id=customer_id,
            action="api_enable",
            reason=reason,
            dedupe_key=f"{key}:unblock",
        )
