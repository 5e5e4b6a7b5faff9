"""Recharge cards: CSPRNG PINs with a Luhn digit, redeemed exactly once, posted to the right book."""

import json
import threading

import pytest
from sqlalchemy import select, text

from billingd import cards, ledger, lifecycle
from schema import migrate
from schema.engine import make_engine
from schema.errors import RadbillError
from schema.tables import audit_log, card_batches, card_sale_items, operators, recharge_cards
from tests.billing_world import PIN_KEY, actor, add_customer_of, build, customer, fund_of, money, on


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
        issued = cards.create_batch(connection, reseller1, 3, PIN_KEY, value=money("100"))
        assert len({card["pin"] for card in issued}) == 3
        lifecycle.add_customer(
            connection, reseller1, "alice", password="pw", package="Home 10M", calendar=on()
        )
        cards.redeem(
            connection, reseller1, issued[0]["pin"][:4] + "-" + issued[0]["pin"][4:], "alice", on(), PIN_KEY
        )
        assert customer(connection, "alice")["wallet_balance"] == money("100")
        book = connection.execute(select(operators.c.id).where(operators.c.login == "reseller1")).scalar()
        assert ledger.balances(connection, book)["cash"] == -money("5000") + money("2000") + money(
            "500"
        ) + money("100")
        for pin in (issued[0]["pin"], "1234567812345678", "12"):
            with pytest.raises(RadbillError, match="PIN is not valid, or the card is used"):
                cards.redeem(connection, reseller1, pin, "alice", on(), PIN_KEY)
        assert ledger.verify(connection) == []


def test_a_package_card_buys_a_period_with_the_cascade(engine):
    with engine.begin() as connection:
        build(connection)
        sub1 = add_customer_of(connection, "sub1", "carol", on())
        issued = cards.create_batch(connection, sub1, 1, PIN_KEY, package="Home 10M")
        expiry = customer(connection, "carol")["expires_at"]
        cards.redeem(connection, sub1, issued[0]["pin"], "carol", on(3), PIN_KEY)
        assert (customer(connection, "carol")["expires_at"] - expiry).days == 30
        assert fund_of(connection, "sub1") == money("2000") - 2 * money("450")
        assert fund_of(connection, "reseller1") == money("5000") - 2 * money("400")
        assert ledger.verify(connection) == []


def test_a_package_card_does_not_lift_a_manual_suspension(engine):
    """Defect 8 of issue 12: a package card renewed a customer that customer renew refuses."""
    with engine.begin() as connection:
        build(connection)
        sub1 = add_customer_of(connection, "sub1", "carol", on())
        issued = cards.create_batch(connection, sub1, 1, PIN_KEY, package="Home 10M")
        lifecycle.suspend(connection, sub1, "carol", on())
    with pytest.raises(RadbillError, match=r"carol is suspended \(manual\); resume it first"):
        with engine.begin() as connection:
            cards.redeem(connection, sub1, issued[0]["pin"], "carol", on(1), PIN_KEY)
    with engine.connect() as connection:
        assert customer(connection, "carol")["status"] == "suspended"
        card = connection.execute(select(recharge_cards.c.status)).scalar()
        assert card == "new"


def test_a_card_is_only_for_its_operators_customers(engine):
    with engine.begin() as connection:
        build(connection)
        issued = cards.create_batch(
            connection, actor(connection, "reseller1"), 1, PIN_KEY, value=money("100")
        )
        reseller2 = add_customer_of(connection, "reseller2", "bob", on())
        with pytest.raises(RadbillError, match="PIN is not valid"):
            cards.redeem(connection, reseller2, issued[0]["pin"], "bob", on(), PIN_KEY)
        assert cards.list_cards(connection, reseller2) == []
        assert len(cards.list_cards(connection, actor(connection, "admin"))) == 1


def test_distributors_see_only_the_cards_given_to_them(engine):
    from billingd import operators as operator_domain

    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        operator_domain.add_operator(connection, reseller1, "seller", "card_distributor")
        cards.create_batch(connection, reseller1, 2, PIN_KEY, value=money("50"), distributor="seller")
        cards.create_batch(connection, reseller1, 1, PIN_KEY, value=money("50"))
        seller = actor(connection, "seller")
        assert len(cards.list_cards(connection, seller)) == 2
        with pytest.raises(RadbillError, match="not allowed to create recharge cards"):
            cards.create_batch(connection, seller, 1, PIN_KEY, value=money("1"))


