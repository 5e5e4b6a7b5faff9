"""What every request of one API process shares: settings, the engine, the signer, the clock, metrics."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Connection, Engine

from billingd.api.security import TokenSigner
from schema.settings import Settings

# radiusd's answer to a subscriber's next login (billingd.reports.why's ``decide``): given by the
# composition root (cli.context.radius_answer), since billingd may not import radiusd.
Decide = Callable[[Connection, int, str, str | None, datetime], object]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ApiMetrics:
    """``radbill_api_*``: requests by route and status, latency, logins by outcome."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter(
            "radbill_api_requests_total",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "radbill_api_request_seconds",
            "Time to answer a request, by route template",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.logins = Counter(
            "radbill_api_logins_total",
            "Login attempts by kind (operator, subscriber, login_as, refresh) and result",
            ["kind", "result"],
            registry=registry,
        )


@dataclass
class ApiState:
    settings: Settings
    engine: Engine
    signer: TokenSigner
    registry: CollectorRegistry
    metrics: ApiMetrics
    card_pin_key: bytes  # recharge-card PINs are hashed with it (billingd.cards), shared with the CLI
    decide: Decide
    clock: Callable[[], datetime] = utc_now
