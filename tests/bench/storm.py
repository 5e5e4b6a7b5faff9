"""Reconnect storm: radbill radiusd against FreeRADIUS 3.2 + rlm_sql, same machine, same run.

    .venv/bin/python tests/bench/storm.py [--users 100000] [--only freeradius|radbill]

One throw-away PostgreSQL cluster holds two databases: ``radbill`` (migrated
with ``radbill db upgrade``, then an operator, a master package, a package, its
prices, N customers and the NAS 127.0.0.1) and ``radius`` (FreeRADIUS's stock
PostgreSQL schema with the same N users in radcheck/radreply/radusergroup).
Each server is started in turn on its own ports and gets the same storm from
radclient (tests/bench/radload.py): every subscriber sends a PAP
Access-Request, then every subscriber an Accounting Start, then every
subscriber an Interim-Update. The table at the end gives, per server and
phase, requests per second, latency p50/p99 (from a loopback capture), lost
requests and retransmissions, and the CPU the server and PostgreSQL spent per
request; then the ratio radbill / FreeRADIUS.

FreeRADIUS runs from a private copy of /etc/freeradius/3.0: the stock
``default`` site (sql in authorize, accounting and post-auth, detail in
accounting) listening only on 127.0.0.1 with a 4 MiB ``recv_buff``, rlm_sql
PostgreSQL with a pool as large as its thread pool.

Prerequisites (Debian, as root): ``apt-get install postgresql freeradius
freeradius-postgresql freeradius-utils tcpdump``. Everything listens on
127.0.0.1 only; every process started here is stopped at the end, and the
whole run is bounded by ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent.parent
sys.path[:0] = [str(BENCH), str(REPOSITORY / "tests")]

import radload  # noqa: E402
from conftest import PostgresServer, _postgres_bindir, free_port  # noqa: E402

STOCK_RADDB = Path("/etc/freeradius/3.0")
SECRET = "testing123"
RECV_BUFF = 4 * 1024 * 1024
RATE_LIMIT = "10M/10M"
SESSION_TIMEOUT = 30 * 86400
INTERIM_INTERVAL = 300


class BenchPostgres(PostgresServer):
    """The test suite's throw-away cluster, durable (fsync on) and sized for the storm."""

    def __init__(self, bindir: Path, durable: bool):
        super().__init__(bindir)
        self.settings = (
            "max_connections=400",
            "shared_buffers=512MB",
            "max_wal_size=4GB",
            "shared_preload_libraries=pg_stat_statements",
            "pg_stat_statements.track=all",
        ) + (() if durable else ("fsync=off", "full_page_writes=off", "synchronous_commit=off"))

    def conninfo(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} dbname={dbname} user={self.user}"


# --- loading the subscribers ----------------------------------------------------


def _copy_rows(connection: psycopg.Connection, statement: str, rows) -> None:
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def radbill_python(checkout: Path) -> str:
    """The checkout's own virtualenv when it has one, else this interpreter."""
    own = checkout / ".venv" / "bin" / "python"
    return str(own) if own.exists() else sys.executable


def load_radbill(pg: BenchPostgres, users: int, checkout: Path) -> None:
    """Migrate the empty ``radbill`` database (``radbill db upgrade``) and bulk-load the subscribers."""
    url = pg.url("radbill")
    subprocess.run(
        [radbill_python(checkout), "-m", "cli", "db", "upgrade"],
        check=True,
        cwd=checkout,
        env={**os.environ, "RADBILL_DATABASE_URL": url, "RADBILL_CONFIG": ""},
        stdout=subprocess.DEVNULL,
    )
    rate = 10_000_000
    expires_at = datetime.now(UTC) + timedelta(days=30)
    with psycopg.connect(pg.conninfo("radbill")) as connection:
        operator = connection.execute(
            "INSERT INTO operators (login, name, role, billing_mode) VALUES ('admin', 'Bench ISP', 'admin', 'postpaid')"
            " RETURNING id"
        ).fetchone()[0]
        master = connection.execute(
            "INSERT INTO master_packages (operator_id, name, customer_type, billing_type, rate_rx, rate_tx)"
            " VALUES (%s, 'PPPoE 10M', 'pppoe', 'daily', %s, %s) RETURNING id",
            (operator, rate, rate),
        ).fetchone()[0]
        package = connection.execute(
            "INSERT INTO packages (operator_id, master_package_id, name) VALUES (%s, %s, 'PPPoE 10M') RETURNING id",
            (operator, master),
        ).fetchone()[0]
        connection.execute(
            "INSERT INTO package_prices (package_id, operator_id, customer_price, operator_price) VALUES (%s, %s, 50000, 0)",
            (package, operator),
        )
        connection.execute(
            "INSERT INTO nas (name, ip_address, secret, require_message_authenticator) VALUES ('bench-nas', '127.0.0.1', %s, 'auto')",
            (SECRET,),
        )
        _copy_rows(
            connection,
            "COPY customers (operator_id, username, password, customer_code, package_id, status, expires_at,"
            " wallet_balance) FROM STDIN",
            (
                (
                    operator,
                    sub.username,
                    sub.password,
                    f"B{sub.index:07d}",
                    package,
                    "active",
                    expires_at,
                    100_000,
                )
                for sub in radload.subscribers(users)
            ),
        )
        connection.execute("UPDATE operators SET id_sequence = %s WHERE id = %s", (users, operator))


