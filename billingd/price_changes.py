"""Prices and specs that change from a day on (``radbill package set`` and ``radbill
master-package set``, ``--from DATE``).

A price list row (``package_prices``) holds the price in force. A change waits
in ``package_price_changes`` until its day and is applied, in day order, by the
daily run of that day before it charges anyone, so each run day is charged at
the price in force on it, days caught up late included, and nothing already
charged is rewritten (the ledger keeps what was charged). A change from today
is applied at once when every earlier day is run, so commands use it from then
on; otherwise it waits for the run that reaches its day. A master package's
spec (rates, quota, pool, profile, simultaneous use) changes the same way, and
the change log tells radiusd when it is applied; its billing type and period
do not change (they decide what a day costs).
"""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, func, insert, select, update

from billingd.money import format_amount
from billingd.packages import (
    check_prices,
    check_spec,
    child_and_parent_price,
    priced_package,
    require_admin_scope,
)
from schema.audit import audit
from schema.changes import record_change
from schema.errors import RadbillError
from schema.tables import (
    billing_runs,
    master_package_changes,
    master_packages,
    operators,
    package_price_changes,
    package_prices,
)
from schema.tenancy import Actor


def set_price(
    connection: Connection,
    actor: Actor,
    name: str,
    *,
    effective_on: date,
    today: date,
    operator_login: str | None = None,
    customer_price: int | None = None,
    operator_price: int | None = None,
    below_cost: bool = False,
) -> dict:
    """Change a price list row from ``effective_on`` (today or later): the admin its own list, a
    parent its direct child's, as ``package assign`` does now."""
    if customer_price is None and operator_price is None:
        raise RadbillError("give --customer-price, --operator-price or both")
    check_prices(customer_price, operator_price)
    _require_not_past(effective_on, today)
    if operator_login is None:
        require_admin_scope(actor, "change package prices")
        priced = priced_package(connection, actor.home_id, name)
    else:
        child, _ = child_and_parent_price(connection, actor, name, operator_login)
        priced = priced_package(connection, child["id"], name)
        new_operator = priced.operator_price if operator_price is None else operator_price
        new_customer = priced.customer_price if customer_price is None else customer_price
        if new_operator > new_customer and not below_cost:
            raise RadbillError(
                f"{operator_login} would pay {format_amount(new_operator)} for {name} and sell it for "
                f"{format_amount(new_customer)}: selling below cost needs --below-cost"
            )
    price_id = connection.execute(
        select(package_prices.c.id).where(
            package_prices.c.package_id == priced.package_id,
            package_prices.c.operator_id == priced.operator_id,
        )
    ).scalar_one()
    change_id = connection.execute(
        insert(package_price_changes).values(
            price_id=price_id,
            effective_on=effective_on,
            customer_price=customer_price,
            operator_price=operator_price,
            created_by=actor.caller_id,
        )
    ).inserted_primary_key[0]
    audit(
        connection,
        "package.set",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="package_price",
        target_id=price_id,
        package=name,
        operator=operator_login,
        effective_on=str(effective_on),
        customer_price=customer_price,
        operator_price=operator_price,
    )
    applied = effective_on == today and _earlier_days_run(connection, today)
    if applied:
        apply_due(connection, today)
    owner = connection.execute(select(operators.c.login).where(operators.c.id == priced.operator_id)).scalar()
    return {
        "id": change_id,
        "package": name,
        "operator": owner,
        "effective_on": effective_on,
        "customer_price": customer_price,
        "operator_price": operator_price,
        "applied": applied,
    }


def _earlier_days_run(connection: Connection, day: date) -> bool:
    """Every day before ``day`` is run (or none ever was: the first run starts from its own day)."""
    last = connection.execute(
        select(func.max(billing_runs.c.day)).where(billing_runs.c.finished_at.is_not(None))
    ).scalar()
    return last is None or last >= day - timedelta(days=1)


def set_spec(
    connection: Connection, actor: Actor, name: str, spec: dict, *, effective_on: date, today: date
) -> dict:
    """Change a master package's technical fields from ``effective_on`` (today or later)."""
    require_admin_scope(actor, "change master packages")
    if not spec:
        raise RadbillError("give the fields to change (--rate, --quota, --pool, ...)")
    check_spec(spec)
    _require_not_past(effective_on, today)
    master_id = connection.execute(
        select(master_packages.c.id).where(
            master_packages.c.operator_id == actor.home_id, master_packages.c.name == name
        )
    ).scalar()
    if master_id is None:
        raise RadbillError(f"no master package {name!r}")
    change_id = connection.execute(
        insert(master_package_changes).values(
            master_package_id=master_id, effective_on=effective_on, spec=spec, created_by=actor.caller_id
        )
    ).inserted_primary_key[0]
    audit(
        connection,
        "master_package.set",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="master_package",
        target_id=master_id,
        name=name,
        effective_on=str(effective_on),
        **spec,
    )
    applied = effective_on == today and _earlier_days_run(connection, today)
    if applied:
        apply_due(connection, today)
    return {"id": change_id, "master_package": name, "effective_on": effective_on, **spec, "applied": applied}


def _require_not_past(effective_on: date, today: date) -> None:
    if effective_on < today:
        raise RadbillError(
            f"a change starts today ({today}) or later, not {effective_on}: past days keep what they had"
        )


def apply_due(connection: Connection, day: date) -> int:
    """Apply, in day order, the waiting changes in force by ``day``; returns how many."""
    return _apply(
        connection,
        day,
        master_package_changes,
        master_packages,
        "master_package_id",
        "master_package",
        lambda change: change["spec"],
    ) + _apply(
        connection,
        day,
        package_price_changes,
        package_prices,
        "price_id",
        "package_price",
        lambda change: {
            key: change[key] for key in ("customer_price", "operator_price") if change[key] is not None
        },
    )


def _apply(connection: Connection, day: date, changes, target, link: str, entity: str, values) -> int:
    """Write each waiting change of ``changes`` due by ``day`` into its ``target`` row, in day order,
    mark it applied and tell the change log (radiusd follows packages and prices)."""
    due = connection.execute(
        select(changes)
        .where(changes.c.applied_at.is_(None), changes.c.effective_on <= day)
        .order_by(changes.c.effective_on, changes.c.id)
    ).mappings()
    applied = 0
    for change in list(due):
        connection.execute(update(target).where(target.c.id == change[link]).values(**values(change)))
        connection.execute(
            update(changes).where(changes.c.id == change["id"]).values(applied_at=datetime.now(UTC))
        )
        record_change(connection, entity, change[link])
        applied += 1
    return applied
