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
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, func, insert, select, update

from billingd import cascade, ledger
from billingd.calendar import billing_period
from billingd.cascade import Level
from billingd.money import prorated
from schema.errors import RadbillError
from schema.identity import canonical_username
from schema.tables import (
    customer_days,
    customers,
    invoices,
    master_packages,
    monthly_advances,
    operators,
    package_prices,
    packages,
    payments,
)
from schema.tenancy import Actor, require_visible, visible_operator_ids


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


def open_advances(connection: Connection, customer_id: int, through: date) -> dict[int, int]:
    """What each prepaid level advanced for the customer's periods starting by ``through``, not yet settled."""
    rows = connection.execute(
        select(monthly_advances.c.operator_id, func.sum(monthly_advances.c.amount))
        .where(
            monthly_advances.c.customer_id == customer_id,
            monthly_advances.c.settled_entry_id.is_(None),
            monthly_advances.c.period_start <= through,
        )
        .group_by(monthly_advances.c.operator_id)
    ).all()
    return {operator_id: int(amount) for operator_id, amount in rows}


@dataclass(frozen=True)
class Bill:
    """What a span of a monthly customer's days costs: the customer, and each level net of its advance."""

    amount: int
    levels: list[Level]
    owed: list[int]
    advanced: list[int]

    @property
    def due(self) -> list[int]:
        """What each level still pays (negative: what it gets back)."""
        return [owed - advanced for owed, advanced in zip(self.owed, self.advanced)]


def bill(connection: Connection, customer, days: list[date], through: date) -> Bill:
    """Price ``days`` at the customer's current package, netting the advances of periods begun by ``through``."""
    customer_price = connection.execute(
        select(package_prices.c.customer_price).where(
            package_prices.c.package_id == customer.package_id,
            package_prices.c.operator_id == customer.operator_id,
        )
    ).scalar()
    levels = cascade.chain_levels(connection, customer.operator_id, customer.package_id)
    advanced = open_advances(connection, customer.id, through)
    return Bill(
        charge(customer_price, customer.cycle_day, days),
        levels,
        [charge(level.price, customer.cycle_day, days) for level in levels],
        [advanced.get(level.operator_id, 0) for level in levels],
    )


def _level_lines(connection: Connection, levels: list[Level], due: list[int]):
    charged = cascade.operator_lines(connection, levels, [max(amount, 0) for amount in due])
    refunded = cascade.operator_lines(connection, levels, [max(-amount, 0) for amount in due], refund=True)
    return charged + refunded


def _close_advances(connection: Connection, customer_id: int, through: date, entry_id: int) -> None:
    connection.execute(
        update(monthly_advances)
        .where(
            monthly_advances.c.customer_id == customer_id,
            monthly_advances.c.settled_entry_id.is_(None),
            monthly_advances.c.period_start <= through,
        )
        .values(settled_entry_id=entry_id)
    )


def invoice_days(
    connection: Connection,
    customer,
    days: list[date],
    charged: Bill,
    *,
    through: date,
    issued_on: date,
    due_days: int,
    actor_id: int | None = None,
    what: str = "invoice",
) -> int:
    """Post the invoice of ``days`` (customer and every level, the advances of periods begun by
    ``through`` settled), record it, mark the days billed. With no days, the advances are given back."""
    lines = []
    if days:
        lines.append(
            cascade.customer_charge_line(connection, customer.operator_id, customer.id, charged.amount)
        )
    lines += _level_lines(connection, charged.levels, charged.due)
    span = f"{days[0].isoformat()}..{days[-1].isoformat()}" if days else f"no enabled days to {issued_on}"
    entry_id = ledger.post(
        connection,
        "invoice" if days else "advance_refund",
        lines,
        actor_id=actor_id,
        customer_id=customer.id,
        effective_on=issued_on,
        idempotency_key=f"invoice:{customer.id}:{days[0].isoformat()}" if days else None,
        memo=f"{what} {span}",
    )
    _close_advances(connection, customer.id, through, entry_id)
    if not days:
        return entry_id
    amount = charged.amount
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


