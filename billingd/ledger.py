"""The append-only, double-entry ledger: one book per operator.

Each ``ledger_lines`` row moves an amount from one account to another inside
one operator's book, so every book balances by construction. The accounts:

in every operator's book
    ``cash`` (asset)            money received or paid outside radbill
    ``sales`` (income)          what its customers were charged
    ``cost_of_sales`` (expense) what it paid its parent for its customers' service
    ``wholesale`` (income)      what its children paid it
    ``wallet:<customer id>`` (liability) a customer's prepaid balance
                                (negative: the customer owes, e.g. an open invoice)
in the book of an operator whose cards were sold (opened at the first sale)
    ``cards_sold`` (liability)  the face value of its sold cards not redeemed yet
    ``card_commission`` (expense) what its card distributors kept of the sales
between a parent P and a child C, one account in each book, mirroring each other
    ``fund`` in C's book (asset, counterparty P): C's prepaid fund held by P,
                                negative when a postpaid C owes P
    ``child:<C>`` in P's book (liability, counterparty C): the same amount seen from P

Two cached balances are kept in step with the lines in the same transaction:
``customers.wallet_balance`` (radiusd reads it) and ``operators.fund_balance``.
:func:`verify` recomputes every balance from the lines and compares.
A correction is a reversing entry (:func:`reverse`), never an edit.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)

from billingd import reconcile
from schema.engine import bulk_insert, rows_among
from schema.errors import RadbillError
from schema.tables import customers, ledger_accounts, ledger_entries, ledger_lines, operators
from schema.tenancy import Actor

DEBIT_NORMAL = ("asset", "expense")
OPERATOR_ACCOUNTS = (
    ("cash", "asset", "Cash and bank"),
    ("sales", "income", "Sales to customers"),
    ("cost_of_sales", "expense", "Paid to the parent operator for customers' service"),
    ("wholesale", "income", "Received from child operators"),
)


@dataclass(frozen=True)
class Line:
    """Move ``amount`` within ``book``: debit one account, credit another."""

    book: int
    debit: int
    credit: int
    amount: int


def wallet_code(customer_id: int) -> str:
    return f"wallet:{customer_id}"


def child_code(child_id: int) -> str:
    return f"child:{child_id}"


def _add_account(connection: Connection, book: int, code: str, kind: str, name: str, **links) -> int:
    values = dict(book_operator_id=book, code=code, kind=kind, name=name, **links)
    return connection.execute(insert(ledger_accounts).values(**values)).inserted_primary_key[0]


def open_operator_books(connection: Connection, operator_id: int, parent_id: int | None) -> None:
    """Create an operator's accounts, and the mirror pair with its parent."""
    for code, kind, name in OPERATOR_ACCOUNTS:
        _add_account(connection, operator_id, code, kind, name)
    if parent_id is not None:
        _add_account(
            connection,
            operator_id,
            "fund",
            "asset",
            "Fund held by the parent operator",
            counterparty_operator_id=parent_id,
        )
        _add_account(
            connection,
            parent_id,
            child_code(operator_id),
            "liability",
            "Held for a child operator",
            counterparty_operator_id=operator_id,
        )


def open_wallet(connection: Connection, customer_id: int, owner_id: int) -> int:
    return _add_account(
        connection,
        owner_id,
        wallet_code(customer_id),
        "liability",
        "Customer wallet",
        customer_id=customer_id,
    )


def ensure_account(connection: Connection, book: int, code: str, kind: str, name: str) -> int:
    """An account opened on first use: those only some books need (card sales)."""
    found = connection.execute(
        select(ledger_accounts.c.id).where(
            ledger_accounts.c.book_operator_id == book, ledger_accounts.c.code == code
        )
    ).scalar()
    return found if found is not None else _add_account(connection, book, code, kind, name)


def account_id(connection: Connection, book: int, code: str) -> int:
    return account_ids(connection, [(book, code)])[book, code]


