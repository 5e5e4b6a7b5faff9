"""Authentication flood: radbill radiusd answering PAP Access-Requests from 100,000 subscribers.

    .venv/bin/python tests/bench/auth_flood.py [--users 100000] [--workers 1] [--processes 2] [--parallel 48]

Starts a throw-away PostgreSQL cluster (the test suite's, as the
``postgres`` user when run as root), migrates it, loads one operator, one
package, the NAS 127.0.0.1 and N active subscribers ``sub000001``/``pw000001``…
(COPY), starts ``radbill radiusd`` on free ports, and floods it with radclient
through tests/bench/radload.py: one PAP Access-Request per subscriber, split
into files of 2,000 requests, several radclient processes side by side
(FIELD-NOTES 20). Prints requests per second, latency p50/p99 (from a
loopback capture when tcpdump is available and we are root), lost
requests and the CPU radiusd spent per request (which, unlike the rate, does
not depend on what else the machine is running). Target on a 2-core machine: at least 5,000 requests/s, p99 under
20 ms, nothing lost. Exit status 1 if anything was lost or rejected.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent.parent
sys.path[:0] = [str(BENCH), str(REPOSITORY)]

import psutil  # noqa: E402
import psycopg  # noqa: E402
import radload  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from schema import migrate  # noqa: E402
from schema.engine import make_engine  # noqa: E402
from schema.tables import master_packages, nas, operators, packages  # noqa: E402
from tests.conftest import PostgresServer, _postgres_bindir  # noqa: E402
from tests.radius import SECRET, RadiusdProcess, write_config  # noqa: E402


def load_subscribers(url: str, users: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        admin = connection.execute(
            insert(operators).values(login="admin", role="admin")
        ).inserted_primary_key[0]
        master = connection.execute(
            insert(master_packages).values(
                operator_id=admin,
                name="Bench 10M",
                customer_type="pppoe",
                billing_type="daily",
                rate_rx=10_000_000,
                rate_tx=10_000_000,
            )
        ).inserted_primary_key[0]
        package = connection.execute(
            insert(packages).values(operator_id=admin, master_package_id=master, name="Bench 10M")
        ).inserted_primary_key[0]
        connection.execute(insert(nas).values(name="bench-nas", ip_address="127.0.0.1", secret=SECRET))
    engine.dispose()
    expires = datetime.now(UTC) + timedelta(days=30)
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as connection:
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY customers (operator_id, username, password, customer_code, package_id, expires_at,"
                " wallet_balance) FROM STDIN"
            ) as copy,
        ):
            for subscriber in radload.subscribers(users):
                copy.write_row(
                    (
                        admin,
                        subscriber.username,
                        subscriber.password,
                        f"B{subscriber.index:07d}",
                        package,
                        expires,
                        100_000,
                    )
                )
        connection.execute("ANALYZE")


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children:
    what a request costs the server, whatever else the machine is doing."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--workers", type=int, default=1, help="[radiusd] workers (processes sharing the port)"
    )
    parser.add_argument("--processes", type=int, default=2, help="radclient processes side by side")
    parser.add_argument("--parallel", type=int, default=48, help="requests in flight, split between them")
    parser.add_argument("--timeout", type=float, default=3.0, help="radclient's retransmission timeout")
    parser.add_argument("--no-capture", action="store_true", help="skip tcpdump (no latency figures)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    bindir = _postgres_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not found (apt-get install postgresql)", file=sys.stderr)
        return 2
    pg = PostgresServer(bindir)
    pg.start()
    try:
        with psycopg.connect(
            f"host={pg.host} port={pg.port} dbname=postgres user={pg.user}", autocommit=True
        ) as connection:
            connection.execute("CREATE DATABASE radbill")
        url = pg.url("radbill")
        started = time.monotonic()
        load_subscribers(url, args.users)
        print(f"loaded {args.users:,} subscribers in {time.monotonic() - started:.1f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="auth-flood-") as scratch:
            workdir = Path(scratch)
            config, values = write_config(workdir, url, workers=args.workers, metrics_port=0)
            files = radload.write_request_files("auth", radload.subscribers(args.users), workdir / "requests")
            target = radload.Target("127.0.0.1", values["auth_port"], SECRET)
            with RadiusdProcess(config, workdir / "radiusd.log") as radiusd:
                while radiusd.log().count("answering authentication") < args.workers:
                    time.sleep(0.1)  # every worker loads its own view, then binds the shared port
                radload.run_load("auth", files[:1], target, capture=False)  # warm up
                cpu_before = process_tree_cpu(radiusd.process.pid)
                result = radload.run_load(
                    "auth",
                    files,
                    target,
                    processes=args.processes,
                    parallel=args.parallel,
                    timeout=args.timeout,
                    capture=False if args.no_capture else None,
                    workdir=workdir,
                )
                cpu_per_request = (process_tree_cpu(radiusd.process.pid) - cpu_before) / max(
                    1, result.answered
                )
                if "Traceback" in radiusd.log():
                    print(radiusd.log(), file=sys.stderr)
    finally:
        pg.stop("immediate")
        pg.remove()
    if args.json:
        print(json.dumps({**asdict(result), "radiusd_cpu_seconds_per_request": cpu_per_request}, indent=2))
    else:
        print(
            f"radbill radiusd, {args.workers} worker(s), {args.users:,} subscribers on PostgreSQL: {result.line()}, "
            f"radiusd CPU {cpu_per_request * 1e6:.0f} µs/request"
        )
    return 0 if result.lost == 0 and result.rejected == 0 and result.answered == result.requests else 1


if __name__ == "__main__":
    sys.exit(main())
