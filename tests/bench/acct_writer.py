"""The accounting writer's cost per record, without the network: where a storm's time goes.

    .venv/bin/python tests/bench/acct_writer.py [--users 50000] [--batch 500]

Loads N subscribers into a durable throw-away PostgreSQL (as storm.py does),
then commits their Accounting Starts and then their Interim-Updates through
``radiusd.accounting.store.apply_records`` in batches of ``--batch`` records,
one transaction each, on one thread: the writer thread's work with nothing
else competing for the interpreter. Prints, per phase, records per second,
the writer's own CPU per record (Python) and PostgreSQL's CPU per record.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent.parent
sys.path[:0] = [str(BENCH), str(REPOSITORY), str(REPOSITORY / "tests")]

import radload  # noqa: E402
from conftest import _postgres_bindir  # noqa: E402
from storm import BenchPostgres, _fresh_database, load_radbill, process_tree_cpu, vacuum_analyze  # noqa: E402

from radiusd.accounting.record import INTERIM, START, AccountingRecord  # noqa: E402
from radiusd.accounting.spool import Spool  # noqa: E402
from radiusd.accounting.writer import AccountingWriter  # noqa: E402
from schema.engine import make_engine  # noqa: E402


def records(kind: str, subs: list[radload.Subscriber], now: datetime) -> list[AccountingRecord]:
    """The records radiusd builds from storm.py's requests (radload.request_text)."""
    interim = kind == INTERIM
    return [
        AccountingRecord(
            status=kind,
            nas_ip_address="127.0.0.1",
            event_time=now,
            nas_id=1,
            acct_session_id=sub.session_id,
            acct_unique_id=f"{sub.index:032x}",
            username=sub.username,
            nas_port_id="ether1",
            nas_port_type="Ethernet",
            framed_ip_address=sub.framed_ip,
            calling_station_id=sub.mac,
            called_station_id="pppoe-bench",
            service_type="Framed-User",
            framed_protocol="PPP",
            acct_authentic="RADIUS",
            session_time=300 if interim else None,
            upload_bytes=1_000_000 + sub.index if interim else None,
            download_bytes=10_000_000 + sub.index if interim else None,
        )
        for sub in subs
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    pg = BenchPostgres(_postgres_bindir(), durable=True)
    pg.start()
    try:
        _fresh_database(pg, "radbill")
        load_radbill(pg, args.users, REPOSITORY)
        vacuum_analyze(pg, "radbill")
        engine = make_engine(pg.url("radbill"))
        reactor = type("Reactor", (), {"callFromThread": staticmethod(lambda f, *a: None)})()
        writer = AccountingWriter(engine, Spool(Path(pg.datadir) / "spool"), ZoneInfo("Asia/Dhaka"), reactor)
        subs = list(radload.subscribers(args.users))
        now = datetime.now(UTC).replace(microsecond=0)
        for kind in (START, INTERIM):
            batch = records(kind, subs, now)
            cpu, pg_cpu, started = (
                time.process_time(),
                process_tree_cpu(pg.postmaster_pid()),
                time.perf_counter(),
            )
            for offset in range(0, len(batch), args.batch):
                writer._commit(batch[offset : offset + args.batch])
            elapsed = time.perf_counter() - started
            cpu, pg_cpu = time.process_time() - cpu, process_tree_cpu(pg.postmaster_pid()) - pg_cpu
            print(
                f"{kind:15} {len(batch) / elapsed:8,.0f} records/s  writer CPU {cpu / len(batch) * 1e6:5.0f} µs/record"
                f"  PostgreSQL CPU {pg_cpu / len(batch) * 1e6:5.0f} µs/record",
                flush=True,
            )
        engine.dispose()
    finally:
        pg.stop("immediate")
        pg.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
