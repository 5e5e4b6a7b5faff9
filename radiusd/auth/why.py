"""``radbill why USERNAME``: why a subscriber can or cannot log in, in one read.

The latest attempts from radpostauth, the open sessions, the enforcement
jobs still waiting for the routers, and what the next Access-Request would
get now: the customer's row is loaded into a one-subscriber view exactly as
radiusd loads it and decided by radiusd's own ``authorize``, as a PAP login
with the right password from the device of the latest attempt. Who may ask
is decided here, by the tenancy rules.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from billingd.tenancy import Actor, require_visible
from radiusd.accounting.store import OnlineSession, list_open_sessions
from radiusd.auth.facts import Credentials, RequestFacts
from radiusd.auth.policy import Decision, PolicySettings, authorize
from radiusd.view import queries
from radiusd.view.view import Snapshot, SubscriberView
from schema.errors import RadbillError
from schema.identity import canonical_username
from schema.tables import customers, enforcement_jobs, radpostauth

ATTEMPT_COLUMNS = ("authdate", "reply", "reason", "nasipaddress", "callingstationid")
# Attributes that would only repeat a secret or are meaningless without a real request.
_HIDDEN_ATTRIBUTES = frozenset(
    {"MS-CHAP2-Success", "MS-MPPE-Send-Key", "MS-MPPE-Recv-Key", "MS-CHAP-MPPE-Keys"}
)


@dataclass(frozen=True)
class PendingJob:
    id: int
    action: str
    reason: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True)
class Why:
    username: str
    attempts: list[dict]
    sessions: list[OnlineSession]
    # What the next Access-Request would get, and from which device it was assumed to come.
    decision: Decision
    device: str | None
    jobs: list[PendingJob]


def why(
    connection: Connection,
    actor: Actor,
    username: str,
    *,
    now: datetime,
    settings: PolicySettings,
    limit: int = 10,
) -> Why:
    """Everything that explains the subscriber's logins; the customer must be visible to ``actor``."""
    actor.require("customers.view", "see why a subscriber can or cannot log in")
    if limit < 1:
        raise RadbillError(f"--limit must be at least 1, got {limit}")
    name = canonical_username(username)
    row = connection.execute(
        select(customers.c.id, customers.c.operator_id).where(customers.c.username == name)
    ).first()
    if row is None:
        raise RadbillError(f"no customer {name!r}")
    require_visible(connection, actor, row.operator_id, f"customer {name!r}")
    attempts = [
        dict(attempt)
        for attempt in connection.execute(
            select(*(radpostauth.c[column] for column in ATTEMPT_COLUMNS))
            .where(radpostauth.c.username == name)
            .order_by(radpostauth.c.authdate.desc(), radpostauth.c.id.desc())
            .limit(limit)
        ).mappings()
    ]
    view = _one_subscriber_view(connection, row.id, now)
    subscriber = view.subscriber(name)
    device = attempts[0]["callingstationid"] if attempts else None
    if subscriber is not None and device is None:
        device = subscriber.mac_binding
    facts = RequestFacts(
        username=name,
        credentials=Credentials("pap", password=subscriber.password if subscriber else None),
        calling_station_id=device,
    )
    decision = authorize(facts, subscriber, now, settings)
    decision = Decision(
        decision.accept,
        decision.reason,
        decision.message,
        tuple(
            (attribute, value)
            for attribute, value in decision.attributes
            if attribute not in _HIDDEN_ATTRIBUTES
        ),
        auth_method=decision.auth_method,
    )
    sessions = list_open_sessions(connection, now, customer_id=row.id)
    jobs = [
        PendingJob(**job)
        for job in connection.execute(
            select(
                enforcement_jobs.c.id,
                enforcement_jobs.c.action,
                enforcement_jobs.c.reason,
                enforcement_jobs.c.status,
                enforcement_jobs.c.attempts,
                enforcement_jobs.c.last_error,
                enforcement_jobs.c.created_at,
            )
            .where(enforcement_jobs.c.customer_id == row.id, enforcement_jobs.c.status != "done")
            .order_by(enforcement_jobs.c.id)
        ).mappings()
    ]
    return Why(name, attempts, sessions, decision, device, jobs)


def _one_subscriber_view(connection: Connection, customer_id: int, now: datetime) -> SubscriberView:
    """radiusd's view, loaded by radiusd's own queries, holding this one customer."""
    view = SubscriberView()
    view.apply(
        Snapshot(
            customers=queries.read_customers(connection, {customer_id}),
            packages=queries.read_packages(connection),
            operators=queries.read_operators(connection),
            open_sessions=queries.count_open_sessions(connection, {customer_id}),
            open_session_ids={customer_id},
            used_bytes=queries.read_used_bytes(connection, now.date(), {customer_id}),
        )
    )
    return view
