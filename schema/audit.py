"""The audit log: who did what, acting as whom, to which row."""

from sqlalchemy import Connection, insert

from schema.tables import audit_log


def audit(
    connection: Connection,
    action: str,
    *,
    actor_id: int | None,
    acting_as_id: int | None = None,
    target_type: str | None = None,
    target_id: int | None = None,
    **details,
) -> None:
    connection.execute(
        insert(audit_log).values(
            actor_operator_id=actor_id,
            acting_as_operator_id=acting_as_id if acting_as_id is not None else actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )
    )
