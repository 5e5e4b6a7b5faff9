"""`radbill package set --from DATE`: prices change from a day on; every run day is charged at the
price in force on it, days caught up late included; past days keep theirs (issue 12)."""

import json

import pytest
from sqlalchemy import func, select

from billingd import ledger, price_changes, runs, wallets
from billingd.money import day_share
from billingd.packages import priced_package
from schema.errors import RadbillError
from schema.tables import change_log, customer_days, master_packages, package_price_changes
from tests.billing_world import MEGABIT, SETTINGS, actor, add_customer_of, build, customer, money, on


def _run(connection, first: int, last: int) -> None:
    for day in range(first, last + 1):
        runs.run_day(connection, on(day).today, SETTINGS, now=on(day).now)


def _charged(connection, username: str) -> dict[int, int]:
    """The amount of each paid day, by day number from the world's first day."""
    row = customer(connection, username)
    days = connection.execute(
        select(customer_days.c.day, customer_days.c.amount).where(customer_days.c.customer_id == row["id"])
    )
    return {(day - on(0).today).days: amount for day, amount in days}


def _set(connection, who: str, **options):
    today = options.pop("today", 0)
    return price_changes.set_price(
        connection,
        actor(connection, who),
        options.pop("package", "Home 10M"),
        effective_on=on(options.pop("effective", today)).today,
        today=on(today).today,
        **options,
    )


def test_each_run_day_is_charged_at_the_price_in_force_on_it(engine):
    with engine.begin() as connection:
        build(connection)
        add_customer_of(connection, "reseller1", "alice", on())  # pays days 0..29 at 500.00
        wallets.receive_payment(connection, actor(connection, "reseller1"), "alice", money("1000"), on())
        _run(connection, 0, 31)
        change = _set(
            connection,
            "admin",
            operator_login="reseller1",
            customer_price=money("600"),
            today=31,
            effective=35,
        )
        assert (change["applied"], change["operator"], change["customer_price"]) == (
            False,
            "reseller1",
            money("600"),
        )
        assert priced_package(
            connection, actor(connection, "reseller1").id, "Home 10M"
        ).customer_price == money("500")
        _run(connection, 32, 40)
        charged = _charged(connection, "alice")
        old_days = {day: day_share(money("500"), 30, day) for day in range(30, 35)}
        new_days = {day: day_share(money("600"), 30, day) for day in range(35, 41)}
        assert {day: charged[day] for day in range(30, 41)} == {**old_days, **new_days}
        assert charged[0] == money("500") // 30  # the bought period keeps what it was bought at
        assert priced_package(
            connection, actor(connection, "reseller1").id, "Home 10M"
        ).customer_price == money("600")
        assert ledger.verify(connection) == []


def test_a_change_waits_for_the_run_that_catches_up_its_day(engine):
    with engine.begin() as connection:
        build(connection)
        add_customer_of(connection, "reseller1", "alice", on())
        wallets.receive_payment(connection, actor(connection, "reseller1"), "alice", money("1000"), on())
        _run(connection, 0, 30)
        # Days 31 and 32 are not run yet: a change from today (32) waits for the run of its day.
        change = _set(connection, "admin", operator_login="reseller1", customer_price=money("900"), today=32)
        assert change["applied"] is False
        _run(connection, 31, 33)
        charged = _charged(connection, "alice")
        assert (charged[31], charged[32], charged[33]) == (
            day_share(money("500"), 30, 31),
            day_share(money("900"), 30, 32),
            day_share(money("900"), 30, 33),
        )
        assert connection.execute(select(package_price_changes.c.applied_at)).scalar() is not None
        # With every earlier day run, a change from today is in force at once.
        assert _set(connection, "admin", customer_price=money("550"), today=34)["applied"] is True
        assert priced_package(connection, actor(connection, "admin").id, "Home 10M").customer_price == money(
            "550"
        )