def advance_cycle(
    connection: Connection, customer_id: int, first: date, *, actor_id: int | None, refuse: bool
) -> bool:
    """The prepaid levels pay a monthly customer's period from ``first`` to its end, at its start.

    Each prepaid level pays its operator price prorated to the days left in the
    period; postpaid levels are charged on the invoice, in arrears. Nothing if
    the period is already advanced. A level that cannot cover it refuses the
    command naming the operator (``refuse``) or, in the run, returns False.
    """
    customer = _monthly(connection, customer_id)
    if customer is None:
        return True
    start, end = billing_period(first, customer.cycle_day)
    if (
        first >= end
        or connection.execute(
            select(monthly_advances.c.id).where(
                monthly_advances.c.customer_id == customer_id,
                monthly_advances.c.period_start == start,
                monthly_advances.c.settled_entry_id.is_(None),
            )
        ).first()
    ):
        return True
    days = [first + timedelta(days=i) for i in range((end - first).days)]
    levels = [
        level
        for level in cascade.chain_levels(connection, customer.operator_id, customer.package_id)
        if level.billing_mode == "prepaid"
    ]
    amounts = [charge(level.price, customer.cycle_day, days) for level in levels]
    if not any(amounts):
        return True
    what = f"the month {first.isoformat()}..{days[-1].isoformat()} of customer {customer.username}"
    if refuse:
        cascade.require_cover(levels, amounts, what)
    elif cascade.shortfall(levels, amounts) is not None:
        return False
    entry_id = ledger.post(
        connection,
        "monthly_advance",
        cascade.operator_lines(connection, levels, amounts),
        actor_id=actor_id,
        customer_id=customer_id,
        effective_on=first,
        memo=f"prepaid levels pay {what}",
    )
    connection.execute(
        insert(monthly_advances),
        [
            dict(
                customer_id=customer_id,
                operator_id=level.operator_id,
                period_start=start,
                amount=amount,
                entry_id=entry_id,
            )
            for level, amount in zip(levels, amounts)
            if amount
        ],
    )
    return True


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
    charged = bill(connection, customer, days, today)
    if not days and not any(charged.advanced):
        return None
    cascade.require_cover(charged.levels, charged.due, f"the {what} of customer {customer.username}")
    return invoice_days(
        connection,
        customer,
        days,
        charged,
        through=today,
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


# --- read models: payment receipts, taking an Actor (invoices: billingd.reports) ------


def _payment_query():
    payer = operators.alias("payer")
    payee = operators.alias("payee")
    return select(
        payments.c.id.label("receipt"),
        payments.c.created_at.label("received_at"),
        func.coalesce(customers.c.username, payer.c.login).label("payer"),
        payee.c.login.label("payee"),
        payments.c.amount,
        payments.c.method,
        payments.c.reference,
        payments.c.entry_id.label("entry"),
        payments.c.payee_operator_id,
    ).select_from(
        payments.join(payee, payee.c.id == payments.c.payee_operator_id)
        .outerjoin(customers, customers.c.id == payments.c.customer_id)
        .outerjoin(payer, payer.c.id == payments.c.payer_operator_id)
    )


def _receipt(row) -> dict:
    view = dict(row)
    del view["payee_operator_id"]
    return view


def receipt(connection: Connection, actor: Actor, payment_id: int) -> dict:
    """A receipt for one payment received: who paid whom, how much, how, and its ledger entry."""
    actor.require("money", "see payment receipts")
    row = connection.execute(_payment_query().where(payments.c.id == payment_id)).mappings().first()
    if row is None:
        raise RadbillError(f"no payment #{payment_id}")
    require_visible(connection, actor, row["payee_operator_id"], f"payment #{payment_id}")
    return _receipt(row)


def list_payments(connection: Connection, actor: Actor, *, username: str | None = None) -> list[dict]:
    """The payments the actor's operators received, newest first; the receipt is the payment's number."""
    actor.require("money", "see payments")
    query = _payment_query().order_by(payments.c.id.desc())
    visible = visible_operator_ids(connection, actor)
    if visible is not None:
        query = query.where(payments.c.payee_operator_id.in_(visible))
    if username is not None:
        query = query.where(customers.c.username == canonical_username(username))
    return [_receipt(row) for row in connection.execute(query).mappings()]
