"""Accounting records in the database: sessions, radacct, usage, quota enforcement (SQLite and PostgreSQL)."""

import dataclasses
import json
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from billingd import lifecycle
from billingd.customers import Calendar
from cli.demo import load_demo
from radiusd.accounting.record import SessionState, merge_session
from radiusd.accounting.store import apply_records, close_stale_sessions
from schema.engine import as_utc
from schema.tables import (
    change_log,
    customer_usage,
    customers,
    enforcement_jobs,
    master_packages,
    packages,
    radacct,
    sessions,
)
from schema.tenancy import resolve_actor
from tests.accounting_helpers import T0, make_record

ZONE = ZoneInfo("Asia/Dhaka")
GB = 10**9


@pytest.fixture
def db(engine):
    with engine.begin() as connection:
        load_demo(connection, T0)
    return engine


def apply(engine, *records):
    with engine.begin() as connection:
        return apply_records(connection, list(records), ZONE)


def one(engine, table, *where):
    with engine.connect() as connection:
        rows = connection.execute(select(table).where(*where)).all()
    assert len(rows) == 1, rows
    return rows[0]


def usage_of(engine, username="demo"):
    with engine.connect() as connection:
        return connection.execute(
            select(customer_usage.c.upload_bytes, customer_usage.c.download_bytes)
            .join(customers, customers.c.id == customer_usage.c.customer_id)
            .where(customers.c.username == username)
        ).all()


def test_start_interim_stop_in_sessions_and_radacct(db):
    start = make_record(
        "Start",
        at=T0,
        framed_ip_address="100.64.0.2",
        calling_station_id="AA:BB:CC:00:00:01",
        nas_port_id="ether1",
    )
    apply(db, start)
    session = one(db, sessions, sessions.c.acct_unique_id == start.acct_unique_id)
    assert (
        session.stopped_at is None
        and session.customer_id is not None
        and session.framed_ip_address == "100.64.0.2"
    )
    apply(
        db,
        make_record(
            "Interim-Update", at=T0 + timedelta(minutes=5), upload=1000, download=5000, session_time=300
        ),
    )
    apply(
        db,
        make_record(
            "Stop",
            at=T0 + timedelta(minutes=6),
            upload=1200,
            download=6000,
            session_time=360,
            cause="User-Request",
        ),
    )
    row = one(db, radacct, radacct.c.acctuniqueid == start.acct_unique_id)
    assert (row.acctinputoctets, row.acctoutputoctets, row.acctsessiontime) == (1200, 6000, 360)
    assert as_utc(row.acctstarttime) == T0 and as_utc(row.acctstoptime) == T0 + timedelta(minutes=6)
    assert (row.acctterminatecause, row.callingstationid, row.nasportid, row.framedipaddress) == (
        "User-Request",
        "AA:BB:CC:00:00:01",
        "ether1",
        "100.64.0.2",
    )
    assert row.acctinterval == 300
    session = one(db, sessions, sessions.c.acct_unique_id == start.acct_unique_id)
    assert (session.upload_bytes, session.download_bytes, session.terminate_cause) == (
        1200,
        6000,
        "User-Request",
    )
    assert usage_of(db) == [(1200, 6000)]


def test_replaying_the_same_records_changes_nothing(db):
    stream = [
        make_record("Start"),
        make_record("Interim-Update", at=T0 + timedelta(minutes=5), upload=10, download=20),
        make_record("Stop", at=T0 + timedelta(minutes=6), upload=30, download=40),
    ]
    apply(db, *stream)
    apply(db, *stream)
    apply(db, stream[1])
    assert usage_of(db) == [(30, 40)]
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(radacct)).scalar() == 1
        assert connection.execute(select(func.count()).select_from(sessions)).scalar() == 1


