"""Scale-out (issue 17): two radiusd on two hosts sharing one PostgreSQL; two billingd, one active.

The two hosts are network namespaces (``ip netns``) on a bridge, each with an
address of its own: a daemon there sees only its own interface, so it reaches
PostgreSQL, and the routers reach it, over the bridge as over a LAN. This
machine's end of the bridge is the database server's and the routers' (the
tests' radclient) address. Creating namespaces needs root (CAP_NET_ADMIN);
without it these tests are skipped and say so.
"""

import ipaddress
import os
import re
import shutil
import signal
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text

from billingd import lifecycle, runs, wallets
from billingd.customers import Calendar
from billingd.money import parse_amount
from billingd.service import due_through
from cli.demo import DEMO_ZONE, load_demo
from radiusd.auth.policy import MESSAGES
from schema import migrate
from schema.engine import make_engine
from schema.settings import BillingdSettings
from schema.tables import billing_runs, customer_usage, customers, ledger_lines, radacct, sessions
from schema.tenancy import resolve_actor
from tests.accounting_helpers import AccountingRadiusd, acct, request_file, require_radclient, send_file
from tests.conftest import RADBILL, REPOSITORY, Cli, PostgresServer, _postgres_bindir, free_port
from tests.radius import SECRET, Reply, in_namespace, metric, pap, terminate, wait_for_change

pytestmark = [pytest.mark.interop, pytest.mark.postgresql]


# --- two hosts and the database server between them --------------------------------


@dataclass(frozen=True)
class Host:
    namespace: str
    address: str


@dataclass(frozen=True)
class Network:
    subnet: ipaddress.IPv4Network
    gateway: str  # this machine on the bridge: PostgreSQL's and the routers' address
    hosts: tuple[Host, ...]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _unused_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.231.0.0/16 with no address of this machine in it (another test run may hold one)."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True)
    words = shown.stdout.split()
    used = [ipaddress.ip_interface(words[i + 1]).ip for i, word in enumerate(words) if word == "inet"]
    for offset in range(256):
        subnet = ipaddress.ip_network(f"10.231.{(os.getpid() + offset) % 256}.0/24")
        if not any(address in subnet for address in used):
            return subnet
    raise RuntimeError("no free /24 under 10.231.0.0/16")


