"""The day's work: daily charges, idempotency, catch-up, suspensions, monthly invoices."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text

from billingd import ledger, lifecycle, operators, packages, runs, wallets
from billingd.calendar import end_of_day
from billingd.money import day_share
from schema.tables import (
    billing_runs,
    change_log,
    customer_days,
    enforcement_jobs,
    invoices,
    payments,
)
from tests.billing_world import (
    NOW,
    SETTINGS,
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


def _run(connection, days_from_today: int):
    return runs.run_day(
        connection,
        TODAY + timedelta(days=days_from_today),
        SETTINGS,
        now=NOW + timedelta(days=days_from_today),
    )


def _days(connection, customer_id):
    return dict(
        connection.execute(
            select(customer_days.c.day, customer_days.c.amount).where(
                customer_days.c.customer_id == customer_id
            )
        ).all()
    )


def test_pay_as_you_go_days_add_up_to_the_price(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on())
        wallets.receive_payment(connection, reseller1, "alice", money("600"), on())
        alice = customer(connection, "alice")
        for day in range(0, 60):
            result = _run(connection, day)
            assert result.customers_suspended == 0
        days = _days(connection, alice["id"])
        assert len(days) == 60
        # The bought period, then thirty pay-as-you-go days: each period sums to the price.
        assert sum(days[TODAY + timedelta(days=i)] for i in range(30, 60)) == money("500")
        assert [days[TODAY + timedelta(days=30 + i)] for i in range(30)] == [
            day_share(money("500"), 30, i) for i in range(30)
        ]
        alice = customer(connection, "alice")
        assert alice["wallet_balance"] == money("100")
        assert alice["expires_at"].replace(tzinfo=None) == end_of_day(
            TODAY + timedelta(days=59), ZONE
        ).replace(tzinfo=None)
        assert fund_of(connection, "reseller1") == money("5000") - 2 * money("400")
        assert ledger.verify(connection) == []


def test_running_a_day_twice_changes_nothing(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on(-30))
        wallets.receive_payment(connection, reseller1, "alice", money("50"), on())
        first = _run(connection, 0)
        assert (first.customers_charged, first.already_done) == (1, False)
        before = snapshot(connection)
        again = _run(connection, 0)
        assert again.already_done and again.customers_charged == first.customers_charged
        assert snapshot(connection) == before


def test_missed_days_are_caught_up_in_order(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on(-30))
        wallets.receive_payment(connection, reseller1, "alice", money("50"), on(-1))
        _run(connection, -1)
    with engine.begin() as connection:  # a week-old change radiusd no longer needs, and a fresh one
        connection.execute(
            insert(change_log).values(
                entity="sessions", entity_id=1, created_at=datetime.now(UTC) - timedelta(days=8)
            )
        )
        connection.execute(insert(change_log).values(entity="sessions", entity_id=2))
    results = runs.run_through(engine, TODAY + timedelta(days=3), SETTINGS)
    with engine.connect() as connection:
        kept = (
            connection.execute(select(change_log.c.entity_id).where(change_log.c.entity == "sessions"))
            .scalars()
            .all()
        )
    assert kept == [2]
    assert [result.day for result in results] == [TODAY + timedelta(days=i) for i in range(0, 4)]
    assert [result.customers_charged for result in results] == [1, 1, 1, 0]
    assert runs.run_through(engine, TODAY + timedelta(days=3), SETTINGS) == []
    with engine.connect() as connection:
        alice = customer(connection, "alice")
        assert alice["status"] == "suspended" and alice["status_reason"] == "expired"
        job = (
            connection.execute(select(enforcement_jobs).where(enforcement_jobs.c.customer_id == alice["id"]))
            .mappings()
            .one()
        )
        assert (job["action"], job["reason"]) == ("disconnect", "expired")
        assert job["dedupe_key"] == f"expired:{alice['id']}:{TODAY + timedelta(days=3)}"
        assert ledger.verify(connection) == []


def test_an_empty_wallet_suspends_and_a_top_up_reactivates(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on(-30))
        alice_id = customer(connection, "alice")["id"]
        last_change = (
            connection.execute(select(change_log.c.id).order_by(change_log.c.id.desc())).scalars().first()
        )
        result = _run(connection, 0)
        assert (result.customers_charged, result.customers_suspended) == (0, 1)
        assert connection.execute(
            select(change_log.c.entity_id).where(change_log.c.id > last_change)
        ).scalars().all() == [alice_id]
        wallets.receive_payment(connection, reseller1, "alice", money("20"), on(0))
        alice = customer(connection, "alice")
        assert alice["status"] == "active" and alice["wallet_balance"] == money("20") - day_share(
            money("500"), 30, 30
        )
        reasons = (
            connection.execute(
                select(enforcement_jobs.c.reason)
                .where(enforcement_jobs.c.customer_id == alice_id)
                .order_by(enforcement_jobs.c.id)
            )
            .scalars()
            .all()
        )
        assert reasons == ["expired", "reactivated"]
        assert ledger.verify(connection) == []


def test_an_operator_that_cannot_cover_the_day_holds_back_its_customers(engine):
    with engine.begin() as connection:
        build(connection, fund={"sub1": "460"})
        sub1 = add_customer_of(connection, "sub1", "carol", on(-30))
        wallets.receive_payment(connection, sub1, "carol", money("100"), on(0))
        lifecycle.add_customer(
            connection,
            actor(connection, "reseller2"),
            "bob",
            password="pw",
            package="Home 10M",
            calendar=on(-30),
        )
        wallets.receive_payment(connection, actor(connection, "reseller2"), "bob", money("100"), on(0))
        assert fund_of(connection, "sub1") == money("10")
        result = _run(connection, 0)  # sub1 owes 15.00 for the day with 10.00 in its fund
        assert (result.customers_charged, result.customers_suspended) == (1, 1)
        carol = customer(connection, "carol")
        assert (carol["status"], carol["status_reason"], carol["wallet_balance"]) == (
            "suspended",
            "operator_fund",
            money("100"),
        )
        operators.settle(
            connection, actor(connection, "reseller1"), "sub1", money("100"), mode="prepaid", today=TODAY
        )
        result = _run(connection, 1)
        assert result.customers_charged == 2
        assert customer(connection, "carol")["status"] == "active"
        assert fund_of(connection, "sub1") >= 0
        assert ledger.verify(connection) == []


def test_monthly_customers_are_invoiced_by_enabled_days(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "dave", on(1), package="Office")
        dave = customer(connection, "dave")
        assert dave["cycle_day"] == 25 and dave["wallet_balance"] == 0
        for day in range(1, 32):  # 2026-11-25 .. 2026-12-25
            if day == 10:
                lifecycle.suspend(connection, reseller1, "dave", on(day))
            if day == 15:
                lifecycle.resume(connection, reseller1, "dave", on(day))
            _run(connection, day)
        invoice = (
            connection.execute(select(invoices).where(invoices.c.customer_id == dave["id"])).mappings().one()
        )
        # Enabled 2026-11-25 .. 12-02 and 12-08 .. 12-24 (the run on the cycle day invoices the days before it).
        enabled = [i for i in range(30) if not 9 <= i < 14]
        assert invoice["amount"] == sum(day_share(money("1000"), 30, i) for i in enabled)
        assert invoice["period_start"] == TODAY + timedelta(days=1) and invoice["status"] == "open"
        assert customer(connection, "dave")["wallet_balance"] == -invoice["amount"]
        # reseller1 (prepaid) paid the month at its start; the invoice gave back the suspended
        # days' shares; the run on the cycle day had it pay the next month.
        assert fund_of(connection, "reseller1") == money("5000") - sum(
            day_share(money("800"), 30, i) for i in enabled
        ) - money("800")
        assert ledger.verify(connection) == []

        # Unpaid after due date + grace: suspended; a partial payment is not enough; paying the rest is.
        due = (invoice["due_on"] - TODAY).days
        for day in range(32, due + SETTINGS.grace_days + 2):
            _run(connection, day)
        assert customer(connection, "dave")["status_reason"] == "overdue"
        later = on(due + SETTINGS.grace_days + 2)
        wallets.receive_payment(connection, reseller1, "dave", invoice["amount"] - 100, later)
        assert customer(connection, "dave")["status"] == "suspended"
        wallets.receive_payment(connection, reseller1, "dave", 100, later)
        assert customer(connection, "dave")["status"] == "active"
        paid = connection.execute(select(invoices).where(invoices.c.id == invoice["id"])).mappings().one()
        assert (paid["status"], paid["paid_amount"]) == ("paid", invoice["amount"])
        assert ledger.verify(connection) == []


def test_a_refund_of_run_days_gives_each_level_this_customers_share_only(engine):
    """Defect 4 of issue 12: the run's per-operator line sums every customer's share of the day;
    a refund read it as one customer's and gave reseller1 four customers' shares back."""
    with engine.begin() as connection:
        build(connection)
        for name in ("a", "b", "c", "d"):
            reseller1 = add_customer_of(connection, "reseller1", name, on(-30))
            wallets.receive_payment(connection, reseller1, name, money("100"), on(-30))
        for day in (0, 1, 2):  # day 0 is today; days 1 and 2 are run ahead of time
            _run(connection, day)
        before = fund_of(connection, "reseller1")
        lifecycle.suspend(connection, reseller1, "a", on())
        # Days 1 and 2 are days 31 and 32 since activation: indices 1 and 2 of the second period.
        due = day_share(money("400"), 30, 1) + day_share(money("400"), 30, 2)
        assert fund_of(connection, "reseller1") == before + due
        assert customer(connection, "a")["wallet_balance"] == money("100") - day_share(money("500"), 30, 0)
        assert ledger.verify(connection) == []


def test_a_day_that_costs_nothing_still_moves_the_paid_time(engine):
    """A free package's day has no ledger line (a line moves money), so its expiry moves on its own."""
    with engine.begin() as connection:
        build(connection)
        admin = actor(connection, "admin")
        packages.add_master_package(
            connection,
            admin,
            "Free daily",
            customer_type="pppoe",
            billing_type="daily",
            period_days=30,
            rate_rx=1_000_000,
            rate_tx=1_000_000,
        )
        packages.add_package(
            connection, admin, "Free", master="Free daily", customer_price=0, operator_price=0
        )
        add_customer_of(connection, "admin", "freeloader", on(-30), package="Free")
        add_customer_of(connection, "admin", "payer", on(-30))
        freeloader = customer(connection, "freeloader")["id"]
        assert not connection.execute(select(payments.c.id).where(payments.c.customer_id == freeloader)).all()
        wallets.receive_payment(connection, admin, "payer", money("50"), on())
        result = _run(connection, 0)
        assert result.customers_charged == 2
        for username in ("freeloader", "payer"):
            assert customer(connection, username)["expires_at"].replace(tzinfo=None) == end_of_day(
                TODAY, ZONE
            ).replace(tzinfo=None)
        assert _days(connection, customer(connection, "freeloader")["id"])[TODAY] == 0
        assert ledger.verify(connection) == []


