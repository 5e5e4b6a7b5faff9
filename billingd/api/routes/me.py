"""The subscriber's own account: profile, usage, invoices, payments, cards, buying from the wallet."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from billingd import credentials, portal
from billingd.api.deps import ClientAddress, CurrentSubscriber, Db, Now, Once, State, Today
from billingd.api.models import (
    BuyIn,
    ErrorOut,
    InvoiceOut,
    PackageOut,
    PaymentOut,
    ProfileOut,
    SubscriberRedeemIn,
    UsageOut,
    money,
)
from billingd.api.routes import ERRORS
from billingd.cards import CardRefused

router = APIRouter(tags=["subscriber"], responses=ERRORS)


def _profile(db, subscriber, instant) -> ProfileOut:
    found = portal.profile(db, subscriber, instant)
    return ProfileOut(**found, wallet_balance_text=money(found["wallet_balance"]))


@router.get("/me", summary="Your plan, status, expiry, days left and wallet")
def profile(subscriber: CurrentSubscriber, db: Db, instant: Now) -> ProfileOut:
    return _profile(db, subscriber, instant)


@router.get("/me/usage", summary="Data used this billing period, against your quota")
def usage(subscriber: CurrentSubscriber, db: Db, today: Today) -> UsageOut:
    return UsageOut(**portal.usage(db, subscriber, today))


@router.get("/me/invoices", summary="Your invoices, newest first")
def invoices(subscriber: CurrentSubscriber, db: Db) -> list[InvoiceOut]:
    return [InvoiceOut.of(row) for row in portal.own_invoices(db, subscriber)]


@router.get("/me/payments", summary="Your payments, newest first")
def payments(subscriber: CurrentSubscriber, db: Db) -> list[PaymentOut]:
    return [
        PaymentOut(**row, amount_text=money(row["amount"])) for row in portal.own_payments(db, subscriber)
    ]


@router.get("/me/packages", summary="The packages you may buy")
def packages(subscriber: CurrentSubscriber, db: Db) -> list[PackageOut]:
    return [
        PackageOut.of(priced, with_operator_price=False) for priced in portal.public_packages(db, subscriber)
    ]


@router.post(
    "/me/redeem",
    summary="Use a recharge card on your account (wrong PINs are throttled like logins)",
    responses={429: {"model": ErrorOut, "description": "Too many wrong PINs; see Retry-After"}},
)
def redeem(
    body: SubscriberRedeemIn,
    subscriber: CurrentSubscriber,
    db: Db,
    state: State,
    today: Today,
    address: ClientAddress,
    once: Once,
) -> ProfileOut:
    credentials.check_throttle(db, "redeem", subscriber.username, address, today.now)

    def use():
        portal.redeem(db, subscriber, body.pin, today, state.card_pin_key)
        return _profile(db, subscriber, today.now)

    try:
        return once.once(use, body)
    except CardRefused as refused:  # nothing was written: the count commits with the answer
        credentials.card_failed(db, subscriber, address, today.now, state.settings.api)
        return JSONResponse({"error": {"code": "bad_request", "message": str(refused)}}, status_code=400)


@router.post("/me/buy", summary="Buy one more period, or switch to another package, from your wallet")
def buy(body: BuyIn, subscriber: CurrentSubscriber, db: Db, today: Today, once: Once) -> ProfileOut:
    def purchase():
        portal.buy(db, subscriber, body.package, today)
        return _profile(db, subscriber, today.now)

    return once.once(purchase, body)