def account_ids(connection: Connection, wanted: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The ids of several accounts, by (book, code), in one query (a renewal's lines name eight)."""
    keys = set(wanted)
    found = {
        (row.book_operator_id, row.code): row.id
        for row in connection.execute(
            select(ledger_accounts.c.id, ledger_accounts.c.book_operator_id, ledger_accounts.c.code).where(
                tuple_(ledger_accounts.c.book_operator_id, ledger_accounts.c.code).in_(sorted(keys))
            )
        )
    }
    missing = sorted(keys - set(found))
    if missing:
        book, code = missing[0]
        raise RadbillError(f"ledger account {code!r} missing in book of operator #{book}")
    return found


def post(
    connection: Connection,
    kind: str,
    lines: list[Line],
    *,
    actor_id: int | None = None,
    customer_id: int | None = None,
    memo: str = "",
    idempotency_key: str | None = None,
    effective_on: date | None = None,
    reverses_entry_id: int | None = None,
) -> int:
    """Write one entry with its lines and update the cached balances they touch."""
    lines = [line for line in lines if line.amount != 0]
    if any(line.amount < 0 for line in lines):
        raise ValueError("a ledger line moves a positive amount; swap debit and credit instead")
    entry_id = connection.execute(
        insert(ledger_entries).values(
            kind=kind,
            memo=memo[:400],
            actor_operator_id=actor_id,
            customer_id=customer_id,
            idempotency_key=idempotency_key,
            effective_on=effective_on,
            reverses_entry_id=reverses_entry_id,
        )
    ).inserted_primary_key[0]
    add_lines(connection, entry_id, lines)
    return entry_id


def add_lines(connection: Connection, entry_id: int, lines: list[Line]) -> None:
    """Append lines to an entry being written, and update the cached balances they touch."""
    if lines:
        bulk_insert(
            connection,
            ledger_lines,
            [
                dict(
                    entry_id=entry_id,
                    book_operator_id=line.book,
                    debit_account_id=line.debit,
                    credit_account_id=line.credit,
                    amount=line.amount,
                )
                for line in lines
            ],
        )
        _apply_to_caches(connection, lines)


def add_selected_lines(
    connection: Connection,
    entry_id: int,
    lines: str,
    parameters: dict,
    *,
    customer_values: dict | None = None,
) -> None:
    """Append the lines a SELECT yields (book, debit account, credit account, amount) to an entry
    being written, set-based, and update the cached balances they touch: the daily run's way to
    write a line per customer through the same entry point as :func:`post`.

    The lines are staged in a temporary table, so that the balances are summed from it rather
    than found again among the ledger's lines. ``customer_values`` (column: value) are set in the
    same UPDATE on every customer whose wallet the lines move: the daily run moves a charged
    customer's paid time there, so that each row is written once (a second UPDATE of a million
    customers cost as much again)."""
    connection.execute(
        text(
            "CREATE TEMPORARY TABLE selected_lines AS "
            f"WITH selected (book_operator_id, debit_account_id, credit_account_id, amount) AS ({lines}) "
            "SELECT * FROM selected"
        ),
        parameters,
    )
    if connection.dialect.name == "postgresql":
        connection.execute(text("ANALYZE selected_lines"))  # temporary tables get no statistics otherwise
    connection.execute(
        text(
            "INSERT INTO ledger_lines (entry_id, book_operator_id, debit_account_id, credit_account_id, amount) "
            "SELECT :entry_id, book_operator_id, debit_account_id, credit_account_id, amount FROM selected_lines"
        ),
        {"entry_id": entry_id},
    )
    # Per account, what the lines credit it (each side once); wallets are liabilities (a credit
    # adds), funds assets (a debit adds).
    credited = """
        SELECT a.{key} AS id, {sign} SUM(moves.change) AS change
        FROM (SELECT credit_account_id AS account_id, amount AS change FROM selected_lines
              UNION ALL SELECT debit_account_id, -amount FROM selected_lines) AS moves
        JOIN ledger_accounts a ON a.id = moves.account_id
        WHERE {which} GROUP BY a.{key}"""
    wallets = credited.format(key="customer_id", sign="", which="a.customer_id IS NOT NULL")
    funds = credited.format(key="book_operator_id", sign="-", which="a.code = 'fund'")
    more = customer_values or {}
    connection.execute(
        text(
            "UPDATE customers SET wallet_balance = customers.wallet_balance + moved.change"
            + "".join(f", {column} = :set_{column}" for column in more)
            + f" FROM ({wallets}) AS moved WHERE customers.id = moved.id"
        ).bindparams(
            *(
                bindparam(f"set_{column}", value, type_=customers.c[column].type)
                for column, value in more.items()
            )
        )
    )
    connection.execute(
        text(
            "UPDATE operators SET fund_balance = operators.fund_balance + moved.change "
            f"FROM ({funds}) AS moved WHERE operators.id = moved.id"
        )
    )
    connection.execute(text("DROP TABLE selected_lines"))


def _apply_to_caches(connection: Connection, lines: list[Line]) -> None:
    """Keep wallet_balance and fund_balance equal to their accounts' balances."""
    movement: dict[int, int] = defaultdict(int)
    for line in lines:
        movement[line.debit] += line.amount
        movement[line.credit] -= line.amount
    columns = select(
        ledger_accounts.c.id,
        ledger_accounts.c.kind,
        ledger_accounts.c.code,
        ledger_accounts.c.customer_id,
        ledger_accounts.c.book_operator_id,
    )
    accounts = list(rows_among(connection, columns, ledger_accounts.c.id, sorted(movement)))
    wallets = []
    for account in accounts:
        change = movement[account.id] if account.kind in DEBIT_NORMAL else -movement[account.id]
        if change == 0:
            continue
        if account.customer_id is not None:
            wallets.append({"wallet_customer": account.customer_id, "change": change})
        elif account.code == "fund":
            connection.execute(
                update(operators)
                .where(operators.c.id == account.book_operator_id)
                .values(fund_balance=operators.c.fund_balance + change)
            )
    if len(wallets) > 1 and connection.dialect.name == "postgresql":
        # One statement for an entry that moves many wallets (an import moves a hundred thousand).
        connection.execute(
            text(
                "UPDATE customers SET wallet_balance = customers.wallet_balance + moved.change "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:changes AS bigint[])) AS moved(id, change) "
                "WHERE customers.id = moved.id"
            ),
            {"ids": [w["wallet_customer"] for w in wallets], "changes": [w["change"] for w in wallets]},
        )
    elif wallets:
        connection.execute(
            update(customers)
            .where(customers.c.id == bindparam("wallet_customer"))
            .values(wallet_balance=customers.c.wallet_balance + bindparam("change")),
            wallets,
        )


