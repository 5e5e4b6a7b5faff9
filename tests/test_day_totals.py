"""customer_day_totals: the database's triggers keep the per-day sums of customer days through every
kind of write (renewals, daily runs, refunds, direct deletes), ledger verify proves them, and the
dashboard's chart reads them."""

from sqlalchemy import delete, func, select, update

from billingd import dashboard, ledger, lifecycle, runs
from schema.tables import customer_day_totals, customer_days
from schema.tables import customers as customers_table
from tests import billing_world as world


def totals(connection) -> dict:
    return {
        (row.day, row.operator_id): (row.customers, row.amount)
        for row in connection.execute(select(customer_day_totals))
        if (row.customers, row.amount) != (0, 0)
    }


def summed(connection) -> dict:
    query = (
        select(
            customer_days.c.day, customers_table.c.operator_id, func.count(), func.sum(customer_days.c.amount)
        )
        .join(customers_table, customers_table.c.id == customer_days.c.customer_id)
        .group_by(customer_days.c.day, customers_table.c.operator_id)
    )
    return {
        (day, operator): (count, int(amount)) for day, operator, count, amount in connection.execute(query)
    }


def test_the_totals_follow_every_write_and_verify_proves_them(engine):
    with engine.begin() as connection:
        world.build(connection)
        reseller1 = world.add_customer_of(connection, "reseller1", "alice", world.on())
        world.add_customer_of(connection, "sub1", "carol", world.on(), package="Lite 5M")
        admin = world.add_customer_of(connection, "admin", "dave", world.on(), package="Office")
        assert totals(connection) == summed(connection) and totals(connection)
        lifecycle.renew(connection, reseller1, "alice", world.on(2), cash=True)
        for day in range(1, 4):
            runs.run_day(connection, world.on(day).today, world.SETTINGS, now=world.on(day).now)
        lifecycle.suspend(connection, admin, "dave", world.on(3))  # refunds unused days: deletes rows
        lifecycle.delete_customer(connection, reseller1, "alice", world.on(3))
        assert totals(connection) == summed(connection)
        assert ledger.verify(connection) == []
        # A bulk statement (one trigger call on PostgreSQL for many rows) and an update of amounts.
        connection.execute(update(customer_days).values(amount=customer_days.c.amount + 1))
        connection.execute(delete(customer_days).where(customer_days.c.day == world.on(1).today))
        assert totals(connection) == summed(connection)


def test_verify_finds_totals_that_disagree(engine):
    with engine.begin() as connection:
        world.build(connection)
        world.add_customer_of(connection, "reseller1", "alice", world.on())
        connection.execute(update(customer_day_totals).values(amount=customer_day_totals.c.amount + 5))
        found = ledger.verify(connection)
    assert found and all("customer_day_totals" in problem for problem in found)


def test_the_chart_reads_the_totals(engine):
    with engine.begin() as connection:
        world.build(connection)
        reseller1 = world.add_customer_of(connection, "reseller1", "alice", world.on())
        world.add_customer_of(connection, "reseller2", "bob", world.on())
        points = dashboard.chart(connection, reseller1, world.on(3))
        assert [point.day for point in points][-1] == world.on(3).today and len(points) == 30
        bought = {point.day: point for point in points if point.active}
        assert set(bought) == {world.on(day).today for day in range(4)}  # bob is reseller2's
        assert all(point.active == 1 and point.revenue > 0 for point in bought.values())
        connection.execute(update(customer_day_totals).values(amount=7))
        assert {
            point.revenue for point in dashboard.chart(connection, reseller1, world.on(3)) if point.active
        } == {7}
