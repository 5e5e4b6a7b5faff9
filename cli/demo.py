"""``radbill demo``: a small ISP to try radbill with. Loading it twice is harmless.

Built with the same domain functions as the commands, so the demo's money is
real ledger entries: `radbill ledger verify` passes on it.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Connection

from billingd import lifecycle, operators, wallets
from billingd.customers import Calendar
from billingd.isp import IspPlan, OperatorPlan, PackagePlan, RouterPlan, build_isp
from billingd.money import parse_amount
from cli.context import Context
from schema import migrate
from schema.tenancy import resolve_actor

MEGABIT = 1_000_000
DEMO_ZONE = ZoneInfo("Asia/Dhaka")


def _price(amount: str) -> int:
    return parse_amount(amount)


DEMO_ISP = IspPlan(
    admin_name="ISP owner",
    operators=(
        OperatorPlan(
            "reseller1",
            "reseller",
            name="Dhanmondi Net",
            id_format="DN{seq:05d}",
            permissions=("reseller_module",),
            fund=_price("10000"),
        ),
        OperatorPlan(
            "subreseller1",
            "sub_reseller",
            parent="reseller1",
            name="Road 27 Cable",
            id_format="R27-{seq:04d}",
            fund=_price("2000"),
        ),
    ),
    routers=(RouterPlan("demo-nas", "127.0.0.1", "testing123", "this machine, for radtest"),),
    packages=tuple(
        PackagePlan(
            name,
            spec,
            _price(customer_price),
            {"reseller1": _price(operator_price), "subreseller1": _price(operator_price) * 11 // 10},
        )
        for name, spec, customer_price, operator_price in [
            (
                "PPPoE 10M",
                dict(customer_type="pppoe", billing_type="daily", rate_rx=10 * MEGABIT, rate_tx=10 * MEGABIT),
                "500",
                "400",
            ),
            (
                "PPPoE 20M 100G",
                dict(
                    customer_type="pppoe",
                    billing_type="daily",
                    rate_rx=20 * MEGABIT,
                    rate_tx=20 * MEGABIT,
                    quota_bytes=100 * 10**9,
                    fup_rx=2 * MEGABIT,
                    fup_tx=2 * MEGABIT,
                ),
                "800",
                "650",
            ),
            (
                "Hotspot 5M",
                dict(
                    customer_type="hotspot",
                    billing_type="daily",
                    period_days=7,
                    rate_rx=5 * MEGABIT,
                    rate_tx=5 * MEGABIT,
                    simultaneous_use=2,
                ),
                "100",
                "80",
            ),
        ]
    ),
)


def load_demo(connection: Connection, now: datetime, zone: ZoneInfo = DEMO_ZONE) -> bool:
    """Insert the demo ISP; False if it is already there."""
    if operators.admin_exists(connection):
        return False
    calendar = Calendar(now, zone)
    build_isp(connection, DEMO_ISP, calendar.today)
    admin = resolve_actor(connection, "admin")
    lifecycle.add_customer(
        connection,
        admin,
        "demo",
        password="demo",
        package="PPPoE 10M",
        calendar=calendar,
        name="Demo Subscriber",
    )
    wallets.receive_payment(connection, admin, "demo", parse_amount("1000"), calendar)
    # Activated 31 days ago with an empty wallet: its period is over.
    lifecycle.add_customer(
        connection,
        admin,
        "expired",
        password="expired",
        package="PPPoE 10M",
        calendar=Calendar(now - timedelta(days=31), zone),
        name="Expired Subscriber",
    )
    # Its package has expired; billingd's first run will find the wallet empty and suspend it.
    return True


@click.command()
@click.pass_obj
def demo(obj: Context) -> None:
    """Load the demo ISP (migrating the database first)."""
    migrate.upgrade(obj.engine)
    with obj.engine.begin() as connection:
        loaded = load_demo(connection, datetime.now(UTC), obj.settings.billingd.zone)
    click.echo("demo data loaded" if loaded else "demo data already present")
    click.echo("try: radtest demo demo 127.0.0.1 0 testing123")


COMMANDS = [demo]
