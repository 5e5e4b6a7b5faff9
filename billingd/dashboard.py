"""The operator dashboard's figures: one read model, every figure limited to what the actor sees.

Customers are counted by state (:mod:`billingd.customer_views`) from their
per-operator standings (``customer_state_totals``). Money
figures need financial access (NOC users get the counts only).

The 30-day chart counts, per billing day, the customers with a charged
day (``customer_days``: every bought or pay-as-you-go day, every enabled
monthly day) and the revenue those days earned, from their per-day totals
(``customer_day_totals``); its last point is today's charges.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, and_, case, distinct, func, select

from billingd.calendar import end_of_day
from billingd.customer_views import states_of_standings
from billingd.customers import Calendar
from billingd.packages import cheapest_operator_price
from schema.tables import (
    customer_day_totals,
    customer_state_totals,
    customers,
    master_packages,
    operators,
    package_prices,
    packages,
    payments,
    sessions,
)
from schema.tenancy import Actor, visible_operator_ids

EXPIRING_DAYS = 3
CHART_DAYS = 30
LOW_FUND_DAYS = 3


@dataclass(frozen=True)
class ChartDay:
    day: date
    active: int
    revenue: int


def _visible(query, column, visible: set[int] | None):
    return query if visible is None else query.where(column.in_(visible))


def _of_visible_customers(query, customer_id, visible: set[int] | None):
    """Rows (sessions, payments) of the customers the actor sees: the admin's every customer's, with no
    join to read; any other actor's through the customer's operator."""
    if visible is None:
        return query.where(customer_id.is_not(None))
    return query.join(customers, customers.c.id == customer_id).where(customers.c.operator_id.in_(visible))


def customer_counts(connection: Connection, actor: Actor, calendar: Calendar) -> dict:
    """Active, expired, suspended, online now and expiring within EXPIRING_DAYS.

    The standings are counted by customer_state_totals (kept by triggers), not
    by reading every customer; whether a customer in service has lapsed
    depends on the time, so those whose paid time ends before EXPIRING_DAYS
    from now are counted from the index on expiries (a few days of them)."""
    actor.require("customers.view", "see the dashboard")
    visible = visible_operator_ids(connection, actor)
    now = calendar.now
    standings = {
        standing: int(count)  # PostgreSQL sums are Decimal
        for standing, count in connection.execute(
            _visible(
                select(
                    customer_state_totals.c.standing, func.sum(customer_state_totals.c.customers)
                ).group_by(customer_state_totals.c.standing),
                customer_state_totals.c.operator_id,
                visible,
            )
        )
    }
    lapsed, expiring = connection.execute(
        _visible(
            select(
                func.count(case((customers.c.expires_at <= now, 1))),
                func.count(case((customers.c.expires_at > now, 1))),
            ).where(
                customers.c.deleted_at.is_(None),
                customers.c.status == "active",
                customers.c.expires_at <= now + timedelta(days=EXPIRING_DAYS),
            ),
            customers.c.operator_id,
            visible,
        )
    ).one()
    online = connection.execute(
        _of_visible_customers(
            select(func.count(distinct(sessions.c.customer_id))).where(sessions.c.stopped_at.is_(None)),
            sessions.c.customer_id,
            visible,
        )
    ).scalar()
    return {**states_of_standings(standings, lapsed), "expiring": expiring, "online": online}


def expiring_customers(
    connection: Connection, actor: Actor, calendar: Calendar, limit: int = 20
) -> list[dict]:
    """The customers whose paid time ends within EXPIRING_DAYS, soonest first."""
    actor.require("customers.view", "see the dashboard")
    now = calendar.now
    query = (
        select(
            customers.c.username, customers.c.name, customers.c.expires_at, operators.c.login.label("owner")
        )
        .select_from(customers.join(operators, operators.c.id == customers.c.operator_id))
        .where(
            customers.c.deleted_at.is_(None),
            customers.c.status == "active",
            customers.c.expires_at > now,
            customers.c.expires_at <= now + timedelta(days=EXPIRING_DAYS),
        )
        .order_by(customers.c.expires_at)
        .limit(limit)
    )
    return [
        dict(row)
        for row in connection.execute(
            _visible(query, customers.c.operator_id, visible_operator_ids(connection, actor))
        ).mappings()
    ]


def collected_today(connection: Connection, actor: Actor, calendar: Calendar) -> int:
    """Today's customer payments (cash, renewals paid in cash, cards, top-ups) for the visible customers."""
    actor.require("money", "see collections")
    start = end_of_day(calendar.today - timedelta(days=1), calendar.zone)
    # A customer's payment is received by its operator (the payee): no join to the customers.
    collected = connection.execute(
        _visible(
            select(func.coalesce(func.sum(payments.c.amount), 0)).where(
                payments.c.created_at >= start, payments.c.customer_id.is_not(None)
            ),
            payments.c.payee_operator_id,
            visible_operator_ids(connection, actor),
        )
    ).scalar()
    return int(collected)  # PostgreSQL sums are Decimal


