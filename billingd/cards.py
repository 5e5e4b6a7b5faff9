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

from sqlalchemy import Connection, insert, select, update

from billingd import customers
from billingd.customers import Calendar
from billingd.packages import priced_package, priced_package_by_id
from billingd.prices import check_amount
from schema.audit import audit
from schema.changes import record_change
from schema.errors import NotFound, RadbillError, require_one_of
from schema.private_files import load_or_create_key
from schema.tables import CARD_STATUSES, card_batches, operators, packages, recharge_cards
from schema.tenancy import Actor, require_changeable, visible_operator_ids

RANDOM_DIGITS = 15
MAX_BATCH = 10_000
_PIN = re.compile(r"\d{%d}" % (RANDOM_DIGITS + 1))
_REFUSED = "PIN is not valid, or the card is used or not for this customer"
PIN_KEY_FILE = "card-pin.key"


class CardRefused(RadbillError):
    """A PIN that opens no card for this customer; raised before anything is written,
    so a front end may count the failure (subscribers' redemptions are throttled)."""


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
            recharge_cards.c.redeemed_at,
        )
        .select_from(
            recharge_cards.join(card_batches, card_batches.c.id == recharge_cards.c.batch_id)
            .join(operators, operators.c.id == card_batches.c.operator_id)
            .outerjoin(packages, packages.c.id == card_batches.c.package_id)
        )
        .order_by(recharge_cards.c.id)
    )
    if actor.role == "card_distributor":
        query = query.where(card_batches.c.distributor_id == actor.id)
    else:
        visible = visible_operator_ids(connection, actor)
        if visible is not None:
            query = query.where(card_batches.c.operator_id.in_(visible))
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
        entry_id = customers.receive(
            connection, actor, row, card["value"], calendar, method="card", reference=card["serial"]
        )
    else:
        entry_id = _buy_with_card(connection, actor, row, card, calendar)
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


def _buy_with_card(connection: Connection, actor: Actor, row, card, calendar: Calendar) -> int:
    if card["package_id"] != row["package_id"]:
        name = priced_package_by_id(connection, row["operator_id"], card["package_id"]).name
        raise RadbillError(f"this card buys {name}; change the customer's package first")
    priced = priced_package_by_id(connection, row["operator_id"], row["package_id"])
    if priced.billing_type != "daily":
        raise RadbillError(
            "package cards are for daily-billed packages; use a value card for monthly customers"
        )
    customers.require_renewable(row)
    last_paid = customers.last_paid_day(connection, row["id"])
    start = max(calendar.today, last_paid + timedelta(days=1)) if last_paid else calendar.today
    entry_id = customers.buy_period(
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
    customers.renewed(connection, row, calendar)
    record_change(connection, "customer", row["id"])
    return entry_id


def void_batch(connection: Connection, actor: Actor, batch_id: int) -> int:
    """Void a batch's unused cards (lost or stolen stock, FIELD-NOTES 34); returns how many.

    Redeemed cards stay as they are: their money has moved. A void card is
    refused at redemption like an unknown PIN.
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
        .where(recharge_cards.c.batch_id == batch_id, recharge_cards.c.status == "new")
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
