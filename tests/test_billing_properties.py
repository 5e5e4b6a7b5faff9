"""Random hierarchies, random operation sequences: the books always hold.

Hierarchies up to four levels deep (admin, reseller, sub-reseller,
sub-sub-reseller), prepaid and postpaid, in a time zone with or without a
DST change in the first days, commands at any hour of the day. Operations:
add, top-up, renew, suspend, resume, delete, restore, change package, fund,
value and package cards, cards sold (with a commission) then used or not,
re-pricing now and from a later day (`package set --from`), payouts, ledger
reversals, and the daily run, on consecutive days or catching up days it
skipped.

After every operation no fund (prepaid or postpaid) is beyond its credit
limit. After every run day: `ledger verify` finds nothing (every book
balances, every cached balance matches, and the paid days, monthly days,
invoice settlement, payments and account kinds reconcile with the ledger),
a second run of the same day changes nothing, every active daily customer
has the day paid, every enabled monthly day before the current billing month
is invoiced (once: a day is one row, billed by one entry), every refund
(suspend, delete, change of package) gives the customer back exactly what the
README's rule says, and the cash in every book adds up to what customers paid
in less what was paid out. Each operation runs in a
savepoint, like a command in its own transaction: a refused one leaves
nothing behind.

CI runs 300 examples on each database (``CI`` set); a developer, 25.
"""

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import and_, func, select

from billingd import (
    cards,
    corrections,
    customers,
    ledger,
    lifecycle,
    operators,
    packages,
    price_changes,
    runs,
    wallets,
)
from billingd.calendar import billing_period
from billingd.customers import Calendar
from billingd.money import day_share, parse_amount
from schema.errors import RadbillError
from schema.settings import BillingdSettings
from schema.tables import (
    card_sale_items,
    card_sales,
    customer_days,
    ledger_accounts,
    ledger_entries,
    ledger_lines,
    master_packages,
    payments,
    recharge_cards,
)
from schema.tables import (
    customers as customers_table,
)
from schema.tables import operators as operators_table
from schema.tables import (
    packages as packages_table,
)
from tests.billing_world import PIN_KEY, actor, snapshot

EXAMPLES = 300 if os.environ.get("CI") else 25
PACKAGES = {
    "Day A": ("daily", 3, 3000, 2000),
    "Day B": ("daily", 30, 50000, 40000),
    "Month": ("monthly", 30, 100000, 80000),
}
# (zone, first day): two of them change their clocks within the first week.
ZONES = [
    ("Asia/Dhaka", date(2026, 11, 24)),
    ("America/New_York", date(2027, 3, 10)),
    ("Europe/London", date(2027, 3, 25)),
]

levels = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["prepaid", "postpaid"]),
        "credit": st.integers(0, 30000),
        "fund": st.integers(0, 200000),
        "policy": st.sampled_from(["prorated", "none"]),
        "markup": st.integers(0, 5000),
    }
)
# resellers, each with sub-resellers, each with at most one sub-sub-reseller
hierarchies = st.lists(
    st.tuples(levels, st.lists(st.tuples(levels, st.lists(levels, max_size=1)), max_size=2)),
    min_size=1,
    max_size=3,
)
customer = st.integers(0, 20)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), customer, st.sampled_from(sorted(PACKAGES))),
        st.tuples(st.just("topup"), customer, st.integers(1, 60000)),
        st.tuples(st.just("renew"), customer, st.booleans()),
        st.tuples(st.just("suspend"), customer),
        st.tuples(st.just("resume"), customer),
        st.tuples(st.just("delete"), customer),
        st.tuples(st.just("restore"), customer),
        st.tuples(st.just("change"), customer, st.sampled_from(sorted(PACKAGES))),
        st.tuples(st.just("fund"), customer, st.integers(1, 100000)),
        st.tuples(st.just("card"), customer, st.booleans()),
        st.tuples(st.just("sold card"), customer, st.integers(0, 10000), st.booleans()),
        st.tuples(
            st.just("price from"),
            customer,
            st.sampled_from(sorted(PACKAGES)),
            st.integers(0, 5000),
            st.integers(0, 3),
        ),
        st.tuples(st.just("reprice"), customer, st.sampled_from(sorted(PACKAGES)), st.integers(0, 5000)),
        st.tuples(st.just("payout"), customer, st.integers(1, 60000)),
        st.tuples(st.just("reverse"), st.integers(0, 30)),
        st.tuples(st.just("run"), st.integers(1, 3)),
        st.tuples(st.just("skip"), st.integers(1, 3)),
    ),
    min_size=1,
    max_size=25,
)


