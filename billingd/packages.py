"""Master packages (the technical spec), packages and per-operator price lists.

A package is sold by an operator only once it is on that operator's price
list (``package_prices``): the admin's own row is created with the package;
each parent gives a child the package at its own operator price
(:func:`assign_package`). A child can only get a package its parent has, so
every level of a chain has a price when a customer is activated.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from billingd.money import check_amount, format_amount
from schema.audit import audit
from schema.changes import record_change
from schema.errors import Forbidden, RadbillError, require_one_of
from schema.ratelimit import RATE_COLUMNS
from schema.tables import (
    BILLING_TYPES,
    CUSTOMER_TYPES,
    VISIBILITIES,
    master_packages,
    operators,
    package_prices,
    packages,
)
from schema.tenancy import Actor, require_visible

# Bounds that keep a package's numbers sane (and inside 64 bits).
MAX_PERIOD_DAYS = 3660
MAX_SIMULTANEOUS_USE = 1000
MAX_QUOTA_BYTES = 10**18

MASTER_FIELDS = (*RATE_COLUMNS, "quota_bytes", "ip_pool", "profile", "address_list", "simultaneous_use")


@dataclass(frozen=True)
class PricedPackage:
    """A package as one operator sells it."""

    package_id: int
    name: str
    master: str
    customer_type: str
    billing_type: str
    period_days: int
    customer_price: int
    operator_price: int
    visibility: str
    operator_id: int


def require_admin_scope(actor: Actor, what: str) -> None:
    actor.require("packages.change", what)
    if not actor.is_admin:
        raise Forbidden(f"only the admin's side may {what}; resellers sell packages assigned to them")


def check_spec(spec: dict) -> None:
    """Refuse a master package's technical fields out of bounds (or unknown)."""
    unknown = set(spec) - set(MASTER_FIELDS)
    if unknown:
        raise ValueError(f"unknown master package fields {sorted(unknown)}")
    if not 1 <= (spec.get("simultaneous_use") or 1) <= MAX_SIMULTANEOUS_USE:
        raise RadbillError(f"simultaneous use must be 1..{MAX_SIMULTANEOUS_USE}")
    if not 0 < (spec.get("quota_bytes") or 1) <= MAX_QUOTA_BYTES:
        raise RadbillError(f"a quota must be 1..{MAX_QUOTA_BYTES} bytes")


def add_master_package(
    connection: Connection,
    actor: Actor,
    name: str,
    *,
    customer_type: str,
    billing_type: str,
    period_days: int = 30,
    **spec,
) -> int:
    require_admin_scope(actor, "add master packages")
    require_one_of(customer_type, CUSTOMER_TYPES, "customer type")
    require_one_of(billing_type, BILLING_TYPES, "billing")
    if not 1 <= period_days <= MAX_PERIOD_DAYS:
        raise RadbillError(f"invalid period {period_days}: must be 1..{MAX_PERIOD_DAYS} days")
    check_spec(spec)
    if connection.execute(
        select(master_packages.c.id).where(
            master_packages.c.operator_id == actor.home_id, master_packages.c.name == name
        )
    ).first():
        raise RadbillError(f"master package {name!r} already exists")
    master_id = connection.execute(
        insert(master_packages).values(
            operator_id=actor.home_id,
            name=name,
            customer_type=customer_type,
            billing_type=billing_type,
            period_days=period_days,
            **{key: value for key, value in spec.items() if value is not None},
        )
    ).inserted_primary_key[0]
    record_change(connection, "master_package", master_id)
    audit(
        connection,
        "master_package.add",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="master_package",
        target_id=master_id,
        name=name,
    )
    return master_id


def list_master_packages(connection: Connection, actor: Actor) -> list[dict]:
    actor.require("customers.view", "list master packages")
    rows = connection.execute(select(master_packages).order_by(master_packages.c.name)).mappings()
    return [dict(row) for row in rows]


def add_package(
    connection: Connection,
    actor: Actor,
    name: str,
    *,
    master: str,
    customer_price: int,
    operator_price: int,
    visibility: str = "public",
) -> PricedPackage:
    """A sellable package on a master package, on the admin's own price list."""
    require_admin_scope(actor, "add packages")
    _check_visibility(visibility)
    check_prices(customer_price, operator_price)
    master_id = connection.execute(
        select(master_packages.c.id).where(master_packages.c.name == master)
    ).scalar()
    if master_id is None:
        raise RadbillError(f"no master package {master!r}")
    if connection.execute(select(packages.c.id).where(packages.c.name == name)).first():
        raise RadbillError(f"package {name!r} already exists")
    package_id = connection.execute(
        insert(packages).values(operator_id=actor.home_id, master_package_id=master_id, name=name)
    ).inserted_primary_key[0]
    price_id = connection.execute(
        insert(package_prices).values(
            package_id=package_id,
            operator_id=actor.home_id,
            customer_price=customer_price,
            operator_price=operator_price,
            visibility=visibility,
            assigned_by=actor.id,
        )
    ).inserted_primary_key[0]
    record_change(connection, "package", package_id)
    record_change(connection, "package_price", price_id)
    audit(
        connection,
        "package.add",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="package",
        target_id=package_id,
        name=name,
        customer_price=customer_price,
        operator_price=operator_price,
    )
    return priced_package(connection, actor.home_id, name)


