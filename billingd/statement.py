"""An operator's statement for people: its book's lines with names (customers, operators), not ids.

The same lines as ``radbill operator statement`` (:func:`billingd.operators.statement`
decides which), each account and entry named: ``wallet:42`` is shown as the
wallet of its customer, ``child:7`` as the child operator's account, and
each line says whose customer it was for and who posted it.
"""

from datetime import date

from sqlalchemy import Connection, select

from billingd.operators import statement as operator_statement
from schema.tables import customers, ledger_accounts, ledger_entries, operators


def named_statement(
    connection: Connection,
    actor,
    login: str,
    first: date | None,
    last: date | None,
    *,
    latest: int | None = None,
) -> list[dict]:
    """The statement of ``login`` (visibility and the money right checked by the operators domain)."""
    lines = operator_statement(connection, actor, login, first, last, latest=latest)
    if not lines:
        return []
    book = connection.execute(select(operators.c.id).where(operators.c.login == login)).scalar_one()
    names = _account_names(connection, book, {line[side] for line in lines for side in ("debit", "credit")})
    entry_ids = sorted({line["entry"] for line in lines})
    entries = {
        row.id: row
        for row in connection.execute(
            select(ledger_entries.c.id, customers.c.username, operators.c.login.label("posted_by"))
            .select_from(
                ledger_entries.outerjoin(customers, customers.c.id == ledger_entries.c.customer_id).outerjoin(
                    operators, operators.c.id == ledger_entries.c.actor_operator_id
                )
            )
            .where(ledger_entries.c.id.in_(entry_ids))
        )
    }
    return [
        {
            **line,
            "debit_name": names.get(line["debit"], line["debit"]),
            "credit_name": names.get(line["credit"], line["credit"]),
            "customer": entries[line["entry"]].username,
            "posted_by": entries[line["entry"]].posted_by,
        }
        for line in lines
    ]


def _account_names(connection: Connection, book: int, codes: set[str]) -> dict[str, str]:
    """Account code -> a name people read: the customer's username or the other operator's login."""
    counterparty = operators.alias("counterparty")
    rows = connection.execute(
        select(ledger_accounts.c.code, customers.c.username, counterparty.c.login)
        .select_from(
            ledger_accounts.outerjoin(customers, customers.c.id == ledger_accounts.c.customer_id).outerjoin(
                counterparty, counterparty.c.id == ledger_accounts.c.counterparty_operator_id
            )
        )
        .where(ledger_accounts.c.book_operator_id == book, ledger_accounts.c.code.in_(sorted(codes)))
    )
    names = {}
    for code, username, other in rows:
        if username is not None:
            names[code] = f"wallet of {username}"
        elif code == "fund":
            names[code] = f"fund at {other}"
        elif other is not None:
            names[code] = f"account of {other}"
    return names
