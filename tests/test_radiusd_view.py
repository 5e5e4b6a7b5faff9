"""The in-memory view and the change-log cursor that keeps it current."""

from datetime import UTC, datetime, timedelta

import pytest
import pytest_twisted
from sqlalchemy import insert, select, update
from twisted.internet import defer, reactor, task

from radiusd.auth.policy import PackageState
from radiusd.view import queries
from radiusd.view.follower import (
    SESSION_RECOUNT_SECONDS,
    WAKE_SECONDS,
    ChangeCursor,
    Follower,
    read_everything,
)
from radiusd.view.model import CustomerRow, Customers, NasClient, OperatorRow, Snapshot
from radiusd.view.view import SubscriberView
from schema.changes import record_change, record_change_ids
from schema.pool import Pool
from schema.tables import change_log, customers, sessions

pytestmark = pytest.mark.daemon

PACKAGE = PackageState(id=1, billing_type="daily", rate_limit="1M/1M")


def row(id=1, username="alice", **changes):
    values = dict(
        id=id,
        username=username,
        password="pw",
        status="active",
        package_id=1,
        operator_id=1,
        expires_at=None,
        wallet_balance=1,
        mac_binding=None,
        static_ip=None,
        deleted=False,
        unpaid=False,
    )
    values.update(changes)
    return CustomerRow(**values)


def loaded_view() -> SubscriberView:
    view = SubscriberView()
    view.apply(
        Snapshot(
            customers=[row()],
            nas=[NasClient(1, "a", "10.0.0.1", b"s", "no")],
            packages={1: ("pppoe", PACKAGE)},
            operators={1: OperatorRow(1, None, False)},
            full=True,
        )
    )
    return view


# --- Customers: the compact records -------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        dict(
            password="pässwörd \t\\ 🙂",
            status="suspended",
            expires_at=datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=UTC),
            wallet_balance=-(2**40),
            mac_binding="AA:BB:CC:DD:EE:FF",
            static_ip="2001:db8::1",
            deleted=True,
            unpaid=True,
        ),
        dict(id=2**40, package_id=7, operator_id=2**33, status="disabled", mac_binding="", static_ip=""),
        dict(password="", expires_at=datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)),
    ],
)
def test_customers_give_back_every_field_as_it_was_held(changes):
    held = Customers()
    held.add(row(**changes))
    assert held.get("alice") == row(**changes) and len(held) == 1


def test_customers_replace_a_renamed_customer_and_forget_by_id():
    held = Customers()
    held.add(row(1, "alice"))
    held.add(row(2, "bob"))
    held.add(row(1, "alice2", password="new"))
    assert held.get("alice") is None and held.get("alice2").password == "new" and len(held) == 2
    held.forget(2)
    held.forget(3)  # never held
    assert held.get("bob") is None and len(held) == 1


# --- ChangeCursor ------------------------------------------------------------------


def rows(*ids):
    return [(i, "customer", i) for i in ids]


def test_cursor_advances_over_contiguous_ids():
    cursor = ChangeCursor(0)
    assert cursor.absorb(rows(1, 2, 3), now=0) == rows(1, 2, 3)
    assert cursor.after == 3 and cursor.pending_holes() == 0


def test_cursor_waits_for_a_late_commit_and_applies_it_once():
    cursor = ChangeCursor(0, gap_timeout=30)
    cursor.absorb(rows(1, 3), now=0)  # 2 has an id but has not committed yet
    assert cursor.after == 1 and cursor.pending_holes() == 1
    assert cursor.absorb(rows(3, 4), now=1) == rows(4)
    assert cursor.absorb(rows(2, 3, 4), now=2) == rows(2)
    assert cursor.after == 4 and cursor.pending_holes() == 0
    assert cursor.absorb(rows(2, 3, 4), now=3) == []


def test_cursor_gives_up_a_hole_that_never_fills():
    cursor = ChangeCursor(0, gap_timeout=30)
    cursor.absorb(rows(1, 3), now=0)
    cursor.absorb([], now=29)
    assert cursor.after == 1
    cursor.absorb([], now=30)
    assert cursor.after == 3 and cursor.pending_holes() == 0


def test_cursor_at_start_waits_for_transactions_still_open_at_the_load():
    cursor = ChangeCursor.at_start(10, [1, 2, 3, 4, 5, 6, 7, 8, 10], now=0)  # 9 still open
    assert cursor.after == 8 and cursor.pending_holes() == 1
    assert cursor.absorb(rows(7, 8, 9, 10, 11), now=1) == rows(9, 11)
    assert cursor.after == 11


