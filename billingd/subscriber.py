"""What a logged-in subscriber may see and do with its own account, and nothing else.

The subscriber is a :class:`billingd.credentials.Subscriber` (from its login
session), never a username from the request, so it cannot reach another
account. Money moves through the same customer and card functions as an
operator's, carried out on behalf of the customer's owner: the ledger and the
cascade are the same whoever clicks. Each action is also audited as the
subscriber's own.
"""

import hmac

from sqlalchemy import Connection, select

from billingd import cards, customers
from billingd.credentials import Subscriber
from billingd.customer_views import state_of
from billingd.packages import PricedPackage, price_list
from billingd.tenancy import Actor, resolve_actor
from schema.audit import audit
from schema.engine import as_utc
from schema.errors import RadbillError
from schema.tables import customer_usage, invoices, master_packages, operators, packages, payments
from schema.tables import customers as customers_table
from schema.usage import usage_period_start

MIN_PASSWORD_LENGTH = 6
SHOWN_ROWS = 12


def _on_behalf(connection: Connection, subscriber: Subscriber) -> Actor:
    """The customer's owner, as whom the shared customer functions run."""
    login = connection.execute(
        select(operators.c.login).where(operators.c.id == subscriber.operator_id)
    ).scalar_one()
    return resolve_actor(connection, login, audited=False)


def _audit(connection: Connection, subscriber: Subscriber, action: str, **details) -> None:
    audit(
        connection,
        f"subscriber.{action}",
        actor_id=None,
        target_type="customer",
        target_id=subscriber.customer_id,
        **details,
    )


def account(connection: Connection, subscriber: Subscriber, calendar: customers.Calendar) -> dict:
    """Status, expiry, wallet, package and speed, usage against quota, recent invoices and payments."""
    row = (
        connection.execute(
            select(
                customers_table,
                packages.c.name.label("package"),
                master_packages.c.rate_rx,
                master_packages.c.rate_tx,
                master_packages.c.quota_bytes,
                master_packages.c.period_days,
                master_packages.c.billing_type,
            )
            .select_from(
                customers_table.join(packages, packages.c.id == customers_table.c.package_id).join(
                    master_packages, master_packages.c.id == packages.c.master_package_id
                )
            )
            .where(customers_table.c.id == subscriber.customer_id)
        )
        .mappings()
        .one()
    )
    expires_at = as_utc(row["expires_at"])
    period_start = usage_period_start(expires_at, row["period_days"], calendar.zone, calendar.now)
    usage = connection.execute(
        select(customer_usage.c.upload_bytes, customer_usage.c.download_bytes).where(
            customer_usage.c.customer_id == subscriber.customer_id,
            customer_usage.c.period_start == period_start,
        )
    ).first()
    used = (usage.upload_bytes + usage.download_bytes) if usage else 0
    recent_invoices = connection.execute(
        select(
            invoices.c.number,
            invoices.c.period_start,
            invoices.c.period_end,
            invoices.c.amount,
            invoices.c.paid_amount,
            invoices.c.due_on,
            invoices.c.status,
        )
        .where(invoices.c.customer_id == subscriber.customer_id)
        .order_by(invoices.c.id.desc())
        .limit(SHOWN_ROWS)
    ).mappings()
    recent_payments = connection.execute(
        select(payments.c.created_at, payments.c.amount, payments.c.method, payments.c.reference)
        .where(payments.c.customer_id == subscriber.customer_id)
        .order_by(payments.c.id.desc())
        .limit(SHOWN_ROWS)
    ).mappings()
    return {
        "username": row["username"],
        "name": row["name"],
        "customer_code": row["customer_code"],
        "state": state_of(dict(row), calendar.now),
        "status": row["status"],
        "expires_at": expires_at,
        "days_left": max((expires_at - calendar.now).days, 0) if expires_at else None,
        "wallet_balance": row["wallet_balance"],
        "package": row["package"],
        "billing_type": row["billing_type"],
        "rate_rx": row["rate_rx"],
        "rate_tx": row["rate_tx"],
        "quota_bytes": row["quota_bytes"],
        "used_bytes": used,
        "period_start": period_start,
        "invoices": [dict(invoice) for invoice in recent_invoices],
        "payments": [{**payment, "created_at": as_utc(payment["created_at"])} for payment in recent_payments],
    }


def public_packages(connection: Connection, subscriber: Subscriber) -> list[PricedPackage]:
    """The packages its operator sells publicly (private ones are never shown to subscribers)."""
    owner = _on_behalf(connection, subscriber)
    return [package for package in price_list(connection, owner) if package.visibility == "public"]


def redeem_card(
    connection: Connection, subscriber: Subscriber, pin: str, calendar: customers.Calendar
) -> None:
    """Use a recharge card of its operator on its own account, once."""
    cards.redeem(connection, _on_behalf(connection, subscriber), pin, subscriber.username, calendar)
    _audit(connection, subscriber, "redeem")


def buy_package(
    connection: Connection, subscriber: Subscriber, package: str, calendar: customers.Calendar
) -> None:
    """Buy one more period of its package, or switch to another public package, from the wallet."""
    if package not in {priced.name for priced in public_packages(connection, subscriber)}:
        raise RadbillError(f"no public package {package!r}")
    owner = _on_behalf(connection, subscriber)
    current = customers.show_customer(connection, owner, subscriber.username)["package"]
    if package == current:
        customers.renew(connection, owner, subscriber.username, calendar)
    else:
        customers.change_package(connection, owner, subscriber.username, package, calendar)
        paid_until = customers.last_paid_day(connection, subscriber.customer_id)
        if paid_until is None or paid_until <= calendar.today:  # no period bought by the change
            customers.renew(connection, owner, subscriber.username, calendar)
    _audit(connection, subscriber, "buy", package=package)


def change_password(connection: Connection, subscriber: Subscriber, current: str, new: str) -> None:
    """A new PPPoE/Hotspot password, after the current one is given again."""
    stored = connection.execute(
        select(customers_table.c.password).where(customers_table.c.id == subscriber.customer_id)
    ).scalar_one()
    if not hmac.compare_digest(current.encode(), stored.encode()):
        raise RadbillError("the current password is wrong")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise RadbillError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    customers.reset_password(connection, _on_behalf(connection, subscriber), subscriber.username, new)
    _audit(connection, subscriber, "password")
