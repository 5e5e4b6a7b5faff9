"""Routers as operators see them.

The storage lives in ``nas.registry``; here each read and change takes an
:class:`Actor` and applies the tenancy rules: routers are the admin side's
(NOC users list, show and test them, only the admin and managers with
``network`` add, change or delete them). Router jobs are read models of
customers: ``billingd.reports``.
"""

from sqlalchemy import Connection

from nas import registry
from schema.tenancy import Actor


def add_router(connection: Connection, actor: Actor, name: str, ip_address: str, secret: str, **options):
    actor.require("network.change", "add routers")
    return registry.add_nas(
        connection, name, ip_address, secret, actor_id=actor.caller_id, acting_as_id=actor.id, **options
    )


def update_router(connection: Connection, actor: Actor, router: str, **changes):
    actor.require("network.change", "change routers")
    return registry.update_nas(connection, router, actor_id=actor.caller_id, acting_as_id=actor.id, **changes)


def delete_router(connection: Connection, actor: Actor, router: str) -> None:
    actor.require("network.change", "delete routers")
    registry.delete_nas(connection, router, actor_id=actor.caller_id, acting_as_id=actor.id)


def list_routers(connection: Connection, actor: Actor) -> list[registry.Nas]:
    actor.require("network.view", "list routers")
    return registry.list_nas(connection)


def show_router(connection: Connection, actor: Actor, name: str) -> registry.Nas:
    actor.require("network.view", "see routers")
    return registry.get_nas(connection, name)
