"""Activation and renewal debit every level of the chain in one transaction, or none."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from billingd import ledger, lifecycle, operators, packages, wallets
from billingd.calendar import end_of_day
from billingd.money import day_share
from schema.errors import RadbillError
from schema.tables import customer_days, enforcement_jobs
from schema.tables import operators as operators_table
from tests.billing_world import (
    TODAY,
    ZONE,
    actor,
    add_customer_of,
    build,
    customer,
    fund_of,
    money,
    on,
    snapshot,
)


def _balances(connection, login):
    book = connection.execute(select(operators_table.c.id).where(operators_table.c.login == login)).scalar()
    return ledger.balances(connection, book)


def test_activation_pays_every_level(engine):
    with engine.begin() as connection:
        build(connection)
        lifecycle.add_customer(
            connection, actor(connection, "sub1"), "Carol", password="pw", package="Home 10M", calendar=on()
        )
        carol = customer(connection, "carol")
        assert carol["customer_code"] == "S1-0001" and carol["wallet_balance"] == 0
        assert carol["expires_at"].replace(tzinfo=None) == end_of_day(
            TODAY + timedelta(days=29), ZONE
        ).replace(tzinfo=None)
        assert fund_of(connection, "sub1") == money("2000") - money("450")
        assert fund_of(connection, "reseller1") == money("5000") - money("400")
        assert _balances(connection, "sub1")["sales"] == money("500")
        assert _balances(connection, "sub1")["cost_of_sales"] == money("450")
        assert _balances(connection, "reseller1")["wholesale"] == money("450")
        assert _balances(connection, "reseller1")["cost_of_sales"] == money("400")
        assert _balances(connection, "admin")["wholesale"] == money("400")
        days = (
            connection.execute(
                select(customer_days.c.amount).where(customer_days.c.customer_id == carol["id"])
            )
            .scalars()
            .all()
        )
        assert len(days) == 30 and sum(days) == money("500")
        assert ledger.verify(connection) == []


def test_cascade_refusal_in_its_own_transaction_leaves_nothing(engine):
    with engine.begin() as connection:
        build(connection, fund={"reseller1": "100"})
    with engine.connect() as connection:
        before = snapshot(connection)
    with pytest.raises(
        RadbillError, match="operator reseller1 cannot cover .* fund 100.00 plus credit limit 0.00"
    ):
        with engine.begin() as connection:
            lifecycle.add_customer(
                connection,
                actor(connection, "sub1"),
                "carol",
                password="pw",
                package="Home 10M",
                calendar=on(),
            )
    with engine.connect() as connection:
        assert snapshot(connection) == before
        assert ledger.verify(connection) == []


def test_credit_limit_lets_a_prepaid_fund_go_negative_up_to_it(engine):
    with engine.begin() as connection:
        build(connection, fund={"reseller2": "100"})
        connection.execute(
            operators_table.update()
            .where(operators_table.c.login == "reseller2")
            .values(credit_limit=money("300"))
        )
        reseller2 = add_customer_of(connection, "reseller2", "bob", on())
        assert fund_of(connection, "reseller2") == -money("300")
        with pytest.raises(RadbillError, match="reseller2"):
            lifecycle.add_customer(
                connection, reseller2, "bob2", password="pw", package="Lite 5M", calendar=on()
            )


def test_a_prepaid_operator_below_its_cheapest_price_cannot_add_customers(engine):
    with engine.begin() as connection:
        build(connection, fund={"reseller2": "150"})
        with pytest.raises(
            RadbillError, match="reseller2's fund 150.00 is below its cheapest operator price 200.00"
        ):
            lifecycle.add_customer(
                connection,
                actor(connection, "reseller2"),
                "bob",
                password="pw",
                package="Office",
                calendar=on(),
            )


def test_postpaid_operator_accrues_a_payable_and_settles_it(engine):
    with engine.begin() as connection:
        build(connection, fund={"reseller2": "0"})
        connection.execute(
            operators_table.update()
            .where(operators_table.c.login == "reseller2")
            .values(billing_mode="postpaid", credit_limit=money("1000"))
        )
        lifecycle.add_customer(
            connection,
            actor(connection, "reseller2"),
            "bob",
            password="pw",
            package="Home 10M",
            calendar=on(),
        )
        assert fund_of(connection, "reseller2") == -money("400")
        with pytest.raises(RadbillError, match="use radbill operator pay"):
            operators.settle(
                connection, actor(connection, "admin"), "reseller2", money("400"), mode="prepaid", today=TODAY
            )
        operators.settle(
            connection, actor(connection, "admin"), "reseller2", money("400"), mode="postpaid", today=TODAY
        )
        assert fund_of(connection, "reseller2") == 0
        assert ledger.verify(connection) == []


def test_a_postpaid_operator_owes_at_most_its_credit_limit(engine):
    """Defect 2 of issue 12: ten sales at 400.00 on a 1000.00 limit were all accepted."""
    with engine.begin() as connection:
        build(connection)
        admin = actor(connection, "admin")
        operators.add_operator(
            connection, admin, "p1", "reseller", billing_mode="postpaid", credit_limit=money("1000")
        )
        packages.assign_package(connection, admin, "Home 10M", "p1", operator_price=money("400"))
        p1 = actor(connection, "p1")
        for name in ("c1", "c2"):
            lifecycle.add_customer(connection, p1, name, password="pw", package="Home 10M", calendar=on())
        with pytest.raises(RadbillError, match="postpaid operator needs --credit-limit"):
            operators.add_operator(connection, admin, "p2", "reseller", billing_mode="postpaid")
    with engine.connect() as connection:
        before = snapshot(connection)
    with pytest.raises(RadbillError, match=r"operator p1 cannot cover .* credit limit 1000\.00"):
        with engine.begin() as connection:
            lifecycle.add_customer(connection, p1, "c3", password="pw", package="Home 10M", calendar=on())
    with engine.connect() as connection:
        assert snapshot(connection) == before
        assert fund_of(connection, "p1") == -money("800")
        assert ledger.verify(connection) == []


def test_selling_below_cost_is_refused_unless_flagged(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        with pytest.raises(RadbillError, match="sub1 would pay 600.00 for Home 10M and sell it for 500.00"):
            packages.assign_package(connection, reseller1, "Home 10M", "sub1", operator_price=money("600"))
        priced = packages.assign_package(
            connection, reseller1, "Home 10M", "sub1", operator_price=money("600"), below_cost=True
        )
        assert (priced.operator_price, priced.customer_price) == (money("600"), money("500"))


def test_renewal_starts_at_the_later_of_today_and_expiry(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on())
        first_expiry = customer(connection, "alice")["expires_at"]
        with pytest.raises(RadbillError, match="wallet 0.00 cannot pay Home 10M"):
            lifecycle.renew(connection, reseller1, "alice", on(5))
        wallets.receive_payment(connection, reseller1, "alice", money("500"), on(5))
        lifecycle.renew(connection, reseller1, "alice", on(5))
        alice = customer(connection, "alice")
        assert alice["wallet_balance"] == 0
        assert alice["expires_at"] - first_expiry == timedelta(days=30)
        # Renewed long after expiry: the new period starts on that day.
        lifecycle.renew(connection, reseller1, "alice", on(100), cash=True)
        assert customer(connection, "alice")["expires_at"].replace(tzinfo=None) == end_of_day(
            TODAY + timedelta(days=129), ZONE
        ).replace(tzinfo=None)
        assert fund_of(connection, "reseller1") == money("5000") - 3 * money("400")
        assert ledger.verify(connection) == []


@pytest.mark.parametrize("policy", ["prorated", "none"])
def test_early_disconnect_refunds_unused_days_up_the_chain(engine, policy):
    with engine.begin() as connection:
        build(connection)
        connection.execute(
            operators_table.update().where(operators_table.c.login == "sub1").values(refund_policy=policy)
        )
        sub1 = add_customer_of(connection, "sub1", "carol", on())
        lifecycle.delete_customer(connection, sub1, "carol", on(10))
        carol = customer(connection, "carol")
        assert carol["deleted_at"] is not None and carol["status"] == "suspended"
        unused = sum(day_share(money("500"), 30, i) for i in range(11, 30))
        if policy == "prorated":
            assert carol["wallet_balance"] == unused
            assert fund_of(connection, "sub1") == money("2000") - money("450") + money(
                "450"
            ) * unused // money("500")
            assert fund_of(connection, "reseller1") == money("5000") - money("400") + money(
                "400"
            ) * unused // money("500")
        else:
            assert carol["wallet_balance"] == 0
            assert fund_of(connection, "sub1") == money("2000") - money("450")
        job = (
            connection.execute(select(enforcement_jobs).where(enforcement_jobs.c.customer_id == carol["id"]))
            .mappings()
            .one()
        )
        assert (job["action"], job["reason"]) == ("disconnect", "deleted")
        lifecycle.restore_customer(connection, sub1, "carol")
        assert customer(connection, "carol")["deleted_at"] is None
        assert ledger.verify(connection) == []


def test_change_package_refunds_and_buys_a_new_period(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on())
        lifecycle.change_package(connection, reseller1, "alice", "Lite 5M", on(10))
        alice = customer(connection, "alice")
        refund = sum(day_share(money("500"), 30, i) for i in range(11, 30))
        assert alice["wallet_balance"] == refund - money("300")
        assert alice["expires_at"].replace(tzinfo=None) == end_of_day(
            TODAY + timedelta(days=40), ZONE
        ).replace(tzinfo=None)
        job = (
            connection.execute(select(enforcement_jobs).where(enforcement_jobs.c.customer_id == alice["id"]))
            .mappings()
            .one()
        )
        assert (job["action"], job["reason"]) == ("coa", "package_change"), "a rate CoA, not a Disconnect"
        assert ledger.verify(connection) == []


def test_suspend_and_resume_write_the_change_log_and_jobs(engine):
    from schema.tables import change_log

    with engine.begin() as connection:
        build(connection)
        connection.execute(
            operators_table.update()
            .where(operators_table.c.login == "reseller1")
            .values(refund_policy="none")
        )
        reseller1 = add_customer_of(connection, "reseller1", "alice", on())
        alice_id = customer(connection, "alice")["id"]

        def changes():
            return (
                connection.execute(
                    select(change_log.c.id).where(  # noqa: E731
                        change_log.c.entity == "customer", change_log.c.entity_id == alice_id
                    )
                )
                .scalars()
                .all()
            )

        before = len(changes())
        lifecycle.suspend(connection, reseller1, "alice", on(1))
        assert customer(connection, "alice")["status"] == "suspended" and len(changes()) == before + 1
        with pytest.raises(RadbillError, match="wallet .* cannot pay today's share"):
            lifecycle.resume(connection, reseller1, "alice", on(2))
        wallets.receive_payment(connection, reseller1, "alice", money("100"), on(2))
        assert customer(connection, "alice")["status"] == "suspended"  # manual suspensions stay until resumed
        lifecycle.resume(connection, reseller1, "alice", on(2))
        alice = customer(connection, "alice")
        assert alice["status"] == "active"
        assert alice["expires_at"].replace(tzinfo=None) == end_of_day(
            TODAY + timedelta(days=2), ZONE
        ).replace(tzinfo=None)
        reasons = (
            connection.execute(
                select(enforcement_jobs.c.reason)
                .where(enforcement_jobs.c.customer_id == alice_id)
                .order_by(enforcement_jobs.c.id)
            )
            .scalars()
            .all()
        )
        assert reasons == ["suspended", "resumed"]
        assert ledger.verify(connection) == []


def test_usernames_are_one_case_insensitive_namespace(engine):
    with engine.begin() as connection:
        build(connection)
        lifecycle.add_customer(
            connection,
            actor(connection, "reseller1"),
            "Alice",
            password="pw",
            package="Home 10M",
            calendar=on(),
            mac="aa-bb-cc-dd-ee-ff",
        )
        assert customer(connection, "alice")["mac_binding"] == "AA:BB:CC:DD:EE:FF"
        with pytest.raises(RadbillError, match="username 'alice' is taken"):
            lifecycle.add_customer(
                connection,
                actor(connection, "reseller2"),
                "ALICE",
                password="pw",
                package="Home 10M",
                calendar=on(),
            )
        lifecycle.add_customer(
            connection,
            actor(connection, "reseller2"),
            "AA-BB-CC-00-11-22",
            password="pw",
            package="Home 10M",
            calendar=on(),
        )
        assert customer(connection, "aa:bb:cc:00:11:22")["username"] == "aa:bb:cc:00:11:22"
