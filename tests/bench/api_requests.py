"""Benchmark: the HTTP API with N customers on PostgreSQL: searching the customer list, and renewals.

    .venv/bin/python tests/bench/api_requests.py [--customers 100000] [--requests 2000] [--clients 4]

Loads the customers into a throw-away durable PostgreSQL (loaded_isp.py:
80% the admin's, 20% reseller1's), then starts `radbill api` on a free port (one uvicorn process), logs in as reseller1 and
sends, from ``--clients`` threads over keep-alive connections:

- ``GET /api/v1/customers?search=...&limit=50``: searches that match many
  customers, and one that matches a single customer (a whole-table filter);
- ``POST /api/v1/customers/USER/renew`` (cash): one period bought with its
  cascade, ledger entry, 30 customer days and audit row, each for another customer.

It prints requests per second and the p50/p99 latency of each, as the client
sees them, with the machine's load average (the figures are only as good as
the machine is idle).
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

import httpx  # noqa: E402

from tests.api_server import ApiServer  # noqa: E402
from tests.bench.loaded_isp import PASSWORD, loaded_isp  # noqa: E402


def measure(base: str, headers: dict, requests: list[tuple[str, str, dict | None]], clients: int) -> dict:
    """Send the requests from ``clients`` threads; latency per request in ms, throughput over the wall time."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    shares = [requests[i::clients] for i in range(clients)]

    def work(share):
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for method, path, body in share:
                started = time.perf_counter()
                answer = client.request(method, path, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if answer.status_code >= 300:
                        failures.append(f"{answer.status_code} {path}: {answer.text[:120]}")

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "count": len(latencies),
        "per_second": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "failures": failures,
    }


def report(name: str, result: dict) -> None:
    print(
        f"{name}: {result['count']:,} requests, {result['per_second']:.0f} req/s, "
        f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, failures {len(result['failures'])}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for failure in result["failures"][:5]:
        print("   ", failure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000, help="Requests per search kind")
    parser.add_argument("--renewals", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    with (
        loaded_isp(args.customers) as url,
        tempfile.TemporaryDirectory() as directory,
        ApiServer(url, Path(directory)) as api,
    ):
        token = api.login("reseller1", PASSWORD)["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        # reseller1 owns user5, user10, ... (every fifth).
        many = [
            ("GET", f"/api/v1/customers?search=user{n % 90 + 10}&limit=50", None)
            for n in range(args.requests)
        ]
        warm = measure(api.base, headers, many[:100], args.clients)
        del warm
        report("GET /customers?search=userNN (many matches)", measure(api.base, headers, many, args.clients))
        single = [
            ("GET", f"/api/v1/customers?search=B{5 * (n % (args.customers // 5) + 1)}x&limit=50", None)
            for n in range(args.requests // 4)
        ]
        report(
            "GET /customers?search=<no match>",
            measure(api.base, headers, single, args.clients),
        )
        one = [
            (
                "GET",
                f"/api/v1/customers?search=user{5 * (n * 7919 % (args.customers // 5) + 1)}&limit=50",
                None,
            )
            for n in range(args.requests // 4)
        ]
        report("GET /customers?search=userN (a few matches)", measure(api.base, headers, one, args.clients))
        renewals = [
            ("POST", f"/api/v1/customers/user{5 * (n + 1)}/renew", {"cash": True})
            for n in range(args.renewals)
        ]
        report("POST /customers/{username}/renew", measure(api.base, headers, renewals, args.clients))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
