"""``radbill demo``: a small ISP to try radbill with. Loading it twice is harmless."""

from datetime import datetime, timedelta, timezone

import click
from sqlalchemy import Connection, insert, select

from cli.main import Context
from nas.registry import add_nas
from schema import migrate
from schema.changes import record_change
from schema.tables import customers, master_packages, operators, package_prices, packages, permissions

MEGABIT = 1_000_000


def load_demo(connection: Connection, now: datetime) -> bool:
    """Insert the demo ISP; False if it is already there."""
    if connection.execute(select(operators.c.id).where(operators.c.login == "admin")).first():
        return False

    def add(table, **values) -> int:
        return connection.execute(insert(table).values(**values)).inserted_primary_key[0]

    admin = add(operators, login="admin", name="ISP owner", role="admin", billing_mode="postpaid")
    reseller = add(operators, login="reseller1", name="Dhanmondi Net", role="reseller", parent_id=admin,
                   billing_mode="prepaid", id_format="DN{seq:05d}")
    add(permissions, operator_id=reseller, permission="reseller_module", granted_by=admin)
    sub = add(operators, login="subreseller1", name="Road 27 Cable", role="sub_reseller", parent_id=reseller,
              billing_mode="prepaid", id_format="R27-{seq:04d}")
    add_nas(connection, "demo-nas", "127.0.0.1", "testing123", description="this machine, for radtest")

    plans = [
        ("PPPoE 10M", dict(customer_type="pppoe", billing_type="daily", rate_rx=10 * MEGABIT, rate_tx=10 * MEGABIT), 50_000, 40_000),
        ("PPPoE 20M 100G", dict(customer_type="pppoe", billing_type="daily", rate_rx=20 * MEGABIT, rate_tx=20 * MEGABIT,
                                quota_bytes=100 * 10**9, fup_rx=2 * MEGABIT, fup_tx=2 * MEGABIT), 80_000, 65_000),
        ("Hotspot 5M", dict(customer_type="hotspot", billing_type="daily", period_days=7, rate_rx=5 * MEGABIT,
                            rate_tx=5 * MEGABIT, simultaneous_use=2), 10_000, 8_000),
    ]
    package_ids = {}
    for name, spec, customer_price, operator_price in plans:
        master = add(master_packages, operator_id=admin, name=name, **spec)
        package = package_ids[name] = add(packages, operator_id=admin, master_package_id=master, name=name)
        add(package_prices, package_id=package, operator_id=admin, customer_price=customer_price, operator_price=0)
        add(package_prices, package_id=package, operator_id=reseller, customer_price=customer_price,
            operator_price=operator_price, assigned_by=admin)
        add(package_prices, package_id=package, operator_id=sub, customer_price=customer_price,
            operator_price=operator_price + 5_000, assigned_by=reseller)

    for code, username, expires_at in (("00001", "demo", now + timedelta(days=30)), ("00002", "expired", now - timedelta(days=1))):
        customer = add(customers, operator_id=admin, username=username, password=username, customer_code=code,
                       name=f"{username.title()} Subscriber", package_id=package_ids["PPPoE 10M"],
                       expires_at=expires_at, wallet_balance=100_000)
        record_change(connection, "customer", customer)
    connection.execute(operators.update().where(operators.c.id == admin).values(id_sequence=2))
    return True


@click.command()
@click.pass_obj
def demo(obj: Context) -> None:
    """Load the demo ISP (migrating the database first)."""
    migrate.upgrade(obj.engine)
    with obj.engine.begin() as connection:
        loaded = load_demo(connection, datetime.now(timezone.utc))
    click.echo("demo data loaded" if loaded else "demo data already present")
    click.echo("try: radtest demo demo 127.0.0.1 0 testing123")


COMMANDS = [demo]
