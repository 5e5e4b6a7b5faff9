"""Recharge cards: batches, the list, redemption for a customer."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from billingd import cards as domain
from billingd.api.deps import Db, Once, OperatorActor, State, Today
from billingd.api.models import (
    CardBatchIn,
    CardBatchOut,
    CardOut,
    CardSaleIn,
    CardSaleOut,
    CardVoidOut,
    CustomerOut,
    RedeemIn,
)
from billingd.api.routes import ERRORS

router = APIRouter(tags=["cards"], responses=ERRORS)


@router.post(
    "/cards/batches",
    summary="Issue a batch of cards: the only answer that shows their PINs (stored hashed)",
    status_code=201,
)
def create_batch(body: CardBatchIn, actor: OperatorActor, db: Db, state: State, once: Once) -> CardBatchOut:
    def issue() -> CardBatchOut:
        issued = domain.create_batch(
            db,
            actor,
            body.count,
            state.card_pin_key,
            value=body.value,
            package=body.package,
            distributor=body.distributor,
        )
        return CardBatchOut.of(issued, body.distributor)

    return once.once(issue, body, 201, kept=CardBatchOut.without_pins)


@router.post(
    "/cards/batches/{batch}/void",
    summary="Void a batch's unused, unsold cards (lost or stolen): they redeem nothing",
)
def void_batch(batch: Annotated[int, Path(ge=1)], actor: OperatorActor, db: Db, once: Once) -> CardVoidOut:
    return once.once(lambda: CardVoidOut(batch=batch, voided=domain.void_batch(db, actor, batch)))


@router.post(
    "/cards/sales", summary="Record a sale of cards (one range of serials) for cash", status_code=201
)
def sell(body: CardSaleIn, actor: OperatorActor, db: Db, once: Once) -> CardSaleOut:
    return once.once(
        lambda: CardSaleOut.of(
            domain.sell(
                db, actor, body.first, body.last, body.buyer, commission=body.commission, cash=body.cash
            )
        ),
        body,
        201,
    )


@router.get("/cards/sales", summary="Card sales: a distributor's own, an operator's those in its books")
def list_sales(actor: OperatorActor, db: Db) -> list[CardSaleOut]:
    return [CardSaleOut.of(sale) for sale in domain.list_sales(db, actor)]


@router.get("/cards", summary="Cards you issued, or were given to sell (serials and status, never PINs)")
def list_cards(
    actor: OperatorActor,
    db: Db,
    batch: Annotated[int | None, Query(ge=1)] = None,
    status: Annotated[str | None, Query(pattern="^(new|redeemed|void)$")] = None,
) -> list[CardOut]:
    return [CardOut.of(card) for card in domain.list_cards(db, actor, batch=batch, status=status)]


@router.post("/cards/redeem", summary="Use a card for a customer, once")
def redeem(
    body: RedeemIn, actor: OperatorActor, db: Db, state: State, today: Today, once: Once
) -> CustomerOut:
    return once.once(
        lambda: CustomerOut.of(domain.redeem(db, actor, body.pin, body.customer, today, state.card_pin_key)),
        body,
    )
