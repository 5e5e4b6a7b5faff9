"""Operators: the caller's children and descendants, their rights, their money and their passwords."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from billingd import credentials
from billingd import operators as domain
from billingd.api.deps import Db, Now, Once, OperatorActor, Today
from billingd.api.models import (
    BalanceOut,
    OperatorIn,
    OperatorOut,
    PasswordIn,
    PasswordOut,
    PaymentIn,
    PermissionIn,
    StatementLineOut,
    money,
)
from billingd.api.routes import ERRORS

router = APIRouter(tags=["operators"], responses=ERRORS)


@router.get("/operators", summary="Operators you can see: yourself and your descendants")
def list_operators(actor: OperatorActor, db: Db) -> list[OperatorOut]:
    return [OperatorOut.of(operator) for operator in domain.list_operators(db, actor)]


@router.post(
    "/operators", summary="Add an operator under you (or under a descendant, for the admin)", status_code=201
)
def add_operator(body: OperatorIn, actor: OperatorActor, db: Db, once: Once) -> OperatorOut:
    return once.once(
        lambda: OperatorOut.of(
            domain.add_operator(
                db,
                actor,
                body.login,
                body.role,
                parent=body.parent,
                billing_mode=body.billing_mode,
                credit_limit=body.credit_limit,
                id_format=body.id_format,
                name=body.name,
                refund_policy=body.refund_policy,
            ),
        ),
        body,
        201,
    )


@router.get("/operators/{login}", summary="One operator")
def show_operator(login: str, actor: OperatorActor, db: Db) -> OperatorOut:
    return OperatorOut.of(domain.show_operator(db, actor, login))


@router.post("/operators/{login}/block", summary="Block an operator: it, its staff and its descendants stop")
def block(login: str, actor: OperatorActor, db: Db) -> OperatorOut:
    return OperatorOut.of(domain.set_status(db, actor, login, "blocked"))


@router.post("/operators/{login}/unblock", summary="Give a blocked operator its access back")
def unblock(login: str, actor: OperatorActor, db: Db) -> OperatorOut:
    return OperatorOut.of(domain.set_status(db, actor, login, "active"))


@router.post("/operators/{login}/permissions", summary="Grant a permission")
def permit(login: str, body: PermissionIn, actor: OperatorActor, db: Db) -> OperatorOut:
    return OperatorOut.of(domain.permit(db, actor, login, body.permission))


@router.delete("/operators/{login}/permissions/{permission}", summary="Take a permission back")
def revoke(login: str, permission: str, actor: OperatorActor, db: Db) -> OperatorOut:
    return OperatorOut.of(domain.revoke(db, actor, login, permission))


def _settle(mode: str):
    def settle(
        login: str, body: PaymentIn, actor: OperatorActor, db: Db, today: Today, once: Once
    ) -> OperatorOut:
        return once.once(
            lambda: OperatorOut.of(
                domain.settle(
                    db,
                    actor,
                    login,
                    body.amount,
                    mode=mode,
                    today=today.today,
                    method=body.method,
                    reference=body.reference,
                ),
            ),
            body,
        )

    return settle


router.post("/operators/{login}/fund", summary="A prepaid child paid you: top up its fund")(
    _settle("prepaid")
)
router.post("/operators/{login}/pay", summary="A postpaid child paid you: settle what it owes")(
    _settle("postpaid")
)


@router.get("/operators/{login}/balance", summary="Its fund at its parent and the totals of its book")
def balance(login: str, actor: OperatorActor, db: Db) -> BalanceOut:
    found = domain.balance(db, actor, login)
    named = (
        "login",
        "billing_mode",
        "credit_limit",
        "fund",
        "available",
        "customers",
        "customer_wallets",
        "held_for_children",
    )
    accounts = {key: value for key, value in found.items() if key not in named}
    texts = {
        key: money(value)
        for key, value in {**found, **accounts}.items()
        if isinstance(value, int) and key != "customers"
    }
    return BalanceOut(**{key: found[key] for key in named}, accounts=accounts, texts=texts)


@router.get("/operators/{login}/statement", summary="Every line of its book, oldest first")
def statement(
    login: str,
    actor: OperatorActor,
    db: Db,
    first: Annotated[date | None, Query(alias="from", description="First day")] = None,
    last: Annotated[date | None, Query(alias="to", description="Last day")] = None,
) -> list[StatementLineOut]:
    rows = domain.statement(db, actor, login, first, last)
    return [
        StatementLineOut(
            day=str(row["day"]) if row.get("day") is not None else None,
            entry=row["entry"],
            kind=row["kind"],
            debit=row["debit"],
            credit=row["credit"],
            amount=row["amount"],
            amount_text=money(row["amount"]),
            memo=row["memo"],
        )
        for row in rows
    ]


@router.put(
    "/operators/{login}/password",
    summary="Set the password of yourself or a descendant (generated and returned once when none is given)",
)
def set_password(login: str, body: PasswordIn, actor: OperatorActor, db: Db, instant: Now) -> PasswordOut:
    password = body.password or credentials.generate_password()
    credentials.set_password(db, actor, login, password, instant)
    return PasswordOut(password=None if body.password else password)
