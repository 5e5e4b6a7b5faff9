"""Payments received: the one writer of ``payments`` rows.

A payment reference (a bank transfer or mobile-money transaction id) is
recorded once per method and payer, so a payment typed twice, or retried
after a time-out, is refused instead of credited twice.
"""

from sqlalchemy import Connection, insert, select

from billingd.money import format_amount
from schema.errors import RadbillError
from schema.tables import payments


def require_new_reference(
    connection: Connection,
    method: str,
    reference: str | None,
    *,
    payer: str,
    customer_id: int | None = None,
    payer_operator_id: int | None = None,
) -> None:
    """Refuse a reference this payer already paid with by this method (no reference: nothing to check)."""
    if reference is None:
        return
    first = connection.execute(
        select(payments.c.entry_id, payments.c.amount).where(
            payments.c.method == method,
            payments.c.reference == reference,
            payments.c.customer_id == customer_id
            if customer_id is not None
            else payments.c.payer_operator_id == payer_operator_id,
        )
    ).first()
    if first is not None:
        raise RadbillError(
            f"{method} payment {reference} from {payer} is already recorded "
            f"({format_amount(first.amount)}, ledger entry #{first.entry_id}): a reference is paid once"
        )


def record(
    connection: Connection,
    *,
    entry_id: int,
    amount: int,
    method: str,
    reference: str | None,
    payee_operator_id: int,
    created_by: int | None,
    customer_id: int | None = None,
    payer_operator_id: int | None = None,
) -> int:
    """Write the payment row of a posted ledger entry."""
    return connection.execute(
        insert(payments).values(
            customer_id=customer_id,
            payer_operator_id=payer_operator_id,
            payee_operator_id=payee_operator_id,
            amount=amount,
            method=method,
            reference=reference,
            entry_id=entry_id,
            created_by=created_by,
        )
    ).inserted_primary_key[0]