def check_prices(*prices: int | None) -> None:
    for price in prices:
        if price is not None:
            if price < 0:
                raise RadbillError("a price cannot be negative")
            check_amount(price, "a price")


def _check_visibility(visibility: str) -> None:
    require_one_of(visibility, VISIBILITIES, "visibility")


def child_and_parent_price(connection: Connection, actor: Actor, name: str, to_login: str):
    """The child whose prices the actor sets (a direct child that sells), and its parent's price."""
    actor.require("packages.change", "assign packages")
    child = connection.execute(select(operators).where(operators.c.login == to_login)).mappings().first()
    if child is None:
        raise RadbillError(f"no operator {to_login!r}")
    if child["id"] == actor.home_id or (child["parent_id"] != actor.home_id and not actor.is_admin):
        raise Forbidden(f"{to_login} is not a direct child of {actor.login}: its parent sets its prices")
    if child["role"] not in ("reseller", "sub_reseller"):
        raise RadbillError(f"{to_login} is a {child['role']}: only resellers and sub-resellers sell packages")
    return child, priced_package(connection, child["parent_id"], name)


def assign_package(
    connection: Connection,
    actor: Actor,
    name: str,
    to_login: str,
    *,
    operator_price: int,
    customer_price: int | None = None,
    visibility: str | None = None,
    below_cost: bool = False,
) -> PricedPackage:
    """Give a child operator a package at its own prices (or change them).

    Selling below cost (the child pays its parent more than its customers pay
    it) is refused unless ``below_cost`` says it is meant."""
    check_prices(customer_price, operator_price)
    child, parent_price = child_and_parent_price(connection, actor, name, to_login)
    if visibility is not None:
        _check_visibility(visibility)
    existing = connection.execute(
        select(package_prices.c.id).where(
            package_prices.c.package_id == parent_price.package_id,
            package_prices.c.operator_id == child["id"],
        )
    ).scalar()
    values = dict(
        customer_price=parent_price.customer_price if customer_price is None else customer_price,
        operator_price=operator_price,
        assigned_by=actor.id,
    )
    if visibility is not None:
        values["visibility"] = visibility
    if values["operator_price"] > values["customer_price"] and not below_cost:
        raise RadbillError(
            f"{to_login} would pay {format_amount(operator_price)} for {name} and sell it for "
            f"{format_amount(values['customer_price'])}: selling below cost needs --below-cost"
        )
    if existing is None:
        values.setdefault("visibility", parent_price.visibility)
        price_id = connection.execute(
            insert(package_prices).values(
                package_id=parent_price.package_id, operator_id=child["id"], **values
            )
        ).inserted_primary_key[0]
    else:
        price_id = existing
        connection.execute(update(package_prices).where(package_prices.c.id == price_id).values(**values))
    record_change(connection, "package_price", price_id)
    audit(
        connection,
        "package.assign",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="package_price",
        target_id=price_id,
        package=name,
        to=to_login,
        operator_price=operator_price,
        customer_price=values["customer_price"],
        below_cost=values["operator_price"] > values["customer_price"],
    )
    return priced_package(connection, child["id"], name)


def _priced_query():
    return select(
        packages.c.id.label("package_id"),
        packages.c.name,
        master_packages.c.name.label("master"),
        master_packages.c.customer_type,
        master_packages.c.billing_type,
        master_packages.c.period_days,
        package_prices.c.customer_price,
        package_prices.c.operator_price,
        package_prices.c.visibility,
        package_prices.c.operator_id,
    ).select_from(
        package_prices.join(packages, packages.c.id == package_prices.c.package_id).join(
            master_packages, master_packages.c.id == packages.c.master_package_id
        )
    )


def priced_package(connection: Connection, operator_id: int, name: str) -> PricedPackage:
    row = (
        connection.execute(
            _priced_query().where(package_prices.c.operator_id == operator_id, packages.c.name == name)
        )
        .mappings()
        .first()
    )
    if row is None:
        login = connection.execute(select(operators.c.login).where(operators.c.id == operator_id)).scalar()
        raise RadbillError(f"package {name!r} is not on the price list of {login}")
    return PricedPackage(**row)


def priced_package_by_id(connection: Connection, operator_id: int, package_id: int) -> PricedPackage:
    row = (
        connection.execute(
            _priced_query().where(package_prices.c.operator_id == operator_id, packages.c.id == package_id)
        )
        .mappings()
        .one()
    )
    return PricedPackage(**row)


def price_list(
    connection: Connection, actor: Actor, operator_login: str | None = None
) -> list[PricedPackage]:
    """The packages an operator sells and its prices (its own list by default)."""
    actor.require("money", "see package prices")
    operator_id = actor.home_id
    if operator_login is not None:
        operator_id = connection.execute(
            select(operators.c.id).where(operators.c.login == operator_login)
        ).scalar()
        if operator_id is None:
            raise RadbillError(f"no operator {operator_login!r}")
        require_visible(connection, actor, operator_id, f"operator {operator_login}")
    rows = connection.execute(
        _priced_query().where(package_prices.c.operator_id == operator_id).order_by(packages.c.name)
    ).mappings()
    return [PricedPackage(**row) for row in rows]


def cheapest_operator_price(connection: Connection, operator_id: int) -> int | None:
    prices = (
        connection.execute(
            select(package_prices.c.operator_price).where(package_prices.c.operator_id == operator_id)
        )
        .scalars()
        .all()
    )
    return min(prices) if prices else None
