"""Benchmark: ``radbill customer import`` of N subscribers (default 100,000) on PostgreSQL.

    .venv/bin/python tests/bench/customer_import.py [--rows 100000] [--url URL]

Without --url it starts a throw-away durable PostgreSQL (daily_run.py's
DurableServer), migrates it, loads the demo ISP, writes a radbill-format CSV
of N subscribers (a third of them the reseller's, each with a MAC, every
tenth with a static IP, an expiry and an opening balance), then times the
real command in a subprocess, end to end (reading, checking, writing, one
transaction), and checks the result with ``ledger verify``. Target: under a
minute.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

from billingd.customer_files import COLUMNS  # noqa: E402
from tests.bench.daily_run import DurableServer  # noqa: E402
from tests.conftest import _postgres_bindir  # noqa: E402

RADBILL = [sys.executable, "-m", "cli"]


def write_file(path: Path, rows: int) -> None:
    with path.open("w") as stream:
        stream.write(",".join(COLUMNS) + "\n")
        for i in range(rows):
            owner = "reseller1" if i % 3 == 0 else "admin"
            static_ip = f"10.{64 + i // 65536}.{i // 256 % 256}.{i % 256}" if i % 10 == 0 else ""
            expires = "2027-06-30" if i % 10 == 0 else ""
            balance = f"{i % 1000}.50" if i % 10 == 0 else ""
            mac = f"02:00:{i >> 24 & 255:02X}:{i >> 16 & 255:02X}:{i >> 8 & 255:02X}:{i & 255:02X}"
            stream.write(
                f"bulk{i:06d},pw{i:06d},PPPoE 10M,{owner},,{mac},{static_ip},{expires},{balance},active,"
                f"Subscriber {i},+8801{i:09d},House {i}\n"
            )


def radbill(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RADBILL_DATABASE_URL": url, "RADBILL_CONFIG": ""}
    return subprocess.run(
        RADBILL + list(args), env=env, cwd=REPOSITORY, capture_output=True, text=True, check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--url", help="An empty PostgreSQL database (default: start a throw-away server).")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server = DurableServer(_postgres_bindir())
        server.start()
        url = server.url("postgres")
    try:
        radbill(url, "demo")
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "customers.csv"
            write_file(path, args.rows)
            started = time.monotonic()
            result = radbill(url, "customer", "import", str(path))
            seconds = time.monotonic() - started
        print(result.stdout.strip())
        print(
            f"customer import of {args.rows:,} rows on PostgreSQL: {seconds:.1f} s "
            f"({args.rows / seconds:,.0f} rows/s); load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        started = time.monotonic()
        radbill(url, "ledger", "verify")
        print(f"ledger verify afterwards: passed in {time.monotonic() - started:.1f} s")
    finally:
        if server is not None:
            server.stop()
            server.remove()


if __name__ == "__main__":
    main()