# --- the view ----------------------------------------------------------------------


def test_view_composes_the_subscriber():
    view = loaded_view()
    view.apply(Snapshot(open_sessions={1: 2}))
    view.apply(Snapshot(used_bytes={1: 99}))
    subscriber = view.subscriber("alice")
    assert (subscriber.customer_type, subscriber.open_sessions, subscriber.used_bytes) == ("pppoe", 2, 99)
    assert view.subscriber("bob") is None


def test_renaming_a_customer_drops_the_old_name():
    view = loaded_view()
    view.apply(Snapshot(customers=[row(username="alice2")], customer_ids={1}))
    assert view.subscriber("alice") is None and view.subscriber("alice2") is not None
    view.apply(Snapshot(customers=[], customer_ids={1}))
    assert view.subscriber("alice2") is None and len(view) == 0


def test_changing_a_nas_address_moves_it():
    view = loaded_view()
    view.apply(Snapshot(nas=[NasClient(1, "a", "10.0.0.2", b"s", "no")], nas_ids={1}))
    assert view.nas_for("10.0.0.1") is None and view.nas_for("10.0.0.2").name == "a"


def test_blocking_an_operator_blocks_its_descendants():
    view = loaded_view()
    operators = {1: OperatorRow(1, None, True), 2: OperatorRow(2, 1, False), 3: OperatorRow(3, None, False)}
    view.apply(
        Snapshot(
            customers=[row(), row(2, "bob", operator_id=2), row(3, "carol", operator_id=3)],
            operators=operators,
        )
    )
    assert view.subscriber("alice").operator_blocked and view.subscriber("bob").operator_blocked
    assert not view.subscriber("carol").operator_blocked


def test_session_counts_of_some_customers_leave_the_others_alone():
    view = loaded_view()
    view.apply(Snapshot(customers=[row(2, "bob")]))
    view.apply(Snapshot(open_sessions={1: 1, 2: 3}))
    view.apply(Snapshot(open_sessions={1: 2}, open_session_ids={1}))
    assert (view.subscriber("alice").open_sessions, view.subscriber("bob").open_sessions) == (2, 3)
    view.apply(Snapshot(open_sessions={}, open_session_ids={2}))  # bob's last session closed
    assert (view.subscriber("alice").open_sessions, view.subscriber("bob").open_sessions) == (2, 0)
    view.apply(Snapshot(open_sessions={2: 1}))  # a full recount replaces everything
    assert (view.subscriber("alice").open_sessions, view.subscriber("bob").open_sessions) == (0, 1)


# --- following the database ----------------------------------------------------------


@pytest.fixture
def demo(engine):
    from cli.demo import load_demo

    with engine.begin() as connection:
        load_demo(connection, datetime.now(UTC))
    return engine


@pytest.fixture
def database(demo):
    database = Pool(demo, reactor, name="radiusd-db")
    yield database
    database.close()


async def loaded_follower(database, clock=reactor) -> Follower:
    follower = Follower(SubscriberView(), database, clock, poll_interval=0.2)
    await follower.load()
    return follower


def open_session(connection, customer_id: int) -> None:
    connection.execute(
        insert(sessions).values(
            acct_unique_id="x",
            acct_session_id="1",
            nas_ip_address="127.0.0.1",
            customer_id=customer_id,
            username="demo",
            started_at=datetime.now(UTC),
        )
    )


@pytest_twisted.ensureDeferred
async def test_follower_loads_and_follows_changes(demo, database):
    follower = await loaded_follower(database)
    view = follower.view
    assert view.subscriber("demo").status == "active" and view.nas_for("127.0.0.1").name == "demo-nas"
    customer_id = view.subscriber("demo").id
    with demo.begin() as connection:
        connection.execute(update(customers).where(customers.c.username == "demo").values(status="suspended"))
        record_change(connection, "customer", customer_id)
        open_session(connection, customer_id)
        record_change(connection, "sessions", customer_id)  # as the accounting writer does
    await follower.poll()
    assert view.subscriber("demo").status == "suspended"
    assert view.subscriber("demo").open_sessions == 1


