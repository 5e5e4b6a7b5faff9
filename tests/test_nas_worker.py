"""The enforcement worker on SQLite and PostgreSQL, against a fake NAS (UDP)
and a fake RouterOS router (API over TCP, driven by the real librouteros)."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import librouteros
import pytest
import pytest_twisted
from prometheus_client import REGISTRY
from pyrad.packet import CoARequest, DisconnectRequest
from sqlalchemy import String, cast, func, insert, literal, select, update
from twisted.internet import reactor, task
from twisted.python import threadable

from billingd import lifecycle
from billingd.customers import Calendar
from billingd.isp import IspPlan, PackagePlan, build_isp
from billingd.operators import admin_exists
from nas.coa import DynamicAuthorizationClient
from nas.outbox import claim_jobs, mark_done, mark_retry
from nas.registry import add_nas
from nas.worker import EnforcementWorker
from schema.engine import is_sqlite
from schema.outbox import enqueue, enqueue_selected
from schema.pool import Pool
from schema.settings import NasSettings
from schema.tables import change_log, customers, enforcement_jobs, sessions
from schema.tenancy import resolve_actor
from tests.fakes.nas import ACK, SECRET, SILENT, nak
from tests.fakes.reactor import wait_until

pytestmark = pytest.mark.daemon

COA_TIMEOUT = 3
SETTINGS = NasSettings(max_attempts=3, coa_timeout=COA_TIMEOUT, coa_retries=1)


@pytest.fixture
def clock():
    clock = task.Clock()
    clock.advance(time.time())
    return clock


@pytest.fixture
def coa(clock):
    client = DynamicAuthorizationClient(reactor, clock, timeout=COA_TIMEOUT, retries=1, interface="127.0.0.1")
    yield client
    client.stop()


@pytest.fixture
def database(engine):
    pool = Pool(engine, reactor, name="nas-db")
    yield pool
    pool.close()


@pytest.fixture
def worker(database, clock, coa):
    return EnforcementWorker(database, SETTINGS, reactor=reactor, clock=clock, coa=coa)


ONE_PACKAGE = IspPlan(
    packages=(
        PackagePlan(
            "10M", dict(customer_type="pppoe", billing_type="daily", rate_rx=10**7, rate_tx=10**7), 500_00
        ),
    )
)


def add_customer(connection, username: str, **details) -> int:
    """A customer of the admin (the ISP is built with the first one)."""
    calendar = Calendar(datetime.now(UTC), ZoneInfo("Asia/Dhaka"))
    if not admin_exists(connection):
        build_isp(connection, ONE_PACKAGE, calendar.today)
    admin = resolve_actor(connection, "admin")
    lifecycle.add_customer(
        connection, admin, username, password="pw", package="10M", calendar=calendar, **details
    )
    return connection.execute(select(customers.c.id).where(customers.c.username == username)).scalar_one()


def subscriber_online(
    engine, fake_nas, *session_ids, router=None, user_name="alice", stopped=False, **customer
):
    """Customer alice, the fake NAS (with the fake router's API if given),
    and one session per id, named as the NAS reported it (user_name)."""
    api = (
        dict(api_host="127.0.0.1", api_port=router.port, api_user=router.user, api_password=router.password)
        if router
        else {}
    )
    with engine.begin() as connection:
        alice = add_customer(connection, "alice", **customer)
        core = add_nas(
            connection, "core1", "127.0.0.1", SECRET.decode(), coa_port=fake_nas.port_number, **api
        )
        for number, session_id in enumerate(session_ids):
            connection.execute(
                insert(sessions).values(
                    acct_unique_id=f"u-{session_id}",
                    acct_session_id=session_id,
                    nas_id=core.id,
                    nas_ip_address="127.0.0.1",
                    customer_id=alice,
                    username=user_name,
                    framed_ip_address=f"100.64.0.{7 + number}",
                    stopped_at=datetime.now(UTC) if stopped else None,
                )
            )
    return alice, core


def queue(engine, **job) -> int | None:
    with engine.begin() as connection:
        return enqueue(connection, **job)


def job_row(engine, job_id):
    with engine.connect() as connection:
        return (
            connection.execute(select(enforcement_jobs).where(enforcement_jobs.c.id == job_id))
            .mappings()
            .one()
        )


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def counted(action: str, result: str) -> float:
    return REGISTRY.get_sample_value("radbill_nas_jobs_total", {"action": action, "result": result}) or 0.0


def delays(action: str) -> float:
    return REGISTRY.get_sample_value("radbill_nas_job_delay_seconds_count", {"action": action}) or 0.0


async def let_requests_time_out(fake_nas, clock, transmissions: int) -> None:
    """Advance the fake clock past each retransmission the NAS ignores."""
    for seen in range(len(fake_nas.received) + 1, len(fake_nas.received) + transmissions + 1):
        await wait_until(lambda: len(fake_nas.received) >= seen, what=f"request {seen} at the fake NAS")
        clock.advance(COA_TIMEOUT)


def stop_session(engine, session_id: str) -> None:
    """The Accounting-Stop of a session arrives (radiusd closes its row)."""
    with engine.begin() as connection:
        connection.execute(
            update(sessions)
            .where(sessions.c.acct_session_id == session_id)
            .values(stopped_at=datetime.now(UTC))
        )


def session_row(engine, session_id: str):
    with engine.connect() as connection:
        return connection.execute(select(sessions).where(sessions.c.acct_session_id == session_id)).one()


def sessions_changes(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(change_log).where(change_log.c.entity == "sessions")
        ).scalar_one()


def confirmations(how: str) -> float:
    return REGISTRY.get_sample_value("radbill_nas_disconnect_confirmations_total", {"how": how}) or 0.0


@pytest_twisted.ensureDeferred
async def test_an_acked_disconnect_is_done_when_the_stop_arrives(engine, fake_nas, clock, worker):
    alice, _ = subscriber_online(engine, fake_nas, "81a0002f", user_name="Alice")
    job = queue(engine, customer_id=alice, action="disconnect", reason="expired")
    before, delays_before, stops = counted("disconnect", "done"), delays("disconnect"), confirmations("stop")
    assert await worker.run_once() == 1
    row = job_row(engine, job)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 0, None), (
        "the ACK is not the end"
    )
    assert row["payload"] == {"disconnected": ["81a0002f"]}
    assert utc(row["not_before"]) == datetime.fromtimestamp(clock.seconds() + SETTINGS.stop_deadline, UTC)
    (seen,) = fake_nas.received
    assert seen.authenticator_ok and seen.message_authenticator_ok
    assert seen.attributes == {
        "NAS-IP-Address": ["127.0.0.1"],
        "User-Name": ["Alice"],
        "Acct-Session-Id": ["81a0002f"],
        "Framed-IP-Address": ["100.64.0.7"],
    }
    stop_session(engine, "81a0002f")
    clock.advance(SETTINGS.stop_deadline)
    assert await worker.run_once() == 1
    row = job_row(engine, job)
    assert (row["status"], row["attempts"]) == ("done", 1)
    assert row["done_at"] is not None
    assert len(fake_nas.received) == 1, "nothing is sent again once the Stop is in"
    assert counted("disconnect", "done") == before + 1
    assert delays("disconnect") == delays_before + 1
    assert confirmations("stop") == stops + 1


@pytest_twisted.ensureDeferred
async def test_an_acked_disconnect_without_a_stop_is_followed_by_the_api_check(
    engine, fake_nas, fake_router, clock, worker
):
    alice, _ = subscriber_online(engine, fake_nas, "s1", router=fake_router)
    fake_router.add("/ppp/active", name="alice", service="pppoe", address="100.64.0.7")
    job = queue(engine, customer_id=alice, action="disconnect", reason="expired")
    by_api = confirmations("api")
    assert await worker.run_once() == 1
    assert job_row(engine, job)["status"] == "pending"
    assert not any(command[0] == "/login" for command in fake_router.commands), (
        "no API call before the deadline"
    )
    clock.advance(SETTINGS.stop_deadline - 1)
    assert await worker.run_once() == 0, "the Stop has until the deadline"
    clock.advance(1)
    assert await worker.run_once() == 1
    assert job_row(engine, job)["status"] == "done"
    assert fake_router.menus["/ppp/active"] == [], "the router still had it: the API removed it"
    assert ["/ppp/active/print", "=.proplist=.id", "?=name=alice"] in fake_router.commands
    assert len(fake_nas.received) == 1
    assert confirmations("api") == by_api + 1
    closed = session_row(engine, "s1")
    assert (utc(closed.stopped_at), closed.terminate_cause) == (
        datetime.fromtimestamp(clock.seconds(), UTC),
        "Admin-Reset",
    ), "the API removed it now: the row closes now, as its Stop would have closed it"
    assert sessions_changes(engine) == 1, "radiusd hears of it: simultaneous use counts it no more"


@pytest_twisted.ensureDeferred
async def test_a_session_the_api_shows_gone_closes_at_its_last_sign_of_life(
    engine, fake_nas, fake_router, clock, worker
):
    alice, _ = subscriber_online(engine, fake_nas, "s1", "s2", router=fake_router)
    last_interim = datetime.fromtimestamp(clock.seconds(), UTC) - timedelta(minutes=7)
    with engine.begin() as connection:
        connection.execute(
            update(sessions)
            .where(sessions.c.acct_session_id == "s1")
            .values(started_at=last_interim - timedelta(hours=1), updated_at=last_interim)
        )
    job = queue(engine, customer_id=alice, action="disconnect", reason="expired")
    fake_nas.default = nak(503)
    assert await worker.run_once() == 1
    assert job_row(engine, job)["status"] == "done"
    assert fake_router.menus["/ppp/active"] == [], "the router had already lost both"
    s1, s2 = session_row(engine, "s1"), session_row(engine, "s2")
    assert (utc(s1.stopped_at), s1.terminate_cause, s1.session_time) == (last_interim, "Admin-Reset", 3600)
    assert (s2.stopped_at is not None, s2.terminate_cause) == (True, "Admin-Reset")


@pytest_twisted.ensureDeferred
async def test_without_an_api_a_second_disconnect_answered_not_found_confirms_it(
    engine, fake_nas, clock, worker
):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    job = queue(engine, customer_id=alice, action="disconnect", reason="expired")
    assert await worker.run_once() == 1
    clock.advance(SETTINGS.stop_deadline)
    fake_nas.default = nak(503)
    assert await worker.run_once() == 1
    assert job_row(engine, job)["status"] == "done"
    assert [seen.answered for seen in fake_nas.received] == ["ack", "nak"]


@pytest.mark.parametrize("refusal", ["nak", "timeout"])
@pytest_twisted.ensureDeferred
async def test_nak_or_timeout_falls_back_to_the_routeros_api(
    engine, database, fake_nas, fake_router, clock, coa, refusal
):
    api_threads = []

    def connect(*args, **kwargs):
        api_threads.append(threadable.isInIOThread())
        return librouteros.connect(*args, **kwargs)

    worker = EnforcementWorker(database, SETTINGS, reactor=reactor, clock=clock, coa=coa, api_connect=connect)
    alice, _ = subscriber_online(engine, fake_nas, "81a0002f", router=fake_router, user_name="Alice")
    job = queue(engine, customer_id=alice, action="disconnect", reason="expired")
    fake_router.add("/ppp/active", name="Alice", service="pppoe", address="100.64.0.7")
    fake_router.add("/ppp/active", name="bob", service="pppoe", address="100.64.0.8")
    fake_nas.default = nak(503) if refusal == "nak" else SILENT
    attempt = worker.run_once()
    if refusal == "timeout":
        await let_requests_time_out(fake_nas, clock, 2)
    assert await attempt == 1
    assert job_row(engine, job)["status"] == "done"
    assert [row["name"] for row in fake_router.menus["/ppp/active"]] == ["bob"]
    assert session_row(engine, "81a0002f").terminate_cause == "Admin-Reset"
    assert ["/login", "=name=radbill", "=password=api-s3cret"] in fake_router.commands
    assert api_threads == [False], "the blocking RouterOS API must never run on the reactor thread"


@pytest_twisted.ensureDeferred
async def test_with_the_nas_down_the_job_is_retried_and_succeeds_exactly_once_when_it_is_back(
    engine, fake_nas, clock, worker
):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    job = queue(engine, customer_id=alice, action="coa", reason="fup", payload={"rate_limit": "2M/2M"})
    fake_nas.default = SILENT
    before = counted("coa", "retry")
    for attempt in (1, 2):
        result = worker.run_once()
        await let_requests_time_out(fake_nas, clock, 2)
        assert await result == 1
        row = job_row(engine, job)
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        assert "no answer after 2 transmissions 3s apart" in row["last_error"]
        delay = worker.retry_delay(attempt)
        assert utc(row["not_before"]) == datetime.fromtimestamp(clock.seconds() + delay, UTC)
        clock.advance(delay - 1)
        assert await worker.run_once() == 0, "not due before its backoff has passed"
        clock.advance(1)
    assert worker.retry_delay(1) == 10 and worker.retry_delay(2) == 20
    assert counted("coa", "retry") == before + 2
    fake_nas.default = ACK
    assert await worker.run_once() == 1
    assert (job_row(engine, job)["status"], job_row(engine, job)["attempts"]) == ("done", 3)
    clock.advance(3600)
    assert await worker.run_once() == 0
    assert [seen.answered for seen in fake_nas.received].count("ack") == 1, "carried out exactly once"
    assert len(fake_nas.received) == 5


@pytest_twisted.ensureDeferred
async def test_a_job_fails_after_its_last_attempt_with_the_last_error(engine, fake_nas, clock, worker):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    job = queue(engine, customer_id=alice, action="disconnect", reason="suspended")
    with engine.begin() as connection:
        connection.execute(update(enforcement_jobs).where(enforcement_jobs.c.id == job).values(attempts=2))
    fake_nas.default = nak(501)
    assert await worker.run_once() == 1
    row = job_row(engine, job)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert (
        row["last_error"] == "alice session s1 on 127.0.0.1: Disconnect-NAK Administratively-Prohibited (501)"
    )


@pytest_twisted.ensureDeferred
async def test_no_open_session_is_done_at_once(engine, fake_nas, worker):
    alice, _ = subscriber_online(engine, fake_nas, "old", stopped=True)
    job = queue(engine, customer_id=alice, action="disconnect", reason="expired")
    assert await worker.run_once() == 1
    assert job_row(engine, job)["status"] == "done"
    assert fake_nas.received == []


@pytest_twisted.ensureDeferred
async def test_a_dedupe_key_queues_a_job_once(engine, fake_nas, worker):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    first = queue(
        engine, customer_id=alice, action="disconnect", reason="quota", dedupe_key=f"quota:{alice}:2026-11-01"
    )
    again = queue(
        engine, customer_id=alice, action="disconnect", reason="quota", dedupe_key=f"quota:{alice}:2026-11-01"
    )
    assert first is not None and again is None
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert len(fake_nas.received) == 1


@pytest_twisted.ensureDeferred
async def test_coa_changes_the_rate_of_every_open_session(engine, fake_nas, worker):
    alice, _ = subscriber_online(engine, fake_nas, "s1", "s2")
    job = queue(engine, customer_id=alice, action="coa", reason="fup", payload={"rate_limit": "2M/2M"})
    restore = queue(engine, customer_id=alice, action="coa", reason="renewal")
    assert await worker.run_once() == 1
    assert job_row(engine, job)["status"] == "done"
    assert sorted(seen.attributes["Acct-Session-Id"][0] for seen in fake_nas.received) == ["s1", "s2"]
    assert {seen.attributes["Mikrotik-Rate-Limit"][0] for seen in fake_nas.received} == {"2M/2M"}
    assert await worker.run_once() == 1, "the customer's second job runs after the first"
    assert job_row(engine, restore)["status"] == "done"
    assert [seen.attributes["Mikrotik-Rate-Limit"][0] for seen in fake_nas.received[2:]] == ["10M/10M"] * 2, (
        "without a rate in the job, the package's rate now"
    )


@pytest_twisted.ensureDeferred
async def test_a_coa_nak_falls_back_to_a_disconnect(engine, fake_nas, worker):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    job = queue(engine, customer_id=alice, action="coa", reason="package_change")
    fake_nas.script = [nak(401)]
    assert await worker.run_once() == 1
    assert [seen.packet.code for seen in fake_nas.received] == [CoARequest, DisconnectRequest]
    assert job_row(engine, job)["payload"] == {"disconnected": ["s1"]}


@pytest_twisted.ensureDeferred
async def test_api_disable_and_enable_a_static_ip_customer(engine, fake_nas, fake_router, worker):
    shop, core = subscriber_online(
        engine, fake_nas, "h1", router=fake_router, user_name="shop", static_ip="203.0.113.9"
    )
    fake_router.add("/ip/hotspot/active", user="shop", address="203.0.113.9")
    disable = queue(engine, customer_id=shop, action="api_disable", reason="overdue", nas_id=core.id)
    assert await worker.run_once() == 1
    assert job_row(engine, disable)["status"] == "done"
    assert fake_router.menus["/ip/hotspot/active"] == []
    assert session_row(engine, "h1").terminate_cause == "Admin-Reset", "the API took it off: its row closes"
    (entry,) = fake_router.menus["/ip/firewall/address-list"]
    assert (entry["list"], entry["address"]) == ("radbill-blocked", "203.0.113.9")
    enable = queue(engine, customer_id=shop, action="api_enable", reason="paid", nas_id=core.id)
    assert await worker.run_once() == 1
    assert job_row(engine, enable)["status"] == "done"
    assert fake_router.menus["/ip/firewall/address-list"] == []


def test_a_claimed_job_is_hidden_from_other_workers_for_the_lease(engine):
    now, lease = datetime.now(UTC), timedelta(minutes=2)
    with engine.begin() as connection:
        first, second, later = (
            enqueue(
                connection,
                customer_id=add_customer(connection, name),
                action="disconnect",
                reason="expired",
                not_before=when,
            )
            for name, when in (("alice", None), ("bob", None), ("carol", now + timedelta(hours=1)))
        )
    with engine.begin() as connection:
        assert [job.id for job in claim_jobs(connection, now, 1, lease)] == [first]
    with engine.begin() as connection:
        assert [job.id for job in claim_jobs(connection, now, 10, lease)] == [second]
    with engine.begin() as connection:
        assert claim_jobs(connection, now + timedelta(minutes=1), 10, lease) == []
    with engine.begin() as connection:
        claimed = claim_jobs(connection, now + timedelta(minutes=3), 10, lease)
    assert [(job.id, job.attempts) for job in claimed] == [(first, 2), (second, 2)]
    assert later not in [job.id for job in claimed]


def test_a_customers_jobs_run_one_at_a_time_oldest_first(engine):
    now, lease = datetime.now(UTC), timedelta(minutes=2)
    with engine.begin() as connection:
        alice = add_customer(connection, "alice")
        suspend = enqueue(connection, customer_id=alice, action="api_disable", reason="overdue")
        renew = enqueue(connection, customer_id=alice, action="api_enable", reason="paid")
    with engine.begin() as connection:
        assert [job.id for job in claim_jobs(connection, now, 10, lease)] == [suspend]
        mark_retry(connection, suspend, "timeout", now + timedelta(seconds=10), {})
    with engine.begin() as connection:
        assert claim_jobs(connection, now + timedelta(seconds=5), 10, lease) == [], (
            "the renewal waits for the suspension"
        )
    with engine.begin() as connection:
        assert [job.id for job in claim_jobs(connection, now + timedelta(seconds=10), 10, lease)] == [suspend]
        mark_done(connection, suspend, now)
    with engine.begin() as connection:
        assert [job.id for job in claim_jobs(connection, now + timedelta(seconds=10), 10, lease)] == [renew]


def test_concurrent_claims_skip_each_others_locked_rows(engine):
    if is_sqlite(engine):
        pytest.skip("SQLite serialises writers at BEGIN IMMEDIATE; SKIP LOCKED is PostgreSQL's")
    now = datetime.now(UTC)
    with engine.begin() as connection:
        ids = [
            enqueue(
                connection, customer_id=add_customer(connection, name), action="disconnect", reason="expired"
            )
            for name in ("alice", "bob")
        ]
    with engine.begin() as one, engine.begin() as two:
        two.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # waiting on a lock fails rather than hangs
        mine = claim_jobs(one, now, 1, timedelta(minutes=2))
        theirs = claim_jobs(two, now, 10, timedelta(minutes=2))
    assert [job.id for job in mine] == ids[:1] and [job.id for job in theirs] == ids[1:]


@pytest_twisted.ensureDeferred
async def test_started_worker_polls_until_stopped(engine, fake_nas, clock, worker):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    worker.start()
    clock.advance(0)
    job = queue(engine, customer_id=alice, action="coa", reason="fup", payload={"rate_limit": "2M/2M"})

    def polled_until_done():
        clock.advance(worker.poll_interval)
        return job_row(engine, job)["status"] == "done"

    await wait_until(polled_until_done, what="the polling worker to finish the job")
    await worker.stop()
    assert len(fake_nas.received) == 1


def test_a_set_of_jobs_is_queued_in_one_statement_and_never_twice(engine):
    with engine.begin() as connection:
        ids = [add_customer(connection, name) for name in ("ann", "ben")]
        jobs = select(
            customers.c.id.label("customer_id"),
            literal("disconnect").label("action"),
            literal("expired").label("reason"),
            (literal("expired:") + cast(customers.c.id, String)).label("dedupe_key"),
        ).where(customers.c.id.in_(ids))
        assert enqueue_selected(connection, jobs) == 2
        assert enqueue_selected(connection, jobs) == 0
        queued = connection.execute(select(enforcement_jobs.c.customer_id, enforcement_jobs.c.status)).all()
    assert sorted(queued) == [(ids[0], "pending"), (ids[1], "pending")]


@pytest_twisted.ensureDeferred
async def test_a_static_customer_without_sessions_is_blocked_on_every_nas_with_an_api(
    engine, database, fake_nas, fake_router, clock, coa
):
    shop, _ = subscriber_online(engine, fake_nas, router=fake_router, static_ip="203.0.113.9")
    with engine.begin() as connection:
        add_nas(connection, "edge2", "127.0.0.2", "other-secret")  # RADIUS only: not asked
    fake_router.add("/queue/simple", name="shop", target="203.0.113.9/32", disabled="no")
    settings = NasSettings(max_attempts=3, coa_timeout=COA_TIMEOUT, coa_retries=1, block_queue=True)
    worker = EnforcementWorker(database, settings, reactor=reactor, clock=clock, coa=coa)
    disable = queue(engine, customer_id=shop, action="api_disable", reason="overdue")
    assert await worker.run_once() == 1
    assert job_row(engine, disable)["status"] == "done"
    (entry,) = fake_router.menus["/ip/firewall/address-list"]
    assert (entry["list"], entry["address"]) == ("radbill-blocked", "203.0.113.9")
    assert fake_router.menus["/queue/simple"][0]["disabled"] == "yes"
    assert (
        REGISTRY.get_sample_value(
            "radbill_nas_actions_total", {"nas": "core1", "action": "api_disable", "result": "ok"}
        )
        >= 1
    )
    enable = queue(engine, customer_id=shop, action="api_enable", reason="paid")
    assert await worker.run_once() == 1
    assert job_row(engine, enable)["status"] == "done"
    assert fake_router.menus["/ip/firewall/address-list"] == []
    assert fake_router.menus["/queue/simple"][0]["disabled"] == "no"
    assert REGISTRY.get_sample_value("radbill_nas_outbox_backlog", {"action": "api_enable"}) == 0


@pytest_twisted.ensureDeferred
async def test_the_backlog_by_action_is_a_gauge(engine, fake_nas, clock, worker):
    alice, _ = subscriber_online(engine, fake_nas, "s1")
    queued_at = datetime.fromtimestamp(clock.seconds(), UTC) - timedelta(seconds=90)
    with engine.begin() as connection:
        for _ in range(2):
            job = enqueue(connection, customer_id=alice, action="disconnect", reason="suspended")
            connection.execute(
                update(enforcement_jobs)
                .where(enforcement_jobs.c.id == job)
                .values(created_at=queued_at, not_before=queued_at + timedelta(hours=1))
            )
    assert await worker.run_once() == 0
    assert REGISTRY.get_sample_value("radbill_nas_outbox_backlog", {"action": "disconnect"}) == 2
    assert REGISTRY.get_sample_value("radbill_nas_outbox_backlog", {"action": "coa"}) == 0
    oldest = "radbill_nas_outbox_oldest_pending_seconds"
    assert REGISTRY.get_sample_value(oldest, {"action": "disconnect"}) == 90
    assert REGISTRY.get_sample_value(oldest, {"action": "coa"}) == 0