class World:
    """One example's ISP: its sellers, customers, time zone and clock."""

    def __init__(self, zone: str, first: date, hour: int):
        self.zone = ZoneInfo(zone)
        self.settings = BillingdSettings(timezone=zone)
        self.first, self.hour = first, hour
        self.day = 0  # days since the first, the day commands run on
        self.last_run = -1  # the last day the run did
        self.sellers: list[str] = []
        self.names: list[tuple[str, str]] = []
        self.payout_entries: list[int] = []

    def today(self, day: int | None = None) -> date:
        return self.first + timedelta(days=self.day if day is None else day)

    def instant(self, day: int) -> datetime:
        local = datetime.combine(self.today(day), time(self.hour, 17), tzinfo=self.zone)
        return local.astimezone(UTC)

    def calendar(self) -> Calendar:
        return Calendar(self.instant(self.day), self.zone)


def _build(connection, world: World, hierarchy) -> None:
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
        parent_id = connection.execute(
            select(operators_table.c.id).where(operators_table.c.login == parent_login)
        ).scalar()
        for name in PACKAGES:
            base = packages.priced_package(connection, parent_id, name).operator_price
            packages.assign_package(
                connection, parent, name, login, operator_price=base + level["markup"], below_cost=True
            )
        if level["fund"]:
            operators.settle(connection, parent, login, level["fund"], mode=level["mode"], today=world.first)
        world.sellers.append(login)

    admin_actor = admin
    for r, (reseller, subs) in enumerate(hierarchy):
        add("admin", f"r{r}", "reseller", reseller)
        if subs:
            operators.permit(connection, admin_actor, f"r{r}", "reseller_module")
        for s, (sub, subsubs) in enumerate(subs):
            add(f"r{r}", f"r{r}s{s}", "sub_reseller", sub)
            if subsubs:
                operators.permit(connection, actor(connection, f"r{r}"), f"r{r}s{s}", "reseller_module")
            for t, subsub in enumerate(subsubs):
                add(f"r{r}s{s}", f"r{r}s{s}t{t}", "sub_reseller", subsub)
    world.sellers.insert(0, "admin")


def _parent_of(connection, login: str) -> str | None:
    parent = operators_table.alias("parent")
    return connection.execute(
        select(parent.c.login)
        .join(operators_table, operators_table.c.parent_id == parent.c.id)
        .where(operators_table.c.login == login)
    ).scalar()


def _apply(connection, world: World, step) -> None:
    kind = step[0]
    calendar = world.calendar()
    if kind == "add":
        owner = world.sellers[step[1] % len(world.sellers)]
        name = f"c{len(world.names)}"
        lifecycle.add_customer(
            connection, actor(connection, owner), name, password="pw", package=step[2], calendar=calendar
        )
        world.names.append((name, owner))
        return
    if kind == "price from":  # a dated price change of a seller's list, from today or a later day
        login = world.sellers[step[1] % len(world.sellers)]
        parent = _parent_of(connection, login)
        if parent is None:
            return
        base = packages.priced_package(connection, actor(connection, login).id, step[2]).customer_price
        price_changes.set_price(
            connection,
            actor(connection, parent),
            step[2],
            effective_on=calendar.today + timedelta(days=step[4]),
            today=calendar.today,
            operator_login=login,
            customer_price=base + step[3],
            below_cost=True,
        )
        return
    if kind in ("fund", "reprice"):
        login = world.sellers[step[1] % len(world.sellers)]
        parent = _parent_of(connection, login)
        if parent is None:
            return
        row = (
            connection.execute(select(operators_table).where(operators_table.c.login == login))
            .mappings()
            .one()
        )
        if kind == "fund":
            operators.settle(
                connection,
                actor(connection, parent),
                login,
                step[2],
                mode=row["billing_mode"],
                today=calendar.today,
            )
        else:
            base = packages.priced_package(connection, row["parent_id"], step[2]).operator_price
            packages.assign_package(
                connection,
                actor(connection, parent),
                step[2],
                login,
                operator_price=base + step[3],
                below_cost=True,
            )
        return
    if kind == "reverse":
        entries = list(
            connection.execute(
                select(ledger_entries.c.id)
                .where(ledger_entries.c.reverses_entry_id.is_(None))
                .order_by(ledger_entries.c.id.desc())
            ).scalars()
        )
        if entries:
            corrections.reverse_entry(connection, None, entries[step[1] % len(entries)], calendar)
        return
    if not world.names:
        return
    name, owner = world.names[step[1] % len(world.names)]
    who = actor(connection, owner)
    if kind == "topup":
        wallets.receive_payment(connection, who, name, step[2], calendar)
    elif kind == "renew":
        lifecycle.renew(connection, who, name, calendar, cash=step[2])
    elif kind in ("suspend", "delete", "change"):
        due, before = _refund_due(connection, name, calendar.today), _refunded(connection, name)
        if kind == "suspend":
            lifecycle.suspend(connection, who, name, calendar)
        elif kind == "delete":
            lifecycle.delete_customer(connection, who, name, calendar)
        else:
            lifecycle.change_package(connection, who, name, step[2], calendar)
        assert _refunded(connection, name) - before == due, (kind, name)
    elif kind == "resume":
        lifecycle.resume(connection, who, name, calendar)
    elif kind == "restore":
        lifecycle.restore_customer(connection, who, name)
    elif kind == "payout":
        wallets.pay_out(connection, who, name, step[2], calendar)
    elif kind == "card":
        if step[2]:
            package = customers.show_customer(connection, who, name)["package"]
            issued = cards.create_batch(connection, who, 1, PIN_KEY, package=package)
        else:
            issued = cards.create_batch(connection, who, 1, PIN_KEY, value=parse_amount("100"))
        cards.redeem(connection, who, issued[0]["pin"], name, calendar, PIN_KEY)
    elif kind == "sold card":  # the owner sells a card (commission to nobody but the books) and it is used
        issued = cards.create_batch(connection, who, 1, PIN_KEY, value=parse_amount("100"))
        cards.sell(connection, who, issued[0]["serial"], None, "a shop", commission=min(step[2], 10000))
        if step[3]:
            cards.redeem(connection, who, issued[0]["pin"], name, calendar, PIN_KEY)


