"""Random hierarchies, random operation sequences: the books always hold.

After every operation: every book balances and `ledger verify` finds nothing,
no fund (prepaid or postpaid) is below minus its credit limit, the days each entry paid
for add up to what it charged (a full period to its price). A second run of
the same day changes nothing. Each operation runs in a savepoint, like a command in
its own transaction: a refused one leaves nothing behind.
"""

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from billingd import customers, ledger, operators, packages, runs
from billingd.prices import day_share, parse_amount
from schema.errors import RadbillError
from schema.tables import audit_log, customer_days, ledger_accounts, ledger_entries, ledger_lines
from schema.tables import operators as operators_table
from tests.billing_world import NOW, SETTINGS, TODAY, actor, on, snapshot

PACKAGES = {
    "Day A": ("daily", 3, 3000, 2000),
    "Day B": ("daily", 30, 50000, 40000),
    "Month": ("monthly", 30, 100000, 80000),
}

levels = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["prepaid", "postpaid"]),
        "credit": st.integers(0, 30000),
        "fund": st.integers(0, 200000),
        "policy": st.sampled_from(["prorated", "none"]),
        "markup": st.integers(0, 5000),
    }
)
hierarchies = st.lists(st.tuples(levels, st.lists(levels, max_size=2)), min_size=1, max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 20), st.sampled_from(sorted(PACKAGES))),
        st.tuples(st.just("topup"), st.integers(0, 20), st.integers(1, 60000)),
        st.tuples(st.just("renew"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("suspend"), st.integers(0, 20)),
        st.tuples(st.just("resume"), st.integers(0, 20)),
        st.tuples(st.just("delete"), st.integers(0, 20)),
        st.tuples(st.just("change"), st.integers(0, 20), st.sampled_from(sorted(PACKAGES))),
        st.tuples(st.just("fund"), st.integers(0, 20), st.integers(1, 100000)),
        st.tuples(st.just("run"), st.integers(1, 3)),
    ),
    min_size=1,
    max_size=25,
)


def _build(connection, hierarchy) -> list[str]:
    operators.add_operator(connection, None, "admin", "admin")
    admin = actor(connection, "admin")
    for name, (billing, days, customer_price, operator_price) in PACKAGES.items():
        packages.add_master_package(
            connection,
            admin,
            name,
            customer_type="pppoe",
            billing_type=billing,
            period_days=days,
            rate_rx=1_000_000,
            rate_tx=1_000_000,
        )
        packages.add_package(
            connection, admin, name, master=name, customer_price=customer_price, operator_price=operator_price
        )
    sellers = []

    def add(parent_login, login, role, level):
        parent = actor(connection, parent_login)
        operators.add_operator(
            connection,
            parent,
            login,
            role,
            billing_mode=level["mode"],
            # a postpaid operator needs a limit: up to ten times what a prepaid one may overdraw
            credit_limit=level["credit"] if level["mode"] == "prepaid" else 10 * level["credit"] + 1,
            refund_policy=level["policy"],
        )
        for name, (_, _, _customer_price, _operator_price) in PACKAGES.items():
            parent_price = connection.execute(
                select(operators_table.c.id).where(operators_table.c.login == parent_login)
            ).scalar()
            base = packages.priced_package(connection, parent_price, name).operator_price
            packages.assign_package(
                connection, parent, name, login, operator_price=base + level["markup"], below_cost=True
            )
        if level["fund"]:
            operators.settle(connection, parent, login, level["fund"], mode=level["mode"], today=TODAY)
        sellers.append(login)

    for r, (reseller, subs) in enumerate(hierarchy):
        add("admin", f"r{r}", "reseller", reseller)
        if subs:
            operators.permit(connection, admin, f"r{r}", "reseller_module")
        for s, sub in enumerate(subs):
            add(f"r{r}", f"r{r}s{s}", "sub_reseller", sub)
    return ["admin"] + sellers


def _check(connection) -> None:
    assert ledger.verify(connection) == []
    for row in connection.execute(
        select(operators_table).where(operators_table.c.parent_id.is_not(None))
    ).mappings():
        assert row["fund_balance"] >= -row["credit_limit"], row["login"]
    _check_days_add_up(connection)


