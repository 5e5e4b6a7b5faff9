"""Zones: an operator's areas. A customer's zone code can be the infix of its ID."""

import re

from sqlalchemy import Connection, insert, select

from schema.audit import audit
from schema.errors import RadbillError
from schema.tables import ZONE_CODE_LENGTH, operators, zones
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
