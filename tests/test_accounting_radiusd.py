"""Accounting end to end: the real radclient against ``radbill radiusd`` as a subprocess.

Every test checks what reached the database: each session once, with its
final counters, and usage that adds up exactly, however the requests were
delivered (in parallel, retransmitted, through a database outage, through a
SIGKILL of radiusd, or while systemd stops it with SIGTERM).
"""

import json
import signal
import socket
import threading
import time

import pytest
from pyrad.packet import AcctPacket
from sqlalchemy import func, select

from schema import migrate
from schema.dictionary import load_dictionary
from schema.engine import make_engine
from schema.tables import customer_usage, radacct, sessions
from tests.accounting_helpers import (
    SECRET,
    AccountingRadiusd,
    acct,
    request_file,
    require_radclient,
    send_file,
    send_file_in_background,
)
from tests.conftest import PostgresServer, _postgres_bindir
from tests.radius import pap

pytestmark = pytest.mark.interop

STORED = ("radbill_radiusd_accounting_records_total", {"outcome": "stored"})
SPOOLED = ("radbill_radiusd_accounting_records_total", {"outcome": "spooled"})
SPOOL_DEPTH = ("radbill_radiusd_accounting_spool_depth", None)
REPLAYED = ("radbill_radiusd_accounting_spool_replayed_total", None)


def session_stream(
    sessions_count: int, prefix: str, phases=("Start", "Interim-Update", "Stop")
) -> list[dict]:
    """Requests for ``sessions_count`` sessions of user demo, phase by phase."""
    counters = {
        "Start": lambda i: {},
        "Interim-Update": lambda i: {
            "Acct-Input-Octets": 1000 + i,
            "Acct-Output-Octets": 5000,
            "Acct-Output-Gigawords": 1,
            "Acct-Session-Time": 300,
        },
        "Stop": lambda i: {
            "Acct-Input-Octets": 2000 + i,
            "Acct-Output-Octets": 9000,
            "Acct-Output-Gigawords": 1,
            "Acct-Session-Time": 360,
            "Acct-Terminate-Cause": "User-Request",
        },
    }
    return [
        {
            **acct(phase, f"{prefix}{i:05d}"),
            "Framed-IP-Address": f"100.64.{i // 250}.{i % 250 + 1}",
            **counters[phase](i),
        }
        for phase in phases
        for i in range(sessions_count)
    ]


def expected_usage(sessions_count: int) -> tuple[int, int]:
    upload = sum(2000 + i for i in range(sessions_count))
    download = sessions_count * ((1 << 32) + 9000)
    return upload, download


def database_totals(url: str):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(func.count(), func.count(radacct.c.acctstoptime))).one()
            usage = connection.execute(
                select(customer_usage.c.upload_bytes, customer_usage.c.download_bytes)
            ).all()
            sessions_rows = connection.execute(select(func.count()).select_from(sessions)).scalar()
        return rows[0], rows[1], sessions_rows, usage
    finally:
        engine.dispose()


@pytest.fixture
def radiusd(tmp_path, database_url, cli):
    require_radclient()
    cli("demo")
    server = AccountingRadiusd(tmp_path, database_url).start()
    yield server
    server.stop()


