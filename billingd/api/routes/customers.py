"""Customers: add, find, show, edit, and every step of their lifecycle and money."""

from typing import Annotated

from fastapi import APIRouter, Query

from billingd import customers as domain
from billingd import lifecycle, wallets
from billingd.api.deps import Db, Once, OperatorActor, Today
from billingd.api.models import (
    ChangePackageIn,
    CustomerEdit,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    PasswordOut,
    PaymentIn,
    RenewIn,
)
from billingd.api.routes import ERRORS

router = APIRouter(tags=["customers"], responses=ERRORS)


@router.get("/customers", summary="Customers you can see, by username, a page at a time")
def list_customers(
    actor: OperatorActor,
    db: Db,
    search: Annotated[
        str | None, Query(max_length=64, description="Part of the username, name, phone or ID")
    ] = None,
    status: Annotated[str | None, Query(pattern="^(active|suspended|disabled)$")] = None,
    zone: Annotated[str | None, Query(max_length=20, description="Zone code")] = None,
    deleted: Annotated[bool, Query(description="Deleted (restorable) customers instead")] = False,
    after: Annotated[
        str | None, Query(max_length=64, description="The next_after of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CustomerPage:
    rows = domain.list_customers(
        db, actor, deleted=deleted, status=status, search=search, zone=zone, after=after, limit=limit + 1
    )
    items = [CustomerOut.of(row) for row in rows[:limit]]
    return CustomerPage(items=items, next_after=items[-1].username if len(rows) > limit else None)


@router.post("/customers", summary="Add and activate a customer of yours", status_code=201)
def add_customer(body: CustomerIn, actor: OperatorActor, db: Db, today: Today, once: Once) -> CustomerOut:
    return once.once(
        lambda: CustomerOut.of(
            lifecycle.add_customer(
                db,
                actor,
                body.username,
                password=body.password,
                package=body.package,
                calendar=today,
                zone=body.zone,
                mac=body.mac,
                static_ip=body.static_ip,
                name=body.name,
                phone=body.phone,
                address=body.address,
                fields=body.fields,
            )
        ),
        body,
        201,
    )


@router.get("/customers/{username}", summary="One customer")
def show_customer(username: str, actor: OperatorActor, db: Db) -> CustomerOut:
    return CustomerOut.of(domain.show_customer(db, actor, username))


@router.patch(
    "/customers/{username}", summary="Edit contact details, zone, MAC binding, static IP, custom fields"
)
def edit_customer(
    username: str, body: CustomerEdit, actor: OperatorActor, db: Db, today: Today
) -> CustomerOut:
    return CustomerOut.of(
        domain.set_customer(db, actor, username, today, **body.model_dump(exclude_unset=True))
    )


@router.post("/customers/{username}/renew", summary="Buy one more period (from the wallet, or cash paid now)")
def renew(
    username: str, body: RenewIn, actor: OperatorActor, db: Db, today: Today, once: Once
) -> CustomerOut:
    return once.once(
        lambda: CustomerOut.of(lifecycle.renew(db, actor, username, today, cash=body.cash)), body
    )


def _lifecycle(function):
    def step(username: str, actor: OperatorActor, db: Db, today: Today) -> CustomerOut:
        return CustomerOut.of(function(db, actor, username, today))

    return step


router.post(
    "/customers/{username}/suspend", summary="Suspend now (unused days refunded per policy; session cut)"
)(_lifecycle(lifecycle.suspend))
router.post("/customers/{username}/resume", summary="Lift a suspension")(_lifecycle(lifecycle.resume))
router.delete("/customers/{username}", summary="Soft-delete (unused days refunded per policy; restorable)")(
    _lifecycle(lifecycle.delete_customer)
)


@router.post("/customers/{username}/restore", summary="Restore a deleted customer")
def restore(username: str, actor: OperatorActor, db: Db) -> CustomerOut:
    return CustomerOut.of(lifecycle.restore_customer(db, actor, username))


@router.post(
    "/customers/{username}/change-package", summary="Switch package now (unused days refunded per policy)"
)
def change_package(
    username: str, body: ChangePackageIn, actor: OperatorActor, db: Db, today: Today, once: Once
) -> CustomerOut:
    return once.once(
        lambda: CustomerOut.of(lifecycle.change_package(db, actor, username, body.package, today)), body
    )


def _payment():
    def receive(
        username: str, body: PaymentIn, actor: OperatorActor, db: Db, today: Today, once: Once
    ) -> CustomerOut:
        return once.once(
            lambda: CustomerOut.of(
                wallets.receive_payment(
                    db, actor, username, body.amount, today, method=body.method, reference=body.reference
                )
            ),
            body,
        )

    return receive


router.post(
    "/customers/{username}/topup", summary="Add money to the wallet (reactivates an expired customer)"
)(_payment())
router.post("/customers/{username}/pay", summary="Record a payment; open invoices are settled oldest first")(
    _payment()
)


@router.post("/customers/{username}/reset-password", summary="A new random password, returned once")
def reset_password(username: str, actor: OperatorActor, db: Db) -> PasswordOut:
    return PasswordOut(password=domain.reset_password(db, actor, username))
