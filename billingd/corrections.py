"""Reversing a ledger entry, with its consequences carried forward, or refused with a reason.

:func:`billingd.ledger.reverse` posts the mirror image of an entry; this is
what an admin's ``ledger reverse`` does around it, so that the state kept
outside the ledger follows the books:

- an entry that bought days (activation, renewal, package change, a card, a
  day's charge of one customer): its days are no longer paid and the expiry
  moves back to the last day still paid. Refused if some of its days were
  already refunded or forfeited (the refund carried them) or if the entry is
  the daily run's, shared by every customer charged that day.
- a customer payment: the invoices open again as far as the wallet now owes.
- any entry that takes money back from an operator: refused when its fund
  would fall below minus its credit limit, as a sale would be.
- monthly invoices and advances, refunds and reversals: refused; they follow
  enabled days and other entries, and are corrected by those.
"""

from collections import defaultdict

from sqlalchemy import Connection, and_, delete, func, select, update

from billingd import ledger
from billingd.calendar import end_of_day
from billingd.customers import Calendar
from billingd.money import format_amount
from schema.changes import record_change
from schema.errors import RadbillError
from schema.tables import (
    card_sale_items,
    customer_days,
    customers,
    invoices,
    ledger_accounts,
    ledger_entries,
    ledger_lines,
    operators,
    recharge_cards,
)
from schema.tenancy import Actor

_FOLLOWERS = {
    "invoice": "a monthly invoice follows the enabled days; correct the customer with a payment instead",
    "monthly_advance": "a monthly advance is settled by the invoice of its month",
    "advance_refund": "it settles a monthly advance",
    "refund": "a refund follows the days it gave back",
    "card_sale": "its cards were handed over and may be redeemed; record a payment or payout instead",
}


def reverse_entry(
    connection: Connection, actor_id: int | None, entry_id: int, calendar: Calendar, memo: str = ""
) -> int:
    """Reverse one entry and carry its consequences, or refuse naming why; returns the reversal."""
    entry = ledger.reversible(connection, entry_id)
    if entry["kind"] in _FOLLOWERS:
        raise RadbillError(
            f"ledger entry #{entry_id} ({entry['kind']}) is not reversed: {_FOLLOWERS[entry['kind']]}"
        )
    days = connection.execute(
        select(customer_days.c.customer_id, func.sum(customer_days.c.amount), func.count())
        .where(customer_days.c.entry_id == entry_id)
        .group_by(customer_days.c.customer_id)
    ).all()
    if days and entry["customer_id"] is None:
        raise RadbillError(
            f"ledger entry #{entry_id} is the daily run of {entry['effective_on']}, shared by "
            f"{len(days)} customers: it is not reversed; suspend or refund a customer instead"
        )
    sold_card = connection.execute(
        select(recharge_cards.c.serial)
        .join(card_sale_items, card_sale_items.c.card_id == recharge_cards.c.id)
        .where(recharge_cards.c.entry_id == entry_id)
    ).scalar()
    if sold_card is not None:
        raise RadbillError(
            f"ledger entry #{entry_id} redeemed sold card {sold_card}: it is not reversed (the card is used "
            "and its buyer paid for it); pay the customer out instead"
        )
    _require_cover_after(connection, entry_id)
    reversal = ledger.reverse(connection, entry_id, actor_id=actor_id, memo=memo)
    if entry["customer_id"] is not None:
        if days or _bought_days(connection, entry_id):
            _unpay_days(connection, entry_id, entry["customer_id"], days, calendar)
        if entry["kind"] == "customer_payment":
            reopen_invoices(connection, entry["customer_id"])
        record_change(connection, "customer", entry["customer_id"])
    return reversal


def reverse_as(
    connection: Connection, actor: Actor, entry_id: int, calendar: Calendar, memo: str = ""
) -> int:
    """:func:`reverse_entry` for the admin side with finance: the admin's correction."""
    actor.require("ledger", "reverse ledger entries")
    return reverse_entry(connection, actor.caller_id, entry_id, calendar, memo)


