"""`radbill ledger verify` recomputes every balance and catches tampering; corrections reverse."""

import json
from datetime import date

import pytest
from sqlalchemy import insert, select, text

from billingd import ledger
from billingd.money import day_share, format_amount, parse_amount, prorated
from schema.errors import RadbillError
from schema.tables import customer_days, customers, ledger_accounts, ledger_entries, ledger_lines, operators


def test_amounts_are_typed_as_decimals_and_kept_as_minor_units():
    assert [parse_amount(text) for text in ("500", "499.50", "0.5", "0", " 12.34 ")] == [
        50000,
        49950,
        50,
        0,
        1234,
    ]
    for bad in ("-1", "1.234", "1,000", "abc", "", "1e3"):
        with pytest.raises(RadbillError, match="invalid amount"):
            parse_amount(bad)
    assert [format_amount(value) for value in (49950, 5, -5, 0)] == ["499.50", "0.05", "-0.05", "0.00"]


def test_a_period_adds_up_to_its_price_from_any_start():
    for price, days in ((50000, 30), (1, 7), (99999, 31), (0, 30), (10, 30)):
        shares = [day_share(price, days, i) for i in range(3 * days)]
        assert all(sum(shares[start : start + days]) == price for start in range(2 * days))
        assert max(shares) - min(shares) <= 1
    assert prorated(50000, 30, range(30)) == 50000


@pytest.fixture
def demo(cli):
    cli("demo")
    return cli


def test_verify_passes_on_the_demo(demo):
    assert "every book balances" in demo("ledger", "verify").output


def test_verify_catches_a_cached_wallet_changed_behind_its_back(demo, engine):
    with engine.begin() as connection:
        connection.execute(
            customers.update().where(customers.c.username == "demo").values(wallet_balance=999_999)
        )
    result = demo("ledger", "verify", expect_exit=1)
    assert "MISMATCH customer demo: cached wallet 999999 but ledger says 100000" in result.output


def test_verify_catches_a_cached_fund_changed_behind_its_back(demo, engine):
    with engine.begin() as connection:
        connection.execute(operators.update().where(operators.c.login == "reseller1").values(fund_balance=1))
    assert (
        "operator reseller1: cached fund 1 but its book says 1000000"
        in demo("ledger", "verify", expect_exit=1).output
    )


def test_verify_catches_a_line_that_only_one_book_has(demo, engine):
    """Money moved in the child's book without the parent's mirror: both caches and the mirror disagree."""
    with engine.begin() as connection:
        sub = connection.execute(select(operators.c.id).where(operators.c.login == "subreseller1")).scalar()
        fund, cash = (ledger.account_id(connection, sub, code) for code in ("fund", "cash"))
        entry = connection.execute(insert(ledger_entries).values(kind="forged")).inserted_primary_key[0]
        connection.execute(
            insert(ledger_lines).values(
                entry_id=entry,
                book_operator_id=sub,
                debit_account_id=fund,
                credit_account_id=cash,
                amount=500,
            )
        )
    output = demo("ledger", "verify", expect_exit=1).output
    assert "operator subreseller1: cached fund 200000 but its book says 200500" in output
    assert "operator subreseller1: fund 200500 in its book but 200000 in its parent's book" in output


def test_verify_catches_a_line_that_crosses_books(demo, engine):
    with engine.begin() as connection:
        admin, reseller = (
            connection.execute(select(operators.c.id).where(operators.c.login == login)).scalar()
            for login in ("admin", "reseller1")
        )
        entry = connection.execute(insert(ledger_entries).values(kind="forged")).inserted_primary_key[0]
        connection.execute(
            insert(ledger_lines).values(
                entry_id=entry,
                book_operator_id=admin,
                debit_account_id=ledger.account_id(connection, admin, "cash"),
                credit_account_id=ledger.account_id(connection, reseller, "sales"),
                amount=1,
            )
        )
    output = demo("ledger", "verify", expect_exit=1).output
    assert f"of entry #{entry} crosses books" in output
    assert "does not balance" in output


def test_verify_catches_a_line_that_names_no_entry_or_account(demo, engine):
    """Lines have no foreign keys (revision 0017): verify is what notices a dangling reference."""
    with engine.begin() as connection:
        admin = connection.execute(select(operators.c.id).where(operators.c.login == "admin")).scalar()
        cash = ledger.account_id(connection, admin, "cash")
        entry = connection.execute(insert(ledger_entries).values(kind="forged")).inserted_primary_key[0]
        for entry_id, credit in ((entry, 999_999), (entry + 1000, cash + 1)):
            connection.execute(
                insert(ledger_lines).values(
                    entry_id=entry_id,
                    book_operator_id=admin,
                    debit_account_id=cash,
                    credit_account_id=credit,
                    amount=1,
                )
            )
    output = demo("ledger", "verify", expect_exit=1).output
    assert f"of entry #{entry} names an account that does not exist" in output
    assert f"names entry #{entry + 1000}, which does not exist" in output


def test_verify_catches_a_customer_day_that_names_no_customer_or_entry(demo, engine):
    with engine.begin() as connection:
        customer = connection.execute(select(customers.c.id).where(customers.c.username == "demo")).scalar()
        connection.execute(
            insert(customer_days).values(
                customer_id=customer, day=date(2026, 1, 1), amount=0, entry_id=999_999
            )
        )
        connection.execute(insert(customer_days).values(customer_id=999_999, day=date(2026, 1, 1), amount=0))
    output = demo("ledger", "verify", expect_exit=1).output
    assert (
        f"customer day 2026-01-01 of customer #{customer} names entry #999999, which does not exist" in output
    )
    assert "customer day 2026-01-01 names customer #999999, which does not exist" in output


def test_the_database_refuses_to_rewrite_the_ledger(demo, engine):
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text("UPDATE ledger_lines SET amount = amount + 1"))


def test_a_correction_is_a_reversing_entry(demo, engine):
    statement = json.loads(demo("--json", "operator", "statement", "reseller1").output)
    funding = next(line for line in statement if line["kind"] == "operator_fund")
    demo("ledger", "reverse", str(funding["entry"]), "--memo", "typed the wrong amount")
    balance = json.loads(demo("--json", "operator", "balance", "reseller1").output)
    assert balance["fund"] == 0
    assert "already reversed" in demo("ledger", "reverse", str(funding["entry"]), expect_exit=1).stderr
    demo("ledger", "verify")
    with engine.connect() as connection:
        reversal = (
            connection.execute(
                select(ledger_entries).where(ledger_entries.c.reverses_entry_id == funding["entry"])
            )
            .mappings()
            .one()
        )
        assert reversal["kind"] == "reversal" and reversal["memo"] == "typed the wrong amount"
        assert connection.execute(select(ledger_accounts.c.id)).first() is not None
