"""Recharge cards: CSPRNG PINs with a Luhn digit, redeemed exactly once, posted to the right book."""

import threading

import pytest
from sqlalchemy import select

from billingd import cards, customers, ledger
from schema.errors import RadbillError
from schema.tables import operators, recharge_cards
from tests.billing_world import actor, add_customer_of, build, customer, fund_of, money, on


def test_pins_carry_a_luhn_check_digit():
    assert cards.luhn_digit("7992739871") == "3"  # the textbook example
    pins = {cards.new_pin() for _ in range(2000)}
    assert len(pins) == 2000 and all(len(pin) == 16 and cards.luhn_valid(pin) for pin in pins)
    pin = next(iter(pins))
    typo = pin[:3] + str((int(pin[3]) + 1) % 10) + pin[4:]
    assert not cards.luhn_valid(typo)


def test_a_value_card_tops_up_the_owners_customer_once(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        issued = cards.create_batch(connection, reseller1, 3, value=money("100"))
        assert len({card["pin"] for card in issued}) == 3
        customers.add_customer(
            connection, reseller1, "alice", password="pw", package="Home 10M", calendar=on()
        )
        cards.redeem(connection, reseller1, issued[0]["pin"][:4] + "-" + issued[0]["pin"][4:], "alice", on())
        assert customer(connection, "alice")["wallet_balance"] == money("100")
        book = connection.execute(select(operators.c.id).where(operators.c.login == "reseller1")).scalar()
        assert ledger.balances(connection, book)["cash"] == -money("5000") + money("2000") + money(
            "500"
        ) + money("100")
        for pin in (issued[0]["pin"], "1234567812345678", "12"):
            with pytest.raises(RadbillError, match="PIN is not valid, or the card is used"):
                cards.redeem(connection, reseller1, pin, "alice", on())
        assert ledger.verify(connection) == []


def test_a_package_card_buys_a_period_with_the_cascade(engine):
    with engine.begin() as connection:
        build(connection)
        sub1 = add_customer_of(connection, "sub1", "carol", on())
        issued = cards.create_batch(connection, sub1, 1, package="Home 10M")
        expiry = customer(connection, "carol")["expires_at"]
        cards.redeem(connection, sub1, issued[0]["pin"], "carol", on(3))
        assert (customer(connection, "carol")["expires_at"] - expiry).days == 30
        assert fund_of(connection, "sub1") == money("2000") - 2 * money("450")
        assert fund_of(connection, "reseller1") == money("5000") - 2 * money("400")
        assert ledger.verify(connection) == []


def test_a_package_card_does_not_lift_a_manual_suspension(engine):
    """Defect 8 of issue 12: a package card renewed a customer that customer renew refuses."""
    with engine.begin() as connection:
        build(connection)
        sub1 = add_customer_of(connection, "sub1", "carol", on())
        issued = cards.create_batch(connection, sub1, 1, package="Home 10M")
        customers.suspend(connection, sub1, "carol", on())
    with pytest.raises(RadbillError, match=r"carol is suspended \(manual\); resume it first"):
        with engine.begin() as connection:
            cards.redeem(connection, sub1, issued[0]["pin"], "carol", on(1))
    with engine.connect() as connection:
        assert customer(connection, "carol")["status"] == "suspended"
        card = connection.execute(select(recharge_cards.c.status)).scalar()
        assert card == "new"


def test_a_card_is_only_for_its_operators_customers(engine):
    with engine.begin() as connection:
        build(connection)
        issued = cards.create_batch(connection, actor(connection, "reseller1"), 1, value=money("100"))
        reseller2 = add_customer_of(connection, "reseller2", "bob", on())
        with pytest.raises(RadbillError, match="PIN is not valid"):
            cards.redeem(connection, reseller2, issued[0]["pin"], "bob", on())
        assert cards.list_cards(connection, reseller2) == []
        assert len(cards.list_cards(connection, actor(connection, "admin"))) == 1


def test_distributors_see_only_the_cards_given_to_them(engine):
    from billingd import operators as operator_domain

    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        operator_domain.add_operator(connection, reseller1, "seller", "card_distributor")
        cards.create_batch(connection, reseller1, 2, value=money("50"), distributor="seller")
        cards.create_batch(connection, reseller1, 1, value=money("50"))
        seller = actor(connection, "seller")
        assert len(cards.list_cards(connection, seller)) == 2
        with pytest.raises(RadbillError, match="not allowed to create recharge cards"):
            cards.create_batch(connection, seller, 1, value=money("1"))


def test_concurrent_redemptions_succeed_exactly_once(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        for name in ("alice", "bob"):
            customers.add_customer(
                connection, reseller1, name, password="pw", package="Home 10M", calendar=on()
            )
        pin = cards.create_batch(connection, reseller1, 1, value=money("100"))[0]["pin"]
    barrier = threading.Barrier(2)
    outcomes = []

    def redeem(username):
        barrier.wait()
        try:
            with engine.begin() as connection:
                cards.redeem(connection, actor(connection, "reseller1"), pin, username, on())
            outcomes.append("ok")
        except RadbillError:
            outcomes.append("refused")

    threads = [threading.Thread(target=redeem, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "refused"]
    with engine.connect() as connection:
        assert customer(connection, "alice")["wallet_balance"] + customer(connection, "bob")[
            "wallet_balance"
        ] == money("100")
        assert connection.execute(select(recharge_cards.c.status)).scalar() == "redeemed"
        assert ledger.verify(connection) == []
