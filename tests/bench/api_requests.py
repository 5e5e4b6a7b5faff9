"""Benchmark: the HTTP API with N customers on PostgreSQL: searching the customer list, and renewals.

    .venv/bin/python tests/bench/api_requests.py [--customers 100000] [--requests 2000] [--clients 4]

Loads the customers into a throw-away durable PostgreSQL (loaded_isp.py:
80% the admin's, 20% reseller1's), then starts `radbill api` on a free port
(one uvicorn process), logs in as reseller1 and sends, from ``--clients``
threads over keep-alive connections:

- ``GET /api/v1/customers?search=...&limit=50``: searches that match many
  customers, one that matches none and one that matches a few;
- ``POST /api/v1/customers/USER/renew`` (cash): one period bought with its
  cascade, ledger entry, 30 customer days and audit row, each for another customer.

It prints requests per second and the p50/p99 latency of each, as the client
sees them, the share of those answers the server gave within 50 ms (from its
own latency histogram, radbill_api_request_seconds: the server's time without
the client threads' share of the CPUs), the API process's CPU time per
request (PostgreSQL's not included; a loaded machine inflates it far less
than latency) and the machine's load average (the latencies are only as
good as the machine is idle).
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

LIST, RENEW = "/customers", "/customers/{username}/renew"  # route labels in the API's metrics


def measured(api: ApiServer, headers: dict, requests: list, clients: int, route: str) -> tuple[dict, tuple]:
    """measure(), how many of these answers the server gave within 50 ms, and the server process's
    CPU time per request (a figure a loaded machine does not inflate the way it does latency)."""
    before, cpu_before = server_answers(api, route), server_cpu_seconds(api)
    result = measure(api.base, headers, requests, clients)
    after, cpu_after = server_answers(api, route), server_cpu_seconds(api)
    result["server_cpu_ms"] = (cpu_after - cpu_before) * 1000 / result["count"]
    return result, (after[0] - before[0], after[1] - before[1])


def server_cpu_seconds(api: ApiServer) -> float:
    """User + system CPU seconds of the `radbill api` process so far (Linux /proc)."""
    fields = Path(f"/proc/{api.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def server_answers(api: ApiServer, route: str) -> tuple[float, float]:
    """(answers of ``route`` within 50 ms, all answers) so far, from the API's own latency histogram
    (radbill_api_request_seconds): the server's time, without the client's share of the CPUs."""
    text = httpx.get(f"http://127.0.0.1:{api.metrics_port}/metrics").text
    within = total = 0.0
    for line in text.splitlines():
        if line.startswith("radbill_api_request_seconds_") and f'route="{route}"' in line:
            if line.startswith("radbill_api_request_seconds_bucket") and 'le="0.05"' in line:
                within = float(line.rsplit(" ", 1)[1])
            elif line.startswith("radbill_api_request_seconds_count"):
                total = float(line.rsplit(" ", 1)[1])
    return within, total


def report(name: str, result: dict, server: tuple[float, float]) -> None:
    within, total = server
    print(
        f"{name}: {result['count']:,} requests, {result['per_second']:.0f} req/s, "
        f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, failures {len(result['failures'])}; "
        f"server: {within / total:.1%} within 50 ms, {result['server_cpu_ms']:.1f} ms CPU per request; "
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
        report(
            "GET /customers?search=userNN (many matches)", *measured(api, headers, many, args.clients, LIST)
        )
        single = [
            ("GET", f"/api/v1/customers?search=B{5 * (n % (args.customers // 5) + 1)}x&limit=50", None)
            for n in range(args.requests // 4)
        ]
        report(
            "GET /customers?search=<no match>",
            *measured(api, headers, single, args.clients, LIST),
        )
        one = [
            (
                "GET",
                f"/api/v1/customers?search=user{5 * (n * 7919 % (args.customers // 5) + 1)}&limit=50",
                None,
            )
            for n in range(args.requests // 4)
        ]
        report(
            "GET /customers?search=userN (a few matches)", *measured(api, headers, one, args.clients, LIST)
        )
        renewals = [
            ("POST", f"/api/v1/customers/user{5 * (n + 1)}/renew", {"cash": True})
            for n in range(args.renewals)
        ]
        report("POST /customers/{username}/renew", *measured(api, headers, renewals, args.clients, RENEW))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