def load_freeradius(pg: BenchPostgres, raddb: Path, users: int) -> None:
    """FreeRADIUS's stock PostgreSQL schema and the same subscribers, into the empty ``radius`` database."""
    schema = (raddb / "mods-config/sql/main/postgresql/schema.sql").read_text()
    with psycopg.connect(pg.conninfo("radius")) as connection:
        connection.execute(schema)
        _copy_rows(
            connection,
            "COPY radcheck (username, attribute, op, value) FROM STDIN",
            ((sub.username, "Cleartext-Password", ":=", sub.password) for sub in radload.subscribers(users)),
        )
        _copy_rows(
            connection,
            "COPY radreply (username, attribute, op, value) FROM STDIN",
            (
                row
                for sub in radload.subscribers(users)
                for row in (
                    (sub.username, "Mikrotik-Rate-Limit", ":=", RATE_LIMIT),
                    (sub.username, "Session-Timeout", ":=", str(SESSION_TIMEOUT)),
                )
            ),
        )
        _copy_rows(
            connection,
            "COPY radusergroup (username, groupname, priority) FROM STDIN",
            ((sub.username, "pppoe-10m", 1) for sub in radload.subscribers(users)),
        )
        connection.execute(
            "INSERT INTO radgroupreply (groupname, attribute, op, value)"
            " VALUES ('pppoe-10m', 'Acct-Interim-Interval', ':=', %s)",
            (str(INTERIM_INTERVAL),),
        )


def vacuum_analyze(pg: BenchPostgres, dbname: str) -> None:
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def reset_statements(pg: BenchPostgres, dbname: str) -> None:
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as connection:
        connection.execute("SELECT pg_stat_statements_reset()")


def top_statements(pg: BenchPostgres, dbname: str, limit: int = 8) -> list[str]:
    """Where PostgreSQL spent its execution time for this database since the last reset."""
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT calls, total_exec_time, rows, regexp_replace(query, '\\s+', ' ', 'g')"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = %s AND query NOT LIKE '%%pg_stat_statements%%'"
            " ORDER BY total_exec_time DESC LIMIT %s",
            (dbname, limit),
        ).fetchall()
    return [
        f"{total / 1000:7.2f} s in {calls:>7,} calls ({total / calls:.3f} ms, {rows / calls:.0f} rows each): "
        f"{query[:110]}"
        for calls, total, rows, query in rows
    ]


# --- FreeRADIUS's private configuration ------------------------------------------


def _without_blocks(text: str, keyword: str) -> str:
    """``text`` without its top-level-in-server ``keyword { ... }`` blocks (comments ignored)."""
    kept, depth, skipping = [], 0, False
    for line in text.splitlines(keepends=True):
        code = line.split("#", 1)[0]
        if not skipping and re.match(rf"\s*{keyword}\s*{{", code):
            skipping, depth = True, 0
        if skipping:
            depth += code.count("{") - code.count("}")
            if depth <= 0:
                skipping = False
            continue
        kept.append(line)
    return "".join(kept)


def _set(text: str, key: str, value: str, count: int = 1) -> str:
    """Set ``key = value`` on a (possibly commented) line of a FreeRADIUS config file."""
    pattern = re.compile(rf"^(\s*)#?\s*{re.escape(key)}\s*=.*$", re.MULTILINE)
    text, replaced = pattern.subn(lambda found: f"{found.group(1)}{key} = {value}", text, count=count)
    if not replaced:
        raise RuntimeError(f"FreeRADIUS configuration has no {key!r} line")
    return text