def test_out_of_order_interim_creates_and_stop_without_octets_keeps_counts(db):
    apply(db, make_record("Interim-Update", upload=500, download=700, session_time=60))
    apply(db, make_record("Stop", at=T0 + timedelta(seconds=30)))
    apply(db, make_record("Interim-Update", at=T0 + timedelta(seconds=40), upload=400, download=600))
    session = one(db, sessions)
    assert (session.upload_bytes, session.download_bytes) == (500, 700)
    assert as_utc(session.stopped_at) == T0 + timedelta(seconds=30)
    assert usage_of(db) == [(500, 700)]


def test_unknown_user_is_accounted_without_customer(db):
    apply(db, make_record("Stop", username="nobody", upload=1, download=2))
    session = one(db, sessions)
    assert session.customer_id is None and session.stopped_at is not None


def test_user_name_is_case_insensitive_for_the_customer(db):
    apply(db, make_record("Start", username="DEMO"))
    assert one(db, sessions).customer_id is not None


def test_accounting_on_closes_that_nas_only_from_the_batch_order(db):
    other = make_record("Start", session="other", nas_ip="10.9.9.9")
    before = make_record("Start", session="a")
    on = make_record("Accounting-On", at=T0 + timedelta(minutes=1))
    after = make_record("Start", session="b", at=T0 + timedelta(minutes=2))
    outcome = apply(db, other, before, on, after)
    assert outcome.closed == 1 and len(outcome.stopped) == 1 and len(outcome.opened) == 3
    closed = one(db, sessions, sessions.c.acct_unique_id == before.acct_unique_id)
    assert closed.terminate_cause == "NAS-Reboot" and as_utc(closed.stopped_at) == T0 + timedelta(minutes=1)
    assert (
        one(db, radacct, radacct.c.acctuniqueid == before.acct_unique_id).acctterminatecause == "NAS-Reboot"
    )
    assert one(db, sessions, sessions.c.acct_unique_id == after.acct_unique_id).stopped_at is None
    assert one(db, sessions, sessions.c.acct_unique_id == other.acct_unique_id).stopped_at is None


def test_sweep_closes_sessions_that_missed_three_interims(db):
    apply(
        db,
        make_record("Start", session="quiet", at=T0),
        make_record("Start", session="alive", at=T0),
        make_record("Interim-Update", session="alive", at=T0 + timedelta(minutes=14)),
    )
    with db.begin() as connection:
        assert close_stale_sessions(connection, T0 + timedelta(minutes=15, seconds=1), 300).closed == 1
    quiet = one(db, sessions, sessions.c.acct_session_id == "quiet")
    assert quiet.terminate_cause == "Lost-Service" and as_utc(quiet.stopped_at) == T0
    assert one(db, sessions, sessions.c.acct_session_id == "alive").stopped_at is None
    with db.begin() as connection:
        assert close_stale_sessions(connection, T0 + timedelta(minutes=15, seconds=1), 300).closed == 0


def _quota_customer(engine, quota: int, fup: bool) -> None:
    with engine.begin() as connection:
        package = connection.execute(
            select(packages.c.id, packages.c.master_package_id).where(packages.c.name == "PPPoE 20M 100G")
        ).one()
        values = dict(quota_bytes=quota) if fup else dict(quota_bytes=quota, fup_rx=None, fup_tx=None)
        connection.execute(
            update(master_packages).where(master_packages.c.id == package.master_package_id).values(**values)
        )
        connection.execute(
            update(customers).where(customers.c.username == "demo").values(package_id=package.id)
        )


