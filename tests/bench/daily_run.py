"""Benchmark: one daily billing run over N daily-billed customers on PostgreSQL.

    .venv/bin/python tests/bench/daily_run.py [--customers 1000000] [--url URL] [--verify] [--json FILE] [--floor]

Without --url it starts a throw-away PostgreSQL server from the machine's
binaries (as the ``postgres`` user when run as root) with durable settings
(fsync on, see SERVER_SETTINGS), loads the hierarchy with the domain functions, then bulk-loads
the customers with INSERT ... SELECT generate_series: each with a wallet
account and an opening balance posted to the ledger, 80% owned by the admin
and 20% by a prepaid reseller (so the cascade is exercised), all past their
bought period, so the run charges every one of them pay-as-you-go.

It runs ``--days`` consecutive days (the second one is the steady state:
yesterday's rows and dead tuples are there) and prints each run's duration,
the machine's load average, the CPU time the PostgreSQL server and this
process spent on it (which a busy machine does not inflate as it does the
duration) and the statements that took half a second or more, then the peak RSS of this process and of the PostgreSQL server's
processes, then runs the last day again to show that it changes nothing.
Targets (issue 17): a day under 20 s, ``ledger verify`` under 30 s.
``--json FILE`` also writes those figures to FILE (tests/bench/table.py
reads it for the README's table). ``--floor`` first times, on the loaded
data and rolled back, what a million narrow rows cost bare and with each
key, index and foreign key, and what updating every customer costs.
"""

import argparse
import json
import os
import resource
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

from sqlalchemy import event, func, insert, select, text  # noqa: E402

from billingd import ledger, operators, packages, runs  # noqa: E402
from billingd.money import parse_amount  # noqa: E402
from schema import migrate  # noqa: E402
from schema.engine import make_engine  # noqa: E402
from schema.settings import BillingdSettings  # noqa: E402
from schema.tables import billing_runs, customer_days, ledger_lines  # noqa: E402
from schema.tenancy import resolve_actor  # noqa: E402
from tests.billing_world import NOW, TODAY  # noqa: E402
from tests.conftest import PostgresServer, _postgres_bindir  # noqa: E402

SETTINGS = BillingdSettings(timezone="Asia/Dhaka")


# What a DBA sets for a database that takes a million-row write once a day:
# durable (fsync and full-page writes stay on), with room for the day's WAL
# so that no checkpoint lands in the middle of the run.
SERVER_SETTINGS = (
    "shared_buffers=256MB",
    "max_wal_size=8GB",
    "checkpoint_timeout=30min",
    "wal_compression=on",
)


class DurableServer(PostgresServer):
    """The test server, but durable (the test fixture runs with fsync off)."""

    settings = SERVER_SETTINGS


