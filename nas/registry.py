"""The routers radbill serves: add, change, list, delete.

Each change is written to the change log, so a running radiusd serves a new
or changed NAS within a second, without a restart.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, delete, func, insert, select, update

from schema.audit import audit
from schema.changes import record_change
from schema.errors import RadbillError, require_one_of
from schema.identity import canonical_ip
from schema.tables import MESSAGE_AUTHENTICATOR_POLICIES, enforcement_jobs, nas, sessions


@dataclass(frozen=True)
class Nas:
    id: int
    name: str
    ip_address: str
    secret: str
    coa_port: int
    require_message_authenticator: str
    message_authenticator_seen: bool
    api_host: str | None
    api_port: int | None
    api_user: str | None
    api_password: str | None
    api_tls: bool
    description: str
    api_tls_ca_file: str | None = None
    api_tls_fingerprint: str | None = None
    api_tls_verify: bool = True


def _checked(values: dict) -> dict:
    for key in ("api_tls_ca_file", "api_tls_fingerprint"):
        if values.get(key) == "":  # "" clears it
            values[key] = None
    if values.get("api_tls_fingerprint") is not None:
        values["api_tls_fingerprint"] = _fingerprint(values["api_tls_fingerprint"])
    if values.get("api_tls_ca_file"):
        path = Path(values["api_tls_ca_file"])
        if not path.is_file():
            raise RadbillError(f"no CA certificate file {str(path)!r}")
        values["api_tls_ca_file"] = str(path.resolve())
    if "ip_address" in values:
        values["ip_address"] = canonical_ip(values["ip_address"])
    if "secret" in values and not values["secret"]:
        raise RadbillError("the RADIUS secret must not be empty")
    for port, name in (("coa_port", "CoA port"), ("api_port", "API port")):
        if values.get(port) is not None and not 1 <= values[port] <= 65535:
            raise RadbillError(f"invalid {name} {values[port]}: must be 1..65535")
    policy = values.get("require_message_authenticator")
    if policy is not None:
        require_one_of(policy, MESSAGE_AUTHENTICATOR_POLICIES, "Message-Authenticator policy")
    return values


def _fingerprint(text: str) -> str:
    """A SHA-256 certificate fingerprint as 64 lower-case hex digits (colons and spaces dropped)."""
    digits = re.sub(r"[:\s]", "", text).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise RadbillError(
            f"invalid certificate fingerprint {text!r}: give its SHA-256 as 64 hex digits "
            "(RouterOS: /certificate print detail, fingerprint=...)"
        )
    return digits


def _ensure_unique(connection: Connection, values: dict, except_id: int | None = None) -> None:
    for column in ("name", "ip_address"):
        if column not in values:
            continue
        query = select(nas.c.name).where(nas.c[column] == values[column])
        if except_id is not None:
            query = query.where(nas.c.id != except_id)
        clash = connection.execute(query).scalar()
        if clash is not None:
            raise RadbillError(f"NAS {clash!r} already has {column.replace('_', ' ')} {values[column]}")


def add_nas(
    connection: Connection,
    name: str,
    ip_address: str,
    secret: str,
    *,
    actor_id: int | None = None,
    acting_as_id: int | None = None,
    **options,
) -> Nas:
    values = _checked({"name": name, "ip_address": ip_address, "secret": secret, **options})
    _ensure_unique(connection, values)
    nas_id = connection.execute(insert(nas).values(**values)).inserted_primary_key[0]
    record_change(connection, "nas", nas_id)
    audit(
        connection,
        "nas.add",
        actor_id=actor_id,
        acting_as_id=acting_as_id,
        target_type="nas",
        target_id=nas_id,
        name=name,
        ip=values["ip_address"],
    )
    return get_nas(connection, name)


def update_nas(
    connection: Connection,
    nas_name: str,
    *,
    actor_id: int | None = None,
    acting_as_id: int | None = None,
    **changes,
) -> Nas:
    current = get_nas(connection, nas_name)
    values = _checked({key: value for key, value in changes.items() if value is not None})
    if not values:
        raise RadbillError("nothing to change: give at least one option")
    _ensure_unique(connection, values, except_id=current.id)
    if values.get("require_message_authenticator") in ("yes", "no"):
        values["message_authenticator_seen"] = False
    connection.execute(update(nas).where(nas.c.id == current.id).values(**values))
    record_change(connection, "nas", current.id)
    shown = {key: ("***" if key in ("secret", "api_password") else value) for key, value in values.items()}
    audit(
        connection,
        "nas.update",
        actor_id=actor_id,
        acting_as_id=acting_as_id,
        target_type="nas",
        target_id=current.id,
        **shown,
    )
    return get_nas(connection, values.get("name", nas_name))


def delete_nas(
    connection: Connection, nas_name: str, *, actor_id: int | None = None, acting_as_id: int | None = None
) -> None:
    """Remove a router: refused while it has open sessions or unfinished jobs. Past sessions and
    jobs keep its address but no longer point at it; radiusd stops answering it within a second."""
    current = get_nas(connection, nas_name)
    open_sessions = connection.execute(
        select(func.count()).where(sessions.c.nas_id == current.id, sessions.c.stopped_at.is_(None))
    ).scalar()
    if open_sessions:
        raise RadbillError(f"NAS {nas_name!r} has {open_sessions} open session(s): close them first")
    if connection.execute(
        select(enforcement_jobs.c.id).where(
            enforcement_jobs.c.nas_id == current.id, enforcement_jobs.c.status == "pending"
        )
    ).first():
        raise RadbillError(f"NAS {nas_name!r} has unfinished router jobs: let them finish first")
    connection.execute(update(sessions).where(sessions.c.nas_id == current.id).values(nas_id=None))
    connection.execute(
        update(enforcement_jobs).where(enforcement_jobs.c.nas_id == current.id).values(nas_id=None)
    )
    connection.execute(delete(nas).where(nas.c.id == current.id))
    record_change(connection, "nas", current.id)
    audit(
        connection,
        "nas.delete",
        actor_id=actor_id,
        acting_as_id=acting_as_id,
        target_type="nas",
        target_id=current.id,
        name=nas_name,
    )


def get_nas(connection: Connection, name: str) -> Nas:
    row = connection.execute(select(nas).where(nas.c.name == name)).mappings().first()
    if row is None:
        raise RadbillError(f"no NAS named {name!r}")
    return nas_from_row(row)


def list_nas(connection: Connection) -> list[Nas]:
    return [nas_from_row(row) for row in connection.execute(select(nas).order_by(nas.c.name)).mappings()]


def nas_from_row(row) -> Nas:
    """A Nas from a row that has the nas table's columns (it may have more)."""
    return Nas(**{f: row[f] for f in Nas.__dataclass_fields__})
