"""A customer's wallet: payments in (``customer topup`` and ``pay``, which settle open
invoices and bring back a customer suspended for want of payment) and pay-outs.
"""

from sqlalchemy import Connection

from billingd import cascade, invoices, ledger, payments
from billingd.customers import (
    SELF_CLEARING,
    Calendar,
    audit_customer,
    changeable_customer,
    customer_row,
    package_of,
    show_customer,
)
from billingd.lifecycle import charge_day, reactivate_if_expired
from billingd.money import check_amount, format_amount
from schema.changes import record_change
from schema.errors import RadbillError
from schema.tenancy import Actor


def receive_payment(
    connection: Connection,
    actor: Actor,
    username: str,
    amount: int,
    calendar: Calendar,
    *,
    method: str = "cash",
    reference: str | None = None,
) -> dict:
    """A customer pays its owner (``topup`` and ``pay``): wallet credited, open
    invoices settled oldest first (partial payments too), and a customer
    suspended for expiry or an overdue bill is reactivated once it can be."""
    row = changeable_customer(connection, actor, username, "record customer payments", money=True)
    receive(connection, actor, row, amount, calendar, method=method, reference=reference)
    return show_customer(connection, actor, username)


def receive(
    connection: Connection,
    actor: Actor,
    row,
    amount: int,
    calendar: Calendar,
    *,
    method: str,
    reference: str | None,
) -> int:
    """Post a customer's payment and its consequences; returns the ledger entry."""
    if amount <= 0:
        raise RadbillError("the amount must be more than zero")
    payments.require_new_reference(
        connection, method, reference, payer=f"customer {row['username']}", customer_id=row["id"]
    )
    check_amount(amount)
    line = cascade.customer_payment_line(connection, row["operator_id"], row["id"], amount)
    entry_id = ledger.post(
        connection,
        "customer_payment",
        [line],
        actor_id=actor.caller_id,
        customer_id=row["id"],
        effective_on=calendar.today,
        memo=f"{method}{' ' + reference if reference else ''}",
    )
    payments.record(
        connection,
        customer_id=row["id"],
        payee_operator_id=row["operator_id"],
        amount=amount,
        method=method,
        reference=reference,
        entry_id=entry_id,
        created_by=actor.caller_id,
    )
    invoices.settle_open(connection, row["id"], amount)
    fresh = customer_row(connection, row["username"])
    if fresh["status"] == "suspended" and fresh["status_reason"] in SELF_CLEARING:
        priced = package_of(connection, fresh)
        if priced.billing_type == "daily":
            try:
                ready = charge_day(connection, actor, fresh, calendar)
            except RadbillError:  # an operator above cannot cover the day: stays suspended, payment kept
                ready = False
        else:
            ready = not invoices.has_overdue(connection, row["id"], calendar.today)
        if ready:
            reactivate_if_expired(connection, fresh, calendar)
    record_change(connection, "customer", row["id"])
    audit_customer(connection, actor, "payment", row["id"], amount=amount, method=method, entry=entry_id)
    return entry_id


def pay_out(
    connection: Connection,
    actor: Actor,
    username: str,
    amount: int,
    calendar: Calendar,
    *,
    method: str = "cash",
    reference: str | None = None,
) -> dict:
    """Hand a customer its wallet balance (or part of it) back: a leaving subscriber's credit is not
    a liability for ever. The wallet is debited, the owner's cash credited."""
    row = changeable_customer(
        connection, actor, username, "pay out customer wallets", money=True, deleted_ok=True
    )
    if amount <= 0:
        raise RadbillError("the amount must be more than zero")
    if amount > row["wallet_balance"]:
        raise RadbillError(
            f"customer {row['username']}'s wallet holds {format_amount(row['wallet_balance'])}: "
            f"it cannot pay out {format_amount(amount)}"
        )
    owner = row["operator_id"]
    entry_id = ledger.post(
        connection,
        "payout",
        [
            ledger.Line(
                owner,
                ledger.account_id(connection, owner, ledger.wallet_code(row["id"])),
                ledger.account_id(connection, owner, "cash"),
                amount,
            )
        ],
        actor_id=actor.caller_id,
        customer_id=row["id"],
        effective_on=calendar.today,
        memo=f"wallet paid out ({method}{', ' + reference if reference else ''})",
    )
    record_change(connection, "customer", row["id"])
    audit_customer(connection, actor, "payout", row["id"], amount=amount, method=method, entry=entry_id)
    return show_customer(connection, actor, username)
