"""Monthly invoices: every enabled day of a monthly customer is invoiced once,
at the package it was enabled under, at every level of the chain.

The daily run records each enabled day (a ``customer_days`` row with no
entry); on the cycle day the days before it are invoiced (:func:`invoice_days`).
A deletion or a package change settles the days enabled so far, today
included, at the package being left (:func:`settle_to_date`): a final or
interim invoice. Each day costs its share of the price of the monthly period
it falls in, so a full month is exactly the price, a part of one its enabled
days' shares.
"""

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import Connection, insert, select, update

from billingd import cascade, ledger
from billingd.cascade import Level
from billingd.prices import billing_period, prorated
from schema.tables import customer_days, customers, invoices, master_packages, package_prices, packages


def unbilled_days(connection: Connection, customer_id: int, through: date) -> list[date]:
    """The enabled days up to ``through`` that no invoice has billed yet, oldest first."""
    return list(
        connection.execute(
            select(customer_days.c.day)
            .where(
                customer_days.c.customer_id == customer_id,
                customer_days.c.day <= through,
                customer_days.c.entry_id.is_(None),
            )
            .order_by(customer_days.c.day)
        ).scalars()
    )


def charge(price: int, cycle_day: int, days: list[date]) -> int:
    """What ``days`` cost at a monthly ``price``: each its share of the period it falls in."""
    by_period = defaultdict(list)
    for day in days:
        by_period[billing_period(day, cycle_day)].append(day)
    return sum(
        prorated(price, (end - start).days, [(day - start).days for day in enabled])
        for (start, end), enabled in by_period.items()
    )


def priced_levels(connection: Connection, customer, days: list[date]) -> tuple[int, list[Level], list[int]]:
    """The customer's amount for ``days`` and each paying level's, at the customer's current package."""
    customer_price = connection.execute(
        select(package_prices.c.customer_price).where(
            package_prices.c.package_id == customer.package_id,
            package_prices.c.operator_id == customer.operator_id,
        )
    ).scalar()
    levels = cascade.chain_levels(connection, customer.operator_id, customer.package_id)
    amounts = [charge(level.price, customer.cycle_day, days) for level in levels]
    return charge(customer_price, customer.cycle_day, days), levels, amounts


def invoice_days(
    connection: Connection,
    customer,
    days: list[date],
    levels: list[Level],
    amounts: list[int],
    amount: int,
    *,
    issued_on: date,
    due_days: int,
    actor_id: int | None = None,
    what: str = "invoice",
) -> int:
    """Post the invoice of ``days`` (customer and every level), record it, mark the days billed."""
    lines = [cascade.customer_charge_line(connection, customer.operator_id, customer.id, amount)]
    lines += cascade.operator_lines(connection, levels, amounts)
    entry_id = ledger.post(
        connection,
        "invoice",
        lines,
        actor_id=actor_id,
        customer_id=customer.id,
        effective_on=issued_on,
        idempotency_key=f"invoice:{customer.id}:{days[0].isoformat()}",
        memo=f"{what} {days[0].isoformat()}..{days[-1].isoformat()}",
    )
    prepaid = max(0, min(customer.wallet_balance, amount))
    connection.execute(
        insert(invoices).values(
            number=f"INV-{days[0]:%Y%m%d}-{customer.id}",
            customer_id=customer.id,
            operator_id=customer.operator_id,
            period_start=days[0],
            period_end=days[-1] + timedelta(days=1),
            amount=amount,
            paid_amount=prepaid,
            issued_on=issued_on,
            due_on=issued_on + timedelta(days=due_days),
            status="paid" if prepaid == amount else "open",
            entry_id=entry_id,
        )
    )
    connection.execute(
        update(customer_days)
        .where(customer_days.c.customer_id == customer.id, customer_days.c.day.in_(days))
        .values(entry_id=entry_id)
    )
    return entry_id


def _monthly(connection: Connection, customer_id: int):
    """The customer's row if its current package bills monthly, else None."""
    return connection.execute(
        select(customers)
        .join(packages, packages.c.id == customers.c.package_id)
        .join(master_packages, master_packages.c.id == packages.c.master_package_id)
        .where(customers.c.id == customer_id, master_packages.c.billing_type == "monthly")
    ).first()


def settle_to_date(
    connection: Connection, customer_id: int, today: date, *, due_days: int, actor_id: int | None, what: str
) -> int | None:
    """Invoice a monthly customer's enabled days through today at its current package, before it
    leaves the package or is deleted: today counts as enabled if the customer is active. Refused,
    naming the operator, when a level cannot cover its share. Returns the entry, if any."""
    customer = _monthly(connection, customer_id)
    if customer is None:
        return None
    if customer.status == "active" and customer.billing_anchor <= today:
        if (
            connection.execute(
                select(customer_days.c.day).where(
                    customer_days.c.customer_id == customer_id, customer_days.c.day == today
                )
            ).first()
            is None
        ):
            connection.execute(insert(customer_days).values(customer_id=customer_id, day=today, amount=0))
    days = unbilled_days(connection, customer_id, today)
    if not days:
        return None
    amount, levels, amounts = priced_levels(connection, customer, days)
    cascade.require_cover(levels, amounts, f"the {what} of customer {customer.username}")
    return invoice_days(
        connection,
        customer,
        days,
        levels,
        amounts,
        amount,
        issued_on=today,
        due_days=due_days,
        actor_id=actor_id,
        what=what,
    )


def settle_open(connection: Connection, customer_id: int, amount: int) -> None:
    """A payment of ``amount`` settles the customer's open invoices, oldest first, partly if need be."""
    open_invoices = (
        connection.execute(
            select(invoices)
            .where(invoices.c.customer_id == customer_id, invoices.c.status == "open")
            .order_by(invoices.c.issued_on, invoices.c.id)
        )
        .mappings()
        .all()
    )
    for invoice in open_invoices:
        if amount <= 0:
            break
        applied = min(amount, invoice["amount"] - invoice["paid_amount"])
        amount -= applied
        paid = invoice["paid_amount"] + applied
        connection.execute(
            update(invoices)
            .where(invoices.c.id == invoice["id"])
            .values(paid_amount=paid, status="paid" if paid == invoice["amount"] else "open")
        )


def has_overdue(connection: Connection, customer_id: int, today: date) -> bool:
    return (
        connection.execute(
            select(invoices.c.id).where(
                invoices.c.customer_id == customer_id, invoices.c.status == "open", invoices.c.due_on < today
            )
        ).first()
        is not None
    )