def reversible(connection: Connection, entry_id: int):
    """The entry, if it exists, is not a reversal and was not reversed yet; else a clear refusal."""
    original = (
        connection.execute(select(ledger_entries).where(ledger_entries.c.id == entry_id)).mappings().first()
    )
    if original is None:
        raise RadbillError(f"no ledger entry #{entry_id}")
    already = connection.execute(
        select(ledger_entries.c.id).where(ledger_entries.c.reverses_entry_id == entry_id)
    ).scalar()
    if already is not None:
        raise RadbillError(f"ledger entry #{entry_id} was already reversed by entry #{already}")
    if original["reverses_entry_id"] is not None:
        raise RadbillError(f"ledger entry #{entry_id} is itself a reversal; post a new entry instead")
    return original


def reverse(connection: Connection, entry_id: int, *, actor_id: int | None, memo: str = "") -> int:
    """Post the mirror image of an entry: the only way to correct the ledger."""
    original = reversible(connection, entry_id)
    rows = connection.execute(select(ledger_lines).where(ledger_lines.c.entry_id == entry_id)).mappings()
    lines = [
        Line(row["book_operator_id"], row["credit_account_id"], row["debit_account_id"], row["amount"])
        for row in rows
    ]
    return post(
        connection,
        "reversal",
        lines,
        actor_id=actor_id,
        customer_id=original["customer_id"],
        memo=memo or f"reverses entry #{entry_id} ({original['kind']})",
        reverses_entry_id=entry_id,
    )


def _signed_balance(accounts=None):
    """Per account: its balance on its normal side, from the lines alone; only the lines of the
    ``accounts`` (a condition on ledger_accounts) are summed when it is given."""
    debits = select(
        ledger_lines.c.debit_account_id.label("account_id"), ledger_lines.c.amount.label("amount")
    )
    credits = select(
        ledger_lines.c.credit_account_id.label("account_id"), (-ledger_lines.c.amount).label("amount")
    )
    if accounts is not None:
        chosen = select(ledger_accounts.c.id).where(accounts)
        debits = debits.where(ledger_lines.c.debit_account_id.in_(chosen))
        credits = credits.where(ledger_lines.c.credit_account_id.in_(chosen))
    moves = debits.union_all(credits).subquery("moves")
    net = (
        select(moves.c.account_id, func.sum(moves.c.amount).label("net"))
        .group_by(moves.c.account_id)
        .subquery("net")
    )
    balance = case(
        (ledger_accounts.c.kind.in_(DEBIT_NORMAL), func.coalesce(net.c.net, 0)),
        else_=-func.coalesce(net.c.net, 0),
    )
    return net, balance


