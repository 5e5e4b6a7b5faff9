"""Money moving up the operator chain when a customer is charged.

The customer pays its owner the customer price; the owner pays its parent
the operator price its parent set, and so on up to the admin. Every level is
posted in the same entry, so either every ancestor is debited or none is
(FIELD-NOTES 15). Every level must cover its share from its fund plus its
credit limit, or the whole operation is refused naming that operator: a
prepaid level spends what it put in first, a postpaid one accrues what it owes
up to its credit limit.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, select

from billingd.ledger import Line, account_ids, child_code, wallet_code
from billingd.money import format_amount
from schema.errors import RadbillError
from schema.tables import operators, package_prices
from schema.tenancy import ancestor_ids


@dataclass(frozen=True)
class Level:
    """One operator of a customer's chain that pays its parent."""

    operator_id: int
    login: str
    parent_id: int
    billing_mode: str
    credit_limit: int
    fund_balance: int
    price: int  # the operator price its parent set for this package


def lock_chain(connection: Connection, owner_id: int) -> dict[int, dict]:
    """Lock an operator and its ancestors (PostgreSQL), in id order; their rows by id, and the chain.

    The one lock order of money (issue 12): operators in id order, then
    customers. Every command that changes a customer or moves money locks its
    owner's chain first, and the daily run locks every operator before it
    touches a customer, so a command and a run cannot wait for each other in
    a circle. SQLite serialises writers at BEGIN IMMEDIATE.
    """
    chain = ancestor_ids(connection, owner_id)
    rows = {
        row["id"]: row
        for row in connection.execute(
            select(operators).where(operators.c.id.in_(chain)).order_by(operators.c.id).with_for_update()
        ).mappings()
    }
    return {operator_id: rows[operator_id] for operator_id in chain}


def lock_all_operators(connection: Connection) -> None:
    """The daily run's first lock: every operator, in id order (see :func:`lock_chain`)."""
    connection.execute(select(operators.c.id).order_by(operators.c.id).with_for_update()).all()


def chain_levels(connection: Connection, owner_id: int, package_id: int) -> list[Level]:
    """The paying levels above a customer, nearest first, their rows locked (:func:`lock_chain`)."""
    rows = lock_chain(connection, owner_id)
    chain = list(rows)
    prices = dict(
        connection.execute(
            select(package_prices.c.operator_id, package_prices.c.operator_price).where(
                package_prices.c.package_id == package_id, package_prices.c.operator_id.in_(chain)
            )
        ).all()
    )
    levels = []
    for operator_id in chain:
        row = rows[operator_id]
        if row["parent_id"] is None:
            continue
        if operator_id not in prices:
            raise RadbillError(f"the package is not on the price list of {row['login']}")
        levels.append(
            Level(
                operator_id,
                row["login"],
                row["parent_id"],
                row["billing_mode"],
                row["credit_limit"],
                row["fund_balance"],
                prices[operator_id],
            )
        )
    return levels


def shortfall(levels: list[Level], amounts: list[int]) -> Level | None:
    """The first level whose fund plus credit limit cannot cover its amount.

    The same rule for both billing modes: a prepaid fund may go below zero by
    the credit limit, a postpaid operator may owe at most its credit limit.
    """
    for level, amount in zip(levels, amounts):
        if amount > 0 and level.fund_balance - amount < -level.credit_limit:
            return level
    return None


def require_cover(levels: list[Level], amounts: list[int], what: str) -> None:
    short = shortfall(levels, amounts)
    if short is not None:
        amount = amounts[levels.index(short)]
        raise RadbillError(
            f"operator {short.login} cannot cover {what}: needs {format_amount(amount)}, fund "
            f"{format_amount(short.fund_balance)} plus credit limit {format_amount(short.credit_limit)}"
        )


def operator_lines(
    connection: Connection, levels: list[Level], amounts: list[int], *, refund: bool = False
) -> list[Line]:
    """Each level pays its parent: mirror lines in the child's and the parent's book."""
    lines = []
    paying = [(level, amount) for level, amount in zip(levels, amounts) if amount != 0]
    ids = account_ids(
        connection,
        [
            key
            for level, _ in paying
            for key in (
                (level.operator_id, "cost_of_sales"),
                (level.operator_id, "fund"),
                (level.parent_id, child_code(level.operator_id)),
                (level.parent_id, "wholesale"),
            )
        ],
    )
    for level, amount in paying:
        cost = ids[level.operator_id, "cost_of_sales"]
        fund = ids[level.operator_id, "fund"]
        held = ids[level.parent_id, child_code(level.operator_id)]
        wholesale = ids[level.parent_id, "wholesale"]
        if refund:
            lines += [
                Line(level.operator_id, fund, cost, amount),
                Line(level.parent_id, wholesale, held, amount),
            ]
        else:
            lines += [
                Line(level.operator_id, cost, fund, amount),
                Line(level.parent_id, held, wholesale, amount),
            ]
    return lines


def customer_payment_line(connection: Connection, owner_id: int, customer_id: int, amount: int) -> Line:
    """The customer hands its owner money: cash in, wallet credited."""
    ids = account_ids(connection, [(owner_id, "cash"), (owner_id, wallet_code(customer_id))])
    return Line(owner_id, ids[owner_id, "cash"], ids[owner_id, wallet_code(customer_id)], amount)


def customer_charge_line(
    connection: Connection, owner_id: int, customer_id: int, amount: int, *, refund: bool = False
) -> Line:
    """The owner charges the customer's wallet (or, refunding, credits it back)."""
    ids = account_ids(connection, [(owner_id, wallet_code(customer_id)), (owner_id, "sales")])
    wallet, sales = ids[owner_id, wallet_code(customer_id)], ids[owner_id, "sales"]
    return Line(owner_id, sales, wallet, amount) if refund else Line(owner_id, wallet, sales, amount)
