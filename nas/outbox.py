"""The enforcement outbox (``enforcement_jobs``): queue, claim, finish, list, retry.

Billing and accounting queue a job in the same transaction as the change
that needs it (a transactional outbox), so a router is told exactly when
the change is committed, even if billingd dies in between. The worker
(nas/worker.py) claims due jobs; these functions are its storage, each one
a unit of work on a Connection the caller's transaction owns.

Several workers may run at once: a claim takes due rows with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite takes the database write
lock at BEGIN, see schema/engine.py) and pushes their ``not_before`` out by
a lease, so no other worker sees them while this one talks to the routers;
a worker that dies mid-job leaves it to be claimed again when the lease
runs out.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, exists, func, or_, select, update

from nas.coa import SessionIdentity
from nas.registry import Nas, nas_from_row
from schema.audit import audit
from schema.engine import as_utc
from schema.errors import NotFound, RadbillError, require_one_of
from schema.ratelimit import package_rate_limits
from schema.sessions import ADMIN_RESET, close_sessions, last_seen
from schema.tables import (
    JOB_STATUSES,
    customer_usage,
    customers,
    enforcement_jobs,
    master_packages,
    nas,
    packages,
    sessions,
)
from schema.usage import usage_period_start


@dataclass(frozen=True)
class Job:
    id: int
    customer_id: int | None
    nas_id: int | None
    action: str
    reason: str
    payload: dict
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Target:
    """One open session of the customer (its row by ``acct_unique_id``), and the router that
    carries it (None: not registered)."""

    session: SessionIdentity
    router: Nas | None
    acct_unique_id: str


@dataclass(frozen=True)
class Service:
    """What the customer's package gives right now, for a CoA: its rate (the
    fair-usage rate once over quota) and its address list."""

    rate_limit: str
    address_list: str | None


@dataclass(frozen=True)
class Work:
    """Everything a job needs from the database, read in one transaction."""

    job: Job
    username: str | None
    static_ip: str | None
    targets: list[Target]
    # For api_* jobs: the job's NAS, else those of the open sessions, else every NAS with an API user.
    routers: list[Nas]
    service: Service | None


@dataclass(frozen=True)
class JobRow:
    """A job as ``radbill enforcement list`` shows it."""

    id: int
    customer: str | None
    nas: str | None
    action: str
    reason: str
    status: str
    attempts: int
    not_before: datetime | None
    last_error: str | None
    created_at: datetime
    done_at: datetime | None
    payload: dict


def claim_jobs(connection: Connection, now: datetime, limit: int, lease: timedelta) -> list[Job]:
    """Take up to ``limit`` due pending jobs, count the attempt, and hide them for ``lease``.

    A customer's jobs are carried out one at a time, oldest first: a job
    waits while an older one of the same customer is pending, so a
    suspension retried after a router timeout can never land after the
    renewal that followed it.
    """
    older = enforcement_jobs.alias("older")
    waits_for_older = exists().where(
        older.c.customer_id == enforcement_jobs.c.customer_id,
        older.c.status == "pending",
        older.c.id < enforcement_jobs.c.id,
    )
    due = (
        select(enforcement_jobs)
        .where(enforcement_jobs.c.status == "pending")
        .where(or_(enforcement_jobs.c.not_before.is_(None), enforcement_jobs.c.not_before <= now))
        .where(~waits_for_older)
        .order_by(enforcement_jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = connection.execute(due).mappings().all()
    if not rows:
        return []
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id.in_([row["id"] for row in rows]))
        .values(attempts=enforcement_jobs.c.attempts + 1, not_before=now + lease)
    )
    return [_job(row) for row in rows]


def _job(row) -> Job:
    """A claimed job, its attempt counted."""
    return Job(
        row["id"],
        row["customer_id"],
        row["nas_id"],
        row["action"],
        row["reason"],
        row["payload"] or {},
        row["attempts"] + 1,
        as_utc(row["created_at"]),
    )


def load_work(connection: Connection, job: Job, now: datetime, zone: ZoneInfo) -> Work:
    """The customer's open sessions (on the job's NAS, if it names one), their routers, and its service now."""
    customer = (
        connection.execute(select(customers).where(customers.c.id == job.customer_id)).mappings().first()
    )
    # A session names its NAS by id, or (before the NAS was registered) only by address.
    session_nas = or_(
        nas.c.id == sessions.c.nas_id,
        and_(sessions.c.nas_id.is_(None), nas.c.ip_address == sessions.c.nas_ip_address),
    )
    query = (
        select(
            sessions.c.acct_unique_id,
            sessions.c.username,
            sessions.c.acct_session_id,
            sessions.c.nas_ip_address,
            sessions.c.framed_ip_address,
            nas.c.id.label("router_id"),
            *[column for column in nas.c],
        )
        .select_from(sessions.outerjoin(nas, session_nas))
        .where(sessions.c.customer_id == job.customer_id, sessions.c.stopped_at.is_(None))
        .order_by(sessions.c.id)
    )
    if job.nas_id is not None:
        query = query.where(nas.c.id == job.nas_id)
    targets = []
    for row in connection.execute(query).mappings():
        session = SessionIdentity(
            row["username"], row["acct_session_id"], row["nas_ip_address"], row["framed_ip_address"]
        )
        router = nas_from_row(row) if row["router_id"] is not None else None
        targets.append(Target(session, router, row["acct_unique_id"]))
    routers = []
    if job.action.startswith("api_"):
        routers = _api_routers(connection, job, targets)
    service = None
    if job.action == "coa" and customer is not None:
        service = service_now(connection, customer, now, zone)
    return Work(
        job,
        customer["username"] if customer else None,
        customer["static_ip"] if customer else None,
        targets,
        routers,
        service,
    )


def _api_routers(connection: Connection, job: Job, targets: list[Target]) -> list[Nas]:
    """Where a static customer is blocked: the job's NAS, else the NASes of its
    open sessions, else every NAS with an API user (its line may be on any)."""
    if job.nas_id is not None:
        return [nas_from_row(connection.execute(select(nas).where(nas.c.id == job.nas_id)).mappings().one())]
    routers = list({target.router: None for target in targets if target.router is not None})
    if routers:
        return routers
    query = select(nas).where(nas.c.api_user.is_not(None), nas.c.api_user != "").order_by(nas.c.name)
    return [nas_from_row(row) for row in connection.execute(query).mappings()]


def service_now(connection: Connection, customer, now: datetime, zone: ZoneInfo) -> Service:
    """The package's rate, or its fair-usage rate when this period's volume is past the quota
    (as radiusd decides an Access-Request), and its address list."""
    package = (
        connection.execute(
            select(master_packages)
            .select_from(master_packages.join(packages, packages.c.master_package_id == master_packages.c.id))
            .where(packages.c.id == customer["package_id"])
        )
        .mappings()
        .one()
    )
    rate, fair_usage = package_rate_limits(package)
    if package["quota_bytes"] and fair_usage:
        period = usage_period_start(customer["expires_at"], package["period_days"], zone, now)
        used = connection.execute(
            select(customer_usage.c.upload_bytes + customer_usage.c.download_bytes).where(
                customer_usage.c.customer_id == customer["id"], customer_usage.c.period_start == period
            )
        ).scalar()
        if used is not None and used >= package["quota_bytes"]:
            rate = fair_usage
    return Service(rate, package["address_list"])


def close_gone_sessions(
    connection: Connection, acct_unique_ids: list[str], now: datetime, removed: bool
) -> None:
    """The RouterOS API shows these sessions gone: close their rows (Admin-Reset)
    as an Accounting-Stop would, so ``radbill online`` and simultaneous use
    count them no more. Stopped ``now`` when the API ``removed`` them, else at
    their last sign of life if one is known (the router had lost them before)."""
    open_rows = connection.execute(
        select(
            sessions.c.acct_unique_id, sessions.c.customer_id, sessions.c.started_at, sessions.c.updated_at
        )
        .where(sessions.c.acct_unique_id.in_(acct_unique_ids), sessions.c.stopped_at.is_(None))
        .with_for_update()
    ).all()
    close_sessions(connection, open_rows, ADMIN_RESET, lambda row: (not removed and last_seen(row)) or now)


def mark_done(connection: Connection, job_id: int, now: datetime) -> None:
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id == job_id)
        .values(status="done", done_at=now, not_before=None)
    )


def mark_retry(connection: Connection, job_id: int, error: str, not_before: datetime, payload: dict) -> None:
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id == job_id)
        .values(last_error=error, not_before=not_before, payload=payload)
    )


def mark_awaiting_stop(connection: Connection, job_id: int, payload: dict, not_before: datetime) -> None:
    """The router ACKed a Disconnect: look again at ``not_before`` whether the
    Accounting-Stop came. Waiting is not a failed attempt, so it is not counted."""
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id == job_id)
        .values(payload=payload, not_before=not_before, attempts=enforcement_jobs.c.attempts - 1)
    )


def claim_job(connection: Connection, job_id: int, now: datetime, lease: timedelta) -> Job | None:
    """Claim one job now (``radbill customer disconnect``), unless a worker holds it or it is not pending."""
    row = (
        connection.execute(
            select(enforcement_jobs)
            .where(
                enforcement_jobs.c.id == job_id,
                enforcement_jobs.c.status == "pending",
                or_(enforcement_jobs.c.not_before.is_(None), enforcement_jobs.c.not_before <= now),
            )
            .with_for_update(skip_locked=True)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id == job_id)
        .values(attempts=enforcement_jobs.c.attempts + 1, not_before=now + lease)
    )
    return _job(row)


def backlog(connection: Connection) -> dict[str, tuple[int, datetime]]:
    """Pending jobs by action: how many, and when the oldest was queued (for the metrics)."""
    query = (
        select(enforcement_jobs.c.action, func.count(), func.min(enforcement_jobs.c.created_at))
        .where(enforcement_jobs.c.status == "pending")
        .group_by(enforcement_jobs.c.action)
    )
    return {action: (count, as_utc(oldest)) for action, count, oldest in connection.execute(query)}


def mark_failed(connection: Connection, job_id: int, error: str, now: datetime) -> None:
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id == job_id)
        .values(status="failed", last_error=error, done_at=now, not_before=None)
    )


def get_job(connection: Connection, job_id: int) -> JobRow:
    (row,) = list_jobs(connection, job_id=job_id)
    return row


def list_jobs(
    connection: Connection,
    status: str | None = None,
    limit: int = 100,
    *,
    job_id: int | None = None,
    operator_ids: set[int] | None = None,
) -> list[JobRow]:
    """The newest jobs first, optionally only those with one status, of these operators' customers,
    or the one ``job_id``."""
    query = (
        select(enforcement_jobs, customers.c.username.label("customer"), nas.c.name.label("nas"))
        .select_from(
            enforcement_jobs.outerjoin(customers, customers.c.id == enforcement_jobs.c.customer_id).outerjoin(
                nas, nas.c.id == enforcement_jobs.c.nas_id
            )
        )
        .order_by(enforcement_jobs.c.id.desc())
        .limit(limit)
    )
    if operator_ids is not None:
        query = query.where(customers.c.operator_id.in_(operator_ids))
    if status is not None:
        require_one_of(status, JOB_STATUSES, "job status")
        query = query.where(enforcement_jobs.c.status == status)
    if job_id is not None:
        query = query.where(enforcement_jobs.c.id == job_id)
    instants = ("not_before", "created_at", "done_at")
    return [
        JobRow(
            **{
                name: (as_utc(row[name]) if name in instants and row[name] else row[name])
                for name in JobRow.__dataclass_fields__
            }
        )
        for row in connection.execute(query).mappings()
    ]


def job_customer_operator(connection: Connection, job_id: int) -> int | None:
    """The operator whose customer a job acts on (None: a job of no customer)."""
    found = connection.execute(
        select(enforcement_jobs.c.id, customers.c.operator_id)
        .select_from(enforcement_jobs.outerjoin(customers, customers.c.id == enforcement_jobs.c.customer_id))
        .where(enforcement_jobs.c.id == job_id)
    ).first()
    if found is None:
        raise NotFound(f"no enforcement job {job_id}")
    return found.operator_id


def retry_job(
    connection: Connection, job_id: int, *, actor_id: int | None = None, acting_as_id: int | None = None
) -> None:
    """Make a failed (or waiting) job due now, with a fresh count of attempts."""
    status = connection.execute(
        select(enforcement_jobs.c.status).where(enforcement_jobs.c.id == job_id)
    ).scalar()
    if status is None:
        raise RadbillError(f"no enforcement job {job_id}")
    if status == "done":
        raise RadbillError(f"enforcement job {job_id} is done; there is nothing to retry")
    connection.execute(
        update(enforcement_jobs)
        .where(enforcement_jobs.c.id == job_id)
        .values(status="pending", attempts=0, not_before=None, done_at=None)
    )
    audit(
        connection,
        "enforcement.retry",
        actor_id=actor_id,
        acting_as_id=acting_as_id,
        target_type="enforcement_job",
        target_id=job_id,
        previous_status=status,
    )