def test_charging_a_day_rewrites_no_index_of_the_customers(engine):
    """Every daily customer's wallet and expiry move each day; on PostgreSQL those updates are HOT
    (heap-only: no index entry written, revision 0019) as long as no index holds either column."""
    if engine.dialect.name != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's")
    with engine.begin() as connection:
        build(connection)
        for username in ("alice", "bob", "carol"):
            who = add_customer_of(connection, "reseller1", username, on(-30))
            wallets.receive_payment(connection, who, username, money("50"), on())
    # This backend's counts not yet reported (they may include earlier transactions'); none is
    # reported inside a transaction, so the run's are the difference.
    updates = text(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'customers'"
    )
    with engine.begin() as connection:
        updated, heap_only = connection.execute(updates).one()
        assert _run(connection, 0).customers_charged == 3
        assert tuple(connection.execute(updates).one()) == (updated + 3, heap_only + 3)


def test_the_days_to_run_start_after_the_last_run_and_never_before_the_first_customer(engine):
    with engine.begin() as connection:
        build(connection)
        through = TODAY + timedelta(days=2)
        assert runs.days_to_run(connection, through) == []  # nobody to bill yet
        add_customer_of(connection, "reseller1", "alice", on())
        anchor = customer(connection, "alice")["billing_anchor"]
        every_day = [anchor + timedelta(days=i) for i in range((through - anchor).days + 1)]
        assert runs.days_to_run(connection, through) == every_day
        # A run long before the first customer's first day does not queue the days in between.
        connection.execute(
            insert(billing_runs).values(day=anchor - timedelta(days=10), started_at=NOW, finished_at=NOW)
        )
        assert runs.days_to_run(connection, through) == every_day
        connection.execute(insert(billing_runs).values(day=anchor, started_at=NOW, finished_at=NOW))
        assert runs.days_to_run(connection, through) == every_day[1:]