def load(engine, count: int) -> None:
    with engine.begin() as connection:
        operators.add_operator(connection, None, "admin", "admin")
        admin = resolve_actor(connection, "admin")
        operators.add_operator(connection, admin, "reseller1", "reseller")
        packages.add_master_package(
            connection,
            admin,
            "Daily 10M",
            customer_type="pppoe",
            billing_type="daily",
            period_days=30,
            rate_rx=10_000_000,
            rate_tx=10_000_000,
        )
        packages.add_package(
            connection,
            admin,
            "Daily 10M",
            master="Daily 10M",
            customer_price=parse_amount("500"),
            operator_price=parse_amount("400"),
        )
        packages.assign_package(
            connection, admin, "Daily 10M", "reseller1", operator_price=parse_amount("400")
        )
        operators.settle(
            connection, admin, "reseller1", parse_amount("100000000"), mode="prepaid", today=TODAY
        )
        ids = dict(connection.execute(text("SELECT login, id FROM operators")).all())
        package_id = connection.execute(text("SELECT id FROM packages")).scalar()
    started = time.monotonic()
    with engine.begin() as connection:
        connection.execute(
            text("""
            INSERT INTO customers (operator_id, username, password, customer_code, package_id, status, billing_anchor,
                                   wallet_balance)
            SELECT CASE WHEN g % 5 = 0 THEN :reseller ELSE :admin END, 'user' || g, 'pw' || g, 'B' || g, :package,
                   'active', CAST(:anchor AS DATE), 100000
            FROM generate_series(1, :count) AS g"""),
            dict(
                reseller=ids["reseller1"],
                admin=ids["admin"],
                package=package_id,
                count=count,
                anchor=TODAY - timedelta(days=40),
            ),
        )
        connection.execute(
            text("""
            INSERT INTO ledger_accounts (book_operator_id, code, kind, name, customer_id)
            SELECT operator_id, 'wallet:' || id, 'liability', 'Customer wallet', id FROM customers""")
        )
        # The ISP has been billing: every day before TODAY is done, so the run does TODAY alone
        # (a new system would start at the first customer's first day).
        connection.execute(
            insert(billing_runs).values(day=TODAY - timedelta(days=1), started_at=NOW, finished_at=NOW)
        )
        entry = ledger.post(connection, "opening_balance", [], memo="benchmark opening balances")
        connection.execute(
            text("""
            INSERT INTO ledger_lines (entry_id, book_operator_id, debit_account_id, credit_account_id, amount)
            SELECT :entry, c.operator_id, cash.id, w.id, c.wallet_balance
            FROM customers c JOIN ledger_accounts w ON w.customer_id = c.id
            JOIN ledger_accounts cash ON cash.book_operator_id = c.operator_id AND cash.code = 'cash'"""),
            {"entry": entry},
        )
    with engine.connect() as connection:
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.execute(text("VACUUM ANALYZE"))
        autocommit.execute(text("CHECKPOINT"))  # time the run, not the load's pending writes
    print(f"loaded {count:,} customers in {time.monotonic() - started:.1f} s", flush=True)


def cpu_seconds(postmaster_pid: int | None) -> tuple[float, float | None]:
    """CPU time used so far by this process and by the PostgreSQL server (its live processes, and
    through the postmaster's children counters those that ended): a figure that a busy machine
    does not inflate as it does the wall clock."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    if not postmaster_pid:
        return own.ru_utime + own.ru_stime, None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            # After the command name in parentheses: state ppid ... utime stime cutime cstime (fields 14-17).
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster_pid:
            total += sum(int(value) for value in fields[11:15])
        elif int(fields[1]) == postmaster_pid:
            total += int(fields[11]) + int(fields[12])
    return own.ru_utime + own.ru_stime, total / ticks


class PeakRss:
    """Samples the VmHWM (peak RSS) of our PostgreSQL server's processes while the run goes."""

    def __init__(self, postmaster_pid: int | None):
        self.postmaster_pid = postmaster_pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while self.postmaster_pid and not self._stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                if int(pid) == self.postmaster_pid or f"PPid:\t{self.postmaster_pid}\n" in status:
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            self._stop.wait(0.2)