def _remove_leftovers() -> None:
    """The namespaces and bridges of earlier runs killed before their teardown (their process is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for namespace, pid in re.findall(r"^(radbill-(\d+)-[ab])\b", listed, re.MULTILINE):
        if not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", f"rbso{pid}br"], capture_output=True)


@pytest.fixture(scope="module")
def network():
    """Two namespaces ("hosts") joined to this machine by a bridge, torn down afterwards."""
    if shutil.which("ip") is None:
        message = "the ip command is missing (apt-get install iproute2)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    _remove_leftovers()
    tag = f"rbso{os.getpid()}"  # interface names: at most 15 characters
    namespaces = [f"radbill-{os.getpid()}-{side}" for side in "ab"]
    try:
        _ip("netns", "add", namespaces[0])
        subprocess.run(
            ["ip", "netns", "exec", namespaces[0], "true"], check=True, capture_output=True, text=True
        )
    except subprocess.CalledProcessError as error:
        subprocess.run(["ip", "netns", "del", namespaces[0]], capture_output=True)
        pytest.skip(f"cannot create or enter a network namespace (needs root): {error.stderr.strip()}")
    subnet = _unused_subnet()
    gateway, *addresses = (str(subnet.network_address + number) for number in (1, 2, 3))
    bridge = f"{tag}br"
    with ExitStack() as cleanup:
        cleanup.callback(subprocess.run, ["ip", "netns", "del", namespaces[0]], capture_output=True)
        _ip("link", "add", bridge, "type", "bridge")
        cleanup.callback(subprocess.run, ["ip", "link", "del", bridge], capture_output=True)
        _ip("addr", "add", f"{gateway}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for side, namespace, address in zip("ab", namespaces, addresses, strict=True):
            if namespace != namespaces[0]:
                _ip("netns", "add", namespace)
                cleanup.callback(subprocess.run, ["ip", "netns", "del", namespace], capture_output=True)
            # The pair's far end is the host's eth0; deleting the namespace deletes the pair.
            _ip("link", "add", f"{tag}{side}", "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", f"{tag}{side}", "master", bridge, "up")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield Network(subnet, gateway, tuple(Host(*pair) for pair in zip(namespaces, addresses, strict=True)))


@pytest.fixture(scope="module")
def postgres(network):
    """One PostgreSQL for both hosts, listening on this machine's bridge address."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = PostgresServer(bindir)
    server.host = network.gateway
    with open(server.datadir / "data" / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {network.subnet} trust\n")
    server.start()
    with psycopg.connect(_conninfo(server, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE radbill_template")
    engine = make_engine(server.url("radbill_template"))
    migrate.upgrade(engine)
    engine.dispose()
    yield server
    server.stop("immediate")
    server.remove()


def _conninfo(server: PostgresServer, dbname: str) -> str:
    return f"host={server.host} port={server.port} user={server.user} dbname={dbname}"


def fresh_database(server: PostgresServer, name: str) -> str:
    """A migrated, empty database on the shared server; its URL."""
    with psycopg.connect(_conninfo(server, "postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE radbill_template")
    return server.url(name)


# --- two radiusd ---------------------------------------------------------------------


@dataclass(frozen=True)
class RadiusHosts:
    url: str
    cli: Cli
    servers: tuple[AccountingRadiusd, ...]


# Each test has its own subscribers, so the tests share one pair of radiusd in any order.
SUBSCRIBERS = ("greeter", "roamer", "switch", "single")


@pytest.fixture(scope="module")
def radius_hosts(network, postgres, tmp_path_factory):
    """``radbill radiusd`` on each host (one worker each), both on one database, the routers' side
    registered as a NAS by its bridge address."""
    require_radclient()
    url = fresh_database(postgres, "radius_hosts")
    cli = Cli(url)
    cli("demo")
    for username in SUBSCRIBERS:
        cli("customer", "add", username, "--password", username, "--package", "PPPoE 10M")
    cli("nas", "add", "bridge-nas", "--ip", network.gateway, "--secret", SECRET)
    with ExitStack() as stop:
        servers = []
        for host in network.hosts:
            server = AccountingRadiusd(
                tmp_path_factory.mktemp(host.namespace), url, host.namespace, bind=host.address, workers=1
            )
            stop.callback(server.stop)
            servers.append(server.start())
        yield RadiusHosts(url, cli, tuple(servers))


def login(server: AccountingRadiusd, username: str, *extra: str, password: str | None = None) -> Reply | None:
    settings = server.settings
    return pap(settings["auth_port"], username, password or username, *extra, host=settings["bind"])


def account(server: AccountingRadiusd, path: Path, requests: list[dict]) -> None:
    """Send the Accounting-Requests through that host; every one must be answered."""
    result = send_file(
        server.acct_port, request_file(path, requests), parallel=10, host=server.settings["bind"]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def requests_from_the_bridge(server: AccountingRadiusd) -> float:
    return server.metric("radbill_radiusd_requests_total", {"code": "Access-Request", "nas": "bridge-nas"})


def test_both_hosts_answer_access_requests(radius_hosts):
    for server in radius_hosts.servers:
        before = requests_from_the_bridge(server)
        assert login(server, "greeter").code == "Access-Accept"
        reply = login(server, "greeter", password="wrong")
        assert reply.code == "Access-Reject" and reply.get("Reply-Message")
        assert requests_from_the_bridge(server) == before + 2


def test_accounting_through_both_hosts_lands_exactly_once(radius_hosts, tmp_path):
    """Sessions started through one host and stopped through the other, and sessions whose
    every request the router sent to both (a failover retry): one radacct row each, closed,
    and usage that adds up exactly."""
    first, second = radius_hosts.servers

    def session(status: str, name: str, number: int) -> dict:
        counters = {
            "Start": {},
            "Interim-Update": {"Acct-Input-Octets": 100 + number, "Acct-Output-Octets": 500},
            "Stop": {"Acct-Input-Octets": 1000 + number, "Acct-Output-Octets": 5000, "Acct-Session-Time": 60},
        }[status]
        return {**acct(status, f"{name}{number:03d}", "roamer"), **counters}

    per_route = 20
    through_first = [("first-to-second", n) for n in range(per_route)]
    through_second = [("second-to-first", n) for n in range(per_route)]
    to_both = [("both", n) for n in range(per_route // 2)]
    everyone = through_first + through_second + to_both
    before = [
        server.metric("radbill_radiusd_accounting_records_total", {"outcome": "stored"})
        for server in (first, second)
    ]

    account(first, tmp_path / "a-start", [session("Start", *s) for s in through_first + to_both])
    account(second, tmp_path / "b-start", [session("Start", *s) for s in through_second + to_both])
    account(first, tmp_path / "a-interim", [session("Interim-Update", *s) for s in through_first])
    account(second, tmp_path / "b-interim", [session("Interim-Update", *s) for s in through_second])
    account(second, tmp_path / "b-stop", [session("Stop", *s) for s in through_first + to_both])
    account(first, tmp_path / "a-stop", [session("Stop", *s) for s in through_second + to_both])

    after = [
        server.metric("radbill_radiusd_accounting_records_total", {"outcome": "stored"})
        for server in (first, second)
    ]
    assert all(stored > earlier for stored, earlier in zip(after, before, strict=True)), (before, after)
    engine = make_engine(radius_hosts.url)
    try:
        with engine.connect() as connection:
            roamer = connection.execute(
                select(customers.c.id).where(customers.c.username == "roamer")
            ).scalar()
            rows = connection.execute(
                select(radacct.c.acctsessionid, radacct.c.acctinputoctets, radacct.c.acctstoptime).where(
                    radacct.c.username == "roamer"
                )
            ).all()
            open_sessions = connection.execute(
                select(func.count()).where(sessions.c.customer_id == roamer, sessions.c.stopped_at.is_(None))
            ).scalar()
            usage = connection.execute(
                select(customer_usage.c.upload_bytes, customer_usage.c.download_bytes).where(
                    customer_usage.c.customer_id == roamer
                )
            ).all()
    finally:
        engine.dispose()
    assert sorted(row.acctsessionid for row in rows) == sorted(f"{name}{n:03d}" for name, n in everyone)
    assert all(row.acctstoptime is not None for row in rows) and open_sessions == 0
    assert {row.acctsessionid: row.acctinputoctets for row in rows} == {
        f"{name}{n:03d}": 1000 + n for name, n in everyone
    }
    assert usage == [(sum(1000 + n for _, n in everyone), 5000 * len(everyone))]


def test_a_cli_change_reaches_both_hosts_within_a_second(radius_hosts):
    servers = radius_hosts.servers
    assert all(login(server, "switch").code == "Access-Accept" for server in servers)
    radius_hosts.cli("customer", "suspend", "switch")
    wait_for_change(lambda: all(login(server, "switch").code == "Access-Reject" for server in servers))
    radius_hosts.cli("customer", "resume", "switch")
    wait_for_change(lambda: all(login(server, "switch").code == "Access-Accept" for server in servers))


def test_a_session_through_one_host_counts_at_the_other_within_a_second(radius_hosts, tmp_path):
    """Simultaneous use is counted from the shared sessions: a login open through the first host
    refuses a second device at the second host, until its Stop (through the second host)."""
    first, second = radius_hosts.servers
    device = ('Calling-Station-Id = "02-00-00-00-00-01"',)
    other_device = ('Calling-Station-Id = "02-00-00-00-00-02"',)
    start = acct("Start", "single-1", "single", **{"Calling-Station-Id": "02-00-00-00-00-01"})
    assert login(first, "single", *device).code == "Access-Accept"
    account(first, tmp_path / "start", [start])
    wait_for_change(
        lambda: login(second, "single", *other_device).get("Reply-Message") == MESSAGES["simultaneous_use"]
    )
    account(second, tmp_path / "stop", [{**start, "Acct-Status-Type": "Stop"}])
    wait_for_change(lambda: login(first, "single", *other_device).code == "Access-Accept")


# --- two billingd --------------------------------------------------------------------


class BillingdProcess:
    """``radbill billingd`` on a host, with its own configuration, log and /metrics."""

    def __init__(self, directory: Path, database_url: str, host: Host):
        directory.mkdir()
        self.host = host
        self.metrics_port = free_port()
        self.config = directory / "radbill.toml"
        self.config.write_text(
            f'[database]\nurl = "{database_url}"\n'
            f'[billingd]\nbind = "{host.address}"\nmetrics_port = {self.metrics_port}\n'
            f'run_at = "{RUN_AT}"\ntimezone = "{DEMO_ZONE.key}"\n'
        )
        self.log_path = directory / "billingd.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "BillingdProcess":
        env = {**os.environ, "RADBILL_CONFIG": str(self.config)}
        env.pop("RADBILL_DATABASE_URL", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                in_namespace(self.host.namespace, RADBILL + ["billingd"]),
                env=env,
                cwd=REPOSITORY,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float | None:
        """A sample from its /metrics; None while it does not answer yet."""
        try:
            return metric(self.metrics_port, name, host=self.host.address)
        except OSError:
            assert self.process.poll() is None, f"billingd exited:\n{self.log()}"
            return None

    def kill(self) -> None:
        """SIGKILL: nothing runs on the way out, the lock goes with the connection."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        terminate(self.process)


RUN_AT = "00:00"
CATCH_UP_DAYS = 40
PAYING_CUSTOMERS = 20


def billed_isp(connection, now: datetime) -> None:
    """The demo ISP and customers who joined CATCH_UP_DAYS ago: a first billingd has that many days
    to catch up, and their wallets pay the days after their first 30-day period."""
    joined = Calendar(now - timedelta(days=CATCH_UP_DAYS), DEMO_ZONE)
    load_demo(connection, joined.now)
    admin = resolve_actor(connection, "admin")
    for number in range(PAYING_CUSTOMERS):
        username = f"payg{number:02d}"
        lifecycle.add_customer(
            connection, admin, username, password=username, package="PPPoE 10M", calendar=joined
        )
        wallets.receive_payment(connection, admin, username, parse_amount(f"{100 + number}"), joined)


def finished_days(connection) -> list[date]:
    return list(
        connection.execute(
            select(billing_runs.c.day)
            .where(billing_runs.c.finished_at.is_not(None))
            .order_by(billing_runs.c.day)
        ).scalars()
    )


def money(url: str) -> tuple[list, list]:
    """Every customer's wallet, paid time and status, and each book's ledger lines (count, sum)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            wallets_now = connection.execute(
                select(
                    customers.c.username,
                    customers.c.wallet_balance,
                    customers.c.expires_at,
                    customers.c.status,
                ).order_by(customers.c.username)
            ).all()
            books = connection.execute(
                select(ledger_lines.c.book_operator_id, func.count(), func.sum(ledger_lines.c.amount))
                .group_by(ledger_lines.c.book_operator_id)
                .order_by(ledger_lines.c.book_operator_id)
            ).all()
        return wallets_now, books
    finally:
        engine.dispose()


def test_a_standby_billingd_takes_over_within_ten_seconds_and_no_day_runs_twice(network, postgres, tmp_path):
    """The first billingd catches up day by day; halfway (held at its next day by a table lock),
    a second one on the other host stands by; the first is SIGKILLed. The second takes the lock
    within 10 s and runs the rest, and the money is what one uninterrupted run makes (the same
    ISP on another database, billed in one go)."""
    now = datetime.now(UTC)
    url, alone_url = fresh_database(postgres, "billing_hosts"), fresh_database(postgres, "billing_alone")
    for each in (url, alone_url):
        engine = make_engine(each)
        with engine.begin() as connection:
            billed_isp(connection, now)
        engine.dispose()
    engine = make_engine(url)
    first, second = (BillingdProcess(tmp_path / host.namespace, url, host) for host in network.hosts)
    try:
        first.start()
        with engine.connect() as connection:
            wait_for_change(lambda: len(finished_days(connection)) >= 2, timeout=60, interval=0.02)
            connection.rollback()
        with engine.connect() as blocker:
            # Waits for the day in progress to commit; the first billingd's next day then waits at its
            # claim (an INSERT into billing_runs) until this transaction ends.
            blocker.execute(text("LOCK TABLE billing_runs IN EXCLUSIVE MODE"))
            done_by_first = finished_days(blocker)
            second.start()
            wait_for_change(lambda: "standing by" in second.log(), timeout=60, interval=0.1)
            assert second.metric("radbill_billingd_active") == 0
            assert first.metric("radbill_billingd_active") == 1
            first.kill()
            takeover = wait_for_change(
                lambda: second.metric("radbill_billingd_active") == 1, timeout=10, interval=0.05
            )
            blocker.rollback()
        due = due_through(datetime.now(UTC), BillingdSettings(run_at=RUN_AT).run_time, DEMO_ZONE)

        def caught_up() -> bool:
            with engine.connect() as connection:
                return (finished_days(connection) or [None])[-1] == due

        wait_for_change(caught_up, timeout=120, interval=0.2)
        with engine.connect() as connection:
            days = finished_days(connection)
            unfinished = connection.execute(
                select(func.count()).select_from(billing_runs).where(billing_runs.c.finished_at.is_(None))
            ).scalar()
        run_by_second = second.metric("radbill_billingd_run_seconds_count")
        assert "took over as the active billingd" in second.log()
    finally:
        first.stop()
        second.stop()
        engine.dispose()
    assert days == [days[0] + timedelta(days=n) for n in range(len(days))] and unfinished == 0
    assert 2 <= len(done_by_first) < len(days) - 1, (done_by_first, days)
    assert run_by_second == len(days) - len(done_by_first)
    alone = make_engine(alone_url)
    try:
        runs.run_through(alone, days[-1], BillingdSettings(run_at=RUN_AT, timezone=DEMO_ZONE.key))
    finally:
        alone.dispose()
    assert money(url) == money(alone_url)
    Cli(url)("ledger", "verify")
    print(
        f"takeover {takeover:.1f} s after SIGKILL; {len(done_by_first)} of {len(days)} days run by the first"
    )
