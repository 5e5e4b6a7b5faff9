"""What lives outside the ledger, reconciled with it: part of ``radbill ledger verify``.

The ledger proves that every book balances; these checks prove that the
tables the rest of radbill reads agree with it: the paid days, the monthly
days still to invoice, the invoices' settlement, the payments, the kinds of
the accounts, the customers and entries the days name, and the totals the
dashboard reads (the paid days per day, the customers per standing). Each
is one aggregate query, so verify stays one pass over the tables however
many customers there are.
"""

from sqlalchemy import Connection, and_, case, func, literal, or_, select

from schema.tables import (
    UNPAID_REASONS,
    card_sale_items,
    card_sales,
    customer_day_totals,
    customer_days,
    customer_state_totals,
    customers,
    invoices,
    ledger_accounts,
    ledger_entries,
    ledger_lines,
    master_packages,
    packages,
    payments,
    recharge_cards,
)

# The kind every account code must have (the prefix before ":" for per-customer and per-child accounts).
ACCOUNT_KINDS = {
    "cash": "asset",
    "sales": "income",
    "cost_of_sales": "expense",
    "wholesale": "income",
    "wallet": "liability",
    "fund": "asset",
    "child": "liability",
    "cards_sold": "liability",
    "card_commission": "expense",
}


def problems(connection: Connection) -> list[str]:
    return (
        _account_kinds(connection)
        + _paid_days(connection)
        + _day_references(connection)
        + _unbilled_days(connection)
        + _invoice_settlement(connection)
        + _payments(connection)
        + _cards_sold(connection)
        + _day_totals(connection)
        + _state_totals(connection)
    )


def _account_kinds(connection: Connection) -> list[str]:
    found = []
    for account_id, book, code, kind in connection.execute(
        select(
            ledger_accounts.c.id,
            ledger_accounts.c.book_operator_id,
            ledger_accounts.c.code,
            ledger_accounts.c.kind,
        )
    ):
        expected = ACCOUNT_KINDS.get(code.split(":")[0])
        if expected != kind:
            found.append(
                f"account #{account_id} {code} of operator #{book} is {kind}, not {expected or 'a known code'}"
            )
    return found


def _wallet_charges():
    """Per entry: what it charged customers' wallets (wallet debited, sales credited)."""
    wallet, sales = ledger_accounts.alias("wallet"), ledger_accounts.alias("sales")
    return (
        select(ledger_lines.c.entry_id, func.sum(ledger_lines.c.amount).label("charged"))
        .join(wallet, wallet.c.id == ledger_lines.c.debit_account_id)
        .join(sales, sales.c.id == ledger_lines.c.credit_account_id)
        .where(wallet.c.customer_id.is_not(None), sales.c.code == "sales")
        .group_by(ledger_lines.c.entry_id)
        .subquery("charges")
    )


def _paid_days(connection: Connection) -> list[str]:
    """Paid days add up to no more than their entry charged, and no reversed entry pays a day."""
    charges = _wallet_charges()
    reversal = ledger_entries.alias("reversal")
    rows = connection.execute(
        select(
            customer_days.c.entry_id,
            ledger_entries.c.kind,
            func.sum(customer_days.c.amount).label("days"),
            func.max(func.coalesce(charges.c.charged, 0)).label("charged"),
            func.max(reversal.c.id).label("reversed_by"),
        )
        .join(ledger_entries, ledger_entries.c.id == customer_days.c.entry_id)
        .outerjoin(charges, charges.c.entry_id == customer_days.c.entry_id)
        .outerjoin(reversal, reversal.c.reverses_entry_id == customer_days.c.entry_id)
        .where(ledger_entries.c.kind != "invoice")
        .group_by(customer_days.c.entry_id, ledger_entries.c.kind)
    ).all()
    found = []
    for row in rows:
        if row.reversed_by is not None:
            found.append(
                f"entry #{row.entry_id} ({row.kind}) was reversed by #{row.reversed_by} but still pays days"
            )
        elif row.days > row.charged:
            found.append(
                f"entry #{row.entry_id} ({row.kind}) pays days worth {row.days} but charged {row.charged}"
            )
    return found


