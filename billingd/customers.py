"""Customers as records: usernames, lookup for a change (locked, checked against the
actor), details and custom fields, password, show and list.

What happens to a customer over time (activation, renewals, suspensions, package
changes, deletion) is :mod:`billingd.lifecycle`; money it pays in or takes out
is :mod:`billingd.wallets`.
"""

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update

from billingd import cascade
from billingd.calendar import local_day
from billingd.packages import PricedPackage, priced_package_by_id
from schema.audit import audit
from schema.changes import record_change
from schema.errors import NotFound, RadbillError, require_one_of
from schema.identity import canonical_ip, canonical_mac, canonical_username
from schema.outbox import enqueue
from schema.tables import (
    CUSTOMER_STATUSES,
    SUSPENDED_EXPIRED,
    SUSPENDED_OPERATOR_FUND,
    SUSPENDED_OVERDUE,
    customer_search_text,
    customers,
    operators,
    packages,
    zones,
)
from schema.tenancy import Actor, ancestor_ids, require_changeable, require_visible, visible_operator_ids

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@:+-]{0,63}")
# Why a customer is suspended. The first three clear themselves once paid for
# (a payment, a renewal, a card, or the run when an operator's fund is back).
EXPIRED, OVERDUE, OPERATOR_FUND = SUSPENDED_EXPIRED, SUSPENDED_OVERDUE, SUSPENDED_OPERATOR_FUND
SELF_CLEARING = (EXPIRED, OVERDUE, OPERATOR_FUND)
MANUAL, DELETED = "manual", "deleted"


@dataclass(frozen=True)
class Calendar:
    """The billing day and time zone a command runs in (instants are UTC)."""

    now: datetime
    zone: ZoneInfo
    invoice_due_days: int = 7  # [billingd] invoice_due_days, for the invoices a command issues

    @property
    def today(self) -> date:
        return local_day(self.now, self.zone)


def normalise_mac(text: str) -> str:
    """Any common MAC spelling -> AA:BB:CC:DD:EE:FF, or a clear error."""
    mac = canonical_mac(text)
    if mac is None:
        raise RadbillError(f"invalid MAC address {text!r}")
    return mac


def normalise_username(text: str) -> str:
    """The canonical name, or a clear error if it is not a valid one."""
    name = canonical_username(text)
    if not _USERNAME.fullmatch(name):
        raise RadbillError(f"invalid username {text!r}: letters, digits and . _ @ : + - (at most 64)")
    return name


def customer_row(connection: Connection, username: str, *, lock: bool = False):
    query = select(customers).where(customers.c.username == normalise_username(username))
    row = connection.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise NotFound(f"no customer {username!r}")
    return row


def changeable_customer(
    connection: Connection,
    actor: Actor,
    username: str,
    what: str,
    *,
    money: bool = False,
    deleted_ok: bool = False,
):
    actor.require("customers.change", what)
    if money:
        actor.require("money", what)
    cascade.lock_chain(connection, customer_row(connection, username)["operator_id"])
    row = customer_row(connection, username, lock=True)
    require_changeable(connection, actor, row["operator_id"], f"customer {row['username']}")
    if row["deleted_at"] is not None and not deleted_ok:
        raise RadbillError(f"customer {row['username']} is deleted; restore it first")
    return row


def command_cause(calendar: Calendar) -> str:
    """Each command is its own cause: the instant it ran."""
    return calendar.now.isoformat(timespec="microseconds")


def audit_customer(connection: Connection, actor: Actor, action: str, customer_id: int, **details) -> None:
    audit(
        connection,
        f"customer.{action}",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="customer",
        target_id=customer_id,
        **details,
    )


def package_of(connection: Connection, row) -> PricedPackage:
    return priced_package_by_id(connection, row["operator_id"], row["package_id"])


def free_static_ip(connection: Connection, text: str, customer_id: int | None = None) -> str:
    """The canonical address, if no other customer has it."""
    static_ip = canonical_ip(text)
    if connection.execute(
        select(customers.c.username).where(
            customers.c.static_ip == static_ip, customers.c.id != (customer_id or 0)
        )
    ).first():
        raise RadbillError(f"static IP {static_ip} is already assigned")
    return static_ip


_EDITABLE = ("name", "phone", "address", "zone", "mac", "static_ip")


