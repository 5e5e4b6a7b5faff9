"""The operator hierarchy: add, permit, block, fund, settle, balances."""

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from string import Formatter

from sqlalchemy import Connection, delete, func, insert, select, update

from billingd import ledger, payments
from billingd.ledger import Line
from billingd.money import check_amount
from schema.audit import audit
from schema.changes import record_change
from schema.errors import Forbidden, NotFound, RadbillError, require_one_of
from schema.tables import (
    BILLING_MODES,
    CUSTOMER_CODE_LENGTH,
    ID_FORMAT_LENGTH,
    REFUND_POLICIES,
    ROLES,
    ZONE_CODE_LENGTH,
    customers,
    operators,
    permissions,
)
from schema.tenancy import (
    PERMISSIONS,
    SELLING_ROLES,
    STAFF_ROLES,
    Actor,
    descendant_ids,
    operator_row,
    require_grantable,
    require_visible,
)

_LARGEST_SEQUENCE = 999_999_999
_LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Operator:
    id: int
    login: str
    name: str
    role: str
    parent: str | None
    billing_mode: str
    credit_limit: int | None  # None: hidden from an actor without financial access
    fund_balance: int | None
    refund_policy: str
    id_format: str
    status: str
    permissions: list[str]


def check_id_format(id_format: str) -> None:
    """A customer-ID format: prefix, optional {zone} infix, {seq} (with a width) and postfix.

    Its output must fit ``customers.customer_code`` for any sequence number up
    to a billion and the longest zone code; a width is checked before anything
    is formatted, so ``{seq:0999999999d}`` cannot exhaust memory.
    """
    if "{seq" not in id_format:
        raise RadbillError(
            f"invalid ID format {id_format!r}: it needs {{seq}} (e.g. DN-{{zone}}-{{seq:05d}})"
        )
    try:
        specs = [spec or "" for _, field, spec, _ in Formatter().parse(id_format) if field is not None]
        if len(id_format) > ID_FORMAT_LENGTH or any(len(spec) > 4 for spec in specs):
            raise ValueError("too long")
        longest = id_format.format(seq=_LARGEST_SEQUENCE, zone="Z" * ZONE_CODE_LENGTH)
    except (KeyError, ValueError, IndexError) as error:
        raise RadbillError(
            f"invalid ID format {id_format!r}: {error}; use {{seq}}, {{seq:05d}} and {{zone}}"
        ) from None
    if len(longest) > CUSTOMER_CODE_LENGTH:
        raise RadbillError(
            f"invalid ID format {id_format!r}: its IDs can be longer than {CUSTOMER_CODE_LENGTH} characters"
        )


def admin_exists(connection: Connection) -> bool:
    """Whether the first operator, the admin, has been added."""
    return connection.execute(select(operators.c.id).where(operators.c.role == "admin")).first() is not None


def _check_parent(connection: Connection, role: str, parent) -> None:
    if role == "reseller" and parent["parent_id"] is not None:
        raise RadbillError("a reseller's parent must be the admin")
    if role == "sub_reseller":
        if parent["role"] not in ("reseller", "sub_reseller"):
            raise RadbillError("a sub-reseller's parent must be a reseller")
        granted = connection.execute(
            select(permissions.c.permission).where(
                permissions.c.operator_id == parent["id"], permissions.c.permission == "reseller_module"
            )
        ).first()
        if granted is None:
            raise RadbillError(
                f"{parent['login']} lacks the reseller_module permission: it cannot have sub-resellers"
            )
    if role in STAFF_ROLES and parent["role"] not in SELLING_ROLES:
        raise RadbillError(f"a {role}'s parent must be the admin, a reseller or a sub-reseller")


