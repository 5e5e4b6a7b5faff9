"""The ISP the HTTP benchmarks measure: N customers on a throw-away durable PostgreSQL.

    .venv/bin/python tests/bench/loaded_isp.py [--customers 100000] [--history]

``loaded_isp(count, history=...)`` starts the server (daily_run.py's
DurableServer), migrates it, loads the customers with daily_run's loader
(80% the admin's, 20% reseller1's), gives the admin and reseller1 the
password PASSWORD and, with ``history``, a month of it: 30 bought days each
(the dashboard chart), expiries spread over the next 30 days, a cash payment
today for one in ten, an open session for one in four and a batch of 200
cards. It yields the database URL and removes the server afterwards.

Run as a program, it keeps the loaded server up until interrupted, for
profiling a page or an endpoint by hand (``EXPLAIN ANALYZE`` in psql, a
profiler around one request).
"""

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

from sqlalchemy import text  # noqa: E402

from billingd import cards, credentials  # noqa: E402
from schema import migrate  # noqa: E402
from schema.engine import make_engine  # noqa: E402
from schema.tenancy import resolve_actor  # noqa: E402
from tests.bench.daily_run import DurableServer, load  # noqa: E402
from tests.billing_world import NOW, TODAY  # noqa: E402
from tests.conftest import _postgres_bindir  # noqa: E402

PASSWORD = "benchmark password"


def add_history(engine, count: int) -> None:
    """A month of bought days, spread expiries, today's payments, open sessions and a card batch."""
    with engine.begin() as connection:
        connection.execute(
            text("""
            INSERT INTO customer_days (customer_id, day, amount)
            SELECT c.id, CAST(:today AS DATE) - d, 1666 FROM customers c, generate_series(0, 29) AS d"""),
            {"today": TODAY},
        )
        connection.execute(
            text(
                "UPDATE customers SET expires_at = CAST(:now AS TIMESTAMPTZ) + (id % 30) * INTERVAL '1 day'"
            ),
            {"now": NOW},
        )
        connection.execute(
            text("""
            INSERT INTO payments (customer_id, payee_operator_id, amount, method, created_at)
            SELECT id, operator_id, 50000, 'cash', CAST(:now AS TIMESTAMPTZ) FROM customers WHERE id % 10 = 0"""),
            {"now": NOW},
        )
        connection.execute(
            text("""
            INSERT INTO sessions (acct_unique_id, acct_session_id, nas_ip_address, customer_id, username,
                                  started_at, updated_at)
            SELECT md5(id::text), 'S' || id, '10.0.0.1', id, username, CAST(:now AS TIMESTAMPTZ),
                   CAST(:now AS TIMESTAMPTZ)
            FROM customers WHERE id % 4 = 0"""),
            {"now": NOW},
        )
        cards.create_batch(connection, resolve_actor(connection, "reseller1"), 200, bytes(32), value=50000)
    print(
        f"history: {count * 30:,} customer days, {count // 10:,} payments, {count // 4:,} sessions",
        flush=True,
    )


@contextlib.contextmanager
def loaded_isp(count: int, *, history: bool = False) -> Iterator[str]:
    """A migrated PostgreSQL with ``count`` customers (and their history); yields its URL."""
    server = DurableServer(_postgres_bindir())
    server.start()
    try:
        url = server.url("postgres")
        engine = make_engine(url)
        migrate.upgrade(engine)
        load(engine, count)
        with engine.begin() as connection:
            admin = resolve_actor(connection, "admin")
            for login in ("admin", "reseller1"):
                credentials.set_password(connection, admin, login, PASSWORD, NOW)
        if history:
            add_history(engine, count)
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        engine.dispose()
        yield url
    finally:
        server.stop("immediate")
        server.remove()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--history", action="store_true", help="The pages' month of history too")
    args = parser.parse_args(argv)
    with loaded_isp(args.customers, history=args.history) as url:
        print(f"serving {url} (passwords: {PASSWORD!r}); Ctrl-C ends and removes it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