def freeradius_config(workdir: Path, pg: BenchPostgres, auth_port: int, acct_port: int, threads: int) -> Path:
    """Copy the stock configuration and point it at our ports, our database, our directories."""
    raddb = workdir / "raddb"
    shutil.copytree(STOCK_RADDB, raddb, symlinks=True)
    for directory in ("log", "run", "log/radacct"):
        (workdir / directory).mkdir(parents=True, exist_ok=True)

    main = raddb / "radiusd.conf"
    text = main.read_text()
    text = _set(text, "raddbdir", str(raddb))
    text = _set(text, "logdir", str(workdir / "log"))
    text = _set(text, "run_dir", str(workdir / "run"))
    text = re.sub(
        r"^(\s*)(user|group) = freerad$",
        r"\1# \2 = freerad (the benchmark runs it as root)",
        text,
        flags=re.MULTILINE,
    )
    text = _set(text, "max_requests", str(65536))
    text = _set(text, "start_servers", str(threads))
    text = _set(text, "max_servers", str(threads))
    text = _set(text, "min_spare_servers", str(threads))
    text = _set(text, "max_spare_servers", str(threads))
    main.write_text(text)

    default = raddb / "sites-available/default"
    site = _without_blocks(default.read_text(), "listen")
    listeners = "".join(
        f"listen {{\n\ttype = {kind}\n\tipaddr = 127.0.0.1\n\tport = {port}\n\trecv_buff = {RECV_BUFF}\n}}\n"
        for kind, port in (("auth", auth_port), ("acct", acct_port))
    )
    site = site.replace("server default {\n", "server default {\n" + listeners, 1)
    default.write_text(site)

    inner = raddb / "sites-available/inner-tunnel"
    inner.write_text(inner.read_text().replace("port = 18120", f"port = {free_port(socket.SOCK_DGRAM)}"))

    sql = raddb / "mods-available/sql"
    text = sql.read_text()
    text = _set(text, "dialect", '"postgresql"')
    text = _set(text, "driver", '"rlm_sql_${dialect}"')
    text = _set(text, "radius_db", f'"{pg.conninfo("radius")}"')
    sql.write_text(text)
    (raddb / "mods-enabled/sql").symlink_to("../mods-available/sql")
    return raddb


# --- servers --------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    auth: radload.Target
    acct: radload.Target
    log: Path
    database: str
    metrics_port: int = 0  # radbill's Prometheus endpoint, read around each phase


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    except OSError:
        return 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def answers(
    target: radload.Target, kind: str, subscriber: radload.Subscriber, timeout: float = 0.5
) -> radload.Summary:
    """Send one request; radclient's summary of it."""
    probe = Path(tempfile.mkdtemp(prefix="storm-probe-"))
    try:
        files = radload.write_request_files(kind, [subscriber], probe)
        return radload.run_radclients(files, target, "auth" if kind == "auth" else "acct", 1, 1, 1, timeout)[
            0
        ]
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def wait_until_answering(server: Server, process: subprocess.Popen, seconds: float) -> None:
    """Poll with one Access-Request (the first subscriber's) until the server accepts it."""
    first = next(radload.subscribers(1))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {process.returncode}; see {server.log}")
        summary = answers(server.auth, "auth", first)
        if summary.accepted:
            return
        if summary.rejected:
            raise RuntimeError(f"{server.name} rejected {first.username}; see {server.log}")
    raise RuntimeError(f"{server.name} did not answer within {seconds:.0f} s; see {server.log}")