def _customer_charged(connection: Connection, entry_id: int) -> int:
    """What the entry charged customers' wallets (wallet debited to sales)."""
    wallet = ledger_accounts.alias("wallet")
    return int(
        connection.execute(
            select(func.coalesce(func.sum(ledger_lines.c.amount), 0))
            .join(wallet, wallet.c.id == ledger_lines.c.debit_account_id)
            .where(ledger_lines.c.entry_id == entry_id, wallet.c.customer_id.is_not(None))
        ).scalar()
    )


def _bought_days(connection: Connection, entry_id: int) -> bool:
    """An entry of a kind that buys days (whose days may all be gone already)."""
    kind = connection.execute(select(ledger_entries.c.kind).where(ledger_entries.c.id == entry_id)).scalar()
    return kind in ("activation", "renewal", "package_change", "card_renewal", "daily_charge")


def _unpay_days(connection: Connection, entry_id: int, customer_id: int, days, calendar: Calendar) -> None:
    bought = sum(int(amount) for _, amount, _ in days)
    if bought != _customer_charged(connection, entry_id):
        raise RadbillError(
            f"ledger entry #{entry_id} bought days that were since refunded or forfeited: "
            "it is not reversed (the refund already carried them)"
        )
    connection.execute(delete(customer_days).where(customer_days.c.entry_id == entry_id))
    last = connection.execute(
        select(func.max(customer_days.c.day)).where(
            customer_days.c.customer_id == customer_id, customer_days.c.entry_id.is_not(None)
        )
    ).scalar()
    expires = end_of_day(last, calendar.zone) if last is not None else calendar.now
    connection.execute(update(customers).where(customers.c.id == customer_id).values(expires_at=expires))


def _require_cover_after(connection: Connection, entry_id: int) -> None:
    """Reversing gives back what an operator was paid: its fund must stay within its credit limit."""
    fund = ledger_accounts.alias("fund")
    change: dict[int, int] = defaultdict(int)
    for book, debit_code, credit_code, amount in connection.execute(
        select(
            ledger_lines.c.book_operator_id,
            ledger_accounts.c.code,
            fund.c.code,
            ledger_lines.c.amount,
        )
        .join(ledger_accounts, ledger_accounts.c.id == ledger_lines.c.debit_account_id)
        .join(fund, fund.c.id == ledger_lines.c.credit_account_id)
        .where(ledger_lines.c.entry_id == entry_id)
    ):
        # The reversal swaps the sides: a fund debited by the entry is credited back, and so on.
        change[book] -= amount if debit_code == "fund" else 0
        change[book] += amount if credit_code == "fund" else 0
    for operator_id, amount in change.items():
        if amount >= 0:
            continue
        row = (
            connection.execute(select(operators).where(operators.c.id == operator_id).with_for_update())
            .mappings()
            .one()
        )
        if row["fund_balance"] + amount < -row["credit_limit"]:
            raise RadbillError(
                f"reversing ledger entry #{entry_id} would take operator {row['login']}'s fund to "
                f"{format_amount(row['fund_balance'] + amount)}, beyond its credit limit "
                f"{format_amount(row['credit_limit'])}: it is not reversed"
            )


def reopen_invoices(connection: Connection, customer_id: int) -> None:
    """After a payment is taken back: open invoices, newest first, until what they leave unpaid is
    what the wallet owes on them (see :mod:`billingd.reconcile`)."""
    wallet = connection.execute(
        select(customers.c.wallet_balance).where(customers.c.id == customer_id)
    ).scalar()
    invoiced, unpaid = connection.execute(
        select(
            func.coalesce(func.sum(invoices.c.amount), 0),
            func.coalesce(func.sum(invoices.c.amount - invoices.c.paid_amount), 0),
        ).where(invoices.c.customer_id == customer_id, invoices.c.status != "void")
    ).one()
    missing = min(max(0, -wallet), int(invoiced)) - int(unpaid)
    for invoice in connection.execute(
        select(invoices)
        .where(and_(invoices.c.customer_id == customer_id, invoices.c.paid_amount > 0))
        .order_by(invoices.c.issued_on.desc(), invoices.c.id.desc())
    ).mappings():
        if missing <= 0:
            break
        taken = min(missing, invoice["paid_amount"])
        missing -= taken
        connection.execute(
            update(invoices)
            .where(invoices.c.id == invoice["id"])
            .values(paid_amount=invoice["paid_amount"] - taken, status="open")
        )