def add_operator(
    connection: Connection,
    actor: Actor | None,
    login: str,
    role: str,
    *,
    parent: str | None = None,
    billing_mode: str = "prepaid",
    credit_limit: int = 0,
    id_format: str | None = None,
    name: str = "",
    refund_policy: str = "prorated",
) -> Operator:
    """Add an operator. With no actor, only the very first operator: the admin."""
    login = login.strip().lower()
    if not _LOGIN.fullmatch(login):
        raise RadbillError(f"invalid login {login!r}: use lower-case letters, digits, '.', '_' or '-'")
    require_one_of(role, ROLES, "role")
    require_one_of(billing_mode, BILLING_MODES, "billing mode")
    require_one_of(refund_policy, REFUND_POLICIES, "refund policy")
    if credit_limit < 0:
        raise RadbillError("the credit limit cannot be negative")
    if billing_mode == "postpaid" and role != "admin" and credit_limit == 0:
        raise RadbillError("a postpaid operator needs --credit-limit: the most it may owe its parent")
    check_amount(credit_limit, "the credit limit")
    if id_format is not None:
        check_id_format(id_format)
    if connection.execute(select(operators.c.id).where(operators.c.login == login)).first():
        raise RadbillError(f"operator {login!r} already exists")
    if role == "admin":
        if admin_exists(connection):
            raise RadbillError("there is already an admin; there is only one")
        parent_row = None
    else:
        if actor is None:
            raise RadbillError("add the admin first: radbill operator add LOGIN --role admin")
        actor.require("operators.change", "add operators")
        parent_row = operator_row(connection, parent) if parent else _row_by_id(connection, actor.home_id)
        if parent_row["id"] != actor.home_id and not actor.is_admin:
            raise Forbidden(f"{actor.login} may add operators only directly under itself")
        _check_parent(connection, role, parent_row)
    values = dict(
        login=login,
        name=name,
        role=role,
        billing_mode=billing_mode,
        credit_limit=credit_limit,
        refund_policy=refund_policy,
        parent_id=parent_row["id"] if parent_row else None,
    )
    if id_format is None and role in ("reseller", "sub_reseller"):
        id_format = login.upper() + "-{seq:05d}"  # customer IDs are unique across all operators
    if id_format is not None:
        values["id_format"] = id_format
    operator_id = connection.execute(insert(operators).values(**values)).inserted_primary_key[0]
    if role in SELLING_ROLES:
        ledger.open_operator_books(connection, operator_id, values["parent_id"])
    record_change(connection, "operator", operator_id)
    actor_id = actor.caller_id if actor else operator_id
    audit(
        connection,
        "operator.add",
        actor_id=actor_id,
        acting_as_id=actor.id if actor else operator_id,
        target_type="operator",
        target_id=operator_id,
        login=login,
        role=role,
        parent=parent_row["login"] if parent_row else None,
    )
    return _as_seen_by(actor, get_operator(connection, login))


def _row_by_id(connection: Connection, operator_id: int):
    return connection.execute(select(operators).where(operators.c.id == operator_id)).mappings().one()


def get_operator(connection: Connection, login: str) -> Operator:
    row = operator_row(connection, login)
    parent = connection.execute(select(operators.c.login).where(operators.c.id == row["parent_id"])).scalar()
    granted = (
        connection.execute(
            select(permissions.c.permission)
            .where(permissions.c.operator_id == row["id"])
            .order_by(permissions.c.permission)
        )
        .scalars()
        .all()
    )
    return Operator(
        row["id"],
        row["login"],
        row["name"],
        row["role"],
        parent,
        row["billing_mode"],
        row["credit_limit"],
        row["fund_balance"],
        row["refund_policy"],
        row["id_format"],
        row["status"],
        list(granted),
    )


def _as_seen_by(actor: Actor | None, operator: Operator) -> Operator:
    """The operator; its money (credit limit, fund) only for those who may see money
    (no actor: the very first operator, added by whoever installs radbill)."""
    if actor is None or actor.may("money"):
        return operator
    return dataclasses.replace(operator, credit_limit=None, fund_balance=None)


def show_operator(connection: Connection, actor: Actor, login: str) -> Operator:
    actor.require("customers.view", "see operators")
    row = operator_row(connection, login)
    if row["id"] != actor.id:
        require_visible(connection, actor, row["id"], f"operator {login}")
    return _as_seen_by(actor, get_operator(connection, login))


def list_operators(connection: Connection, actor: Actor) -> list[Operator]:
    actor.require("customers.view", "list operators")
    visible = None if actor.is_admin else descendant_ids(connection, actor.home_id)
    logins = connection.execute(select(operators.c.id, operators.c.login).order_by(operators.c.id)).all()
    return [
        _as_seen_by(actor, get_operator(connection, login))
        for operator_id, login in logins
        if visible is None or operator_id in visible
    ]


def _changeable_operator(connection: Connection, actor: Actor, login: str, what: str):
    """A strict descendant of the actor's home (the admin: anyone but itself)."""
    actor.require("operators.change", what)
    row = operator_row(connection, login)
    if row["id"] == actor.home_id or row["id"] == actor.id:
        raise Forbidden(f"{actor.login} cannot {what} itself")
    if row["id"] not in descendant_ids(connection, actor.home_id):
        raise NotFound(f"operator {login} is not visible to {actor.login}")
    return row


def permit(connection: Connection, actor: Actor, login: str, permission: str) -> Operator:
    if permission not in PERMISSIONS:
        raise RadbillError(f"unknown permission {permission!r}: use {', '.join(PERMISSIONS)}")
    row = _changeable_operator(connection, actor, login, "grant permissions")
    require_grantable(actor, permission, row["role"])
    if connection.execute(
        select(permissions.c.permission).where(
            permissions.c.operator_id == row["id"], permissions.c.permission == permission
        )
    ).first():
        raise RadbillError(f"{login} already has {permission}")
    connection.execute(
        insert(permissions).values(operator_id=row["id"], permission=permission, granted_by=actor.id)
    )
    return _changed(connection, actor, row, "operator.permit", permission=permission)


def revoke(connection: Connection, actor: Actor, login: str, permission: str) -> Operator:
    row = _changeable_operator(connection, actor, login, "revoke permissions")
    removed = connection.execute(
        delete(permissions).where(
            permissions.c.operator_id == row["id"], permissions.c.permission == permission
        )
    ).rowcount
    if not removed:
        raise RadbillError(f"{login} does not have {permission}")
    return _changed(connection, actor, row, "operator.revoke", permission=permission)