@contextmanager
def running(server: Server, start_seconds: float) -> Iterator[subprocess.Popen]:
    with server.log.open("w") as log:
        process = subprocess.Popen(
            server.command,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=server.cwd,
            start_new_session=True,
        )
    try:
        wait_until_answering(server, process, start_seconds)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def scrape(port: int) -> dict[str, float]:
    """The samples of a Prometheus text endpoint on 127.0.0.1, by name with labels."""
    if not port:
        return {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                samples[name] = float(value)
            except ValueError:
                continue
    return samples


def histogram_means(before: dict[str, float], after: dict[str, float]) -> list[str]:
    """'name: mean over count' for every histogram that observed something in between."""
    means = []
    for name, total in after.items():
        if not name.endswith("_sum"):
            continue
        count_name = name[:-4] + "_count"
        count = after.get(count_name, 0) - before.get(count_name, 0)
        if count > 0:
            means.append(f"{name[:-4]} mean {(total - before.get(name, 0)) / count:.4g} over {count:,.0f}")
    return means


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(threshold: float, patience: float) -> str:
    """Wait (up to ``patience`` seconds) until the machine is less than ``threshold`` busy,
    so that other work on a shared machine skews a server's turn less; say how it went."""
    deadline = time.monotonic() + patience
    while True:
        before, started = machine_busy(), time.monotonic()
        time.sleep(2)
        busy = (machine_busy() - before) / ((time.monotonic() - started) * os.cpu_count())
        if busy < threshold:
            return f"machine {busy:.0%} busy before the start"
        if time.monotonic() >= deadline:
            return f"machine still {busy:.0%} busy after waiting {patience:.0f} s for quiet; going ahead"


def own_cpu() -> float:
    """CPU seconds of this script and its reaped children (radclient, tcpdump)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass(frozen=True)
class Phase:
    server: str
    load: radload.LoadResult
    server_cpu_ms: float  # per answered request
    postgres_cpu_ms: float  # per answered request
    client_cpu_ms: float  # radclient, tcpdump and this script, per answered request
    others_busy: float  # share of the machine's CPU used by processes not ours (other work)


def storm(
    server: Server,
    process: subprocess.Popen,
    request_files: dict[str, list[Path]],
    pg: BenchPostgres,
    args: argparse.Namespace,
    workdir: Path,
) -> list[Phase]:
    phases = []
    reset_statements(pg, server.database)
    for kind in args.phases:
        target = server.auth if kind == "auth" else server.acct
        if (
            kind != "auth"
            and not answers(target, kind, next(radload.subscribers(1, first=args.users + 1)), 2.0).accepted
        ):
            print(f"  {server.name} {kind}: no Accounting-Response to a probe; phase skipped", flush=True)
            continue

        def sample() -> tuple[float, ...]:
            return (
                process_tree_cpu(process.pid),
                process_tree_cpu(pg.postmaster_pid()),
                own_cpu(),
                machine_busy(),
                time.monotonic(),
            )

        metrics_before = scrape(server.metrics_port)
        before = sample()
        with profiling(args.py_spy, server, process, kind):
            result = radload.run_load(
                kind,
                request_files[kind],
                target,
                processes=args.processes,
                parallel=args.parallel,
                retries=args.retries,
                timeout=args.timeout,
                workdir=workdir,
            )
        server_cpu, postgres_cpu, client_cpu, busy, wall = (
            after - first for after, first in zip(sample(), before)
        )
        answered = max(result.answered, 1)
        others = max(0.0, busy - server_cpu - postgres_cpu - client_cpu) / (wall * os.cpu_count())
        phase = Phase(
            server.name,
            result,
            server_cpu * 1000 / answered,
            postgres_cpu * 1000 / answered,
            client_cpu * 1000 / answered,
            others,
        )
        print(
            f"  {server.name} {result.line()}; CPU per request: server {phase.server_cpu_ms:.2f} ms, "
            f"PostgreSQL {phase.postgres_cpu_ms:.2f} ms, client {phase.client_cpu_ms:.2f} ms; "
            f"other processes used {others:.0%} of the machine",
            flush=True,
        )
        for line in histogram_means(metrics_before, scrape(server.metrics_port)):
            print(f"    {line}", flush=True)
        phases.append(phase)
        if args.pause:
            time.sleep(args.pause)
    print(
        f"  {server.name} database afterwards: {table_counts(pg, server.database)}; PostgreSQL's busiest "
        "statements (all phases, execution time):",
        flush=True,
    )
    for line in top_statements(pg, server.database):
        print(f"    {line}", flush=True)
    return phases


@contextmanager
def profiling(directory: Path | None, server: Server, process: subprocess.Popen, kind: str) -> Iterator[None]:
    """py-spy on radbill's radiusd (and its worker processes) while a phase runs: collapsed stacks
    of the threads that were running (not waiting) in DIRECTORY/radbill-KIND.txt, for flamegraph.pl
    or speedscope, and a summary printed."""
    if directory is None or server.name != "radbill":
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / f"radbill-{kind}.txt"
    started = time.monotonic()
    spy = subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(process.pid),
            "--subprocesses",
            "--threads",
            "--rate",
            str(PY_SPY_RATE),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    if output.exists():
        print(profile_summary(output, time.monotonic() - started), flush=True)


PY_SPY_RATE = 250


def profile_summary(collapsed: Path, seconds: float, top: int = 8) -> str:
    """Per thread: the share of the phase it was running Python (not waiting), and the functions
    with the most samples, on top of the stack (self) and anywhere on it (inclusive)."""
    threads: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [re.sub(r" \(/.*/", " (", frame) for frame in stack.split(";")]
        thread = next((frame for frame in frames if frame.startswith("thread")), frames[0])
        own, inclusive = threads.setdefault(thread, ({}, {}))
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
    lines = []
    for thread, (own, inclusive) in sorted(threads.items(), key=lambda item: -sum(item[1][0].values())):
        samples = sum(own.values())
        lines.append(
            f"    py-spy {thread}: running {samples / (PY_SPY_RATE * seconds):.0%} of the phase; self:"
        )
        lines += [
            f"      {count / samples:6.1%}  {frame}"
            for frame, count in sorted(own.items(), key=lambda item: -item[1])[:top]
        ]
        lines.append("      inclusive:")
        lines += [
            f"      {count / samples:6.1%}  {frame}"
            for frame, count in sorted(inclusive.items(), key=lambda item: -item[1])
            if count < samples
        ][:top]
    return "\n".join(lines) or "    (no samples)"


def table_counts(pg: BenchPostgres, dbname: str) -> str:
    """What the server wrote: accounting rows, rows updated by an interim, post-auth rows."""
    queries = {
        "radacct": "SELECT count(*) FROM radacct",
        "radacct with interim octets": "SELECT count(*) FROM radacct WHERE acctinputoctets > 0",
        "radpostauth": "SELECT count(*) FROM radpostauth",
    }
    counts = []
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as connection:
        for label, query in queries.items():
            try:
                counts.append(f"{label} {connection.execute(query).fetchone()[0]:,}")
            except psycopg.Error:
                counts.append(f"{label} n/a")
    return ", ".join(counts)


# --- report ---------------------------------------------------------------------


def _auth_rate(phases: Sequence[Phase]) -> float:
    return next((phase.load.rate for phase in phases if phase.load.kind == "auth"), 0.0)


def _accounting_rate(phases: Sequence[Phase]) -> float:
    acct = [phase.load for phase in phases if phase.load.kind != "auth"]
    elapsed = sum(load.elapsed for load in acct)
    return sum(load.answered for load in acct) / elapsed if elapsed else 0.0


def report(results: dict[str, list[Phase]]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    lines = [
        f"{'server':<11} {'phase':<13} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'lost':>5} {'retx':>5} "
        f"{'srv cpu ms':>10} {'pg cpu ms':>9} {'others':>6}"
    ]
    for name, phases in results.items():
        for phase in phases:
            load = phase.load
            lines.append(
                f"{name:<11} {load.kind:<13} {load.rate:>8,.0f} {ms(load.latency and load.latency.p50):>7} "
                f"{ms(load.latency and load.latency.p99):>8} {load.lost:>5} "
                f"{'-' if load.retransmissions is None else load.retransmissions:>5} "
                f"{phase.server_cpu_ms:>10.2f} {phase.postgres_cpu_ms:>9.2f} {phase.others_busy:>6.0%}"
            )
        lines.append(
            f"{name:<11} {'Access/s':<13} {_auth_rate(phases):>8,.0f}   "
            f"Accounting/s {_accounting_rate(phases):,.0f}"
        )
    if "freeradius" in results and "radbill" in results:
        ratios = []
        for label, rate in (("Access-Requests", _auth_rate), ("Accounting-Requests", _accounting_rate)):
            theirs, ours = rate(results["freeradius"]), rate(results["radbill"])
            ratios.append(f"{label} {ours / theirs:.2f}x" if theirs and ours else f"{label} n/a")
        lines.append("ratio radbill / FreeRADIUS: " + ", ".join(ratios))
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--users", type=int, default=100_000, help="subscribers, each sending one request per phase"
    )
    parser.add_argument("--only", choices=("freeradius", "radbill"), help="run one server only")
    parser.add_argument(
        "--phases",
        type=lambda text: text.split(","),
        default=list(radload.KINDS),
        help=f"comma-separated phases, in order (default {','.join(radload.KINDS)})",
    )
    parser.add_argument(
        "--radbill-checkout",
        type=Path,
        default=REPOSITORY,
        help="the radbill checkout to run (its .venv if it has one); default this one",
    )
    parser.add_argument("--processes", type=int, default=4, help="radclient processes side by side")
    parser.add_argument(
        "--parallel", type=int, default=1024, help="requests in flight, split between radclients"
    )
    parser.add_argument("--per-file", type=int, default=radload.DEFAULT_PER_FILE)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="radclient's retransmission timeout, seconds"
    )
    parser.add_argument(
        "--freeradius-threads",
        type=int,
        default=32,
        help="FreeRADIUS thread pool, and so its rlm_sql connection pool",
    )
    parser.add_argument(
        "--radbill-workers",
        type=int,
        metavar="N",
        help="radbill radiusd worker processes (default: radbill's own `[radiusd] workers` default)",
    )
    parser.add_argument(
        "--radbill-setting",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="extra radbill TOML setting, e.g. radiusd.workers=2 (repeatable)",
    )
    parser.add_argument("--no-fsync", action="store_true", help="run PostgreSQL without fsync (not durable)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the servers in turn this many times; the table shows each phase's median round",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.25,
        metavar="SHARE",
        help="before each server's turn, wait until the machine is less busy than this (0..1)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0, metavar="SECONDS", help="how long to wait for that at most"
    )
    parser.add_argument("--pause", type=float, default=2.0, help="seconds of quiet between phases")
    parser.add_argument(
        "--start-seconds", type=float, default=120.0, help="how long a server may take to answer"
    )
    parser.add_argument("--max-seconds", type=int, default=3600, help="hard limit on the whole run")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="profile radbill's radiusd with py-spy (pip install py-spy) during each phase; "
        "it slows radiusd down markedly, so take figures from a run without it",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configuration)")
    return parser.parse_args(argv)


def radbill_config(
    workdir: Path, url: str, auth_port: int, acct_port: int, metrics_port: int, extra: Sequence[str]
) -> Path:
    """The TOML radbill runs with; a later ``extra`` setting replaces an earlier one."""
    tables: dict[str, dict[str, str]] = {
        "database": {"url": f'"{url}"'},
        "radiusd": {
            "bind": '"127.0.0.1"',
            "auth_port": str(auth_port),
            "acct_port": str(acct_port),
            "metrics_port": str(metrics_port),
        },
    }
    for setting in extra:
        key, _, value = setting.partition("=")
        table, _, name = key.partition(".")
        if not value or not name:
            raise SystemExit(f"--radbill-setting must look like radiusd.key=value, got {setting!r}")
        tables.setdefault(table, {})[name] = value
    path = workdir / "radbill.toml"
    path.write_text(
        "".join(
            f"[{table}]\n" + "".join(f"{name} = {value}\n" for name, value in values.items()) + "\n"
            for table, values in tables.items()
        )
    )
    return path


def _timed_out(*_) -> None:
    raise TimeoutError("storm.py: --max-seconds reached")


def _fresh_database(pg: BenchPostgres, dbname: str) -> None:
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        admin.execute(f"CREATE DATABASE {dbname}")


def median_phases(rounds: Sequence[Sequence[Phase]]) -> list[Phase]:
    """Per phase, the round with the median rate (the lower middle one for an even count)."""
    kinds = [phase.load.kind for phase in rounds[0]]
    chosen = []
    for kind in kinds:
        runs = sorted(
            (phase for phases in rounds for phase in phases if phase.load.kind == kind),
            key=lambda phase: phase.load.rate,
        )
        chosen.append(runs[(len(runs) - 1) // 2])
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    unknown = set(args.phases) - set(radload.KINDS)
    if unknown:
        raise SystemExit(
            f"storm.py: unknown phase {', '.join(sorted(unknown))}; phases are {', '.join(radload.KINDS)}"
        )
    for program in ["radclient"] + (["freeradius"] if args.only != "radbill" else []):
        if shutil.which(program) is None:
            raise SystemExit(f"storm.py: {program} not found (see the prerequisites in --help)")
    bindir = _postgres_bindir()
    if bindir is None:
        raise SystemExit("storm.py: PostgreSQL server binaries not found (apt-get install postgresql)")
    signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(args.max_seconds)
    servers = ["freeradius", "radbill"] if args.only is None else [args.only]
    workdir = Path(tempfile.mkdtemp(prefix="radbill-storm-"))
    rounds: dict[str, list[list[Phase]]] = {name: [] for name in servers}
    with ExitStack() as cleanup:
        if not args.keep:
            cleanup.callback(shutil.rmtree, workdir, True)
        else:
            print(f"work directory: {workdir}")
        pg = BenchPostgres(bindir, durable=not args.no_fsync)
        cleanup.callback(pg.remove)
        pg.start()
        cleanup.callback(pg.stop, "immediate")
        print(
            f"PostgreSQL {'without fsync' if args.no_fsync else 'durable (fsync on)'} on port {pg.port}; "
            f"writing requests for {args.users:,} subscribers...",
            flush=True,
        )
        request_files = {
            kind: radload.write_request_files(
                kind, radload.subscribers(args.users), workdir / "requests" / kind, args.per_file
            )
            for kind in args.phases
        }
        planned: dict[str, tuple[Server, Callable[[], None]]] = {}
        if "freeradius" in servers:
            auth_port, acct_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
            raddb = freeradius_config(
                workdir / "freeradius", pg, auth_port, acct_port, args.freeradius_threads
            )
            planned["freeradius"] = (
                Server(
                    "freeradius",
                    ["freeradius", "-f", "-d", str(raddb)],
                    dict(os.environ),
                    workdir,
                    radload.Target("127.0.0.1", auth_port, SECRET),
                    radload.Target("127.0.0.1", acct_port, SECRET),
                    workdir / "freeradius" / "log" / "radius.log",
                    "radius",
                ),
                lambda: load_freeradius(pg, raddb, args.users),
            )
        if "radbill" in servers:
            auth_port, acct_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
            checkout = args.radbill_checkout.resolve()
            metrics_port = free_port()
            config = radbill_config(
                workdir,
                pg.url("radbill"),
                auth_port,
                acct_port,
                metrics_port,
                [
                    *([f"radiusd.workers={args.radbill_workers}"] if args.radbill_workers else []),
                    *args.radbill_setting,
                ],
            )
            planned["radbill"] = (
                Server(
                    "radbill",
                    [radbill_python(checkout), "-m", "cli", "--config", str(config), "radiusd"],
                    {**os.environ, "RADBILL_DATABASE_URL": pg.url("radbill")},
                    checkout,
                    radload.Target("127.0.0.1", auth_port, SECRET),
                    radload.Target("127.0.0.1", acct_port, SECRET),
                    workdir / "radbill-radiusd.log",
                    "radbill",
                    metrics_port,
                ),
                lambda: load_radbill(pg, args.users, checkout),
            )
        for round_number in range(1, args.rounds + 1):
            for name, (server, load) in planned.items():
                started = time.monotonic()
                _fresh_database(pg, server.database)
                load()
                vacuum_analyze(pg, server.database)
                print(
                    f"round {round_number}, {name}: {args.users:,} subscribers loaded in "
                    f"{time.monotonic() - started:.1f} s; {wait_for_quiet(args.quiet_below, args.quiet_wait)}; "
                    f"starting {' '.join(server.command)}",
                    flush=True,
                )
                try:
                    with running(server, args.start_seconds) as process:
                        rounds[name].append(storm(server, process, request_files, pg, args, workdir))
                except RuntimeError as error:
                    print(f"{name}: {error}", flush=True)
                    if not args.keep and server.log.exists():
                        print(server.log.read_text()[-3000:], flush=True)
    signal.alarm(0)
    results = {name: median_phases(runs) for name, runs in rounds.items() if runs and runs[0]}
    if results:
        print()
        print(
            f"Reconnect storm, {args.users:,} subscribers, radclient x{args.processes} with {args.parallel} in "
            f"flight" + (f", median of {args.rounds} rounds:" if args.rounds > 1 else ":")
        )
        print(report(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    name: [[asdict(phase) for phase in phases] for phases in runs]
                    for name, runs in rounds.items()
                },
                indent=2,
            )
        )
    complete = all(
        len(runs) == args.rounds
        and all(
            len(phases) == len(args.phases)
            and all(phase.load.lost == 0 and phase.load.answered == phase.load.requests for phase in phases)
            for phases in runs
        )
        for runs in rounds.values()
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