def _check_days_add_up(connection) -> None:
    """The days an entry paid for add up to what it charged the customer: a bought
    period is its price to the unit. A refund or forfeit removes days, never adds them."""
    wallet, sales = ledger_accounts.alias("wallet"), ledger_accounts.alias("sales")
    charged = dict(
        connection.execute(
            select(ledger_lines.c.entry_id, func.sum(ledger_lines.c.amount))
            .join(wallet, wallet.c.id == ledger_lines.c.debit_account_id)
            .join(sales, sales.c.id == ledger_lines.c.credit_account_id)
            .where(wallet.c.customer_id.is_not(None), sales.c.code == "sales")
            .group_by(ledger_lines.c.entry_id)
        ).all()
    )
    # Suspending, deleting or changing the package gives back (or forfeits) the days after today.
    refunded = set(
        connection.execute(
            select(audit_log.c.target_id).where(
                audit_log.c.action.in_(["customer.suspend", "customer.delete", "customer.change_package"])
            )
        ).scalars()
    )
    days = connection.execute(
        select(
            customer_days.c.entry_id,
            ledger_entries.c.kind,
            ledger_entries.c.customer_id,
            func.sum(customer_days.c.amount).label("amount"),
        )
        .join(ledger_entries, ledger_entries.c.id == customer_days.c.entry_id)
        .where(ledger_entries.c.kind != "invoice")
        .group_by(customer_days.c.entry_id, ledger_entries.c.kind, ledger_entries.c.customer_id)
    ).all()
    for entry in days:
        assert entry.amount <= charged.get(entry.entry_id, 0), entry
        if entry.customer_id not in refunded:
            assert entry.amount == charged.get(entry.entry_id, 0), entry


def _apply(connection, sellers, names, step, day):
    kind, index = step[0], step[1]
    calendar = on(day)
    if kind == "add":
        owner = sellers[index % len(sellers)]
        name = f"c{len(names)}"
        customers.add_customer(
            connection, actor(connection, owner), name, password="pw", package=step[2], calendar=calendar
        )
        names.append((name, owner))
        return
    if kind == "fund":
        login = sellers[index % len(sellers)]
        row = (
            connection.execute(select(operators_table).where(operators_table.c.login == login))
            .mappings()
            .one()
        )
        if row["parent_id"] is None:
            return
        parent = connection.execute(
            select(operators_table.c.login).where(operators_table.c.id == row["parent_id"])
        ).scalar()
        operators.settle(
            connection,
            actor(connection, parent),
            login,
            step[2],
            mode=row["billing_mode"],
            today=calendar.today,
        )
        return
    if not names:
        return
    name, owner = names[index % len(names)]
    who = actor(connection, owner)
    if kind == "topup":
        customers.receive_payment(connection, who, name, step[2], calendar)
    elif kind == "renew":
        customers.renew(connection, who, name, calendar, cash=step[2])
    elif kind == "suspend":
        customers.suspend(connection, who, name, calendar)
    elif kind == "resume":
        customers.resume(connection, who, name, calendar)
    elif kind == "delete":
        customers.delete_customer(connection, who, name, calendar)
    elif kind == "change":
        customers.change_package(connection, who, name, step[2], calendar)


def test_random_operations_keep_the_books(engine):
    # @given runs inside the test, not on it: pytest-twisted's hook and
    # hypothesis' wrapper of a fixture-taking test do not compose.
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(hierarchy=hierarchies, steps=operations)
    def operations_keep_the_books(hierarchy, steps):
        connection = engine.connect()
        transaction = connection.begin()
        try:
            _play(connection, hierarchy, steps)
        finally:
            transaction.rollback()
            connection.close()

    operations_keep_the_books()


def _play(connection, hierarchy, steps) -> None:
    sellers = _build(connection, hierarchy)
    _check(connection)
    names: list[tuple[str, str]] = []
    day = 0
    for step in steps:
        if step[0] == "run":
            for _ in range(step[1]):
                day += 1
                first = runs.run_day(
                    connection, TODAY + timedelta(days=day), SETTINGS, now=NOW + timedelta(days=day)
                )
                assert not first.already_done
                before = snapshot(connection)
                again = runs.run_day(
                    connection, TODAY + timedelta(days=day), SETTINGS, now=NOW + timedelta(days=day)
                )
                assert again.already_done and snapshot(connection) == before
                _check(connection)
            continue
        savepoint = connection.begin_nested()
        try:
            _apply(connection, sellers, names, step, day)
        except RadbillError:
            savepoint.rollback()
        else:
            savepoint.commit()
        _check(connection)


@given(price=st.integers(0, 10**9), days=st.integers(1, 366), start=st.integers(0, 10**4))
def test_any_full_period_of_daily_shares_is_the_price(price, days, start):
    shares = [day_share(price, days, i) for i in range(start, start + days)]
    assert sum(shares) == price
    assert max(shares) - min(shares) <= 1


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
def test_amounts_round_trip(value):
    from billingd.prices import format_amount

    assert format_amount(parse_amount(str(value))) == f"{value:.2f}"