class StatementTimes:
    """Times every statement the engine runs, for a per-statement breakdown of each day's run."""

    def __init__(self, engine):
        self.times: list[tuple[float, str]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["statement_started"] = time.monotonic()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        seconds = time.monotonic() - conn.info.pop("statement_started", time.monotonic())
        self.times.append((seconds, " ".join(statement.split())[:110]))

    def report(self, threshold: float = 0.5) -> dict:
        """Print the statements slower than ``threshold`` seconds and the rest's sum; forget them all."""
        slow = [{"seconds": seconds, "sql": sql} for seconds, sql in self.times if seconds >= threshold]
        rest = [seconds for seconds, _ in self.times if seconds < threshold]
        for statement in slow:
            print(f"  {statement['seconds']:5.1f} s  {statement['sql']}", flush=True)
        print(f"  {sum(rest):5.1f} s  the other {len(rest)} statements", flush=True)
        self.times = []
        return {"statements": slow, "other_statements_seconds": sum(rest)}


# The floor experiments (--floor): what the daily run's rows cost in themselves, and what each
# index, foreign key and indexed column adds, on the loaded database, rolled back afterwards.
# Each is (what, set-up not timed, the statement timed).
LINE_COLUMNS = (
    "entry_id bigint, book_operator_id int, debit_account_id int, credit_account_id int, amount bigint"
)
LINE_REFERENCES = (
    "entry_id bigint REFERENCES ledger_entries, book_operator_id int REFERENCES operators, "
    "debit_account_id int REFERENCES ledger_accounts, credit_account_id int REFERENCES ledger_accounts, "
    "amount bigint"
)
LINE_INDEXES = "CREATE INDEX ON {0} (entry_id); CREATE INDEX ON {0} (debit_account_id); CREATE INDEX ON {0} (credit_account_id)"
COPY_LINES = "INSERT INTO {} (entry_id, book_operator_id, debit_account_id, credit_account_id, amount) SELECT * FROM floor_bare"
COPY_DAYS = "INSERT INTO {} SELECT customer_id, DATE '1999-01-01', share, currval('ledger_entries_id_seq') FROM floor_due"
DAYS_COLUMNS = "customer_id int, day date, amount bigint, entry_id bigint, PRIMARY KEY (customer_id, day)"
DAYS_REFERENCES = (
    "customer_id int REFERENCES customers, day date, amount bigint, entry_id bigint REFERENCES ledger_entries, "
    "PRIMARY KEY (customer_id, day)"
)
FLOOR_EXPERIMENTS = (
    (
        "the due customers with their share and accounts (temporary table)",
        "INSERT INTO ledger_entries (kind) VALUES ('floor')",
        "CREATE TEMPORARY TABLE floor_due AS SELECT c.id AS customer_id, c.operator_id AS owner_id, "
        "w.id AS wallet_id, s.id AS sales_id, 1667::bigint AS share FROM customers c "
        "JOIN ledger_accounts w ON w.customer_id = c.id "
        "JOIN ledger_accounts s ON s.book_operator_id = c.operator_id AND s.code = 'sales' ORDER BY c.id",
    ),
    (
        "lines: bare INSERT ... SELECT, no key, no index",
        f"CREATE TABLE floor_bare ({LINE_COLUMNS})",
        "INSERT INTO floor_bare SELECT currval('ledger_entries_id_seq'), owner_id, wallet_id, sales_id, share "
        "FROM floor_due",
    ),
    (
        "lines: bare, unlogged",
        f"CREATE UNLOGGED TABLE floor_unlogged ({LINE_COLUMNS})",
        COPY_LINES.format("floor_unlogged"),
    ),
    (
        "lines: + bigserial primary key",
        f"CREATE TABLE floor_key (id bigserial PRIMARY KEY, {LINE_COLUMNS})",
        COPY_LINES.format("floor_key"),
    ),
    (
        "lines: + key + ledger_lines' three indexes",
        f"CREATE TABLE floor_indexed (id bigserial PRIMARY KEY, {LINE_COLUMNS}); {LINE_INDEXES.format('floor_indexed')}",
        COPY_LINES.format("floor_indexed"),
    ),
    (
        "lines: + key + indexes + four foreign keys (ledger_lines before 0017)",
        f"CREATE TABLE floor_referencing (id bigserial PRIMARY KEY, {LINE_REFERENCES}); "
        f"{LINE_INDEXES.format('floor_referencing')}",
        COPY_LINES.format("floor_referencing"),
    ),
    ("lines: ledger_lines itself", "", COPY_LINES.format("ledger_lines")),
    ("days: + primary key", f"CREATE TABLE floor_days ({DAYS_COLUMNS})", COPY_DAYS.format("floor_days")),
    (
        "days: + key + two foreign keys (customer_days before 0017)",
        f"CREATE TABLE floor_days_referencing ({DAYS_REFERENCES})",
        COPY_DAYS.format("floor_days_referencing"),
    ),
    ("days: customer_days itself (+ the day-totals trigger)", "", COPY_DAYS.format("customer_days")),
)
# Each in a transaction of its own, rolled back, then VACUUM: (what, set-up not timed, the statement timed).
UPDATE_CUSTOMERS = "UPDATE customers SET wallet_balance = wallet_balance - 1, expires_at = now()"
FLOOR_UPDATES = (
    ("customers: wallet and expiry, in no index (HOT)", "", UPDATE_CUSTOMERS),
    (
        "customers: the same, expires_at in an index (before 0019)",
        "CREATE INDEX floor_expiry ON customers (expires_at)",
        UPDATE_CUSTOMERS,
    ),
    (
        "customers: the same, expires_at indexed, no trigram index",
        "CREATE INDEX floor_expiry ON customers (expires_at); DROP INDEX ix_customers_search_trgm",
        UPDATE_CUSTOMERS,
    ),
)


def floor(engine) -> dict:
    """Run FLOOR_EXPERIMENTS in one transaction and each of FLOOR_UPDATES in one of its own, print
    each one's seconds, roll back; the figures."""
    figures = {}
    for experiments in (FLOOR_EXPERIMENTS, *((update,) for update in FLOOR_UPDATES)):
        with engine.connect() as connection:
            transaction = connection.begin()
            for what, set_up, timed in experiments:
                if set_up:
                    connection.exec_driver_sql(set_up)
                started = time.monotonic()
                connection.exec_driver_sql(timed)
                figures[what] = time.monotonic() - started
                print(f"floor: {figures[what]:5.1f} s  {what}", flush=True)
            transaction.rollback()
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM customers")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--url", help="An empty PostgreSQL database (default: start a throw-away server).")
    parser.add_argument(
        "--days", type=int, default=2, help="Consecutive days to run (the second is the steady state)."
    )
    parser.add_argument("--verify", action="store_true", help="Also time `ledger verify` afterwards.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="First time the floor experiments (rolled back) on the loaded data.",
    )
    args = parser.parse_args()
    figures = {"customers": args.customers, "runs": []}
    server = None
    url = args.url
    if url is None:
        server = DurableServer(_postgres_bindir())
        server.start()
        url = server.url("postgres")
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        load(engine, args.customers)
        if args.floor:
            figures["floor"] = floor(engine)
        statements = StatementTimes(engine)
        with PeakRss(server.postmaster_pid() if server else None) as postgres:
            postmaster_pid = server.postmaster_pid() if server else None
            for offset in range(args.days):
                started, cpu_before = time.monotonic(), cpu_seconds(postmaster_pid)
                [result] = runs.run_through(engine, TODAY + timedelta(days=offset), SETTINGS)
                seconds, cpu_after = time.monotonic() - started, cpu_seconds(postmaster_pid)
                own_cpu = cpu_after[0] - cpu_before[0]
                postgres_cpu = cpu_after[1] - cpu_before[1] if postmaster_pid else None
                load_average = os.getloadavg()[0]
                print(
                    f"daily run {result.day} over {args.customers:,} customers: {seconds:.1f} s; "
                    f"charged {result.customers_charged:,}, suspended {result.customers_suspended:,}, "
                    f"amount {result.amount_charged / 100:,.2f}; load average {load_average:.1f}; CPU: "
                    + (f"PostgreSQL {postgres_cpu:.1f} s, " if postgres_cpu is not None else "")
                    + f"this process {own_cpu:.1f} s",
                    flush=True,
                )
                figures["runs"].append(
                    {
                        "day": result.day.isoformat(),
                        "seconds": seconds,
                        "charged": result.customers_charged,
                        "load_average": load_average,
                        "cpu_seconds": {"postgres": postgres_cpu, "bench": own_cpu},
                        **statements.report(),
                    }
                )
        own_peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures["peak_rss_mib"] = {
            "bench": own_peak_mib,
            "postgres": postgres.peak_kib / 1024 if server else None,
        }
        print(
            f"peak RSS: this process {own_peak_mib:.0f} MiB, largest process of the PostgreSQL server "
            + (
                f"{postgres.peak_kib / 1024:.0f} MiB (includes the shared buffers it touched)"
                if server
                else "not measured (--url)"
            )
        )
        with engine.connect() as connection:
            lines = connection.execute(select(func.count()).select_from(ledger_lines)).scalar()
            days = connection.execute(select(func.count()).select_from(customer_days)).scalar()
        started = time.monotonic()
        again = runs.run_through(engine, result.day, SETTINGS)
        print(
            f"the same day again: {time.monotonic() - started:.2f} s, days run: {len(again)} "
            f"(ledger lines {lines:,}, customer days {days:,})"
        )
        if args.verify:
            statements.times = []
            started = time.monotonic()
            with engine.connect() as connection:
                problems = ledger.verify(connection)
            seconds = time.monotonic() - started
            print(f"ledger verify: {len(problems)} problems in {seconds:.1f} s")
            figures["verify"] = {"seconds": seconds, "problems": len(problems), **statements.report()}
        engine.dispose()
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if server is not None:
            server.stop("immediate")
            server.remove()


if __name__ == "__main__":
    main()