def collections_today(
    connection: Connection, actor: Actor, calendar: Calendar, limit: int = 20
) -> list[dict]:
    """Today's customer payments (cash, renewals paid in cash, cards, top-ups), newest first, with names."""
    actor.require("money", "see collections")
    start = end_of_day(calendar.today - timedelta(days=1), calendar.zone)
    query = (
        select(
            payments.c.created_at,
            payments.c.amount,
            payments.c.method,
            customers.c.username,
            customers.c.name,
            operators.c.login.label("owner"),
        )
        .select_from(
            payments.join(customers, customers.c.id == payments.c.customer_id).join(
                operators, operators.c.id == customers.c.operator_id
            )
        )
        .where(payments.c.created_at >= start)
        .order_by(payments.c.id.desc())
        .limit(limit)
    )
    visible = visible_operator_ids(connection, actor)
    return [
        dict(row) for row in connection.execute(_visible(query, customers.c.operator_id, visible)).mappings()
    ]


def fund_position(connection: Connection, actor: Actor) -> dict | None:
    """The home operator's fund at its parent, what a day of its customers costs it, and the days it covers.

    None for the admin (it has no parent to pay). Low when the fund cannot pay
    the cheapest operator price (no new customer) or covers under LOW_FUND_DAYS.
    """
    actor.require("money", "see the fund")
    owner = connection.execute(select(operators).where(operators.c.id == actor.home_id)).mappings().one()
    if owner["parent_id"] is None:
        return None
    available = owner["fund_balance"] + owner["credit_limit"]
    # Its customers counted per package first (the states index alone), then priced: a handful of
    # rows to join, not one per customer.
    per_package = (
        select(customers.c.package_id, func.count().label("customers"))
        .where(
            customers.c.operator_id == owner["id"],
            customers.c.deleted_at.is_(None),
            customers.c.status == "active",
        )
        .group_by(customers.c.package_id)
        .subquery("per_package")
    )
    daily_cost = connection.execute(
        select(
            func.coalesce(
                func.sum(
                    package_prices.c.operator_price * per_package.c.customers / master_packages.c.period_days
                ),
                0,
            )
        )
        .select_from(
            per_package.join(
                package_prices,
                and_(
                    package_prices.c.package_id == per_package.c.package_id,
                    package_prices.c.operator_id == owner["id"],
                ),
            )
            .join(packages, packages.c.id == per_package.c.package_id)
            .join(master_packages, master_packages.c.id == packages.c.master_package_id)
        )
        .where(master_packages.c.billing_type == "daily")
    ).scalar()
    days = available // daily_cost if daily_cost else None
    cheapest = cheapest_operator_price(connection, owner["id"])
    low = (cheapest is not None and available < cheapest) or (days is not None and days < LOW_FUND_DAYS)
    return {
        "billing_mode": owner["billing_mode"],
        "fund": owner["fund_balance"],
        "credit_limit": owner["credit_limit"],
        "available": available,
        "daily_cost": int(daily_cost),
        "days_covered": days,
        "cheapest_operator_price": cheapest,
        "low": owner["billing_mode"] == "prepaid" and low,
    }


def chart(connection: Connection, actor: Actor, calendar: Calendar, days: int = CHART_DAYS) -> list[ChartDay]:
    """Customers with a charged day and the revenue those days earned, per day, for the last ``days`` days
    (today included, empty days as zero); the last point is today's charges.

    It reads customer_day_totals (customer days summed per day and operator,
    kept by the database's triggers): a few rows per operator and day, not a
    month of customer days."""
    actor.require("money", "see revenue")
    first = calendar.today - timedelta(days=days - 1)
    query = _visible(
        select(
            customer_day_totals.c.day,
            func.sum(customer_day_totals.c.customers).label("active"),
            func.sum(customer_day_totals.c.amount).label("revenue"),
        )
        .where(customer_day_totals.c.day >= first, customer_day_totals.c.day <= calendar.today)
        .group_by(customer_day_totals.c.day),
        customer_day_totals.c.operator_id,
        visible_operator_ids(connection, actor),
    )
    found = {row.day: row for row in connection.execute(query)}
    days_shown = (first + timedelta(days=offset) for offset in range(days))
    return [
        ChartDay(day, int(found[day].active), int(found[day].revenue))
        if day in found
        else ChartDay(day, 0, 0)
        for day in days_shown
    ]
