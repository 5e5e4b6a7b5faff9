"""``radbill card``: recharge card batches, lists and redemption."""

import click

from billingd import cards
from billingd.cards import MAX_BATCH
from cli.context import Context
from cli.money import AMOUNT, shown
from cli.output import emit_record, emit_table
from cli.params import ROW_ID
from schema.tables import CARD_STATUSES


@click.group("card")
def card_group() -> None:
    """Recharge cards."""


@card_group.command("batch")
@click.option("--count", type=click.IntRange(1, MAX_BATCH), required=True)
@click.option("--value", type=AMOUNT, help="Money a card adds to a wallet.")
@click.option("--package", help="A package a card buys one period of.")
@click.option("--distributor", metavar="LOGIN", help="The card distributor who sells them.")
@click.pass_obj
def batch(obj: Context, count: int, value, package, distributor) -> None:
    """Issue a batch of cards (prints the PINs: the only time they are shown)."""
    pin_key = obj.card_pin_key()
    with obj.engine.begin() as connection:
        issued = cards.create_batch(
            connection,
            obj.actor(connection),
            count,
            pin_key,
            value=value,
            package=package,
            distributor=distributor,
        )
    emit_table([shown(card, "value") for card in issued], ["batch_id", "serial", "pin", "value", "package"])


@card_group.command("list")
@click.option("--batch", type=ROW_ID, help="Only this batch.")
@click.option("--status", type=click.Choice(CARD_STATUSES))
@click.pass_obj
def list_(obj: Context, batch, status) -> None:
    """Cards you issued or were given to sell (serials and status; PINs were shown at issue only)."""
    with obj.engine.begin() as connection:
        rows = cards.list_cards(connection, obj.actor(connection), batch=batch, status=status)
    emit_table(
        [shown(row, "value") for row in rows],
        ["serial", "status", "batch", "value", "package", "operator", "sale", "redeemed_at"],
    )


@card_group.command("redeem")
@click.argument("pin")
@click.option("--customer", "username", required=True, metavar="USERNAME")
@click.pass_obj
def redeem(obj: Context, pin: str, username: str) -> None:
    """Use a card for a customer (once)."""
    pin_key = obj.card_pin_key()
    with obj.engine.begin() as connection:
        redeemed = cards.redeem(connection, obj.actor(connection), pin, username, obj.calendar(), pin_key)
    emit_record(shown(redeemed, "wallet_balance"))


@card_group.command("void")
@click.argument("batch", type=ROW_ID)
@click.pass_obj
def void(obj: Context, batch: int) -> None:
    """Void a batch's unused cards (a lost or stolen batch): they redeem nothing."""
    with obj.engine.begin() as connection:
        voided = cards.void_batch(connection, obj.actor(connection), batch)
    click.echo(f"{voided} card(s) voided")


@card_group.command("sell")
@click.argument("first")
@click.argument("last", required=False)
@click.option("--to", "buyer", required=True, metavar="BUYER", help="Who bought them (a shop, a person).")
@click.option("--commission", type=AMOUNT, default=0, help="What the distributor keeps.")
@click.option("--cash", type=AMOUNT, help="The cash received: must be the cards' face value.")
@click.pass_obj
def sell(obj: Context, first: str, last: str | None, buyer: str, commission: int, cash) -> None:
    """Record a sale of the cards FIRST..LAST (serials of one batch) for cash."""
    with obj.engine.begin() as connection:
        sale = cards.sell(
            connection, obj.actor(connection), first, last, buyer, commission=commission, cash=cash
        )
    emit_record(shown(sale, "amount", "commission", "cash_in"))


@card_group.command("sales")
@click.pass_obj
def sales(obj: Context) -> None:
    """Card sales: a distributor's own, or those in the books you see."""
    with obj.engine.begin() as connection:
        rows = cards.list_sales(connection, obj.actor(connection))
    emit_table(
        [shown(row, "amount", "commission", "cash_in") for row in rows],
        [
            "id",
            "created_at",
            "operator",
            "distributor",
            "buyer",
            "count",
            "first",
            "last",
            "amount",
            "commission",
            "cash_in",
            "redeemed",
        ],
    )


COMMANDS = [card_group]