def set_customer(
    connection: Connection,
    actor: Actor,
    username: str,
    calendar: Calendar,
    *,
    fields: dict | None = None,
    **changes,
) -> dict:
    """Edit a customer's details: ``name``, ``phone``, ``address``, ``zone``, ``mac``, ``static_ip``
    (an empty value clears all but the name) and custom ``fields`` (an empty value removes one).

    Audited with each old and new value; a changed MAC or static IP cuts the
    live session so the next login meets it.
    """
    unknown = set(changes) - set(_EDITABLE)
    if unknown:
        raise RadbillError(f"cannot set {', '.join(sorted(unknown))}")
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes and not fields:
        raise RadbillError(
            "nothing to change: give at least one of name, phone, address, zone, MAC, static IP or a custom field"
        )
    row = changeable_customer(connection, actor, username, "edit customers")
    values = {}
    for key in ("name", "phone", "address"):
        if key in changes:
            values[key] = changes[key] if changes[key] or key == "name" else None
    if "zone" in changes:
        values["zone_id"] = zone_of(connection, row["operator_id"], changes["zone"] or None)[0]
    if "mac" in changes:
        values["mac_binding"] = normalise_mac(changes["mac"]) if changes["mac"] else None
    if "static_ip" in changes:
        values["static_ip"] = (
            free_static_ip(connection, changes["static_ip"], row["id"]) if changes["static_ip"] else None
        )
    if fields:
        merged = dict(row["custom_fields"] or {})
        for key, value in fields.items():
            if value:
                merged[key] = value
            else:
                merged.pop(key, None)
        values["custom_fields"] = merged
    before = {key: row[key] for key in values}
    changed = {key: (before[key], value) for key, value in values.items() if before[key] != value}
    if not changed:
        return show_customer(connection, actor, username)
    connection.execute(update(customers).where(customers.c.id == row["id"]).values(**values))
    record_change(connection, "customer", row["id"])
    if {"mac_binding", "static_ip"} & set(changed):
        # Only a new login meets a new binding; the customer stays active (no address block).
        key = f"details_changed:{row['id']}:{command_cause(calendar)}"
        enqueue(
            connection, customer_id=row["id"], action="disconnect", reason="details_changed", dedupe_key=key
        )
    audit_customer(
        connection,
        actor,
        "set",
        row["id"],
        **{
            key: {"old": str(old) if old is not None else None, "new": str(new) if new is not None else None}
            for key, (old, new) in changed.items()
        },
    )
    return show_customer(connection, actor, username)


def zone_of(connection: Connection, owner_id: int, code: str | None) -> tuple[int | None, str | None]:
    if code is None:
        return None, None
    chain = ancestor_ids(connection, owner_id)
    found = connection.execute(
        select(zones.c.id, zones.c.operator_id).where(zones.c.code == code, zones.c.operator_id.in_(chain))
    ).all()
    if not found:
        raise RadbillError(f"no zone {code!r} for this operator")
    nearest = min(found, key=lambda row: chain.index(row.operator_id))
    return nearest.id, code


def reset_password(connection: Connection, actor: Actor, username: str, password: str | None = None) -> str:
    """Set a new password (a random one if none is given) and return it."""
    row = changeable_customer(connection, actor, username, "reset passwords")
    password = password or secrets.token_urlsafe(9)
    connection.execute(update(customers).where(customers.c.id == row["id"]).values(password=password))
    record_change(connection, "customer", row["id"])
    audit_customer(connection, actor, "reset_password", row["id"])
    return password


def _view_query():
    return select(
        customers,
        operators.c.login.label("owner"),
        packages.c.name.label("package"),
        zones.c.code.label("zone"),
    ).select_from(
        customers.join(operators, operators.c.id == customers.c.operator_id)
        .join(packages, packages.c.id == customers.c.package_id)
        .outerjoin(zones, zones.c.id == customers.c.zone_id)
    )


_SHOWN = (
    "username",
    "customer_code",
    "owner",
    "package",
    "status",
    "status_reason",
    "expires_at",
    "wallet_balance",
    "name",
    "phone",
    "address",
    "zone",
    "static_ip",
    "mac_binding",
    "custom_fields",
    "cycle_day",
    "created_at",
    "deleted_at",
)


def _view(actor: Actor, row) -> dict:
    view = {key: row[key] for key in _SHOWN}
    if not actor.may("money"):
        del view["wallet_balance"]
    return view


def show_customer(connection: Connection, actor: Actor, username: str) -> dict:
    actor.require("customers.view", "see customers")
    row = (
        connection.execute(_view_query().where(customers.c.username == normalise_username(username)))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no customer {username!r}")
    require_visible(connection, actor, row["operator_id"], f"customer {row['username']}")
    return _view(actor, row)


def list_customers(
    connection: Connection,
    actor: Actor,
    *,
    deleted: bool = False,
    status: str | None = None,
    search: str | None = None,
    zone: str | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Customers the actor sees, by username; ``search`` matches a part of the username,
    name, phone or customer ID (any case); ``after`` a username and ``limit`` page by keyset."""
    actor.require("customers.view", "list customers")
    query = _view_query().where(
        customers.c.deleted_at.is_not(None) if deleted else customers.c.deleted_at.is_(None)
    )
    visible = visible_operator_ids(connection, actor)
    if visible is not None:
        query = query.where(customers.c.operator_id.in_(visible))
    if status is not None:
        require_one_of(status, CUSTOMER_STATUSES, "customer status")
        query = query.where(customers.c.status == status)
    if search and search.strip():
        # One text of the four fields, which PostgreSQL's trigram index answers (schema.tables).
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", " ".join(search.split())) + "%"
        query = query.where(customer_search_text.ilike(pattern, escape="\\"))
    if zone is not None:
        query = query.where(zones.c.code == zone)
    if after is not None:
        query = query.where(customers.c.username > canonical_username(after))
    query = query.order_by(customers.c.username)
    if limit is not None:
        query = query.limit(limit)
    return [_view(actor, row) for row in connection.execute(query).mappings()]
