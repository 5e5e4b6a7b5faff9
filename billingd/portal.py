"""What a logged-in subscriber sees and does: its own account only.

A subscriber (:class:`billingd.credentials.Subscriber`) reads its profile,
expiry, wallet, usage, invoices and payments, redeems a card, and buys or
upgrades to a public package of its operator's price list, paid from its
wallet. The money moves exactly as when its operator does it for it (the same
domain functions, on the operator's books); the ledger and the audit log show
no operator as the one who did it, because the subscriber did.
"""

import dataclasses
import hmac
from datetime import datetime

from sqlalchemy import Connection, select

from billingd import cards, customers, lifecycle
from billingd.credentials import Subscriber
from billingd.customers import Calendar
from billingd.packages import PricedPackage, _priced_query, priced_package, priced_package_by_id
from schema.engine import as_utc
from schema.errors import NotFound, RadbillError
from schema.tables import customer_usage, invoices, master_packages, package_prices, packages, payments
from schema.tenancy import Actor, resolve_actor_by_id
from schema.usage import usage_period_start


def _row(connection: Connection, subscriber: Subscriber, *, lock: bool = False):
    query = select(customers.customers).where(customers.customers.c.id == subscriber.customer_id)
    row = connection.execute(query.with_for_update() if lock else query).mappings().one()
    if row["deleted_at"] is not None:
        raise NotFound(f"customer {row['username']} is deleted")
    return row


def _on_behalf(connection: Connection, row) -> Actor:
    """The owner's rights on the owner's books, with no operator as the one who acted."""
    owner = resolve_actor_by_id(connection, row["operator_id"])
    return dataclasses.replace(owner, caller_id=None)


def profile(connection: Connection, subscriber: Subscriber, now: datetime) -> dict:
    """Plan, status, absolute expiry and days left, wallet, contact details."""
    row = _row(connection, subscriber)
    priced = priced_package_by_id(connection, row["operator_id"], row["package_id"])
    expires = as_utc(row["expires_at"])
    return {
        "username": row["username"],
        "customer_code": row["customer_code"],
        "name": row["name"],
        "phone": row["phone"],
        "address": row["address"],
        "package": priced.name,
        "billing_type": priced.billing_type,
        "status": row["status"],
        "status_reason": row["status_reason"],
        "expires_at": expires,
        "seconds_left": max(0, int((expires - now).total_seconds())) if expires else None,
        "wallet_balance": row["wallet_balance"],
    }


def _master(connection: Connection, row, *columns):
    """Columns of the master package behind the customer's package."""
    return connection.execute(
        select(*columns)
        .select_from(packages.join(master_packages, master_packages.c.id == packages.c.master_package_id))
        .where(packages.c.id == row["package_id"])
    ).one()


def usage(connection: Connection, subscriber: Subscriber, calendar: Calendar) -> dict:
    """Bytes up and down in the current billing period, against the package quota."""
    row = _row(connection, subscriber)
    master = _master(connection, row, master_packages.c.period_days, master_packages.c.quota_bytes)
    start = usage_period_start(as_utc(row["expires_at"]), master.period_days, calendar.zone, calendar.now)
    used = connection.execute(
        select(customer_usage.c.upload_bytes, customer_usage.c.download_bytes).where(
            customer_usage.c.customer_id == row["id"], customer_usage.c.period_start == start
        )
    ).first()
    upload, download = (used.upload_bytes, used.download_bytes) if used else (0, 0)
    return {
        "period_start": start,
        "upload_bytes": upload,
        "download_bytes": download,
        "quota_bytes": master.quota_bytes,
        "remaining_bytes": max(0, master.quota_bytes - upload - download) if master.quota_bytes else None,
    }


def speed(connection: Connection, subscriber: Subscriber) -> dict:
    """The package's rates in bits per second: download (tx, towards it) and upload (rx)."""
    rates = _master(
        connection, _row(connection, subscriber), master_packages.c.rate_rx, master_packages.c.rate_tx
    )
    return {"download": rates.rate_tx, "upload": rates.rate_rx}


def own_invoices(connection: Connection, subscriber: Subscriber) -> list[dict]:
    query = (
        select(invoices)
        .where(invoices.c.customer_id == subscriber.customer_id)
        .order_by(invoices.c.issued_on.desc(), invoices.c.id.desc())
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def own_payments(connection: Connection, subscriber: Subscriber) -> list[dict]:
    query = (
        select(
            payments.c.id, payments.c.amount, payments.c.method, payments.c.reference, payments.c.created_at
        )
        .where(payments.c.customer_id == subscriber.customer_id)
        .order_by(payments.c.id.desc())
    )
    return [{**row, "created_at": as_utc(row["created_at"])} for row in connection.execute(query).mappings()]


def public_packages(connection: Connection, subscriber: Subscriber) -> list[PricedPackage]:
    """The public packages of its operator's price list: what it may buy."""
    query = (
        _priced_query()
        .where(
            package_prices.c.operator_id == subscriber.operator_id,
            package_prices.c.visibility == "public",
        )
        .order_by(packages.c.name)
    )
    return [PricedPackage(**row) for row in connection.execute(query).mappings()]


def redeem(
    connection: Connection, subscriber: Subscriber, pin: str, calendar: Calendar, pin_key: bytes
) -> None:
    """Use a recharge card of its operator on its own account, once."""
    row = _row(connection, subscriber, lock=True)
    cards.redeem_for(connection, _on_behalf(connection, row), row, pin, calendar, pin_key)


def buy(connection: Connection, subscriber: Subscriber, package: str, calendar: Calendar) -> None:
    """Buy one more period of its package, or switch to another public package, from its wallet."""
    row = _row(connection, subscriber, lock=True)
    if row["status"] == "suspended" and row["status_reason"] not in customers.SELF_CLEARING:
        raise RadbillError("your account is suspended by your operator: contact it")
    wanted = priced_package(connection, row["operator_id"], package)
    if wanted.visibility != "public":
        raise NotFound(f"package {package!r} is not offered to you")
    owner = _on_behalf(connection, row)
    if wanted.package_id == row["package_id"]:
        lifecycle.renew_row(connection, owner, row, calendar, cash=False)
    else:
        lifecycle.change_package_row(connection, owner, row, package, calendar)
        last_paid = lifecycle.last_paid_day(connection, row["id"])
        if wanted.billing_type == "daily" and (last_paid is None or last_paid <= calendar.today):
            lifecycle.renew_row(
                connection, owner, _row(connection, subscriber, lock=True), calendar, cash=False
            )


MIN_PASSWORD_LENGTH = 6


def change_password(connection: Connection, subscriber: Subscriber, current: str, new: str) -> None:
    """A new PPPoE/Hotspot password, once the current one is given again."""
    row = _row(connection, subscriber, lock=True)
    if not hmac.compare_digest(current.encode(), row["password"].encode()):
        raise RadbillError("the current password is wrong")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise RadbillError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    customers.reset_password(connection, _on_behalf(connection, row), row["username"], new)