def _day_references(connection: Connection) -> list[str]:
    """Every day names a customer that exists and, if paid, an entry that exists (customer_days
    has no foreign keys: see schema.tables)."""
    no_customer = customers.c.id.is_(None)
    no_entry = and_(customer_days.c.entry_id.is_not(None), ledger_entries.c.id.is_(None))
    rows = connection.execute(
        select(
            customer_days.c.customer_id,
            customer_days.c.day,
            customer_days.c.entry_id,
            no_customer.label("no_customer"),
            no_entry.label("no_entry"),
        )
        .outerjoin(customers, customers.c.id == customer_days.c.customer_id)
        .outerjoin(ledger_entries, ledger_entries.c.id == customer_days.c.entry_id)
        .where(or_(no_customer, no_entry))
        .order_by(customer_days.c.customer_id, customer_days.c.day)
    ).all()
    found = []
    for row in rows:
        if row.no_customer:
            found.append(f"customer day {row.day} names customer #{row.customer_id}, which does not exist")
        if row.no_entry:
            found.append(
                f"customer day {row.day} of customer #{row.customer_id} names entry #{row.entry_id}, "
                "which does not exist"
            )
    return found


def _unbilled_days(connection: Connection) -> list[str]:
    """An enabled monthly day waits for an invoice only while its customer is monthly, not deleted,
    and the day is in the current billing month: otherwise nobody will ever bill it."""
    monthly = (
        select(customers.c.id)
        .join(packages, packages.c.id == customers.c.package_id)
        .join(master_packages, master_packages.c.id == packages.c.master_package_id)
        .where(master_packages.c.billing_type == "monthly", customers.c.deleted_at.is_(None))
    )
    rows = connection.execute(
        select(customers.c.username, func.count().label("days"), func.min(customer_days.c.day).label("first"))
        .join(customers, customers.c.id == customer_days.c.customer_id)
        .where(customer_days.c.entry_id.is_(None), customer_days.c.customer_id.not_in(monthly))
        .group_by(customers.c.username)
    ).all()
    return [
        f"customer {row.username}: {row.days} enabled days from {row.first} are not invoiced and never will be "
        "(deleted, or no longer on a monthly package)"
        for row in rows
    ]


def _invoice_settlement(connection: Connection) -> list[str]:
    """What a wallet owes (below zero), as far as its invoices made it owe, is open on them: a paid
    invoice was paid. (An opening balance owed from an import is owed on no invoice.)"""
    billed = (
        select(
            invoices.c.customer_id,
            func.sum(invoices.c.amount).label("invoiced"),
            func.sum(invoices.c.amount - invoices.c.paid_amount).label("unpaid"),
        )
        .where(invoices.c.status != "void")
        .group_by(invoices.c.customer_id)
        .subquery("billed")
    )
    owed_on_invoices = case(
        (-customers.c.wallet_balance < billed.c.invoiced, -customers.c.wallet_balance),
        else_=billed.c.invoiced,
    )
    rows = connection.execute(
        select(customers.c.username, owed_on_invoices.label("owed"), billed.c.unpaid)
        .join(billed, billed.c.customer_id == customers.c.id)
        .where(customers.c.wallet_balance < 0, owed_on_invoices > billed.c.unpaid)
    ).all()
    found = [
        f"customer {row.username}: wallet owes {row.owed} on its invoices but only {row.unpaid} is open on them"
        for row in rows
    ]
    found += [
        f"invoice {number}: status {status} but {paid} of {amount} paid"
        for number, status, paid, amount in connection.execute(
            select(invoices.c.number, invoices.c.status, invoices.c.paid_amount, invoices.c.amount).where(
                or_(
                    and_(invoices.c.status == "paid", invoices.c.paid_amount != invoices.c.amount),
                    and_(invoices.c.status == "open", invoices.c.paid_amount == invoices.c.amount),
                )
            )
        )
    ]
    return found


def _payments(connection: Connection) -> list[str]:
    """Every payment is in its entry: cash received by the payee, the same amount."""
    cash = ledger_accounts.alias("cash")
    received = (
        select(
            ledger_lines.c.entry_id,
            ledger_lines.c.book_operator_id,
            func.sum(ledger_lines.c.amount).label("amount"),
        )
        .join(cash, cash.c.id == ledger_lines.c.debit_account_id)
        .where(cash.c.code == "cash")
        .group_by(ledger_lines.c.entry_id, ledger_lines.c.book_operator_id)
        .subquery("received")
    )
    rows = connection.execute(
        select(
            payments.c.id,
            payments.c.entry_id,
            payments.c.amount,
            func.coalesce(received.c.amount, 0).label("cash"),
        )
        .outerjoin(
            received,
            and_(
                received.c.entry_id == payments.c.entry_id,
                received.c.book_operator_id == payments.c.payee_operator_id,
            ),
        )
        .where(or_(payments.c.entry_id.is_(None), payments.c.amount != func.coalesce(received.c.amount, 0)))
    ).all()
    return [
        f"payment #{row.id} of {row.amount} but its entry #{row.entry_id} shows {row.cash} received in cash"
        for row in rows
    ]


