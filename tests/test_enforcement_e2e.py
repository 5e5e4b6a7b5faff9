"""The router matches the books, end to end, on SQLite and PostgreSQL.

Billing (the daily run, the lifecycle commands) and radiusd's accounting
queue jobs in their own transactions; the enforcement worker, on the real
reactor and clock, carries them out against the fake NAS (RFC 5176 over UDP,
authenticators checked) and the fake RouterOS router (the API wire protocol,
driven by librouteros).
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
import pytest_twisted
from pyrad.packet import CoARequest, DisconnectRequest
from sqlalchemy import insert, select, update
from twisted.internet import reactor, task

from billingd import lifecycle, runs, wallets
from billingd.customers import Calendar
from billingd.enforcement import restore
from nas.registry import add_nas, update_nas
from nas.worker import EnforcementWorker
from schema.engine import as_utc
from schema.pool import Pool
from schema.settings import NasSettings
from schema.tables import customer_usage, enforcement_jobs, master_packages, sessions
from tests.accounting_helpers import acct, request_file, send_file
from tests.billing_world import (
    MEGABIT,
    NOW,
    SETTINGS,
    TODAY,
    ZONE,
    actor,
    add_customer_of,
    build,
    customer,
    on,
)
from tests.fakes.nas import SECRET, FakeNas
from tests.test_accounting_radiusd import radiusd  # noqa: F401 (the fixture: the demo ISP and radbill radiusd)

pytestmark = pytest.mark.daemon

FAST = NasSettings(
    poll_interval=0.05,
    coa_timeout=0.2,
    coa_retries=1,
    api_timeout=2.0,
    stop_deadline=0.3,
    retry_delay=0.2,
    retry_max=1.0,
    lease=10.0,
)


@pytest.fixture
def worker(engine):
    database = Pool(engine, reactor, name="nas-db")
    worker = EnforcementWorker(database, FAST, zone=ZONE, reactor=reactor)
    worker.start()
    yield worker
    pytest_twisted.blockon(worker.stop())
    database.close()


def world(engine, fake_nas, fake_router, *, secret: bytes = SECRET) -> None:
    """billing_world's ISP, served by one NAS (the fake NAS, with the fake router's API)."""
    with engine.begin() as connection:
        build(connection)
        add_nas(
            connection,
            "core1",
            "127.0.0.1",
            secret.decode(),
            coa_port=fake_nas.port_number,
            api_host="127.0.0.1",
            api_port=fake_router.port,
            api_user=fake_router.user,
            api_password=fake_router.password,
        )


def alice_online(engine, fake_nas, fake_router, session_id: str):
    """The world, and alice (reseller1's, one period bought, wallet empty) online; reseller1's actor."""
    world(engine, fake_nas, fake_router)
    with engine.begin() as connection:
        reseller1 = add_customer_of(connection, "reseller1", "alice", on(0))
    online(engine, "alice", session_id)
    return reseller1


def online(engine, username: str, session_id: str, address: str = "100.64.0.7") -> None:
    """The customer's session as radiusd's accounting opened it."""
    with engine.begin() as connection:
        row = customer(connection, username)
        connection.execute(
            insert(sessions).values(
                acct_unique_id=f"u-{session_id}",
                acct_session_id=session_id,
                nas_ip_address="127.0.0.1",
                customer_id=row["id"],
                username=username,
                framed_ip_address=address,
            )
        )


def set_master(connection, name: str, **values) -> None:
    connection.execute(update(master_packages).where(master_packages.c.name == name).values(**values))


def jobs(engine, username: str) -> list:
    with engine.connect() as connection:
        customer_id = customer(connection, username)["id"]
        return (
            connection.execute(
                select(enforcement_jobs)
                .where(enforcement_jobs.c.customer_id == customer_id)
                .order_by(enforcement_jobs.c.id)
            )
            .mappings()
            .all()
        )


async def until(predicate, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.02, lambda: None)


def all_done(engine, username: str) -> bool:
    return all(job["status"] == "done" for job in jobs(engine, username))


@pytest_twisted.ensureDeferred
async def test_a_daily_customer_expires_in_a_billing_run_and_the_disconnect_arrives(
    engine, fake_nas, fake_router, worker
):
    alice_online(engine, fake_nas, fake_router, "81a00001")
    with engine.begin() as connection:
        runs.run_day(connection, TODAY + timedelta(days=30), SETTINGS, now=NOW + timedelta(days=30))
        assert customer(connection, "alice")["status_reason"] == "expired"
    await until(lambda: fake_nas.received, "the Disconnect-Request")
    (seen,) = fake_nas.received
    assert seen.packet.code == DisconnectRequest and seen.authenticator_ok and seen.message_authenticator_ok
    assert (seen.attributes["User-Name"], seen.attributes["Acct-Session-Id"]) == (["alice"], ["81a00001"])
    with engine.begin() as connection:  # the Accounting-Stop arrives
        connection.execute(update(sessions).values(stopped_at=datetime.now(UTC)))
    await until(lambda: all_done(engine, "alice"), "the disconnect to be done")
    assert [(job["action"], job["reason"]) for job in jobs(engine, "alice")] == [("disconnect", "expired")]
    assert len(fake_nas.received) == 1


@pytest_twisted.ensureDeferred
async def test_a_package_change_is_a_rate_coa_not_a_disconnect(engine, fake_nas, fake_router, worker):
    world(engine, fake_nas, fake_router)
    with engine.begin() as connection:
        set_master(connection, "Lite 5M", rate_rx=5 * MEGABIT, rate_tx=5 * MEGABIT)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on(0))
    online(engine, "alice", "81a00002")
    with engine.begin() as connection:
        lifecycle.change_package(connection, reseller1, "alice", "Lite 5M", on(3))
    await until(lambda: all_done(engine, "alice"), "the package change to reach the router")
    (seen,) = fake_nas.received
    assert seen.packet.code == CoARequest
    assert seen.attributes["Mikrotik-Rate-Limit"] == ["5M/5M"]
    assert seen.attributes["Acct-Session-Id"] == ["81a00002"]


@pytest_twisted.ensureDeferred
async def test_an_overdue_static_customer_is_on_the_blocked_list_until_it_pays(
    engine, fake_nas, fake_router, worker
):
    world(engine, fake_nas, fake_router)
    with engine.begin() as connection:
        reseller1 = actor(connection, "reseller1")
        lifecycle.add_customer(
            connection,
            reseller1,
            "shop",
            password="pw",
            package="Office",
            calendar=on(1),
            static_ip="203.0.113.9",
        )
        for day in (1, 31):  # an enabled day, then the cycle day's invoice
            runs.run_day(connection, TODAY + timedelta(days=day), SETTINGS, now=NOW + timedelta(days=day))
    overdue = 31 + 7 + SETTINGS.grace_days + 1
    with engine.begin() as connection:
        runs.run_day(connection, TODAY + timedelta(days=overdue), SETTINGS, now=NOW + timedelta(days=overdue))
        assert customer(connection, "shop")["status_reason"] == "overdue"
    blocked = fake_router.menus["/ip/firewall/address-list"]
    await until(lambda: blocked, "the static address on the blocked list")
    (entry,) = fake_router.menus["/ip/firewall/address-list"]
    assert (entry["list"], entry["address"]) == ("radbill-blocked", "203.0.113.9")
    assert entry["comment"] == "radbill: shop (overdue)"
    await until(lambda: all_done(engine, "shop"), "the block to be done")

    with engine.begin() as connection:
        wallets.receive_payment(connection, reseller1, "shop", 200_000, on(overdue))
        assert customer(connection, "shop")["status"] == "active"
    await until(
        lambda: not fake_router.menus["/ip/firewall/address-list"], "the address off the blocked list"
    )
    await until(lambda: all_done(engine, "shop"), "the unblock to be done")
    assert [(job["action"], job["reason"]) for job in jobs(engine, "shop")] == [
        ("disconnect", "overdue"),
        ("api_disable", "overdue"),
        ("coa", "reactivated"),
        ("api_enable", "reactivated"),
    ]
    assert fake_nas.received == [], "a static line has no session to disconnect"


@pytest_twisted.ensureDeferred
async def test_an_acked_disconnect_without_a_stop_is_followed_by_the_api_check(
    engine, fake_nas, fake_router, worker
):
    reseller1 = alice_online(engine, fake_nas, fake_router, "81a00003")
    fake_router.add("/ppp/active", name="alice", service="pppoe", address="100.64.0.7")
    with engine.begin() as connection:
        lifecycle.suspend(connection, reseller1, "alice", on(2))
    await until(lambda: fake_nas.received, "the Disconnect-Request")
    assert fake_router.menus["/ppp/active"], "nothing is asked of the API before the deadline"
    await until(lambda: all_done(engine, "alice"), "the API check")
    assert fake_router.menus["/ppp/active"] == []
    assert ["/ppp/active/print", "=.proplist=.id", "?=name=alice"] in fake_router.commands
    assert [seen.answered for seen in fake_nas.received] == ["ack"]
    with engine.connect() as connection:
        closed = connection.execute(select(sessions).where(sessions.c.acct_session_id == "81a00003")).one()
    assert (closed.stopped_at is not None, closed.terminate_cause) == (True, "Admin-Reset"), (
        "the API's word closes the session: it is no longer online"
    )


@pytest_twisted.ensureDeferred
async def test_with_the_nas_down_the_job_retries_and_succeeds_exactly_once_when_it_is_back(
    engine, fake_nas, fake_router, worker
):
    reseller1 = alice_online(engine, fake_nas, fake_router, "81a00004")
    with engine.begin() as connection:
        update_nas(connection, "core1", api_user="")  # RADIUS only: no API to fall back on
    port = fake_nas.port_number
    fake_nas.port.stopListening()
    with engine.begin() as connection:
        lifecycle.change_package(connection, reseller1, "alice", "Lite 5M", on(3))
    await until(lambda: jobs(engine, "alice")[0]["attempts"] >= 2, "two failed attempts")
    (job,) = jobs(engine, "alice")
    assert job["status"] == "pending" and "no answer" in job["last_error"]
    fake_nas.port = reactor.listenUDP(port, fake_nas, interface="127.0.0.1")  # the NAS is back
    await until(lambda: all_done(engine, "alice"), "the job to succeed")
    await task.deferLater(reactor, 0.5, lambda: None)
    assert [seen.answered for seen in fake_nas.received] == ["ack"], "sent once it was back, acted on once"


@pytest.fixture
def demo_nas(engine, fake_router):
    """The demo's NAS (127.0.0.1, secret testing123): its CoA port a fake NAS with that secret."""
    nas = FakeNas(b"testing123")
    port = nas.listen(reactor)
    with engine.begin() as connection:
        update_nas(connection, "demo-nas", coa_port=port)
    yield nas
    nas.port.stopListening()


@pytest.mark.interop  # radbill radiusd and radclient
@pytest_twisted.ensureDeferred
async def test_an_over_quota_interim_gets_the_fair_usage_coa_and_the_next_period_restores_the_rate(
    engine,
    radiusd,  # noqa: F811 (the imported fixture)
    demo_nas,
    worker,
    tmp_path,
):
    with engine.begin() as connection:
        set_master(connection, "PPPoE 20M 100G", quota_bytes=10**6)
        admin = actor(connection, "admin")
        lifecycle.change_package(
            connection, admin, "demo", "PPPoE 20M 100G", Calendar(datetime.now(UTC), ZONE)
        )
    start = acct("Start", "d0000001", **{"Framed-IP-Address": "100.64.0.9"})
    interim = acct(
        "Interim-Update", "d0000001", **{"Acct-Input-Octets": 400_000, "Acct-Output-Octets": 700_000}
    )
    result = send_file(radiusd.acct_port, request_file(tmp_path / "acct.txt", [start, interim]))
    assert result.returncode == 0, result.stdout + result.stderr
    await until(lambda: demo_nas.received, "the fair-usage CoA")
    throttle = demo_nas.received[0]
    assert throttle.packet.code == CoARequest
    assert throttle.attributes["Mikrotik-Rate-Limit"] == ["2M/2M"]
    assert throttle.attributes["Acct-Session-Id"] == ["d0000001"]
    await until(lambda: all_done(engine, "demo"), "the fair-usage CoA to be done")

    with engine.connect() as connection:
        demo = customer(connection, "demo")
        throttled_period = connection.execute(
            select(customer_usage.c.period_start).where(customer_usage.c.customer_id == demo["id"])
        ).scalar()
    next_period = as_utc(demo["expires_at"]) + timedelta(days=1)
    day = next_period.astimezone(ZONE).date()
    with engine.begin() as connection:
        runs.run_day(connection, day, SETTINGS, now=next_period)
    await until(lambda: all_done(engine, "demo"), "the package rate restored")
    restore = demo_nas.received[-1]
    assert restore.packet.code == CoARequest, "restored in place, not by a reconnect"
    assert restore.attributes["Mikrotik-Rate-Limit"] == ["20M/20M"]
    assert restore.attributes["Acct-Session-Id"] == ["d0000001"]
    assert {seen.packet.code for seen in demo_nas.received} == {CoARequest}
    assert [(job["action"], job["reason"]) for job in jobs(engine, "demo")][-1] == ("coa", "new_period")
    assert throttled_period < day


@pytest_twisted.ensureDeferred
async def test_a_renewal_gives_a_throttled_customer_the_package_rate_back_by_coa(
    engine, fake_nas, fake_router, worker
):
    world(engine, fake_nas, fake_router)
    with engine.begin() as connection:
        set_master(connection, "Home 10M", quota_bytes=10**6, fup_rx=2 * MEGABIT, fup_tx=2 * MEGABIT)
        reseller1 = add_customer_of(connection, "reseller1", "alice", on(0))
        alice = customer(connection, "alice")
        connection.execute(
            insert(customer_usage).values(
                customer_id=alice["id"],
                period_start=TODAY,
                upload_bytes=10**6,
                download_bytes=10**6,
                quota_enforced_at=datetime.now(UTC),
            )
        )
    online(engine, "alice", "81a00005")
    with engine.begin() as connection:  # a CoA now keeps the fair-usage rate: this period is over quota
        restore(connection, alice["id"], "resumed", "test")
    await until(lambda: all_done(engine, "alice"), "the CoA in the throttled period")
    with engine.begin() as connection:
        lifecycle.renew(connection, reseller1, "alice", on(5), cash=True)
    await until(lambda: all_done(engine, "alice"), "the renewal to reach the router")
    assert [seen.attributes["Mikrotik-Rate-Limit"] for seen in fake_nas.received] == [["2M/2M"], ["10M/10M"]]
    assert {seen.packet.code for seen in fake_nas.received} == {CoARequest}
    assert [(job["action"], job["reason"]) for job in jobs(engine, "alice")][-1] == ("coa", "renewal")
