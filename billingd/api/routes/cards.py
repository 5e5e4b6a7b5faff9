"""Recharge cards: batches, the list, redemption for a customer."""

from typing import Annotated

from fastapi import APIRouter, Query

from billingd import cards as domain
from billingd.api.deps import Db, Once, OperatorActor, Today
from billingd.api.models import CardBatchIn, CardOut, CustomerOut, RedeemIn
from billingd.api.routes import ERRORS

router = APIRouter(tags=["cards"], responses=ERRORS)


@router.post(
    "/cards/batches", summary="Issue a batch of cards (serials and PINs, shown to you)", status_code=201
)
def create_batch(body: CardBatchIn, actor: OperatorActor, db: Db, once: Once) -> list[CardOut]:
    return once.once(
        lambda: [
            CardOut.of(card)
            for card in domain.create_batch(
                db, actor, body.count, value=body.value, package=body.package, distributor=body.distributor
            )
        ],
        body,
        201,
    )


@router.get("/cards", summary="Cards you issued, or were given to sell")
def list_cards(
    actor: OperatorActor,
    db: Db,
    batch: Annotated[int | None, Query(ge=1)] = None,
    status: Annotated[str | None, Query(pattern="^(new|redeemed|void)$")] = None,
) -> list[CardOut]:
    return [CardOut.of(card) for card in domain.list_cards(db, actor, batch=batch, status=status)]


@router.post("/cards/redeem", summary="Use a card for a customer, once")
def redeem(body: RedeemIn, actor: OperatorActor, db: Db, today: Today, once: Once) -> CustomerOut:
    return once.once(lambda: CustomerOut.of(domain.redeem(db, actor, body.pin, body.customer, today)), body)