def _cards_sold(connection: Connection) -> list[str]:
    """What a book owes for sold cards is the face value of its sold cards not redeemed yet."""
    account = ledger_accounts.alias("cards_sold")
    credited = (
        select(account.c.book_operator_id.label("book"), ledger_lines.c.amount.label("amount"))
        .join(ledger_lines, ledger_lines.c.credit_account_id == account.c.id)
        .where(account.c.code == "cards_sold")
    )
    debited = (
        select(account.c.book_operator_id.label("book"), (-ledger_lines.c.amount).label("amount"))
        .join(ledger_lines, ledger_lines.c.debit_account_id == account.c.id)
        .where(account.c.code == "cards_sold")
    )
    outstanding = (
        select(card_sales.c.operator_id.label("book"), card_sale_items.c.value.label("amount"))
        .join(card_sale_items, card_sale_items.c.sale_id == card_sales.c.id)
        .join(recharge_cards, recharge_cards.c.id == card_sale_items.c.card_id)
        .where(recharge_cards.c.status != "redeemed")
    )
    moves = credited.union_all(debited).subquery("moves")
    owed = (
        select(moves.c.book, func.sum(moves.c.amount).label("amount")).group_by(moves.c.book).subquery("owed")
    )
    cards = outstanding.subquery("cards")
    unredeemed = (
        select(cards.c.book, func.sum(cards.c.amount).label("amount"))
        .group_by(cards.c.book)
        .subquery("unredeemed")
    )
    books = select(owed.c.book).union(select(unredeemed.c.book)).subquery("books")
    rows = connection.execute(
        select(
            books.c.book,
            func.coalesce(owed.c.amount, 0).label("owed"),
            func.coalesce(unredeemed.c.amount, 0).label("unredeemed"),
        )
        .outerjoin(owed, owed.c.book == books.c.book)
        .outerjoin(unredeemed, unredeemed.c.book == books.c.book)
        .where(func.coalesce(owed.c.amount, 0) != func.coalesce(unredeemed.c.amount, 0))
    ).all()
    return [
        f"operator #{row.book} owes {row.owed} for sold cards, but its sold cards not redeemed are worth "
        f"{row.unredeemed}"
        for row in rows
    ]


def _day_totals(connection: Connection) -> list[str]:
    """customer_day_totals (kept by triggers) sums the customer days of each day and operator."""
    live = {
        (day, operator): (count, int(amount))
        for day, operator, count, amount in connection.execute(
            select(
                customer_days.c.day, customers.c.operator_id, func.count(), func.sum(customer_days.c.amount)
            )
            .join(customers, customers.c.id == customer_days.c.customer_id)
            .group_by(customer_days.c.day, customers.c.operator_id)
        )
    }
    kept = {
        (day, operator): (count, int(amount))
        for day, operator, count, amount in connection.execute(
            select(
                customer_day_totals.c.day,
                customer_day_totals.c.operator_id,
                customer_day_totals.c.customers,
                customer_day_totals.c.amount,
            ).where(or_(customer_day_totals.c.customers != 0, customer_day_totals.c.amount != 0))
        )
    }
    return [
        f"customer days of {day} for operator #{operator}: {live.get(key, (0, 0))} (days, amount), "
        f"but customer_day_totals says {kept.get(key, (0, 0))}"
        for key in sorted(live.keys() | kept.keys())
        if live.get(key, (0, 0)) != kept.get(key, (0, 0))
        for day, operator in [key]
    ]


def _state_totals(connection: Connection) -> list[str]:
    """customer_state_totals (kept by triggers) counts the live customers of each operator and standing."""
    standing = case(
        (customers.c.status == "active", literal("in_service")),
        (
            and_(customers.c.status == "suspended", customers.c.status_reason.in_(UNPAID_REASONS)),
            literal("unpaid"),
        ),
        else_=literal("suspended"),
    )
    live = {
        (operator, kind): count
        for operator, kind, count in connection.execute(
            select(customers.c.operator_id, standing, func.count())
            .where(customers.c.deleted_at.is_(None))
            .group_by(customers.c.operator_id, standing)
        )
    }
    kept = {
        (operator, kind): count
        for operator, kind, count in connection.execute(
            select(
                customer_state_totals.c.operator_id,
                customer_state_totals.c.standing,
                customer_state_totals.c.customers,
            ).where(customer_state_totals.c.customers != 0)
        )
    }
    return [
        f"operator #{operator} has {live.get(key, 0)} live {kind} customers, "
        f"but customer_state_totals says {kept.get(key, 0)}"
        for key in sorted(live.keys() | kept.keys())
        if live.get(key, 0) != kept.get(key, 0)
        for operator, kind in [key]
    ]