def test_a_full_load_holds_what_the_change_path_reads(demo):
    """The full load streams every customer (on PostgreSQL through a server-side
    cursor) into compact records; they must say what read_customers says."""
    with demo.begin() as connection:
        connection.execute(
            update(customers)
            .where(customers.c.username == "demo")
            .values(
                username=" Demo ",  # held under its canonical name
                mac_binding="AA:BB:CC:DD:EE:01",
                static_ip="10.9.8.7",
                expires_at=datetime(2031, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
                deleted_at=datetime.now(UTC),
                status="suspended",
                status_reason="expired",
            )
        )
    with demo.connect() as connection:
        rows = queries.read_customers(connection)
        held = queries.read_all_customers(connection)
    assert len(held) == len(rows) > 1
    assert all(held.get(each.username) == each for each in rows)
    demo_row = held.get("demo")
    assert (demo_row.static_ip, demo_row.deleted, demo_row.unpaid) == ("10.9.8.7", True, True)


@pytest_twisted.ensureDeferred
async def test_a_view_read_before_forking_catches_up_with_what_changed_since(demo, database):
    """With workers, the parent reads the view once and each worker starts from
    it later: a change committed in between must still reach the worker."""
    with demo.connect() as connection:
        preloaded = read_everything(connection, datetime.now(UTC).date())
    with demo.begin() as connection:
        connection.execute(update(customers).where(customers.c.username == "demo").values(status="suspended"))
        record_change(
            connection,
            "customer",
            connection.execute(select(customers.c.id).where(customers.c.username == "demo")).scalar_one(),
        )
    follower = Follower(SubscriberView(), database, reactor, poll_interval=0.2)
    await follower.load(preloaded)
    assert follower.view.subscriber("demo").status == "active"  # as it was read
    await follower.poll()
    assert follower.view.subscriber("demo").status == "suspended"


def test_the_parent_reads_the_view_again_while_the_database_is_away(demo, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from radiusd import service

    attempts = []

    def flaky(connection, today):
        attempts.append(today)
        if len(attempts) == 1:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))
        return read_everything(connection, today)

    monkeypatch.setattr(service, "read_everything", flaky)
    monkeypatch.setattr(service.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(service.gc, "freeze", lambda: None)  # leave the test process's collector alone
    _, _, snapshot = service.read_before_forking(demo)
    assert len(attempts) == 2 and snapshot.full and snapshot.all_customers.get("demo") is not None


def test_notifies_in_a_burst_cost_one_poll_per_wake_interval():
    class Database:
        polls = 0

        def run(self, name, work, *args):
            Database.polls += 1
            return defer.succeed((None, False))

    clock = task.Clock()
    follower = Follower(SubscriberView(), Database(), clock, poll_interval=1.0)
    follower._cursor = ChangeCursor(0)
    follower.wake()
    assert Database.polls == 1  # the first at once
    for _ in range(5):  # a storm's batches, each with its NOTIFY
        follower.wake()
    assert Database.polls == 1
    clock.advance(WAKE_SECONDS)
    assert Database.polls == 2  # all of them, in one
    clock.advance(5)
    follower.wake()
    assert Database.polls == 3


@pytest_twisted.ensureDeferred
async def test_sessions_counted_by_this_process_are_not_counted_again(demo, database):
    follower = await loaded_follower(database)
    demo_id = follower.view.subscriber("demo").id
    with demo.begin() as connection:
        [own] = record_change_ids(connection, "sessions", [demo_id])
    follower.counted({demo_id: 3}, [own])  # as this process's accounting writer hands it over
    await follower.poll()
    assert follower.view.subscriber("demo").open_sessions == 3  # not recounted: the database says 0
    with demo.begin() as connection:  # another radiusd's change is counted
        record_change_ids(connection, "sessions", [demo_id])
    await follower.poll()
    assert follower.view.subscriber("demo").open_sessions == 0


@pytest_twisted.ensureDeferred
async def test_a_session_nobody_logged_is_counted_by_the_minutely_recount(demo, database):
    clock = task.Clock()
    follower = await loaded_follower(database, clock)
    with demo.begin() as connection:  # written by hand: no "sessions" change
        open_session(connection, follower.view.subscriber("demo").id)
    await follower.poll()
    assert follower.view.subscriber("demo").open_sessions == 0
    clock.advance(SESSION_RECOUNT_SECONDS)
    await follower.poll()
    assert follower.view.subscriber("demo").open_sessions == 1


def test_store_reads_usage_of_the_current_period_for_quota_packages(demo):
    from schema.tables import customer_usage, master_packages, packages

    today = datetime.now(UTC).date()
    with demo.begin() as connection:
        quota_package = (
            connection.execute(
                packages.select()
                .join(master_packages, master_packages.c.id == packages.c.master_package_id)
                .where(master_packages.c.quota_bytes.is_not(None))
            )
            .first()
            .id
        )
        connection.execute(
            update(customers).where(customers.c.username == "demo").values(package_id=quota_package)
        )
        demo_id = connection.execute(customers.select().where(customers.c.username == "demo")).first().id
        connection.execute(
            insert(customer_usage),
            [
                dict(
                    customer_id=demo_id,
                    period_start=today - timedelta(days=40),
                    upload_bytes=1,
                    download_bytes=1,
                ),
                dict(
                    customer_id=demo_id,
                    period_start=today - timedelta(days=5),
                    upload_bytes=10,
                    download_bytes=20,
                ),
                dict(
                    customer_id=demo_id,
                    period_start=today + timedelta(days=25),
                    upload_bytes=7,
                    download_bytes=7,
                ),
            ],
        )
    with demo.connect() as connection:
        assert queries.read_used_bytes(connection, today) == {demo_id: 30}
        assert (
            queries.last_change_id(connection)
            == connection.execute(change_log.select().order_by(change_log.c.id.desc())).first().id
        )


def test_listen_wakes_the_follower_on_notify(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    import threading

    from radiusd.view.follower import listen_for_changes
    from schema.changes import NOTIFY_CHANNEL

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    woken, stop = threading.Semaphore(0), threading.Event()
    thread = threading.Thread(
        target=listen_for_changes, args=(url, NOTIFY_CHANNEL, woken.release, stop), daemon=True
    )
    thread.start()
    try:
        assert woken.acquire(timeout=10)  # the catch-up wake once listening
        with engine.begin() as connection:
            record_change(connection, "nas", 1)
        assert woken.acquire(timeout=2)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


@pytest_twisted.ensureDeferred
async def test_follower_catches_up_with_a_run_that_changed_thousands(demo, monkeypatch):
    """A billing run may record a change for every customer in one go: the
    follower reads them in bounded batches, each in bounded IN lists."""
    monkeypatch.setattr(queries, "CHANGE_BATCH", 700)
    view = SubscriberView()
    database = Pool(demo, reactor, name="radiusd-db")
    try:
        follower = Follower(view, database, reactor, poll_interval=0.2)
        await follower.load()
        demo_id = view.subscriber("demo").id
        with demo.begin() as connection:
            connection.execute(
                insert(change_log), [dict(entity="customer", entity_id=9_000_000 + i) for i in range(2_500)]
            )
            connection.execute(update(customers).where(customers.c.id == demo_id).values(status="disabled"))
            record_change(connection, "customer", demo_id)
        polls = 0
        while view.subscriber("demo").status != "disabled" and polls < 50:
            polling = follower.poll()  # None while a follow-up poll is under way
            await (polling if polling is not None else task.deferLater(reactor, 0.05, lambda: None))
            polls += 1
        assert view.subscriber("demo").status == "disabled"
    finally:
        database.close()


@pytest_twisted.ensureDeferred
async def test_usage_is_in_the_view_as_soon_as_it_is_loaded(demo, database):
    """Issue 11: radiusd listens once load() has fired, so usage read later
    (by the first refresh) would let an over-quota subscriber in at the full
    rate for about a second after a restart."""
    from schema.tables import customer_usage, master_packages, packages

    with demo.begin() as connection:
        quota_package = connection.execute(
            select(packages.c.id, master_packages.c.quota_bytes)
            .join(master_packages, master_packages.c.id == packages.c.master_package_id)
            .where(master_packages.c.quota_bytes.is_not(None))
        ).first()
        connection.execute(
            update(customers).where(customers.c.username == "demo").values(package_id=quota_package.id)
        )
        demo_id = connection.execute(select(customers.c.id).where(customers.c.username == "demo")).scalar()
        connection.execute(
            insert(customer_usage).values(
                customer_id=demo_id,
                period_start=datetime.now(UTC).date() - timedelta(days=1),
                upload_bytes=quota_package.quota_bytes,
                download_bytes=1,
            )
        )
    follower = await loaded_follower(database)  # no start(), no refresh_usage()
    assert follower.view.subscriber("demo").used_bytes == quota_package.quota_bytes + 1
