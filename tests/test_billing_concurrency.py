"""Two billing runs and a storm of customer commands at once, on PostgreSQL (issue 12, defect 5).

One lock order everywhere (operators in id order, then customers): no
deadlock, no lost work, the books verify; the second run of the day finds it
done instead of failing on the primary key.
"""

import threading

import pytest
from sqlalchemy import func, select

from billingd import ledger, lifecycle, runs, wallets
from schema.tables import payments
from tests.billing_world import NOW, SETTINGS, TODAY, actor, add_customer_of, build, customer, money, on

OWNERS = ("reseller1", "sub1", "reseller2")
CUSTOMERS = [f"c{i}" for i in range(12)]


@pytest.mark.postgresql
def test_runs_and_a_storm_of_commands_neither_deadlock_nor_lose_work(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers at BEGIN IMMEDIATE; the lock order is PostgreSQL's concern")
    with engine.begin() as connection:
        build(connection, fund={"reseller1": "100000", "reseller2": "100000", "sub1": "50000"})
        for i, name in enumerate(CUSTOMERS):
            add_customer_of(connection, OWNERS[i % 3], name, on(-30))
    day = on(0)
    start = threading.Barrier(2 + len(CUSTOMERS))
    results, errors = [], []

    def run():
        start.wait()
        try:
            with engine.begin() as connection:
                results.append(runs.run_day(connection, TODAY, SETTINGS, now=NOW))
        except Exception as error:  # noqa: BLE001 - any failure is the finding
            errors.append(repr(error))

    def storm(index: int, name: str):
        owner = OWNERS[index % 3]
        start.wait()
        try:
            for round_ in range(3):
                with engine.begin() as connection:
                    who = actor(connection, owner)
                    wallets.receive_payment(
                        connection, who, name, money("10"), day, method="bkash", reference=f"{name}-{round_}"
                    )
                with engine.begin() as connection:
                    lifecycle.renew(connection, actor(connection, owner), name, day, cash=True)
            if index % 2:
                with engine.begin() as connection:
                    lifecycle.change_package(connection, actor(connection, owner), name, "Lite 5M", day)
        except Exception as error:  # noqa: BLE001
            errors.append(f"{name}: {error!r}")

    threads = [threading.Thread(target=run) for _ in range(2)]
    threads += [threading.Thread(target=storm, args=(i, name)) for i, name in enumerate(CUSTOMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(result.already_done for result in results) == [False, True]
    with engine.connect() as connection:
        # Every command's work is there: three top-ups and three cash renewals per customer.
        counted = connection.execute(
            select(func.count()).select_from(payments).where(payments.c.customer_id.is_not(None))
        ).scalar()
        assert counted == len(CUSTOMERS) * (1 + 3 + 3)  # the activation's cash, top-ups, renewals
        assert ledger.verify(connection) == []
        assert all(customer(connection, name)["wallet_balance"] >= 0 for name in CUSTOMERS)
