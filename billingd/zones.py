"""Zones: an operator's areas. A customer's zone code can be the infix of its ID."""

import re

from sqlalchemy import Connection, delete, func, insert, select, update

from schema.audit import audit
from schema.errors import RadbillError
from schema.tables import ZONE_CODE_LENGTH, customers, operators, zones
from schema.tenancy import Actor, visible_operator_ids

_CODE = re.compile(r"[A-Za-z0-9_-]{1,%d}" % ZONE_CODE_LENGTH)


def add_zone(
    connection: Connection, actor: Actor, code: str, *, name: str = "", parent_code: str | None = None
) -> int:
    actor.require("customers.change", "add zones")
    if not _CODE.fullmatch(code):
        raise RadbillError(
            f"invalid zone code {code!r}: up to {ZONE_CODE_LENGTH} letters, digits, '_' or '-'"
        )
    if connection.execute(
        select(zones.c.id).where(zones.c.operator_id == actor.home_id, zones.c.code == code)
    ).first():
        raise RadbillError(f"zone {code!r} already exists")
    parent_id = None
    if parent_code is not None:
        parent_id = connection.execute(
            select(zones.c.id).where(zones.c.operator_id == actor.home_id, zones.c.code == parent_code)
        ).scalar()
        if parent_id is None:
            raise RadbillError(f"no zone {parent_code!r}")
    zone_id = connection.execute(
        insert(zones).values(operator_id=actor.home_id, code=code, name=name, parent_id=parent_id)
    ).inserted_primary_key[0]
    audit(
        connection,
        "zone.add",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="zone",
        target_id=zone_id,
        code=code,
    )
    return zone_id


def _own_zone(connection: Connection, actor: Actor, code: str, what: str):
    actor.require("customers.change", what)
    row = (
        connection.execute(select(zones).where(zones.c.operator_id == actor.home_id, zones.c.code == code))
        .mappings()
        .first()
    )
    if row is None:
        raise RadbillError(f"no zone {code!r} of {actor.login}")
    return row


def set_zone(
    connection: Connection,
    actor: Actor,
    code: str,
    *,
    name: str | None = None,
    parent_code: str | None = None,
) -> None:
    """Rename a zone or move it under another (``parent_code`` "" to make it top-level). Its code
    stays: customer IDs carry it."""
    row = _own_zone(connection, actor, code, "edit zones")
    values = {}
    if name is not None:
        values["name"] = name
    if parent_code is not None:
        parent_id = _own_zone(connection, actor, parent_code, "edit zones")["id"] if parent_code else None
        ancestor = parent_id
        while ancestor is not None:
            if ancestor == row["id"]:
                raise RadbillError(f"zone {parent_code!r} is inside {code!r}: a zone cannot enclose itself")
            ancestor = connection.execute(select(zones.c.parent_id).where(zones.c.id == ancestor)).scalar()
        values["parent_id"] = parent_id
    if not values:
        raise RadbillError("nothing to change: give --name or --parent")
    connection.execute(update(zones).where(zones.c.id == row["id"]).values(**values))
    audit(
        connection,
        "zone.set",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="zone",
        target_id=row["id"],
        code=code,
        old={"name": row["name"], "parent_id": row["parent_id"]},
        new=values,
    )


def delete_zone(connection: Connection, actor: Actor, code: str) -> None:
    """Delete an unused zone: refused while a customer or another zone is in it."""
    row = _own_zone(connection, actor, code, "delete zones")
    used = connection.execute(select(func.count()).where(customers.c.zone_id == row["id"])).scalar()
    if used:
        raise RadbillError(f"zone {code!r} has {used} customer(s): move them first (customer set --zone)")
    if connection.execute(select(zones.c.code).where(zones.c.parent_id == row["id"])).first():
        raise RadbillError(f"zone {code!r} encloses other zones: move or delete them first")
    connection.execute(delete(zones).where(zones.c.id == row["id"]))
    audit(
        connection,
        "zone.delete",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="zone",
        target_id=row["id"],
        code=code,
    )


def list_zones(connection: Connection, actor: Actor) -> list[dict]:
    actor.require("customers.view", "list zones")
    parent = zones.alias("parent")
    query = (
        select(zones.c.code, zones.c.name, parent.c.code.label("parent"), operators.c.login.label("operator"))
        .select_from(
            zones.join(operators, operators.c.id == zones.c.operator_id).outerjoin(
                parent, parent.c.id == zones.c.parent_id
            )
        )
        .order_by(operators.c.login, zones.c.code)
    )
    visible = visible_operator_ids(connection, actor)
    if visible is not None:
        query = query.where(zones.c.operator_id.in_(visible))
    return [dict(row) for row in connection.execute(query).mappings()]
