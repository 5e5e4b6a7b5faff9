"""Benchmark: every page of the panel and the portal with N customers on PostgreSQL.

    .venv/bin/python tests/bench/pages.py [--customers 100000] [--rounds 20]

Loads the customers and a month of their history into a throw-away durable
PostgreSQL (loaded_isp.py: 80% the admin's, 20% reseller1's; 30 bought days
each for the dashboard chart, expiries spread over the next 30 days, a cash
payment today for one in ten, an open session for one in four). It serves
the whole ``radbill api`` application with uvicorn on a free port, logs in as
the admin (sees all customers), as reseller1 and as a subscriber, and fetches every page
``--rounds`` times. It prints, per page, the median and the worst server time
(the pages' ``Server-Timing`` header: from request to response, rendering
included), the first fetch apart (it fills the caches: the dashboard chart is
computed then and kept five minutes), and the bytes sent. Target: every page
under 100 ms.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))

import httpx  # noqa: E402

from billingd.api.app import create_app  # noqa: E402
from cli.context import radius_answer  # noqa: E402
from schema.engine import make_engine  # noqa: E402
from schema.settings import ApiSettings, BillingdSettings, Settings  # noqa: E402
from tests.bench.loaded_isp import PASSWORD, loaded_isp  # noqa: E402
from tests.billing_world import NOW  # noqa: E402
from tests.browser import LiveServer  # noqa: E402
from tests.conftest import free_port  # noqa: E402

OPERATOR_PAGES = [
    "/panel/",
    "/panel/dashboard/chart",
    "/panel/customers",
    "/panel/customers?q=user4242",
    "/panel/customers?q=nobody-matches",
    "/panel/customers?status=suspended",
    "/panel/customers/user5",
    "/panel/operators",
    "/panel/cards",
    "/panel/invoices",
    "/panel/statement",
]


def log_in(client: httpx.Client, area: str, login: str, password: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/{area}/login").text).group(1)
    answer = client.post(f"/{area}/login", data={"login": login, "password": password, "csrf_token": token})
    assert answer.status_code in (200, 303), answer.text[:200]


def measure(client: httpx.Client, path: str, rounds: int) -> tuple[float, float, float, int]:
    times = []
    size = 0
    for _ in range(rounds + 1):
        answer = client.get(path, headers={"accept-encoding": "gzip"})
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
        times.append(float(re.search(r"dur=([\d.]+)", answer.headers["server-timing"]).group(1)))
        size = int(answer.headers.get("content-length") or len(answer.content))
    first, times = times[0], times[1:]  # the first fetch warms the caches (and computes the chart)
    return first, statistics.median(times), max(times), size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    with loaded_isp(args.customers, history=True) as url:
        engine = make_engine(url)
        settings = Settings(
            billingd=BillingdSettings(timezone="Asia/Dhaka"), api=ApiSettings(state_dir=tempfile.mkdtemp())
        )
        app = create_app(
            settings,
            engine,
            os.urandom(32),
            decide=radius_answer(settings),
            clock=lambda: NOW + timedelta(hours=6),
        )
        worst = 0.0
        with LiveServer(app, free_port()) as live:
            for who, area, password, pages in (
                ("admin", "panel", PASSWORD, OPERATOR_PAGES),
                ("reseller1", "panel", PASSWORD, OPERATOR_PAGES),
                ("user5", "portal", "pw5", ["/portal/"]),
            ):
                with httpx.Client(base_url=live.url, timeout=60, follow_redirects=True) as client:
                    log_in(client, area, who, password)
                    for path in pages:
                        first, median, slowest, size = measure(client, path, args.rounds)
                        worst = max(worst, median)
                        print(
                            f"{who:<10} {path:<36} first {first:6.1f} ms  median {median:6.1f} ms  "
                            f"max {slowest:6.1f} ms  "
                            f"{size / 1024:5.1f} KiB sent; load average {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
        print(f"slowest page (median): {worst:.1f} ms with {args.customers:,} customers")
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
