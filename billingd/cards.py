"""Recharge cards: batches of PINs that add money, or buy a package period.

A PIN is 15 digits from the operating system's CSPRNG (``secrets``, ~50
bits) plus a Luhn check digit, so a mistyped PIN is caught before any
lookup. A card is redeemed exactly once: the redemption is a conditional
``UPDATE ... WHERE status = 'new'`` whose row count decides, so of two
concurrent redemptions one wins and the other is told the PIN is used.

A PIN is stored only as its HMAC-SHA256 under the card PIN key, a random
256-bit key in a file outside the database (``card-pin.key`` in ``[api]
state_dir``, 0600): the PINs are shown once, when the batch is issued (the
command's output, the API's answer, the panel's print view), and nothing reads
them back. A keyed hash, not a slow password hash: a PIN is 50 random bits,
so a fast hash is no help to a guesser who has only the database (without the
key no PIN can be tested offline at all), online guessing is throttled, and
redemption is one indexed lookup however many cards exist.

A card distributor sells the cards given to it (:func:`sell`): the sale is
recorded with its buyer, its cash (the cards' face value) and the commission
the distributor keeps, and posted to the issuer's book: the cash less the
commission comes in, the commission is an expense, and the cards' face value
is owed to their holders (``cards_sold``) until each is redeemed, when it
moves to the customer. Unsold cards redeem as before: their cash comes in at
redemption.

A card is issued by an operator for its own customers. Redeeming it posts
to that operator's book: the card's value comes in as cash to the
customer's wallet (a value card), or pays for one period of the package
with the usual cascade up the chain (a package card).
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, and_, case, func, insert, select, update

from billingd import cascade, customers, ledger, lifecycle, wallets
from billingd.customers import Calendar
from billingd.ledger import Line
from billingd.money import check_amount, format_amount
from billingd.packages import priced_package, priced_package_by_id
from schema.audit import audit
from schema.changes import record_change
from schema.errors import NotFound, RadbillError, require_one_of
from schema.private_files import load_or_create_key
from schema.tables import (
    CARD_STATUSES,
    card_batches,
    card_sale_items,
    card_sales,
    operators,
    packages,
    recharge_cards,
)
from schema.tenancy import Actor, require_changeable, visible_operator_ids

RANDOM_DIGITS = 15
MAX_BATCH = 10_000
_PIN = re.compile(r"\d{%d}" % (RANDOM_DIGITS + 1))
_REFUSED = "PIN is not valid, or the card is used or not for this customer"
PIN_KEY_FILE = "card-pin.key"


class CardRefused(RadbillError):
    """A PIN that opens no card for this customer; raised before anything is written,
    so a front end may count the failure (subscribers' redemptions are throttled)."""


def _seen_by(connection: Connection, actor: Actor, query, table):
    """Rows of ``table`` (batches or sales) the actor sees: a distributor those given to it, an
    operator those in the books it sees."""
    if actor.role == "card_distributor":
        return query.where(table.c.distributor_id == actor.id)
    visible = visible_operator_ids(connection, actor)
    return query if visible is None else query.where(table.c.operator_id.in_(visible))


def luhn_digit(payload: str) -> str:
    """The Luhn check digit for a string of digits."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(pin: str) -> bool:
    return bool(_PIN.fullmatch(pin)) and luhn_digit(pin[:-1]) == pin[-1]


def load_pin_key(state_dir: str | Path) -> bytes:
    """The card PIN key in ``state_dir``, made on first use; every radbill process must share it."""
    path = Path(state_dir) / PIN_KEY_FILE
    try:
        return load_or_create_key(path)
    except OSError as error:
        raise RadbillError(f"cannot use the card PIN key {path}: {error.strerror or error}") from None


def pin_hash(key: bytes, pin: str) -> str:
    """What is stored of a PIN."""
    return hmac.new(key, pin.encode(), hashlib.sha256).hexdigest()


def pin_key_id(key: bytes) -> str:
    """Names a key without revealing it, so a process with another key is told, not silently wrong."""
    return hmac.new(key, b"radbill card PIN key id", hashlib.sha256).hexdigest()[:16]


def _require_same_key(connection: Connection, key: bytes) -> str:
    key_id = pin_key_id(key)
    last = connection.execute(
        select(card_batches.c.id, card_batches.c.pin_key_id).order_by(card_batches.c.id.desc()).limit(1)
    ).first()
    if last is not None and last.pin_key_id != key_id:
        raise RadbillError(
            f"this card PIN key ({PIN_KEY_FILE} in [api] state_dir) is not the one batch {last.id} was "
            "issued with: the CLI and the API must use the same key file"
        )
    return key_id


def new_pin() -> str:
    payload = f"{secrets.randbelow(10**RANDOM_DIGITS):0{RANDOM_DIGITS}d}"
    return payload + luhn_digit(payload)


def create_batch(
    connection: Connection,
    actor: Actor,
    count: int,
    pin_key: bytes,
    *,
    value: int | None = None,
    package: str | None = None,
    distributor: str | None = None,
) -> list[dict]:
    """Issue ``count`` cards of one value or one package; returns serials and PINs, the only time
    the PINs are known (only their keyed hashes are stored)."""
    actor.require("cards", "create recharge cards")
    actor.require("money", "create recharge cards")
    if not 1 <= count <= MAX_BATCH:
        raise RadbillError(f"a batch has 1 to {MAX_BATCH} cards, not {count}")
    if (value is None) == (package is None):
        raise RadbillError("give either --value or --package")
    if value is not None and value <= 0:
        raise RadbillError("a card's value must be more than zero")
    if value is not None:
        check_amount(value, "a card's value")
    package_id = priced_package(connection, actor.home_id, package).package_id if package else None
    distributor_id = None
    if distributor is not None:
        row = connection.execute(select(operators).where(operators.c.login == distributor)).mappings().first()
        if row is None or row["role"] != "card_distributor" or row["parent_id"] != actor.home_id:
            raise RadbillError(f"{distributor} is not one of your card distributors")
        distributor_id = row["id"]
    key_id = _require_same_key(connection, pin_key)
    batch_id = connection.execute(
        insert(card_batches).values(
            operator_id=actor.home_id,
            distributor_id=distributor_id,
            value=value,
            package_id=package_id,
            count=count,
            created_by=actor.caller_id,
            pin_key_id=key_id,
        )
    ).inserted_primary_key[0]
    cards = [
        dict(batch_id=batch_id, serial=f"{batch_id:05d}-{number:05d}", pin=new_pin())
        for number in range(1, count + 1)
    ]
    if len({card["pin"] for card in cards}) != count:
        raise RadbillError("PIN collision inside the batch; run the command again")
    connection.execute(
        insert(recharge_cards),
        [
            dict(batch_id=batch_id, serial=card["serial"], pin_hash=pin_hash(pin_key, card["pin"]))
            for card in cards
        ],
    )
    audit(
        connection,
        "card.batch",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="card_batch",
        target_id=batch_id,
        count=count,
        value=value,
        package=package,
        distributor=distributor,
    )
    return [{**card, "value": value, "package": package} for card in cards]


def list_cards(
    connection: Connection, actor: Actor, *, batch: int | None = None, status: str | None = None
) -> list[dict]:
    """Cards of the batches the actor may see (a distributor: the batches given to it)."""
    actor.require("cards.view" if actor.role == "card_distributor" else "cards", "list recharge cards")
    query = (
        select(
            recharge_cards.c.serial,
            recharge_cards.c.status,
            card_batches.c.id.label("batch"),
            card_batches.c.value,
            packages.c.name.label("package"),
            operators.c.login.label("operator"),
            card_sale_items.c.sale_id.label("sale"),
            recharge_cards.c.redeemed_at,
        )
        .select_from(
            recharge_cards.join(card_batches, card_batches.c.id == recharge_cards.c.batch_id)
            .join(operators, operators.c.id == card_batches.c.operator_id)
            .outerjoin(packages, packages.c.id == card_batches.c.package_id)
            .outerjoin(card_sale_items, card_sale_items.c.card_id == recharge_cards.c.id)
        )
        .order_by(recharge_cards.c.id)
    )
    query = _seen_by(connection, actor, query, card_batches)
    if batch is not None:
        query = query.where(card_batches.c.id == batch)
    if status is not None:
        require_one_of(status, CARD_STATUSES, "card status")
        query = query.where(recharge_cards.c.status == status)
    return [dict(row) for row in connection.execute(query).mappings()]


def redeem(
    connection: Connection, actor: Actor, pin: str, username: str, calendar: Calendar, pin_key: bytes
) -> dict:
    """Use a card for a customer, once."""
    row = customers.changeable_customer(connection, actor, username, "redeem recharge cards", money=True)
    redeem_for(connection, actor, row, pin, calendar, pin_key)
    return customers.show_customer(connection, actor, username)


def redeem_for(
    connection: Connection, actor: Actor, row, pin: str, calendar: Calendar, pin_key: bytes
) -> None:
    """Use a card for a customer already checked (and locked) for the actor: an operator's, or the subscriber's own."""
    pin = re.sub(r"[\s-]", "", pin)
    if not luhn_valid(pin):
        raise CardRefused(_REFUSED)
    card = (
        connection.execute(
            select(
                recharge_cards.c.id,
                recharge_cards.c.serial,
                card_batches.c.operator_id,
                card_batches.c.value,
                card_batches.c.package_id,
            )
            .select_from(recharge_cards.join(card_batches, card_batches.c.id == recharge_cards.c.batch_id))
            .where(recharge_cards.c.pin_hash == pin_hash(pin_key, pin))
        )
        .mappings()
        .first()
    )
    if card is None:
        _require_same_key(connection, pin_key)  # a process with another key finds no card at all
    if card is None or card["operator_id"] != row["operator_id"]:
        raise CardRefused(_REFUSED)
    taken = connection.execute(
        update(recharge_cards)
        .where(recharge_cards.c.id == card["id"], recharge_cards.c.status == "new")
        .values(status="redeemed", redeemed_by_customer_id=row["id"], redeemed_at=calendar.now)
    ).rowcount
    if taken != 1:
        raise CardRefused(_REFUSED)
    if card["value"] is not None:
        entry_id = wallets.receive(
            connection, actor, row, card["value"], calendar, method="card", reference=card["serial"]
        )
    else:
        entry_id = _buy_with_card(connection, actor, row, card, calendar)
    _settle_sold(connection, card, entry_id)
    connection.execute(
        update(recharge_cards).where(recharge_cards.c.id == card["id"]).values(entry_id=entry_id)
    )
    audit(
        connection,
        "card.redeem",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="customer",
        target_id=row["id"],
        serial=card["serial"],
        entry=entry_id,
    )


def _settle_sold(connection: Connection, card, entry_id: int) -> None:
    """A sold card's value came in at its sale: its redemption takes it from ``cards_sold``, not cash."""
    value = connection.execute(
        select(card_sale_items.c.value).where(card_sale_items.c.card_id == card["id"])
    ).scalar()
    if value:
        book = card["operator_id"]
        ledger.add_lines(
            connection,
            entry_id,
            [
                Line(
                    book,
                    ledger.account_id(connection, book, "cards_sold"),
                    ledger.account_id(connection, book, "cash"),
                    value,
                )
            ],
        )


def _buy_with_card(connection: Connection, actor: Actor, row, card, calendar: Calendar) -> int:
    if card["package_id"] != row["package_id"]:
        name = priced_package_by_id(connection, row["operator_id"], card["package_id"]).name
        raise RadbillError(f"this card buys {name}; change the customer's package first")
    priced = priced_package_by_id(connection, row["operator_id"], row["package_id"])
    if priced.billing_type != "daily":
        raise RadbillError(
            "package cards are for daily-billed packages; use a value card for monthly customers"
        )
    lifecycle.require_renewable(row)
    last_paid = lifecycle.last_paid_day(connection, row["id"])
    start = max(calendar.today, last_paid + timedelta(days=1)) if last_paid else calendar.today
    entry_id = lifecycle.buy_period(
        connection,
        actor,
        row["id"],
        row["operator_id"],
        priced,
        start,
        calendar,
        pay_cash=True,
        kind="card_renewal",
        paid_by_card=card["serial"],
    )
    lifecycle.renewed(connection, row, calendar)
    record_change(connection, "customer", row["id"])
    return entry_id


def void_batch(connection: Connection, actor: Actor, batch_id: int) -> int:
    """Void a batch's unused, unsold cards (lost or stolen stock, FIELD-NOTES 34); returns how many.

    Redeemed cards stay as they are: their money has moved; so do sold ones:
    their buyers paid for them. A void card is refused at redemption like an
    unknown PIN.
    """
    actor.require("cards", "void recharge cards")
    owner = connection.execute(
        select(card_batches.c.operator_id).where(card_batches.c.id == batch_id)
    ).scalar()
    if owner is None:
        raise NotFound(f"no card batch {batch_id}")
    require_changeable(connection, actor, owner, f"card batch {batch_id}")
    voided = connection.execute(
        update(recharge_cards)
        .where(
            recharge_cards.c.batch_id == batch_id,
            recharge_cards.c.status == "new",
            recharge_cards.c.id.not_in(select(card_sale_items.c.card_id)),
        )
        .values(status="void")
    ).rowcount
    audit(
        connection,
        "card.void",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="card_batch",
        target_id=batch_id,
        count=voided,
    )
    return voided


# --- selling cards -------------------------------------------------------------------------

_SERIAL = re.compile(r"(\d{5,})-(\d{5,})")


def may_sell(actor: Actor) -> bool:
    """A card distributor sells the cards given to it; others need the right to cards and to money."""
    return actor.role == "card_distributor" or (actor.may("cards.sell") and actor.may("money"))


def _serial_range(first: str, last: str | None) -> tuple[int, str, str]:
    """The batch and the first and last serial of a range inside it."""
    last = last or first
    parsed = [_SERIAL.fullmatch(serial.strip()) for serial in (first, last)]
    if not all(parsed):
        raise RadbillError(f"a card serial looks like 00012-00001, not {(last if parsed[0] else first)!r}")
    if parsed[0].group(1) != parsed[1].group(1):
        raise RadbillError("a sale's cards are one range of serials inside one batch")
    if parsed[0].group(0) > parsed[1].group(0):
        raise RadbillError(f"the range {first}..{last} is empty: give the lower serial first")
    return int(parsed[0].group(1)), parsed[0].group(0), parsed[1].group(0)


def _face_value(connection: Connection, batch) -> int:
    """What one card of the batch is worth: its value, or its package's customer price today."""
    if batch["value"] is not None:
        return batch["value"]
    return priced_package_by_id(connection, batch["operator_id"], batch["package_id"]).customer_price


def sell(
    connection: Connection,
    actor: Actor,
    first: str,
    last: str | None,
    buyer: str,
    *,
    commission: int = 0,
    cash: int | None = None,
) -> dict:
    """Record a sale of the cards ``first``..``last`` to ``buyer`` and post it to the issuer's book.

    A card distributor sells the cards given to it; the issuer (or an operator
    who may change its books) may record a sale too, on the batch's distributor's
    behalf. Cards sell at their face value: ``cash``, when given, must be it; a
    discount is commission.
    """
    if not may_sell(actor):
        actor.require("cards.sell", "sell recharge cards")
        actor.require("money", "sell recharge cards")
    buyer = buyer.strip()
    if not 1 <= len(buyer) <= 200:
        raise RadbillError("name the buyer (at most 200 characters)")
    batch_id, first, last = _serial_range(first, last)
    batch = connection.execute(select(card_batches).where(card_batches.c.id == batch_id)).mappings().first()
    if actor.role == "card_distributor":
        if batch is None or batch["distributor_id"] != actor.id:
            raise NotFound(f"no card batch {batch_id} given to {actor.login}")
    else:
        if batch is None:
            raise NotFound(f"no card batch {batch_id}")
        require_changeable(connection, actor, batch["operator_id"], f"card batch {batch_id}")
    cascade.lock_chain(connection, batch["operator_id"])  # money's one lock order: operators, then the rest
    in_range = and_(
        recharge_cards.c.batch_id == batch_id,
        recharge_cards.c.serial >= first,
        recharge_cards.c.serial <= last,
    )
    cards = connection.execute(
        select(
            recharge_cards.c.id, recharge_cards.c.serial, recharge_cards.c.status, card_sale_items.c.sale_id
        )
        .outerjoin(card_sale_items, card_sale_items.c.card_id == recharge_cards.c.id)
        .where(in_range)
        .order_by(recharge_cards.c.serial)
        .with_for_update(of=recharge_cards)  # a redemption at the same moment: one of them waits
    ).all()
    if not cards:
        raise NotFound(f"no card {first}..{last} in batch {batch_id}")
    unsellable = [card.serial for card in cards if card.status != "new" or card.sale_id is not None]
    if unsellable:
        raise RadbillError(
            f"{len(unsellable)} of these cards are sold, redeemed or void already (first {unsellable[0]}): "
            "nothing was sold"
        )
    value = _face_value(connection, batch)
    amount = value * len(cards)
    check_amount(amount, "a sale")
    if cash is not None and cash != amount:
        raise RadbillError(
            f"{len(cards)} cards of {format_amount(value)} sell for {format_amount(amount)}, "
            f"not {format_amount(cash)}: cards sell at face value (a discount is the commission)"
        )
    if not 0 <= commission <= amount:
        raise RadbillError(f"the commission must be 0 to the sale's {format_amount(amount)}")
    book = batch["operator_id"]
    owed = ledger.ensure_account(connection, book, "cards_sold", "liability", "Cards sold, not yet redeemed")
    kept = ledger.ensure_account(
        connection, book, "card_commission", "expense", "Commission kept by card distributors"
    )
    entry_id = ledger.post(
        connection,
        "card_sale",
        [
            Line(book, ledger.account_id(connection, book, "cash"), owed, amount - commission),
            Line(book, kept, owed, commission),
        ],
        actor_id=actor.caller_id,
        memo=f"{len(cards)} cards {first}..{last} to {buyer}",
    )
    sale_id = connection.execute(
        insert(card_sales).values(
            operator_id=book,
            distributor_id=batch["distributor_id"],
            buyer=buyer,
            count=len(cards),
            amount=amount,
            commission=commission,
            entry_id=entry_id,
            created_by=actor.caller_id,
        )
    ).inserted_primary_key[0]
    connection.execute(
        insert(card_sale_items), [dict(card_id=card.id, sale_id=sale_id, value=value) for card in cards]
    )
    audit(
        connection,
        "card.sell",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="card_batch",
        target_id=batch_id,
        sale=sale_id,
        cards=f"{first}..{last}",
        buyer=buyer,
        amount=amount,
        commission=commission,
    )
    return next(sale for sale in list_sales(connection, actor) if sale["id"] == sale_id)


def list_sales(connection: Connection, actor: Actor) -> list[dict]:
    """Card sales the actor may see, newest first: a distributor its own, an operator those in its books."""
    actor.require("cards.view" if actor.role == "card_distributor" else "cards", "list card sales")
    distributor = operators.alias("distributor")
    issuer = operators.alias("issuer")
    items = (
        select(
            card_sale_items.c.sale_id,
            func.min(recharge_cards.c.serial).label("first"),
            func.max(recharge_cards.c.serial).label("last"),
            func.sum(case((recharge_cards.c.status == "redeemed", 1), else_=0)).label("redeemed"),
        )
        .join(recharge_cards, recharge_cards.c.id == card_sale_items.c.card_id)
        .group_by(card_sale_items.c.sale_id)
        .subquery("items")
    )
    query = (
        select(
            card_sales.c.id,
            card_sales.c.created_at,
            issuer.c.login.label("operator"),
            distributor.c.login.label("distributor"),
            card_sales.c.buyer,
            card_sales.c.count,
            items.c.first,
            items.c.last,
            card_sales.c.amount,
            card_sales.c.commission,
            (card_sales.c.amount - card_sales.c.commission).label("cash_in"),
            items.c.redeemed,
            card_sales.c.entry_id,
        )
        .select_from(
            card_sales.join(issuer, issuer.c.id == card_sales.c.operator_id)
            .outerjoin(distributor, distributor.c.id == card_sales.c.distributor_id)
            .join(items, items.c.sale_id == card_sales.c.id)
        )
        .order_by(card_sales.c.id.desc())
    )
    query = _seen_by(connection, actor, query, card_sales)
    return [{**row, "redeemed": int(row["redeemed"] or 0)} for row in connection.execute(query).mappings()]
