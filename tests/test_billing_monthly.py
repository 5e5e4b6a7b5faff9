"""Monthly customers who leave or change package mid-cycle (issue 12, defect 1).

Five monthly customers of reseller1 activated on 2026-11-01 (cycle day 1,
a 30-day month), acted on at noon on the 21st after 21 enabled days, the
runs continued to the next cycle day. Every enabled day is invoiced once,
at the package it was enabled under, for the customer and for reseller1.
"""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from billingd import customers, ledger, packages, runs
from billingd.customers import Calendar
from schema.tables import customer_days, invoices, ledger_accounts, ledger_entries, ledger_lines
from tests.billing_world import SETTINGS, ZONE, actor, build, customer, money

FIRST = date(2026, 11, 1)


def _noon(day: date) -> Calendar:
    return Calendar(datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC), ZONE)


def _run_through(connection, last: date, first: date) -> None:
    day = first
    while day <= last:
        runs.run_day(connection, day, SETTINGS, now=_noon(day).now)
        day += timedelta(days=1)


def _invoiced(connection, username: str) -> int:
    return connection.execute(
        select(func.coalesce(func.sum(invoices.c.amount), 0)).where(
            invoices.c.customer_id == customer(connection, username)["id"]
        )
    ).scalar()


def _reseller_paid_for(connection, username: str) -> int:
    """What reseller1 paid its parent on the invoices of one customer."""
    cost = ledger_accounts.alias("cost")
    return connection.execute(
        select(func.coalesce(func.sum(ledger_lines.c.amount), 0))
        .join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
        .join(cost, cost.c.id == ledger_lines.c.debit_account_id)
        .where(
            ledger_entries.c.customer_id == customer(connection, username)["id"],
            ledger_entries.c.kind == "invoice",
            cost.c.code == "cost_of_sales",
        )
    ).scalar()


def test_leaving_or_changing_package_mid_cycle_bills_the_enabled_days_at_their_package(engine):
    with engine.begin() as connection:
        build(connection, fund={"reseller1": "50000"})
        admin = actor(connection, "admin")
        packages.add_master_package(
            connection,
            admin,
            "Office Pro",
            customer_type="pppoe",
            billing_type="monthly",
            rate_rx=1,
            rate_tx=1,
        )
        packages.add_package(
            connection,
            admin,
            "Office Pro",
            master="Office Pro",
            customer_price=money("3000"),
            operator_price=money("2400"),
        )
        packages.assign_package(connection, admin, "Office Pro", "reseller1", operator_price=money("2400"))
        reseller1 = actor(connection, "reseller1")
        plan = {
            "kept": "Office",
            "gone": "Office",
            "to_daily": "Office",
            "up": "Office",
            "down": "Office Pro",
        }
        for name, package in plan.items():
            customers.add_customer(
                connection, reseller1, name, password="pw", package=package, calendar=_noon(FIRST)
            )
        _run_through(connection, date(2026, 11, 21), FIRST)
        acted = _noon(date(2026, 11, 21))
        customers.delete_customer(connection, reseller1, "gone", acted)
        customers.change_package(connection, reseller1, "to_daily", "Lite 5M", acted)
        customers.change_package(connection, reseller1, "up", "Office Pro", acted)
        customers.change_package(connection, reseller1, "down", "Office", acted)
        _run_through(connection, date(2026, 12, 1), date(2026, 11, 22))

        expected = {"kept": "1000", "gone": "700", "to_daily": "700", "up": "1600", "down": "2400"}
        assert {name: _invoiced(connection, name) for name in plan} == {
            name: money(amount) for name, amount in expected.items()
        }
        # reseller1 pays 800.00 (Office) or 2400.00 (Office Pro) a month: the same days, its prices.
        expected_level = {"kept": "800", "gone": "560", "to_daily": "560", "up": "1280", "down": "1920"}
        assert {name: _reseller_paid_for(connection, name) for name in plan} == {
            name: money(amount) for name, amount in expected_level.items()
        }
        # Every enabled day is billed once: none is left unbilled before the cycle day.
        assert (
            connection.execute(
                select(func.count()).where(
                    customer_days.c.entry_id.is_(None), customer_days.c.day < date(2026, 12, 1)
                )
            ).scalar()
            == 0
        )
        assert ledger.verify(connection) == []