def balances(connection: Connection, book: int) -> dict[str, int]:
    """Every account of one book with its balance, by code."""
    net, balance = _signed_balance(ledger_accounts.c.book_operator_id == book)
    rows = connection.execute(
        select(ledger_accounts.c.code, balance.label("balance"))
        .select_from(ledger_accounts.outerjoin(net, net.c.account_id == ledger_accounts.c.id))
        .where(ledger_accounts.c.book_operator_id == book)
        .order_by(ledger_accounts.c.id)
    )
    return {row.code: int(row.balance) for row in rows}


def verify(connection: Connection) -> list[str]:
    """Recompute every balance from the lines; return every disagreement found.

    Checks: each line stays inside its book; each book's trial balance is
    zero; each customer's cached wallet equals its wallet account; each
    operator's cached fund equals its ``fund`` account and the parent's
    mirror ``child:`` account; each reversal mirrors its original exactly;
    and the tables outside the ledger agree with it (:mod:`billingd.reconcile`).
    """
    problems: list[str] = []
    debit_account = ledger_accounts.alias("debit_account")
    credit_account = ledger_accounts.alias("credit_account")
    # Lines have no foreign keys (schema.tables): a line naming no entry or account is reported here.
    no_entry = ledger_entries.c.id.is_(None)
    no_account = or_(debit_account.c.id.is_(None), credit_account.c.id.is_(None))
    crosses = or_(
        debit_account.c.book_operator_id != ledger_lines.c.book_operator_id,
        credit_account.c.book_operator_id != ledger_lines.c.book_operator_id,
    )
    strays = connection.execute(
        select(
            ledger_lines.c.id,
            ledger_lines.c.entry_id,
            no_entry.label("no_entry"),
            no_account.label("no_account"),
            crosses.label("crosses"),
        )
        .outerjoin(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
        .outerjoin(debit_account, debit_account.c.id == ledger_lines.c.debit_account_id)
        .outerjoin(credit_account, credit_account.c.id == ledger_lines.c.credit_account_id)
        .where(or_(no_entry, no_account, crosses))
    ).all()
    for row in strays:
        if row.no_entry:
            problems.append(f"line #{row.id} names entry #{row.entry_id}, which does not exist")
        if row.no_account:
            problems.append(f"line #{row.id} of entry #{row.entry_id} names an account that does not exist")
        if row.crosses:
            problems.append(f"line #{row.id} of entry #{row.entry_id} crosses books")

    per_account = _per_account()
    unbalanced = connection.execute(
        select(per_account.c.book_operator_id, func.sum(per_account.c.net).label("total"))
        .group_by(per_account.c.book_operator_id)
        .having(func.sum(per_account.c.net) != 0)
    ).all()
    problems += [
        f"book of operator #{row.book_operator_id} does not balance (off by {row.total})"
        for row in unbalanced
    ]

    wallets = connection.execute(
        select(
            customers.c.username,
            customers.c.wallet_balance,
            func.coalesce(per_account.c.balance, 0).label("ledger"),
        )
        .select_from(customers.outerjoin(per_account, per_account.c.customer_id == customers.c.id))
        .where(customers.c.wallet_balance != func.coalesce(per_account.c.balance, 0))
    ).all()
    problems += [
        f"customer {row.username}: cached wallet {row.wallet_balance} but ledger says {row.ledger}"
        for row in wallets
    ]

    # The funds and their mirrors (which name a counterparty): a few accounts' lines among millions.
    between_operators = _per_account(
        or_(ledger_accounts.c.code == "fund", ledger_accounts.c.counterparty_operator_id.is_not(None))
    )
    fund = between_operators.alias("fund")
    mirror = between_operators.alias("mirror")
    funds = connection.execute(
        select(
            operators.c.login,
            operators.c.parent_id,
            operators.c.fund_balance,
            func.coalesce(fund.c.balance, 0).label("fund"),
            func.coalesce(mirror.c.balance, 0).label("mirror"),
        )
        .select_from(
            operators.outerjoin(
                fund, and_(fund.c.book_operator_id == operators.c.id, fund.c.code == "fund")
            ).outerjoin(
                mirror,
                and_(
                    mirror.c.book_operator_id == operators.c.parent_id,
                    mirror.c.counterparty_operator_id == operators.c.id,
                ),
            )
        )
        .where(
            or_(
                operators.c.fund_balance != func.coalesce(fund.c.balance, 0),
                func.coalesce(fund.c.balance, 0) != func.coalesce(mirror.c.balance, 0),
            )
        )
    ).all()
    for row in funds:
        if row.fund_balance != row.fund:
            problems.append(
                f"operator {row.login}: cached fund {row.fund_balance} but its book says {row.fund}"
            )
        if row.fund != row.mirror:
            problems.append(
                f"operator {row.login}: fund {row.fund} in its book but {row.mirror} in its parent's book"
            )

    problems += _check_reversals(connection)
    problems += reconcile.problems(connection)
    return problems


def _per_account(accounts=None):
    """Every account (or those the condition ``accounts`` picks) with its net and signed balance."""
    net, balance = _signed_balance(accounts)
    chosen = ledger_accounts.outerjoin(net, net.c.account_id == ledger_accounts.c.id)
    query = select(
        ledger_accounts.c.id,
        ledger_accounts.c.book_operator_id,
        ledger_accounts.c.kind,
        ledger_accounts.c.code,
        ledger_accounts.c.customer_id,
        ledger_accounts.c.counterparty_operator_id,
        balance.label("balance"),
        func.coalesce(net.c.net, 0).label("net"),
    ).select_from(chosen)
    if accounts is not None:
        query = query.where(accounts)
    return query.subquery("per_account")


def _check_reversals(connection: Connection) -> list[str]:
    original = ledger_lines.alias("original")
    reversal = ledger_lines.alias("reversal")
    per_entry = (
        select(ledger_entries.c.id, ledger_entries.c.reverses_entry_id)
        .where(ledger_entries.c.reverses_entry_id.is_not(None))
        .subquery("reversals")
    )

    def total(lines, entry_column):
        return (
            select(func.coalesce(func.sum(lines.c.amount), 0))
            .where(lines.c.entry_id == entry_column)
            .scalar_subquery()
        )

    rows = connection.execute(
        select(per_entry.c.id, per_entry.c.reverses_entry_id).where(
            total(original, per_entry.c.reverses_entry_id) != total(reversal, per_entry.c.id)
        )
    ).all()
    return [f"entry #{row.id} does not mirror the entry #{row.reverses_entry_id} it reverses" for row in rows]


def statement(
    connection: Connection, book: int, first: date | None, last: date | None, *, latest: int | None = None
) -> list[dict]:
    """The lines of one book between two days (inclusive), oldest first; only the ``latest`` ones if given
    (a page of a big book: the admin's has a line per customer per day)."""
    debit_account = ledger_accounts.alias("debit_account")
    credit_account = ledger_accounts.alias("credit_account")
    day = func.coalesce(ledger_entries.c.effective_on, func.date(ledger_entries.c.created_at))
    query = (
        select(
            ledger_entries.c.id.label("entry"),
            ledger_entries.c.kind,
            ledger_entries.c.memo,
            ledger_entries.c.created_at,
            ledger_entries.c.effective_on,
            debit_account.c.code.label("debit"),
            credit_account.c.code.label("credit"),
            ledger_lines.c.amount,
        )
        .select_from(
            ledger_lines.join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
            .join(debit_account, debit_account.c.id == ledger_lines.c.debit_account_id)
            .join(credit_account, credit_account.c.id == ledger_lines.c.credit_account_id)
        )
        .where(ledger_lines.c.book_operator_id == literal(book))
        .order_by(ledger_lines.c.id)
    )
    if first is not None:
        query = query.where(day >= first)
    if last is not None:
        query = query.where(day <= last)
    if latest is not None:
        query = query.order_by(None).order_by(ledger_lines.c.id.desc()).limit(latest)
    rows = []
    for row in connection.execute(query).mappings():
        rows.append({**row, "day": row["effective_on"] or row["created_at"].date()})
    return rows if latest is None else rows[::-1]


def verify_as(connection: Connection, actor: Actor) -> list[str]:
    """:func:`verify` for the admin side with finance: it reads every book."""
    actor.require("ledger", "verify every book")
    return verify(connection)