@pytest.mark.parametrize("fup, action", [(True, "coa"), (False, "disconnect")])
def test_going_over_quota_queues_one_enforcement(db, fup, action):
    _quota_customer(db, 10 * GB, fup)
    apply(db, make_record("Start"))
    apply(db, make_record("Interim-Update", at=T0 + timedelta(minutes=5), upload=2 * GB, download=7 * GB))
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(enforcement_jobs)).scalar() == 0
        changes = connection.execute(select(func.count()).select_from(change_log)).scalar()
    apply(db, make_record("Interim-Update", at=T0 + timedelta(minutes=10), upload=3 * GB, download=8 * GB))
    apply(db, make_record("Interim-Update", at=T0 + timedelta(minutes=15), upload=4 * GB, download=9 * GB))
    job = one(db, enforcement_jobs)
    customer = one(db, customers, customers.c.username == "demo")
    assert (job.action, job.reason, job.customer_id, job.status) == (action, "quota", customer.id, "pending")
    assert job.dedupe_key.startswith(f"quota:{customer.id}:")
    assert job.payload["acct_session_id"] == "81000001" and job.payload["used_bytes"] == 11 * GB
    assert ("rate_limit" in job.payload) == fup and job.payload.get("rate_limit", "2M/2M") == "2M/2M"
    usage = one(db, customer_usage)
    assert usage.quota_enforced_at is not None and usage.upload_bytes + usage.download_bytes == 13 * GB
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(change_log)).scalar() == changes + 1


def test_usage_of_two_sessions_adds_up_per_period(db):
    apply(
        db,
        make_record("Interim-Update", session="one", upload=100, download=200),
        make_record("Interim-Update", session="two", upload=10, download=20),
        make_record("Interim-Update", session="one", at=T0 + timedelta(minutes=5), upload=150, download=260),
    )
    assert usage_of(db) == [(160, 280)]
    with db.connect() as connection:
        customer = connection.execute(select(customers).where(customers.c.username == "demo")).one()
        period = connection.execute(select(customer_usage.c.period_start)).scalar()
    assert period == (as_utc(customer.expires_at) - timedelta(days=30)).astimezone(ZONE).date()


def test_insert_of_second_customer_is_independent(db):
    with db.begin() as connection:
        lifecycle.add_customer(
            connection,
            resolve_actor(connection, "admin"),
            "second",
            password="x",
            package="PPPoE 10M",
            calendar=Calendar(T0, ZONE),
        )
    apply(
        db,
        make_record("Interim-Update", upload=1, download=1),
        make_record("Interim-Update", username="second", session="s2", upload=5, download=5),
    )
    assert usage_of(db, "second") == [(5, 5)] and usage_of(db, "demo") == [(1, 1)]


def test_two_instances_writing_the_same_sessions_count_usage_once(db, database_url):
    """Several radiusd instances share the database: a NAS that fails over between them
    may deliver the same records to both, concurrently."""
    import threading

    from schema.engine import make_engine

    batches = [
        [
            make_record(
                "Interim-Update",
                session=f"s{i}",
                at=T0 + timedelta(minutes=k),
                upload=100 * k,
                download=1000 * k,
            )
            for i in range(10)
        ]
        for k in range(1, 21)
    ]
    errors = []
    start = threading.Barrier(2)

    def instance():
        engine = make_engine(database_url)
        try:
            start.wait()
            for batch in batches:
                apply(engine, *batch)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert usage_of(db) == [(10 * 2000, 10 * 20000)]
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(sessions)).scalar() == 10


def test_radbill_online_lists_open_sessions(db, cli):
    apply(
        db,
        make_record(
            "Start",
            session="open1",
            at=T0,
            framed_ip_address="100.64.0.9",
            calling_station_id="aa-bb-cc-00-00-09",
            nas_id=None,
        ),
        make_record("Interim-Update", session="open1", at=T0 + timedelta(minutes=5), upload=10, download=20),
        make_record("Stop", session="gone", at=T0),
    )
    table = cli("online").output.splitlines()
    assert table[0].split() == ["ID", "USER", "NAS", "IP", "MAC", "START", "DURATION", "UPLOAD", "DOWNLOAD"]
    assert len(table) == 2 and table[1].split()[1:5] == [
        "demo",
        "127.0.0.1",
        "100.64.0.9",
        "AA:BB:CC:00:00:09",
    ]
    assert table[1].split()[-2:] == ["10", "20"]
    [session] = json.loads(cli("--json", "online").output)
    assert session["acct_session_id"] == "open1" and session["duration"] > 0
    assert "no NAS named 'nowhere'" in cli("online", "--nas", "nowhere", expect_exit=1).output


