"""customer_state_totals: the database's triggers keep the live customers per operator and standing
through every kind of write (commands, the daily run, bulk statements), ledger verify proves them, and
the dashboard's state counts, read from them, agree with the states of the customers one by one."""

from datetime import timedelta
from fractions import Fraction

from sqlalchemy import delete, func, insert, select, update

from billingd import dashboard, ledger, lifecycle, runs
from billingd.customer_views import state_of
from billingd.customers import list_customers
from schema.engine import as_utc
from schema.tables import customer_state_changes, customer_state_totals, customers, master_packages, operators
from tests import billing_world as world


def totals(connection) -> dict:
    return {
        (row.operator_id, row.standing): row.customers
        for row in connection.execute(select(customer_state_totals))
        if row.customers
    }


def recounted(connection) -> dict:
    """The standings counted from the customers, with the rule of the states (customer_views)."""
    found: dict = {}
    for row in connection.execute(select(customers).where(customers.c.deleted_at.is_(None))).mappings():
        if row["status"] == "active":
            standing = "in_service"
        else:
            standing = "unpaid" if state_of(dict(row), world.NOW) == "expired" else "suspended"
        found[(row["operator_id"], standing)] = found.get((row["operator_id"], standing), 0) + 1
    return found


def test_the_totals_follow_every_write_and_verify_proves_them(engine):
    with engine.begin() as connection:
        world.build(connection)
        reseller1 = world.add_customer_of(connection, "reseller1", "alice", world.on())
        world.add_customer_of(connection, "reseller1", "erin", world.on())
        world.add_customer_of(connection, "sub1", "carol", world.on(), package="Lite 5M")
        admin = world.add_customer_of(connection, "admin", "dave", world.on(), package="Office")
        assert totals(connection) == recounted(connection) and sum(totals(connection).values()) == 4
        lifecycle.renew(connection, reseller1, "alice", world.on(2), cash=True)  # no change of standing
        lifecycle.suspend(connection, admin, "dave", world.on(3))
        lifecycle.suspend(connection, reseller1, "erin", world.on(3))
        lifecycle.resume(connection, reseller1, "erin", world.on(4))
        lifecycle.delete_customer(connection, reseller1, "alice", world.on(4))
        assert totals(connection) == recounted(connection)
        lifecycle.restore_customer(connection, reseller1, "alice")
        for day in range(40, 43):  # past every paid period: the run suspends the unpaid
            runs.run_day(connection, world.on(day).today, world.SETTINGS, now=world.on(day).now)
        assert totals(connection) == recounted(connection)
        assert ledger.verify(connection) == []
        # Bulk statements: many rows change standing, owner, or are deleted in one statement.
        connection.execute(update(customers).values(status="suspended", status_reason="overdue"))
        assert totals(connection) == recounted(connection)
        sub1 = connection.execute(
            select(customers.c.operator_id).where(customers.c.username == "carol")
        ).scalar()
        connection.execute(update(customers).values(operator_id=sub1, status="disabled"))
        assert totals(connection) == recounted(connection)
        assert connection.execute(select(func.count()).select_from(customer_state_changes)).scalar() == 0
        rows = [dict(row) for row in connection.execute(select(customers)).mappings()]
        for row in rows:
            row.pop("id")
            row["username"] += "x"
            row["customer_code"] += "x"
            row["status"] = "active"
        connection.execute(insert(customers), rows)
        orphans = select(customers.c.id).where(customers.c.username.like("%x"))
        connection.execute(delete(customers).where(customers.c.id.in_(orphans.scalar_subquery())))
        assert totals(connection) == recounted(connection)


def test_verify_finds_totals_that_disagree(engine):
    with engine.begin() as connection:
        world.build(connection)
        world.add_customer_of(connection, "reseller1", "alice", world.on())
        connection.execute(
            update(customer_state_totals).values(customers=customer_state_totals.c.customers + 1)
        )
        found = ledger.verify(connection)
    assert found and all("customer_state_totals" in problem for problem in found)


def test_the_dashboard_counts_agree_with_the_customers_states(engine):
    with engine.begin() as connection:
        world.build(connection)
        reseller1 = world.add_customer_of(connection, "reseller1", "alice", world.on())
        for name in ("bob", "erin", "frank"):
            world.add_customer_of(connection, "reseller1", name, world.on())
        world.add_customer_of(connection, "sub1", "carol", world.on(), package="Lite 5M")
        admin = world.add_customer_of(connection, "admin", "dave", world.on(), package="Office")
        lifecycle.suspend(connection, reseller1, "bob", world.on(1))
        connection.execute(  # unpaid, and one in service whose paid time lapses before the other
            update(customers)
            .where(customers.c.username == "erin")
            .values(status="suspended", status_reason="expired")
        )
        connection.execute(
            update(customers)
            .where(customers.c.username == "frank")
            .values(expires_at=world.NOW + timedelta(days=1, hours=12))
        )
        lifecycle.delete_customer(connection, admin, "dave", world.on(1))
        for actor in (admin, reseller1):
            records = list_customers(connection, actor)
            for days in (0, 2, 29, 45):  # nothing lapsed yet, frank lapsed, most expiring, all lapsed
                calendar = world.on(days)
                states = [state_of(record, calendar.now) for record in records]
                soon = calendar.now + timedelta(days=dashboard.EXPIRING_DAYS)
                counts = dashboard.customer_counts(connection, actor, calendar)
                assert {key: counts[key] for key in ("active", "expired", "suspended")} == {
                    state: states.count(state) for state in ("active", "expired", "suspended")
                }, (actor.login, days)
                assert counts["expiring"] == sum(
                    state == "active"
                    and record["expires_at"] is not None
                    and as_utc(record["expires_at"]) <= soon
                    for state, record in zip(states, records)
                )
        today, in_two_days = (
            dashboard.customer_counts(connection, reseller1, world.on(days)) for days in (0, 2)
        )
        assert (today["active"], today["expired"], today["suspended"]) == (3, 1, 1)  # alice, frank, carol
        assert today["expiring"] >= 1 and (in_two_days["active"], in_two_days["expired"]) == (
            2,
            2,
        )  # frank lapsed


def test_the_fund_position_prices_the_customers_per_package(engine):
    """What a day of a reseller's customers costs it: its in-service daily customers, each at its
    operator price over its period (counted per package, then priced)."""
    with engine.begin() as connection:
        world.build(connection)
        reseller1 = world.add_customer_of(connection, "reseller1", "alice", world.on())
        for name, package in (
            ("bob", "Home 10M"),
            ("erin", "Lite 5M"),
            ("frank", "Office"),
            ("gus", "Home 10M"),
        ):
            world.add_customer_of(connection, "reseller1", name, world.on(), package=package)
        world.add_customer_of(connection, "sub1", "carol", world.on())  # sub1's, not reseller1's
        lifecycle.suspend(connection, reseller1, "gus", world.on())
        fund = dashboard.fund_position(connection, reseller1)
        owner = connection.execute(select(operators).where(operators.c.login == "reseller1")).mappings().one()
        period = connection.execute(
            select(master_packages.c.period_days).where(master_packages.c.name == "Home 10M")
        ).scalar()
        daily = Fraction(2 * world.money("400") + world.money("200"), period)  # alice, bob; erin
        assert fund["daily_cost"] == int(daily)
        assert fund["days_covered"] == (owner["fund_balance"] + owner["credit_limit"]) // daily
