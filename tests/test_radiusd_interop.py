"""``radbill radiusd`` as a subprocess, asked by FreeRADIUS's radtest and radclient.

Runs on SQLite and on PostgreSQL. The subscribers are the demo ISP plus one
customer per rule, built as an operator would (billingd.isp's builder and
``customer import``); the real-time tests change subscribers with the real
``radbill customer`` commands.
"""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from billingd import lifecycle
from billingd import operators as operator_domain
from billingd.customer_files import import_customers, read_rows
from billingd.customers import Calendar
from billingd.isp import IspPlan, OperatorPlan, PackagePlan, extend_isp
from cli.demo import DEMO_ZONE, load_demo
from radiusd.codec import mschap
from schema.changes import record_change_ids
from schema.tables import customer_usage, customers, radpostauth, sessions
from schema.tenancy import resolve_actor
from tests.radius import RadiusdProcess, metric, pap, radclient, radtest, wait_for_change, write_config

pytestmark = pytest.mark.interop

MEGABIT = 1_000_000
QUOTA = 5 * 2**32 + 7


def rates(megabits: int) -> dict:
    return dict(rate_rx=megabits * MEGABIT, rate_tx=megabits * MEGABIT)


# The demo ISP's admin adds a reseller (blocked once its customer is in) and a package per rule.
RULES_ISP = IspPlan(
    operators=(OperatorPlan("blockedres", "reseller", fund=100_000),),
    packages=(
        PackagePlan(
            "Quota",
            dict(
                customer_type="pppoe",
                billing_type="daily",
                **rates(20),
                quota_bytes=QUOTA,
                fup_rx=2 * MEGABIT,
                fup_tx=MEGABIT,
                ip_pool="pool-q",
                profile="gold",
                address_list="quota-users",
                burst_rx=40 * MEGABIT,
                burst_tx=40 * MEGABIT,
                burst_threshold_rx=15 * MEGABIT,
                burst_threshold_tx=15 * MEGABIT,
                burst_time_rx=16,
                burst_time_tx=16,
                priority=5,
            ),
            500_00,
        ),
        PackagePlan(
            "Hard quota",
            dict(customer_type="pppoe", billing_type="daily", **rates(20), quota_bytes=1000),
            500_00,
        ),
        PackagePlan("Static", dict(customer_type="static", billing_type="monthly", **rates(20)), 1000_00),
        PackagePlan(
            "Plain",
            dict(customer_type="pppoe", billing_type="daily", **rates(10)),
            500_00,
            {"blockedres": 400_00},
        ),
    ),
)