def test_radbill_online_shows_an_operator_only_its_customers_sessions(db, cli):
    apply(db, make_record("Start", session="admins"))  # demo belongs to the admin
    assert len(json.loads(cli("--json", "online").output)) == 1
    assert json.loads(cli("--json", "--as", "reseller1", "online").output) == []


def test_sessions_opening_or_closing_are_logged_for_radiusd_session_counts(db):
    def session_changes():
        with db.connect() as connection:
            return (
                connection.execute(
                    select(change_log.c.entity_id)
                    .where(change_log.c.entity == "sessions")
                    .order_by(change_log.c.id)
                )
                .scalars()
                .all()
            )

    demo_id = one(db, customers, customers.c.username == "demo").id
    outcome = apply(
        db,
        make_record("Start", session="a"),
        make_record("Start", session="b"),
        make_record("Start", session="x", username="nobody"),
    )
    assert session_changes() == [demo_id]  # one row per customer per batch; unknown users have no count
    assert outcome.open_sessions == {demo_id: 2}  # for this radiusd's view, at once
    with db.connect() as connection:
        assert (
            outcome.change_ids
            == connection.execute(select(change_log.c.id).where(change_log.c.entity == "sessions"))
            .scalars()
            .all()
        )
    assert apply(db, make_record("Interim-Update", session="a", upload=5, download=5)).open_sessions == {}
    assert session_changes() == [demo_id]  # an update changes no count
    assert apply(db, make_record("Stop", session="a")).open_sessions == {demo_id: 1}
    assert apply(db, make_record("Accounting-On", at=T0 + timedelta(minutes=1))).open_sessions == {demo_id: 0}
    assert session_changes() == [demo_id] * 3


def test_counters_at_the_ceiling_are_stored_and_usage_saturates(db):
    """Issue 11: a Stop with clamped counters closes its session; usage of two such sessions
    stays at the ceiling instead of overflowing 64 bits (refused for ever, on both databases)."""
    from radiusd.accounting.record import MAX_OCTETS

    for session in ("a", "b"):
        apply(
            db,
            make_record("Start", session=session),
            make_record(
                "Stop", session=session, at=T0 + timedelta(minutes=1), upload=MAX_OCTETS, download=MAX_OCTETS
            ),
        )
        apply(
            db,
            make_record(
                "Stop", session=session, at=T0 + timedelta(minutes=1), upload=MAX_OCTETS, download=MAX_OCTETS
            ),
        )  # a retransmission changes nothing
    with db.connect() as connection:
        assert connection.execute(select(func.count()).where(sessions.c.stopped_at.is_(None))).scalar() == 0
    assert usage_of(db) == [(MAX_OCTETS, MAX_OCTETS)]


def test_takeover_closes_the_stale_sessions_only(db):
    """Issue 15: of demo's open sessions, the one on the login's NAS with the login's MAC
    (any spelling) and the one whose NAS fell silent are closed as Lost-Service at their last
    update, counters and usage kept; a live session of another device stays open."""
    from radiusd.accounting.store import take_over_stale_sessions
    from schema.tables import nas

    with db.connect() as connection:
        nas_id = connection.execute(select(nas.c.id).where(nas.c.ip_address == "127.0.0.1")).scalar()
        customer_id = connection.execute(
            select(customers.c.id).where(customers.c.username == "demo")
        ).scalar()
    now = T0 + timedelta(minutes=12)
    apply(
        db,
        make_record("Start", session="same", calling_station_id="AA-BB-CC-00-00-01", nas_id=nas_id),
        make_record(
            "Interim-Update",
            session="same",
            at=T0 + timedelta(minutes=10),
            upload=7,
            download=9,
            nas_id=nas_id,
        ),
        make_record("Start", session="other", calling_station_id="AA-BB-CC-00-00-02", nas_id=nas_id),
        make_record("Interim-Update", session="other", at=T0 + timedelta(minutes=11), nas_id=nas_id),
        make_record("Start", session="gone", nas_ip="10.9.9.9", calling_station_id="AA-BB-CC-00-00-03"),
    )
    with db.begin() as connection:
        outcome = take_over_stale_sessions(connection, customer_id, nas_id, "aabb.cc00.0001", now, 300)
    assert outcome.taken == {"same_station": 1, "nas_silent": 1}
    assert outcome.open_sessions == {customer_id: 1} and len(outcome.change_ids) == 1
    same = one(db, sessions, sessions.c.acct_session_id == "same")
    assert as_utc(same.stopped_at) == T0 + timedelta(minutes=10) and same.terminate_cause == "Lost-Service"
    assert (same.upload_bytes, same.download_bytes) == (7, 9) and usage_of(db) == [(7, 9)]
    assert one(db, sessions, sessions.c.acct_session_id == "gone").terminate_cause == "Lost-Service"
    assert one(db, sessions, sessions.c.acct_session_id == "other").stopped_at is None
    assert one(db, radacct, radacct.c.acctsessionid == "same").acctterminatecause == "Lost-Service"
    with db.begin() as connection:  # nothing stale left: nothing closed
        assert (
            take_over_stale_sessions(connection, customer_id, nas_id, "aabb.cc00.0001", now, 300).taken == {}
        )


