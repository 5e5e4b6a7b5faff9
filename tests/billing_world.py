"""A small ISP for the billing tests, built with the domain functions.

admin
├── reseller1 (prepaid, reseller_module)  ── sub1 (prepaid)
└── reseller2 (prepaid)

Package "Home 10M": daily, 30 days, customer price 500.00; resellers pay
400.00, sub1 pays reseller1 450.00. "Lite 5M": daily, 30 days, 300.00 /
200.00 / 250.00. "Office": monthly, 1000.00 / 800.00 / 900.00.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from billingd.customers import Calendar
from billingd.isp import IspPlan, OperatorPlan, PackagePlan, build_isp
from billingd.money import parse_amount
from schema.settings import BillingdSettings
from schema.tables import (
    customer_days,
    customers,
    enforcement_jobs,
    invoices,
    ledger_entries,
    ledger_lines,
    payments,
)
from schema.tables import (
    operators as operators_table,
)
from schema.tenancy import resolve_actor

ZONE = ZoneInfo("Asia/Dhaka")
SETTINGS = BillingdSettings(timezone="Asia/Dhaka")
# 12:00 in Dhaka on 2026-11-24.
NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
TODAY = date(2026, 11, 24)
MEGABIT = 1_000_000
PIN_KEY = bytes(range(32))  # the card PIN key of the domain tests
PLANS = {
    "Home 10M": ("daily", "500", "400", "450"),
    "Lite 5M": ("daily", "300", "200", "250"),
    "Office": ("monthly", "1000", "800", "900"),
}


def on(days: int = 0) -> Calendar:
    """The calendar ``days`` days after NOW."""
    return Calendar(NOW + timedelta(days=days), ZONE)


def money(text: str) -> int:
    return parse_amount(text)


def actor(connection, login: str, act_as: str | None = None):
    return resolve_actor(connection, login, act_as)


def add_customer_of(connection, owner: str, username: str, calendar: Calendar, package: str = "Home 10M"):
    """Add (and activate) a customer of ``owner``; return the owner's actor."""
    from billingd import lifecycle

    who = actor(connection, owner)
    lifecycle.add_customer(connection, who, username, password="pw", package=package, calendar=calendar)
    return who


def plan(fund: dict | None = None) -> IspPlan:
    """The hierarchy, packages and prices; funds default to 5000 / 5000 / 2000."""
    fund = {"reseller1": "5000", "reseller2": "5000", "sub1": "2000"} | (fund or {})
    return IspPlan(
        operators=(
            OperatorPlan(
                "reseller1",
                "reseller",
                id_format="R1-{seq:04d}",
                permissions=("reseller_module",),
                fund=money(fund["reseller1"]),
            ),
            OperatorPlan("reseller2", "reseller", id_format="R2-{seq:04d}", fund=money(fund["reseller2"])),
            OperatorPlan(
                "sub1", "sub_reseller", parent="reseller1", id_format="S1-{seq:04d}", fund=money(fund["sub1"])
            ),
        ),
        packages=tuple(
            PackagePlan(
                name,
                dict(customer_type="pppoe", billing_type=billing, rate_rx=10 * MEGABIT, rate_tx=10 * MEGABIT),
                money(customer_price),
                {
                    "reseller1": money(reseller_price),
                    "reseller2": money(reseller_price),
                    "sub1": money(sub_price),
                },
            )
            for name, (billing, customer_price, reseller_price, sub_price) in PLANS.items()
        ),
    )


def build(connection, *, fund: dict | None = None) -> None:
    build_isp(connection, plan(fund), TODAY)


def fund_of(connection, login: str) -> int:
    return connection.execute(
        select(operators_table.c.fund_balance).where(operators_table.c.login == login)
    ).scalar()


def customer(connection, username: str):
    return connection.execute(select(customers).where(customers.c.username == username)).mappings().one()


def snapshot(connection) -> dict:
    """Everything money and lifecycle touch, to prove that nothing changed."""
    count = lambda table: connection.execute(select(func.count()).select_from(table)).scalar()  # noqa: E731
    return {
        "entries": count(ledger_entries),
        "lines": count(ledger_lines),
        "days": count(customer_days),
        "payments": count(payments),
        "invoices": count(invoices),
        "jobs": count(enforcement_jobs),
        "customers": sorted(
            tuple(row)
            for row in connection.execute(
                select(
                    customers.c.username,
                    customers.c.status,
                    customers.c.wallet_balance,
                    customers.c.expires_at,
                    customers.c.package_id,
                    customers.c.deleted_at,
                )
            )
        ),
        "funds": sorted(
            tuple(row)
            for row in connection.execute(
                select(operators_table.c.login, operators_table.c.fund_balance, operators_table.c.id_sequence)
            )
        ),
    }