def rule_customers(now: datetime) -> str:
    """One customer per rule, in radbill's import format (``radbill customer import``):
    statuses, an expiry an hour ago, wallets, a MAC, a static IP, an owner."""
    ahead = (now + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S")
    gone = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    rows = [
        # username, package, owner, mac, static_ip, expires_at, balance, status
        ("alice", "Quota", "", "", "", ahead, "100.00", "active"),
        ("fupper", "Quota", "", "", "", ahead, "100.00", "active"),
        ("capped", "Hard quota", "", "", "", ahead, "100.00", "active"),
        ("disabled1", "PPPoE 10M", "", "", "", ahead, "100.00", "disabled"),
        ("suspended1", "PPPoE 10M", "", "", "", ahead, "100.00", "suspended"),
        ("deleted1", "PPPoE 10M", "", "", "", ahead, "100.00", "active"),
        ("broke", "PPPoE 10M", "", "", "", gone, "", "active"),
        ("lapsed", "PPPoE 10M", "", "", "", gone, "100.00", "active"),
        ("macbound", "PPPoE 10M", "", "AA:BB:CC:DD:EE:FF", "", ahead, "100.00", "active"),
        ("busy", "PPPoE 10M", "", "", "", ahead, "100.00", "active"),
        ("hotspot1", "Hotspot 5M", "", "", "", ahead, "100.00", "active"),
        ("static1", "Static", "", "", "10.20.30.40", ahead, "", "active"),
        ("blocked1", "Plain", "blockedres", "", "", ahead, "100.00", "active"),
    ]
    header = "username,password,package,owner,mac,static_ip,expires_at,balance,status"
    lines = [f"{name},{name},{package}," + ",".join(columns) for name, package, *columns in rows]
    return "\n".join([header, *lines]) + "\n"


@pytest.fixture
def isp(engine):
    """The demo ISP, a package and a customer per rule, built as an operator would (the test-ISP
    builder, ``customer import``, ``customer delete``, ``operator block``); then the usage and the
    open session radiusd's accounting would have written."""
    now = datetime.now(UTC)
    today = now.date()
    calendar = Calendar(now, DEMO_ZONE)
    with engine.begin() as connection:
        load_demo(connection, now)
        extend_isp(connection, RULES_ISP, calendar.today)
        admin = resolve_actor(connection, "admin")
        rows, problems = read_rows(rule_customers(now), "radbill")
        result = import_customers(connection, admin, rows, calendar=calendar, source="test")
        assert not problems and not result.problems, (problems, result.problems)
        lifecycle.delete_customer(connection, admin, "deleted1", calendar)
        operator_domain.set_status(connection, admin, "blockedres", "blocked")
        ids = dict(connection.execute(select(customers.c.username, customers.c.id)).all())
        connection.execute(
            insert(customer_usage),
            [
                dict(customer_id=ids["alice"], period_start=today, upload_bytes=2**32, download_bytes=0),
                dict(customer_id=ids["fupper"], period_start=today, upload_bytes=QUOTA, download_bytes=1),
                dict(customer_id=ids["capped"], period_start=today, upload_bytes=600, download_bytes=400),
            ],
        )
        connection.execute(
            insert(sessions).values(
                acct_unique_id="busy-1",
                acct_session_id="1",
                nas_ip_address="127.0.0.1",
                customer_id=ids["busy"],
                username="busy",
                started_at=now,
            )
        )
    return ids


@pytest.fixture
def radiusd(tmp_path, database_url, isp):
    config, values = write_config(tmp_path, database_url, interim_interval=120)
    with RadiusdProcess(config, tmp_path / "radiusd.log") as process:
        process.port = values["auth_port"]
        process.metrics_port = values["metrics_port"]
        yield process


def test_pap_accept_carries_the_package(radiusd, engine):
    reply = radtest(radiusd.port, "demo", "demo")
    assert reply.code == "Access-Accept"
    assert reply["Mikrotik-Rate-Limit"] == "10M/10M"
    assert reply["Acct-Interim-Interval"] == "120"
    with engine.connect() as connection:
        expires_at = connection.execute(
            select(customers.c.expires_at).where(customers.c.username == "demo")
        ).scalar_one()
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    left = (expires_at - datetime.now(UTC)).total_seconds()
    assert left - 60 < int(reply["Session-Timeout"]) <= left + 1
    assert "Message-Authenticator" in reply.attributes


def test_chap_and_mschap1_with_radtest(radiusd):
    assert radtest(radiusd.port, "demo", "demo", "chap").code == "Access-Accept"
    assert radtest(radiusd.port, "demo", "wrong", "chap").code == "Access-Reject"
    accept = radtest(radiusd.port, "DEMO", "demo", "mschap")
    assert accept.code == "Access-Accept" and "MS-CHAP-MPPE-Keys" in accept.attributes
    assert radtest(radiusd.port, "demo", "wrong", "mschap").code == "Access-Reject"


def test_mschap2_success_and_mppe_keys(radiusd):
    challenge, peer = os.urandom(16), os.urandom(16)
    password_hash = mschap.nt_password_hash("demo")
    nt = mschap.generate_nt_response(challenge, peer, "demo", password_hash)
    reply = radclient(
        radiusd.port,
        [
            'User-Name = "demo"',
            f"MS-CHAP-Challenge = 0x{challenge.hex()}",
            f"MS-CHAP2-Response = 0x{(bytes([5, 0]) + peer + bytes(8) + nt).hex()}",
            "Framed-Protocol = PPP",
            "Service-Type = Framed-User",
            "Message-Authenticator = 0x00",
        ],
    )
    assert reply.code == "Access-Accept"
    success = bytes([5]) + mschap.generate_authenticator_response(password_hash, nt, peer, challenge, "demo")
    assert reply["MS-CHAP2-Success"] == "0x" + success.hex()
    master = mschap.master_key(mschap.MD4.new(password_hash).digest(), nt)
    # radclient knows these are salt-encrypted (RFC 2548) and prints them decrypted
    assert (
        reply["MS-MPPE-Send-Key"]
        == "0x" + mschap.asymmetric_start_key(master, 16, is_send=True, is_server=True).hex()
    )
    assert (
        reply["MS-MPPE-Recv-Key"]
        == "0x" + mschap.asymmetric_start_key(master, 16, is_send=False, is_server=True).hex()
    )


def test_wrong_secret_gets_no_answer(radiusd):
    assert pap(radiusd.port, "demo", "demo", secret="not-the-secret", timeout=0.5) is None
    assert pap(radiusd.port, "demo", "demo").code == "Access-Accept"


REJECTS = [
    ("nobody", "nobody", (), "unknown_user"),
    ("demo", "wrong", (), "wrong_password"),
    ("disabled1", "disabled1", (), "disabled"),
    ("suspended1", "suspended1", (), "suspended"),
    ("lapsed", "lapsed", (), "expired"),
    ("deleted1", "deleted1", (), "deleted"),
    ("broke", "broke", (), "balance_exhausted"),
    ("capped", "capped", (), "quota_exhausted"),
    ("macbound", "macbound", ('Calling-Station-Id = "11-22-33-44-55-66"',), "mac_mismatch"),
    ("busy", "busy", (), "simultaneous_use"),
    ("hotspot1", "hotspot1", ("Framed-Protocol = PPP",), "wrong_service"),
    ("blocked1", "blocked1", (), "operator_blocked"),
]


def test_every_reject_reason(radiusd, engine):
    """One server for all of them: each is a Reject with a Reply-Message,
    counted by reason, and written to radpostauth with its reason."""
    for username, password, extra, _reason in REJECTS:
        reply = pap(radiusd.port, username, password, *extra)
        assert reply.code == "Access-Reject", (username, reply)
        assert reply.get("Reply-Message"), username
    time.sleep(0.7)  # radpostauth is written in batches
    for _, _, _, reason in REJECTS:
        assert metric(radiusd.metrics_port, "radbill_radiusd_rejects_total", {"reason": reason}) == 1, reason
    with engine.connect() as connection:
        rows = connection.execute(
            select(radpostauth.c.username, radpostauth.c.reason, radpostauth.c.reply)
        ).all()
    assert sorted(rows) == sorted((username, reason, "Access-Reject") for username, _, _, reason in REJECTS)


def test_unsupported_method_is_rejected(radiusd):
    reply = radclient(radiusd.port, ['User-Name = "demo"', "Message-Authenticator = 0x00"])
    assert reply.code == "Access-Reject"
    assert reply["Reply-Message"] == "Authentication method not supported"


def test_mac_binding_accepts_the_bound_device(radiusd):
    assert (
        pap(radiusd.port, "macbound", "macbound", 'Calling-Station-Id = "aa-bb-cc-dd-ee-ff"').code
        == "Access-Accept"
    )


def test_quota_pool_group_and_address_list(radiusd):
    reply = pap(radiusd.port, "alice", "alice")
    assert reply.code == "Access-Accept"
    assert reply["Mikrotik-Rate-Limit"] == "20M/20M 40M/40M 15M/15M 16/16 5"
    remaining = QUOTA - 2**32
    assert int(reply["Mikrotik-Total-Limit"]) == remaining & 0xFFFFFFFF
    assert int(reply["Mikrotik-Total-Limit-Gigawords"]) == remaining >> 32
    assert (reply["Framed-Pool"], reply["Mikrotik-Group"], reply["Mikrotik-Address-List"]) == (
        "pool-q",
        "gold",
        "quota-users",
    )


def test_over_quota_gets_the_fair_usage_rate(radiusd):
    reply = pap(radiusd.port, "fupper", "fupper")
    assert reply.code == "Access-Accept"
    assert reply["Mikrotik-Rate-Limit"] == "2M/1M"
    assert reply.get("Mikrotik-Total-Limit") is None


def test_static_customer_gets_its_address(radiusd):
    reply = pap(radiusd.port, "static1", "static1", "Framed-Protocol = PPP")
    assert reply.code == "Access-Accept"
    assert reply["Framed-IP-Address"] == "10.20.30.40"


def test_expired_restrict_policy(tmp_path, database_url, isp):
    config, values = write_config(
        tmp_path,
        database_url,
        expired_policy="restrict",
        expired_pool="expired-pool",
        expired_address_list="captive",
        expired_rate="256k",
    )
    with RadiusdProcess(config, tmp_path / "radiusd.log"):
        reply = pap(values["auth_port"], "expired", "expired")
    assert reply.code == "Access-Accept"
    assert (reply["Mikrotik-Rate-Limit"], reply["Framed-Pool"], reply["Mikrotik-Address-List"]) == (
        "256k/256k",
        "expired-pool",
        "captive",
    )


@pytest.mark.parametrize(
    ("command", "before", "after"),
    [
        (("customer", "suspend", "demo"), "Access-Accept", "Access-Reject"),
        (
            ("customer", "reset-password", "demo", "--password", "new-password"),
            "Access-Accept",
            "Access-Reject",
        ),
        (("customer", "delete", "demo"), "Access-Accept", "Access-Reject"),
        (("customer", "renew", "expired", "--cash"), "Access-Reject", "Access-Accept"),
    ],
)
def test_a_cli_change_decides_the_next_request_within_a_second(radiusd, cli, command, before, after):
    """radtest before and after a real ``radbill customer ...`` in another process."""
    username = command[2]
    assert radtest(radiusd.port, username, username).code == before
    cli(*command)
    wait_for_change(lambda: radtest(radiusd.port, username, username).code == after)


def test_resume_takes_effect_within_a_second(radiusd, cli):
    cli("customer", "suspend", "demo")
    wait_for_change(lambda: radtest(radiusd.port, "demo", "demo").code == "Access-Reject")
    cli("customer", "resume", "demo")
    wait_for_change(lambda: radtest(radiusd.port, "demo", "demo").code == "Access-Accept")


def isp_id(connection, username: str) -> int:
    return connection.execute(select(customers.c.id).where(customers.c.username == username)).scalar_one()


def test_nas_secret_changed_with_the_cli_is_served_within_a_second(radiusd, cli):
    cli("nas", "set", "demo-nas", "--secret", "fresh-secret")
    # each probe that gets no answer costs its 0.2 s timeout on top of the change itself
    wait_for_change(
        lambda: pap(radiusd.port, "demo", "demo", secret="fresh-secret", timeout=0.2) is not None, timeout=1.5
    )
    assert pap(radiusd.port, "demo", "demo", timeout=0.2) is None


def test_open_sessions_written_by_accounting_count_within_a_second(radiusd, engine):
    assert radtest(radiusd.port, "demo", "demo").code == "Access-Accept"
    with engine.begin() as connection:  # as another radiusd's accounting writes it
        customer_id = isp_id(connection, "demo")
        connection.execute(
            insert(sessions).values(
                acct_unique_id="demo-1",
                acct_session_id="1",
                nas_ip_address="127.0.0.1",
                customer_id=customer_id,
                username="demo",
                started_at=datetime.now(UTC),
            )
        )
        record_change_ids(connection, "sessions", [customer_id])
    wait_for_change(lambda: radtest(radiusd.port, "demo", "demo").code == "Access-Reject", timeout=1.5)


@pytest.mark.postgresql
def test_database_outage_keeps_answering_from_the_last_state(tmp_path, request, isp):
    database_url = request.getfixturevalue("database_url")
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL can be stopped by the test")
    pg_server = request.getfixturevalue("pg_server")
    config, values = write_config(tmp_path, database_url)
    with RadiusdProcess(config, tmp_path / "radiusd.log") as process:
        pg_server.stop()
        try:
            wait_for_change(
                lambda: metric(values["metrics_port"], "radbill_radiusd_database_up") == 0, timeout=5
            )
            assert pap(values["auth_port"], "demo", "demo").code == "Access-Accept"
            assert pap(values["auth_port"], "expired", "expired").code == "Access-Reject"
            assert "database unreachable" in process.log()
        finally:
            pg_server.start()
        wait_for_change(
            lambda: metric(values["metrics_port"], "radbill_radiusd_database_up") == 1, timeout=10
        )
        assert pap(values["auth_port"], "demo", "demo").code == "Access-Accept"


def test_workers_share_the_port(tmp_path, database_url, isp):
    config, values = write_config(tmp_path, database_url, workers=2)
    with RadiusdProcess(config, tmp_path / "radiusd.log") as process:
        wait_for_change(lambda: process.log().count("answering authentication") == 2, timeout=60)
        replies = [pap(values["auth_port"], "demo", "demo") for _ in range(12)]
        assert all(reply is not None and reply.code == "Access-Accept" for reply in replies)
        served = [
            metric(values["metrics_port"] + worker, "radbill_radiusd_requests_total") or 0
            for worker in (0, 1)
        ]
    assert sum(served) == 12 and all(served), served


def test_ipv6_and_ipv4_on_one_dual_stack_socket(tmp_path, database_url, isp, cli):
    cli("nas", "add", "v6-nas", "--ip", "::1", "--secret", "v6-secret")
    config, values = write_config(tmp_path, database_url, bind="::")
    with RadiusdProcess(config, tmp_path / "radiusd.log"):
        assert (
            pap(values["auth_port"], "demo", "demo", host="[::1]", secret="v6-secret").code == "Access-Accept"
        )
        assert pap(values["auth_port"], "demo", "demo").code == "Access-Accept"  # 127.0.0.1, IPv4-mapped


def test_a_port_in_use_stops_radiusd_with_an_error(tmp_path, database_url, isp):
    import socket
    import subprocess

    from tests.conftest import RADBILL, REPOSITORY

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        config, _ = write_config(tmp_path, database_url, auth_port=taken.getsockname()[1])
        result = subprocess.run(
            RADBILL + ["radiusd"],
            env={**os.environ, "RADBILL_CONFIG": str(config)},
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "radiusd cannot start" in result.stderr and "Address already in use" in result.stderr


def test_status_server_with_radclient(radiusd):
    reply = radclient(radiusd.port, ["Message-Authenticator = 0x00"], kind="status")
    assert reply is not None and reply.code == "Access-Accept"