def _refund_due(connection, name: str, today: date) -> int:
    """The README's refund rule: with the owner's policy ``prorated`` the customer gets back the
    amounts of its bought days after today; with ``none``, nothing."""
    row = (
        connection.execute(select(customers_table).where(customers_table.c.username == name)).mappings().one()
    )
    policy = connection.execute(
        select(operators_table.c.refund_policy).where(operators_table.c.id == row["operator_id"])
    ).scalar()
    bought_later = connection.execute(
        select(func.coalesce(func.sum(customer_days.c.amount), 0)).where(
            customer_days.c.customer_id == row["id"],
            customer_days.c.day > today,
            customer_days.c.entry_id.is_not(None),
        )
    ).scalar()
    return bought_later if policy == "prorated" else 0


def _refunded(connection, name: str) -> int:
    """What refund entries have given back to the customer's wallet so far."""
    wallet = ledger_accounts.alias("wallet")
    return connection.execute(
        select(func.coalesce(func.sum(ledger_lines.c.amount), 0))
        .join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
        .join(wallet, wallet.c.id == ledger_lines.c.credit_account_id)
        .join(customers_table, customers_table.c.id == wallet.c.customer_id)
        .where(ledger_entries.c.kind == "refund", customers_table.c.username == name)
    ).scalar()


def _check_limits(connection) -> None:
    for row in connection.execute(
        select(operators_table).where(operators_table.c.parent_id.is_not(None))
    ).mappings():
        assert row["fund_balance"] >= -row["credit_limit"], row["login"]


def _check_day(connection, world: World, day: date) -> None:
    assert ledger.verify(connection) == []
    _check_limits(connection)
    # Every active daily customer has the day paid.
    unpaid = (
        connection.execute(
            select(customers_table.c.username)
            .join(packages_table, packages_table.c.id == customers_table.c.package_id)
            .join(master_packages, master_packages.c.id == packages_table.c.master_package_id)
            .outerjoin(
                customer_days,
                and_(customer_days.c.customer_id == customers_table.c.id, customer_days.c.day == day),
            )
            .where(
                master_packages.c.billing_type == "daily",
                customers_table.c.status == "active",
                customers_table.c.deleted_at.is_(None),
                customers_table.c.billing_anchor <= day,
                customer_days.c.day.is_(None),
            )
        )
        .scalars()
        .all()
    )
    assert unpaid == [], day
    _check_monthly_days_invoiced(connection, day)
    _check_cash(connection)


def _check_monthly_days_invoiced(connection, day: date) -> None:
    """Every enabled day of a monthly customer before its current billing month is on an invoice
    (one: a day is one row, billed by one entry); only this month's days wait for the cycle day."""
    waiting = connection.execute(
        select(customers_table.c.username, customers_table.c.cycle_day, func.min(customer_days.c.day))
        .join(customer_days, customer_days.c.customer_id == customers_table.c.id)
        .join(packages_table, packages_table.c.id == customers_table.c.package_id)
        .join(master_packages, master_packages.c.id == packages_table.c.master_package_id)
        .where(
            master_packages.c.billing_type == "monthly",
            customers_table.c.deleted_at.is_(None),
            customer_days.c.entry_id.is_(None),
        )
        .group_by(customers_table.c.username, customers_table.c.cycle_day)
    ).all()
    for username, cycle_day, oldest in waiting:
        assert oldest >= billing_period(day, cycle_day)[0], (username, oldest, day)