def set_status(connection: Connection, actor: Actor, login: str, status: str) -> Operator:
    """Block or unblock an operator's access; the change log tells the RADIUS side, which refuses its customers."""
    row = _changeable_operator(connection, actor, login, "block or unblock operators")
    if row["status"] == status:
        raise RadbillError(f"{login} is already {status}")
    connection.execute(update(operators).where(operators.c.id == row["id"]).values(status=status))
    return _changed(connection, actor, row, f"operator.{'block' if status == 'blocked' else 'unblock'}")


def _changed(connection: Connection, actor: Actor, row, action: str, **details) -> Operator:
    """After changing an operator: the change log, the audit row, the fresh record."""
    record_change(connection, "operator", row["id"])
    audit(
        connection,
        action,
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="operator",
        target_id=row["id"],
        **details,
    )
    return _as_seen_by(actor, get_operator(connection, row["login"]))


def settle(
    connection: Connection,
    actor: Actor,
    login: str,
    amount: int,
    *,
    mode: str,
    today: date,
    method: str = "cash",
    reference: str | None = None,
) -> Operator:
    """A child pays its parent: a prepaid top-up (``fund``) or a postpaid settlement (``pay``).

    Both post the same mirror lines: the parent's cash up and its ``child:``
    account up, the child's ``fund`` up and its cash down.
    """
    verb = "fund" if mode == "prepaid" else "record payments from"
    actor.require("money", f"{verb} operators")
    if amount <= 0:
        raise RadbillError("the amount must be more than zero")
    check_amount(amount)
    child = operator_row(connection, login)
    if child["id"] == actor.home_id or (child["parent_id"] != actor.home_id and not actor.is_admin):
        raise Forbidden(f"only {login}'s parent operator records its payments")
    if child["parent_id"] is None or child["role"] not in SELLING_ROLES:
        raise RadbillError(f"{login} has no parent to pay")
    if child["billing_mode"] != mode:
        other = "radbill operator pay" if mode == "prepaid" else "radbill operator fund"
        raise RadbillError(f"{login} is {child['billing_mode']}: use {other}")
    parent_id = child["parent_id"]
    payments.require_new_reference(
        connection, method, reference, payer=f"operator {login}", payer_operator_id=child["id"]
    )
    lines = [
        Line(
            child["id"],
            ledger.account_id(connection, child["id"], "fund"),
            ledger.account_id(connection, child["id"], "cash"),
            amount,
        ),
        Line(
            parent_id,
            ledger.account_id(connection, parent_id, "cash"),
            ledger.account_id(connection, parent_id, ledger.child_code(child["id"])),
            amount,
        ),
    ]
    kind = "operator_fund" if mode == "prepaid" else "operator_payment"
    entry_id = ledger.post(
        connection,
        kind,
        lines,
        actor_id=actor.caller_id,
        effective_on=today,
        memo=f"{login} pays its parent ({method}{', ' + reference if reference else ''})",
    )
    payments.record(
        connection,
        payer_operator_id=child["id"],
        payee_operator_id=parent_id,
        amount=amount,
        method=method,
        reference=reference,
        entry_id=entry_id,
        created_by=actor.caller_id,
    )
    audit(
        connection,
        kind.replace("_", "."),
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="operator",
        target_id=child["id"],
        amount=amount,
        entry=entry_id,
    )
    return _as_seen_by(actor, get_operator(connection, login))


def balance(connection: Connection, actor: Actor, login: str) -> dict:
    """An operator's position with its parent and the totals of its own book."""
    actor.require("money", "see balances")
    row = operator_row(connection, login)
    require_visible(connection, actor, row["id"], f"operator {login}")
    accounts = ledger.balances(connection, row["id"])
    wallets = sum(value for code, value in accounts.items() if code.startswith("wallet:"))
    children = sum(value for code, value in accounts.items() if code.startswith("child:"))
    customer_count = connection.execute(
        select(func.count())
        .select_from(customers)
        .where(customers.c.operator_id == row["id"], customers.c.deleted_at.is_(None))
    ).scalar()
    result = {
        "login": row["login"],
        "billing_mode": row["billing_mode"],
        "credit_limit": row["credit_limit"],
        "fund": row["fund_balance"] if row["parent_id"] is not None else None,
        "available": row["fund_balance"] + row["credit_limit"] if row["parent_id"] is not None else None,
        "customers": customer_count,
        "customer_wallets": wallets,
        "held_for_children": children,
    }
    result.update({code: value for code, value in accounts.items() if ":" not in code and code != "fund"})
    return result


def statement(
    connection: Connection,
    actor: Actor,
    login: str,
    first: date | None,
    last: date | None,
    *,
    latest: int | None = None,
) -> list[dict]:
    actor.require("money", "see statements")
    row = operator_row(connection, login)
    require_visible(connection, actor, row["id"], f"operator {login}")
    return ledger.statement(connection, row["id"], first, last, latest=latest)