def test_concurrent_redemptions_succeed_exactly_once(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        for name in ("alice", "bob"):
            lifecycle.add_customer(
                connection, reseller1, name, password="pw", package="Home 10M", calendar=on()
            )
        pin = cards.create_batch(connection, reseller1, 1, PIN_KEY, value=money("100"))[0]["pin"]
    barrier = threading.Barrier(2)
    outcomes = []

    def redeem(username):
        barrier.wait()
        try:
            with engine.begin() as connection:
                cards.redeem(connection, actor(connection, "reseller1"), pin, username, on(), PIN_KEY)
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


def test_nothing_reads_a_pin_back_after_issue(engine):
    """Only the PINs' keyed hashes are stored: no table and no list holds a PIN."""
    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        pins = [
            card["pin"] for card in cards.create_batch(connection, reseller1, 5, PIN_KEY, value=money("10"))
        ]
        listed = cards.list_cards(connection, reseller1)
        assert len(listed) == 5 and all("pin" not in card for card in listed)
        stored = [
            str(value)
            for table in (recharge_cards, card_batches, audit_log)
            for row in connection.execute(select(table)).all()
            for value in row
        ]
        assert not [value for value in stored for pin in pins if pin in value]
        hashes = set(connection.execute(select(recharge_cards.c.pin_hash)).scalars())
        assert hashes == {cards.pin_hash(PIN_KEY, pin) for pin in pins}
        assert cards.pin_hash(bytes(32), pins[0]) not in hashes  # keyed: the hash alone tests no guess


def test_a_process_with_another_pin_key_is_told_not_silently_wrong(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        pin = cards.create_batch(connection, reseller1, 1, PIN_KEY, value=money("10"))[0]["pin"]
        lifecycle.add_customer(
            connection, reseller1, "alice", password="pw", package="Home 10M", calendar=on()
        )
        other = bytes(32)
        with pytest.raises(RadbillError, match="is not the one batch 1 was issued with"):
            cards.create_batch(connection, reseller1, 1, other, value=money("10"))
        with pytest.raises(RadbillError, match="is not the one batch 1 was issued with"):
            cards.redeem(connection, reseller1, pin, "alice", on(), other)
        cards.redeem(connection, reseller1, pin, "alice", on(), PIN_KEY)
        assert customer(connection, "alice")["wallet_balance"] == money("10")


def test_the_pin_key_is_made_once_private_and_refused_when_others_may_read_it(tmp_path):
    key = cards.load_pin_key(tmp_path / "state")
    assert len(key) == 32 and cards.load_pin_key(tmp_path / "state") == key
    path = tmp_path / "state" / cards.PIN_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(RadbillError, match="card-pin.key: .*readable by other users"):
        cards.load_pin_key(tmp_path / "state")


def test_the_upgrade_hashes_pins_kept_in_clear(database_url):
    """Revision 0011 replaces the clear PINs of older batches by their keyed hashes."""
    if database_url.startswith("sqlite"):
        database_url = database_url.replace("radbill.sqlite", "older.sqlite")
    engine = make_engine(database_url)
    try:
        if engine.dialect.name == "postgresql":  # an empty database, migrated to the revision before
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        migrate.upgrade(engine, "0010")
        with engine.begin() as connection:
            build(connection)
            operator = connection.execute(
                select(operators.c.id).where(operators.c.login == "reseller1")
            ).scalar()
            connection.execute(
                text(
                    "INSERT INTO card_batches (id, operator_id, value, count) VALUES (7, :operator, 1000, 1)"
                ),
                {"operator": operator},
            )
            connection.execute(
                text(
                    "INSERT INTO recharge_cards (batch_id, serial, pin) VALUES (7, '00007-00001', '4000000000000002')"
                )
            )
        with pytest.raises(RuntimeError, match="run 'radbill db upgrade' to hash them"):
            migrate.upgrade(engine)
        migrate.upgrade(engine, card_pin_key=lambda: PIN_KEY)
        with engine.begin() as connection:
            assert connection.execute(select(recharge_cards.c.pin_hash)).scalar() == cards.pin_hash(
                PIN_KEY, "4000000000000002"
            )
            reseller1 = actor(connection, "reseller1")
            lifecycle.add_customer(
                connection, reseller1, "alice", password="pw", package="Home 10M", calendar=on()
            )
            cards.redeem(connection, reseller1, "4000000000000002", "alice", on(), PIN_KEY)
            assert customer(connection, "alice")["wallet_balance"] == 1000
    finally:
        engine.dispose()


def _cards_world(connection):
    from billingd import operators as operator_domain

    build(connection)
    reseller1 = actor(connection, "reseller1")
    operator_domain.add_operator(connection, reseller1, "seller", "card_distributor")
    operator_domain.add_operator(connection, reseller1, "other_seller", "card_distributor")
    issued = cards.create_batch(connection, reseller1, 5, PIN_KEY, value=money("100"), distributor="seller")
    lifecycle.add_customer(connection, reseller1, "alice", password="pw", package="Home 10M", calendar=on())
    return reseller1, issued


def test_a_distributor_sells_its_cards_and_the_books_follow(engine):
    with engine.begin() as connection:
        reseller1, issued = _cards_world(connection)
        book = reseller1.id
        before = ledger.balances(connection, book)
        seller = actor(connection, "seller")
        sale = cards.sell(connection, seller, "00001-00001", "00001-00003", "Shop A", commission=money("15"))
        assert (sale["count"], sale["amount"], sale["commission"], sale["cash_in"]) == (
            3,
            money("300"),
            money("15"),
            money("285"),
        )
        assert (sale["distributor"], sale["buyer"], sale["first"], sale["last"]) == (
            "seller",
            "Shop A",
            "00001-00001",
            "00001-00003",
        )
        after = ledger.balances(connection, book)
        assert after["cash"] - before["cash"] == money("285")
        assert (after["cards_sold"], after["card_commission"]) == (money("300"), money("15"))
        assert ledger.verify(connection) == []
        # The sold card redeems once; its value moves from what is owed for sold cards to the wallet.
        cards.redeem(connection, reseller1, issued[0]["pin"], "alice", on(), PIN_KEY)
        redeemed = ledger.balances(connection, book)
        assert redeemed["cash"] == after["cash"] and redeemed["cards_sold"] == money("200")
        assert customer(connection, "alice")["wallet_balance"] == money("100")
        assert ledger.verify(connection) == []
        # An unsold card still brings its cash at redemption.
        cards.redeem(connection, reseller1, issued[4]["pin"], "alice", on(), PIN_KEY)
        assert ledger.balances(connection, book)["cash"] == after["cash"] + money("100")
        assert [row["sale"] for row in cards.list_cards(connection, seller)] == [1, 1, 1, None, None]
        assert [s["redeemed"] for s in cards.list_sales(connection, seller)] == [1]
        assert cards.void_batch(connection, reseller1, 1) == 1  # only the unsold, unredeemed card
        assert ledger.verify(connection) == []


def test_each_sees_only_its_own_sales_and_sells_only_its_own_cards(engine):
    with engine.begin() as connection:
        reseller1, _ = _cards_world(connection)
        cards.sell(connection, actor(connection, "seller"), "00001-00001", None, "Shop A")
        assert len(cards.list_sales(connection, reseller1)) == 1
        assert len(cards.list_sales(connection, actor(connection, "admin"))) == 1
        for stranger in ("other_seller", "reseller2"):
            assert cards.list_sales(connection, actor(connection, stranger)) == []
        with pytest.raises(RadbillError, match="no card batch 1 given to other_seller"):
            cards.sell(connection, actor(connection, "other_seller"), "00001-00002", None, "Shop B")
        with pytest.raises(RadbillError, match="not visible to reseller2|not visible"):
            cards.sell(connection, actor(connection, "reseller2"), "00001-00002", None, "Shop B")
        # The issuer may record a sale on its distributor's behalf.
        sale = cards.sell(connection, reseller1, "00001-00002", None, "Shop B")
        assert sale["distributor"] == "seller"
        assert [s["buyer"] for s in cards.list_sales(connection, actor(connection, "seller"))] == [
            "Shop B",
            "Shop A",
        ]


@pytest.mark.parametrize(
    "first, last, options, message",
    [
        ("00001-00001", "00001-00002", {}, "1 of these cards are sold, redeemed or void already"),
        ("00001-00003", "00001-00002", {}, "is empty"),
        ("00001-00003", "00002-00001", {}, "inside one batch"),
        ("1-2", None, {}, "looks like 00012-00001"),
        ("00001-00004", None, {"cash": 9000}, "sell for 100.00, not 90.00"),
        ("00001-00004", None, {"commission": 10001}, "commission must be 0 to the sale's 100.00"),
        ("00001-00009", None, {}, "no card 00001-00009..00001-00009 in batch 1"),
    ],
)
def test_a_sale_that_cannot_be_is_refused_whole(engine, first, last, options, message):
    with engine.begin() as connection:
        _cards_world(connection)
        cards.sell(connection, actor(connection, "seller"), "00001-00001", None, "Shop A")
    with pytest.raises(RadbillError, match=message):
        with engine.begin() as connection:
            cards.sell(connection, actor(connection, "seller"), first, last, "Shop B", **options)
    with engine.connect() as connection:
        assert len(cards.list_sales(connection, actor(connection, "seller"))) == 1
        assert ledger.verify(connection) == []


def test_a_card_sale_is_not_reversed_and_verify_catches_a_sale_outside_the_ledger(engine):
    from billingd import corrections

    with engine.begin() as connection:
        _cards_world(connection)
        sale = cards.sell(connection, actor(connection, "seller"), "00001-00001", None, "Shop A")
        with pytest.raises(RadbillError, match="card_sale.*not reversed"):
            corrections.reverse_entry(connection, None, sale["entry_id"], on())
        reseller1 = actor(connection, "reseller1")
        lifecycle.add_customer(connection, reseller1, "bob", password="pw", package="Home 10M", calendar=on())
        pin = cards.create_batch(connection, reseller1, 1, PIN_KEY, value=money("10"))[0]["pin"]
        cards.sell(connection, reseller1, "00002-00001", None, "Shop B")
        cards.redeem(connection, reseller1, pin, "bob", on(), PIN_KEY)
        redemption = connection.execute(
            select(recharge_cards.c.entry_id).where(recharge_cards.c.serial == "00002-00001")
        )
        with pytest.raises(RadbillError, match="redeemed sold card 00002-00001: it is not reversed"):
            corrections.reverse_entry(connection, None, redemption.scalar(), on())
        assert ledger.verify(connection) == []
        card = connection.execute(select(recharge_cards.c.id).where(recharge_cards.c.serial == "00001-00002"))
        connection.execute(
            card_sale_items.insert().values(card_id=card.scalar(), sale_id=sale["id"], value=1)
        )
        assert [problem for problem in ledger.verify(connection) if "for sold cards" in problem] == [
            "operator #2 owes 10000 for sold cards, but its sold cards not redeemed are worth 10001"
        ]


def test_card_sell_and_sales_on_the_command_line(engine, cli):
    from tests.test_billing_tenancy import as_operator

    with engine.begin() as connection:
        _cards_world(connection)
    seller = as_operator(cli, "seller")
    sold = json.loads(
        seller(
            "--json", "card", "sell", "00001-00001", "00001-00002", "--to", "Shop A", "--commission", "5"
        ).output
    )
    assert (sold["count"], sold["amount"], sold["commission"], sold["cash_in"]) == (2, 20000, 500, 19500)
    table = seller("card", "sales").output
    assert "Shop A" in table and "200.00" in table and "195.00" in table
    assert [row["buyer"] for row in json.loads(seller("--json", "card", "sales").output)] == ["Shop A"]
    assert json.loads(as_operator(cli, "other_seller")("--json", "card", "sales").output) == []
    listed = json.loads(seller("--json", "card", "list").output)
    assert [row["sale"] for row in listed][:3] == [1, 1, None] and all("pin" not in row for row in listed)
    refused = seller("card", "sell", "00001-00002", "--to", "Shop B", expect_exit=1)
    assert refused.stderr.startswith("radbill: error: 1 of these cards are sold")
    assert cli("ledger", "verify").exit_code == 0


def test_a_sale_and_a_redemption_of_the_same_card_at_once_keep_the_books(engine):
    """Whichever commits first, the other sees it: never a redeemed card still owed in cards_sold."""
    with engine.begin() as connection:
        _, issued = _cards_world(connection)
    barrier = threading.Barrier(2)
    outcomes = {}

    def sell():
        barrier.wait()
        try:
            with engine.begin() as connection:
                cards.sell(connection, actor(connection, "seller"), "00001-00001", "00001-00002", "Shop A")
            outcomes["sell"] = "ok"
        except RadbillError:
            outcomes["sell"] = "refused"

    def redeem():
        barrier.wait()
        with engine.begin() as connection:
            cards.redeem(connection, actor(connection, "reseller1"), issued[0]["pin"], "alice", on(), PIN_KEY)
        outcomes["redeem"] = "ok"

    threads = [threading.Thread(target=sell), threading.Thread(target=redeem)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes["redeem"] == "ok" and outcomes["sell"] in ("ok", "refused")
    with engine.connect() as connection:
        assert ledger.verify(connection) == []
        owed = ledger.balances(connection, actor(connection, "reseller1").id).get("cards_sold", 0)
        assert owed == (money("100") if outcomes["sell"] == "ok" else 0)