def as_operator(cli, login: str):
    from tests.conftest import Cli

    other = Cli("")
    other.env = {**cli.env, "RADBILL_OPERATOR": login}
    return other


def test_radbill_session_close_by_id_or_user_for_the_noc(db, cli):
    """Issue 15: the NOC closes a session a router lost, in the books: Admin-Reset at its last
    update, counters kept, audited; simultaneous use stops counting it (a "sessions" change)."""
    apply(
        db,
        make_record("Start", session="lost1"),
        make_record("Interim-Update", session="lost1", at=T0 + timedelta(minutes=5), upload=10, download=20),
        make_record("Start", session="lost2", nas_ip="10.0.0.2"),
    )
    cli("operator", "add", "noc1", "--role", "noc")
    [first, _] = json.loads(cli("--json", "online").output)
    noc = as_operator(cli, "noc1")
    closed = json.loads(noc("--json", "session", "close", str(first["id"])).output)
    assert [c["session"] for c in closed] == ["lost1"]
    row = one(db, sessions, sessions.c.acct_session_id == "lost1")
    assert row.terminate_cause == "Admin-Reset" and as_utc(row.stopped_at) == T0 + timedelta(minutes=5)
    assert (row.upload_bytes, row.download_bytes) == (10, 20) and usage_of(db) == [(10, 20)]
    assert "already closed" in noc("session", "close", str(first["id"]), expect_exit=1).stderr
    assert "lost2" in noc("session", "close", "--user", "DEMO").output
    assert json.loads(cli("--json", "online").output) == []
    assert "demo has no open session" in noc("session", "close", "--user", "demo", expect_exit=1).stderr
    assert "no session 999" in noc("session", "close", "999", expect_exit=1).stderr
    with db.connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(change_log).where(change_log.c.entity == "sessions")
            ).scalar()
            >= 3
        )  # two Starts, two closes (one per command)


def test_radbill_session_close_is_refused_outside_the_actors_customers(db, cli):
    apply(db, make_record("Start", session="admins"))  # demo belongs to the admin
    [session] = json.loads(cli("--json", "online").output)
    result = cli("--as", "reseller1", "session", "close", str(session["id"]), expect_exit=1)
    assert "not visible to reseller1" in result.stderr
    assert one(db, sessions, sessions.c.acct_session_id == "admins").stopped_at is None
    cli("operator", "add", "cards1", "--role", "card_distributor")
    refused = as_operator(cli, "cards1")("session", "close", str(session["id"]), expect_exit=1)
    assert "not allowed to close sessions" in refused.stderr


