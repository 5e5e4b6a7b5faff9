"""Recharge cards: batches, the list, redemption for a customer."""

from typing import Annotated

from fastapi import APIRouter, Query

from billingd import cards as domain
from billingd.api.deps import Db, Once, OperatorActor, State, Today
from billingd.api.models import CardBatchIn, CardBatchOut, CardOut, CustomerOut, RedeemIn
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
