"""Monthly customers who leave or change package mid-cycle (issue 12, defect 1).

Five monthly customers of reseller1 activated on 2026-11-01 (cycle day 1,
a 30-day month), acted on at noon on the 21st after 21 enabled days, the
runs continued to the next cycle day. Every enabled day is invoiced once,
at the package it was enabled under, for the customer and for reseller1.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billingd import ledger, lifecycle, operators, packages, runs
from billingd.customers import Calendar
from billingd.money import day_share
from schema.errors import RadbillError
from schema.tables import customer_days, invoices, ledger_accounts, ledger_entries, ledger_lines
from tests.billing_world import SETTINGS, ZONE, actor, build, customer, fund_of, money

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


def _reseller_paid_for(connection, username: str, *, before: date) -> int:
    """What reseller1 paid its parent, net, on the entries of one customer effective before a day."""
    cost = ledger_accounts.alias("cost")
    entries = select(ledger_entries.c.id).where(
        ledger_entries.c.customer_id == customer(connection, username)["id"],
        ledger_entries.c.effective_on < before,
    )

    def total(side):
        return connection.execute(
            select(func.coalesce(func.sum(ledger_lines.c.amount), 0))
            .join(cost, cost.c.id == side)
            .where(ledger_lines.c.entry_id.in_(entries), cost.c.code == "cost_of_sales")
        ).scalar()

    return total(ledger_lines.c.debit_account_id) - total(ledger_lines.c.credit_account_id)


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
            lifecycle.add_customer(
                connection, reseller1, name, password="pw", package=package, calendar=_noon(FIRST)
            )
        _run_through(connection, date(2026, 11, 21), FIRST)
        acted = _noon(date(2026, 11, 21))
        lifecycle.delete_customer(connection, reseller1, "gone", acted)
        lifecycle.change_package(connection, reseller1, "to_daily", "Lite 5M", acted)
        lifecycle.change_package(connection, reseller1, "up", "Office Pro", acted)
        lifecycle.change_package(connection, reseller1, "down", "Office", acted)
        _run_through(connection, date(2026, 12, 1), date(2026, 11, 22))

        expected = {"kept": "1000", "gone": "700", "to_daily": "700", "up": "1600", "down": "2400"}
        assert {name: _invoiced(connection, name) for name in plan} == {
            name: money(amount) for name, amount in expected.items()
        }
        # reseller1 pays 800.00 (Office) or 2400.00 (Office Pro) a month: the same days, its prices.
        # It is prepaid: it paid each month at its start, and the invoices settled the difference.
        expected_level = {"kept": "800", "gone": "560", "to_daily": "560", "up": "1280", "down": "1920"}
        december = date(2026, 12, 1)
        assert {name: _reseller_paid_for(connection, name, before=december) for name in plan} == {
            name: money(amount) for name, amount in expected_level.items()
        }
        # ...and has paid December for the three still monthly, each at its package.
        in_advance = {"kept": "800", "gone": "0", "to_daily": "0", "up": "2400", "down": "800"}
        assert {
            name: _reseller_paid_for(connection, name, before=december + timedelta(days=1))
            - _reseller_paid_for(connection, name, before=december)
            for name in plan
        } == {name: money(amount) for name, amount in in_advance.items()}
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


def test_a_prepaid_operator_pays_a_monthly_customers_cycle_at_its_start(engine):
    """Defect 7 of issue 12: r1's fund stayed 1000.00 until the first invoice, a month later."""
    with engine.begin() as connection:
        build(connection, fund={"reseller2": "1000"})
        reseller2 = actor(connection, "reseller2")
        # Activated on the 1st: cycle day 1, the whole of November (30 days) at 800.00.
        lifecycle.add_customer(
            connection, reseller2, "bob", password="pw", package="Office", calendar=_noon(FIRST)
        )
        assert fund_of(connection, "reseller2") == money("200")
        assert ledger.verify(connection) == []
    with engine.connect() as connection:
        before = fund_of(connection, "reseller2")
    with pytest.raises(
        RadbillError, match="operator reseller2 cannot cover the month 2026-11-29..2026-12-27"
    ):
        with engine.begin() as connection:
            lifecycle.add_customer(
                connection,
                reseller2,
                "cy",
                password="pw",
                package="Office",
                calendar=_noon(date(2026, 11, 29)),
            )
    with engine.begin() as connection:
        assert fund_of(connection, "reseller2") == before
        operators.settle(
            connection, actor(connection, "admin"), "reseller2", money("1000"), mode="prepaid", today=FIRST
        )
        lifecycle.add_customer(
            connection, reseller2, "cy", password="pw", package="Office", calendar=_noon(date(2026, 11, 29))
        )
        # Activated on the 29th: cycle day 28; 29 Nov .. 27 Dec are the last 29 of the 30 days of the period from 28 Nov to 28 Dec.
        assert fund_of(connection, "reseller2") == before + money("1000") - sum(
            day_share(money("800"), 30, i) for i in range(1, 30)
        )
        assert ledger.verify(connection) == []