def test_start_interim_stop_through_radclient(radiusd, database_url, cli, tmp_path):
    count = 200
    starts = request_file(tmp_path / "start.txt", session_stream(count, "a", ("Start",)))
    result = send_file(radiusd.acct_port, starts, parallel=20)
    assert result.returncode == 0, result.stdout + result.stderr
    online = json.loads(cli("--json", "online", "--nas", "demo-nas").output)
    assert len(online) == count and {row["username"] for row in online} == {"demo"}
    assert online[0]["ip"].startswith("100.64.") and online[0]["nas"] == "demo-nas"
    rest = request_file(tmp_path / "rest.txt", session_stream(count, "a", ("Interim-Update", "Stop")))
    result = send_file(radiusd.acct_port, rest, parallel=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert database_totals(database_url) == (count, count, count, [expected_usage(count)])
    assert json.loads(cli("--json", "online").output) == []
    assert "USER" in cli("online").output


def test_retransmitted_request_is_answered_from_cache_and_counted_once(radiusd, database_url):
    request = AcctPacket(
        dict=load_dictionary(),
        secret=SECRET,
        id=7,
        **{
            "Acct-Status-Type": "Interim-Update",
            "User-Name": "demo",
            "Acct-Session-Id": "retx",
            "NAS-IP-Address": "127.0.0.1",
            "Acct-Input-Octets": 700,
            "Acct-Output-Octets": 900,
        },
    )
    data = request.RequestPacket()
    stored_before = radiusd.metric(*STORED)
    duplicates_before = radiusd.metric("radbill_radiusd_duplicates_total")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:
        nas.settimeout(5)
        nas.bind(("127.0.0.1", 0))
        replies = []
        for _ in range(3):
            nas.sendto(data, ("127.0.0.1", radiusd.acct_port))
            replies.append(nas.recv(4096))
        wrong = AcctPacket(
            dict=load_dictionary(),
            secret=b"wrong",
            id=8,
            **{"Acct-Status-Type": "Start", "User-Name": "demo", "Acct-Session-Id": "forged"},
        )
        nas.sendto(wrong.RequestPacket(), ("127.0.0.1", radiusd.acct_port))
        nas.settimeout(1)
        with pytest.raises(socket.timeout):
            nas.recv(4096)
    assert replies[0] == replies[1] == replies[2] and replies[0][1] == 7
    assert request.VerifyReply(
        AcctPacket(packet=replies[0], secret=SECRET, dict=load_dictionary()), replies[0]
    )
    assert radiusd.metric(*STORED) - stored_before == 1
    assert radiusd.metric("radbill_radiusd_duplicates_total") - duplicates_before == 2
    assert radiusd.metric("radbill_radiusd_drops_total", {"cause": "bad_authenticator"}) == 1
    assert database_totals(database_url) == (1, 0, 1, [(700, 900)])


def test_accounting_on_closes_the_nas_sessions(radiusd, database_url, cli, tmp_path):
    starts = request_file(tmp_path / "start.txt", session_stream(3, "r", ("Start",)))
    assert send_file(radiusd.acct_port, starts).returncode == 0
    assert len(json.loads(cli("--json", "online").output)) == 3
    reboot = request_file(
        tmp_path / "on.txt",
        [{"Acct-Status-Type": "Accounting-On", "NAS-IP-Address": "127.0.0.1", "Acct-Session-Id": "0"}],
    )
    assert send_file(radiusd.acct_port, reboot).returncode == 0
    assert json.loads(cli("--json", "online").output) == []
    engine = make_engine(database_url)
    with engine.connect() as connection:
        causes = connection.execute(select(radacct.c.acctterminatecause)).scalars().all()
    engine.dispose()
    assert causes == ["NAS-Reboot"] * 3


def test_open_sessions_decide_simultaneous_use(radiusd, tmp_path):
    """demo's package allows one session: its Start shuts the door, its Stop opens it again."""
    auth_port = radiusd.settings["auth_port"]
    assert pap(auth_port, "demo", "demo").code == "Access-Accept"
    start = request_file(tmp_path / "start.txt", [acct("Start", "su1")])
    assert send_file(radiusd.acct_port, start).returncode == 0
    second = pap(auth_port, "demo", "demo")
    assert second.code == "Access-Reject" and "too many sessions" in second["Reply-Message"]
    stop = request_file(tmp_path / "stop.txt", [acct("Stop", "su1", **{"Acct-Session-Time": 5})])
    assert send_file(radiusd.acct_port, stop).returncode == 0
    assert pap(auth_port, "demo", "demo").code == "Access-Accept"


def test_a_stale_session_is_taken_over_by_a_login_from_the_same_device(radiusd, database_url, tmp_path):
    """Issue 15: the router lost demo's session without a Stop; demo logs in again from the
    same NAS and MAC: the old session is closed as Lost-Service (its counters kept) and the
    login is let in. Another device is still refused."""
    auth_port = radiusd.settings["auth_port"]
    start = request_file(
        tmp_path / "start.txt",
        [acct("Start", "st1", **{"Calling-Station-Id": '"AA-BB-CC-00-00-01"', "Acct-Input-Octets": 5})],
    )
    assert send_file(radiusd.acct_port, start).returncode == 0
    other = pap(auth_port, "demo", "demo", 'Calling-Station-Id = "aa:bb:cc:00:00:02"')
    assert other.code == "Access-Reject" and "too many sessions" in other["Reply-Message"]
    again = pap(auth_port, "demo", "demo", 'Calling-Station-Id = "aabb.cc00.0001"')
    assert again.code == "Access-Accept"
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(select(sessions).where(sessions.c.acct_session_id == "st1")).one()
    finally:
        engine.dispose()
    assert row.stopped_at is not None and row.terminate_cause == "Lost-Service"
    takeovers = ("radbill_radiusd_session_takeovers_total", {"reason": "same_station"})
    assert radiusd.metric(*takeovers) == 1


# --- the database goes away ----------------------------------------------------------


@pytest.fixture
def own_postgres(tmp_path):
    """A PostgreSQL server of this test's own, so stopping it disturbs no other test."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found")
    server = PostgresServer(bindir)
    server.start()
    engine = make_engine(server.url("postgres"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("CREATE DATABASE radbill")
    engine.dispose()
    engine = make_engine(server.url("radbill"))
    migrate.upgrade(engine)
    engine.dispose()
    yield server
    try:
        server.stop("immediate")
    except Exception:
        pass
    server.remove()


@pytest.fixture
def pg_radiusd(tmp_path, own_postgres):
    require_radclient()
    from tests.conftest import Cli

    url = own_postgres.url("radbill")
    Cli(url)("demo")
    server = AccountingRadiusd(tmp_path, url).start()
    yield server, own_postgres, url
    server.stop()


def test_postgresql_stopped_in_the_middle_loses_and_doubles_nothing(pg_radiusd, tmp_path):
    radiusd, postgres, url = pg_radiusd
    per_sender, senders = 100, 8  # radclient slows down on one big file (FIELD-NOTES 20): several small ones
    files = [
        request_file(tmp_path / f"sender{n}.txt", session_stream(per_sender, f"p{n}-"))
        for n in range(senders)
    ]
    running = [send_file_in_background(radiusd.acct_port, file, parallel=10) for file in files]
    assert radiusd.wait_for_metric(*STORED, lambda stored: stored >= 300) >= 300
    postgres.stop("fast")  # while the radclients are still sending
    assert radiusd.wait_for_metric(*SPOOLED, lambda spooled: spooled > 0) > 0
    time.sleep(0.5)
    postgres.start()
    for sender in running:
        output, _ = sender.communicate(timeout=120)
        assert sender.returncode == 0, output
    count = per_sender * senders
    assert radiusd.wait_for_metric(*SPOOL_DEPTH, lambda depth: depth == 0) == 0
    assert radiusd.metric(*STORED) + radiusd.metric(*SPOOLED) == 3 * count
    assert radiusd.metric(*REPLAYED) == radiusd.metric(*SPOOLED) > 0
    usage = [(per_sender * senders * 2000 + senders * sum(range(per_sender)), count * ((1 << 32) + 9000))]
    assert database_totals(url) == (count, count, count, usage)


def test_sigkill_with_spooled_records_then_restart_delivers_each_once(pg_radiusd, tmp_path):
    radiusd, postgres, url = pg_radiusd
    count = 100
    postgres.stop("fast")
    everything = request_file(tmp_path / "all.txt", session_stream(count, "k"))
    result = send_file(radiusd.acct_port, everything, parallel=10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert radiusd.metric(*SPOOL_DEPTH) == 3 * count
    radiusd.kill()
    threading.Timer(1.0, postgres.start).start()  # radiusd restarts while the database is still down
    radiusd.start()
    assert radiusd.wait_for_metric(*REPLAYED, lambda replayed: replayed == 3 * count) == 3 * count
    assert radiusd.metric(*SPOOL_DEPTH) == 0
    assert database_totals(url) == (count, count, count, [expected_usage(count)])


def test_sigterm_commits_every_answered_stop_and_exits_cleanly(radiusd, database_url, tmp_path):
    """systemd stops radiusd while Stops are in flight: whatever it answered is in the database
    (an Accounting-Response promises the record is durable), and it exits with status 0."""
    senders, per_sender = 4, 250  # a packet id is one byte: 250 requests in flight per source port
    count = senders * per_sender
    starts = request_file(tmp_path / "start.txt", session_stream(count, "t", ("Start",)))
    result = send_file(radiusd.acct_port, starts, parallel=20)
    assert result.returncode == 0, result.stdout + result.stderr
    stops = session_stream(count, "t", ("Stop",))
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    replies: list[list[tuple[float, bytes]]] = [[] for _ in sockets]

    def receive(sock: socket.socket, into: list) -> None:
        sock.settimeout(5.0)
        try:
            while True:
                into.append((time.monotonic(), sock.recv(4096)))
        except TimeoutError:
            pass

    receivers = [threading.Thread(target=receive, args=pair) for pair in zip(sockets, replies, strict=True)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    for receiver in receivers:
        receiver.start()
    dictionary = load_dictionary()
    for number, attributes in enumerate(stops):
        packet = AcctPacket(dict=dictionary, secret=SECRET, id=number % per_sender)
        for name, value in attributes.items():
            packet[name] = value
        sockets[number // per_sender].sendto(packet.RequestPacket(), ("127.0.0.1", radiusd.acct_port))
    terminated = time.monotonic()
    radiusd.process.send_signal(signal.SIGTERM)
    assert radiusd.process.wait(30) == 0, radiusd.log()
    for receiver in receivers:
        receiver.join()
    for sock in sockets:
        sock.close()
    assert "Traceback" not in radiusd.log()
    answered = {
        stops[sender * per_sender + data[1]]["Acct-Session-Id"]
        for sender, received in enumerate(replies)
        for _, data in received
        if data[0] == 5  # Accounting-Response
    }
    after_the_signal = sum(at > terminated for received in replies for at, _ in received)
    assert answered and after_the_signal, "Stops were still being committed when SIGTERM came"
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            stopped = set(
                connection.execute(
                    select(radacct.c.acctsessionid).where(radacct.c.acctstoptime.is_not(None))
                ).scalars()
            )
            closed = set(
                connection.execute(
                    select(sessions.c.acct_session_id).where(sessions.c.stopped_at.is_not(None))
                ).scalars()
            )
    finally:
        engine.dispose()
    assert answered <= stopped and answered <= closed, "an answered Stop is never lost"