@pytest.mark.parametrize(
    "who, options, message",
    [
        (
            "admin",
            {"operator_login": "reseller1", "customer_price": 1, "today": 5, "effective": 4},
            "past days keep",
        ),
        (
            "reseller2",
            {"operator_login": "reseller1", "operator_price": 1},
            "not a direct child of reseller2",
        ),
        ("reseller1", {"customer_price": 1}, "only the admin's side may change package prices"),
        ("admin", {"operator_login": "reseller1", "operator_price": money("700")}, "needs --below-cost"),
        ("admin", {"operator_login": "reseller1"}, "give --customer-price, --operator-price or both"),
        ("admin", {"package": "Nope", "customer_price": 1}, "'Nope' is not on the price list"),
    ],
)
def test_a_change_that_cannot_be_is_refused(engine, who, options, message):
    with engine.begin() as connection:
        build(connection)
        with pytest.raises(RadbillError, match=message):
            _set(connection, who, **options)


def test_package_set_on_the_command_line(engine, cli):
    with engine.begin() as connection:
        build(connection)
    shown = json.loads(
        cli(
            "--json",
            "package",
            "set",
            "Home 10M",
            "--operator",
            "reseller1",
            "--operator-price",
            "420",
            "--from",
            "2099-01-01",
        ).output
    )
    assert (shown["operator_price"], shown["effective_on"], shown["applied"]) == (
        money("420"),
        "2099-01-01",
        False,
    )
    refused = cli(
        "package", "set", "Home 10M", "--customer-price", "1", "--from", "2000-01-01", expect_exit=1
    )
    assert refused.stderr.startswith("radbill: error: a change starts today")


def _master(connection, name: str = "Home 10M"):
    return connection.execute(select(master_packages).where(master_packages.c.name == name)).mappings().one()


def test_a_master_package_spec_changes_from_its_day_and_radiusd_is_told(engine):
    with engine.begin() as connection:
        build(connection)
        _run(connection, 0, 1)
        change = price_changes.set_spec(
            connection,
            actor(connection, "admin"),
            "Home 10M",
            {"rate_rx": 20 * MEGABIT, "rate_tx": 20 * MEGABIT, "ip_pool": "fast"},
            effective_on=on(3).today,
            today=on(1).today,
        )
        assert change["applied"] is False and _master(connection)["rate_rx"] == 10 * MEGABIT
        told = connection.execute(select(func.count()).select_from(change_log)).scalar()
        _run(connection, 2, 2)
        assert _master(connection)["rate_rx"] == 10 * MEGABIT
        _run(connection, 3, 3)
        master = _master(connection)
        assert (master["rate_rx"], master["rate_tx"], master["ip_pool"]) == (
            20 * MEGABIT,
            20 * MEGABIT,
            "fast",
        )
        assert connection.execute(
            select(change_log.c.entity).where(change_log.c.id > told, change_log.c.entity == "master_package")
        ).first()
        with pytest.raises(RadbillError, match="only the admin's side may change master packages"):
            price_changes.set_spec(
                connection,
                actor(connection, "reseller1"),
                "Home 10M",
                {"quota_bytes": 10},
                effective_on=on(3).today,
                today=on(3).today,
            )
        with pytest.raises(RadbillError, match="past days keep what they had"):
            price_changes.set_spec(
                connection,
                actor(connection, "admin"),
                "Home 10M",
                {"quota_bytes": 10},
                effective_on=on(2).today,
                today=on(3).today,
            )


def test_master_package_set_on_the_command_line(engine, cli):
    with engine.begin() as connection:
        build(connection)
    shown = json.loads(
        cli("--json", "master-package", "set", "Lite 5M", "--rate", "8M/8M", "--quota", "50G").output
    )
    assert (shown["rate_rx"], shown["quota_bytes"], shown["applied"]) == (8 * MEGABIT, 50 * 10**9, True)
    listed = {row["name"]: row for row in json.loads(cli("--json", "master-package", "list").output)}
    assert (listed["Lite 5M"]["rate"], listed["Lite 5M"]["quota_bytes"]) == ("8000000/8000000", 50 * 10**9)
    refused = cli("master-package", "set", "Lite 5M", "--burst", "9M/9M", expect_exit=1)
    assert (
        refused.stderr
        == "radbill: error: --burst, --burst-threshold, --burst-time, --priority and --min-rate go with --rate\n"
    )
    assert "give the fields to change" in cli("master-package", "set", "Lite 5M", expect_exit=1).stderr