# Streams of one session's records as NASes send them: in order, out of order, repeated, with
# changing attributes. Each checks a batch of several records of one session (PostgreSQL merges
# those round by round) against the records applied one batch each and against merge_session.
def _streams():
    at = [T0 + timedelta(minutes=minutes) for minutes in range(8)]
    return {
        "in order": [
            make_record("Start", at=at[0], connect_info="10M", framed_ip_address="100.64.0.2"),
            make_record("Interim-Update", at=at[5], upload=10, download=20, session_time=300),
            make_record("Stop", at=at[6], upload=30, download=40, cause="User-Request", connect_info="gone"),
        ],
        "stop first": [
            make_record("Stop", at=at[6], upload=30, download=40, session_time=360, cause="Idle-Timeout"),
            make_record("Interim-Update", at=at[5], upload=10, download=20, session_time=300),
            make_record("Start", at=at[0], calling_station_id="aa-bb-cc-00-00-01"),
        ],
        "interim first, no start": [
            make_record("Interim-Update", at=at[2], upload=5, download=6, session_time=120),
            make_record("Interim-Update", at=at[1], upload=4, download=4, session_time=60),
            make_record("Interim-Update", at=at[3], upload=9, download=9, nas_port_id="ether2"),
            make_record("Stop", at=at[4]),
        ],
        "repeated": [
            make_record("Start", at=at[0]),
            make_record("Start", at=at[0]),
            make_record("Interim-Update", at=at[5], upload=10, download=20),
            make_record("Interim-Update", at=at[5], upload=10, download=20),
        ],
        "after the stop": [
            make_record("Start", at=at[0]),
            make_record("Stop", at=at[2], upload=1, download=1),
            make_record("Interim-Update", at=at[3], upload=7, download=7, session_time=180),
            make_record("Stop", at=at[4], upload=8, download=8, cause="Lost-Carrier"),
        ],
        "two sessions interleaved": [
            make_record("Start", at=at[0]),
            make_record("Start", at=at[1], session="81000002"),
            make_record("Interim-Update", at=at[5], session="81000002", upload=3, download=4),
            make_record("Interim-Update", at=at[5], upload=1, download=2),
            make_record("Stop", at=at[6], session="81000002", upload=5, download=6),
        ],
        "unknown user": [
            make_record("Start", at=at[0], username="nobody"),
            make_record("Interim-Update", at=at[1], username="nobody", upload=9, download=9),
        ],
    }


_STATE_FIELDS = [field.name for field in dataclasses.fields(SessionState)]


def _accounted(engine) -> dict:
    """Sessions, radacct and usage rows without their generated ids."""
    with engine.connect() as connection:
        return {
            table.name: sorted(
                tuple((key, value) for key, value in row._mapping.items() if key not in ("id", "radacctid"))
                for row in connection.execute(select(table))
            )
            for table in (sessions, radacct, customer_usage)
        }


def _forget_accounting(engine) -> None:
    with engine.begin() as connection:
        for table in (radacct, sessions, customer_usage):
            connection.execute(table.delete())


@pytest.mark.parametrize("stream", list(_streams()))
def test_several_records_of_a_session_in_one_batch_apply_one_after_another(db, stream):
    records = _streams()[stream]
    for record in records:
        apply(db, record)
    one_each = _accounted(db)
    _forget_accounting(db)
    outcome = apply(db, *records)
    assert _accounted(db) == one_each
    states: dict = {}
    for record in records:
        states[record.acct_unique_id] = merge_session(states.get(record.acct_unique_id), record)
    with db.connect() as connection:
        stored = {row.acct_unique_id: row for row in connection.execute(select(sessions))}
    for uid, state in states.items():
        row = stored[uid]
        assert (
            as_utc(row.started_at),
            as_utc(row.updated_at),
            as_utc(row.stopped_at),
            row.session_time,
            row.interim_interval,
            row.upload_bytes,
            row.download_bytes,
            row.terminate_cause,
            row.framed_ip_address,
            row.connect_info_start,
            row.connect_info_stop,
        ) == tuple(getattr(state, name) for name in _STATE_FIELDS)
    opened = {state for state in states.values() if state.is_open}
    assert len(outcome.opened) == (len(opened) if stream != "unknown user" else 0)