def _check_cash(connection) -> None:
    """Cash is conserved: all the books' cash is what customers paid in, less what was paid out
    (money between operators moves cash from one book to another), reversals netted out."""
    cash = ledger_accounts.alias("cash")
    reversed_entries = select(ledger_entries.c.reverses_entry_id).where(
        ledger_entries.c.reverses_entry_id.is_not(None)
    )

    def moved(side, sign):
        return (
            connection.execute(
                select(func.coalesce(func.sum(ledger_lines.c.amount), 0))
                .join(cash, cash.c.id == side)
                .where(cash.c.code == "cash")
            ).scalar()
            * sign
        )

    in_books = moved(ledger_lines.c.debit_account_id, 1) + moved(ledger_lines.c.credit_account_id, -1)
    paid_in = connection.execute(
        select(func.coalesce(func.sum(payments.c.amount), 0)).where(
            payments.c.customer_id.is_not(None), payments.c.entry_id.not_in(reversed_entries)
        )
    ).scalar()
    wallet = ledger_accounts.alias("wallet")
    paid_out = connection.execute(
        select(func.coalesce(func.sum(ledger_lines.c.amount), 0))
        .join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
        .join(wallet, wallet.c.id == ledger_lines.c.debit_account_id)
        .where(ledger_entries.c.kind == "payout", ledger_entries.c.id.not_in(reversed_entries))
    ).scalar()
    # A sold card's cash came in at its sale (less the commission); its redemption is a payment
    # that brings no cash again.
    sold = connection.execute(
        select(func.coalesce(func.sum(card_sales.c.amount - card_sales.c.commission), 0))
    ).scalar()
    sold_redeemed = connection.execute(
        select(func.coalesce(func.sum(card_sale_items.c.value), 0))
        .join(recharge_cards, recharge_cards.c.id == card_sale_items.c.card_id)
        .where(recharge_cards.c.status == "redeemed")
    ).scalar()
    assert in_books == paid_in - paid_out + sold - sold_redeemed


def _run_due_days(connection, world: World) -> None:
    """The run catches up every day up to the world's day, in order (FIELD-NOTES: ordered catch-up)."""
    while world.last_run < world.day:
        world.last_run += 1
        day = world.today(world.last_run)
        first = runs.run_day(connection, day, world.settings, now=world.instant(world.last_run))
        assert not first.already_done
        before = snapshot(connection)
        again = runs.run_day(connection, day, world.settings, now=world.instant(world.last_run))
        assert again.already_done and snapshot(connection) == before
        _check_day(connection, world, day)


def _play(connection, world: World, hierarchy, steps) -> None:
    _build(connection, world, hierarchy)
    for step in steps:
        if step[0] == "run":
            world.day += step[1] - 1
            _run_due_days(connection, world)
            world.day += 1
            continue
        if step[0] == "skip":  # days pass with no run: the next run catches them up
            world.day += step[1]
            continue
        savepoint = connection.begin_nested()
        try:
            _apply(connection, world, step)
        except RadbillError:
            savepoint.rollback()
        else:
            savepoint.commit()
        _check_limits(connection)
    _run_due_days(connection, world)


def test_random_operations_keep_the_books(engine):
    # @given runs inside the test, not on it: pytest-twisted's hook and
    # hypothesis' wrapper of a fixture-taking test do not compose.
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        hierarchy=hierarchies,
        steps=operations,
        place=st.sampled_from(ZONES),
        hour=st.integers(0, 23),
    )
    def operations_keep_the_books(hierarchy, steps, place, hour):
        connection = engine.connect()
        transaction = connection.begin()
        try:
            _play(connection, World(place[0], place[1], hour), hierarchy, steps)
        finally:
            transaction.rollback()
            connection.close()

    operations_keep_the_books()


@given(price=st.integers(0, 10**9), days=st.integers(1, 366), start=st.integers(0, 10**4))
def test_any_full_period_of_daily_shares_is_the_price(price, days, start):
    shares = [day_share(price, days, i) for i in range(start, start + days)]
    assert sum(shares) == price
    assert max(shares) - min(shares) <= 1


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
def test_amounts_round_trip(value):
    from billingd.money import format_amount

    assert format_amount(parse_amount(str(value))) == f"{value:.2f}"
